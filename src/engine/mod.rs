//! Container engines: one trait, [`Engine`], and two implementations, [`Docker`]
//! and [`Podman`].
//!
//! An engine is pure: it builds the argv of every command (the plan shows exactly
//! these, and the runner runs exactly these), including the probes that preflight
//! and doctor run, and reads what the engine printed ([`answers`]). It runs
//! nothing and reads no file: running the commands — gating, retries, digests,
//! verify, events — is `exec`'s, shared by both engines. Lists are no engine's:
//! multiarch makes them over the registry's API (`registry`). What only one
//! engine needs stays inside it: podman's `--digestfile`, registries.conf and
//! containers.conf (as text; exec reads and writes the files).

pub mod answers;
pub mod argv;
pub mod docker;
pub mod podman;

use std::path::PathBuf;

pub use answers::find_digest;
pub use argv::{secret_file, BuildArgs, EngineTarget, Pull, RunCommand, SecretMount};
pub use docker::Docker;
pub use podman::Podman;

use crate::environment::Environment;
use crate::spec::{Builder, EngineKind, Platform};

/// The implementation of an engine kind.
pub fn engine(kind: EngineKind) -> &'static dyn Engine {
    match kind {
        EngineKind::Docker => &Docker,
        EngineKind::Podman => &Podman,
    }
}

/// The configuration files an engine's run-wide preparation starts from; exec
/// reads them and hands their text to [`Engine::prepare`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// The registries.conf candidates, first readable one wins.
    pub registries: Vec<PathBuf>,
    /// The containers.conf layers, in order…
    pub containers: Vec<PathBuf>,
    /// …followed by the `*.conf` drop-ins of these directories, sorted by name.
    pub containers_dirs: Vec<PathBuf>,
}

/// What [`Engine::prepare`] is given: the facts exec read.
#[derive(Debug, Clone, Default)]
pub struct SessionInputs<'a> {
    /// The registries reached without TLS.
    pub plain_http: &'a [String],
    /// The first registries.conf that could be read, and its text.
    pub registries_conf: Option<(PathBuf, String)>,
    /// The containers.conf layers that could be read, in order.
    pub containers_conf: Vec<String>,
    /// Why rootful podman's default `RLIMIT_NOFILE` cannot be set here, if so.
    pub rlimit_problem: Option<String>,
}

/// The run-wide preparation of an engine: environment for every command, and
/// files to write for the run (each one's path goes into its variable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preparation {
    pub env: Vec<(String, String)>,
    pub files: Vec<SessionFile>,
    /// What the preparation changed, for the person running multiarch.
    pub notes: Vec<String>,
}

/// A file of the run's preparation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFile {
    pub name: &'static str,
    pub text: String,
    /// The variable that gets the file's path.
    pub env_var: &'static str,
    /// What to tell the person running multiarch about it.
    pub note: FileNote,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileNote {
    None,
    /// containers.conf without default rlimits, and why.
    NoDefaultUlimits {
        why: String,
    },
}

impl SessionFile {
    /// The note about this file once it is written at `path`.
    pub fn note(&self, path: &std::path::Path) -> Option<String> {
        match &self.note {
            FileNote::None => None,
            FileNote::NoDefaultUlimits { why } => Some(format!(
                "{why}: podman runs with containers.conf `default_ulimits = []` ({}), so containers inherit podman's own limits",
                path.display()
            )),
        }
    }
}

/// `image inspect --format FORMAT REF` on `t`'s daemon.
pub fn image_inspect(t: &EngineTarget, format: &str, reference: &str) -> Vec<String> {
    let mut v = t.base();
    v.extend(["image", "inspect", "--format", format, reference].map(String::from));
    v
}

/// An engine's command line: the program, and its flags that choose a daemon by
/// address and by name (`docker --host H` / `--context C`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineCli {
    pub kind: EngineKind,
    pub program: &'static str,
    pub host_flag: &'static str,
    pub context_flag: &'static str,
}

/// The argv of every command multiarch runs, and how to read the answers.
/// `t` names the engine's daemon (the local one, or a native builder).
pub trait Engine: std::fmt::Debug + Sync {
    /// Which engine, its program and the flags that choose its daemon.
    fn cli(&self) -> EngineCli;

    fn kind(&self) -> EngineKind {
        self.cli().kind
    }

