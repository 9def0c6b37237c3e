//! What reporters know about the plan beyond the events: each step's image, arch,
//! tag and platforms (a per-arch step's platform; a list's entries), and whether
//! this build publishes. Built once from the [`Plan`] (or read back from the plan
//! event of an events file), so the scheduler's events stay small.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{Action, Plan, StepKind};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A per-arch step: its platform. A list (manifest-create / manifest-push): the
    /// platforms of its entries, in list order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanInfo {
    pub steps: BTreeMap<String, StepInfo>,
    /// Step ids in plan order.
    pub order: Vec<String>,
    /// This build publishes lists.
    pub publish: bool,
    /// Why it publishes or not.
    pub publish_reason: String,
}

impl PlanInfo {
    pub fn from_plan(plan: &Plan) -> Self {
        // A list's platforms are its manifest-create's entries.
        let mut lists: BTreeMap<(Option<&str>, Option<&str>), Vec<String>> = BTreeMap::new();
        for s in plan.steps() {
            if let Action::ManifestCreate { entries, .. } = &s.action {
                lists.insert(
                    (s.image(), s.tag()),
                    entries.iter().map(|e| e.platform.to_string()).collect(),
                );
            }
        }
        let steps = plan
            .steps()
            .iter()
            .map(|s| {
                let platforms = match s.kind() {
                    StepKind::ManifestCreate | StepKind::ManifestPush => lists
                        .get(&(s.image(), s.tag()))
                        .cloned()
                        .unwrap_or_default(),
                    _ => s.platform().iter().map(|p| p.to_string()).collect(),
                };
                (
                    s.id.to_string(),
                    StepInfo {
                        image: s.image().map(str::to_string),
                        arch: s.arch().map(str::to_string),
                        tag: s.tag().map(str::to_string),
                        platforms,
                    },
                )
            })
            .collect();
        PlanInfo {
            steps,
            order: plan.steps().iter().map(|s| s.id.to_string()).collect(),
            publish: plan.publish,
            publish_reason: plan.publish_reason.clone(),
        }
    }

    pub fn step(&self, id: &str) -> Option<&StepInfo> {
        self.steps.get(id)
    }

    pub fn platforms(&self, id: &str) -> &[String] {
        self.steps.get(id).map_or(&[], |s| s.platforms.as_slice())
    }

    pub fn image(&self, id: &str) -> Option<&str> {
        self.steps.get(id).and_then(|s| s.image.as_deref())
    }
}
