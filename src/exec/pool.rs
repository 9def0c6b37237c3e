//! The worker pool: up to `jobs` long-lived threads run the steps the
//! [`Dispatcher`] hands out, through a [`StepExecutor`]. The pool turns what
//! workers, signals and the clock say into dispatcher inputs, and the
//! dispatcher's answers into masked [`RunEvent`]s and signals to the process
//! table. It makes no scheduling decision of its own.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::dispatcher::{Dispatcher, Effect, FailureMode};
use super::executor::{Msg, StepExecutor, StepIo, StepResult};
use super::process::ProcessTable;
use crate::events::{Masker, Reporter, RunEvent, RunSummary, StepReport, StepStatus};
use crate::plan::Plan;

/// Lines of output kept per step, for the summary of a failure.
const TAIL: usize = 15;

/// Messages (mostly output lines) between the workers and the reporters.
const QUEUE: usize = 1024;

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub jobs: usize,
    pub failure: FailureMode,
    /// Listen for SIGINT/SIGTERM and end every child on one.
    pub handle_signals: bool,
    /// A listener started before the pool (at the start of the run, so that a
    /// signal during preflight is not lost): used instead of one of the pool's own.
    pub interrupts: Option<Arc<Interrupts>>,
    /// Grace period between SIGTERM and SIGKILL for children.
    pub grace: Duration,
    /// Values never shown in any output: the run's secrets, and what the
    /// registry client finds while the steps run.
    pub masker: Masker,
    /// Steps already done before the pool starts (e.g. setup-qemu in preflight).
    pub done: Vec<(String, StepResult, Duration)>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            jobs: 1,
            failure: FailureMode::KeepGoing,
            handle_signals: false,
            interrupts: None,
            grace: Duration::from_secs(10),
            masker: Masker::default(),
            done: Vec::new(),
        }
    }
}

/// What the pool reports, and keeps for the summary.
struct Reports<'a> {
    plan: &'a Plan,
    /// Each step's id as events carry it, rendered once.
    ids: Vec<String>,
    masker: Masker,
    reporter: &'a mut dyn Reporter,
    reports: Vec<Option<StepReport>>,
    tails: Vec<Vec<String>>,
}

impl Reports<'_> {
    fn emit(&mut self, e: RunEvent) {
        self.reporter.event(&self.masker.event(e));
    }

    fn output(&mut self, i: usize, line: String) {
        let t = &mut self.tails[i];
        t.push(line.clone());
        if t.len() > TAIL {
            t.remove(0);
        }
        let id = self.ids[i].clone();
        self.emit(RunEvent::Output { id, line });
    }

    fn note(&mut self, i: usize, message: String) {
        let id = self.ids[i].clone();
        self.emit(RunEvent::Note { id, message });
    }

    /// Step `i` ended: it ran and handed back `r` (its tail only when it
    /// failed: what it kept, else its last lines), or the dispatcher decided.
    fn finished(&mut self, i: usize, status: StepStatus, ran: Option<(&StepResult, Duration)>) {
        let tail = match ran {
            Some((r, _)) if status.is_failure() && !r.tail.is_empty() => r.tail.clone(),
            Some(_) if status.is_failure() => std::mem::take(&mut self.tails[i]),
            _ => Vec::new(),
        };
        self.report(i, status, ran, tail);
    }

    fn report(
        &mut self,
        i: usize,
        status: StepStatus,
        ran: Option<(&StepResult, Duration)>,
        tail: Vec<String>,
    ) {
        let (digest, detail, platforms, duration) = match ran {
            Some((r, d)) => (r.digest.clone(), r.detail.clone(), r.platforms.to_vec(), d),
            None => (None, None, Vec::new(), Duration::ZERO),
        };
        let s = &self.plan.steps()[i];
        let report = StepReport {
            id: self.ids[i].clone(),
            kind: s.kind(),
            status,
            duration,
            digest,
            reference: s.reference().map(str::to_string),
            tail,
            detail,
            platforms,
        };
        self.reports[i] = Some(report.clone());
        self.emit(RunEvent::StepFinished(report));
    }
}

enum Next {
    Msg(Msg),
    /// The kill deadline passed: SIGKILL was sent.
    Killed,
    /// No sender is left.
    Closed,
}

/// What the pool does to running commands.
struct Signals<'a> {
    table: &'a ProcessTable,
    grace: Duration,
    kill_deadline: Option<Instant>,
}

