//! What an engine prepares for one run: environment variables for its commands,
//! files they read (podman's registries.conf), a directory for digest files. The
//! directory and everything in it go when the session is dropped. The engine
//! says what to write ([`crate::engine::Engine::prepare`], pure); the files are
//! read and written here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::SessionError;
use crate::engine::{self, SessionInputs};
use crate::environment::Environment;
use crate::plan::{Action, Plan};
use crate::registry::auth::{config_key_host, config_server};
use crate::spec::reference::{self, is_loopback_host};
use crate::spec::EngineKind;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other session or probe of this machine uses at the same time.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The run-wide preparation of an engine.
#[derive(Debug, Default)]
pub struct Session {
    /// Added to every command's environment.
    pub env: Vec<(String, String)>,
    /// What the preparation changed, for the person running multiarch.
    pub notes: Vec<String>,
    /// A private directory (0700) under the system's temp dir, removed on drop.
    scratch: Option<tempfile::TempDir>,
}

impl Session {
    /// The preparation of `kind` for a run that reaches `plain_http` registries
    /// without TLS: the engine's configuration files read, its files written.
    pub fn prepare(
        kind: EngineKind,
        env: &Environment,
        plain_http: &[String],
    ) -> Result<Session, SessionError> {
        let engine = engine::engine(kind);
        let sources = engine.config_sources(env);
        let registries_conf = sources
            .registries
            .iter()
            .find_map(|p| Some((p.clone(), std::fs::read_to_string(p).ok()?)));
        let rlimit_problem = if sources.containers.is_empty() {
            None
        } else {
            rlimit_problem()
        };
        let containers_conf = match rlimit_problem {
            Some(_) => read_layers(&sources.containers, &sources.containers_dirs),
            None => Vec::new(),
        };
        let inputs = SessionInputs {
            plain_http,
            registries_conf,
            containers_conf,
            rlimit_problem,
        };
        let prepared = engine.prepare(&inputs).map_err(SessionError::Config)?;
        let mut s = Session::new(prepared.env);
        for f in &prepared.files {
            let path = s.write(f.name, &f.text)?;
            s.env
                .push((f.env_var.to_string(), path.display().to_string()));
            s.notes.extend(f.note(&path));
        }
        s.notes.extend(prepared.notes);
        Ok(s)
    }

    pub fn new(env: Vec<(String, String)>) -> Session {
        Session {
            env,
            notes: Vec::new(),
            scratch: None,
        }
    }

