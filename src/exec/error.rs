//! Why a run could not start, or stopped before its steps: each with its exit
//! code (SPEC.md §3) and, where there is one, the fix as a help line.

use std::path::PathBuf;

use crate::exit;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunError {
    #[error("--login: the plan pushes to no registry host (set [project] registry, or MULTIARCH_REGISTRY_LOGIN)")]
    LoginWithoutRegistry,
    #[error("--login needs credentials: set MULTIARCH_REGISTRY_USER and MULTIARCH_REGISTRY_PASSWORD (or CI_REGISTRY_USER / CI_REGISTRY_PASSWORD / CI_REGISTRY in GitLab)")]
    LoginWithoutCredentials,
    #[error("--skip-existing needs per-arch references that contain the commit ([tags] arch with {{sha}} or {{short_sha}}): otherwise an existing image may be of another commit")]
    SkipExistingNeedsImmutableRefs,
    /// An engine of the plan does not answer its probe.
    #[error("{which} does not answer: {detail}")]
    #[diagnostic(help("{how}"))]
    EngineUnreachable {
        /// "the local docker engine", "the builder ssh://…".
        which: String,
        detail: String,
        how: &'static str,
    },
    #[error("login to {registry} as {user} failed: {detail}")]
    LoginFailed {
        registry: String,
        user: String,
        detail: String,
    },
    #[error("{0}")]
    #[diagnostic(help("install qemu-user-static and binfmt-support and run `update-binfmts --enable` as root (mount binfmt_misc first if /proc/sys/fs/binfmt_misc is empty), or set [qemu] setup"))]
    EmulationMissing(super::qemu::EmulationMissing),
    /// Needs outside the selection that do not exist, each as
    /// `need (reference is not where)`.
    #[error("needs outside this selection are missing:\n  {}", .missing.join("\n  "))]
    #[diagnostic(help("run the earlier stages first (e.g. --stage build --stage push on each arch), or widen --image/--arch/--stage"))]
    ExternalNeedsMissing { missing: Vec<String> },
    /// Needs outside the selection the registry would not let us read (401,
    /// 403, down after the retries): each as `need (reference cannot be read:
    /// why)`, then any that are missing.
    #[error("needs outside this selection cannot be checked in the registry:\n  {}", .needs.join("\n  "))]
    #[diagnostic(help("check the registry's credentials (MULTIARCH_REGISTRY_USER/_PASSWORD, CI_REGISTRY_USER/_PASSWORD, docker login or a credential helper) and that it answers; `multiarch doctor` checks both"))]
    ExternalNeedsUnreadable { needs: Vec<String> },
    #[error(transparent)]
    Session(#[from] SessionError),
    /// SIGINT or SIGTERM before the first step: every child was ended.
    #[error("interrupted (signal {signal}) during {during}; every child process was ended")]
    Interrupted { during: &'static str, signal: i32 },
    /// A build secret's value cannot be read (said before any build runs).
    #[error("build secret `{id}`: {detail}")]
    #[diagnostic(help("a secret comes from an environment variable that is set, or a readable file ([[image]] secrets)"))]
    SecretUnavailable { id: String, detail: String },
}

/// The engine's preparation for the run could not be made.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SessionError {
    #[error("cannot create a temporary directory in {}: {source}", dir.display())]
    TempDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration file of the engine's that cannot be used (the engine's
    /// message).
    #[error("{0}")]
    Config(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::LoginWithoutRegistry
            | RunError::LoginWithoutCredentials
            | RunError::SkipExistingNeedsImmutableRefs => exit::USAGE,
            RunError::EngineUnreachable { .. }
            | RunError::LoginFailed { .. }
            | RunError::EmulationMissing(_)
            | RunError::Session(_)
            | RunError::SecretUnavailable { .. }
            | RunError::ExternalNeedsUnreadable { .. } => exit::ENVIRONMENT,
            RunError::ExternalNeedsMissing { .. } => exit::STEP_FAILED,
            RunError::Interrupted { .. } => exit::INTERRUPTED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miette::Diagnostic;

    #[test]
    fn messages_codes_and_help() {
        let e = RunError::EngineUnreachable {
            which: "the local docker engine".into(),
            detail: "Cannot connect".into(),
            how: "start one",
        };
        assert_eq!(
            e.to_string(),
            "the local docker engine does not answer: Cannot connect"
        );
        assert_eq!(
            e.help().map(|h| h.to_string()).as_deref(),
            Some("start one")
        );
        assert_eq!(e.exit_code(), exit::ENVIRONMENT);
        let e = RunError::ExternalNeedsMissing {
            missing: vec!["push:a/amd64 (r is not in the registry)".into(), "b".into()],
        };
        assert_eq!(
            e.to_string(),
            "needs outside this selection are missing:\n  push:a/amd64 (r is not in the registry)\n  b"
        );
        assert_eq!(e.exit_code(), exit::STEP_FAILED);
        let e = RunError::ExternalNeedsUnreadable {
            needs: vec!["push:a/amd64 (r cannot be read: 401 Unauthorized)".into()],
        };
        assert!(e.to_string().starts_with(
            "needs outside this selection cannot be checked in the registry:\n  push:a/amd64"
        ));
        assert!(e
            .help()
            .is_some_and(|h| h.to_string().contains("credentials")));
        assert_eq!(e.exit_code(), exit::ENVIRONMENT);
        assert!(RunError::SkipExistingNeedsImmutableRefs
            .to_string()
            .contains("with {sha} or {short_sha})"));
        assert_eq!(RunError::LoginWithoutCredentials.exit_code(), exit::USAGE);
    }
}
