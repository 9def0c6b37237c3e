//! The scheduler: runs ready steps on up to `jobs` threads, skips the dependents of
//! a failure, stops launching on `--fail-fast`, and ends every child on a signal.
//! It talks to the world only through [`StepExecutor`] and [`RunEvent`]s.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::mask::Masker;
use super::process::ProcessTable;
use crate::plan::{Plan, Step, StepKind};
use crate::report::{Reporter, RunEvent, RunSummary, StepReport, StepStatus};

/// What a step hands back.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub status: StepStatus,
    pub digest: Option<String>,
    pub tail: Vec<String>,
    /// What a step that succeeded wants said about how (the summary's detail).
    pub detail: Option<String>,
}

impl StepResult {
    pub fn ok() -> Self {
        StepResult {
            status: StepStatus::Ok,
            digest: None,
            tail: Vec::new(),
            detail: None,
        }
    }

    /// Succeeded, and says how.
    pub fn ok_with(detail: impl Into<String>) -> Self {
        StepResult {
            detail: Some(detail.into()),
            ..StepResult::ok()
        }
    }

    pub fn failed(reason: impl Into<String>, tail: Vec<String>) -> Self {
        StepResult {
            status: StepStatus::Failed(reason.into()),
            digest: None,
            tail,
            detail: None,
        }
    }
}

/// What a running step can use: its output sink, the digests pushed so far, the
/// process table for cancellation.
pub struct StepIo<'a> {
    id: &'a str,
    tx: mpsc::Sender<Msg>,
    digests: &'a Mutex<HashMap<String, String>>,
    pub table: Arc<ProcessTable>,
}

impl StepIo<'_> {
    /// One line of the step's output.
    pub fn line(&self, line: &str) {
        let _ = self
            .tx
            .send(Msg::Output(self.id.to_string(), line.to_string()));
    }

    /// A note from multiarch about this step (a retry, a check).
    pub fn note(&self, message: &str) {
        let _ = self
            .tx
            .send(Msg::Note(self.id.to_string(), message.to_string()));
    }

    /// The digest a finished step of this run pushed.
    pub fn digest_of(&self, step_id: &str) -> Option<String> {
        self.digests.lock().ok()?.get(step_id).cloned()
    }

    pub fn cancelled(&self) -> bool {
        self.table.is_cancelled()
    }
}

/// Runs one step. Implemented by the engine runner, and by fakes in tests.
pub trait StepExecutor: Sync {
    fn execute(&self, step: &Step, io: &StepIo<'_>) -> StepResult;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Independent steps go on; dependents of a failure are skipped.
    KeepGoing,
    /// Start nothing new; end what runs.
    FailFast,
}

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub jobs: usize,
    pub failure: FailureMode,
    /// Listen for SIGINT/SIGTERM and end every child on one.
    pub handle_signals: bool,
    /// Grace period between SIGTERM and SIGKILL for children.
    pub grace: Duration,
    /// Values never shown in any output.
    pub secrets: Vec<String>,
    /// Steps already done before the scheduler starts (e.g. setup-qemu in preflight).
    pub done: Vec<(String, StepResult, Duration)>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            jobs: 1,
            failure: FailureMode::KeepGoing,
            handle_signals: false,
            grace: Duration::from_secs(10),
            secrets: Vec::new(),
            done: Vec::new(),
        }
    }
}

enum Msg {
    Output(String, String),
    Note(String, String),
    Finished(usize, StepResult, Duration),
    Signal(i32),
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Pending,
    Running,
    Done(StepStatus),
}

