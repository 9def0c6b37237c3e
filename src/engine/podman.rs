//! Podman: the same build/run flags as docker; digests from `--digestfile`; lists
//! as local images (`podman manifest create` / `add` / `push --all`); plain-HTTP
//! registries through a registries.conf written for the run (podman, unlike
//! dockerd, does not treat loopback registries as plain HTTP by itself).
//!
//! Rootful podman gives every container `RLIMIT_NOFILE=1048576`. Where the hard
//! limit is lower and root lacks `CAP_SYS_RESOURCE` (containers, sandboxes, CI
//! runners), the OCI runtime cannot set it and `podman run` fails with "error
//! setting rlimit type 7: operation not permitted". There multiarch runs podman with
//! a containers.conf that keeps the machine's settings and adds
//! `default_ulimits = []`: podman then sets no rlimit, and containers inherit
//! podman's own limits, which are always allowed.

use std::path::PathBuf;

use super::argv::{self, BuildArgs, EngineTarget};
use super::{
    find_digest, image_inspect, ConfigSources, Engine, EngineCli, FileNote, Preparation,
    SessionFile, SessionInputs,
};
use crate::environment::Environment;
use crate::spec::reference;
use crate::spec::EngineKind;

/// `RLIMIT_NOFILE` that rootful podman sets in containers unless told otherwise.
pub const ROOTFUL_NOFILE: u64 = 1_048_576;

#[derive(Debug, Clone, Copy, Default)]
pub struct Podman;