impl Signals<'_> {
    fn apply(&mut self, e: &Effect) {
        match e {
            Effect::Terminate => {
                self.table.cancel(libc::SIGTERM);
                self.kill_deadline = Some(Instant::now() + self.grace);
            }
            Effect::Kill => self.table.signal_all(libc::SIGKILL),
            Effect::Finished(..) => {}
        }
    }

    /// The next message; past the kill deadline, what still runs is killed.
    fn next(&mut self, rx: &mpsc::Receiver<Msg>) -> Next {
        let Some(d) = self.kill_deadline else {
            return rx.recv().map_or(Next::Closed, Next::Msg);
        };
        match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
            Ok(m) => Next::Msg(m),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.table.signal_all(libc::SIGKILL);
                self.kill_deadline = None;
                Next::Killed
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }
}

/// Run the plan's steps. Returns the summary (also sent to the reporter as the
/// last event).
pub fn drive(
    plan: &Plan,
    exec: &dyn StepExecutor,
    opts: &PoolOptions,
    table: Arc<ProcessTable>,
    reporter: &mut dyn Reporter,
) -> RunSummary {
    let started = Instant::now();
    let n = plan.steps().len();
    let jobs = opts.jobs.max(1);
    let mut out = Reports {
        plan,
        ids: plan.steps().iter().map(|s| s.id.to_string()).collect(),
        masker: opts.masker.clone(),
        reporter,
        reports: vec![None; n],
        tails: vec![Vec::new(); n],
    };
    out.emit(RunEvent::Started { steps: n, jobs });
    let digests: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    let mut dispatcher = Dispatcher::new(plan, opts.failure);
    for (id, res, d) in &opts.done {
        let Some(i) = out.ids.iter().position(|s| s == id) else {
            continue;
        };
        if let (Some(dg), Ok(mut m)) = (&res.digest, digests.lock()) {
            m.insert(id.clone(), dg.clone());
        }
        dispatcher.preset(i, res.status.clone());
        out.report(i, res.status.clone(), Some((res, *d)), res.tail.clone());
    }
    let mut signals = Signals {
        table: &table,
        grace: opts.grace,
        kill_deadline: None,
    };
    let effects = dispatcher.start();
    apply(&effects, &mut out, &mut signals, None);

    // Bounded: a step that prints faster than the reporters write waits (its
    // pipe fills, the command blocks) instead of queueing its output in memory.
    let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
    let own = match (&opts.interrupts, opts.handle_signals) {
        (None, true) => Interrupts::listen(table.clone()).map(Arc::new),
        _ => None,
    };
    let interrupts = opts.interrupts.as_ref().or(own.as_ref());
    // A signal that came before the pool started (during preflight) interrupts it now.
    for sig in interrupts.map(|i| i.attach(tx.clone())).unwrap_or_default() {
        let effects = dispatcher.interrupt(sig);
        apply(&effects, &mut out, &mut signals, None);
    }
    // Steps run on up to `jobs` long-lived workers, started as needed. A thread per
    // step pays for its creation on every step and, on a busy machine, waits behind
    // the running tasks before it first runs; an idle worker just wakes.
    let (work_tx, work_rx) = mpsc::channel::<usize>();
    let work_rx = Mutex::new(work_rx);
    let mut workers = 0usize;
    std::thread::scope(|scope| {
        loop {
            while let Some(i) = dispatcher.next(jobs) {
                let step = &plan.steps()[i];
                out.emit(RunEvent::StepStarted {
                    id: out.ids[i].clone(),
                    command: step.command(),
                });
                if workers < dispatcher.running() {
                    workers += 1;
                    let (tx, table, digests, work_rx) =
                        (tx.clone(), table.clone(), &digests, &work_rx);
                    scope.spawn(move || work(plan, exec, work_rx, tx, digests, table));
                }
                // The receiver lives until the scope ends, so this cannot fail.
                let _ = work_tx.send(i);
            }
            if dispatcher.stalled() {
                break;
            }
            let msg = match signals.next(&rx) {
                Next::Msg(m) => m,
                Next::Killed => continue,
                Next::Closed => break,
            };
            match msg {
                Msg::Output(i, line) => out.output(i, line),
                Msg::Note(i, message) => out.note(i, message),
                Msg::Finished(i, result, d) => {
                    let effects = dispatcher.finished(i, result.status.clone());
                    apply(&effects, &mut out, &mut signals, Some((i, &result, d)));
                }
                Msg::Signal(sig) => {
                    let effects = dispatcher.interrupt(sig);
                    apply(&effects, &mut out, &mut signals, None);
                }
            }
        }
        // Idle workers see the channel close and end; the scope waits for them.
        drop(work_tx);
    });
    if let Some(i) = interrupts {
        i.detach();
    }
    if let Some(i) = own {
        i.close();
    }
    let interrupted = matches!(
        dispatcher.stop(),
        super::dispatcher::Stop::Interrupted { .. }
    );
    let effects = dispatcher.drain();
    apply(&effects, &mut out, &mut signals, None);
    let summary = RunSummary {
        steps: out.reports.drain(..).flatten().collect(),
        duration: started.elapsed(),
        interrupted,
    };
    out.emit(RunEvent::Finished(summary.clone()));
    summary
}

