//! The machine planning happens for.

use std::path::Path;

use super::ContextError;
use crate::environment::Environment;
use crate::spec::{BuildMode, BuilderSetting, Platform};

/// Where `update-binfmts` may be installed.
const UPDATE_BINFMTS: &[&str] = &[
    "/usr/sbin/update-binfmts",
    "/usr/bin/update-binfmts",
    "/sbin/update-binfmts",
];

/// The machine planning happens for.
#[derive(Debug, Clone)]
pub struct Host {
    pub platform: Platform,
    /// `update-binfmts` is installed (chooses the default qemu setup).
    pub has_update_binfmts: bool,
}

impl Host {
    /// This machine: its platform, and whether `update-binfmts` is installed.
    pub fn detect() -> Host {
        Host {
            platform: Platform::host(),
            has_update_binfmts: UPDATE_BINFMTS.iter().any(|p| Path::new(p).exists()),
        }
    }

    /// A given platform (tests, `MULTIARCH_HOST_PLATFORM`), with `update-binfmts`.
    pub fn fixed(platform: &str) -> Host {
        Host {
            platform: Platform::parse(platform).unwrap_or_else(|_| Platform::host()),
            has_update_binfmts: true,
        }
    }
}

/// What the docker CLI multiarch runs can build with: the buildx plugin, or
/// BuildKit built in (CLIs before 23.0 build with BuildKit under
/// `DOCKER_BUILDKIT=1`; from 23.0 on, that needs buildx).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerCli {
    /// `$MULTIARCH_DOCKER`, else `docker`.
    pub program: String,
    /// `docker buildx version` answers.
    pub buildx: bool,
    /// From `docker --version` (which needs no daemon), e.g. `20.10.24`.
    pub version: Option<String>,
    /// Another CLI on this machine with BuildKit built in (Debian's docker.io
    /// installs one at /usr/bin/docker), and its version, to suggest.
    pub alternative: Option<(String, String)>,
}

/// Where another docker CLI with BuildKit built in may be: Debian's docker.io
/// 20.10 CLI, which a newer CLI first on PATH can hide.
pub const ALTERNATIVE_DOCKERS: &[&str] = &["/usr/bin/docker"];

impl DockerCli {
    /// The docker CLI named by `$MULTIARCH_DOCKER` (else `docker` on PATH).
    pub fn program(env: &Environment) -> String {
        env.non_empty("MULTIARCH_DOCKER")
            .unwrap_or("docker")
            .to_string()
    }

    /// Ask the CLI what it can do, and `alternatives` (other CLIs to suggest,
    /// [`ALTERNATIVE_DOCKERS`]) whether they have BuildKit built in.
    pub fn detect(env: &Environment, alternatives: &[&str]) -> DockerCli {
        let program = DockerCli::program(env);
        let buildx = answers(&program, &["buildx", "version"], env).is_some();
        let version = answers(&program, &["--version"], env).and_then(|o| client_version(&o));
        let alternative = alternatives
            .iter()
            .filter(|a| **a != program)
            .find_map(|a| {
                answers(a, &["--version"], env)
                    .and_then(|o| client_version(&o))
                    .filter(|v| builtin_buildkit(v))
                    .map(|v| (a.to_string(), v))
            });
        DockerCli {
            program,
            buildx,
            version,
            alternative,
        }
    }

    /// The builder of a run: `flag`, else `$MULTIARCH_BUILDER`, else the file's
    /// setting, resolved against the CLI (asked only when the engine is docker
    /// and the setting is not `classic`).
    pub fn resolve(
        flag: Option<BuilderSetting>,
        file: BuilderSetting,
        docker: bool,
        env: &Environment,
        alternatives: &[&str],
    ) -> Result<BuilderChoice, ContextError> {
        let from_env = match env.non_empty("MULTIARCH_BUILDER") {
            None => None,
            Some("auto") => Some(BuilderSetting::Auto),
            Some("buildkit") => Some(BuilderSetting::BuildKit),
            Some("classic") => Some(BuilderSetting::Classic),
            Some(v) => {
                return Err(ContextError::BadBuilder {
                    given: v.to_string(),
                })
            }
        };
        let setting = flag.or(from_env).unwrap_or(file);
        if !docker || setting == BuilderSetting::Classic {
            return Ok(BuilderChoice {
                mode: BuildMode::Classic,
                why: match docker {
                    true => "builder = \"classic\"".into(),
                    false => "podman builds with buildah".into(),
                },
                note: None,
            });
        }
        DockerCli::detect(env, alternatives)
            .choose(setting)
            .map_err(|message| ContextError::NoBuildKit { message })
    }

    /// The builder for `setting`, and why. `Err`: BuildKit was asked for and this
    /// CLI cannot build with it (the message says what to install).
    pub fn choose(&self, setting: BuilderSetting) -> Result<BuilderChoice, String> {
        let cli = match &self.version {
            Some(v) => format!("{} {v}", self.program),
            None => self.program.clone(),
        };
        if setting == BuilderSetting::Classic {
            return Ok(BuilderChoice {
                mode: BuildMode::Classic,
                why: "builder = \"classic\"".into(),
                note: None,
            });
        }
        if self.buildx {
            return Ok(BuilderChoice {
                mode: BuildMode::Buildx,
                why: format!("{cli} has the buildx plugin"),
                note: None,
            });
        }
        // A CLI whose version cannot be read is taken at its word when BuildKit is
        // asked for explicitly: the build then says what is missing.
        let builtin = self.version.as_deref().map(builtin_buildkit);
        match (setting, builtin) {
            (_, Some(true)) | (BuilderSetting::BuildKit, None) => Ok(BuilderChoice {
                mode: BuildMode::BuildKit,
                why: format!("{cli} has BuildKit built in (a CLI before 23.0)"),
                note: None,
            }),
            (BuilderSetting::BuildKit, Some(false)) => Err(format!(
                "builder = \"buildkit\", but {cli} has no buildx plugin (from 23.0 on, BuildKit needs it); {}",
                self.install_hint()
            )),
            _ => {
                let why = match &self.version {
                    Some(_) => format!("{cli} has no buildx plugin (from 23.0 on, BuildKit needs it)"),
                    None => format!("{cli} did not answer `--version`"),
                };
                Ok(BuilderChoice {
                    mode: BuildMode::Classic,
                    note: Some(format!(
                        "building with the classic builder: {why}; {}",
                        self.install_hint()
                    )),
                    why,
                })
            }
        }
    }

