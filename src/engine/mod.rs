//! Container engines: one trait, [`Engine`], and two implementations, [`Docker`]
//! and [`Podman`].
//!
//! An engine is pure: it builds the argv of every command (the plan shows exactly
//! these, and the runner runs exactly these) and reads what the engine printed.
//! Running the commands — gating, retries, digests, verify, events — is shared by
//! both engines in [`runner::EngineRunner`]. What only one engine needs stays
//! inside it: docker's local manifest cache and `--insecure` flags, podman's
//! `--digestfile`, registries.conf and containers.conf.

pub mod argv;
pub mod docker;
pub mod podman;
pub mod runner;
pub mod session;

pub use argv::{BuildArgs, EngineTarget, Pull, RunCommand};
pub use docker::Docker;
pub use podman::Podman;
pub use runner::EngineRunner;
pub use session::Session;

use crate::environment::Environment;
use crate::error::Error;
use crate::exec::process::Finished;
use crate::spec::{Builder, EngineKind, Platform};

/// The implementation of an engine kind.
pub fn engine(kind: EngineKind) -> &'static dyn Engine {
    match kind {
        EngineKind::Docker => &Docker,
        EngineKind::Podman => &Podman,
    }
}

/// One entry of a list to assemble: `repo@sha256:…` and its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    pub reference: String,
    pub platform: Platform,
}

/// How to ask the registry for the digest of a single-image reference without
/// pulling it: commands run in order (the first failure means the registry does not
/// have it), then the cleanup commands, whatever happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub commands: Vec<Vec<String>>,
    /// Index of the command whose stdout holds the answer.
    pub answer: usize,
    pub cleanup: Vec<Vec<String>>,
}

/// The argv of every command multiarch runs, and how to read the answers.
/// `t` names the engine's daemon (the local one, or a native builder).
pub trait Engine: std::fmt::Debug + Sync {
    fn kind(&self) -> EngineKind;

    /// The program and the flags that choose its daemon (`docker --host H`).
    fn base(&self, builder: Option<&Builder>) -> Vec<String>;

    /// Environment every command of this engine gets.
    fn env(&self) -> Vec<(String, String)>;

    /// Run-wide preparation: files and environment the commands need, removed when
    /// the session is dropped. `plain_http` are the registries reached without TLS.
    fn session(&self, env: &Environment, plain_http: &[String]) -> Result<Session, Error>;

    fn build(&self, t: &EngineTarget, a: &BuildArgs) -> Vec<String>;

    /// Prints `os/arch[/variant]` of a local image.
    fn inspect_platform(&self, t: &EngineTarget, reference: &str) -> Vec<String>;

    fn run(
        &self,
        t: &EngineTarget,
        reference: &str,
        platform: &Platform,
        pull: Pull,
        command: RunCommand<'_>,
    ) -> Vec<String>;

    /// Pushes a per-arch image. An engine that writes the pushed digest to a file
    /// writes it to `digest_file`.
    fn push(&self, t: &EngineTarget, reference: &str, digest_file: &str) -> Vec<String>;

    /// The digest a push (of an image or a list) sent: from its output, or from the
    /// digest file's contents.
    fn pushed_digest(&self, output: &[String], digest_file: Option<&str>) -> Option<String>;

    /// Prints the local image's repository digests as a JSON array (a fallback when
    /// a push's digest cannot be read).
    fn repo_digests(&self, t: &EngineTarget, reference: &str) -> Vec<String> {
        let mut v = t.base();
        v.extend(
            [
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                reference,
            ]
            .map(String::from),
        );
        v
    }

    /// The commands that assemble the local list `list` from `items`. The first
    /// removes a list left by an earlier run, and may fail (there is none).
    fn manifest_create(&self, list: &str, items: &[ListItem], insecure: bool) -> Vec<Vec<String>>;

    /// Pushes the local list `list` to the registry under the same name.
    fn manifest_push(&self, list: &str, insecure: bool, digest_file: &str) -> Vec<String>;

    /// Prints the list the registry serves as `reference`: JSON with
    /// `manifests[].digest` and `manifests[].platform`. Fails when it is missing.
    fn manifest_inspect(&self, reference: &str, insecure: bool) -> Vec<String>;

    /// How to read the digest of a single-image `reference` from the registry.
    fn lookup(&self, reference: &str, insecure: bool) -> Lookup;

    /// The digest in the answer of a [`Lookup`].
    fn lookup_digest(&self, stdout: &str) -> Option<String>;

    /// `login --username U --password-stdin REGISTRY`: the secret goes to stdin.
    fn login(&self, t: &EngineTarget, registry: &str, user: &str) -> Vec<String> {
        let mut v = t.base();
        v.extend(["login", "--username", user, "--password-stdin", registry].map(String::from));
        v
    }

    /// Registers qemu's binfmt handlers, for hosts without `update-binfmts`.
    fn qemu_register(&self) -> Vec<String>;
}

/// Run a [`Lookup`] with `run`: the digest, or the failed command's output.
pub fn registry_digest(
    engine: &dyn Engine,
    reference: &str,
    insecure: bool,
    run: &mut dyn FnMut(Vec<String>) -> Finished,
) -> Result<String, Finished> {
    let lookup = engine.lookup(reference, insecure);
    let mut result = None;
    for (i, argv) in lookup.commands.into_iter().enumerate() {
        let f = run(argv);
        if !f.exit.success() {
            result = Some(Err(f));
            break;
        }
        if i == lookup.answer {
            let digest = engine.lookup_digest(&f.stdout.join("\n"));
            result = Some(digest.ok_or(f));
            break;
        }
    }
    for argv in lookup.cleanup {
        let _ = run(argv);
    }
    result.unwrap_or_else(|| {
        Err(Finished {
            exit: crate::exec::process::Exit::Code(-1),
            stdout: Vec::new(),
            stderr: vec![format!("no answer about {reference}")],
            duration: std::time::Duration::ZERO,
        })
    })
}

/// `sha256:<64 hex>` in a line of output.
pub fn find_digest(line: &str) -> Option<String> {
    let i = line.find("sha256:")?;
    let hex: String = line[i + 7..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (hex.len() == 64).then(|| format!("sha256:{hex}"))
}
