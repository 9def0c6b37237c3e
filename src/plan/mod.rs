//! Spec + git context + options → [`Plan`]: the DAG of steps of SPEC.md §2, each
//! with the exact argv it runs. Pure: no I/O happens here.
//!
//! The builder (builder/) drafts the steps of the selected images, arches and
//! stages into a [`Draft`]; [`Draft::seal`] makes the immutable [`Plan`], whose
//! needs are indices of its own steps ([`StepIdx`]) and whose needs outside it
//! carry the reference they are checked by ([`ExternalNeed`]).

mod action;
mod builder;
mod error;
mod id;
mod options;
mod publish;
pub mod render;
mod seal;
mod step;

use std::collections::HashMap;
use std::path::PathBuf;

pub use action::{Action, Check, Expect, ImageLists, ListEntry, Request};
pub use error::PlanError;
pub use id::{Name, SkipId, Stage, StepId, StepIdx, StepKind};
pub use options::{BuilderChoice, Host, PlanOptions};
pub use publish::decide_publish;
pub use render::{
    render_dot, render_json, render_text, shell_quote, write_json, write_json_compact,
};
pub use seal::Draft;
pub use step::{DraftStep, ExternalNeed, Need, Skipped, Step};

use crate::context::GitContext;
use crate::engine::argv::EngineTarget;
use crate::graph::Dag;
use crate::spec::{EngineKind, Spec};

/// The DAG of steps, in a deterministic topological order. The steps and their
/// needs are fixed when the plan is sealed; the header fields describe the build.
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
    /// The per-arch references contain the commit (`{sha}`/`{short_sha}`), so an
    /// existing one is this commit's image (what `--skip-existing` relies on).
    pub immutable_refs: bool,
    /// `[project] insecure_registries`.
    pub insecure_registries: Vec<String>,
    /// The docker builder and why (docker only).
    pub builder: BuilderChoice,
    steps: Vec<Step>,
    /// An edge from each need to the step that needs it, over step indices.
    graph: Dag,
    skipped: Vec<Skipped>,
    registries: Vec<String>,
}

impl Plan {
    /// Build a plan. Errors are about the file (a template without a value) or the
    /// options (an unknown `--arch`): exit code 2.
    pub fn new(spec: &Spec, ctx: &GitContext, opts: &PlanOptions) -> Result<Plan, PlanError> {
        builder::PlanBuilder::new(spec, ctx, opts)?.build()
    }

    /// A plan of no steps with an empty header, for [`Draft::seal`] to fill.
    fn empty() -> Plan {
        Plan {
            branch: None,
            git_tag: None,
            sha: None,
            pull_request: None,
            publish: false,
            publish_reason: String::new(),
            atomic: false,
            engine: EngineKind::default(),
            dir: PathBuf::new(),
            jobs: None,
            retries: None,
            immutable_refs: false,
            insecure_registries: Vec::new(),
            builder: BuilderChoice::default(),
            steps: Vec::new(),
            graph: Dag::default(),
            skipped: Vec::new(),
            registries: Vec::new(),
        }
    }

    /// Every step, in order: a step comes after all of its needs.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The indices of the steps, in order.
    pub fn indices(&self) -> impl ExactSizeIterator<Item = StepIdx> + use<> {
        (0..self.steps.len()).map(StepIdx::new)
    }

    pub fn step(&self, idx: StepIdx) -> &Step {
        &self.steps[idx.index()]
    }

    /// The steps of this plan `idx` needs, in the order they were drafted.
    pub fn needs(&self, idx: StepIdx) -> impl ExactSizeIterator<Item = StepIdx> + '_ {
        self.graph.preds(idx.0).iter().map(|&i| StepIdx(i))
    }

    /// The ids of the steps of this plan `idx` needs.
    pub fn need_ids(&self, idx: StepIdx) -> impl ExactSizeIterator<Item = &StepId> + '_ {
        self.needs(idx).map(|n| &self.steps[n.index()].id)
    }

    /// The steps that need `idx`.
    pub fn dependents(&self, idx: StepIdx) -> impl ExactSizeIterator<Item = StepIdx> + '_ {
        self.graph.succs(idx.0).iter().map(|&i| StepIdx(i))
    }

    /// The needs as a graph over step indices (an edge from each need to its
    /// step), for schedulers.
    pub fn graph(&self) -> &Dag {
        &self.graph
    }

    pub fn find(&self, id: &StepId) -> Option<StepIdx> {
        self.steps
            .iter()
            .position(|s| &s.id == id)
            .map(StepIdx::new)
    }

    /// The step whose id prints as `id` (`build:api/amd64`).
    pub fn find_by_display(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// What was left out, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Registries the plan pushes to (for login and preflight), sorted.
    pub fn registries(&self) -> &[String] {
        &self.registries
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
