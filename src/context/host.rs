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
    /// Other CLIs to suggest when this one cannot build with BuildKit
    /// ([`ALTERNATIVE_DOCKERS`]). Each is asked whether it has BuildKit built in
    /// only when a hint that would name it is written
    /// ([`DockerCli::alternative`]): most runs never say one.
    pub alternatives: Vec<String>,
    /// The `PATH` the probes ran with (a test's fake docker).
    pub path: Option<String>,
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

    /// Ask the CLI what it can do. The two probes run at once: each is a
    /// docker CLI start (20–40 ms), and `plan` waits for them. `alternatives`
    /// (other CLIs to suggest, [`ALTERNATIVE_DOCKERS`]) are only kept: they are
    /// asked when a hint names one.
    pub fn detect(env: &Environment, alternatives: &[&str]) -> DockerCli {
        let program = DockerCli::program(env);
        let path = env.get("PATH").map(str::to_string);
        let (buildx, version) = std::thread::scope(|scope| {
            let buildx = scope
                .spawn(|| answers(&program, &["buildx", "version"], path.as_deref()).is_some());
            let version = scope.spawn(|| {
                answers(&program, &["--version"], path.as_deref()).and_then(|o| client_version(&o))
            });
            // A probe cannot panic but through a bug: then it answered nothing.
            (
                buildx.join().unwrap_or(false),
                version.join().unwrap_or(None),
            )
        });
        DockerCli {
            alternatives: alternatives
                .iter()
                .filter(|a| **a != program)
                .map(|a| a.to_string())
                .collect(),
            program,
            buildx,
            version,
            path,
        }
    }

    /// The first of the other CLIs that has BuildKit built in (Debian's
    /// docker.io installs one at /usr/bin/docker), and its version: one docker
    /// CLI start each, asked now.
    pub fn alternative(&self) -> Option<(String, String)> {
        self.alternatives.iter().find_map(|a| {
            answers(a, &["--version"], self.path.as_deref())
                .and_then(|o| client_version(&o))
                .filter(|v| builtin_buildkit(v))
                .map(|v| (a.clone(), v))
        })
    }

    /// Start [`DockerCli::detect`] on a thread, for a caller that has other
    /// work first (loading the file); [`Detecting::wait`] gives the answer.
    pub fn detect_in_background(env: &Environment, alternatives: &[&str]) -> Detecting {
        let env = env.clone();
        let alternatives: Vec<String> = alternatives.iter().map(|a| a.to_string()).collect();
        Detecting(std::thread::spawn(move || {
            let alternatives: Vec<&str> = alternatives.iter().map(String::as_str).collect();
            DockerCli::detect(&env, &alternatives)
        }))
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
        DockerCli::resolve_with(flag, file, docker, env, || {
            DockerCli::detect(env, alternatives)
        })
    }

    /// [`DockerCli::resolve`] with the CLI's answers from `detect`, called only
    /// when they are needed.
    pub fn resolve_with(
        flag: Option<BuilderSetting>,
        file: BuilderSetting,
        docker: bool,
        env: &Environment,
        detect: impl FnOnce() -> DockerCli,
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
        detect()
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
                    note: Some(Fallback { cli: self.clone() }),
                    why,
                })
            }
        }
    }

    /// What to install, or which other CLI to use, for BuildKit.
    fn install_hint(&self) -> String {
        match self.alternative() {
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
    pub note: Option<Fallback>,
}

impl BuilderChoice {
    /// The note a run says when `auto` fell back to the classic builder: why
    /// ([`BuilderChoice::why`]), and [`Fallback::fix`].
    pub fn note_text(&self) -> Option<String> {
        let fallback = self.note.as_ref()?;
        Some(format!(
            "building with the classic builder: {}; {}",
            self.why,
            fallback.fix()
        ))
    }
}

/// `auto` fell back to the classic builder: the CLI that could not build with
/// BuildKit. What to install or use instead may ask another CLI
/// ([`DockerCli::alternative`]): that is done when the text is written (a run
/// says it; `plan` does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub cli: DockerCli,
}

impl Fallback {
    /// What to do for BuildKit: install the buildx plugin, or use another CLI.
    pub fn fix(&self) -> String {
        self.cli.install_hint()
    }
}

/// A [`DockerCli::detect`] running on its own thread.
pub struct Detecting(std::thread::JoinHandle<DockerCli>);

impl Detecting {
    /// The answers; a probe thread that died answers as a CLI that is not there.
    pub fn wait(self, env: &Environment) -> DockerCli {
        self.0.join().unwrap_or_else(|_| DockerCli {
            program: DockerCli::program(env),
            ..DockerCli::default()
        })
    }
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
fn answers(program: &str, args: &[&str], path: Option<&str>) -> Option<String> {
    let mut cmd = duct::cmd(program, args).env("DOCKER_CLI_HINTS", "false");
    // The given environment's PATH (a test's fake docker) finds the program.
    if let Some(path) = path {
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
            alternatives: Vec::new(),
            path: None,
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

    /// A docker CLI 20.10 that writes a line to `asked` each time it is run.
    fn fake_builtin_docker(dir: &std::path::Path) -> (String, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let asked = dir.join("asked");
        let cli = dir.join("docker");
        std::fs::write(
            &cli,
            format!(
                "#!/bin/sh\necho run >> '{}'\necho 'Docker version 20.10.24+dfsg1, build 297e128'\n",
                asked.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
        (cli.display().to_string(), asked)
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
        let dir = tempfile::tempdir().unwrap();
        let (other, asked) = fake_builtin_docker(dir.path());
        let mut docker = cli(false, Some("28.2.2"));
        docker.alternatives = vec![other.clone()];
        let c = docker.choose(BuilderSetting::Auto).unwrap();
        assert_eq!(c.mode, BuildMode::Classic);
        assert!(
            !asked.exists(),
            "the other CLI is asked only when the note is written"
        );
        let note = c.note_text().unwrap();
        assert!(
            note.contains("docker 28.2.2 has no buildx plugin"),
            "{note}"
        );
        assert!(
            note.contains(&format!(
                "use {other} (20.10.24+dfsg1, BuildKit built in): MULTIARCH_DOCKER={other}"
            )),
            "{note}"
        );
        assert_eq!(std::fs::read_to_string(&asked).unwrap(), "run\n");
        // Without another CLI with BuildKit, the note says what to install.
        let c = cli(false, Some("28.2.2"))
            .choose(BuilderSetting::Auto)
            .unwrap();
        let note = c.note_text().unwrap();
        assert!(
            note.ends_with("point MULTIARCH_DOCKER at a docker CLI with BuildKit"),
            "{note}"
        );
    }

    #[test]
    fn buildkit_asked_for_on_a_cli_without_it_is_an_error() {
        let e = cli(false, Some("28.2.2"))
            .choose(BuilderSetting::BuildKit)
            .unwrap_err();
        assert!(e.contains("no buildx plugin"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let (other, _) = fake_builtin_docker(dir.path());
        let mut docker = cli(false, Some("28.2.2"));
        docker.alternatives = vec![other.clone()];
        let e = docker.choose(BuilderSetting::BuildKit).unwrap_err();
        assert!(e.contains(&format!("MULTIARCH_DOCKER={other}")), "{e}");
        let c = cli(false, None).choose(BuilderSetting::BuildKit).unwrap();
        assert_eq!(c.mode, BuildMode::BuildKit);
        let c = cli(true, Some("28.2.2"))
            .choose(BuilderSetting::Classic)
            .unwrap();
        assert_eq!(c.mode, BuildMode::Classic);
    }
}
