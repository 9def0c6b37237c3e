//! Spec + git context + options → [`Plan`]: the DAG of steps of SPEC.md §2, each
//! with the exact argv it runs. Pure: no I/O happens here.

mod error;
pub mod render;

pub use error::PlanError;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use globset::GlobSetBuilder;
use serde::Serialize;

pub use render::{
    render_dot, render_json, render_text, shell_quote, write_json, write_json_compact,
};

use crate::context::GitContext;
use crate::engine::argv::{self, BuildArgs, EngineTarget, Pull};
use crate::engine::ListItem;
use crate::graph::Dag;
use crate::spec::reference::{self, is_loopback_host};
use crate::spec::template::Template;
use crate::spec::vars::{GitValues, Vars};
use crate::spec::{Arch, EngineKind, Image, Platform, PushMode, Spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    SetupQemu,
    Build,
    Test,
    Push,
    ManifestCreate,
    ManifestPush,
    Verify,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::SetupQemu => "setup-qemu",
            StepKind::Build => "build",
            StepKind::Test => "test",
            StepKind::Push => "push",
            StepKind::ManifestCreate => "manifest-create",
            StepKind::ManifestPush => "manifest-push",
            StepKind::Verify => "verify",
        }
    }

    pub fn stage(self) -> Stage {
        match self {
            StepKind::SetupQemu | StepKind::Build | StepKind::Test => Stage::Build,
            StepKind::Push => Stage::Push,
            StepKind::ManifestCreate | StepKind::ManifestPush => Stage::Publish,
            StepKind::Verify => Stage::Verify,
        }
    }
}

/// `--stage`: a slice of the pipeline, for sharded CI jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Build,
    Push,
    Publish,
    Verify,
}

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

    fn of(arch: &Arch, v: &crate::spec::VerifyCheck) -> Check {
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
    pub push_step: String,
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
        push_step: String,
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
            Action::Push { engine, reference } => (vec![argv::push(engine, reference)], 0),
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

/// A step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    pub image: Option<String>,
    pub arch: Option<String>,
    pub tag: Option<String>,
    pub platform: Option<String>,
    pub reference: Option<String>,
    /// Ids of steps of this plan that must succeed first.
    pub needs: Vec<String>,
    /// Needs outside the selection (other stages, images or arches): checked in the
    /// registry before running.
    pub external_needs: Vec<String>,
    pub timeout: Option<Duration>,
    pub action: Action,
}

impl Step {
    /// Every command of the step, in order (see [`Action::commands`]).
    pub fn commands(&self) -> Vec<Vec<String>> {
        self.action.commands().0
    }

    /// The step's main command: what `plan` shows as `command`.
    pub fn command(&self) -> Vec<String> {
        let (mut all, main) = self.action.commands();
        if main < all.len() {
            all.swap_remove(main)
        } else {
            Vec::new()
        }
    }
}

/// An entry left out of the plan, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub id: String,
    pub kind: StepKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub reason: String,
}

/// The machine planning happens for.
#[derive(Debug, Clone)]
pub struct Host {
    pub platform: Platform,
    /// `update-binfmts` is installed (chooses the default qemu setup).
    pub has_update_binfmts: bool,
}

impl Host {
    pub fn detect() -> Host {
        Host {
            platform: Platform::host(),
            has_update_binfmts: [
                "/usr/sbin/update-binfmts",
                "/usr/bin/update-binfmts",
                "/sbin/update-binfmts",
            ]
            .iter()
            .any(|p| std::path::Path::new(p).exists()),
        }
    }

    pub fn fixed(platform: &str) -> Host {
        Host {
            platform: Platform::parse(platform).unwrap_or_else(|_| Platform::host()),
            has_update_binfmts: true,
        }
    }
}

/// What to plan: selection, stages, engine.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// `--image` globs (empty: every image).
    pub images: Vec<String>,
    /// `--arch` names or platforms (empty: every arch).
    pub archs: Vec<String>,
    /// `--stage` (empty: every stage).
    pub stages: Vec<Stage>,
    /// `--engine`, overriding `[project] engine`.
    pub engine: Option<EngineKind>,
    /// Files changed since a revision (`--changed-since`): only affected images.
    pub changed_files: Option<(String, Vec<String>)>,
    /// The full sha of that revision: unchanged images are taken as built there.
    pub base_sha: Option<String>,
    pub host: Host,
    /// `--step-timeout`, overriding the spec's timeouts.
    pub step_timeout: Option<Duration>,
    /// `--no-cache`: builds use no cached layer.
    pub no_cache: bool,
    /// `--pull`: builds fetch newer base images first.
    pub pull: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            images: Vec::new(),
            archs: Vec::new(),
            stages: Vec::new(),
            engine: None,
            changed_files: None,
            base_sha: None,
            host: Host::detect(),
            step_timeout: None,
            no_cache: false,
            pull: false,
        }
    }
}

