//! What each step does, typed ([`Action`]), and the argv derived from it.

use serde::Serialize;

use super::StepId;
use crate::engine::argv::{self, BuildArgs, EngineTarget, Pull};
use crate::engine::ListItem;
use crate::spec::{Arch, Platform};

/// What the verify command's output must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Trimmed stdout is one of these (the arch's `uname -m` answers).
    OneOf(Vec<String>),
    /// Stdout contains this.
    Contains(String),
}

impl Expect {
    pub fn check(&self, stdout: &str) -> bool {
        let out = stdout.trim();
        match self {
            Expect::OneOf(v) => v.iter().any(|x| x == out),
            Expect::Contains(s) => out.contains(s.as_str()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Expect::OneOf(v) => format!("one of {}", v.join(", ")),
            Expect::Contains(s) => format!("output containing `{s}`"),
        }
    }
}

/// What a test or verify step runs in a container, and what it must print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub command: Vec<String>,
    pub expect: Expect,
    /// Pass `command` to the image's ENTRYPOINT (`verify.entrypoint = true`);
    /// otherwise its first word replaces the ENTRYPOINT.
    pub entrypoint: bool,
    /// The uname check: on an image without `uname` (scratch, distroless) the
    /// image config's platform is checked instead, and the step says so.
    pub platform_fallback: bool,
}

impl Check {
    pub fn run_command(&self) -> argv::RunCommand<'_> {
        argv::RunCommand {
            command: &self.command,
            keep_entrypoint: self.entrypoint,
        }
    }

    pub(super) fn of(arch: &Arch, v: &crate::spec::VerifyCheck) -> Check {
        Check {
            command: v.command.clone(),
            expect: match &v.expect {
                Some(e) => Expect::Contains(e.clone()),
                None => Expect::OneOf(arch.uname.clone()),
            },
            entrypoint: v.entrypoint,
            platform_fallback: v.is_uname_check(),
        }
    }
}

/// One entry of a list: the per-arch image pushed by `push_step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub push_step: StepId,
    pub reference: String,
    /// The repository of `reference` (where `REPO@sha256:…` points).
    pub repository: String,
    pub platform: Platform,
}

/// What a step does, typed, for the runner. [`Action::commands`] derives the
/// argv from it: a plan of 40,000 steps holds no argv until one is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SetupQemu {
        /// binfmt handlers that must exist, e.g. `qemu-aarch64`.
        handlers: Vec<String>,
        setup: Vec<String>,
    },
    Build {
        engine: EngineTarget,
        reference: String,
        platform: Platform,
        /// Everything the build command is made of.
        args: Box<BuildArgs>,
    },
    Test {
        engine: EngineTarget,
        reference: String,
        platform: Platform,
        check: Check,
    },
    Push {
        engine: EngineTarget,
        reference: String,
        platform: Platform,
    },
    ManifestCreate {
        engine: EngineTarget,
        list: String,
        entries: Vec<ListEntry>,
        insecure: bool,
    },
    ManifestPush {
        engine: EngineTarget,
        list: String,
        insecure: bool,
    },
    Verify {
        engine: EngineTarget,
        /// On a publishing build: the pushed list, resolved to this platform's digest.
        list: Option<String>,
        /// The per-arch reference and the step that pushed it.
        reference: String,
        push_step: StepId,
        platform: Platform,
        /// What `run` starts: `REPO@<digest of …>`, resolved at run time.
        run_reference: String,
        check: Check,
        insecure: bool,
    },
}

impl Action {
    /// Every command, in order, and the index of the main one. Values known only
    /// at run time appear as `<digest of push:IMAGE/ARCH>`.
    pub fn commands(&self) -> (Vec<Vec<String>>, usize) {
        match self {
            Action::SetupQemu { setup, .. } => (vec![setup.clone()], 0),
            Action::Build {
                engine,
                reference,
                args,
                ..
            } => (
                vec![
                    argv::build(engine, args),
                    argv::inspect_platform(engine, reference),
                ],
                0,
            ),
            Action::Test {
                engine,
                reference,
                platform,
                check,
            } => (
                vec![argv::run(
                    engine,
                    reference,
                    platform,
                    Pull::Never,
                    check.run_command(),
                )],
                0,
            ),
            Action::Push {
                engine, reference, ..
            } => (vec![argv::push(engine, reference)], 0),
            Action::ManifestCreate {
                engine,
                list,
                entries,
                insecure,
            } => {
                let items: Vec<ListItem> = entries
                    .iter()
                    .map(|e| ListItem {
                        reference: format!("{}@{}", e.repository, digest_placeholder(&e.push_step)),
                        platform: e.platform.clone(),
                    })
                    .collect();
                (argv::manifest_create(engine, list, &items, *insecure), 1)
            }
            Action::ManifestPush {
                engine,
                list,
                insecure,
            } => (vec![argv::manifest_push(engine, list, *insecure)], 0),
            Action::Verify {
                engine,
                list,
                platform,
                run_reference,
                check,
                insecure,
                ..
            } => {
                let run = argv::run(
                    engine,
                    run_reference,
                    platform,
                    Pull::Always,
                    check.run_command(),
                );
                match list {
                    Some(l) => (
                        vec![
                            argv::manifest_inspect(&EngineTarget::local(engine.kind), l, *insecure),
                            run,
                        ],
                        1,
                    ),
                    None => (vec![run], 0),
                }
            }
        }
    }
}

impl Action {
    /// The platform the step builds, runs or pushes, where it has one.
    pub fn platform(&self) -> Option<&Platform> {
        match self {
            Action::Build { platform, .. }
            | Action::Test { platform, .. }
            | Action::Push { platform, .. }
            | Action::Verify { platform, .. } => Some(platform),
            _ => None,
        }
    }

    /// What the step produces or checks: the per-arch reference, or the list
    /// (a verify of a published list names the list).
    pub fn reference(&self) -> Option<&str> {
        match self {
            Action::SetupQemu { .. } => None,
            Action::Build { reference, .. }
            | Action::Test { reference, .. }
            | Action::Push { reference, .. } => Some(reference),
            Action::ManifestCreate { list, .. } | Action::ManifestPush { list, .. } => Some(list),
            Action::Verify {
                list, reference, ..
            } => Some(list.as_deref().unwrap_or(reference)),
        }
    }
}

/// What a command shows where a digest is known only at run time.
pub(super) fn digest_placeholder(push_step: &StepId) -> String {
    format!("<digest of {push_step}>")
}
