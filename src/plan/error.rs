//! Why a plan cannot be made: the selection flags name nothing, or a template has
//! no value at plan time (exit 2), or an invariant of the planner broke (exit 101).

use crate::exit;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error("--image `{glob}` is not a valid glob: {reason}")]
    BadImageGlob { glob: String, reason: String },
    /// The `--image` globs together cannot be compiled.
    #[error("{reason}")]
    BadImageGlobs { reason: String },
    #[error("--image {globs} matches no image; images: {images}")]
    NoImageMatches { globs: String, images: String },
    /// `hint` is a did-you-mean, shown in parentheses.
    #[error("--arch `{given}` is not an arch of this file{}; arches: {arches}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    UnknownArch {
        given: String,
        hint: Option<String>,
        arches: String,
    },
    /// `what` names the template that needs the sha, with its line.
    #[error("no commit sha, and {what} uses {{sha}}")]
    #[diagnostic(help(
        "pass --sha $(git rev-parse HEAD), run inside a git repository, or in a CI that sets the commit variables"
    ))]
    NoSha { what: String },
    /// `at` is ` (FILE:LINE)` when the template is in the file.
    #[error("{what} `{template}`{at} uses {{{var}}}, which has no value: {why}")]
    #[diagnostic(help(
        "pass it on the command line (--branch, --git-tag, --sha), or use another variable"
    ))]
    MissingValue {
        what: String,
        template: String,
        at: String,
        var: String,
        why: String,
    },
    #[error("the per-arch reference of {image}/{arch} renders to `{rendered}`, which is not a valid reference: {reason}")]
    InvalidArchReference {
        image: String,
        arch: String,
        rendered: String,
        reason: String,
    },
    /// Secrets with the classic builder that `--builder` or `auto` chose (the
    /// file's own `builder = "classic"` is refused when it is loaded).
    #[error(
        "image `{image}` has the build secret `{secret}`{at}, and the builder is classic: {why}"
    )]
    #[diagnostic(help(
        "use builder = \"buildkit\" (or --builder buildkit), or engine = \"podman\": the classic builder has no `--secret`"
    ))]
    SecretsNeedBuildKit {
        image: String,
        secret: String,
        at: String,
        why: String,
    },
    /// A bug in the planner, never a user's mistake.
    #[error("internal: {0}")]
    Internal(String),
}

impl PlanError {
    pub fn exit_code(&self) -> i32 {
        match self {
            PlanError::Internal(_) => exit::INTERNAL,
            _ => exit::USAGE,
        }
    }
}
