//! The library's error type and the process exit codes of SPEC.md §3.

use std::path::{Path, PathBuf};

use crate::diagnostic::SpecErrors;

pub use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Problems in multiarch.toml, each with a span.
    #[error("{0}")]
    Spec(SpecErrors),
    /// Wrong arguments, or a file that cannot be used.
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The machine cannot run the plan (no engine, no emulation).
    #[error("{0}")]
    Environment(String),
    /// One or more steps failed.
    #[error("{0}")]
    Failed(String),
    /// Output could not be written: standard output, or a report file after it
    /// was opened (a full disk, a closed pipe).
    #[error("cannot write {what}: {source}")]
    Output {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Standard output could not be written.
    pub fn stdout(source: std::io::Error) -> Self {
        Error::Output {
            what: "to standard output".into(),
            source,
        }
    }

    /// Only the reader of a pipe went away (`multiarch plan | head -1`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) | Error::Usage(_) | Error::Io { .. } => exit::USAGE,
            Error::Environment(_) => exit::ENVIRONMENT,
            Error::Failed(_) | Error::Output { .. } => exit::STEP_FAILED,
            Error::Interrupted => exit::INTERRUPTED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
