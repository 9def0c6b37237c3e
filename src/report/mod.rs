//! What a run reports: events from the scheduler, and the reporters that turn them
//! into text. The scheduler knows nothing about terminals.

use std::io::Write;
use std::time::Duration;

use crate::exec::process::humantime;
use crate::plan::StepKind;

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    Ok,
    /// Not run because its result already exists (`--skip-existing`); counts as ok.
    Cached(String),
    Failed(String),
    TimedOut(String),
    /// Not run, and why (a dependency failed, fail-fast, atomic).
    Skipped(String),
    /// Not run: interrupted.
    Cancelled,
}

impl StepStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, StepStatus::Ok | StepStatus::Cached(_))
    }

    pub fn is_failure(&self) -> bool {
        matches!(self, StepStatus::Failed(_) | StepStatus::TimedOut(_))
    }

    pub fn label(&self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Cached(_) => "cached",
            StepStatus::Failed(_) => "FAILED",
            StepStatus::TimedOut(_) => "TIMED OUT",
            StepStatus::Skipped(_) => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            StepStatus::Failed(r)
            | StepStatus::TimedOut(r)
            | StepStatus::Skipped(r)
            | StepStatus::Cached(r) => Some(r),
            _ => None,
        }
    }
}

/// The result of one step, as the summary shows it.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub id: String,
    pub kind: StepKind,
    pub status: StepStatus,
    pub duration: Duration,
    /// The pushed digest (push, manifest-push).
    pub digest: Option<String>,
    pub reference: Option<String>,
    /// The last lines of output (for failures).
    pub tail: Vec<String>,
}

/// Everything that happened, in order.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Started {
        steps: usize,
        jobs: usize,
    },
    StepStarted {
        id: String,
        command: Vec<String>,
    },
    Output {
        id: String,
        line: String,
    },
    /// A note from multiarch itself about a step (a retry, a check).
    Note {
        id: String,
        message: String,
    },
    StepFinished(StepReport),
    Finished(RunSummary),
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub steps: Vec<StepReport>,
    pub duration: Duration,
    pub interrupted: bool,
}

impl RunSummary {
    pub fn failed(&self) -> impl Iterator<Item = &StepReport> {
        self.steps.iter().filter(|s| s.status.is_failure())
    }

    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            crate::error::exit::INTERRUPTED
        } else if self.failed().next().is_some() {
            crate::error::exit::STEP_FAILED
        } else {
            crate::error::exit::SUCCESS
        }
    }
}

pub trait Reporter {
    fn event(&mut self, e: &RunEvent);
}

/// Reporters that ignore everything (tests, library users who read the summary).
pub struct Silent;

impl Reporter for Silent {
    fn event(&mut self, _e: &RunEvent) {}
}

/// Plain text: each output line prefixed by its step id; a summary at the end. No
/// control codes, so logs in CI and pipes stay readable.
pub struct PlainReporter<W: Write> {
    out: W,
    pub quiet: bool,
    pub verbose: bool,
}

impl<W: Write> PlainReporter<W> {
    pub fn new(out: W, quiet: bool, verbose: bool) -> Self {
        PlainReporter {
            out,
            quiet,
            verbose,
        }
    }
}

impl<W: Write> Reporter for PlainReporter<W> {
    fn event(&mut self, e: &RunEvent) {
        let o = &mut self.out;
        match e {
            RunEvent::Started { steps, jobs } => {
                if !self.quiet {
                    let _ = writeln!(o, "multiarch: running {steps} steps, {jobs} at a time");
                }
            }
            RunEvent::StepStarted { id, command } => {
                if !self.quiet {
                    let _ = writeln!(o, "[{id}] started");
                    if self.verbose {
                        let _ = writeln!(o, "[{id}] $ {}", crate::plan::render::argv_line(command));
                    }
                }
            }
            RunEvent::Output { id, line } => {
                if !self.quiet {
                    let _ = writeln!(o, "[{id}] {line}");
                }
            }
            RunEvent::Note { id, message } => {
                let _ = writeln!(o, "[{id}] multiarch: {message}");
            }
            RunEvent::StepFinished(r) => {
                if !self.quiet || r.status.is_failure() {
                    let reason = r
                        .status
                        .reason()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "[{}] {} ({}){reason}",
                        r.id,
                        r.status.label(),
                        humantime(r.duration)
                    );
                }
            }
            RunEvent::Finished(s) => {
                let _ = o.write_all(render_summary(s).as_bytes());
            }
        }
        let _ = o.flush();
    }
}

/// The final table: failures first with their last lines, then every step, then
/// what was published.
pub fn render_summary(s: &RunSummary) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o);
    let failed: Vec<&StepReport> = s.failed().collect();
    if !failed.is_empty() {
        let _ = writeln!(o, "failures:");
        for f in &failed {
            let _ = writeln!(o, "  {} — {}", f.id, f.status.reason().unwrap_or(""));
            for l in &f.tail {
                let _ = writeln!(o, "    | {l}");
            }
        }
        let _ = writeln!(o);
    }
    let w = s
        .steps
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 70);
    let _ = writeln!(o, "{:w$}  {:9}  {:>8}  detail", "step", "status", "time");
    let mut ordered: Vec<&StepReport> = failed.clone();
    ordered.extend(s.steps.iter().filter(|r| !r.status.is_failure()));
    for r in ordered {
        let detail = match (&r.status, &r.digest) {
            (StepStatus::Ok | StepStatus::Cached(_), Some(d)) => d.clone(),
            (st, _) => st.reason().unwrap_or("").to_string(),
        };
        let time = if matches!(r.status, StepStatus::Skipped(_) | StepStatus::Cancelled) {
            "-".to_string()
        } else {
            humantime(r.duration)
        };
        let _ = writeln!(
            o,
            "{:w$}  {:9}  {:>8}  {}",
            r.id,
            r.status.label(),
            time,
            detail
        );
    }
    let lists: Vec<&StepReport> = s
        .steps
        .iter()
        .filter(|r| r.kind == StepKind::ManifestPush && r.status.is_ok())
        .collect();
    let pushes: Vec<&StepReport> = s
        .steps
        .iter()
        .filter(|r| r.kind == StepKind::Push && r.status.is_ok())
        .collect();
    if !lists.is_empty() || !pushes.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "published:");
        for r in lists.iter().chain(pushes.iter()) {
            let _ = writeln!(
                o,
                "  {}@{}",
                r.reference.as_deref().unwrap_or("?"),
                r.digest.as_deref().unwrap_or("?")
            );
        }
    }
    let ok = s.steps.iter().filter(|r| r.status.is_ok()).count();
    let skipped = s
        .steps
        .iter()
        .filter(|r| matches!(r.status, StepStatus::Skipped(_) | StepStatus::Cancelled))
        .count();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{}: {ok} ok, {} failed, {skipped} not run, in {}",
        if s.interrupted {
            "interrupted"
        } else if failed.is_empty() {
            "success"
        } else {
            "failed"
        },
        failed.len(),
        humantime(s.duration)
    );
    o
}
