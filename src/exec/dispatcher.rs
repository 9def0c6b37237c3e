//! What runs next: a pure state machine over the plan's steps, with no threads,
//! no clock and no I/O. The pool tells it what happened (a step started,
//! finished, a signal came); it answers with what follows (steps that can no
//! longer run, signals to send) and hands out ready steps, the longest chain of
//! dependents first. Keep-going, fail-fast and interruption are data ([`Stop`]),
//! as turborepo's `StopExecution`.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use crate::events::StepStatus;
use crate::graph::Dag;
use crate::plan::{Plan, StepKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Independent steps go on; dependents of a failure are skipped.
    KeepGoing,
    /// Start nothing new; end what runs.
    FailFast,
}

/// Why nothing new starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    None,
    /// `--fail-fast` after a failure: what is left is skipped, with this reason.
    AllTasks {
        reason: String,
    },
    /// A signal came: what is left is cancelled.
    Interrupted {
        signal: i32,
    },
}

/// What the pool must do about a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Step `i` ended with this status: the step that finished, or one that can
    /// no longer run (its needs failed, atomic publishing, the run stopped).
    Finished(usize, StepStatus),
    /// End every running command: SIGTERM now, SIGKILL after the grace period.
    Terminate,
    /// End every running command at once (a second signal).
    Kill,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Pending,
    Running,
    Done(StepStatus),
}

pub struct Dispatcher<'p> {
    plan: &'p Plan,
    /// need → step: a step's needs are its predecessors, in the order it lists
    /// them; its dependents are its successors, in plan order.
    dag: &'p Dag,
    /// The longest chain of steps that waits on each step (itself included).
    depth: Vec<u32>,
    state: Vec<State>,
    /// Pending steps whose needs all succeeded, longest chain first, then in plan
    /// order (a base image and what builds on it start before a lone image: the
    /// critical path is not left for last).
    ready: BTreeSet<(Reverse<u32>, usize)>,
    running: usize,
    failure: FailureMode,
    stop: Stop,
    /// Steps an atomic list waits for (setup-qemu, build, test, push), sorted.
    producers: Vec<usize>,
    producers_ok: usize,
    /// A step ended badly: the skip and atomic passes have something to find.
    bad_seen: bool,
}

impl<'p> Dispatcher<'p> {
    pub fn new(plan: &'p Plan, failure: FailureMode) -> Self {
        let n = plan.steps().len();
        let dag = plan.graph();
        let depth = dag.longest_chain();
        let producers = (0..n)
            .filter(|&i| {
                matches!(
                    plan.steps()[i].kind(),
                    StepKind::SetupQemu | StepKind::Build | StepKind::Test | StepKind::Push
                )
            })
            .collect();
        let mut d = Dispatcher {
            plan,
            dag,
            depth,
            state: vec![State::Pending; n],
            ready: BTreeSet::new(),
            running: 0,
            failure,
            stop: Stop::None,
            producers,
            producers_ok: 0,
            bad_seen: false,
        };
        d.ready = (0..n)
            .filter(|&i| d.needs_ok(i))
            .map(|i| d.key(i))
            .collect();
        d
    }

    fn key(&self, i: usize) -> (Reverse<u32>, usize) {
        (Reverse(self.depth[i]), i)
    }

    fn needs_ok(&self, i: usize) -> bool {
        self.dag
            .preds(i as u32)
            .iter()
            .all(|&j| matches!(&self.state[j as usize], State::Done(st) if st.is_ok()))
    }

    /// Steps still running.
    pub fn running(&self) -> usize {
        self.running
    }

    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Step `i` is done before anything runs (setup-qemu in preflight).
    pub fn preset(&mut self, i: usize, status: StepStatus) {
        if self.state[i] == State::Pending {
            self.ready.remove(&self.key(i));
            self.record(i, status);
        }
    }

    /// What the presets decided (steps that can no longer run). Call once, after
    /// the presets and before the first [`Dispatcher::next`].
    pub fn start(&mut self) -> Vec<Effect> {
        self.settle()
    }

