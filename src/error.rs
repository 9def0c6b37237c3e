//! The library's error type and the process exit codes of SPEC.md §3.

use std::path::{Path, PathBuf};

use crate::context::ContextError;
use crate::diagnostic::SpecErrors;
use crate::plan::PlanError;
use crate::spec::LoadError;

pub use crate::exit;

/// Every error of the library. The layers' own errors (loading, the git
/// context, planning) are wrapped as they are: their texts, help lines and exit
/// codes are theirs.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// Problems in multiarch.toml, each with a span.
    #[error("{0}")]
    Spec(SpecErrors),
    /// The spec file cannot be used (missing, a directory, too large, not UTF-8).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(LoadError),
    /// What the command line or git says about the commit is wrong.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Context(#[from] ContextError),
    /// No plan can be made from the file and the options.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] PlanError),
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
            Error::Load(e) => e.exit_code(),
            Error::Context(e) => e.exit_code(),
            Error::Plan(e) => e.exit_code(),
            Error::Environment(_) => exit::ENVIRONMENT,
            Error::Failed(_) | Error::Output { .. } => exit::STEP_FAILED,
            Error::Interrupted => exit::INTERRUPTED,
        }
    }
}

/// Problems in the file stay `Error::Spec`, the shape callers match on.
impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid(errs) => Error::Spec(errs),
            other => Error::Load(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