/// The dispatcher's answer: reports in order, signals to the process table.
/// `ran` is the step that just finished, with what it handed back.
fn apply(
    effects: &[Effect],
    out: &mut Reports<'_>,
    signals: &mut Signals<'_>,
    ran: Option<(usize, &StepResult, Duration)>,
) {
    for e in effects {
        match e {
            Effect::Finished(i, status) => {
                let result = ran.filter(|(j, ..)| j == i).map(|(_, r, d)| (r, d));
                out.finished(*i, status.clone(), result);
            }
            other => signals.apply(other),
        }
    }
}

/// One worker: takes step indices until the channel closes, runs each, and
/// sends back what it handed back. A step that panics fails; the run goes on.
fn work(
    plan: &Plan,
    exec: &dyn StepExecutor,
    work_rx: &Mutex<mpsc::Receiver<usize>>,
    tx: mpsc::SyncSender<Msg>,
    digests: &Mutex<HashMap<String, String>>,
    table: Arc<ProcessTable>,
) {
    loop {
        // The lock is held only while this worker waits for work.
        let next = match work_rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(i) = next else { break };
        let step = &plan.steps()[i];
        let t0 = Instant::now();
        let io = StepIo::new(i, tx.clone(), digests, table.clone());
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec.execute(step, &io)))
                .unwrap_or_else(|_| {
                    StepResult::failed("internal error: the step panicked", Vec::new())
                });
        if let (Some(d), Ok(mut m)) = (&result.digest, digests.lock()) {
            m.insert(step.id.to_string(), d.clone());
        }
        let _ = tx.send(Msg::Finished(i, result, t0.elapsed()));
    }
}

/// SIGINT and SIGTERM for the whole run, from its first command on. While the
/// pool runs, each signal goes to it (the dispatcher decides); before that
/// (preflight: engine probes, login, emulation setup, external checks) the
/// first one cancels the process table (SIGTERM to every child, nothing new
/// starts) and a second one kills what still runs. The signals are kept, so
/// the run can end as interrupted (exit 130) and the pool can start
/// interrupted.
#[derive(Debug)]
pub struct Interrupts {
    relay: Arc<Mutex<Relay>>,
    handle: signal_hook::iterator::Handle,
}

#[derive(Debug)]
struct Relay {
    received: Vec<i32>,
    pool: Option<mpsc::SyncSender<Msg>>,
    table: Arc<ProcessTable>,
}