impl Engine for Podman {
    fn cli(&self) -> EngineCli {
        EngineCli {
            kind: EngineKind::Podman,
            program: "podman",
            host_flag: "--url",
            context_flag: "--connection",
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// registries.conf as containers/image looks for it (first match wins):
    /// `$CONTAINERS_REGISTRIES_CONF`, `~/.config/containers/registries.conf`,
    /// `/etc/containers/registries.conf`. containers.conf as rootful podman reads
    /// it (containers/common): `$CONTAINERS_CONF` alone, else the system file, the
    /// admin's file and their drop-ins.
    fn config_sources(&self, env: &Environment) -> ConfigSources {
        let registries = match env.non_empty("CONTAINERS_REGISTRIES_CONF") {
            Some(p) => vec![PathBuf::from(p)],
            None => {
                let mut v = Vec::new();
                if let Some(home) = env.non_empty("HOME") {
                    v.push(PathBuf::from(home).join(".config/containers/registries.conf"));
                }
                v.push(PathBuf::from("/etc/containers/registries.conf"));
                v
            }
        };
        let (containers, containers_dirs) = match env.non_empty("CONTAINERS_CONF") {
            Some(p) => (vec![PathBuf::from(p)], Vec::new()),
            None => (
                vec![
                    PathBuf::from("/usr/share/containers/containers.conf"),
                    PathBuf::from("/etc/containers/containers.conf"),
                ],
                vec![
                    PathBuf::from("/usr/share/containers/containers.conf.d"),
                    PathBuf::from("/etc/containers/containers.conf.d"),
                ],
            ),
        };
        ConfigSources {
            registries,
            containers,
            containers_dirs,
        }
    }

    /// A registries.conf marking the plain-HTTP registries insecure (podman,
    /// unlike dockerd, does not treat loopback ones so by itself); where rootful
    /// podman's rlimit cannot be set, a containers.conf without default rlimits.
    fn prepare(&self, inputs: &SessionInputs<'_>) -> Result<Preparation, String> {
        let mut p = Preparation {
            env: self.env(),
            ..Preparation::default()
        };
        if !inputs.plain_http.is_empty() {
            let (base_path, base) = match &inputs.registries_conf {
                Some((path, text)) => (Some(path), Some(text.as_str())),
                None => (None, None),
            };
            let text = registries_conf(base, inputs.plain_http).map_err(|e| {
                format!(
                    "cannot add the plain-HTTP registries to {}: {e}",
                    base_path.map_or("registries.conf".into(), |p| p.display().to_string())
                )
            })?;
            p.files.push(SessionFile {
                name: "registries.conf",
                text,
                env_var: "CONTAINERS_REGISTRIES_CONF",
                note: FileNote::None,
            });
        }
        if let Some(why) = &inputs.rlimit_problem {
            let texts: Vec<&str> = inputs.containers_conf.iter().map(String::as_str).collect();
            match containers_conf_without_ulimits(&texts) {
                Ok(Some(text)) => p.files.push(SessionFile {
                    name: "containers.conf",
                    text,
                    env_var: "CONTAINERS_CONF",
                    note: FileNote::NoDefaultUlimits { why: why.clone() },
                }),
                Ok(None) => p.notes.push(format!(
                    "{why}, and containers.conf sets default_ulimits: `podman run` fails unless they are within the limits"
                )),
                Err(e) => p.notes.push(format!(
                    "{why}; containers.conf could not be read to work around it ({e})"
                )),
            }
        }
        Ok(p)
    }

    /// Podman's `--cache-from` takes a repository (its cache is the layers pushed
    /// there), not a tagged image: the tag is dropped.
    fn build(&self, t: &EngineTarget, a: &BuildArgs) -> Vec<String> {
        let mut a = a.clone();
        let mut repos: Vec<String> = Vec::new();
        for c in &a.cache_from {
            let repo = reference::parse(c).map_or_else(|_| c.clone(), |r| r.repository());
            if !repos.contains(&repo) {
                repos.push(repo);
            }
        }
        let layers = !repos.is_empty();
        a.cache_from = repos;
        let mut v = argv::build_flags(t.base(), &a);
        if layers {
            // Cached layers are only used (and kept) with `--layers`.
            let at = v.len() - 1;
            v.insert(at, "--layers".into());
        }
        v
    }

    /// Podman's image inspect has no variant field: `os/arch` only.
    fn inspect_platform(&self, t: &EngineTarget, reference: &str) -> Vec<String> {
        image_inspect(t, "{{.Os}}/{{.Architecture}}", reference)
    }

    /// `podman push --digestfile F REF`: podman's output has no digest.
    fn push(&self, t: &EngineTarget, reference: &str, digest_file: &str) -> Vec<String> {
        let mut v = t.base();
        v.extend(["push", "--digestfile", digest_file, reference].map(String::from));
        v
    }

    fn pushed_digest(&self, output: &[String], digest_file: Option<&str>) -> Option<String> {
        digest_file
            .and_then(find_digest)
            .or_else(|| output.iter().rev().find_map(|l| find_digest(l)))
    }

    /// Fully qualified: podman would otherwise resolve a short name through
    /// registries.conf (or ask which registry to use).
    fn qemu_register(&self) -> Vec<String> {
        let mut v: Vec<String> = ["podman", "run", "--rm", "--privileged", "--network", "none"]
            .map(String::from)
            .to_vec();
        v.extend(argv::container_labels());
        v.extend(
            [
                "docker.io/multiarch/qemu-user-static",
                "--reset",
                "-p",
                "yes",
            ]
            .map(String::from),
        );
        v
    }
}

/// `base` (the registries.conf podman would have read, if any) with every registry
/// of `plain_http` marked insecure: an existing `[[registry]]` entry for it gets
/// `insecure = true`, otherwise one is added; a version 1 file gets them in
/// `[registries.insecure] registries`.
pub fn registries_conf(base: Option<&str>, plain_http: &[String]) -> Result<String, String> {
    use toml::{Table, Value};
    let mut doc: Table = match base {
        Some(t) => t
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_string())?,
        None => Table::new(),
    };
    let v1 = doc.get("registries").is_some_and(Value::is_table);
    if v1 {
        let insecure = doc
            .entry("registries")
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .ok_or("`registries` is not a table")?
            .entry("insecure")
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .ok_or("`registries.insecure` is not a table")?
            .entry("registries")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or("`registries.insecure.registries` is not an array")?;
        for r in plain_http {
            if !insecure.iter().any(|x| x.as_str() == Some(r)) {
                insecure.push(Value::String(r.clone()));
            }
        }
    } else {
        let entries = doc
            .entry("registry")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or("`registry` is not an array of tables")?;
        for r in plain_http {
            let existing = entries
                .iter_mut()
                .filter_map(Value::as_table_mut)
                .find(|t| {
                    let key = t.get("prefix").or_else(|| t.get("location"));
                    key.and_then(Value::as_str) == Some(r.as_str())
                });
            match existing {
                Some(t) => {
                    t.insert("insecure".into(), Value::Boolean(true));
                }
                None => {
                    let mut t = Table::new();
                    t.insert("location".into(), Value::String(r.clone()));
                    t.insert("insecure".into(), Value::Boolean(true));
                    entries.push(Value::Table(t));
                }
            }
        }
    }
    let body = toml::to_string(&doc).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Written by multiarch for one run: the registries.conf podman would read, with\n# the plain-HTTP registries of the run marked insecure.\n{body}"
    ))
}