/// The DAG of steps, in a deterministic topological order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub branch: Option<String>,
    pub git_tag: Option<String>,
    pub sha: Option<String>,
    pub pull_request: Option<String>,
    pub publish: bool,
    /// Why this build publishes or not.
    pub publish_reason: String,
    pub atomic: bool,
    pub engine: EngineKind,
    /// Directory commands run in (the spec's directory).
    pub dir: PathBuf,
    pub jobs: Option<usize>,
    pub retries: Option<u32>,
    pub steps: Vec<Step>,
    pub skipped: Vec<Skipped>,
    /// Registries the plan pushes to (for login and preflight).
    pub registries: Vec<String>,
    /// The per-arch references contain the commit (`{sha}`/`{short_sha}`), so an
    /// existing one is this commit's image (what `--skip-existing` relies on).
    pub immutable_refs: bool,
    /// `[project] insecure_registries`.
    pub insecure_registries: Vec<String>,
    /// The reference behind each external need (`push:base/amd64` → its per-arch
    /// reference), checked before running.
    pub external_refs: BTreeMap<String, String>,
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The engines the plan uses: the local one first, then every native builder.
    pub fn engine_targets(&self) -> Vec<EngineTarget> {
        let mut seen = vec![EngineTarget::local(self.engine)];
        for s in &self.steps {
            let t = match &s.action {
                Action::Build { engine, .. }
                | Action::Test { engine, .. }
                | Action::Push { engine, .. }
                | Action::Verify { engine, .. } => engine,
                _ => continue,
            };
            if !seen.contains(t) {
                seen.push(t.clone());
            }
        }
        seen
    }

    /// Build a plan. Errors are about the file (a template without a value) or the
    /// options (an unknown `--arch`): exit code 2.
    pub fn new(spec: &Spec, ctx: &GitContext, opts: &PlanOptions) -> Result<Plan, PlanError> {
        Planner::new(spec, ctx, opts)?.plan()
    }
}

fn digest_placeholder(push_id: &str) -> String {
    format!("<digest of {push_id}>")
}

fn repo_of(reference: &str) -> String {
    reference::parse(reference)
        .map(|r| r.repository())
        .unwrap_or_else(|_| reference.to_string())
}

struct Planner<'a> {
    spec: &'a Spec,
    ctx: &'a GitContext,
    opts: &'a PlanOptions,
    git: GitValues,
    engine: EngineKind,
    selected_images: BTreeSet<String>,
    selected_archs: Option<BTreeSet<String>>,
    stages: BTreeSet<Stage>,
    publish: bool,
    publish_reason: String,
    steps: Vec<Step>,
    skipped: Vec<Skipped>,
    /// Per-arch references by (image, arch).
    refs: HashMap<String, HashMap<String, String>>,
}