    /// The next step to launch, if one is ready and fewer than `jobs` run. It is
    /// marked running.
    pub fn next(&mut self, jobs: usize) -> Option<usize> {
        if self.stop != Stop::None || self.running >= jobs.max(1) {
            return None;
        }
        let gated = self.plan.atomic && self.producers_ok < self.producers.len();
        let &(key, i) = self
            .ready
            .iter()
            .find(|&&(_, i)| !(gated && self.plan.steps()[i].kind() == StepKind::ManifestCreate))?;
        self.ready.remove(&(key, i));
        self.state[i] = State::Running;
        self.running += 1;
        Some(i)
    }

    /// Running step `i` ended with `status`. The first effect is its own end
    /// (a failure after an interruption counts as cancelled).
    pub fn finished(&mut self, i: usize, status: StepStatus) -> Vec<Effect> {
        self.running = self.running.saturating_sub(1);
        let status = if matches!(self.stop, Stop::Interrupted { .. }) && !status.is_ok() {
            StepStatus::Cancelled
        } else {
            status
        };
        let failed = status.is_failure();
        let mut effects = vec![Effect::Finished(i, status.clone())];
        self.record(i, status);
        if failed && self.failure == FailureMode::FailFast && self.stop == Stop::None {
            self.stop = Stop::AllTasks {
                reason: format!(
                    "not started: --fail-fast after {} failed",
                    self.plan.steps()[i].id
                ),
            };
            effects.push(Effect::Terminate);
        }
        effects.extend(self.settle());
        effects
    }

    /// SIGINT or SIGTERM: nothing new starts, what runs is ended; a second
    /// signal kills at once.
    pub fn interrupt(&mut self, signal: i32) -> Vec<Effect> {
        if matches!(self.stop, Stop::Interrupted { .. }) {
            return vec![Effect::Kill];
        }
        self.stop = Stop::Interrupted { signal };
        vec![Effect::Terminate]
    }

    /// Nothing runs and nothing can start: the run is over.
    pub fn stalled(&self) -> bool {
        self.running == 0
            && (self.stop != Stop::None
                || !self.ready.iter().any(|&(_, i)| {
                    !(self.plan.atomic
                        && self.plan.steps()[i].kind() == StepKind::ManifestCreate
                        && self.producers_ok < self.producers.len())
                }))
    }

    /// The end of the run: every step that never started, cancelled (after an
    /// interruption) or skipped with the reason the run stopped.
    pub fn drain(mut self) -> Vec<Effect> {
        let status = match &self.stop {
            Stop::Interrupted { .. } => StepStatus::Cancelled,
            Stop::AllTasks { reason } => StepStatus::Skipped(reason.clone()),
            Stop::None => StepStatus::Skipped("not started".into()),
        };
        let mut effects = Vec::new();
        for i in 0..self.state.len() {
            if self.state[i] == State::Pending {
                self.state[i] = State::Done(status.clone());
                effects.push(Effect::Finished(i, status.clone()));
            }
        }
        effects
    }

    fn record(&mut self, i: usize, status: StepStatus) {
        if status.is_ok() {
            self.producers_ok += usize::from(self.producers.binary_search(&i).is_ok());
        } else {
            self.bad_seen = true;
        }
        self.state[i] = State::Done(status);
        for k in 0..self.dag.succs(i as u32).len() {
            let d = self.dag.succs(i as u32)[k] as usize;
            if self.state[d] == State::Pending && self.needs_ok(d) {
                self.ready.insert(self.key(d));
            }
        }
    }

    fn skip(&mut self, i: usize, reason: String, effects: &mut Vec<Effect>) {
        self.ready.remove(&self.key(i));
        let status = StepStatus::Skipped(reason);
        effects.push(Effect::Finished(i, status.clone()));
        self.record(i, status);
    }

    /// Skip what can no longer run, until nothing changes: a step whose need
    /// failed or did not run; with atomic publishing, every list once a
    /// build/test/push of any image did not succeed.
    fn settle(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !self.bad_seen {
            return effects;
        }
        loop {
            self.skip_blocked(&mut effects);
            if !self.skip_atomic_lists(&mut effects) {
                return effects;
            }
        }
    }

