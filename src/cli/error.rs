//! Errors of the command line itself: report files, output that cannot be
//! written, recorded runs that cannot be read.

use std::path::PathBuf;

use crate::exit;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CliError {
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
    #[error("--executor is for GitLab runners; GitHub jobs run on runs-on runners")]
    ExecutorOnGitHub,
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Write { .. } => exit::STEP_FAILED,
            CliError::CreateReport { .. }
            | CliError::BadReplayLine { .. }
            | CliError::ExecutorOnGitHub => exit::USAGE,
        }
    }
}