impl<'a> Planner<'a> {
    fn new(spec: &'a Spec, ctx: &'a GitContext, opts: &'a PlanOptions) -> Result<Self, PlanError> {
        let git = ctx.values();
        // Selection of images by glob.
        let mut selected_images = BTreeSet::new();
        if opts.images.is_empty() {
            selected_images.extend(spec.images.iter().map(|i| i.name.clone()));
        } else {
            let mut b = GlobSetBuilder::new();
            for g in &opts.images {
                b.add(crate::spec::glob(g).map_err(|e| PlanError::BadImageGlob {
                    glob: g.clone(),
                    reason: e.kind().to_string(),
                })?);
            }
            let set = b.build().map_err(|e| PlanError::BadImageGlobs {
                reason: e.to_string(),
            })?;
            for i in &spec.images {
                if set.is_match(&i.name) {
                    selected_images.insert(i.name.clone());
                }
            }
            if selected_images.is_empty() {
                return Err(PlanError::NoImageMatches {
                    globs: opts.images.join(" "),
                    images: spec
                        .images
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let selected_archs = if opts.archs.is_empty() {
            None
        } else {
            let mut set = BTreeSet::new();
            for a in &opts.archs {
                set.insert(resolve_arch_flag(spec, a)?);
            }
            Some(set)
        };
        let stages: BTreeSet<Stage> = if opts.stages.is_empty() {
            [Stage::Build, Stage::Push, Stage::Publish, Stage::Verify].into()
        } else {
            opts.stages.iter().copied().collect()
        };
        let (publish, publish_reason) = decide_publish(spec, ctx);
        Ok(Planner {
            spec,
            ctx,
            opts,
            git,
            engine: opts.engine.unwrap_or(spec.project.engine),
            selected_images,
            selected_archs,
            stages,
            publish,
            publish_reason,
            steps: Vec::new(),
            skipped: Vec::new(),
            refs: HashMap::new(),
        })
    }

    /// The per-arch reference of an image (every image/arch pair has one once
    /// `plan` has rendered them).
    fn ref_of(&self, image: &str, arch: &str) -> String {
        self.refs
            .get(image)
            .and_then(|m| m.get(arch))
            .cloned()
            .unwrap_or_default()
    }

    fn check_sha(&self) -> Result<(), PlanError> {
        if self.git.sha.is_some() {
            return Ok(());
        }
        let spec = self.spec;
        let uses = |t: &Template| t.uses("sha") || t.uses("short_sha");
        let mut users: Vec<&Template> = vec![&spec.tags.arch];
        users.extend(spec.tags.manifest.iter().map(|m| &m.tag));
        for i in &spec.images {
            users.extend(
                i.per_arch
                    .values()
                    .flat_map(|b| b.args.iter().map(|(_, t)| t)),
            );
            users.extend(i.labels.iter().map(|(_, t)| t));
            users.extend(i.cache_from.iter());
        }
        if let Some(t) = users.into_iter().find(|t| uses(t)) {
            let line = if t.span.is_empty() {
                String::from("the default per-arch reference {repo}/{arch}:{sha}")
            } else {
                format!("line {}: `{}`", spec.line_of(t.span.start), t.display())
            };
            return Err(PlanError::NoSha { what: line });
        }
        Ok(())
    }

    fn host_arch(&self, a: &str) -> Result<&'a Arch, PlanError> {
        self.spec
            .arch(a)
            .ok_or_else(|| PlanError::Internal(format!("arch `{a}` is not in the table")))
    }

    fn vars<'v>(
        &'v self,
        img: &'v Image,
        arch: Option<&'v Arch>,
        deps: Option<&'v BTreeMap<String, String>>,
    ) -> Vars<'v> {
        Vars {
            registry: self.spec.project.registry.as_deref(),
            repo: &img.repo,
            name: &img.name,
            arch: arch.map(|a| a.name.as_str()),
            platform: arch.map(|a| &a.platform),
            git: &self.git,
            images: deps,
        }
    }

    fn render(&self, t: &Template, vars: &Vars<'_>, what: &str) -> Result<String, PlanError> {
        t.render(|n| vars.get(n)).map_err(|missing| {
            let at = if t.span.is_empty() {
                String::new()
            } else {
                format!(" (line {})", self.spec.line_of(t.span.start))
            };
            PlanError::MissingValue {
                what: what.to_string(),
                template: t.display(),
                at,
                var: missing.to_string(),
                why: GitValues::why_missing(missing).to_string(),
            }
        })
    }

    fn insecure(&self, reference: &str) -> bool {
        let domain = reference::parse(reference).ok().and_then(|r| r.domain);
        match domain {
            Some(d) => is_loopback_host(&d) || self.spec.project.insecure_registries.contains(&d),
            None => false,
        }
    }

    fn timeout(&self, img: Option<&Image>) -> Option<Duration> {
        self.opts
            .step_timeout
            .or_else(|| img.and_then(|i| i.timeout))
            .or(self.spec.project.timeout)
    }

    fn arch_selected(&self, a: &str) -> bool {
        self.selected_archs.as_ref().is_none_or(|s| s.contains(a))
    }

    fn affected_images(&self) -> Option<BTreeSet<String>> {
        let (_, files) = self.opts.changed_files.as_ref()?;
        let images = &self.spec.images;
        let changed: Vec<bool> = images
            .iter()
            .map(|img| {
                let mut b = GlobSetBuilder::new();
                for p in &img.paths {
                    if let Ok(g) = crate::spec::glob(p) {
                        b.add(g);
                    }
                }
                b.build()
                    .is_ok_and(|set| files.iter().any(|f| set.is_match(f)))
            })
            .collect();
        // Everything that depends on an affected image is affected.
        let graph = image_graph(self.spec);
        let mut affected = graph.closure_down(&changed);
        // Without the base revision's sha, an affected image's unchanged
        // dependencies have no image to build on but one made at this commit:
        // plan them too (with --skip-existing, only if not already pushed).
        if self.opts.base_sha.is_none() {
            affected = graph.closure_up(&affected);
        }
        Some(
            images
                .iter()
                .zip(affected)
                .filter(|(_, a)| *a)
                .map(|(img, _)| img.name.clone())
                .collect(),
        )
    }

    fn plan(mut self) -> Result<Plan, PlanError> {
        self.check_sha()?;
        let spec = self.spec;
        let pushes = match spec.publish.push {
            PushMode::Always => true,
            PushMode::PublishBranches => self.publish,
            PushMode::Never => false,
        };
        let affected = self.affected_images();
        // An upper bound of the steps: build, test, push and verify per arch, a
        // create and a push per list, setup-qemu. A plan of 40,000 steps is tens
        // of MiB; growing the vector by doubling would hold two copies at once.
        let bound: usize = spec
            .images
            .iter()
            .map(|i| 4 * i.archs.len() + 2 * spec.tags.manifest.len())
            .sum();
        self.steps.reserve_exact(bound + 1);

        // Per-arch references of every image, selected or not (dependencies need
        // them). With --changed-since, an unchanged image is the one built at the
        // base revision: its references carry that revision's sha.
        let base_git = self.opts.base_sha.as_ref().map(|b| GitValues {
            sha: Some(b.clone()),
            short_sha: Some(b[..7.min(b.len())].to_string()),
            ..self.git.clone()
        });
        for img in &spec.images {
            let unchanged = affected.as_ref().is_some_and(|a| !a.contains(&img.name));
            for a in &img.archs {
                let arch = self.host_arch(a)?;
                let mut vars = self.vars(img, Some(arch), None);
                if let (true, Some(g)) = (unchanged, base_git.as_ref()) {
                    vars.git = g;
                }
                let r = self.render(&spec.tags.arch, &vars, "the per-arch reference")?;
                if let Err(e) = reference::parse(&r) {
                    return Err(PlanError::InvalidArchReference {
                        image: img.name.clone(),
                        arch: a.clone(),
                        rendered: r,
                        reason: e.to_string(),
                    });
                }
                self.refs
                    .entry(img.name.clone())
                    .or_default()
                    .insert(a.clone(), r);
            }
        }

        // Images in dependency order, file order among equals.
        let order = image_order(spec);
        let mut emulated: BTreeSet<String> = BTreeSet::new();
        let mut qemu_users: Vec<usize> = Vec::new();
        let verify_on = spec.verify.enabled;
        let test_on = verify_on && spec.verify.before_push;

        for img in order.iter().map(|&i| &spec.images[i]) {
            if !self.selected_images.contains(&img.name) {
                continue;
            }
            if let Some(aff) = &affected {
                if !aff.contains(&img.name) {
                    let rev = self
                        .opts
                        .changed_files
                        .as_ref()
                        .map_or("", |c| c.0.as_str());
                    for kind in [StepKind::Build, StepKind::Push] {
                        self.skipped.push(Skipped {
                            id: format!("{}:{}", kind.as_str(), img.name),
                            kind,
                            image: Some(img.name.clone()),
                            arch: None,
                            tag: None,
                            reason: format!(
                                "unchanged since {rev}: no changed file matches its paths ({})",
                                img.paths.join(", ")
                            ),
                        });
                    }
                    continue;
                }
            }
            let engine_kind = self.engine;
            let engine_for = move |arch: &Arch| EngineTarget {
                kind: engine_kind,
                builder: arch.builder.clone(),
            };
            let mut arch_done: Vec<(String, Option<String>, Option<String>)> = Vec::new(); // (arch, test id, push id)
            for a in &img.archs {
                if !self.arch_selected(a) {
                    continue;
                }
                let arch = self.host_arch(a)?;
                let engine = engine_for(arch);
                let reference = self.ref_of(&img.name, a);
                let emu = arch.needs_emulation(&self.opts.host.platform);
                let build_id = format!("build:{}/{a}", img.name);
                let test_id = format!("test:{}/{a}", img.name);
                let push_id = format!("push:{}/{a}", img.name);
                let deps: BTreeMap<String, String> = img
                    .depends_on
                    .iter()
                    .filter_map(|d| {
                        self.refs
                            .get(d.as_str())
                            .and_then(|m| m.get(a.as_str()))
                            .map(|r| (d.clone(), r.clone()))
                    })
                    .collect();
                let vars = self.vars(img, Some(arch), Some(&deps));
                let Some(settings) = img.build_for(a) else {
                    return Err(PlanError::Internal(format!(
                        "image `{}` has no settings for arch `{a}`",
                        img.name
                    )));
                };
                let mut build_args = Vec::new();
                for (k, t) in &settings.args {
                    build_args.push((k.clone(), self.render(t, &vars, &format!("build arg {k}"))?));
                }
                let mut labels = oci_labels(self.ctx, &self.git);
                for (k, t) in &img.labels {
                    let v = self.render(t, &vars, &format!("label {k}"))?;
                    labels.retain(|(lk, _)| lk != k);
                    labels.push((k.clone(), v));
                }
                let mut cache_from = Vec::new();
                for t in &img.cache_from {
                    // An entry whose variables have no value is simply not used.
                    if let Ok(c) = t.render(|n| vars.get(n)) {
                        if reference::parse(&c).is_ok() {
                            cache_from.push(c);
                        }
                    }
                }
                let build = BuildArgs {
                    arch_arg: (img.arch_arg.clone(), a.clone()),
                    platform: arch.platform.clone(),
                    reference: reference.clone(),
                    build_args,
                    labels,
                    target: settings.target.clone(),
                    cache_from,
                    dockerfile: settings.dockerfile.display().to_string(),
                    context: img.context.display().to_string(),
                    no_cache: self.opts.no_cache,
                    pull: self.opts.pull,
                };
                // Needs of the build: qemu, and the base image for the same arch.
                let mut build_needs = Vec::new();
                if emu {
                    build_needs.push("setup-qemu".to_string());
                }
                for d in img.depends_on.iter().filter(|d| {
                    self.refs
                        .get(d.as_str())
                        .is_some_and(|m| m.contains_key(a.as_str()))
                }) {
                    let dep_pushed = pushes;
                    let dep_tested = test_on;
                    let id = if dep_pushed {
                        format!("push:{d}/{a}")
                    } else if dep_tested {
                        format!("test:{d}/{a}")
                    } else {
                        format!("build:{d}/{a}")
                    };
                    build_needs.push(id);
                }
                let timeout = self.timeout(Some(img));
                let check = Check::of(arch, &settings.verify);
                let idx = self.steps.len();
                self.steps.push(Step {
                    id: build_id.clone(),
                    kind: StepKind::Build,
                    image: Some(img.name.clone()),
                    arch: Some(a.clone()),
                    tag: None,
                    platform: Some(arch.platform.to_string()),
                    reference: Some(reference.clone()),
                    needs: build_needs,
                    external_needs: Vec::new(),
                    timeout,
                    action: Action::Build {
                        engine: engine.clone(),
                        reference: reference.clone(),
                        platform: arch.platform.clone(),
                        args: Box::new(build),
                    },
                });
                if emu {
                    emulated.insert(a.clone());
                    qemu_users.push(idx);
                }
                let mut last = build_id.clone();
                let mut test_step = None;
                if test_on {
                    let idx = self.steps.len();
                    self.steps.push(Step {
                        id: test_id.clone(),
                        kind: StepKind::Test,
                        image: Some(img.name.clone()),
                        arch: Some(a.clone()),
                        tag: None,
                        platform: Some(arch.platform.to_string()),
                        reference: Some(reference.clone()),
                        needs: vec![last.clone()],
                        external_needs: Vec::new(),
                        timeout,
                        action: Action::Test {
                            engine: engine.clone(),
                            reference: reference.clone(),
                            platform: arch.platform.clone(),
                            check,
                        },
                    });
                    if emu {
                        qemu_users.push(idx);
                    }
                    last = test_id.clone();
                    test_step = Some(test_id.clone());
                }
                let mut push_step = None;
                if pushes {
                    self.steps.push(Step {
                        id: push_id.clone(),
                        kind: StepKind::Push,
                        image: Some(img.name.clone()),
                        arch: Some(a.clone()),
                        tag: None,
                        platform: Some(arch.platform.to_string()),
                        reference: Some(reference.clone()),
                        needs: vec![last.clone()],
                        external_needs: Vec::new(),
                        timeout,
                        action: Action::Push {
                            engine: engine.clone(),
                            reference: reference.clone(),
                        },
                    });
                    push_step = Some(push_id.clone());
                } else {
                    let reason = match spec.publish.push {
                        PushMode::Never => "[publish] push = \"never\"".to_string(),
                        _ => format!("[publish] push = \"publish-branches\" and this build does not publish: {}", self.publish_reason),
                    };
                    self.skipped.push(Skipped {
                        id: push_id.clone(),
                        kind: StepKind::Push,
                        image: Some(img.name.clone()),
                        arch: Some(a.clone()),
                        tag: None,
                        reason,
                    });
                }
                arch_done.push((a.clone(), test_step, push_step));
            }

            // Lists.
            let mut arch_repos: HashMap<&str, String> = HashMap::new();
            let mut first_list_push: Option<String> = None;
            let mut prev_list_push: Option<String> = None;
            let mut first_list_ref: Option<String> = None;
            let mut listed_tags: HashSet<String> = HashSet::new();
            let partial_archs = self.selected_archs.is_some() && self.opts.stages.is_empty();
            for m in &spec.tags.manifest {
                let shown_id = format!("manifest-create:{}:{}", img.name, m.tag.display());
                let skip = |reason: String, me: &mut Self| {
                    for kind in [StepKind::ManifestCreate, StepKind::ManifestPush] {
                        me.skipped.push(Skipped {
                            id: shown_id.replacen("manifest-create", kind.as_str(), 1),
                            kind,
                            image: Some(img.name.clone()),
                            arch: None,
                            tag: Some(m.tag.display()),
                            reason: reason.clone(),
                        });
                    }
                };
                if !self.publish {
                    skip(
                        format!("this build does not publish: {}", self.publish_reason),
                        &mut self,
                    );
                    continue;
                }
                if spec.publish.push == PushMode::Never {
                    skip(
                        "[publish] push = \"never\": nothing to list".into(),
                        &mut self,
                    );
                    continue;
                }
                if !self.stages.contains(&Stage::Publish) && !self.stages.contains(&Stage::Verify) {
                    continue;
                }
                if partial_archs {
                    skip("--arch selects part of the image's arches; a list needs all of them (add --stage publish to assemble it from the registry)".into(), &mut self);
                    continue;
                }
                if m.when_git_tag && self.ctx.git_tag.is_none() {
                    skip(
                        "when = \"git-tag\" and this build is not of a git tag".into(),
                        &mut self,
                    );
                    continue;
                }
                if let Some(b) = &m.branches {
                    let ok = self.ctx.branch.as_deref().is_some_and(|br| b.is_match(br));
                    if !ok {
                        let br = self.ctx.branch.as_deref().unwrap_or("(none)");
                        skip(
                            format!(
                                "branch `{br}` does not match this tag's branches ({})",
                                b.patterns.join(", ")
                            ),
                            &mut self,
                        );
                        continue;
                    }
                }
                let vars = self.vars(img, None, None);
                let tag = match m.tag.render(|n| vars.get(n)) {
                    Ok(t) => t,
                    Err(missing) => {
                        skip(
                            format!(
                                "{}: {{{missing}}} has no value",
                                GitValues::why_missing(missing)
                            ),
                            &mut self,
                        );
                        continue;
                    }
                };
                if !reference::is_valid_tag(&tag) {
                    skip(
                        format!("renders to `{tag}`, which is not a valid tag"),
                        &mut self,
                    );
                    continue;
                }
                let create_id = format!("manifest-create:{}:{tag}", img.name);
                let push_list_id = format!("manifest-push:{}:{tag}", img.name);
                if !listed_tags.insert(tag.clone()) {
                    skip(
                        format!("renders to `{tag}`, a tag already listed"),
                        &mut self,
                    );
                    continue;
                }
                let list = format!("{}:{tag}", img.repo);
                let insecure = self.insecure(&list);
                let engine = EngineTarget::local(self.engine);
                let mut needs = Vec::new();
                let mut entries = Vec::new();
                for a in &img.archs {
                    let arch = self.host_arch(a)?;
                    if test_on {
                        needs.push(format!("test:{}/{a}", img.name));
                    }
                    let pid = format!("push:{}/{a}", img.name);
                    needs.push(pid.clone());
                    let reference = self.ref_of(&img.name, a);
                    // Parsed once per arch, not once per tag.
                    let repository = match arch_repos.get(a.as_str()) {
                        Some(r) => r.clone(),
                        None => {
                            let r = repo_of(&reference);
                            arch_repos.insert(a.as_str(), r.clone());
                            r
                        }
                    };
                    entries.push(ListEntry {
                        push_step: pid,
                        reference,
                        repository,
                        platform: arch.platform.clone(),
                    });
                }
                let timeout = self.timeout(Some(img));
                if self.stages.contains(&Stage::Publish) {
                    self.steps.push(Step {
                        id: create_id.clone(),
                        kind: StepKind::ManifestCreate,
                        image: Some(img.name.clone()),
                        arch: None,
                        tag: Some(tag.clone()),
                        platform: None,
                        reference: Some(list.clone()),
                        needs,
                        external_needs: Vec::new(),
                        timeout,
                        action: Action::ManifestCreate {
                            engine: engine.clone(),
                            list: list.clone(),
                            entries,
                            insecure,
                        },
                    });
                    self.steps.push(Step {
                        id: push_list_id.clone(),
                        kind: StepKind::ManifestPush,
                        image: Some(img.name.clone()),
                        arch: None,
                        tag: Some(tag.clone()),
                        platform: None,
                        reference: Some(list.clone()),
                        // Lists of one repository are pushed one after another: two
                        // `manifest push` of the same entries at once can conflict.
                        needs: std::iter::once(create_id.clone())
                            .chain(prev_list_push.clone())
                            .collect(),
                        external_needs: Vec::new(),
                        timeout,
                        action: Action::ManifestPush {
                            engine,
                            list: list.clone(),
                            insecure,
                        },
                    });
                }
                if first_list_push.is_none() {
                    first_list_push = Some(push_list_id.clone());
                    first_list_ref = Some(list.clone());
                }
                prev_list_push = Some(push_list_id);
            }

            // Verify what the registry serves.
            if verify_on && self.stages.contains(&Stage::Verify) {
                for (a, _test, push) in &arch_done {
                    let arch = self.host_arch(a)?;
                    let push_id = format!("push:{}/{a}", img.name);
                    if push.is_none() {
                        self.skipped.push(Skipped {
                            id: format!("verify:{}/{a}", img.name),
                            kind: StepKind::Verify,
                            image: Some(img.name.clone()),
                            arch: Some(a.clone()),
                            tag: None,
                            reason: "nothing is pushed for this arch".into(),
                        });
                        continue;
                    }
                    let engine = engine_for(arch);
                    let reference = self.ref_of(&img.name, a);
                    let Some(settings) = img.build_for(a) else {
                        continue;
                    };
                    let check = Check::of(arch, &settings.verify);
                    let (needs, list, run_reference) = match &first_list_push {
                        Some(lp) => {
                            let list = first_list_ref.clone().unwrap_or_default();
                            let by_digest =
                                format!("{}@<digest of {} in {list}>", img.repo, arch.platform);
                            (vec![lp.clone()], Some(list), by_digest)
                        }
                        None => (
                            vec![push_id.clone()],
                            None,
                            format!("{}@{}", repo_of(&reference), digest_placeholder(&push_id)),
                        ),
                    };
                    let insecure = list.as_deref().map(|l| self.insecure(l)).unwrap_or(false);
                    let idx = self.steps.len();
                    self.steps.push(Step {
                        id: format!("verify:{}/{a}", img.name),
                        kind: StepKind::Verify,
                        image: Some(img.name.clone()),
                        arch: Some(a.clone()),
                        tag: None,
                        platform: Some(arch.platform.to_string()),
                        reference: Some(list.clone().unwrap_or_else(|| reference.clone())),
                        needs,
                        external_needs: Vec::new(),
                        timeout: self.timeout(Some(img)),
                        action: Action::Verify {
                            engine,
                            list,
                            reference,
                            push_step: push_id,
                            platform: arch.platform.clone(),
                            run_reference,
                            check,
                            insecure,
                        },
                    });
                    if arch.needs_emulation(&self.opts.host.platform) {
                        emulated.insert(a.clone());
                        qemu_users.push(idx);
                    }
                }
            }
        }

        // Keep only the selected stages; needs on anything else become external.
        let stages = self.stages.clone();
        self.steps.retain(|s| stages.contains(&s.kind.stage()));
        let qemu_needed = self.steps.iter().any(|s| {
            matches!(s.kind, StepKind::Build | StepKind::Test | StepKind::Verify)
                && s.arch.as_deref().is_some_and(|a| emulated.contains(a))
        });
        let _ = qemu_users;
        if qemu_needed {
            let mut handlers: Vec<String> = emulated
                .iter()
                .filter_map(|a| {
                    spec.arch(a)
                        .and_then(|x| x.platform.qemu_handler())
                        .map(str::to_string)
                })
                .collect();
            handlers.sort();
            handlers.dedup();
            let setup = spec
                .qemu
                .setup
                .clone()
                .unwrap_or_else(|| default_qemu_setup(&self.opts.host, self.engine));
            self.steps.insert(
                0,
                Step {
                    id: "setup-qemu".into(),
                    kind: StepKind::SetupQemu,
                    image: None,
                    arch: None,
                    tag: None,
                    platform: None,
                    reference: None,
                    needs: Vec::new(),
                    external_needs: Vec::new(),
                    timeout: self.opts.step_timeout.or(spec.project.timeout),
                    action: Action::SetupQemu { handlers, setup },
                },
            );
            // Tests and verifies of emulated arches need qemu too (when their build is
            // not in this run).
            for s in self.steps.iter_mut() {
                if matches!(s.kind, StepKind::Test | StepKind::Verify)
                    && s.arch.as_deref().is_some_and(|a| emulated.contains(a))
                    && !s.needs.iter().any(|n| n.starts_with("build:"))
                {
                    s.needs.insert(0, "setup-qemu".into());
                }
            }
        } else {
            for s in self.steps.iter_mut() {
                s.needs.retain(|n| n != "setup-qemu");
            }
        }
        // Needs outside the plan (other stages, images, arches) become external.
        let with_outside: Vec<(usize, Vec<bool>)> = {
            let ids: HashSet<&str> = self.steps.iter().map(|s| s.id.as_str()).collect();
            self.steps
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let inside: Vec<bool> =
                        s.needs.iter().map(|n| ids.contains(n.as_str())).collect();
                    inside.contains(&false).then_some((i, inside))
                })
                .collect()
        };
        for (i, inside) in with_outside {
            let s = &mut self.steps[i];
            let (mut ins, mut outs) = (Vec::new(), Vec::new());
            for (n, keep) in s.needs.drain(..).zip(inside) {
                if keep {
                    ins.push(n);
                } else {
                    outs.push(n);
                }
            }
            s.needs = ins;
            s.external_needs = outs;
        }