    fn install_hint(&self) -> String {
        match &self.alternative {
            Some((path, v)) => format!(
                "install the buildx plugin (docker-buildx-plugin), or use {path} ({v}, BuildKit built in): MULTIARCH_DOCKER={path}"
            ),
            None => "install the buildx plugin (docker-buildx-plugin), or point MULTIARCH_DOCKER at a docker CLI with BuildKit".into(),
        }
    }
}

/// The builder a run uses, and why (for `plan`, `doctor` and the run's note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderChoice {
    pub mode: BuildMode,
    pub why: String,
    /// Said once per run: `auto` fell back to the classic builder.
    pub note: Option<String>,
}

impl Default for BuilderChoice {
    fn default() -> Self {
        BuilderChoice {
            mode: BuildMode::Classic,
            why: "the default".into(),
            note: None,
        }
    }
}

/// Stdout of `program args…` when it exits 0 within a few seconds.
fn answers(program: &str, args: &[&str], env: &Environment) -> Option<String> {
    let mut cmd = duct::cmd(program, args).env("DOCKER_CLI_HINTS", "false");
    // The given environment's PATH (a test's fake docker) finds the program.
    if let Some(path) = env.get("PATH") {
        cmd = cmd.env("PATH", path);
    }
    let handle = cmd
        .stdin_null()
        .stderr_null()
        .stdout_capture()
        .unchecked()
        .start()
        .ok()?;
    match handle.wait_timeout(std::time::Duration::from_secs(10)) {
        Ok(Some(out)) if out.status.success() => {
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(None) => {
            let _ = handle.kill();
            None
        }
        _ => None,
    }
}

/// `Docker version 20.10.24+dfsg1, build 297e128` → `20.10.24+dfsg1`.
fn client_version(out: &str) -> Option<String> {
    let v = out.split_whitespace().nth(2)?.trim_end_matches(',');
    v.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// Whether a client of this version builds with BuildKit under
/// `DOCKER_BUILDKIT=1` without the buildx plugin (18.09 to 22.x).
fn builtin_buildkit(version: &str) -> bool {
    let mut parts = version.split(['.', '+', '-']);
    let major: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    (major, minor) >= (18, 9) && major < 23
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(buildx: bool, version: Option<&str>) -> DockerCli {
        DockerCli {
            program: "docker".into(),
            buildx,
            version: version.map(String::from),
            alternative: Some(("/usr/bin/docker".into(), "20.10.24+dfsg1".into())),
        }
    }

    #[test]
    fn versions_are_read_from_docker_version() {
        assert_eq!(
            client_version("Docker version 20.10.24+dfsg1, build 297e128\n").as_deref(),
            Some("20.10.24+dfsg1")
        );
        assert_eq!(
            client_version("podman version 4.3.1").as_deref(),
            Some("4.3.1")
        );
        assert_eq!(client_version("nonsense"), None);
        assert!(builtin_buildkit("20.10.24+dfsg1"));
        assert!(builtin_buildkit("18.09.1"));
        assert!(!builtin_buildkit("18.06.0"));
        assert!(!builtin_buildkit("28.2.2"));
    }

    #[test]
    fn auto_prefers_buildx_then_builtin_buildkit_then_classic_with_a_note() {
        let c = cli(true, Some("28.2.2"))
            .choose(BuilderSetting::Auto)
            .unwrap();
        assert_eq!(c.mode, BuildMode::Buildx);
        let c = cli(false, Some("20.10.24"))
            .choose(BuilderSetting::Auto)
            .unwrap();
        assert_eq!((c.mode, c.note), (BuildMode::BuildKit, None));
        let c = cli(false, Some("28.2.2"))
            .choose(BuilderSetting::Auto)
            .unwrap();
        assert_eq!(c.mode, BuildMode::Classic);
        let note = c.note.unwrap();
        assert!(
            note.contains("docker 28.2.2 has no buildx plugin"),
            "{note}"
        );
        assert!(note.contains("MULTIARCH_DOCKER=/usr/bin/docker"), "{note}");
    }

    #[test]
    fn buildkit_asked_for_on_a_cli_without_it_is_an_error() {
        let e = cli(false, Some("28.2.2"))
            .choose(BuilderSetting::BuildKit)
            .unwrap_err();
        assert!(e.contains("no buildx plugin"), "{e}");
        let c = cli(false, None).choose(BuilderSetting::BuildKit).unwrap();
        assert_eq!(c.mode, BuildMode::BuildKit);
        let c = cli(true, Some("28.2.2"))
            .choose(BuilderSetting::Classic)
            .unwrap();
        assert_eq!(c.mode, BuildMode::Classic);
    }
}
