//! Registry credentials: the ones the environment gives `run --login` and doctor,
//! the `Authorization: Basic` value, and what docker's `config.json` holds.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::environment::Environment;

/// What masked text shows instead of a secret.
pub const MASK: &str = "••••••";

/// The secret values of a run, shared by the handles cloned from it: the
/// registry client adds what it finds as it finds it (a password decoded from
/// docker's config, an identity token, a credential helper's secret, the
/// base64 of a Basic header, each bearer token), and every mask of the run's
/// output reads it ([`crate::events::Masker`]), so a value found mid-run is
/// masked from then on.
#[derive(Clone, Default)]
pub struct SecretSet(Arc<RwLock<Vec<String>>>);

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretSet({} values)", self.values().len())
    }
}

impl SecretSet {
    pub fn new(secrets: &[String]) -> SecretSet {
        let set = SecretSet::default();
        for s in secrets {
            set.add(s);
        }
        set
    }

    /// Very short values would mask ordinary text; credentials are longer. A
    /// multi-line secret (a JSON key for `_json_key`) reaches the output line
    /// by line, indented or not: each of its lines is a secret too.
    pub fn add(&self, secret: &str) {
        let mut new: Vec<&str> = vec![secret];
        if secret.contains('\n') {
            new.extend(secret.lines().map(str::trim));
        }
        let Ok(mut all) = self.0.write() else { return };
        let before = all.len();
        for s in new {
            if s.len() >= 4 && !all.iter().any(|a| a == s) {
                all.push(s.to_string());
            }
        }
        if all.len() != before {
            // Longest first, so a secret containing another is masked whole.
            all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.read().map_or(true, |a| a.is_empty())
    }

    fn values(&self) -> Vec<String> {
        self.0.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// `s` with every secret replaced by [`MASK`].
    pub fn mask(&self, s: &str) -> String {
        let Ok(all) = self.0.read() else {
            return s.to_string();
        };
        let mut out = s.to_string();
        for secret in all.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// A password, and the base64 of `user:password` that a Basic header
    /// carries (a server may echo the header); an identity token.
    pub fn add_credential(&self, secret: &Secret) {
        match secret {
            Secret::Basic { user, password } => {
                self.add(password);
                self.add(&STANDARD.encode(format!("{user}:{password}")));
            }
            Secret::IdentityToken(t) => self.add(t),
        }
    }
}

/// Registry credentials, from the environment only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry they are for; `None`: every registry of the plan.
    pub registry: Option<String>,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("registry", &self.registry)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// MULTIARCH_REGISTRY_USER/_PASSWORD (registry: MULTIARCH_REGISTRY_LOGIN, else
    /// every registry of the plan), else GitLab's CI_REGISTRY_USER/_PASSWORD for
    /// CI_REGISTRY.
    pub fn from_env(env: &Environment) -> Option<Credentials> {
        if let (Some(u), Some(p)) = (
            env.non_empty("MULTIARCH_REGISTRY_USER"),
            env.non_empty("MULTIARCH_REGISTRY_PASSWORD"),
        ) {
            return Some(Credentials {
                registry: env
                    .non_empty("MULTIARCH_REGISTRY_LOGIN")
                    .map(str::to_string),
                user: u.into(),
                password: p.into(),
            });
        }
        if let (Some(u), Some(p), Some(r)) = (
            env.non_empty("CI_REGISTRY_USER"),
            env.non_empty("CI_REGISTRY_PASSWORD"),
            env.non_empty("CI_REGISTRY"),
        ) {
            return Some(Credentials {
                registry: Some(r.into()),
                user: u.into(),
                password: p.into(),
            });
        }
        None
    }

    /// Whether they are meant for `host` (credentials without a registry are
    /// meant for every one).
    pub fn applies_to(&self, host: &str) -> bool {
        self.registry
            .as_deref()
            .is_none_or(|r| canonical_host(r) == canonical_host(host))
    }

    /// Their `Authorization` header value.
    pub fn basic(&self) -> String {
        basic(&self.user, &self.password)
    }
}

/// `Basic base64(user:password)`, the value of an `Authorization` header.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Docker Hub's registry API host.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// The server docker's config and its credential helpers name Docker Hub by.
pub const DOCKER_HUB_INDEX: &str = "https://index.docker.io/v1/";

/// `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry,
/// Docker Hub, reached at its API host; every other host is itself.
pub fn canonical_host(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        h => h,
    }
}

/// The server name docker's config and credential helpers use for `host`
/// (Docker Hub's is [`DOCKER_HUB_INDEX`]).
pub fn config_server(host: &str) -> &str {
    match canonical_host(host) {
        DOCKER_HUB => DOCKER_HUB_INDEX,
        h => h,
    }
}

/// The registry a docker config.json key names (`https://host/v1/`, `host`),
/// by its [`canonical_host`].
pub fn config_key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    canonical_host(k.split('/').next().unwrap_or(k))
}