        let mut external_refs = BTreeMap::new();
        for s in &self.steps {
            for need in &s.external_needs {
                let (kind, rest) = need.split_once(':').unwrap_or((need.as_str(), ""));
                let r = match kind {
                    "build" | "test" | "push" | "verify" => rest
                        .split_once('/')
                        .and_then(|(i, a)| self.refs.get(i).and_then(|m| m.get(a)).cloned()),
                    "manifest-create" | "manifest-push" => rest
                        .split_once(':')
                        .and_then(|(i, t)| spec.image(i).map(|img| format!("{}:{t}", img.repo))),
                    _ => None,
                };
                if let Some(r) = r {
                    external_refs.insert(need.clone(), r);
                }
            }
        }
        let steps = topo_sort(std::mem::take(&mut self.steps))?;
        let mut registries: Vec<String> = steps
            .iter()
            .filter(|s| {
                matches!(
                    s.kind,
                    StepKind::Push | StepKind::ManifestPush | StepKind::ManifestCreate
                )
            })
            .filter_map(|s| s.reference.as_deref())
            // The registry is decided by the first component: parse one
            // reference per distinct first component, not every one.
            .map(|r| (r.split('/').next().unwrap_or(r), r))
            .collect::<BTreeMap<&str, &str>>()
            .into_values()
            .filter_map(|r| reference::parse(r).ok().and_then(|r| r.domain))
            .collect();
        registries.sort();
        registries.dedup();
        Ok(Plan {
            branch: self.ctx.branch.clone(),
            git_tag: self.ctx.git_tag.clone(),
            sha: self.ctx.sha.clone(),
            pull_request: self.ctx.pull_request.clone(),
            publish: self.publish,
            publish_reason: self.publish_reason.clone(),
            atomic: spec.publish.atomic,
            engine: self.engine,
            dir: spec.dir.clone(),
            jobs: spec.project.jobs,
            retries: spec.project.retries,
            steps,
            skipped: self.skipped,
            registries,
            external_refs,
            immutable_refs: spec.tags.arch.uses("sha") || spec.tags.arch.uses("short_sha"),
            insecure_registries: spec.project.insecure_registries.clone(),
        })
    }
}

