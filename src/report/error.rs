//! Errors of a run's outputs: report files that cannot be created, output that
//! cannot be written, recorded runs that cannot be read back.

use std::path::PathBuf;

use crate::exit;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReportError {
    /// A `--junit`/`--events` path that cannot be created or written before the
    /// run: exit 2, before anything runs.
    #[error("{flag}: cannot write {}: {source}", path.display())]
    CreateReport {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Output could not be written: standard output, or a report file after it
    /// was opened (a full disk, a closed pipe).
    #[error("cannot write {what}: {source}")]
    Write {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A line of a recorded `--events` file that is not an event.
    #[error("{}:{line}: {message}", path.display())]
    BadReplayLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl ReportError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ReportError::Write { .. } => exit::STEP_FAILED,
            ReportError::CreateReport { .. } | ReportError::BadReplayLine { .. } => exit::USAGE,
        }
    }
}