/// Run the plan. Returns the summary (also sent to the reporter as the last event).
pub fn run(
    plan: &Plan,
    exec: &dyn StepExecutor,
    opts: &SchedulerOptions,
    table: Arc<ProcessTable>,
    reporter: &mut dyn Reporter,
) -> RunSummary {
    let started = Instant::now();
    let masker = Masker::new(&opts.secrets);
    let n = plan.steps().len();
    // Ids as events carry them, rendered once.
    let ids: Vec<String> = plan.steps().iter().map(|s| s.id.to_string()).collect();
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let needs: Vec<Vec<usize>> = plan
        .indices()
        .map(|i| plan.needs(i).map(|j| j.index()).collect())
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ns) in needs.iter().enumerate() {
        ns.iter().for_each(|&j| dependents[j].push(i));
    }
    // Steps an atomic list waits for.
    let producers: Vec<usize> = (0..n)
        .filter(|&i| {
            matches!(
                plan.steps()[i].kind(),
                StepKind::SetupQemu | StepKind::Build | StepKind::Test | StepKind::Push
            )
        })
        .collect();
    let mut state = vec![State::Pending; n];
    let mut reports: Vec<Option<StepReport>> = vec![None; n];
    let mut tails: Vec<Vec<String>> = vec![Vec::new(); n];
    let digests: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    let jobs = opts.jobs.max(1);
    let emit = |reporter: &mut dyn Reporter, e: RunEvent| reporter.event(&masker.event(e));
    emit(reporter, RunEvent::Started { steps: n, jobs });

    let (tx, rx) = mpsc::channel::<Msg>();
    let signals = if opts.handle_signals {
        start_signal_thread(tx.clone())
    } else {
        None
    };
    let mut running = 0usize;
    let mut stop_launching = false;
    let mut interrupted = false;
    let mut kill_deadline: Option<Instant> = None;
    let mut stop_reason = String::new();

    let finish = |i: usize,
                  status: StepStatus,
                  result_digest: Option<String>,
                  duration: Duration,
                  tail: Vec<String>,
                  detail: Option<String>,
                  state: &mut Vec<State>,
                  reports: &mut Vec<Option<StepReport>>| {
        let s = &plan.steps()[i];
        state[i] = State::Done(status.clone());
        let r = StepReport {
            id: ids[i].clone(),
            kind: s.kind(),
            status,
            duration,
            digest: result_digest,
            reference: s.reference().map(str::to_string),
            tail,
            detail,
        };
        reports[i] = Some(r.clone());
        r
    };

    for (id, res, d) in &opts.done {
        if let Some(&i) = index.get(id.as_str()) {
            if let Some(dg) = &res.digest {
                if let Ok(mut m) = digests.lock() {
                    m.insert(id.clone(), dg.clone());
                }
            }
            let r = finish(
                i,
                res.status.clone(),
                res.digest.clone(),
                *d,
                res.tail.clone(),
                res.detail.clone(),
                &mut state,
                &mut reports,
            );
            emit(reporter, RunEvent::StepFinished(r));
        }
    }

    // The longest chain of steps that waits on each step (itself included). Plan
    // order is topological, so one pass from the end computes it.
    let mut depth = vec![1usize; n];
    for i in (0..n).rev() {
        depth[i] = 1 + dependents[i].iter().map(|&d| depth[d]).max().unwrap_or(0);
    }
    // Pending steps whose needs all succeeded, longest chain first, then in plan
    // order (a base image and what builds on it start before a lone image: the
    // critical path is not left for last). Kept up to date as steps finish, so a
    // turn of the loop costs no scan of the whole plan.
    let needs_ok = |i: usize, state: &[State]| {
        needs[i]
            .iter()
            .all(|&j| matches!(&state[j], State::Done(st) if st.is_ok()))
    };
    let key = |i: usize| (std::cmp::Reverse(depth[i]), i);
    let mut ready: BTreeSet<(std::cmp::Reverse<usize>, usize)> = (0..n)
        .filter(|&i| state[i] == State::Pending && needs_ok(i, &state))
        .map(key)
        .collect();
    // The skip pass below only finds something after a step ended badly, and the
    // atomic check only matters once one has; neither runs on other turns.
    let mut skips_due = true;
    let mut bad_seen = state
        .iter()
        .any(|s| matches!(s, State::Done(st) if !st.is_ok()));
    let mut producers_ok = producers
        .iter()
        .filter(|&&i| matches!(&state[i], State::Done(st) if st.is_ok()))
        .count();

    // Steps run on up to `jobs` long-lived workers, started as needed. A thread per
    // step pays for its creation on every step and, on a busy machine, waits behind
    // the running tasks before it first runs; an idle worker just wakes.
    let (work_tx, work_rx) = mpsc::channel::<usize>();
    let work_rx = Mutex::new(work_rx);
    let mut workers = 0usize;
    std::thread::scope(|scope| {
        loop {
            // Skip what can no longer run: a need failed or was skipped.
            let mut changed = std::mem::take(&mut skips_due);
            while changed {
                changed = false;
                for i in 0..n {
                    if state[i] != State::Pending {
                        continue;
                    }
                    let blocked = needs[i].iter().find_map(|&j| match &state[j] {
                        State::Done(st) if !st.is_ok() => Some((j, st.clone())),
                        _ => None,
                    });
                    if let Some((j, st)) = blocked {
                        let why = match st {
                            StepStatus::Failed(_) | StepStatus::TimedOut(_) => {
                                format!("{} failed", ids[j])
                            }
                            StepStatus::Cancelled => format!("{} was cancelled", ids[j]),
                            _ => format!("{} did not run", ids[j]),
                        };
                        let r = finish(
                            i,
                            StepStatus::Skipped(format!("needs {why}")),
                            None,
                            Duration::ZERO,
                            Vec::new(),
                            None,
                            &mut state,
                            &mut reports,
                        );
                        emit(reporter, RunEvent::StepFinished(r));
                        changed = true;
                    }
                }
            }
            // Atomic publishing: no list until every build/test/push is done and ok.
            if plan.atomic && bad_seen {
                let all_done = producers
                    .iter()
                    .all(|&i| matches!(state[i], State::Done(_)));
                let bad = producers
                    .iter()
                    .find(|&&i| matches!(&state[i], State::Done(st) if !st.is_ok()));
                if all_done {
                    if let Some(&b) = bad {
                        let mut skipped_any = false;
                        for i in 0..n {
                            if state[i] == State::Pending
                                && plan.steps()[i].kind() == StepKind::ManifestCreate
                            {
                                let r = finish(i, StepStatus::Skipped(format!("[publish] atomic: {} did not succeed, so no list is published", ids[b])), None, Duration::ZERO, Vec::new(), None, &mut state, &mut reports);
                                emit(reporter, RunEvent::StepFinished(r));
                                ready.remove(&key(i));
                                skipped_any = true;
                            }
                        }
                        if skipped_any {
                            skips_due = true;
                            continue;
                        }
                    }
                }
            }
            // Launch ready steps, longest chain first.
            if !stop_launching {
                let mut launch = Vec::new();
                for &(_, i) in &ready {
                    if running + launch.len() >= jobs {
                        break;
                    }
                    if plan.atomic
                        && plan.steps()[i].kind() == StepKind::ManifestCreate
                        && producers_ok < producers.len()
                    {
                        continue;
                    }
                    launch.push(i);
                }
                for i in launch {
                    ready.remove(&key(i));
                    state[i] = State::Running;
                    running += 1;
                    let step = &plan.steps()[i];
                    emit(
                        reporter,
                        RunEvent::StepStarted {
                            id: ids[i].clone(),
                            command: step.command(),
                        },
                    );
                    if workers < running {
                        workers += 1;
                        let tx = tx.clone();
                        let table = table.clone();
                        let (digests, work_rx, ids) = (&digests, &work_rx, &ids);
                        scope.spawn(move || loop {
                            // The lock is held only while this worker waits for work.
                            let next = match work_rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => break,
                            };
                            let Ok(i) = next else { break };
                            let step = &plan.steps()[i];
                            let t0 = Instant::now();
                            let io = StepIo {
                                id: &ids[i],
                                tx: tx.clone(),
                                digests,
                                table: table.clone(),
                            };
                            let result =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    exec.execute(step, &io)
                                }))
                                .unwrap_or_else(|_| {
                                    StepResult::failed(
                                        "internal error: the step panicked",
                                        Vec::new(),
                                    )
                                });
                            if let Some(d) = &result.digest {
                                if let Ok(mut m) = digests.lock() {
                                    m.insert(ids[i].clone(), d.clone());
                                }
                            }
                            let _ = tx.send(Msg::Finished(i, result, t0.elapsed()));
                        });
                    }
                    // The receiver lives until the scope ends, so this cannot fail.
                    let _ = work_tx.send(i);
                }
            }
            if running == 0 {
                let launchable = !stop_launching && (0..n).any(|i| state[i] == State::Pending);
                if !launchable {
                    break;
                }
                // Pending steps whose needs can all still succeed will launch above
                // on the next turn; if none can, they are blocked forever.
                let progress = (0..n).any(|i| {
                    state[i] == State::Pending
                        && needs[i]
                            .iter()
                            .all(|&j| matches!(&state[j], State::Done(st) if st.is_ok()))
                });
                if !progress {
                    break;
                }
                continue;
            }
            let msg = match kill_deadline {
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(m) => m,
                    Err(_) => {
                        table.signal_all(libc::SIGKILL);
                        kill_deadline = None;
                        continue;
                    }
                },
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            match msg {
                Msg::Output(id, line) => {
                    if let Some(&i) = index.get(id.as_str()) {
                        let t = &mut tails[i];
                        t.push(line.clone());
                        if t.len() > 15 {
                            t.remove(0);
                        }
                    }
                    emit(reporter, RunEvent::Output { id, line });
                }
                Msg::Note(id, message) => emit(reporter, RunEvent::Note { id, message }),
                Msg::Finished(i, result, d) => {
                    running -= 1;
                    let status = if interrupted && !result.status.is_ok() {
                        StepStatus::Cancelled
                    } else {
                        result.status.clone()
                    };
                    let tail = if status.is_failure() {
                        let mut t = std::mem::take(&mut tails[i]);
                        if !result.tail.is_empty() {
                            t = result.tail.clone();
                        }
                        t
                    } else {
                        Vec::new()
                    };
                    let failed = status.is_failure();
                    if status.is_ok() {
                        producers_ok += usize::from(producers.binary_search(&i).is_ok());
                    } else {
                        bad_seen = true;
                        skips_due = true;
                    }
                    let r = finish(
                        i,
                        status,
                        result.digest.clone(),
                        d,
                        tail,
                        result.detail.clone(),
                        &mut state,
                        &mut reports,
                    );
                    emit(reporter, RunEvent::StepFinished(r));
                    for &d in &dependents[i] {
                        if state[d] == State::Pending && needs_ok(d, &state) {
                            ready.insert(key(d));
                        }
                    }
                    if failed && opts.failure == FailureMode::FailFast && !stop_launching {
                        stop_launching = true;
                        stop_reason = format!("not started: --fail-fast after {} failed", ids[i]);
                        table.cancel(libc::SIGTERM);
                        kill_deadline = Some(Instant::now() + opts.grace);
                    }
                }
                Msg::Signal(sig) => {
                    if interrupted {
                        table.signal_all(libc::SIGKILL);
                    } else {
                        interrupted = true;
                        stop_launching = true;
                        stop_reason = format!(
                            "not started: interrupted by {}",
                            if sig == libc::SIGINT {
                                "SIGINT"
                            } else {
                                "SIGTERM"
                            }
                        );
                        table.cancel(libc::SIGTERM);
                        kill_deadline = Some(Instant::now() + opts.grace);
                    }
                }
            }
        }
        // Idle workers see the channel close and end; the scope waits for them.
        drop(work_tx);
    });
    if let Some(h) = signals {
        h.close();
    }
    for i in 0..n {
        if state[i] == State::Pending {
            let status = if interrupted {
                StepStatus::Cancelled
            } else {
                StepStatus::Skipped(if stop_reason.is_empty() {
                    "not started".into()
                } else {
                    stop_reason.clone()
                })
            };
            let r = finish(
                i,
                status,
                None,
                Duration::ZERO,
                Vec::new(),
                None,
                &mut state,
                &mut reports,
            );
            emit(reporter, RunEvent::StepFinished(r));
        }
    }
    let summary = RunSummary {
        steps: reports.into_iter().flatten().collect(),
        duration: started.elapsed(),
        interrupted,
    };
    emit(reporter, RunEvent::Finished(summary.clone()));
    summary
}

