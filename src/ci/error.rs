//! Why a pipeline cannot be written for this spec (exit 2).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CiError {
    #[error("{} is not inside the repository at {}: CI jobs start at the repository's root", spec.display(), root.display())]
    OutsideRepository { spec: PathBuf, root: PathBuf },
    #[error("the path {} is not UTF-8: a CI file cannot name it", .0.display())]
    NotUtf8(PathBuf),
    #[error("the path {0:?} holds a control character: a CI file cannot name it safely")]
    ControlCharacter(String),
    #[error("the path {0} holds `${{{{`, which GitHub would read as an expression: rename it")]
    GitHubExpression(String),
    #[error("cannot quote {words:?} for a shell: {message}")]
    Quote { words: Vec<String>, message: String },
    #[error("cannot write YAML: {0}")]
    Yaml(String),
}