/// Where docker's config says the credentials for a registry are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerConfigAuth {
    /// `credHelpers.<host>`: the helper `docker-credential-<name>` holds them.
    Helper(String),
    /// `auths.<host>` (what `docker login` writes): its `identitytoken` when it
    /// has one (docker itself prefers it: `az acr login` writes one beside an
    /// `auth` of `00000000-…:` with no password), else the user and password
    /// its `auth` value decodes to.
    Login(Option<Secret>),
    /// Only `credsStore`: the store may hold them; it is not looked into.
    Store(String),
}

/// docker's `config.json`: `$DOCKER_CONFIG/config.json`, else
/// `$HOME/.docker/config.json`. `None` when there is none, or it is not JSON.
pub fn docker_config(env: &Environment) -> Option<serde_json::Value> {
    let dir = match env.non_empty("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env.non_empty("HOME")?).join(".docker"),
    };
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// What docker's config says about credentials for `host`: a credential helper
/// for it first, then a `docker login` entry (its key may be a URL such as
/// `https://host/v1/`), then a credentials store that might hold them.
pub fn docker_config_auth(env: &Environment, host: &str) -> Option<DockerConfigAuth> {
    let v = docker_config(env)?;
    let host = canonical_host(host);
    // Keys may be URLs, and Docker Hub goes by several names.
    let entry = |section: &str| {
        v.get(section)
            .and_then(|a| a.as_object())
            .and_then(|a| a.iter().find(|(k, _)| config_key_host(k) == host))
            .map(|(_, e)| e)
    };
    if let Some(helper) = entry("credHelpers").and_then(|h| h.as_str()) {
        return Some(DockerConfigAuth::Helper(helper.to_string()));
    }
    if let Some(entry) = entry("auths") {
        let pair = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .and_then(|a| STANDARD.decode(a).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':').map(|(u, p)| Secret::Basic {
                    user: u.to_string(),
                    password: p.to_string(),
                })
            });
        let token = || {
            entry
                .get("identitytoken")
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .map(|t| Secret::IdentityToken(t.to_string()))
        };
        return Some(DockerConfigAuth::Login(token().or(pair)));
    }
    v.get("credsStore")
        .and_then(|s| s.as_str())
        .map(|s| DockerConfigAuth::Store(s.to_string()))
}

