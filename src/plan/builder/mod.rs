//! Spec + git context + options → a [`Draft`], sealed into the [`Plan`].
//!
//! Images are drafted in dependency order. For each: its per-arch steps
//! (per_arch.rs), its lists (lists.rs), the checks of what the registry serves
//! (verify.rs). Only the selected stages are drafted; a need on a step that is
//! not drafted is external, with its reference. setup-qemu is drafted first and
//! dropped when nothing emulated needs it (qemu.rs).

mod changed;
mod labels;
mod lists;
mod per_arch;
mod qemu;
mod refs;
mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::options::Selection;
use super::{
    decide_publish, Draft, ExternalNeed, Need, Plan, PlanError, PlanOptions, SkipId, Skipped,
    StepId, StepIdx, StepKind,
};
use crate::context::GitContext;
use crate::spec::vars::{GitValues, Vars};
use crate::spec::{Arch, EngineKind, Image, PushMode, Spec};

/// The time limit of test, push, list and verify steps when none is configured.
pub const DEFAULT_REGISTRY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Image and arch names, each allocated once and shared by every id.
struct Names {
    /// By image index.
    images: Vec<Arc<str>>,
    /// By image index, then by the image's arch position.
    archs: Vec<Vec<Arc<str>>>,
    /// Image index by name.
    index: HashMap<String, usize>,
}

impl Names {
    fn new(spec: &Spec) -> Names {
        let mut interned: BTreeMap<&str, Arc<str>> = BTreeMap::new();
        let archs = spec
            .images
            .iter()
            .map(|img| {
                img.archs
                    .iter()
                    .map(|a| {
                        interned
                            .entry(a)
                            .or_insert_with(|| a.as_str().into())
                            .clone()
                    })
                    .collect()
            })
            .collect();
        Names {
            images: spec.images.iter().map(|i| i.name.as_str().into()).collect(),
            archs,
            index: spec
                .images
                .iter()
                .enumerate()
                .map(|(i, img)| (img.name.clone(), i))
                .collect(),
        }
    }
}

/// The steps drafted for one arch of one image, for the needs of later steps.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    build: Option<StepIdx>,
    test: Option<StepIdx>,
    push: Option<StepIdx>,
}

impl Slot {
    fn get(&self, kind: StepKind) -> Option<StepIdx> {
        match kind {
            StepKind::Build => self.build,
            StepKind::Test => self.test,
            StepKind::Push => self.push,
            _ => None,
        }
    }
}

/// Builds the draft of a plan. See the module comment.
pub(super) struct PlanBuilder<'a> {
    spec: &'a Spec,
    ctx: &'a GitContext,
    opts: &'a PlanOptions,
    git: GitValues,
    engine: EngineKind,
    sel: Selection,
    publish: bool,
    publish_reason: String,
    /// The OCI labels of every build and the annotations of every list (from
    /// the commit: the same for all).
    labels: Vec<(String, String)>,
    /// Per-arch images are pushed ([publish] push and this build).
    pushes: bool,
    names: Names,
    /// Per-arch references, by image index and the image's arch position,
    /// each shared by every step and list entry that names it.
    refs: Vec<Vec<refs::ArchRef>>,
    /// What the build of each selected arch of each image drafted is made of,
    /// worked out on threads before drafting (taken by `per_arch`).
    prepared: Vec<Vec<per_arch::Prepared>>,
    slots: Vec<Vec<Slot>>,
    draft: Draft,
    qemu: StepIdx,
    /// Arches that need emulation, of the images planned.
    emulated: BTreeSet<String>,
    /// `[publish] atomic`: every manifest-create, and the manifest-push steps
    /// drafted after them (each needs every create: no tag moves before every
    /// list of the file is assembled).
    creates: Vec<StepIdx>,
    deferred: Vec<lists::Deferred>,
    /// The manifest-push steps drafted after every create: an atomic release's
    /// verify steps need all of them (no verify passes before every tag moved).
    atomic_pushes: Vec<StepIdx>,
}

