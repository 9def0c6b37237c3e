//! What runs one step: the [`StepExecutor`] trait (the engine runner, and fakes
//! in tests), the [`StepIo`] it reports through, and the [`StepResult`] it
//! hands back. The pool calls executors; executors never see the pool.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::process::ProcessTable;
use crate::events::StepStatus;
use crate::plan::Step;

/// What a step hands back.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub status: StepStatus,
    pub digest: Option<String>,
    pub tail: Vec<String>,
    /// What a step that succeeded wants said about how (the summary's detail).
    pub detail: Option<String>,
    /// The platforms the registry serves under what the step published (a
    /// list's image entries, each its config's platform); empty otherwise.
    pub platforms: Box<[String]>,
}

impl StepResult {
    pub fn ok() -> Self {
        StepResult {
            status: StepStatus::Ok,
            digest: None,
            tail: Vec::new(),
            detail: None,
            platforms: Box::default(),
        }
    }

    /// Succeeded, and says how.
    pub fn ok_with(detail: impl Into<String>) -> Self {
        StepResult {
            detail: Some(detail.into()),
            ..StepResult::ok()
        }
    }

    /// Succeeded and pushed `digest`.
    pub fn pushed(digest: Option<String>) -> Self {
        StepResult {
            digest,
            ..StepResult::ok()
        }
    }

    /// Not run: its result is already there (`--skip-existing`).
    pub fn cached(reason: impl Into<String>, digest: Option<String>) -> Self {
        StepResult {
            status: StepStatus::Cached(reason.into()),
            digest,
            tail: Vec::new(),
            detail: None,
            platforms: Box::default(),
        }
    }

    pub fn failed(reason: impl Into<String>, tail: Vec<String>) -> Self {
        StepResult {
            status: StepStatus::Failed(reason.into()),
            digest: None,
            tail,
            detail: None,
            platforms: Box::default(),
        }
    }
}

/// What a running step says, on its way to the pool.
pub(crate) enum Msg {
    Output(usize, String),
    Note(usize, String),
    Finished(usize, StepResult, Duration),
    Signal(i32),
}

/// What a running step can use: its output sink, the digests pushed so far, the
/// process table for cancellation.
pub struct StepIo<'a> {
    index: usize,
    tx: mpsc::SyncSender<Msg>,
    digests: &'a Mutex<HashMap<String, String>>,
    pub table: Arc<ProcessTable>,
}

impl<'a> StepIo<'a> {
    pub(crate) fn new(
        index: usize,
        tx: mpsc::SyncSender<Msg>,
        digests: &'a Mutex<HashMap<String, String>>,
        table: Arc<ProcessTable>,
    ) -> Self {
        StepIo {
            index,
            tx,
            digests,
            table,
        }
    }

    /// One line of the step's output.
    pub fn line(&self, line: &str) {
        let _ = self.tx.send(Msg::Output(self.index, line.to_string()));
    }

    /// A note from multiarch about this step (a retry, a check).
    pub fn note(&self, message: &str) {
        let _ = self.tx.send(Msg::Note(self.index, message.to_string()));
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
