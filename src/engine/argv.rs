//! The argv of every engine command multiarch runs. Pure functions: the plan shows
//! exactly these, and the runner executes exactly these. Nothing goes through a shell.

use crate::spec::{Builder, EngineKind, Platform};

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

    /// `docker [--host H | --context C]`.
    pub fn base(&self) -> Vec<String> {
        let mut v = vec![self.kind.program().to_string()];
        match (&self.builder, self.kind) {
            (Some(Builder::Host(h)), EngineKind::Docker) => {
                v.push("--host".into());
                v.push(h.clone());
            }
            (Some(Builder::Context(c)), EngineKind::Docker) => {
                v.push("--context".into());
                v.push(c.clone());
            }
            (Some(Builder::Host(h)), EngineKind::Podman) => {
                v.push("--url".into());
                v.push(h.clone());
            }
            (Some(Builder::Context(c)), EngineKind::Podman) => {
                v.push("--connection".into());
                v.push(c.clone());
            }
            (None, _) => {}
        }
        v
    }
}

/// Everything `build` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArgs {
    pub arch_arg: (String, String),
    pub platform: Platform,
    pub reference: String,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    pub cache_from: Vec<String>,
    pub dockerfile: String,
    pub context: String,
    /// `--no-cache`: rebuild every layer.
    pub no_cache: bool,
}

fn push_pair(v: &mut Vec<String>, flag: &str, k: &str, val: &str) {
    v.push(flag.to_string());
    v.push(format!("{k}={val}"));
}

/// `docker build --build-arg ARCH=<arch> --platform <p> -t <ref> [--build-arg K=V]…
/// [--label K=V]… [--target T] [--cache-from R]… -f <dockerfile> --network host <context>`
pub fn build(t: &EngineTarget, a: &BuildArgs) -> Vec<String> {
    let mut v = t.base();
    v.push("build".into());
    if a.no_cache {
        v.push("--no-cache".into());
    }
    push_pair(&mut v, "--build-arg", &a.arch_arg.0, &a.arch_arg.1);
    v.push("--platform".into());
    v.push(a.platform.to_string());
    v.push("-t".into());
    v.push(a.reference.clone());
    for (k, val) in &a.build_args {
        push_pair(&mut v, "--build-arg", k, val);
    }
    for (k, val) in &a.labels {
        push_pair(&mut v, "--label", k, val);
    }
    if let Some(target) = &a.target {
        v.push("--target".into());
        v.push(target.clone());
    }
    for c in &a.cache_from {
        v.push("--cache-from".into());
        v.push(c.clone());
    }
    v.push("-f".into());
    v.push(a.dockerfile.clone());
    v.push("--network".into());
    v.push("host".into());
    v.push(a.context.clone());
    v
}

/// `docker image inspect --format …` printing `os/arch/variant` of a local image.
pub fn inspect_platform(t: &EngineTarget, reference: &str) -> Vec<String> {
    let mut v = t.base();
    v.extend(
        [
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}/{{.Variant}}",
            reference,
        ]
        .map(String::from),
    );
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    Never,
    Always,
}

/// `docker run --rm --network none --platform P --pull never|always REF CMD…`
pub fn run(
    t: &EngineTarget,
    reference: &str,
    platform: &Platform,
    pull: Pull,
    command: &[String],
) -> Vec<String> {
    let mut v = t.base();
    v.extend(["run", "--rm", "--network", "none", "--platform"].map(String::from));
    v.push(platform.to_string());
    v.push("--pull".into());
    v.push(
        match pull {
            Pull::Never => "never",
            Pull::Always => "always",
        }
        .into(),
    );
    v.push(reference.to_string());
    v.extend(command.iter().cloned());
    v
}

pub fn push(t: &EngineTarget, reference: &str) -> Vec<String> {
    let mut v = t.base();
    v.push("push".into());
    v.push(reference.to_string());
    v
}

pub fn manifest_rm(t: &EngineTarget, list: &str) -> Vec<String> {
    let mut v = t.base();
    v.extend(["manifest", "rm", list].map(String::from));
    v
}

pub fn manifest_create(
    t: &EngineTarget,
    list: &str,
    entries: &[String],
    insecure: bool,
) -> Vec<String> {
    let mut v = t.base();
    v.extend(["manifest", "create"].map(String::from));
    if insecure {
        v.push("--insecure".into());
    }
    v.push(list.to_string());
    v.extend(entries.iter().cloned());
    v
}

pub fn manifest_annotate(t: &EngineTarget, list: &str, entry: &str, p: &Platform) -> Vec<String> {
    let mut v = t.base();
    v.extend(
        [
            "manifest", "annotate", list, entry, "--os", &p.os, "--arch", &p.arch,
        ]
        .map(String::from),
    );
    if let Some(var) = &p.variant {
        v.push("--variant".into());
        v.push(var.clone());
    }
    v
}

pub fn manifest_push(t: &EngineTarget, list: &str, insecure: bool) -> Vec<String> {
    let mut v = t.base();
    v.extend(["manifest", "push", "--purge"].map(String::from));
    if insecure {
        v.push("--insecure".into());
    }
    v.push(list.to_string());
    v
}

pub fn manifest_inspect(t: &EngineTarget, reference: &str, insecure: bool) -> Vec<String> {
    let mut v = t.base();
    v.extend(["manifest", "inspect"].map(String::from));
    if insecure {
        v.push("--insecure".into());
    }
    v.push(reference.to_string());
    v
}

/// `docker login --username U --password-stdin REGISTRY`: the secret goes to stdin.
pub fn login(t: &EngineTarget, registry: &str, user: &str) -> Vec<String> {
    let mut v = t.base();
    v.extend(["login", "--username", user, "--password-stdin", registry].map(String::from));
    v
}