impl<'a> PlanBuilder<'a> {
    pub fn new(
        spec: &'a Spec,
        ctx: &'a GitContext,
        opts: &'a PlanOptions,
    ) -> Result<PlanBuilder<'a>, PlanError> {
        let sel = Selection::resolve(spec, opts)?;
        let (publish, publish_reason) = decide_publish(spec, ctx);
        let pushes = match spec.publish.push {
            PushMode::Always => true,
            PushMode::PublishBranches => publish,
            PushMode::Never => false,
        };
        let git = ctx.values();
        let labels = labels::oci_labels(ctx, &git);
        Ok(PlanBuilder {
            spec,
            ctx,
            opts,
            git,
            engine: opts.engine.unwrap_or(spec.project.engine),
            sel,
            publish,
            publish_reason,
            labels,
            pushes,
            names: Names::new(spec),
            refs: Vec::new(),
            prepared: Vec::new(),
            slots: spec
                .images
                .iter()
                .map(|i| vec![Slot::default(); i.archs.len()])
                .collect(),
            draft: Draft::new(),
            qemu: StepIdx::new(0),
            emulated: BTreeSet::new(),
            creates: Vec::new(),
            deferred: Vec::new(),
            atomic_pushes: Vec::new(),
        })
    }

    pub fn build(mut self) -> Result<Plan, PlanError> {
        self.check_sha()?;
        let spec = self.spec;
        let affected = self.affected_images();
        self.refs = self.render_refs(affected.as_deref())?;
        self.prepared = self.prepare_build_args(affected.as_deref());
        // An upper bound of the steps: build, test, push and verify per arch, a
        // create and a push per list, setup-qemu.
        let bound: usize = spec
            .images
            .iter()
            .map(|i| 4 * i.archs.len() + 2 * spec.tags.manifest.len())
            .sum();
        self.draft = Draft::with_capacity(bound + 1);
        self.qemu = self.draft_qemu();
        let mut verifies = Vec::new();
        for i in self.image_order() {
            if !self.sel.images[i] {
                continue;
            }
            if affected.as_ref().is_some_and(|a| !a[i]) {
                self.skip_unchanged(i);
                continue;
            }
            let pushed = self.per_arch(i)?;
            let first_list = self.lists(i)?;
            if spec.verify.enabled && self.sel.stage(super::Stage::Verify) {
                // Atomic: the verify steps come after every tag move.
                if spec.publish.atomic {
                    verifies.push((i, pushed, first_list));
                } else {
                    self.verify(i, &pushed, first_list)?;
                }
            }
        }
        self.draft_deferred_pushes();
        for (i, pushed, first_list) in verifies {
            self.verify(i, &pushed, first_list)?;
        }
        self.finish_qemu();
        let mut plan = std::mem::take(&mut self.draft).seal()?;
        plan.immutable_refs = self.immutable_refs();
        let ctx = self.ctx;
        plan.branch = ctx.branch.clone();
        plan.git_tag = ctx.git_tag.clone();
        plan.sha = ctx.sha.clone();
        plan.pull_request = ctx.pull_request.clone();
        plan.publish = self.publish;
        plan.publish_reason = self.publish_reason;
        plan.atomic = spec.publish.atomic;
        plan.engine = self.engine;
        plan.dir = spec.dir.clone();
        plan.jobs = spec.project.jobs;
        plan.retries = spec.project.retries;
        plan.insecure_registries = spec.project.insecure_registries.clone();
        plan.builder = self.opts.builder.clone();
        Ok(plan)
    }

    /// The per-arch tags name a commit (`{sha}`/`{short_sha}`): each names
    /// what that commit pushed.
    fn immutable_refs(&self) -> bool {
        let arch = &self.spec.tags.arch;
        arch.uses("sha") || arch.uses("short_sha")
    }

    /// Images in dependency order, file order among equals.
    fn image_order(&self) -> Vec<usize> {
        super::image_graph(self.spec)
            .topo_order_min_index()
            .map(|o| o.into_iter().map(|i| i as usize).collect())
            // A validated spec has no dependency cycle.
            .unwrap_or_else(|| (0..self.spec.images.len()).collect())
    }

    /// `--changed-since`: an image no changed file touches is built at the base.
    fn skip_unchanged(&mut self, i: usize) {
        let img = &self.spec.images[i];
        let rev = self
            .opts
            .changed_files
            .as_ref()
            .map_or("", |c| c.0.as_str());
        for kind in [StepKind::Build, StepKind::Push] {
            self.draft.skip(Skipped {
                id: SkipId::Image {
                    kind,
                    image: self.names.images[i].clone(),
                },
                reason: format!(
                    "unchanged since {rev}: no changed file matches its paths ({})",
                    img.paths.join(", ")
                ),
            });
        }
    }

    fn arch(&self, a: &str) -> Result<&'a Arch, PlanError> {
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

    /// A step's time limit: `--step-timeout`, the image's `timeout`, the
    /// project's; else [`DEFAULT_REGISTRY_TIMEOUT`] for the steps that wait on a
    /// registry or a container (a registry that holds a request open must not
    /// hang the run forever). Builds stay unbounded unless configured.
    fn timeout(&self, img: &Image, kind: StepKind) -> Option<Duration> {
        let configured = self
            .opts
            .step_timeout
            .or(img.timeout)
            .or(self.spec.project.timeout);
        let bounded = matches!(
            kind,
            StepKind::Test
                | StepKind::Push
                | StepKind::ManifestCreate
                | StepKind::ManifestPush
                | StepKind::Verify
        );
        configured.or(bounded.then_some(DEFAULT_REGISTRY_TIMEOUT))
    }

    /// The id of a per-arch step of image `i`, arch position `at`.
    fn id(&self, kind: StepKind, i: usize, at: usize) -> StepId {
        StepId::per_arch(kind, &self.names.images[i], &self.names.archs[i][at])
            .unwrap_or(StepId::SetupQemu)
    }

    /// A need on a per-arch step: in the plan if it was drafted, else external
    /// (its reference is the per-arch one).
    fn need(&self, kind: StepKind, i: usize, at: usize) -> Need {
        match self.slots[i][at].get(kind) {
            Some(idx) => Need::Step(idx),
            None => Need::External(ExternalNeed {
                id: self.id(kind, i, at),
                reference: Some(self.refs[i][at].reference.clone()),
            }),
        }
    }
}

/// Images per thread below which threads cost more than they save.
pub(super) const IMAGES_PER_THREAD: usize = 64;