    fn program(&self) -> &'static str {
        self.cli().program
    }

    /// The program and the flags that choose its daemon (`docker --host H`).
    fn base(&self, builder: Option<&Builder>) -> Vec<String> {
        let mut v = vec![self.program().to_string()];
        match builder {
            Some(Builder::Host(h)) => v.extend([self.cli().host_flag.to_string(), h.clone()]),
            Some(Builder::Context(c)) => v.extend([self.cli().context_flag.to_string(), c.clone()]),
            None => {}
        }
        v
    }

    /// The local daemon's program and flags.
    fn local(&self) -> Vec<String> {
        self.base(None)
    }

    /// Environment every command of this engine gets.
    fn env(&self) -> Vec<(String, String)>;

    /// The configuration files [`Engine::prepare`] starts from (none by default).
    fn config_sources(&self, _env: &Environment) -> ConfigSources {
        ConfigSources::default()
    }

    /// Run-wide preparation, from what exec read of [`Engine::config_sources`].
    /// An error is a message about a configuration file that cannot be used.
    fn prepare(&self, _inputs: &SessionInputs<'_>) -> Result<Preparation, String> {
        Ok(Preparation {
            env: self.env(),
            ..Preparation::default()
        })
    }

    /// Prints the daemon's version: answers when the daemon is up.
    fn probe_server(&self, t: &EngineTarget) -> Vec<String> {
        let mut v = t.base();
        v.extend(["version", "--format", "{{.Server.Version}}"].map(String::from));
        v
    }

    /// Prints the client's version.
    fn probe_client(&self, t: &EngineTarget) -> Vec<String> {
        let mut v = t.base();
        v.extend(["version", "--format", "{{.Client.Version}}"].map(String::from));
        v
    }

    /// Succeeds when `reference` is an image of `t`'s daemon.
    fn image_exists(&self, t: &EngineTarget, reference: &str) -> Vec<String> {
        image_inspect(t, "{{.Id}}", reference)
    }

    /// `build --build-arg ARCH=…`: the same flags for docker and podman.
    fn build(&self, t: &EngineTarget, a: &BuildArgs) -> Vec<String> {
        argv::build_flags(t.base(), a)
    }

    /// Environment of the build command alone, over [`Engine::env`] (docker's
    /// BuildKit without buildx: `DOCKER_BUILDKIT=1`).
    fn build_env(&self, _a: &BuildArgs) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Prints `os/arch[/variant]` of a local image.
    fn inspect_platform(&self, t: &EngineTarget, reference: &str) -> Vec<String>;

    /// `run --rm --network none --platform P …`: the same flags for docker and podman.
    fn run(
        &self,
        t: &EngineTarget,
        reference: &str,
        platform: &Platform,
        pull: Pull,
        command: RunCommand<'_>,
    ) -> Vec<String> {
        argv::run_flags(t.base(), reference, platform, pull, command)
    }

    /// The ids of the containers (running or not) with every one of `labels`
    /// (`key=value`).
    fn labelled_containers(&self, t: &EngineTarget, labels: &[String]) -> Vec<String> {
        let mut v = t.base();
        v.extend(["ps", "--all", "--quiet"].map(String::from));
        for l in labels {
            v.push("--filter".into());
            v.push(format!("label={l}"));
        }
        v
    }

    /// Removes containers, running or not.
    fn remove_containers(&self, t: &EngineTarget, ids: &[String]) -> Vec<String> {
        let mut v = t.base();
        v.extend(["rm", "--force"].map(String::from));
        v.extend(ids.iter().cloned());
        v
    }

    /// Pushes a per-arch image. An engine that writes the pushed digest to a file
    /// writes it to `digest_file`.
    fn push(&self, t: &EngineTarget, reference: &str, digest_file: &str) -> Vec<String>;

    /// The digest a push (of an image or a list) sent: from its output, or from the
    /// digest file's contents.
    fn pushed_digest(&self, output: &[String], digest_file: Option<&str>) -> Option<String>;

    /// Prints the local image's repository digests as a JSON array (a fallback when
    /// a push's digest cannot be read).
    fn repo_digests(&self, t: &EngineTarget, reference: &str) -> Vec<String> {
        image_inspect(t, "{{json .RepoDigests}}", reference)
    }

    /// `login --username U --password-stdin REGISTRY`: the secret goes to stdin.
    fn login(&self, t: &EngineTarget, registry: &str, user: &str) -> Vec<String> {
        let mut v = t.base();
        v.extend(["login", "--username", user, "--password-stdin", registry].map(String::from));
        v
    }

    /// Registers qemu's binfmt handlers, for hosts without `update-binfmts`.
    fn qemu_register(&self) -> Vec<String>;
}
