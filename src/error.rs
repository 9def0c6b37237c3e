//! The library's error type and the process exit codes of SPEC.md §3.

use std::path::Path;

pub use crate::ci::CiError;
pub use crate::context::ContextError;
use crate::diagnostic::SpecErrors;
pub use crate::exec::RunError;
use crate::file_error::FileError;
pub use crate::init::InitError;
pub use crate::plan::PlanError;
pub use crate::report::ReportError;
pub use crate::spec::LoadError;

pub use crate::exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Problems in multiarch.toml, each with a span.
    #[error("{0}")]
    Spec(SpecErrors),
    /// The spec file cannot be used (missing, a directory, too large, not UTF-8).
    #[error(transparent)]
    Load(LoadError),
    /// What the command line or git says about the commit is wrong.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// No plan can be made from the file and the options.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// `multiarch init` wrote nothing.
    #[error(transparent)]
    Init(InitError),
    /// A file cannot be read (`doing` = "read") or, for a file the command
    /// writes (`multiarch ci -o FILE`), written ("write").
    #[error(transparent)]
    Io(FileError),
    #[error("interrupted")]
    Interrupted,
    /// A run could not start, or stopped before its steps (exec).
    #[error(transparent)]
    Run(#[from] RunError),
    /// A pipeline that cannot be written for this spec (`multiarch ci`).
    #[error(transparent)]
    Ci(#[from] CiError),
    /// A run's outputs: report files, standard output, recorded runs.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// An error a recorded run ended with (`multiarch replay`), with its code.
    #[error("{message}")]
    Recorded { message: String, exit_code: i32 },
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io(FileError::read(path, source))
    }

    /// `path` cannot be written.
    pub fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Io(FileError::write(path, source))
    }

    /// Standard output could not be written.
    pub fn stdout(source: std::io::Error) -> Self {
        Error::Report(ReportError::Write {
            what: "to standard output".into(),
            source,
        })
    }

    /// Only the reader of a pipe went away (`multiarch plan | head -1`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Report(ReportError::Write { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// How to fix it, when the error says (miette's `help`).
    pub fn help(&self) -> Option<String> {
        use miette::Diagnostic;
        match self {
            Error::Load(e) => e.help().map(|h| h.to_string()),
            Error::Context(e) => e.help().map(|h| h.to_string()),
            Error::Plan(e) => e.help().map(|h| h.to_string()),
            Error::Run(e) => e.help().map(|h| h.to_string()),
            Error::Report(e) => e.help().map(|h| h.to_string()),
            Error::Init(e) => e.help().map(|h| h.to_string()),
            _ => None,
        }
    }

    /// The message and, on a line of its own, the help: as `error:` lines,
    /// `--events` error records and JUnit errors show it.
    pub fn with_help(&self) -> String {
        match self.help() {
            Some(h) => format!("{self}\n  help: {h}"),
            None => self.to_string(),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) | Error::Io(_) => exit::USAGE,
            Error::Load(e) => e.exit_code(),
            Error::Context(e) => e.exit_code(),
            Error::Plan(e) => e.exit_code(),
            Error::Init(e) => e.exit_code(),
            Error::Interrupted => exit::INTERRUPTED,
            Error::Run(e) => e.exit_code(),
            Error::Report(e) => e.exit_code(),
            Error::Ci(_) => exit::USAGE,
            Error::Recorded { exit_code, .. } => *exit_code,
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

/// The starter file's problems stay `Error::Spec`, rendered as every spec's are.
impl From<InitError> for Error {
    fn from(e: InitError) -> Self {
        match e {
            InitError::Invalid(errs) => Error::Spec(errs),
            InitError::Load(e) => e.into(),
            other => Error::Init(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
