//! Draft → [`Plan`]: needs become indices (or external needs), steps nothing
//! needed that were drafted "only if needed" are dropped, the order is checked
//! topological, and the graph of needs is built once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{
    Action, DraftStep, ExternalNeed, Need, Plan, PlanError, Skipped, Step, StepId, StepIdx,
    StepKind,
};
use crate::graph::Dag;
use crate::spec::reference;

/// A plan being built: steps in order, each with its needs. Library users and
/// tests draft by hand with [`Draft::push`] and [`Need::Id`]; the planner drafts
/// with indices.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// The steps as the plan holds them (their external needs filled in by
    /// `seal`): a plan of 40,000 steps is tens of MiB, not copied again.
    steps: Vec<Step>,
    /// By step: its needs, and whether it is drafted only if needed.
    slots: Vec<Slot>,
    /// The needs of every step, one after another (`Slot::needs` are ranges in
    /// it): a drafted step's position, or, with [`OTHER`] set, the position of
    /// a need by id or an external need in `others`. A plan of 40,000 steps
    /// has ~120,000 needs, nearly all positions: as `Need`s (56 bytes) they
    /// were 7 MB, grown by doubling to 14.
    needs: Vec<u32>,
    others: Vec<Need>,
    skipped: Vec<Skipped>,
}

/// The bit of a [`Draft`]'s need that says it is in `others`.
const OTHER: u32 = 1 << 31;

#[derive(Debug, Clone)]
struct Slot {
    needs: std::ops::Range<u32>,
    /// Dropped by `seal` when no step needs it.
    only_if_needed: bool,
}

impl Draft {
    pub fn new() -> Draft {
        Draft::default()
    }

