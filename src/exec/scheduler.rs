//! The scheduler: runs ready steps on up to `jobs` threads, skips the dependents of
//! a failure, stops launching on `--fail-fast`, and ends every child on a signal.
//! It talks to the world only through [`StepExecutor`] and [`RunEvent`]s.

use std::collections::{HashMap, HashSet};
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
}

impl StepResult {
    pub fn ok() -> Self {
        StepResult {
            status: StepStatus::Ok,
            digest: None,
            tail: Vec::new(),
        }
    }

    pub fn failed(reason: impl Into<String>, tail: Vec<String>) -> Self {
        StepResult {
            status: StepStatus::Failed(reason.into()),
            digest: None,
            tail,
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
    let n = plan.steps.len();
    let index: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let needs: Vec<Vec<usize>> = plan
        .steps
        .iter()
        .map(|s| {
            s.needs
                .iter()
                .filter_map(|x| index.get(x.as_str()).copied())
                .collect()
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
                  state: &mut Vec<State>,
                  reports: &mut Vec<Option<StepReport>>| {
        let s = &plan.steps[i];
        state[i] = State::Done(status.clone());
        let r = StepReport {
            id: s.id.clone(),
            kind: s.kind,
            status,
            duration,
            digest: result_digest,
            reference: s.reference.clone(),
            tail,
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
                &mut state,
                &mut reports,
            );
            emit(reporter, RunEvent::StepFinished(r));
        }
    }

    std::thread::scope(|scope| {
        loop {
            // Skip what can no longer run: a need failed or was skipped.
            let mut changed = true;
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
                                format!("{} failed", plan.steps[j].id)
                            }
                            StepStatus::Cancelled => format!("{} was cancelled", plan.steps[j].id),
                            _ => format!("{} did not run", plan.steps[j].id),
                        };
                        let r = finish(
                            i,
                            StepStatus::Skipped(format!("needs {why}")),
                            None,
                            Duration::ZERO,
                            Vec::new(),
                            &mut state,
                            &mut reports,
                        );
                        emit(reporter, RunEvent::StepFinished(r));
                        changed = true;
                    }
                }
            }
            // Atomic publishing: no list until every build/test/push is done and ok.
            if plan.atomic {
                let producers: Vec<usize> = (0..n)
                    .filter(|&i| {
                        matches!(
                            plan.steps[i].kind,
                            StepKind::SetupQemu | StepKind::Build | StepKind::Test | StepKind::Push
                        )
                    })
                    .collect();
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
                                && plan.steps[i].kind == StepKind::ManifestCreate
                            {
                                let r = finish(i, StepStatus::Skipped(format!("[publish] atomic: {} did not succeed, so no list is published", plan.steps[b].id)), None, Duration::ZERO, Vec::new(), &mut state, &mut reports);
                                emit(reporter, RunEvent::StepFinished(r));
                                skipped_any = true;
                            }
                        }
                        if skipped_any {
                            continue;
                        }
                    }
                }
            }
            // Launch ready steps, in plan order.
            if !stop_launching {
                for i in 0..n {
                    if running >= jobs {
                        break;
                    }
                    if state[i] != State::Pending
                        || !needs[i]
                            .iter()
                            .all(|&j| matches!(&state[j], State::Done(st) if st.is_ok()))
                    {
                        continue;
                    }
                    if plan.atomic && plan.steps[i].kind == StepKind::ManifestCreate {
                        let producers_done = (0..n)
                            .filter(|&k| {
                                matches!(
                                    plan.steps[k].kind,
                                    StepKind::SetupQemu
                                        | StepKind::Build
                                        | StepKind::Test
                                        | StepKind::Push
                                )
                            })
                            .all(|k| matches!(&state[k], State::Done(st) if st.is_ok()));
                        if !producers_done {
                            continue;
                        }
                    }
                    state[i] = State::Running;
                    running += 1;
                    let step = &plan.steps[i];
                    emit(
                        reporter,
                        RunEvent::StepStarted {
                            id: step.id.clone(),
                            command: step.command().to_vec(),
                        },
                    );
                    let tx = tx.clone();
                    let table = table.clone();
                    let digests = &digests;
                    scope.spawn(move || {
                        let t0 = Instant::now();
                        let io = StepIo {
                            id: &step.id,
                            tx: tx.clone(),
                            digests,
                            table,
                        };
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            exec.execute(step, &io)
                        }))
                        .unwrap_or_else(|_| {
                            StepResult::failed("internal error: the step panicked", Vec::new())
                        });
                        if let Some(d) = &result.digest {
                            if let Ok(mut m) = digests.lock() {
                                m.insert(step.id.clone(), d.clone());
                            }
                        }
                        let _ = tx.send(Msg::Finished(i, result, t0.elapsed()));
                    });
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
                    let r = finish(
                        i,
                        status,
                        result.digest.clone(),
                        d,
                        tail,
                        &mut state,
                        &mut reports,
                    );
                    emit(reporter, RunEvent::StepFinished(r));
                    if failed && opts.failure == FailureMode::FailFast && !stop_launching {
                        stop_launching = true;
                        stop_reason =
                            format!("not started: --fail-fast after {} failed", plan.steps[i].id);
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