fn start_signal_thread(tx: mpsc::Sender<Msg>) -> Option<signal_hook::iterator::Handle> {
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM]).ok()?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if tx.send(Msg::Signal(sig)).is_err() {
                break;
            }
        }
    });
    Some(handle)
}

/// Ids of steps; used by tests.
pub fn ids(steps: &[StepReport]) -> HashSet<&str> {
    steps.iter().map(|s| s.id.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::argv::EngineTarget;
    use crate::plan::{Action, Draft, DraftStep, Need, Plan, Step, StepId, StepKind};
    use crate::spec::EngineKind;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Condvar;

    /// A step of the test plans, ids written as the plan prints them
    /// (`build:a/x`, `manifest-create:a:t`).
    fn step(id: &str, kind: StepKind, needs: &[&str]) -> DraftStep {
        let id_ = sid(id);
        assert_eq!(id_.kind(), kind, "{id}");
        DraftStep {
            id: id_,
            needs: needs.iter().map(|n| Need::Id(sid(n))).collect(),
            action: Action::Push {
                engine: EngineTarget::local(EngineKind::Docker),
                reference: id.into(),
                platform: crate::spec::Platform::host(),
            },
            timeout: None,
        }
    }

    /// The test notation of an id: `kind:image/arch` or `kind:image:tag`.
    fn sid(text: &str) -> StepId {
        let (kind, rest) = text.split_once(':').unwrap();
        let kind = [
            StepKind::Build,
            StepKind::Test,
            StepKind::Push,
            StepKind::ManifestCreate,
            StepKind::ManifestPush,
            StepKind::Verify,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
        .unwrap();
        match rest.split_once('/') {
            Some((i, a)) => StepId::per_arch(kind, &i.into(), &a.into()).unwrap(),
            None => {
                let (i, t) = rest.split_once(':').unwrap();
                StepId::list(kind, &i.into(), &t.into()).unwrap()
            }
        }
    }

    fn plan(steps: Vec<DraftStep>, atomic: bool) -> Plan {
        let mut d = Draft::new();
        for s in steps {
            d.push(s);
        }
        let mut p = d.seal().unwrap();
        p.branch = Some("main".into());
        p.publish = true;
        p.atomic = atomic;
        p.dir = ".".into();
        p.immutable_refs = true;
        p
    }

    /// A fake engine: steps listed in `fail` fail, steps in `slow` run a real
    /// `sleep` in a process group (so cancellation can be observed), every step
    /// records when it started and finished, and concurrency is measured.
    #[derive(Default)]
    struct Fake {
        fail: Vec<&'static str>,
        slow: Vec<&'static str>,
        /// The first steps wait until this many have started (or 5 s pass).
        rendezvous: usize,
        log: Mutex<Vec<String>>,
        running: AtomicUsize,
        started: AtomicUsize,
        max: AtomicUsize,
        cv: Condvar,
        lock: Mutex<()>,
    }

    impl StepExecutor for Fake {
        fn execute(&self, step: &Step, io: &StepIo<'_>) -> StepResult {
            self.log.lock().unwrap().push(format!("start {}", step.id));
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.started.fetch_add(1, Ordering::SeqCst);
            self.max.fetch_max(now, Ordering::SeqCst);
            if self.rendezvous > 0 {
                let g = self.lock.lock().unwrap();
                self.cv.notify_all();
                let _ = self.cv.wait_timeout_while(g, Duration::from_secs(5), |_| {
                    self.started.load(Ordering::SeqCst) < self.rendezvous
                });
                self.cv.notify_all();
            }
            io.line(&format!("hello from {}", step.id));
            let result = if self.slow.iter().any(|x| step.id == *x) {
                let cmd = super::super::process::Command::new(vec!["sleep".into(), "30".into()]);
                let f = super::super::process::run_streaming(&cmd, &io.table, &mut |_| {});
                if f.exit.success() {
                    StepResult::ok()
                } else {
                    StepResult::failed(f.exit.describe(), Vec::new())
                }
            } else if self.fail.iter().any(|x| step.id == *x) {
                StepResult::failed("boom", vec!["last line".into()])
            } else {
                StepResult {
                    status: StepStatus::Ok,
                    digest: Some(format!("sha256:{}", step.id.to_string().len())),
                    tail: Vec::new(),
                    detail: None,
                }
            };
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.log.lock().unwrap().push(format!("end {}", step.id));
            result
        }
    }

    fn status<'a>(s: &'a RunSummary, id: &str) -> &'a StepStatus {
        &s.steps.iter().find(|r| r.id == id).unwrap().status
    }

    fn run_with(p: &Plan, fake: &Fake, jobs: usize, failure: FailureMode) -> RunSummary {
        let opts = SchedulerOptions {
            jobs,
            failure,
            grace: Duration::from_secs(2),
            ..SchedulerOptions::default()
        };
        run(
            p,
            fake,
            &opts,
            ProcessTable::new(),
            &mut crate::report::Silent,
        )
    }

    #[test]
    fn needs_run_first() {
        let p = plan(
            vec![
                step("build:a/x", StepKind::Build, &[]),
                step("test:b/x", StepKind::Test, &["build:a/x"]),
                step("push:c/x", StepKind::Push, &["test:b/x"]),
            ],
            false,
        );
        let fake = Fake::default();
        let s = run_with(&p, &fake, 4, FailureMode::KeepGoing);
        assert_eq!(
            *fake.log.lock().unwrap(),
            vec![
                "start build:a/x",
                "end build:a/x",
                "start test:b/x",
                "end test:b/x",
                "start push:c/x",
                "end push:c/x"
            ]
        );
        assert_eq!(s.exit_code(), 0);
        assert_eq!(
            s.steps
                .iter()
                .find(|r| r.id == "push:c/x")
                .unwrap()
                .digest
                .as_deref(),
            Some("sha256:8")
        );
    }

    #[test]
    fn the_job_limit_holds_and_is_used() {
        let steps: Vec<DraftStep> = (0..6)
            .map(|i| step(&format!("build:s{i}/x"), StepKind::Build, &[]))
            .collect();
        let p = plan(steps, false);
        let fake = Fake {
            rendezvous: 2,
            ..Fake::default()
        };
        let s = run_with(&p, &fake, 2, FailureMode::KeepGoing);
        assert_eq!(fake.max.load(Ordering::SeqCst), 2);
        assert_eq!(s.steps.len(), 6);
        assert!(s.steps.iter().all(|r| r.status.is_ok()));
    }

    #[test]
    fn keep_going_skips_only_dependents() {
        let p = plan(
            vec![
                step("build:a/x", StepKind::Build, &[]),
                step("test:b/x", StepKind::Test, &["build:a/x"]),
                step("push:c/x", StepKind::Push, &["test:b/x"]),
                step("build:x/x", StepKind::Build, &[]),
            ],
            false,
        );
        let fake = Fake {
            fail: vec!["build:a/x"],
            ..Fake::default()
        };
        let s = run_with(&p, &fake, 1, FailureMode::KeepGoing);
        assert!(matches!(status(&s, "build:a/x"), StepStatus::Failed(r) if r == "boom"));
        assert_eq!(
            *status(&s, "test:b/x"),
            StepStatus::Skipped("needs build:a/x failed".into())
        );
        assert_eq!(
            *status(&s, "push:c/x"),
            StepStatus::Skipped("needs test:b/x did not run".into())
        );
        assert_eq!(*status(&s, "build:x/x"), StepStatus::Ok);
        assert_eq!(s.exit_code(), 1);
        let a = s.steps.iter().find(|r| r.id == "build:a/x").unwrap();
        assert_eq!(a.tail, vec!["last line"]);
    }

    #[test]
    fn fail_fast_starts_nothing_new() {
        let p = plan(
            vec![
                step("build:a/x", StepKind::Build, &[]),
                step("build:x/x", StepKind::Build, &[]),
                step("build:y/x", StepKind::Build, &[]),
            ],
            false,
        );
        let fake = Fake {
            fail: vec!["build:a/x"],
            ..Fake::default()
        };
        let s = run_with(&p, &fake, 1, FailureMode::FailFast);
        assert!(status(&s, "build:a/x").is_failure());
        assert_eq!(
            *status(&s, "build:x/x"),
            StepStatus::Skipped("not started: --fail-fast after build:a/x failed".into())
        );
        assert_eq!(
            *status(&s, "build:y/x"),
            StepStatus::Skipped("not started: --fail-fast after build:a/x failed".into())
        );
        assert_eq!(s.exit_code(), 1);
    }

    #[test]
    fn fail_fast_ends_what_runs() {
        let p = plan(
            vec![
                step("build:slow/x", StepKind::Build, &[]),
                step("build:a/x", StepKind::Build, &[]),
            ],
            false,
        );
        let fake = Fake {
            fail: vec!["build:a/x"],
            slow: vec!["build:slow/x"],
            rendezvous: 2,
            ..Fake::default()
        };
        let t0 = Instant::now();
        let s = run_with(&p, &fake, 2, FailureMode::FailFast);
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the sleeping step was not ended"
        );
        assert!(!status(&s, "build:slow/x").is_ok());
        assert_eq!(s.exit_code(), 1);
    }

    #[test]
    fn atomic_publishes_no_list_when_any_image_fails() {
        let p = plan(
            vec![
                step("push:a/x", StepKind::Push, &[]),
                step("push:b/x", StepKind::Push, &[]),
                step(
                    "manifest-create:a:t",
                    StepKind::ManifestCreate,
                    &["push:a/x"],
                ),
                step(
                    "manifest-push:a:t",
                    StepKind::ManifestPush,
                    &["manifest-create:a:t"],
                ),
            ],
            true,
        );
        let fake = Fake {
            fail: vec!["push:b/x"],
            ..Fake::default()
        };
        let s = run_with(&p, &fake, 1, FailureMode::KeepGoing);
        assert!(
            matches!(status(&s, "manifest-create:a:t"), StepStatus::Skipped(r) if r.contains("atomic"))
        );
        assert!(matches!(
            status(&s, "manifest-push:a:t"),
            StepStatus::Skipped(_)
        ));
        assert!(!fake
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("manifest")));
        // Without atomic, image a's list goes out.
        let mut p2 = p.clone();
        p2.atomic = false;
        let fake = Fake {
            fail: vec!["push:b/x"],
            ..Fake::default()
        };
        let s = run_with(&p2, &fake, 1, FailureMode::KeepGoing);
        assert_eq!(*status(&s, "manifest-push:a:t"), StepStatus::Ok);
    }

    #[test]
    fn atomic_lists_wait_for_every_image() {
        // In plan order image a's list would go first; atomic holds it until b is pushed.
        let steps = vec![
            step("push:a/x", StepKind::Push, &[]),
            step(
                "manifest-create:a:t",
                StepKind::ManifestCreate,
                &["push:a/x"],
            ),
            step(
                "manifest-push:a:t",
                StepKind::ManifestPush,
                &["manifest-create:a:t"],
            ),
            step("build:b/x", StepKind::Build, &[]),
            step("push:b/x", StepKind::Push, &["build:b/x"]),
        ];
        let fake = Fake::default();
        let s = run_with(&plan(steps, true), &fake, 1, FailureMode::KeepGoing);
        assert_eq!(s.exit_code(), 0);
        let log = fake.log.lock().unwrap().clone();
        let at = |l: &str| log.iter().position(|x| x == l).unwrap();
        assert!(
            at("end push:b/x") < at("start manifest-create:a:t"),
            "{log:?}"
        );
    }

    #[test]
    fn steps_done_before_the_run_release_their_dependents() {
        let p = plan(
            vec![
                step("build:a/x", StepKind::Build, &[]),
                step("push:a/x", StepKind::Push, &["build:a/x"]),
            ],
            false,
        );
        let opts = SchedulerOptions {
            done: vec![("build:a/x".into(), StepResult::ok(), Duration::ZERO)],
            ..SchedulerOptions::default()
        };
        let fake = Fake::default();
        let s = run(
            &p,
            &fake,
            &opts,
            ProcessTable::new(),
            &mut crate::report::Silent,
        );
        assert_eq!(s.exit_code(), 0);
        assert_eq!(
            *fake.log.lock().unwrap(),
            vec!["start push:a/x", "end push:a/x"]
        );
    }

    #[test]
    fn secrets_never_reach_the_reporter() {
        struct Collect(Vec<String>);
        impl Reporter for Collect {
            fn event(&mut self, e: &RunEvent) {
                self.0.push(format!("{e:?}"));
            }
        }
        struct Leaky;
        impl StepExecutor for Leaky {
            fn execute(&self, _step: &Step, io: &StepIo<'_>) -> StepResult {
                io.line("token=s3cr3t-value here");
                io.note("retrying with s3cr3t-value");
                StepResult::failed("failed: s3cr3t-value", vec!["s3cr3t-value".into()])
            }
        }
        let p = plan(vec![step("push:a/x", StepKind::Push, &[])], false);
        let opts = SchedulerOptions {
            secrets: vec!["s3cr3t-value".into()],
            ..SchedulerOptions::default()
        };
        let mut c = Collect(Vec::new());
        let s = run(&p, &Leaky, &opts, ProcessTable::new(), &mut c);
        assert_eq!(s.exit_code(), 1);
        assert!(c.0.len() > 3);
        assert!(
            c.0.iter().all(|e| !e.contains("s3cr3t-value")),
            "{:#?}",
            c.0
        );
    }
}