/// What a registry is authenticated with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Basic {
        user: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`, a helper's `<token>` user).
    IdentityToken(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Basic { user, .. } => write!(f, "Basic({user}, <hidden>)"),
            Secret::IdentityToken(_) => f.write_str("IdentityToken(<hidden>)"),
        }
    }
}

impl Secret {
    /// The secret part, for masking.
    pub fn secret(&self) -> &str {
        match self {
            Secret::Basic { password, .. } => password,
            Secret::IdentityToken(t) => t,
        }
    }
}

/// A credential helper's answer to `get`: `{"ServerURL","Username","Secret"}`;
/// the user `<token>` means the secret is an identity token.
pub fn helper_answer(stdout: &str) -> Result<Option<Secret>, String> {
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("its answer is not JSON: {e}"))?;
    let user = v.get("Username").and_then(|u| u.as_str()).unwrap_or("");
    let secret = v.get("Secret").and_then(|u| u.as_str()).unwrap_or("");
    Ok(match (user, secret) {
        (_, "") => None,
        ("<token>", t) => Some(Secret::IdentityToken(t.to_string())),
        (u, p) => Some(Secret::Basic {
            user: u.to_string(),
            password: p.to_string(),
        }),
    })
}

/// A `WWW-Authenticate` challenge: `Bearer realm="…",service="…",scope="…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercase: `basic`, `bearer`.
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_base64_of_user_colon_password() {
        assert_eq!(basic("user", "pa55"), "Basic dXNlcjpwYTU1");
        assert_eq!(basic("", ""), "Basic Og==");
        assert_eq!(basic("f", "oo"), "Basic Zjpvbw==");
    }

    #[test]
    fn credentials_come_from_multiarch_variables_then_gitlab() {
        let env = Environment::from_pairs([
            ("MULTIARCH_REGISTRY_USER", "u"),
            ("MULTIARCH_REGISTRY_PASSWORD", "p"),
            ("CI_REGISTRY_USER", "ci"),
            ("CI_REGISTRY_PASSWORD", "cp"),
            ("CI_REGISTRY", "registry.gitlab.example"),
        ]);
        let c = Credentials::from_env(&env).unwrap();
        assert_eq!((c.user.as_str(), c.registry.as_deref()), ("u", None));
        assert!(c.applies_to("anything:5000"));
        assert_eq!(c.basic(), basic("u", "p"));
        assert!(!format!("{c:?}").contains("\"p\""), "{c:?}");

        let env = env.with("MULTIARCH_REGISTRY_PASSWORD", "");
        let c = Credentials::from_env(&env).unwrap();
        assert_eq!(c.registry.as_deref(), Some("registry.gitlab.example"));
        assert!(c.applies_to("registry.gitlab.example"));
        assert!(!c.applies_to("127.0.0.1:5000"));
        assert_eq!(Credentials::from_env(&Environment::empty()), None);
    }

    fn config(json: &str) -> (tempfile::TempDir, Environment) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), json).unwrap();
        let env = Environment::empty().with("DOCKER_CONFIG", d.path().to_str().unwrap());
        (d, env)
    }

    #[test]
    fn docker_hub_is_one_registry_under_its_names() {
        for h in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(canonical_host(h), DOCKER_HUB);
            assert_eq!(config_server(h), DOCKER_HUB_INDEX);
        }
        assert_eq!(canonical_host("ghcr.io"), "ghcr.io");
        assert_eq!(config_server("127.0.0.1:5000"), "127.0.0.1:5000");
        // What `docker login` writes for Docker Hub.
        let (_d, env) =
            config(r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTU1"}}}"#);
        assert_eq!(
            docker_config_auth(&env, DOCKER_HUB),
            Some(DockerConfigAuth::Login(Some(Secret::Basic {
                user: "user".into(),
                password: "pa55".into()
            })))
        );
        let (_d, env) = config(r#"{"credHelpers":{"https://index.docker.io/v1/":"pass"}}"#);
        assert_eq!(
            docker_config_auth(&env, "docker.io"),
            Some(DockerConfigAuth::Helper("pass".into()))
        );
        let c = Credentials {
            registry: Some("docker.io".into()),
            user: "u".into(),
            password: "p".into(),
        };
        assert!(c.applies_to(DOCKER_HUB));
        assert!(!c.applies_to("ghcr.io"));
    }

    #[test]
    fn docker_config_helper_then_login_then_store() {
        let (_d, env) = config(
            r#"{"credHelpers":{"gcr.io":"gcloud"},
                "auths":{"https://127.0.0.1:5000/v1/":{"auth":"dXNlcjpwYTU1"},"ghcr.io":{}},
                "credsStore":"desktop"}"#,
        );
        let at = |h| docker_config_auth(&env, h);
        assert_eq!(
            at("gcr.io"),
            Some(DockerConfigAuth::Helper("gcloud".into()))
        );
        assert_eq!(
            at("127.0.0.1:5000"),
            Some(DockerConfigAuth::Login(Some(Secret::Basic {
                user: "user".into(),
                password: "pa55".into()
            })))
        );
        assert_eq!(at("ghcr.io"), Some(DockerConfigAuth::Login(None)));
        assert_eq!(
            at("quay.io"),
            Some(DockerConfigAuth::Store("desktop".into()))
        );

        let (_d, env) = config(r#"{"auths":{}}"#);
        assert_eq!(docker_config_auth(&env, "quay.io"), None);
        let (_d, env) = config("not json");
        assert_eq!(docker_config_auth(&env, "quay.io"), None);
        assert_eq!(docker_config_auth(&Environment::empty(), "quay.io"), None);
    }

    #[test]
    fn docker_config_is_found_under_home_without_docker_config() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".docker")).unwrap();
        std::fs::write(
            d.path().join(".docker/config.json"),
            r#"{"auths":{"registry.lan:5000":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        let env = Environment::empty().with("HOME", d.path().to_str().unwrap());
        assert_eq!(
            docker_config_auth(&env, "registry.lan:5000"),
            Some(DockerConfigAuth::Login(Some(Secret::Basic {
                user: "a".into(),
                password: "b".into()
            })))
        );
    }

    #[test]
    fn a_secret_set_masks_credentials_their_basic_header_and_lines() {
        let set = SecretSet::new(&["ab".into(), "multi\n  line-two\n".into()]);
        set.add_credential(&Secret::Basic {
            user: "u".into(),
            password: "pa55".into(),
        });
        set.add_credential(&Secret::IdentityToken("refresh-me".into()));
        let header = basic("u", "pa55");
        assert_eq!(
            set.mask(&format!("{header} pa55 refresh-me line-two ab")),
            format!("Basic {MASK} {MASK} {MASK} {MASK} ab")
        );
        assert_eq!(format!("{set:?}"), "SecretSet(6 values)");
    }

    #[test]
    fn challenges_parse() {
        let c = Challenge::parse(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg, 1",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("http://127.0.0.1:1/token"));
        assert_eq!(c.param("service"), Some("reg, 1"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        let c = Challenge::parse(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (c.scheme.as_str(), c.param("realm")),
            ("basic", Some("Registry Realm"))
        );
        assert_eq!(Challenge::parse("Basic").params, vec![]);
    }

    #[test]
    fn helpers_answer_json_and_identity_tokens() {
        assert_eq!(
            helper_answer(r#"{"ServerURL":"r","Username":"u","Secret":"p"}"#).unwrap(),
            Some(Secret::Basic {
                user: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            helper_answer(r#"{"Username":"<token>","Secret":"t"}"#).unwrap(),
            Some(Secret::IdentityToken("t".into()))
        );
        assert!(helper_answer("nope").is_err());
        let (_d, env) = config(r#"{"auths":{"reg:1":{"identitytoken":"tok"}}}"#);
        assert_eq!(
            docker_config_auth(&env, "reg:1"),
            Some(DockerConfigAuth::Login(Some(Secret::IdentityToken(
                "tok".into()
            ))))
        );
        assert!(!format!("{:?}", Secret::IdentityToken("tok".into())).contains("tok"));
        // What `docker login` (and `az acr login`) write for an OAuth registry:
        // a user with no password beside the identity token. The token wins.
        let (_d, env) = config(
            r#"{"auths":{"reg:1":{"auth":"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==","identitytoken":"tok"}}}"#,
        );
        assert_eq!(
            docker_config_auth(&env, "reg:1"),
            Some(DockerConfigAuth::Login(Some(Secret::IdentityToken(
                "tok".into()
            ))))
        );
    }
}
