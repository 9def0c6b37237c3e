//! What a run says as it goes: [`RunEvent`]s, each step's [`StepStatus`] and
//! [`StepReport`], the [`RunSummary`], and the [`Reporter`] trait that consumes
//! them. The runner produces events (exec, above this module) and the reporters
//! consume them (report, above exec): they meet only here. Every event is masked
//! ([`Masker`]) before a reporter sees it.

pub mod format;
pub mod mask;
pub mod status;

use std::time::Duration;

use crate::plan::StepKind;

pub use mask::{Masker, MASK};
pub use status::StepStatus;

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
    /// What the registry serves under a published list: its image entries'
    /// platforms (empty for other steps, and in recordings made before).
    pub platforms: Vec<String>,
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
            crate::exit::INTERRUPTED
        } else if self.failed().next().is_some() {
            crate::exit::STEP_FAILED
        } else {
            crate::exit::SUCCESS
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
