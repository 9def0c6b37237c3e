//! Steps, drafted and sealed. A [`DraftStep`] names its needs ([`Need`]) by
//! index or by id; [`Draft::seal`](super::Draft::seal) turns them into the
//! indices of a [`Plan`](super::Plan), or into [`ExternalNeed`]s when the step
//! needed is not in the plan.

use std::sync::Arc;
use std::time::Duration;

use serde::ser::SerializeMap;
use serde::Serialize;

use super::{Action, SkipId, StepId, StepIdx, StepKind};
use crate::spec::Platform;

/// A need outside the plan (another stage, an unselected or unchanged image or
/// arch): checked in the registry, or locally, before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalNeed {
    pub id: StepId,
    /// What is checked: the per-arch reference, or the list, behind `id`.
    pub reference: Option<Arc<str>>,
}

/// A need of a drafted step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A step drafted before, by its position in the draft.
    Step(StepIdx),
    /// A step by id: in the plan if the draft has it, external otherwise.
    Id(StepId),
    /// A step known not to be in the plan, with its reference.
    External(ExternalNeed),
}

/// A step before sealing.
#[derive(Debug, Clone)]
pub struct DraftStep {
    pub id: StepId,
    pub needs: Vec<Need>,
    pub action: Action,
    pub timeout: Option<Duration>,
}

/// A step of a sealed plan. Its needs inside the plan are the plan's
/// ([`Plan::needs`](super::Plan::needs)); those outside it are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: StepId,
    pub action: Action,
    pub timeout: Option<Duration>,
    pub(super) external: Box<[ExternalNeed]>,
}

impl Step {
    pub fn kind(&self) -> StepKind {
        self.id.kind()
    }

    pub fn image(&self) -> Option<&str> {
        self.id.image()
    }

    pub fn arch(&self) -> Option<&str> {
        self.id.arch()
    }

    pub fn tag(&self) -> Option<&str> {
        self.id.tag()
    }

    pub fn platform(&self) -> Option<&Platform> {
        self.action.platform()
    }

    /// The reference the step produces or checks (see [`Action::reference`]).
    pub fn reference(&self) -> Option<&str> {
        self.action.reference()
    }

    /// Needs outside the plan, in the order they were drafted.
    pub fn external_needs(&self) -> &[ExternalNeed] {
        &self.external
    }

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub id: SkipId,
    pub reason: String,
}

/// SPEC.md §4: `id`, `kind`, then `image`, `arch`, `tag` where there is one, then `reason`.
impl Serialize for Skipped {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("kind", &self.id.kind())?;
        if let Some(image) = self.id.image() {
            m.serialize_entry("image", image)?;
        }
        if let Some(arch) = self.id.arch() {
            m.serialize_entry("arch", arch)?;
        }
        if let Some(tag) = self.id.tag() {
            m.serialize_entry("tag", tag)?;
        }
        m.serialize_entry("reason", &self.reason)?;
        m.end()
    }
}
