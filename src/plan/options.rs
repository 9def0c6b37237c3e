//! What to plan ([`PlanOptions`]) and the selection it resolves to against a spec.

use std::collections::BTreeSet;
use std::time::Duration;

use globset::GlobSetBuilder;

use super::{PlanError, Stage};
pub use crate::context::{BuilderChoice, Host};
use crate::spec::{EngineKind, Platform, Spec};

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
    /// The docker builder, as the CLI's detection resolved `[project] builder`
    /// (`--builder`); podman ignores it.
    pub builder: BuilderChoice,
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
            builder: BuilderChoice::default(),
        }
    }
}

/// The options resolved against the spec: which images, arches and stages.
#[derive(Debug, Clone)]
pub(super) struct Selection {
    /// By index in the spec.
    pub images: Vec<bool>,
    /// `None`: every arch.
    pub archs: Option<BTreeSet<String>>,
    pub stages: BTreeSet<Stage>,
}

impl Selection {
    pub fn resolve(spec: &Spec, opts: &PlanOptions) -> Result<Selection, PlanError> {
        let images = if opts.images.is_empty() {
            vec![true; spec.images.len()]
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
            let images: Vec<bool> = spec.images.iter().map(|i| set.is_match(&i.name)).collect();
            if !images.contains(&true) {
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
            images
        };
        let archs = if opts.archs.is_empty() {
            None
        } else {
            let mut set = BTreeSet::new();
            for a in &opts.archs {
                set.insert(resolve_arch_flag(spec, a)?);
            }
            Some(set)
        };
        let stages: BTreeSet<Stage> = if opts.stages.is_empty() {
            Stage::ALL.into()
        } else {
            opts.stages.iter().copied().collect()
        };
        Ok(Selection {
            images,
            archs,
            stages,
        })
    }

    pub fn arch(&self, a: &str) -> bool {
        self.archs.as_ref().is_none_or(|s| s.contains(a))
    }

    pub fn stage(&self, s: Stage) -> bool {
        self.stages.contains(&s)
    }
}

/// `--arch`: an arch's name, a platform of one, or an alias (`aarch64`).
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
