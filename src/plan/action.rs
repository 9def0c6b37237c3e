//! What each step does, typed ([`Action`]), and the argv derived from it.

use std::sync::Arc;

use serde::Serialize;

use super::StepId;
use crate::engine::argv::{self, BuildArgs, EngineTarget, Pull};
use crate::registry::client::Repo;
use crate::registry::{index, manifest_url, Scheme, MANIFEST_ACCEPT};
use crate::spec::{Arch, IndexFormat, Platform};

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
    pub reference: Arc<str>,
    /// The repository of `reference` (where `REPO@sha256:…` points).
    pub repository: Arc<str>,
    /// `repository` as the registry's API names it (host and name), parsed once
    /// per arch for every list of the image.
    pub repo: Arc<Repo>,
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
        reference: Arc<str>,
        platform: Platform,
        /// Everything the build command is made of.
        args: Box<BuildArgs>,
    },
    Test {
        engine: EngineTarget,
        reference: Arc<str>,
        platform: Platform,
        check: Check,
    },
    Push {
        engine: EngineTarget,
        reference: Arc<str>,
        platform: Platform,
    },
    /// Read each entry by digest (and its config), copy it into the list's
    /// repository when it lives in another, and assemble the index.
    ManifestCreate {
        list: String,
        entries: Vec<ListEntry>,
        /// The index's annotations (an OCI index only).
        annotations: Vec<(String, String)>,
        format: IndexFormat,
        insecure: bool,
    },
    /// PUT the index under the list's tag.
    ManifestPush {
        list: String,
        format: IndexFormat,
        /// SPEC.md §2: a tag without `{sha}`, `{short_sha}`, `{git_tag}` or
        /// `{version}` moves forward only.
        floating: bool,
        insecure: bool,
        /// The list's repository as the registry's API names it, parsed once
        /// per image (for the request shown in the plan).
        repo: Option<Arc<Repo>>,
    },
    Verify {
        engine: EngineTarget,
        /// On a publishing build: the pushed list, resolved to this platform's digest.
        list: Option<String>,
        /// The list's repository as the registry's API names it, parsed once
        /// per image (for the request shown in the plan).
        list_repo: Option<Arc<Repo>>,
        /// The per-arch reference and the step that pushed it.
        reference: Arc<str>,
        push_step: StepId,
        platform: Platform,
        /// What `run` starts: `REPO@<digest of …>`, resolved at run time.
        run_reference: String,
        check: Check,
        insecure: bool,
        /// When another job of the build published the image's lists (the
        /// list push is a need outside `--stage`): what verify proves of them
        /// besides this arch's entry.
        published_elsewhere: Option<Arc<ImageLists>>,
    },
}

