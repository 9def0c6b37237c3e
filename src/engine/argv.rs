//! The argv of every engine command multiarch runs. Pure functions: the plan shows
//! exactly these, and the runner executes exactly these. Nothing goes through a
//! shell. Each function asks the target's [`Engine`](super::Engine) for its shape.

use super::{engine, Engine};
use crate::spec::{BuildMode, Builder, EngineKind, Platform, SecretSource};

/// Shown in the plan where a command writes a digest to a file made at run time.
pub const DIGEST_FILE: &str = "<digest file>";

/// Which engine, and which daemon of it, runs a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineTarget {
    pub kind: EngineKind,
    /// A native builder (remote daemon or docker context); `None`: the local engine.
    pub builder: Option<Builder>,
}

impl EngineTarget {
    pub fn local(kind: EngineKind) -> Self {
        EngineTarget {
            kind,
            builder: None,
        }
    }

    pub fn engine(&self) -> &'static dyn Engine {
        engine(self.kind)
    }

    /// `docker [--host H | --context C]`, `podman [--url U | --connection C]`.
    pub fn base(&self) -> Vec<String> {
        self.engine().base(self.builder.as_ref())
    }
}

/// Everything `build` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArgs {
    pub arch_arg: (String, String),
    pub platform: Platform,
    pub reference: std::sync::Arc<str>,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    pub cache_from: Vec<String>,
    pub dockerfile: String,
    pub context: String,
    /// `--no-cache`: rebuild every layer.
    pub no_cache: bool,
    /// `--pull`: fetch newer base images before building.
    pub pull: bool,
    /// The docker builder (podman builds with buildah whatever this says).
    pub mode: BuildMode,
    /// `--secret id=ID,src=FILE` for each; in the plan the file is
    /// [`secret_file`]`(ID)`, written only while the step runs.
    pub secrets: Vec<SecretMount>,
    /// The image is pushed: BuildKit writes inline cache metadata into it, so
    /// that `cache_from` can reuse its layers on another machine.
    pub inline_cache: bool,
}

#[cfg(test)]
impl BuildArgs {
    /// A build of `reference` for `platform` with `ARCH=arch`, from ./Dockerfile,
    /// with one secret `npm` (from `$NPM_TOKEN`) mounted from `src`: what the
    /// engines' and exec's tests start from.
    pub(crate) fn example(arch: &str, platform: &str, reference: &str, src: &str) -> BuildArgs {
        BuildArgs {
            arch_arg: ("ARCH".into(), arch.into()),
            platform: Platform::parse(platform).expect("a valid platform"),
            reference: reference.into(),
            build_args: Vec::new(),
            labels: Vec::new(),
            target: None,
            cache_from: Vec::new(),
            dockerfile: "Dockerfile".into(),
            context: ".".into(),
            no_cache: false,
            pull: false,
            mode: BuildMode::Classic,
            secrets: vec![SecretMount {
                id: "npm".into(),
                src: src.into(),
                from: crate::spec::SecretSource::Env("NPM_TOKEN".into()),
            }],
            inline_cache: false,
        }
    }
}

/// A build secret as the build command names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub id: String,
    pub src: String,
    /// Where the runner reads the value (never part of an argv).
    pub from: SecretSource,
}

/// Shown in the plan where a secret's file is made at run time.
pub fn secret_file(id: &str) -> String {
    format!("<file of secret {id}>")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    Never,
    Always,
}

impl Pull {
    pub fn as_str(self) -> &'static str {
        match self {
            Pull::Never => "never",
            Pull::Always => "always",
        }
    }
}

