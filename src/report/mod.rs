//! What a run reports: events from the scheduler, and the reporters that turn them
//! into text, a live terminal view, CI log sections, JSON lines and JUnit XML.
//! The scheduler knows nothing about terminals: every reporter is fed only
//! [`RunEvent`]s (already masked), plus what [`PlanInfo`] says about the plan.

pub mod events;
pub mod grouped;
pub mod info;
pub mod junit;
pub mod live;
pub mod plain;
pub mod sink;
pub mod style;
pub mod summary;

use std::time::Duration;

use crate::plan::StepKind;

pub use events::JsonEventsReporter;
pub use grouped::{CiLog, GroupedReporter};
pub use info::{PlanInfo, StepInfo};
pub use junit::JUnitReporter;
pub use live::LiveReporter;
pub use plain::PlainReporter;
pub use style::Style;
pub use summary::{render_summary, render_summary_with};

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
    /// How a step that succeeded did it, when that is worth saying
    /// ("platform checked from config: linux/arm64/v8").
    pub detail: Option<String>,
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

/// Lend a reporter (to a [`Tee`]) and keep using it afterwards.
impl<R: Reporter + ?Sized> Reporter for &mut R {
    fn event(&mut self, e: &RunEvent) {
        (**self).event(e);
    }
}

impl<R: Reporter + ?Sized> Reporter for Box<R> {
    fn event(&mut self, e: &RunEvent) {
        (**self).event(e);
    }
}

/// Reporters that ignore everything (tests, library users who read the summary).
pub struct Silent;

impl Reporter for Silent {
    fn event(&mut self, _e: &RunEvent) {}
}

/// Several reporters fed the same events, in order (the human view, `--events`,
/// `--junit`).
#[derive(Default)]
pub struct Tee<'a> {
    reporters: Vec<Box<dyn Reporter + 'a>>,
}

impl<'a> Tee<'a> {
    pub fn new() -> Self {
        Tee {
            reporters: Vec::new(),
        }
    }

    pub fn push(&mut self, r: impl Reporter + 'a) {
        self.reporters.push(Box::new(r));
    }
}

impl Reporter for Tee<'_> {
    fn event(&mut self, e: &RunEvent) {
        for r in &mut self.reporters {
            r.event(e);
        }
    }
}