/// Whether this build publishes lists, and why (SPEC.md §2).
pub fn decide_publish(spec: &Spec, ctx: &GitContext) -> (bool, String) {
    if let Some(pr) = &ctx.pull_request {
        return (
            false,
            format!("a pull/merge-request build ({pr}) never publishes"),
        );
    }
    if let Some(tag) = &ctx.git_tag {
        if let Some(p) = spec.publish.tags.matching(tag) {
            return (true, format!("git tag `{tag}` matches publish.tags `{p}`"));
        }
    }
    match &ctx.branch {
        Some(b) => match spec.publish.branches.matching(b) {
            Some(p) => (true, format!("branch `{b}` matches publish.branches `{p}`")),
            None => (
                false,
                match &ctx.git_tag {
                    Some(t) => format!("neither branch `{b}` nor git tag `{t}` matches [publish]"),
                    None => format!(
                        "branch `{b}` does not match publish.branches ({})",
                        spec.publish.branches.patterns.join(", ")
                    ),
                },
            ),
        },
        None => match &ctx.git_tag {
            Some(t) if spec.publish.tags.is_empty() => {
                (false, format!("git tag `{t}` and publish.tags is empty"))
            }
            Some(t) => (
                false,
                format!(
                    "git tag `{t}` does not match publish.tags ({})",
                    spec.publish.tags.patterns.join(", ")
                ),
            ),
            None => (false, "neither the branch nor a git tag is known".into()),
        },
    }
}

