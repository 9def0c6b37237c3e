//! What is checked before any step runs: every engine the plan uses answers
//! ([`engines_answer`]), the registries accept the credentials ([`login`]), and
//! the needs outside the selection exist ([`check_external`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::process::{self, Command, Finished, Output, ProcessTable};
use super::runner::EngineRunner;
use super::Credentials;
use super::RunError;
use crate::engine::EngineTarget;
use crate::events::{Masker, Reporter};
use crate::plan::{Plan, StepId, StepKind};
use crate::spec::{Builder, EngineKind};

/// Run a probe, captured, with a deadline.
pub(super) fn quick(
    argv: Vec<String>,
    dir: &Path,
    table: &Arc<ProcessTable>,
    timeout: Duration,
    env: &[(String, String)],
) -> Finished {
    let cmd = Command {
        argv,
        dir: Some(dir.to_path_buf()),
        env: env.to_vec(),
        stdin: None,
        timeout: Some(timeout),
    };
    process::spawn(&cmd, table, Output::Captured)
}

/// Check that every engine the plan uses answers. Exit 3 otherwise, before any step.
pub fn engines_answer(plan: &Plan, table: &Arc<ProcessTable>) -> Result<(), RunError> {
    for t in plan.engine_targets() {
        let e = t.engine();
        let f = quick(
            e.probe_server(&t),
            &plan.dir,
            table,
            Duration::from_secs(20),
            &e.env(),
        );
        if !f.exit.success() || f.stdout.first().is_none_or(|v| v.trim().is_empty()) {
            let which = match &t.builder {
                None => format!("the local {} engine", t.kind.program()),
                Some(Builder::Host(h)) => format!("the builder {h}"),
                Some(Builder::Context(c)) => format!("the docker context {c}"),
            };
            let detail = f.first_line();
            let how = match (t.kind, &t.builder) {
                (EngineKind::Docker, None) => "start one: `sudo dockerd --bridge=none --iptables=false &` (or `systemctl start docker`), or set DOCKER_HOST; `cargo xtask images` sets one up on Debian",
                (EngineKind::Podman, None) => "install podman (`apt-get install podman`), or use --engine docker",
                _ => "check that the builder is up and reachable (`docker --host … version`)",
            };
            return Err(RunError::EngineUnreachable { which, detail, how });
        }
    }
    Ok(())
}

/// The registries a login is for: the credentials' own, else every registry
/// of the plan.
pub fn login_registries(plan: &Plan, creds: &Credentials) -> Result<Vec<String>, RunError> {
    let registries: Vec<String> = match &creds.registry {
        Some(r) => vec![r.clone()],
        None => plan.registries().to_vec(),
    };
    if registries.is_empty() {
        return Err(RunError::LoginWithoutRegistry);
    }
    Ok(registries)
}

/// `docker login --password-stdin` to each of `registries`, with `env` (which
/// points the engine at the run's private login config).
pub fn login(
    creds: &Credentials,
    registries: &[String],
    env: &[(String, String)],
    table: &Arc<ProcessTable>,
    masker: &Masker,
    plan: &Plan,
    reporter: &mut dyn Reporter,
) -> Result<(), RunError> {
    let local = EngineTarget::local(plan.engine);
    for r in registries {
        let cmd = Command {
            argv: local.engine().login(&local, r, &creds.user),
            dir: Some(plan.dir.clone()),
            env: env.to_vec(),
            stdin: Some(creds.password.clone().into_bytes()),
            timeout: Some(Duration::from_secs(60)),
        };
        let f = process::spawn(&cmd, table, Output::Captured);
        if !f.exit.success() {
            let detail = masker.mask(&f.stderr.join(" "));
            return Err(RunError::LoginFailed {
                registry: r.clone(),
                user: creds.user.clone(),
                detail: detail.trim().to_string(),
            });
        }
        super::note(
            reporter,
            masker,
            "login",
            format!("logged in to {r} as {}", creds.user),
        );
    }
    Ok(())
}

/// Needs outside the selection must already exist: per-arch images and lists in the
/// registry, built images locally. A missing one is an error (exit 1) naming it; one
/// the registry does not let us read (401, 403, down) is exit 3, with the why.
pub fn check_external(
    plan: &Plan,
    table: &Arc<ProcessTable>,
    runner: &EngineRunner,
) -> Result<(), RunError> {
    let env = &runner.env;
    let mut checked: BTreeSet<&StepId> = BTreeSet::new();
    let mut missing = Vec::new();
    let mut unreadable = Vec::new();
    let engine = EngineTarget::local(plan.engine);
    for s in plan.steps() {
        for need in s.external_needs() {
            if need.id == StepId::SetupQemu || !checked.insert(&need.id) {
                continue;
            }
            let kind = need.id.kind();
            let local = matches!(kind, StepKind::Build | StepKind::Test);
            // A pushed per-arch image was tested before its push: when the push is
            // checked in the registry, the test need is satisfied with it.
            if local
                && need
                    .id
                    .with_kind(StepKind::Push)
                    .is_some_and(|push| s.external_needs().iter().any(|n| n.id == push))
            {
                continue;
            }
            let Some(reference) = need.reference.as_deref() else {
                continue;
            };
            let found = match kind {
                StepKind::Build | StepKind::Test => {
                    let e = engine.engine();
                    quick(
                        e.image_exists(&engine, reference),
                        &plan.dir,
                        table,
                        Duration::from_secs(60),
                        env,
                    )
                    .exit
                    .success()
                }
                // Lists and per-arch images alike: the registry's API. A
                // registry that refuses the read (401, 403) says why.
                _ => match runner.registry_digest(reference, None) {
                    Ok(found) => found.is_some(),
                    Err(e) => {
                        unreadable.push(format!("{} ({reference} cannot be read: {e})", need.id));
                        continue;
                    }
                },
            };
            if !found {
                let place = if local { "locally" } else { "in the registry" };
                missing.push(format!("{} ({reference} is not {place})", need.id));
            }
        }
    }
    match (unreadable.is_empty(), missing.is_empty()) {
        (true, true) => Ok(()),
        (true, false) => Err(RunError::ExternalNeedsMissing { missing }),
        // What cannot be read is the first thing to fix: the registry's
        // credentials or its availability; what is missing follows it.
        (false, _) => {
            unreadable.extend(missing);
            Err(RunError::ExternalNeedsUnreadable { needs: unreadable })
        }
    }
}
