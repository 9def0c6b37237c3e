//! A file that cannot be read or written: the one shape of the "cannot read
//! FILE" errors of loading, `multiarch init` and the command line.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot {doing} {}: {source}", path.display())]
pub struct FileError {
    /// "read" or "write".
    pub doing: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    pub fn read(path: &Path, source: std::io::Error) -> FileError {
        FileError {
            doing: "read",
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn write(path: &Path, source: std::io::Error) -> FileError {
        FileError {
            doing: "write",
            path: path.to_path_buf(),
            source,
        }
    }
}