    /// Room for `steps` steps (a plan of 40,000 steps grown by doubling would
    /// hold two copies at once).
    pub fn with_capacity(steps: usize) -> Draft {
        Draft {
            steps: Vec::with_capacity(steps),
            slots: Vec::with_capacity(steps),
            needs: Vec::with_capacity(4 * steps),
            others: Vec::new(),
            skipped: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn push(&mut self, step: DraftStep) -> StepIdx {
        self.push_with(step.id, step.action, step.timeout, step.needs)
    }

    /// Draft a step; its position, for the needs of later steps.
    pub fn push_with(
        &mut self,
        id: StepId,
        action: Action,
        timeout: Option<Duration>,
        needs: impl IntoIterator<Item = Need>,
    ) -> StepIdx {
        let start = self.needs.len() as u32;
        for n in needs {
            match n {
                Need::Step(j) if j.0 < OTHER => self.needs.push(j.0),
                other => {
                    self.needs.push(OTHER | self.others.len() as u32);
                    self.others.push(other);
                }
            }
        }
        self.steps.push(Step {
            id,
            action,
            timeout,
            external: Box::default(),
        });
        self.slots.push(Slot {
            needs: start..self.needs.len() as u32,
            only_if_needed: false,
        });
        StepIdx::new(self.steps.len() - 1)
    }

    /// `seal` drops this step if no other step needs it (setup-qemu).
    pub fn only_if_needed(&mut self, idx: StepIdx) {
        if let Some(s) = self.slots.get_mut(idx.index()) {
            s.only_if_needed = true;
        }
    }

    /// Replace a drafted step's action (setup-qemu's, known once every image is drafted).
    pub fn set_action(&mut self, idx: StepIdx, action: Action) {
        if let Some(s) = self.steps.get_mut(idx.index()) {
            s.action = action;
        }
    }

    pub fn skip(&mut self, skipped: Skipped) {
        self.skipped.push(skipped);
    }

    /// The plan: needs resolved to indices or external needs, in a topological
    /// order. The header (branch, publish, …) is left at its defaults for the
    /// caller to fill. A cycle among the needs is an internal error.
    pub fn seal(self) -> Result<Plan, PlanError> {
        let Draft {
            mut steps,
            slots,
            needs,
            others,
            skipped,
        } = self;
        let by_id: HashMap<&StepId, u32> = if others.iter().any(|n| matches!(n, Need::Id(_))) {
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| (&s.id, i as u32))
                .collect()
        } else {
            HashMap::new()
        };
        // Needs inside the draft as (need, step) edges, the rest per step.
        let mut edges: Vec<(u32, u32)> = Vec::with_capacity(needs.len());
        let mut external: Vec<Vec<ExternalNeed>> = vec![Vec::new(); steps.len()];
        for (i, (s, slot)) in steps.iter().zip(&slots).enumerate() {
            for &n in &needs[slot.needs.start as usize..slot.needs.end as usize] {
                let n = match n & OTHER {
                    0 => &Need::Step(StepIdx(n)),
                    _ => &others[(n & !OTHER) as usize],
                };
                let inside = match n {
                    Need::Step(j) => Some(j.0),
                    Need::Id(id) => by_id.get(id).copied(),
                    Need::External(_) => None,
                };
                match (inside, n) {
                    (Some(j), _) if (j as usize) < steps.len() => edges.push((j, i as u32)),
                    (Some(j), _) => {
                        return Err(PlanError::Internal(format!(
                            "{} needs step {j}, which is not in the plan",
                            s.id
                        )))
                    }
                    (None, Need::External(e)) => external[i].push(e.clone()),
                    (None, Need::Id(id)) => external[i].push(ExternalNeed {
                        id: id.clone(),
                        reference: None,
                    }),
                    (None, Need::Step(_)) => {}
                }
            }
        }
        drop(by_id);
        let keep = kept(&slots, &edges);
        for (s, ext) in steps.iter_mut().zip(external) {
            s.external = ext.into_boxed_slice();
        }
        // In place: the steps kept keep their order.
        let mut at = 0;
        steps.retain(|_| {
            at += 1;
            keep[at - 1].is_some()
        });
        // A dropped step is needed by nothing; its own needs go with it.
        let mut edges: Vec<(u32, u32)> = edges
            .into_iter()
            .filter_map(|(need, step)| Some((keep[need as usize]?, keep[step as usize]?)))
            .collect();
        let mut graph = Dag::from_edges(steps.len(), &edges);
        // Drafts of the planner are in order by construction; a hand-made one
        // may not be.
        if edges.iter().any(|&(need, step)| need >= step) {
            let order = graph
                .topo_order_min_index()
                .ok_or_else(|| PlanError::Internal("the plan has a cycle".into()))?;
            let mut pos = vec![0u32; steps.len()];
            for (at, &i) in order.iter().enumerate() {
                pos[i as usize] = at as u32;
            }
            permute(&mut steps, &pos);
            for e in edges.iter_mut() {
                *e = (pos[e.0 as usize], pos[e.1 as usize]);
            }
            // Each step's needs keep their drafted order: a row of the graph is
            // in the order its edges are given.
            graph = Dag::from_edges(steps.len(), &edges);
        }
        let registries = registries(&steps);
        Ok(Plan {
            steps,
            graph,
            skipped,
            registries,
            ..Plan::empty()
        })
    }
}

/// Where each drafted step goes in the plan, `None` for the steps dropped (drafted
/// only if needed, and needed by nothing).
fn kept(steps: &[Slot], edges: &[(u32, u32)]) -> Vec<Option<u32>> {
    let mut needed = vec![false; steps.len()];
    for &(need, _) in edges {
        needed[need as usize] = true;
    }
    let mut next = 0;
    steps
        .iter()
        .zip(needed)
        .map(|(s, needed)| {
            (needed || !s.only_if_needed).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// Put step `i` at `pos[i]`, in place: a plan of 40,000 steps is tens of MiB, and
/// a second vector would double the peak.
fn permute(steps: &mut [Step], pos: &[u32]) {
    let mut pos = pos.to_vec();
    for i in 0..steps.len() {
        while pos[i] as usize != i {
            let j = pos[i] as usize;
            steps.swap(i, j);
            pos.swap(i, j);
        }
    }
}

/// The registries the plan pushes to (for login and preflight), sorted.
fn registries(steps: &[Step]) -> Vec<String> {
    let mut registries: Vec<String> = steps
        .iter()
        .filter(|s| {
            matches!(
                s.kind(),
                StepKind::Push | StepKind::ManifestPush | StepKind::ManifestCreate
            )
        })
        .filter_map(|s| s.reference())
        // The registry is decided by the first component: parse one reference per
        // distinct first component, not every one.
        .map(|r| (r.split('/').next().unwrap_or(r), r))
        .collect::<BTreeMap<&str, &str>>()
        .into_values()
        .filter_map(|r| reference::parse(r).ok().and_then(|r| r.domain))
        .collect();
    registries.sort();
    registries.dedup();
    registries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::argv::EngineTarget;
    use crate::spec::{EngineKind, Platform};

    fn id(kind: StepKind, image: &str) -> StepId {
        StepId::per_arch(kind, &image.into(), &"amd64".into()).unwrap()
    }

    fn push(id: StepId, needs: Vec<Need>) -> DraftStep {
        DraftStep {
            action: Action::Push {
                engine: EngineTarget::local(EngineKind::Docker),
                reference: format!("r/{id}").into(),
                platform: Platform::host(),
            },
            id,
            needs,
            timeout: None,
        }
    }

    fn shown(plan: &Plan) -> Vec<String> {
        plan.indices()
            .map(|i| {
                let needs: Vec<String> = plan.need_ids(i).map(|n| n.to_string()).collect();
                format!("{} <- [{}]", plan.step(i).id, needs.join(" "))
            })
            .collect()
    }

    #[test]
    fn needs_by_position_and_by_id_keep_their_drafted_order() {
        let (a, b, c) = (
            id(StepKind::Build, "a"),
            id(StepKind::Push, "a"),
            id(StepKind::Push, "c"),
        );
        let mut d = Draft::new();
        let first = d.push(push(a, vec![]));
        d.push(push(b.clone(), vec![Need::Step(first)]));
        d.push(push(
            c,
            vec![
                Need::Id(b),
                Need::External(ExternalNeed {
                    id: id(StepKind::Push, "base"),
                    reference: Some("r/base".into()),
                }),
                Need::Step(first),
            ],
        ));
        let p = d.seal().unwrap();
        assert_eq!(
            shown(&p),
            [
                "build:a/amd64 <- []",
                "push:a/amd64 <- [build:a/amd64]",
                "push:c/amd64 <- [push:a/amd64 build:a/amd64]",
            ]
        );
        let ext = p.step(StepIdx::new(2)).external_needs();
        assert_eq!(ext.len(), 1);
        assert_eq!(ext[0].reference.as_deref(), Some("r/base"));
    }

    #[test]
    fn needs_by_id_become_indices_or_external() {
        let (a, b) = (id(StepKind::Build, "a"), id(StepKind::Push, "a"));
        let mut d = Draft::new();
        let first = d.push(push(a.clone(), vec![]));
        d.push(push(
            b.clone(),
            vec![Need::Step(first), Need::Id(id(StepKind::Push, "base"))],
        ));
        let p = d.seal().unwrap();
        assert_eq!(
            shown(&p),
            ["build:a/amd64 <- []", "push:a/amd64 <- [build:a/amd64]"]
        );
        let ext = p.step(p.find(&b).unwrap()).external_needs();
        assert_eq!(ext.len(), 1);
        assert_eq!(ext[0].id, id(StepKind::Push, "base"));
        assert_eq!(ext[0].reference, None);
        assert_eq!(
            p.dependents(first).collect::<Vec<_>>(),
            [p.find(&b).unwrap()]
        );
    }

    #[test]
    fn a_hand_made_draft_out_of_order_is_sorted() {
        let mut d = Draft::new();
        d.push(push(
            id(StepKind::Push, "a"),
            vec![Need::Id(id(StepKind::Build, "a"))],
        ));
        d.push(push(id(StepKind::Build, "b"), vec![]));
        d.push(push(id(StepKind::Build, "a"), vec![]));
        let p = d.seal().unwrap();
        assert_eq!(
            shown(&p),
            [
                "build:b/amd64 <- []",
                "build:a/amd64 <- []",
                "push:a/amd64 <- [build:a/amd64]"
            ]
        );
    }

    #[test]
    fn a_step_only_if_needed_goes_when_nothing_needs_it() {
        let mut d = Draft::new();
        let q = d.push(push(StepId::SetupQemu, vec![]));
        d.only_if_needed(q);
        d.push(push(id(StepKind::Build, "a"), vec![]));
        assert_eq!(shown(&d.clone().seal().unwrap()), ["build:a/amd64 <- []"]);
        d.push(push(id(StepKind::Build, "b"), vec![Need::Step(q)]));
        assert_eq!(
            shown(&d.seal().unwrap()),
            [
                "setup-qemu <- []",
                "build:a/amd64 <- []",
                "build:b/amd64 <- [setup-qemu]"
            ]
        );
    }

    #[test]
    fn a_cycle_is_an_internal_error() {
        let (a, b) = (id(StepKind::Build, "a"), id(StepKind::Build, "b"));
        let mut d = Draft::new();
        d.push(push(a.clone(), vec![Need::Id(b.clone())]));
        d.push(push(b, vec![Need::Id(a)]));
        let e = d.seal().unwrap_err();
        assert!(matches!(e, PlanError::Internal(_)), "{e}");
        assert_eq!(e.exit_code(), crate::exit::INTERNAL);
    }
}