    /// The session's directory, made on first use.
    pub fn dir(&mut self) -> Result<&Path, SessionError> {
        let d = match self.scratch.take() {
            Some(d) => d,
            // tempfile's default is 0777 less the umask; the registries.conf and
            // digest files in here are this run's only.
            None => tempfile::Builder::new()
                .prefix("multiarch-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir()
                .map_err(|source| SessionError::TempDir {
                    dir: std::env::temp_dir(),
                    source,
                })?,
        };
        Ok(self.scratch.insert(d).path())
    }

    /// Writes `name` in the session's directory; returns its path.
    pub fn write(&mut self, name: &str, text: &str) -> Result<PathBuf, SessionError> {
        let path = self.dir()?.join(name);
        std::fs::write(&path, text).map_err(|source| SessionError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// A path for a file a command writes (a digest file), unique in this run. Its
    /// directory exists when the session made one; otherwise the system's temp dir.
    pub fn file_for(&self, what: &str) -> PathBuf {
        let name: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        match &self.scratch {
            Some(d) => d.path().join(unique_name(&name)),
            None => std::env::temp_dir().join(unique_name(&format!("multiarch-{name}"))),
        }
    }
}

/// Where `docker login` / `podman login` of a run write: a private copy of the
/// user's configuration in the session's directory, so the password never
/// reaches the user's files and goes with the session.
impl Session {
    /// Make the logins of this run private: returns the variable (and its value)
    /// that points the engine's commands at the copy. The copy has every entry of
    /// the user's but those of `registries` (the ones logged in to), so other
    /// registries' logins, `credHelpers` and `credsStore` still work; docker's
    /// other files (cli-plugins, contexts, buildx) are linked, not copied.
    pub fn private_logins(
        &mut self,
        kind: EngineKind,
        env: &Environment,
        registries: &[String],
    ) -> Result<(String, String), SessionError> {
        let home = env.non_empty("HOME").map(PathBuf::from);
        let docker_dir = env
            .non_empty("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".docker")));
        let (var, name, dir, source) = match kind {
            EngineKind::Docker => {
                let dir = self.dir()?.join("docker-config");
                mkdir(&dir)?;
                if let Some(user) = &docker_dir {
                    link_entries(user, &dir)?;
                }
                let source = docker_dir.map(|d| d.join("config.json"));
                ("DOCKER_CONFIG", "config.json", dir, source)
            }
            EngineKind::Podman => {
                // containers-auth.json(5)'s order; REGISTRY_AUTH_FILE wins.
                let candidates = [
                    env.non_empty("REGISTRY_AUTH_FILE").map(PathBuf::from),
                    env.non_empty("XDG_RUNTIME_DIR")
                        .map(|d| Path::new(d).join("containers/auth.json")),
                    home.as_ref()
                        .map(|h| h.join(".config/containers/auth.json")),
                    docker_dir.map(|d| d.join("config.json")),
                ];
                let source = candidates.into_iter().flatten().find(|p| p.is_file());
                let dir = self.dir()?.to_path_buf();
                ("REGISTRY_AUTH_FILE", "auth.json", dir, source)
            }
        };
        let user = source
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let text = serde_json::to_string_pretty(&without_logins(user, registries))
            .unwrap_or_else(|_| "{}".into());
        let path = dir.join(name);
        write_private(&path, &text)?;
        let value = match kind {
            EngineKind::Docker => dir,
            EngineKind::Podman => path,
        };
        Ok((var.to_string(), value.display().to_string()))
    }
}

fn mkdir(dir: &Path) -> Result<(), SessionError> {
    std::fs::create_dir_all(dir).map_err(|source| SessionError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), SessionError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| SessionError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Every entry of docker's config directory but config.json, linked into `to`.
fn link_entries(from: &Path, to: &Path) -> Result<(), SessionError> {
    let Ok(rd) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for e in rd.flatten() {
        if e.file_name() == "config.json" {
            continue;
        }
        let link = to.join(e.file_name());
        std::os::unix::fs::symlink(e.path(), &link)
            .map_err(|source| SessionError::Write { path: link, source })?;
    }
    Ok(())
}

/// A docker config.json (or containers auth.json) without what it says about
/// `registries`: their `auths` and `credHelpers` entries go, so a login writes
/// its own entry in the copy. A `credsStore` would take the new login into the
/// user's store, so it becomes a `credHelpers` entry for every other registry
/// the file knows (which is how the store is used for them anyway).
pub fn without_logins(mut v: serde_json::Value, registries: &[String]) -> serde_json::Value {
    let hosts: Vec<&str> = registries.iter().map(|r| config_key_host(r)).collect();
    let Some(o) = v.as_object_mut() else {
        return serde_json::json!({});
    };
    let mut known: Vec<String> = Vec::new();
    if let Some(auths) = o.get_mut("auths").and_then(|a| a.as_object_mut()) {
        auths.retain(|k, _| !hosts.contains(&config_key_host(k)));
        // Named as docker asks a helper for them (Docker Hub by its index URL).
        known.extend(
            auths
                .keys()
                .map(|k| config_server(config_key_host(k)).to_string()),
        );
    }
    let store = o.remove("credsStore");
    let helpers = o
        .entry("credHelpers")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(h) = helpers.as_object_mut() {
        h.retain(|k, _| !hosts.contains(&config_key_host(k)));
        if let Some(store) = store.filter(|s| s.as_str().is_some_and(|s| !s.is_empty())) {
            for host in known {
                h.entry(host).or_insert_with(|| store.clone());
            }
        }
    }
    if o.get("credHelpers")
        .is_some_and(|h| h.as_object().is_some_and(|h| h.is_empty()))
    {
        o.remove("credHelpers");
    }
    v
}

/// The registries a plan reaches over plain HTTP: every `[project]
/// insecure_registries` entry, and the loopback registries its references name.
pub fn plain_http_registries(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan.insecure_registries.clone();
    let mut refs: Vec<&str> = Vec::new();
    for s in plan.steps() {
        refs.extend(s.reference());
        match &s.action {
            Action::ManifestCreate { entries, .. } => {
                refs.extend(entries.iter().map(|e| &*e.reference))
            }
            Action::Verify { reference, .. } => refs.push(reference),
            _ => {}
        }
    }
    // Needs outside the plan, in the order of their ids (each once).
    let external: std::collections::BTreeMap<String, &str> = plan
        .steps()
        .iter()
        .flat_map(|s| s.external_needs())
        .filter_map(|e| Some((e.id.to_string(), e.reference.as_deref()?)))
        .collect();
    refs.extend(external.into_values());
    for r in refs {
        if let Some(d) = reference::parse(r).ok().and_then(|r| r.domain) {
            if is_loopback_host(&d) && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// The files of `layers` that can be read, then the `*.conf` files of `dirs`
/// (each directory's sorted by name) that can.
fn read_layers(layers: &[PathBuf], dirs: &[PathBuf]) -> Vec<String> {
    let mut paths = layers.to_vec();
    for dir in dirs {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut d: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            d.sort();
            paths.extend(d);
        }
    }
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// `CAP_SYS_RESOURCE`: needed to raise a hard rlimit.
const CAP_SYS_RESOURCE: u32 = 24;

/// Why rootful podman's default `RLIMIT_NOFILE` cannot be set here, if it cannot
/// (see [`crate::engine::podman::rlimit_diagnosis`]).
pub fn rlimit_problem() -> Option<String> {
    // SAFETY: plain queries of this process's ids and limits.
    let euid = unsafe { libc::geteuid() };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let caps = std::fs::read_to_string("/proc/self/status").ok()?;
    let cap_eff = caps
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())?;
    // rlim_t is not u64 on every target.
    #[allow(clippy::unnecessary_cast)]
    let hard = lim.rlim_max as u64;
    crate::engine::podman::rlimit_diagnosis(euid == 0, hard, cap_eff & (1 << CAP_SYS_RESOURCE) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_sessions_files_are_private_and_go_with_it() {
        let mut s = Session::new(Vec::new());
        let path = s.write("registries.conf", "x = 1\n").unwrap();
        let dir = path.parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x = 1\n");
        assert!(s.file_for("push:a/amd64").starts_with(&dir));
        drop(s);
        assert!(!dir.exists());
    }

    #[test]
    fn a_private_login_to_docker_hub_drops_its_entries_under_every_name() {
        let user = serde_json::json!({
            "auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpvbGQ="}, "other.lan": {}},
            "credsStore": "pass",
            "credHelpers": {"https://index.docker.io/v1/": "desktop"}
        });
        let v = without_logins(user, &["docker.io".into()]);
        assert_eq!(
            v,
            serde_json::json!({
                "auths": {"other.lan": {}},
                "credHelpers": {"other.lan": "pass"}
            })
        );
        // Docker Hub kept (another registry logs in): its helper entry is
        // written under the name docker asks helpers for it by.
        let user = serde_json::json!({
            "auths": {"docker.io": {}},
            "credsStore": "pass"
        });
        let v = without_logins(user, &["reg.lan".into()]);
        assert_eq!(
            v["credHelpers"],
            serde_json::json!({"https://index.docker.io/v1/": "pass"})
        );
    }

    #[test]
    fn the_private_config_has_every_login_but_the_ones_of_this_run() {
        let user = serde_json::json!({
            "auths": {
                "https://127.0.0.1:5000/v1/": {"auth": "dXNlcjpvbGQ="},
                "127.0.0.1:5000": {"auth": "dXNlcjpvbGQ="},
                "other.lan": {"auth": "b3RoZXI6eA=="},
                "stored.lan": {}
            },
            "credsStore": "pass",
            "credHelpers": {"127.0.0.1:5000": "ecr", "gcr.io": "gcloud"},
            "plugins": {"x": {"k": "v"}},
            "currentContext": "pi"
        });
        let v = without_logins(user, &["127.0.0.1:5000".into()]);
        assert_eq!(
            v,
            serde_json::json!({
                "auths": {"other.lan": {"auth": "b3RoZXI6eA=="}, "stored.lan": {}},
                "credHelpers": {"gcr.io": "gcloud", "other.lan": "pass", "stored.lan": "pass"},
                "plugins": {"x": {"k": "v"}},
                "currentContext": "pi"
            })
        );
        assert_eq!(
            without_logins(serde_json::json!([1]), &[]),
            serde_json::json!({})
        );
    }

    #[test]
    fn private_logins_leave_the_users_files_alone_and_go_with_the_session() {
        let home = tempfile::tempdir().unwrap();
        let user_dir = home.path().join(".docker");
        std::fs::create_dir_all(user_dir.join("cli-plugins")).unwrap();
        let config = r#"{"auths":{"reg.lan":{"auth":"eDp5"},"keep.lan":{"auth":"eDp5"}}}"#;
        std::fs::write(user_dir.join("config.json"), config).unwrap();
        let env = Environment::empty().with("HOME", home.path().to_str().unwrap());
        let mut s = Session::new(Vec::new());
        let (var, dir) = s
            .private_logins(EngineKind::Docker, &env, &["reg.lan".into()])
            .unwrap();
        assert_eq!(var, "DOCKER_CONFIG");
        let dir = PathBuf::from(dir);
        let copy = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert!(
            copy.contains("keep.lan") && !copy.contains("reg.lan"),
            "{copy}"
        );
        let mode = std::fs::metadata(dir.join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(dir.join("cli-plugins").is_dir(), "plugins stay reachable");
        drop(s);
        assert!(!dir.exists());
        assert_eq!(
            std::fs::read_to_string(user_dir.join("config.json")).unwrap(),
            config
        );
    }

    #[test]
    fn podman_logins_go_to_a_private_auth_file() {
        let d = tempfile::tempdir().unwrap();
        let auth = d.path().join("auth.json");
        std::fs::write(&auth, r#"{"auths":{"reg.lan":{"auth":"eDp5"}}}"#).unwrap();
        let env = Environment::empty().with("REGISTRY_AUTH_FILE", auth.to_str().unwrap());
        let mut s = Session::new(Vec::new());
        let (var, file) = s
            .private_logins(EngineKind::Podman, &env, &["reg.lan".into()])
            .unwrap();
        assert_eq!(var, "REGISTRY_AUTH_FILE");
        assert_ne!(PathBuf::from(&file), auth);
        assert_eq!(
            std::fs::read_to_string(&file)
                .unwrap()
                .replace([' ', '\n'], ""),
            r#"{"auths":{}}"#
        );
        drop(s);
        assert!(!PathBuf::from(file).exists());
    }

    #[test]
    fn names_are_unique() {
        assert_ne!(unique_name("x"), unique_name("x"));
    }
}