    fn skip_blocked(&mut self, effects: &mut Vec<Effect>) {
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..self.state.len() {
                if self.state[i] != State::Pending {
                    continue;
                }
                let blocked =
                    self.dag
                        .preds(i as u32)
                        .iter()
                        .find_map(|&j| match &self.state[j as usize] {
                            State::Done(st) if !st.is_ok() => Some((j as usize, st.clone())),
                            _ => None,
                        });
                if let Some((j, st)) = blocked {
                    let id = &self.plan.steps()[j].id;
                    let why = match st {
                        StepStatus::Failed(_) | StepStatus::TimedOut(_) => format!("{id} failed"),
                        StepStatus::Cancelled => format!("{id} was cancelled"),
                        _ => format!("{id} did not run"),
                    };
                    self.skip(i, format!("needs {why}"), effects);
                    changed = true;
                }
            }
        }
    }

    /// Atomic publishing: no list until every build/test/push is done and ok.
    /// Whether a list was skipped.
    fn skip_atomic_lists(&mut self, effects: &mut Vec<Effect>) -> bool {
        if !self.plan.atomic {
            return false;
        }
        let done = |s: &State| matches!(s, State::Done(_));
        if !self.producers.iter().all(|&i| done(&self.state[i])) {
            return false;
        }
        let Some(&bad) = self
            .producers
            .iter()
            .find(|&&i| matches!(&self.state[i], State::Done(st) if !st.is_ok()))
        else {
            return false;
        };
        let mut skipped_any = false;
        for i in 0..self.state.len() {
            if self.state[i] == State::Pending
                && self.plan.steps()[i].kind() == StepKind::ManifestCreate
            {
                let reason = format!(
                    "[publish] atomic: {} did not succeed, so no list is published",
                    self.plan.steps()[bad].id
                );
                self.skip(i, reason, effects);
                skipped_any = true;
            }
        }
        skipped_any
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::EngineTarget;
    use crate::plan::{Action, Draft, DraftStep, Name, Need, Plan, StepId, StepKind};
    use crate::spec::EngineKind;
    use crate::testutil::cells;

    fn id_of(name: &str, kind: StepKind) -> StepId {
        let n = Name::from(name);
        StepId::per_arch(kind, &n, &"x".into())
            .or_else(|| StepId::list(kind, &n, &"t".into()))
            .unwrap_or(StepId::SetupQemu)
    }

    /// The name of a step of a test plan, from its id's text.
    pub(crate) fn name(id: &str) -> &str {
        let rest = id.split_once(':').map_or(id, |(_, r)| r);
        &rest[..rest.len().saturating_sub(2)]
    }

    /// A test plan from a table: a step a line, `NAME KIND NEEDS…` (the needs by
    /// name). A step's id is `KIND:NAME/x`, or `KIND:NAME:t` for a list.
    pub(crate) fn plan(graph: &str, atomic: bool) -> Plan {
        let kind = |k: &str| StepKind::parse(k).unwrap_or_else(|| panic!("unknown kind {k}"));
        let steps = cells(graph);
        let ids: std::collections::HashMap<&str, StepId> = steps
            .iter()
            .map(|row| (row[0], id_of(row[0], kind(row[1]))))
            .collect();
        let mut d = Draft::new();
        for row in &steps {
            d.push(DraftStep {
                id: ids[row[0]].clone(),
                needs: row[2..].iter().map(|n| Need::Id(ids[n].clone())).collect(),
                action: Action::Push {
                    engine: EngineTarget::local(EngineKind::Docker),
                    reference: row[0].into(),
                    platform: crate::spec::Platform::host(),
                },
                timeout: None,
            });
        }
        let mut p = d.seal().expect("a test plan has no cycle");
        p.branch = Some("main".into());
        p.publish = true;
        p.atomic = atomic;
        p.dir = ".".into();
        p.immutable_refs = true;
        p
    }

    /// `text` with each step's id replaced by its name.
    fn short(plan: &Plan, text: &str) -> String {
        let mut ids: Vec<String> = plan.steps().iter().map(|s| s.id.to_string()).collect();
        ids.sort_by_key(|i| std::cmp::Reverse(i.len()));
        ids.iter()
            .fold(text.to_string(), |t, id| t.replace(id.as_str(), name(id)))
    }

    /// A run driven by hand: ids in, ids and statuses out.
    struct Drive<'p> {
        d: Dispatcher<'p>,
        plan: &'p Plan,
        /// Every step's end, in order, as `id=status[: reason]`.
        ended: Vec<String>,
        signals: Vec<Effect>,
    }

    impl<'p> Drive<'p> {
        fn new(plan: &'p Plan, failure: FailureMode) -> Self {
            Drive {
                d: Dispatcher::new(plan, failure),
                plan,
                ended: Vec::new(),
                signals: Vec::new(),
            }
        }

        fn take(&mut self, effects: Vec<Effect>) {
            for e in effects {
                match e {
                    Effect::Finished(i, st) => {
                        let n = self.plan.steps()[i].image().unwrap_or_default();
                        self.ended.push(match st.reason() {
                            Some(r) => format!("{n}={}: {}", st.code(), short(self.plan, r)),
                            None => format!("{n}={}", st.code()),
                        })
                    }
                    other => self.signals.push(other),
                }
            }
        }

        /// Launch everything ready (up to `jobs`); the ids in launch order.
        fn launch(&mut self, jobs: usize) -> Vec<&'p str> {
            let mut v = Vec::new();
            while let Some(i) = self.d.next(jobs) {
                v.push(self.plan.steps()[i].image().unwrap_or_default());
            }
            v
        }

        fn end(&mut self, id: &str, status: StepStatus) {
            let i = self
                .plan
                .steps()
                .iter()
                .position(|s| s.image() == Some(id))
                .unwrap();
            let e = self.d.finished(i, status);
            self.take(e);
        }

        fn ok(&mut self, id: &str) {
            self.end(id, StepStatus::Ok);
        }

        fn drain(mut self) -> Vec<String> {
            let e = std::mem::replace(
                &mut self.d,
                Dispatcher::new(self.plan, FailureMode::KeepGoing),
            )
            .drain();
            self.take(e);
            self.ended
        }
    }

    /// a → b → c, and x on its own.
    pub(crate) fn chain() -> Plan {
        plan(
            "
                a  build
                b  test   a
                c  push   b
                x  build
            ",
            false,
        )
    }

    #[test]
    fn needs_run_first_and_the_longest_chain_leads() {
        let p = chain();
        let mut r = Drive::new(&p, FailureMode::KeepGoing);
        assert_eq!(r.launch(1), ["a"], "a heads the longest chain");
        assert_eq!(r.launch(1), Vec::<&str>::new(), "one job");
        r.ok("a");
        assert_eq!(r.launch(4), ["b", "x"]);
        r.ok("b");
        r.ok("x");
        assert_eq!(r.launch(4), ["c"]);
        r.ok("c");
        assert!(r.d.stalled());
        assert_eq!(r.drain(), ["a=ok", "b=ok", "x=ok", "c=ok"]);
    }

    #[test]
    fn keep_going_skips_only_dependents() {
        let p = chain();
        let mut r = Drive::new(&p, FailureMode::KeepGoing);
        assert_eq!(r.launch(4), ["a", "x"]);
        r.end("a", StepStatus::Failed("boom".into()));
        assert_eq!(r.launch(4), Vec::<&str>::new());
        assert!(!r.d.stalled(), "x still runs");
        r.ok("x");
        assert!(r.d.stalled());
        assert_eq!(
            r.drain(),
            [
                "a=failed: boom",
                "b=skipped: needs a failed",
                "c=skipped: needs b did not run",
                "x=ok"
            ]
        );
    }

    #[test]
    fn fail_fast_starts_nothing_new_and_ends_what_runs() {
        let p = plan(
            "
                a  build
                x  build
                y  build
            ",
            false,
        );
        let mut r = Drive::new(&p, FailureMode::FailFast);
        assert_eq!(r.launch(2), ["a", "x"]);
        r.end("a", StepStatus::Failed("boom".into()));
        assert_eq!(r.signals, [Effect::Terminate]);
        assert_eq!(r.launch(2), Vec::<&str>::new());
        r.end("x", StepStatus::Cancelled);
        assert!(r.d.stalled());
        assert_eq!(
            r.drain(),
            [
                "a=failed: boom",
                "x=cancelled",
                "y=skipped: not started: --fail-fast after a failed"
            ]
        );
    }

    #[test]
    fn an_interruption_cancels_and_a_second_one_kills() {
        let p = chain();
        let mut r = Drive::new(&p, FailureMode::KeepGoing);
        assert_eq!(r.launch(1), ["a"]);
        let e = r.d.interrupt(libc::SIGINT);
        r.take(e);
        let e = r.d.interrupt(libc::SIGINT);
        r.take(e);
        assert_eq!(r.signals, [Effect::Terminate, Effect::Kill]);
        r.end("a", StepStatus::Failed("killed by signal 15".into()));
        assert!(r.d.stalled());
        assert_eq!(
            r.drain(),
            [
                "a=cancelled",
                "b=skipped: needs a was cancelled",
                "c=skipped: needs b did not run",
                "x=cancelled"
            ]
        );
    }

    #[test]
    fn atomic_publishes_no_list_when_any_image_fails() {
        let steps = "
            push:a             push
            push:b             push
            manifest-create:a  manifest-create  push:a
            manifest-push:a    manifest-push    manifest-create:a
        ";
        let p = plan(steps, true);
        let mut r = Drive::new(&p, FailureMode::KeepGoing);
        assert_eq!(r.launch(4), ["push:a", "push:b"]);
        r.ok("push:a");
        assert_eq!(r.launch(4), Vec::<&str>::new(), "the list waits for push:b");
        r.end("push:b", StepStatus::Failed("boom".into()));
        assert!(r.d.stalled());
        assert_eq!(
            r.drain(),
            [
                "push:a=ok",
                "push:b=failed: boom",
                "manifest-create:a=skipped: [publish] atomic: push:b did not succeed, so no list is published",
                "manifest-push:a=skipped: needs manifest-create:a did not run"
            ]
        );
        // Without atomic, image a's list goes out.
        let p = plan(steps, false);
        let mut r = Drive::new(&p, FailureMode::KeepGoing);
        assert_eq!(r.launch(4), ["push:a", "push:b"]);
        r.ok("push:a");
        assert_eq!(r.launch(4), ["manifest-create:a"]);
    }

    #[test]
    fn atomic_lists_wait_for_every_image() {
        let p = plan(
            "
                push:a             push
                manifest-create:a  manifest-create  push:a
                manifest-push:a    manifest-push    manifest-create:a
                build:b            build
                push:b             push             build:b
            ",
            true,
        );
        let mut r = Drive::new(&p, FailureMode::KeepGoing);
        assert_eq!(r.launch(1), ["push:a"]);
        r.ok("push:a");
        assert_eq!(
            r.launch(1),
            ["build:b"],
            "in plan order a's list would be next"
        );
        r.ok("build:b");
        assert_eq!(r.launch(1), ["push:b"]);
        r.ok("push:b");
        assert_eq!(r.launch(1), ["manifest-create:a"]);
    }

    #[test]
    fn steps_done_before_the_run_release_their_dependents() {
        let p = plan(
            "
                build:a  build
                push:a   push   build:a
                build:c  build
                push:c   push   build:c
            ",
            false,
        );
        let mut r = Drive::new(&p, FailureMode::KeepGoing);
        r.d.preset(0, StepStatus::Ok);
        r.d.preset(2, StepStatus::Failed("emulation".into()));
        let e = r.d.start();
        r.take(e);
        assert_eq!(r.ended, ["push:c=skipped: needs build:c failed"]);
        assert_eq!(r.launch(4), ["push:a"]);
    }
}