/// `build --build-arg ARCH=<arch> --platform <p> -t <ref> [--build-arg K=V]…
/// [--label K=V]… [--target T] [--cache-from R]… -f <dockerfile> --network host
/// <context>`: the same flags for docker and podman.
pub fn build_flags(base: Vec<String>, a: &BuildArgs) -> Vec<String> {
    fn pair(v: &mut Vec<String>, flag: &str, k: &str, val: &str) {
        v.push(flag.to_string());
        // Concatenated, not formatted: a plan's JSON derives ~100,000 of these.
        v.push([k, "=", val].concat());
    }
    let mut v = base;
    v.push("build".into());
    if a.no_cache {
        v.push("--no-cache".into());
    }
    if a.pull {
        v.push("--pull".into());
    }
    pair(&mut v, "--build-arg", &a.arch_arg.0, &a.arch_arg.1);
    v.push("--platform".into());
    v.push(a.platform.to_string());
    v.push("-t".into());
    v.push(a.reference.to_string());
    for (k, val) in &a.build_args {
        pair(&mut v, "--build-arg", k, val);
    }
    for (k, val) in &a.labels {
        pair(&mut v, "--label", k, val);
    }
    if let Some(target) = &a.target {
        v.push("--target".into());
        v.push(target.clone());
    }
    for c in &a.cache_from {
        v.push("--cache-from".into());
        v.push(c.clone());
    }
    for s in &a.secrets {
        v.push("--secret".into());
        v.push(format!("id={},src={}", s.id, s.src));
    }
    v.push("-f".into());
    v.push(a.dockerfile.clone());
    v.push("--network".into());
    v.push("host".into());
    v.push(a.context.clone());
    v
}

/// What a container of a test or verify step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCommand<'a> {
    pub command: &'a [String],
    /// Pass `command` to the image's ENTRYPOINT as arguments; otherwise the
    /// ENTRYPOINT is replaced by the command's first word.
    pub keep_entrypoint: bool,
}

/// The label every container multiarch starts carries: the run's id, so what a
/// timeout, a cancellation or a killed CLI leaves is found and removed.
pub const RUN_LABEL: &str = "multiarch.run";
/// And the step's id, so a step's own container is found.
pub const STEP_LABEL: &str = "multiarch.step";
/// In a planned command, the run's id (known when it runs).
pub const RUN_ID: &str = "<run-id>";
/// In a planned command, the step's id (filled in when it runs).
pub const STEP_ID: &str = "<step-id>";

/// `--label multiarch.run=<run-id> --label multiarch.step=<step-id>`.
pub fn container_labels() -> [String; 4] {
    [
        "--label".into(),
        [RUN_LABEL, "=", RUN_ID].concat(),
        "--label".into(),
        [STEP_LABEL, "=", STEP_ID].concat(),
    ]
}

/// A planned command as it runs: the run's and the step's id in its labels.
pub fn with_ids(argv: &[String], run: &str, step: &str) -> Vec<String> {
    let (run_label, step_label) = (
        format!("{RUN_LABEL}={RUN_ID}"),
        format!("{STEP_LABEL}={STEP_ID}"),
    );
    argv.iter()
        .map(|a| {
            if *a == run_label {
                format!("{RUN_LABEL}={run}")
            } else if *a == step_label {
                format!("{STEP_LABEL}={step}")
            } else {
                a.clone()
            }
        })
        .collect()
}

/// `run --rm --network none --platform P --pull never|always --label … --label …
/// [--entrypoint CMD0] REF ARGS…`: the same flags for docker and podman. Replacing the ENTRYPOINT
/// makes a check such as `uname -m` work on images whose ENTRYPOINT is a server
/// that refuses unknown arguments.
pub fn run_flags(
    base: Vec<String>,
    reference: &str,
    platform: &Platform,
    pull: Pull,
    run: RunCommand<'_>,
) -> Vec<String> {
    let mut v = base;
    v.extend(["run", "--rm", "--network", "none", "--platform"].map(String::from));
    v.push(platform.to_string());
    v.push("--pull".into());
    v.push(pull.as_str().into());
    v.extend(container_labels());
    let args = match (run.keep_entrypoint, run.command.split_first()) {
        (false, Some((first, rest))) => {
            v.push("--entrypoint".into());
            v.push(first.clone());
            rest
        }
        _ => run.command,
    };
    v.push(reference.to_string());
    v.extend(args.iter().cloned());
    v
}

/// The push as the plan shows it (a digest file appears as [`DIGEST_FILE`]).
pub fn push(t: &EngineTarget, reference: &str) -> Vec<String> {
    t.engine().push(t, reference, DIGEST_FILE)
}

/// Registers qemu's binfmt handlers through the engine (hosts without update-binfmts).
pub fn qemu_register(kind: EngineKind) -> Vec<String> {
    engine(kind).qemu_register()
}