/// The containers.conf files podman reads (`layers`, in order), merged the way
/// podman merges them (a later file's keys win, tables merge), plus
/// `[containers] default_ulimits = []`. `None` when a file already sets
/// `default_ulimits`: the machine's own choice is kept.
pub fn containers_conf_without_ulimits(layers: &[&str]) -> Result<Option<String>, String> {
    use toml::{Table, Value};
    fn merge(into: &mut Table, from: Table) {
        for (k, v) in from {
            match (into.get_mut(&k), v) {
                (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
    let mut doc = Table::new();
    for text in layers {
        let t: Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        merge(&mut doc, t);
    }
    let containers = doc
        .entry("containers")
        .or_insert_with(|| Value::Table(Table::new()))
        .as_table_mut()
        .ok_or("`containers` is not a table")?;
    if containers.contains_key("default_ulimits") {
        return Ok(None);
    }
    containers.insert("default_ulimits".into(), Value::Array(Vec::new()));
    let body = toml::to_string(&doc).map_err(|e| e.to_string())?;
    Ok(Some(format!(
        "# Written by multiarch for one run: this machine's containers.conf, with no\n# default rlimits (see the podman section of multiarch's README).\n{body}"
    )))
}

/// Rootless podman caps its limits at the user's; rootful podman asks for
/// [`ROOTFUL_NOFILE`], which only works when the hard limit is that high or the
/// process may raise it.
pub fn rlimit_diagnosis(root: bool, nofile_hard: u64, cap_sys_resource: bool) -> Option<String> {
    (root && nofile_hard < ROOTFUL_NOFILE && !cap_sys_resource).then(|| {
        format!(
            "rootful podman gives containers RLIMIT_NOFILE={ROOTFUL_NOFILE}, above this machine's hard limit of {nofile_hard}, and root here lacks CAP_SYS_RESOURCE to raise it (podman run would fail: \"error setting rlimit type 7\")"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Pull, RunCommand};
    use crate::spec::{Builder, Platform};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn push_writes_the_digest_to_a_file() {
        let t = EngineTarget::local(EngineKind::Podman);
        assert_eq!(
            Podman.push(&t, "reg/app/amd64:1", "/tmp/d"),
            s(&[
                "podman",
                "push",
                "--digestfile",
                "/tmp/d",
                "reg/app/amd64:1"
            ])
        );
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            Podman
                .pushed_digest(&[], Some(&format!("{d}\n")))
                .as_deref(),
            Some(d)
        );
        assert_eq!(
            Podman.pushed_digest(&s(&["Storing signatures"]), None),
            None
        );
    }

    #[test]
    fn run_and_build_use_dockers_flags_without_buildkit() {
        let t = EngineTarget::local(EngineKind::Podman);
        let p = Platform::parse("linux/arm64").unwrap();
        let uname = s(&["uname", "-m"]);
        let replaced = RunCommand {
            command: &uname,
            keep_entrypoint: false,
        };
        assert_eq!(
            Podman.run(&t, "r@sha256:cc", &p, Pull::Always, replaced),
            s(&[
                "podman",
                "run",
                "--rm",
                "--network",
                "none",
                "--platform",
                "linux/arm64/v8",
                "--pull",
                "always",
                "--label",
                "multiarch.run=<run-id>",
                "--label",
                "multiarch.step=<step-id>",
                "--entrypoint",
                "uname",
                "r@sha256:cc",
                "-m"
            ])
        );
        let appended = RunCommand {
            command: &uname,
            keep_entrypoint: true,
        };
        let v = Podman.run(&t, "r@sha256:cc", &p, Pull::Never, appended);
        assert!(!v.contains(&"--entrypoint".to_string()), "{v:?}");
        assert_eq!(v[v.len() - 3..], s(&["r@sha256:cc", "uname", "-m"]));
        assert!(Podman.env().is_empty(), "no DOCKER_BUILDKIT");
        let remote = EngineTarget {
            kind: EngineKind::Podman,
            builder: Some(Builder::Host("ssh://ci@arm64-1".into())),
        };
        assert_eq!(
            Podman.inspect_platform(&remote, "r:1"),
            s(&[
                "podman",
                "--url",
                "ssh://ci@arm64-1",
                "image",
                "inspect",
                "--format",
                "{{.Os}}/{{.Architecture}}",
                "r:1"
            ])
        );
    }

    #[test]
    fn cache_from_names_repositories() {
        let t = EngineTarget::local(EngineKind::Podman);
        let a = BuildArgs {
            cache_from: vec!["reg/app/amd64:latest".into(), "reg/app/amd64:main".into()],
            dockerfile: "app/Dockerfile".into(),
            context: "app".into(),
            mode: crate::spec::BuildMode::Buildx,
            inline_cache: true,
            ..BuildArgs::example("amd64", "linux/amd64", "reg/app/amd64:1", "/run/x/npm")
        };

        let v = Podman.build(&t, &a);
        assert_eq!(
            v[..2],
            s(&["podman", "build"]),
            "docker's builder is not podman's"
        );
        assert!(!v.iter().any(|x| x.contains("BUILDKIT")), "{v:?}");
        let i = v.iter().position(|x| x == "--secret").unwrap();
        assert_eq!(v[i + 1], "id=npm,src=/run/x/npm");
        assert_eq!(v[v.len() - 2], "--layers", "cached layers need --layers");
        let i = v.iter().position(|x| x == "--cache-from").unwrap();
        assert_eq!(v[i + 1], "reg/app/amd64");
        assert_eq!(v.iter().filter(|x| *x == "--cache-from").count(), 1);
    }

    #[test]
    fn registries_conf_adds_plain_http_registries_and_keeps_the_rest() {
        let out = registries_conf(None, &["127.0.0.1:5000".into()]).unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert_eq!(
            t["registry"][0]["location"].as_str(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(t["registry"][0]["insecure"].as_bool(), Some(true));

        let base = "unqualified-search-registries = [\"registry.lan\"]\n\n[[registry]]\nlocation = \"registry.lan:5000\"\nblocked = false\n\n[[registry]]\nlocation = \"quay.io\"\n[[registry.mirror]]\nlocation = \"mirror.lan\"\n";
        let out = registries_conf(
            Some(base),
            &["registry.lan:5000".into(), "127.0.0.1:41000".into()],
        )
        .unwrap();
        let t: toml::Table = out.parse().unwrap();
        let regs = t["registry"].as_array().unwrap();
        assert_eq!(regs.len(), 3, "{out}");
        assert_eq!(
            regs[0]["insecure"].as_bool(),
            Some(true),
            "existing entry marked"
        );
        assert_eq!(regs[0]["blocked"].as_bool(), Some(false), "its keys kept");
        assert_eq!(
            regs[1]["mirror"][0]["location"].as_str(),
            Some("mirror.lan")
        );
        assert_eq!(regs[2]["location"].as_str(), Some("127.0.0.1:41000"));
        assert_eq!(
            t["unqualified-search-registries"][0].as_str(),
            Some("registry.lan")
        );

        let v1 = "[registries.search]\nregistries = [\"docker.io\"]\n[registries.insecure]\nregistries = [\"a.lan\"]\n";
        let out = registries_conf(Some(v1), &["127.0.0.1:5000".into()]).unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert!(t.get("registry").is_none(), "v1 and v2 cannot be mixed");
        let insecure: Vec<&str> = t["registries"]["insecure"]["registries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(insecure, ["a.lan", "127.0.0.1:5000"]);

        assert!(registries_conf(Some("registry = 3"), &["x".into()]).is_err());
    }

    #[test]
    fn containers_conf_merges_the_machines_files_and_drops_default_ulimits() {
        let system =
            "[containers]\ndefault_capabilities = [\"CHOWN\"]\n[engine]\nruntime = \"runc\"\n";
        let admin = "[engine]\ncgroup_manager = \"cgroupfs\"\n";
        let out = containers_conf_without_ulimits(&[system, admin])
            .unwrap()
            .unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert_eq!(t["engine"]["runtime"].as_str(), Some("runc"));
        assert_eq!(t["engine"]["cgroup_manager"].as_str(), Some("cgroupfs"));
        assert_eq!(
            t["containers"]["default_capabilities"][0].as_str(),
            Some("CHOWN")
        );
        assert_eq!(
            t["containers"]["default_ulimits"].as_array().map(Vec::len),
            Some(0)
        );
        let own = "[containers]\ndefault_ulimits = [\"nofile=1024:1024\"]\n";
        assert_eq!(
            containers_conf_without_ulimits(&[system, own]).unwrap(),
            None
        );
        assert!(containers_conf_without_ulimits(&[""]).unwrap().is_some());
    }

    #[test]
    fn the_preparation_is_files_to_write_and_what_to_say() {
        let plain = ["127.0.0.1:5000".to_string()];
        let p = Podman
            .prepare(&SessionInputs {
                plain_http: &plain,
                ..SessionInputs::default()
            })
            .unwrap();
        assert_eq!(p.files.len(), 1);
        assert_eq!(p.files[0].env_var, "CONTAINERS_REGISTRIES_CONF");
        assert!(p.files[0].text.contains("127.0.0.1:5000"));
        assert_eq!(p.files[0].note(std::path::Path::new("/x")), None);
        let broken = SessionInputs {
            plain_http: &plain,
            registries_conf: Some(("/etc/r.conf".into(), "registry = 3".into())),
            ..SessionInputs::default()
        };
        assert!(Podman
            .prepare(&broken)
            .unwrap_err()
            .starts_with("cannot add the plain-HTTP registries to /etc/r.conf"));
        let limited = SessionInputs {
            rlimit_problem: Some("no CAP_SYS_RESOURCE".into()),
            containers_conf: vec!["[engine]\nruntime = \"crun\"\n".into()],
            ..SessionInputs::default()
        };
        let p = Podman.prepare(&limited).unwrap();
        assert_eq!(p.files[0].env_var, "CONTAINERS_CONF");
        assert!(p.files[0].text.contains("default_ulimits = []"));
        assert!(p.files[0]
            .note(std::path::Path::new("/tmp/s/containers.conf"))
            .unwrap()
            .starts_with("no CAP_SYS_RESOURCE: podman runs with containers.conf `default_ulimits = []` (/tmp/s/containers.conf)"));
        assert!(Podman
            .prepare(&SessionInputs::default())
            .unwrap()
            .files
            .is_empty());
    }

    #[test]
    fn the_rlimit_problem_is_root_without_cap_sys_resource_below_podmans_limit() {
        assert!(rlimit_diagnosis(true, 20_000, false)
            .unwrap()
            .contains("hard limit of 20000"));
        assert_eq!(rlimit_diagnosis(true, 20_000, true), None);
        assert_eq!(rlimit_diagnosis(true, ROOTFUL_NOFILE, false), None);
        assert_eq!(
            rlimit_diagnosis(false, 1024, false),
            None,
            "rootless caps itself"
        );
    }
}
