//! What is wrong with what the command line or git says about the commit (exit 2),
//! or with the docker CLI a builder needs (exit 3).

use crate::exit;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ContextError {
    #[error("--sha `{given}` is not a full commit sha (40 hexadecimal digits); use `git rev-parse HEAD`")]
    BadSha { given: String },
    /// `git diff --name-only REV...HEAD` failed (`--changed-since REV`).
    #[error("{message}")]
    ChangedFiles { rev: String, message: String },
    /// A Dockerfile uses a BuildKit feature and `auto` fell back to the classic
    /// builder: the docker CLI cannot build it (exit 3).
    #[error("{file}:{line} uses {what}, which needs BuildKit, and the builder is classic: {why}")]
    #[diagnostic(help("{fix}; or set engine = \"podman\""))]
    NeedsBuildKit {
        file: String,
        line: usize,
        what: String,
        why: String,
        fix: String,
    },
    #[error("MULTIARCH_BUILDER=`{given}` is not a builder: auto, buildkit or classic")]
    BadBuilder { given: String },
    /// BuildKit was asked for and the docker CLI cannot build with it (exit 3).
    #[error("{message}")]
    NoBuildKit { message: String },
}

impl ContextError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ContextError::NoBuildKit { .. } | ContextError::NeedsBuildKit { .. } => {
                exit::ENVIRONMENT
            }
            _ => exit::USAGE,
        }
    }
}