fn default_qemu_setup(host: &Host, engine: EngineKind) -> Vec<String> {
    if host.has_update_binfmts {
        vec!["update-binfmts".into(), "--enable".into()]
    } else {
        argv::qemu_register(engine)
    }
}

/// OCI labels every build gets, from the commit.
fn oci_labels(ctx: &GitContext, git: &GitValues) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(sha) = &ctx.sha {
        v.push(("org.opencontainers.image.revision".to_string(), sha.clone()));
    }
    if let Some(url) = &ctx.source_url {
        v.push(("org.opencontainers.image.source".to_string(), url.clone()));
    }
    if let Some(t) = ctx.commit_time {
        v.push(("org.opencontainers.image.created".to_string(), rfc3339(t)));
    }
    if let Some(ver) = git.version.as_ref() {
        v.push(("org.opencontainers.image.version".to_string(), ver.clone()));
    } else if let Some(s) = &git.short_sha {
        v.push(("org.opencontainers.image.version".to_string(), s.clone()));
    }
    v
}

/// Seconds since the epoch → `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn resolve_arch_flag(spec: &Spec, a: &str) -> Result<String, PlanError> {
    if spec.arch(a).is_some() {
        return Ok(a.to_string());
    }
    if a.contains('/') {
        if let Ok(p) = Platform::parse(a) {
            if let Some(x) = spec.arches.iter().find(|x| x.platform == p) {
                return Ok(x.name.clone());
            }
        }
    }
    if let Some(al) = crate::spec::arch::alias(a) {
        if spec.arch(al).is_some() {
            return Ok(al.to_string());
        }
    }
    let names: Vec<&str> = spec.arches.iter().map(|x| x.name.as_str()).collect();
    Err(PlanError::UnknownArch {
        given: a.to_string(),
        hint: crate::diagnostic::did_you_mean(a, names.iter().copied()),
        arches: names.join(", "),
    })
}