impl Interrupts {
    /// Start listening; `None` when the handlers cannot be installed.
    pub fn listen(table: Arc<ProcessTable>) -> Option<Interrupts> {
        let mut signals =
            signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM]).ok()?;
        let handle = signals.handle();
        let relay = Arc::new(Mutex::new(Relay {
            received: Vec::new(),
            pool: None,
            table,
        }));
        let r = relay.clone();
        std::thread::spawn(move || {
            for sig in signals.forever() {
                let pool = {
                    let Ok(mut r) = r.lock() else { break };
                    r.received.push(sig);
                    match &r.pool {
                        Some(tx) => Some(tx.clone()),
                        None if r.received.len() == 1 => {
                            r.table.cancel(libc::SIGTERM);
                            None
                        }
                        None => {
                            r.table.cancel(libc::SIGKILL);
                            None
                        }
                    }
                };
                // Sent outside the lock: the queue may be full for a moment.
                if let Some(tx) = pool {
                    let _ = tx.send(Msg::Signal(sig));
                }
            }
        });
        Some(Interrupts { relay, handle })
    }

    /// The first signal received so far.
    pub fn received(&self) -> Option<i32> {
        self.relay
            .lock()
            .ok()
            .and_then(|r| r.received.first().copied())
    }

    /// From now on signals go to the pool; returns those received before.
    fn attach(&self, tx: mpsc::SyncSender<Msg>) -> Vec<i32> {
        match self.relay.lock() {
            Ok(mut r) => {
                r.pool = Some(tx);
                r.received.clone()
            }
            Err(_) => Vec::new(),
        }
    }

    fn detach(&self) {
        if let Ok(mut r) = self.relay.lock() {
            r.pool = None;
        }
    }

    /// Stop listening: the signals' default actions are back.
    pub fn close(&self) {
        self.handle.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::dispatcher::tests::{chain, name, plan};
    use crate::exec::process::{self, Command, Output};
    use crate::plan::Step;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Condvar;

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
            let me = step.image().unwrap_or_default();
            self.log.lock().unwrap().push(format!("start {me}"));
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
            io.line(&format!("hello from {me}"));
            let result = if self.slow.contains(&me) {
                let cmd = Command::new(vec!["sleep".into(), "30".into()]);
                let f = process::spawn(&cmd, &io.table, Output::Captured);
                if f.exit.success() {
                    StepResult::ok()
                } else {
                    StepResult::failed(f.exit.describe(), Vec::new())
                }
            } else if self.fail.contains(&me) {
                StepResult::failed("boom", vec!["last line".into()])
            } else {
                StepResult::pushed(Some(format!("sha256:{}", me.len())))
            };
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.log.lock().unwrap().push(format!("end {me}"));
            result
        }
    }

    fn status<'a>(s: &'a RunSummary, id: &str) -> &'a StepStatus {
        &s.steps.iter().find(|r| name(&r.id) == id).unwrap().status
    }

    fn run_with(p: &Plan, fake: &Fake, jobs: usize, failure: FailureMode) -> RunSummary {
        let opts = PoolOptions {
            jobs,
            failure,
            grace: Duration::from_secs(2),
            ..PoolOptions::default()
        };
        drive(
            p,
            fake,
            &opts,
            ProcessTable::new(),
            &mut crate::events::Silent,
        )
    }

    #[test]
    fn steps_run_in_need_order_and_report_their_digests_and_tails() {
        let p = chain();
        let fake = Fake {
            fail: vec!["x"],
            ..Fake::default()
        };
        let s = run_with(&p, &fake, 1, FailureMode::KeepGoing);
        assert_eq!(
            *fake.log.lock().unwrap(),
            ["start a", "end a", "start b", "end b", "start c", "end c", "start x", "end x"]
        );
        let c = s.steps.iter().find(|r| name(&r.id) == "c").unwrap();
        assert_eq!(c.digest.as_deref(), Some("sha256:1"));
        assert!(c.tail.is_empty());
        let x = s.steps.iter().find(|r| name(&r.id) == "x").unwrap();
        assert_eq!(x.tail, ["last line"]);
        assert_eq!(s.exit_code(), 1);
    }

    #[test]
    fn the_job_limit_holds_and_is_used() {
        let steps: String = (0..6).map(|i| format!("s{i} build\n")).collect();
        let p = plan(&steps, false);
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
    fn fail_fast_ends_what_runs() {
        let p = plan(
            "
                slow  build
                a     build
            ",
            false,
        );
        let fake = Fake {
            fail: vec!["a"],
            slow: vec!["slow"],
            rendezvous: 2,
            ..Fake::default()
        };
        let t0 = Instant::now();
        let s = run_with(&p, &fake, 2, FailureMode::FailFast);
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the sleeping step was not ended"
        );
        assert!(!status(&s, "slow").is_ok());
        assert_eq!(s.exit_code(), 1);
    }

    #[test]
    fn steps_done_before_the_run_are_reported_and_not_run() {
        let p = plan(
            "
                build:a  build
                push:a   push   build:a
            ",
            false,
        );
        let opts = PoolOptions {
            done: vec![(
                p.steps()[0].id.to_string(),
                StepResult::ok(),
                Duration::ZERO,
            )],
            ..PoolOptions::default()
        };
        let fake = Fake::default();
        let s = drive(
            &p,
            &fake,
            &opts,
            ProcessTable::new(),
            &mut crate::events::Silent,
        );
        assert_eq!(s.exit_code(), 0);
        assert_eq!(*fake.log.lock().unwrap(), ["start push:a", "end push:a"]);
        assert_eq!(*status(&s, "build:a"), StepStatus::Ok);
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
        let p = plan(
            "
                a  push
            ",
            false,
        );
        let opts = PoolOptions {
            masker: Masker::new(&["s3cr3t-value".into()]),
            ..PoolOptions::default()
        };
        let mut c = Collect(Vec::new());
        let s = drive(&p, &Leaky, &opts, ProcessTable::new(), &mut c);
        assert_eq!(s.exit_code(), 1);
        assert!(c.0.len() > 3);
        assert!(
            c.0.iter().all(|e| !e.contains("s3cr3t-value")),
            "{:#?}",
            c.0
        );
    }
}