/// An image's lists as a build publishes them, for a verify step that did not
/// publish them (a CI verify job after the publish job): each tag must name a
/// list of this commit (by its `revision` annotation; a floating tag: or a
/// newer commit's), this commit's list must have exactly one entry per arch,
/// and the arch's entry must be the image its commit-tagged reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLists {
    /// The platform of each arch of the image.
    pub platforms: Vec<Platform>,
    /// The tag of the action's `list` is floating (`latest`, `{branch}`): the
    /// image has no commit-tagged list.
    pub first_floating: bool,
    /// The image's other lists of this build, `REPO:TAG`, and whether each tag
    /// is floating.
    pub others: Vec<(String, bool)>,
    /// This commit, as its lists' annotations name it: `revision` (the sha)
    /// and `created` (the commit time).
    pub revision: Option<String>,
    pub created: Option<String>,
    /// The per-arch tags name a commit (`{sha}`/`{short_sha}`), so each names
    /// what this commit pushed: the list's entry must be that digest.
    pub immutable_refs: bool,
    /// The per-arch images' registry is reached over plain HTTP.
    pub reference_insecure: bool,
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
                    engine.engine().build(engine, args),
                    engine.engine().inspect_platform(engine, reference),
                ],
                0,
            ),
            Action::Test {
                engine,
                reference,
                platform,
                check,
            } => (
                vec![engine.engine().run(
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
            // Performed over the registry's API: see `requests`.
            Action::ManifestCreate { .. } | Action::ManifestPush { .. } => (Vec::new(), 0),
            Action::Verify {
                engine,
                platform,
                run_reference,
                check,
                ..
            } => (
                vec![engine.engine().run(
                    engine,
                    run_reference,
                    platform,
                    Pull::Always,
                    check.run_command(),
                )],
                0,
            ),
        }
    }

    /// The registry requests the step makes itself, in order (SPEC.md §4
    /// `request`): a list step's reads of its entries, its PUT; a verify's read
    /// of the pushed list. Values known only at run time appear as
    /// `<digest of push:IMAGE/ARCH>`.
    pub fn requests(&self) -> Vec<Request> {
        match self {
            Action::ManifestCreate {
                entries, insecure, ..
            } => entries
                .iter()
                .map(|e| Request {
                    method: "GET",
                    // The URL of `REPOSITORY@<digest of …>`, from the repository
                    // parsed when the plan was made.
                    url: manifest_url(
                        scheme(*insecure),
                        &e.repo.host,
                        &e.repo.name,
                        &digest_placeholder(&e.push_step),
                    ),
                    media_type: MANIFEST_ACCEPT,
                })
                .collect(),
            Action::ManifestPush {
                list,
                format,
                insecure,
                repo,
                ..
            } => vec![Request {
                method: "PUT",
                url: list_url(list, repo.as_deref(), *insecure),
                media_type: index::index_media_type(*format),
            }],
            Action::Verify {
                list: Some(l),
                list_repo,
                insecure,
                reference,
                published_elsewhere,
                ..
            } => {
                let get = |list: &str| Request {
                    method: "GET",
                    url: list_url(list, list_repo.as_deref(), *insecure),
                    media_type: MANIFEST_ACCEPT,
                };
                let mut requests = vec![get(l)];
                // Lists another job published: the build's other tags, and the
                // arch's commit-tagged image its entry must be.
                if let Some(e) = published_elsewhere {
                    requests.extend(e.others.iter().map(|(other, _)| get(other)));
                    if e.immutable_refs {
                        requests.push(Request {
                            method: "HEAD",
                            url: url_of(reference, e.reference_insecure),
                            media_type: MANIFEST_ACCEPT,
                        });
                    }
                }
                requests
            }
            _ => Vec::new(),
        }
    }
}

/// A request to a registry's API, as the plan shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub media_type: &'static str,
}

/// The manifest URL of a list `REPO:TAG` whose repository `REPO` was parsed
/// as `repo`; [`url_of`] when it was not.
fn list_url(list: &str, repo: Option<&Repo>, insecure: bool) -> String {
    match (repo, list.rsplit_once(':')) {
        (Some(r), Some((_, tag))) if !tag.contains('/') && !list.contains('@') => {
            manifest_url(scheme(insecure), &r.host, &r.name, tag)
        }
        _ => url_of(list, insecure),
    }
}

/// How a registry the plan calls insecure is reached.
fn scheme(insecure: bool) -> Scheme {
    if insecure {
        Scheme::Http
    } else {
        Scheme::Https
    }
}

/// The manifest URL of `REPO:TAG` or `REPO@DIGEST`.
fn url_of(reference: &str, insecure: bool) -> String {
    let (name, tag) = match reference.rsplit_once('@') {
        Some((n, d)) => (n, d.to_string()),
        None => match reference.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((n, t)) => (n, t.to_string()),
            None => (reference, "latest".to_string()),
        },
    };
    let scheme = scheme(insecure);
    match Repo::parse(&format!("{name}:latest")) {
        Some((r, _)) => manifest_url(scheme, &r.host, &r.name, &tag),
        None => format!("{scheme}://{name}/manifests/{tag}"),
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