/// Images ordered so that dependencies come first; file order otherwise.
fn image_order(spec: &Spec) -> Vec<usize> {
    image_graph(spec)
        .topo_order_min_index()
        .map(|o| o.into_iter().map(|i| i as usize).collect())
        // A validated spec has no dependency cycle.
        .unwrap_or_else(|| (0..spec.images.len()).collect())
}

/// Images by index, an edge from each dependency to the image that uses it.
fn image_graph(spec: &Spec) -> Dag {
    let index: HashMap<&str, u32> = spec
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| (img.name.as_str(), i as u32))
        .collect();
    let mut edges = Vec::new();
    for (i, img) in spec.images.iter().enumerate() {
        for d in &img.depends_on {
            if let Some(&j) = index.get(d.as_str()) {
                edges.push((j, i as u32));
            }
        }
    }
    Dag::from_edges(spec.images.len(), &edges)
}

/// A deterministic topological order (the earliest-generated ready step first).
fn topo_sort(mut steps: Vec<Step>) -> Result<Vec<Step>, PlanError> {
    let mut pos = {
        let index: HashMap<&str, u32> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i as u32))
            .collect();
        let mut edges = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            for n in &s.needs {
                if let Some(&j) = index.get(n.as_str()) {
                    edges.push((j, i as u32));
                }
            }
        }
        let order = Dag::from_edges(steps.len(), &edges)
            .topo_order_min_index()
            .ok_or_else(|| PlanError::Internal("the plan has a cycle".into()))?;
        // pos[i]: where step i goes.
        let mut pos = vec![0usize; steps.len()];
        for (at, &i) in order.iter().enumerate() {
            pos[i as usize] = at;
        }
        pos
    };
    // Permute in place: a plan of 40,000 steps is tens of MiB, and a second
    // vector would double the peak.
    for i in 0..steps.len() {
        while pos[i] != i {
            let j = pos[i];
            steps.swap(i, j);
            pos.swap(i, j);
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
