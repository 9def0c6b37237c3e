//! What can go wrong loading a multiarch.toml: the file cannot be used (exit 2),
//! or it has problems, each a diagnostic with its span.

use std::path::PathBuf;

use crate::diagnostic::SpecErrors;
use crate::exit;
use crate::file_error::FileError;

use super::FILE_NAME;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    /// `-f` names a file that does not exist.
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    /// No `-f`, and no multiarch.toml here or above.
    #[error("no {FILE_NAME} in {} or any parent directory; create one with `multiarch init`, or pass -f FILE", cwd.display())]
    NoSpec { cwd: PathBuf },
    #[error("{} is a directory; give the path of a multiarch.toml", path.display())]
    IsDirectory { path: PathBuf },
    #[error("{} is {size} bytes; a multiarch.toml is limited to {} MiB", path.display(), limit / 1024 / 1024)]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{} is not UTF-8 text (invalid byte at offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error(transparent)]
    Io(FileError),
    /// Problems in the file, each with a span.
    #[error("{0}")]
    Invalid(SpecErrors),
    /// A bug: the validator refused the file without saying why.
    #[error("internal: {0}")]
    Internal(String),
}

impl LoadError {
    /// About the file or the arguments (2), except a bug (101).
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::Internal(_) => exit::INTERNAL,
            _ => exit::USAGE,
        }
    }
}
