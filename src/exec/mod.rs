//! Running a plan: preflight checks, the scheduler, the engine runner, and the
//! reporters' events.

pub mod mask;
pub mod process;
pub mod scheduler;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::argv::{self, EngineTarget};
use crate::engine::EngineRunner;
use crate::environment::Environment;
use crate::error::Error;
use crate::plan::{Action, Plan, StepId, StepKind};
use crate::report::{Reporter, RunSummary};
use crate::spec::reference;
use crate::spec::{Builder, EngineKind};
use process::{Command, ProcessTable};
use scheduler::{FailureMode, SchedulerOptions, StepResult};

/// How to run a plan (what the CLI flags say).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub jobs: Option<usize>,
    pub failure: FailureMode,
    pub retries: Option<u32>,
    /// Log in before running (credentials from the environment).
    pub login: bool,
    /// Listen for SIGINT/SIGTERM (the CLI does; library users may not want it).
    pub handle_signals: bool,
    /// Skip build/test/push of an arch whose per-arch reference (one containing
    /// the commit sha) is already in the registry.
    pub skip_existing: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: None,
            failure: FailureMode::KeepGoing,
            retries: None,
            login: false,
            handle_signals: true,
            skip_existing: false,
        }
    }
}

/// Registry credentials, from the environment only.
#[derive(Clone)]
pub struct Credentials {
    pub registry: Option<String>,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("registry", &self.registry)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// MULTIARCH_REGISTRY_USER/_PASSWORD (registry: MULTIARCH_REGISTRY_LOGIN, else
    /// every registry of the plan), else GitLab's CI_REGISTRY_USER/_PASSWORD for
    /// CI_REGISTRY.
    pub fn from_env(env: &Environment) -> Option<Credentials> {
        if let (Some(u), Some(p)) = (
            env.non_empty("MULTIARCH_REGISTRY_USER"),
            env.non_empty("MULTIARCH_REGISTRY_PASSWORD"),
        ) {
            return Some(Credentials {
                registry: env
                    .non_empty("MULTIARCH_REGISTRY_LOGIN")
                    .map(str::to_string),
                user: u.into(),
                password: p.into(),
            });
        }
        if let (Some(u), Some(p), Some(r)) = (
            env.non_empty("CI_REGISTRY_USER"),
            env.non_empty("CI_REGISTRY_PASSWORD"),
            env.non_empty("CI_REGISTRY"),
        ) {
            return Some(Credentials {
                registry: Some(r.into()),
                user: u.into(),
                password: p.into(),
            });
        }
        None
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

fn quick(
    argv: Vec<String>,
    dir: &std::path::Path,
    table: &Arc<ProcessTable>,
    timeout: Duration,
    env: &[(String, String)],
) -> process::Finished {
    let cmd = Command {
        argv,
        dir: Some(dir.to_path_buf()),
        env: env.to_vec(),
        stdin: None,
        timeout: Some(timeout),
    };
    process::run_captured(&cmd, table)
}

/// Check that every engine the plan uses answers. Exit 3 otherwise, before any step.
pub fn preflight(plan: &Plan, table: &Arc<ProcessTable>) -> Result<(), Error> {
    for t in plan.engine_targets() {
        let mut a = t.base();
        a.extend(["version", "--format", "{{.Server.Version}}"].map(String::from));
        let f = quick(
            a,
            &plan.dir,
            table,
            Duration::from_secs(20),
            &t.engine().env(),
        );
        if !f.exit.success() || f.stdout.first().is_none_or(|v| v.trim().is_empty()) {
            let which = match &t.builder {
                None => format!("the local {} engine", t.kind.program()),
                Some(Builder::Host(h)) => format!("the builder {h}"),
                Some(Builder::Context(c)) => format!("the docker context {c}"),
            };
            let detail = f
                .stderr
                .iter()
                .chain(f.stdout.iter())
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_else(|| f.exit.describe());
            let how = match (t.kind, &t.builder) {
                (EngineKind::Docker, None) => "start one: `sudo dockerd --bridge=none --iptables=false &` (or `systemctl start docker`), or set DOCKER_HOST; `cargo xtask images` sets one up on Debian",
                (EngineKind::Podman, None) => "install podman (`apt-get install podman`), or use --engine docker",
                _ => "check that the builder is up and reachable (`docker --host … version`)",
            };
            return Err(Error::Environment(format!(
                "{which} does not answer: {detail}\n  help: {how}"
            )));
        }
    }
    Ok(())
}

/// `docker login --password-stdin` to each registry the credentials are for.
fn login(
    plan: &Plan,
    creds: &Credentials,
    table: &Arc<ProcessTable>,
    masker: &mask::Masker,
    env: &[(String, String)],
    reporter: &mut dyn Reporter,
) -> Result<(), Error> {
    let registries: Vec<String> = match &creds.registry {
        Some(r) => vec![r.clone()],
        None => plan.registries().to_vec(),
    };
    if registries.is_empty() {
        return Err(Error::Usage("--login: the plan pushes to no registry host (set [project] registry, or MULTIARCH_REGISTRY_LOGIN)".into()));
    }
    for r in registries {
        let cmd = Command {
            argv: argv::login(&EngineTarget::local(plan.engine), &r, &creds.user),
            dir: Some(plan.dir.clone()),
            env: env.to_vec(),
            stdin: Some(creds.password.clone().into_bytes()),
            timeout: Some(Duration::from_secs(60)),
        };
        let f = process::run_captured(&cmd, table);
        if !f.exit.success() {
            let detail = masker.mask(&f.stderr.join(" "));
            return Err(Error::Environment(format!(
                "login to {r} as {} failed: {}",
                creds.user,
                detail.trim()
            )));
        }
        note(
            reporter,
            masker,
            "login",
            format!("logged in to {r} as {}", creds.user),
        );
    }
    Ok(())
}

/// Needs outside the selection must already exist: per-arch images and lists in the
/// registry, built images locally. A missing one is an error (exit 1) naming it.
fn check_external(
    plan: &Plan,
    spec_dir: &std::path::Path,
    table: &Arc<ProcessTable>,
    env: &[(String, String)],
) -> Result<(), Error> {
    let mut checked: BTreeSet<&StepId> = BTreeSet::new();
    let mut missing = Vec::new();
    for s in plan.steps() {
        for need in s.external_needs() {
            if need.id == StepId::SetupQemu || !checked.insert(&need.id) {
                continue;
            }
            let kind = need.id.kind();
            // A pushed per-arch image was tested before its push: when the push is
            // checked in the registry, the test need is satisfied with it.
            if matches!(kind, StepKind::Build | StepKind::Test)
                && need
                    .id
                    .with_kind(StepKind::Push)
                    .is_some_and(|push| s.external_needs().iter().any(|n| n.id == push))
            {
                continue;
            }
            let Some(reference) = need.reference.as_deref().map(str::to_string) else {
                continue;
            };
            let engine = EngineTarget::local(plan.engine);
            let insecure = reference::parse(&reference)
                .ok()
                .and_then(|r| r.domain)
                .is_some_and(|d| {
                    reference::is_loopback_host(&d) || plan.insecure_registries.contains(&d)
                });
            let mut ask = |a| quick(a, spec_dir, table, Duration::from_secs(60), env);
            let found = match kind {
                StepKind::Build | StepKind::Test => {
                    let mut a = engine.base();
                    a.extend(
                        ["image", "inspect", "--format", "{{.Id}}", &reference].map(String::from),
                    );
                    ask(a).exit.success()
                }
                StepKind::ManifestCreate | StepKind::ManifestPush => {
                    ask(argv::manifest_inspect(&engine, &reference, insecure))
                        .exit
                        .success()
                }
                _ => {
                    crate::engine::registry_digest(engine.engine(), &reference, insecure, &mut ask)
                        .is_ok()
                }
            };
            if !found {
                let place = if matches!(kind, StepKind::Build | StepKind::Test) {
                    "locally"
                } else {
                    "in the registry"
                };
                missing.push(format!("{} ({reference} is not {place})", need.id));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "needs outside this selection are missing:\n  {}\n  help: run the earlier stages first (e.g. --stage build --stage push on each arch), or widen --image/--arch/--stage",
            missing.join("\n  ")
        )))
    }
}

/// Set up emulation before anything is scheduled: a missing handler after setup
/// is an environment problem (exit 3), said before any build runs.
/// A message of multiarch's own before the steps run (login, emulation setup,
/// the engine's preparation), through the reporters and the masking layer.
fn note(reporter: &mut dyn Reporter, masker: &mask::Masker, id: &str, message: String) {
    reporter.event(&masker.event(crate::report::RunEvent::Note {
        id: id.to_string(),
        message,
    }));
}

fn setup_qemu_first(
    plan: &Plan,
    runner: &EngineRunner,
    table: &Arc<ProcessTable>,
    masker: &mask::Masker,
    reporter: &mut dyn Reporter,
) -> Result<Option<(String, StepResult, Duration)>, Error> {
    let Some(step) = plan
        .steps()
        .iter()
        .find(|s| s.kind() == StepKind::SetupQemu)
    else {
        return Ok(None);
    };
    let Action::SetupQemu { handlers, setup } = &step.action else {
        return Ok(None);
    };
    let t0 = Instant::now();
    if engine_runner_missing(handlers).is_empty() {
        return Ok(Some((step.id.to_string(), StepResult::ok(), t0.elapsed())));
    }
    let id = step.id.to_string();
    note(
        reporter,
        masker,
        &id,
        format!(
            "binfmt handlers missing ({}); running {}",
            engine_runner_missing(handlers).join(", "),
            crate::plan::render::argv_line(setup)
        ),
    );
    let cmd = Command {
        argv: setup.clone(),
        dir: Some(plan.dir.clone()),
        env: runner.env.clone(),
        stdin: None,
        timeout: step.timeout.or(Some(Duration::from_secs(300))),
    };
    let f = process::run_streaming(&cmd, table, &mut |l| {
        note(reporter, masker, &id, l.to_string())
    });
    let still = engine_runner_missing(handlers);
    if !still.is_empty() {
        return Err(Error::Environment(format!(
            "emulation for {} is missing{}\n  help: install qemu-user-static and binfmt-support and run `update-binfmts --enable` as root (mount binfmt_misc first if /proc/sys/fs/binfmt_misc is empty), or set [qemu] setup",
            still.join(", "),
            if f.exit.success() { " after running the setup".to_string() } else { format!(" and the setup failed ({})", f.exit.describe()) }
        )));
    }
    Ok(Some((step.id.to_string(), StepResult::ok(), t0.elapsed())))
}

fn engine_runner_missing(h: &[String]) -> Vec<String> {
    crate::engine::runner::missing_handlers(h)
}

/// Run a plan with a reporter: preflight, login, emulation, external needs, then
/// the scheduler. The library's entry point for `cargo xtask images`.
pub fn run(
    plan: &Plan,
    opts: &RunOptions,
    env: &Environment,
    reporter: &mut dyn Reporter,
) -> Result<RunSummary, Error> {
    let table = ProcessTable::new();
    preflight(plan, &table)?;
    let creds = Credentials::from_env(env);
    let mut secrets = Vec::new();
    if let Some(c) = &creds {
        secrets.push(c.password.clone());
    }
    let masker = mask::Masker::new(&secrets);
    // The engine's preparation (podman: a registries.conf for plain-HTTP
    // registries) applies to login and the registry checks too.
    let mut runner = EngineRunner::for_plan(plan, env)?;
    for n in runner.notes() {
        note(reporter, &masker, "engine", n.clone());
    }
    match (&creds, opts.login) {
        (Some(c), _) if opts.login || c.registry.as_ref().is_none_or(|r| plan.registries().contains(r)) => login(plan, c, &table, &masker, &runner.env, reporter)?,
        (None, true) => {
            return Err(Error::Usage("--login needs credentials: set MULTIARCH_REGISTRY_USER and MULTIARCH_REGISTRY_PASSWORD (or CI_REGISTRY_USER / CI_REGISTRY_PASSWORD / CI_REGISTRY in GitLab)".into()))
        }
        _ => {}
    }
    runner.retries = opts.retries.or(plan.retries).unwrap_or(3);
    if opts.skip_existing {
        if !plan.immutable_refs {
            return Err(Error::Usage(
                "--skip-existing needs per-arch references that contain the commit ([tags] arch with {sha} or {short_sha}): otherwise an existing image may be of another commit".into(),
            ));
        }
        runner.skip_existing = true;
    }
    let mut done = Vec::new();
    if let Some(d) = setup_qemu_first(plan, &runner, &table, &masker, reporter)? {
        done.push(d);
    }
    check_external(plan, &plan.dir, &table, &runner.env)?;
    let sopts = SchedulerOptions {
        jobs: opts.jobs.or(plan.jobs).unwrap_or_else(cpus),
        failure: opts.failure,
        handle_signals: opts.handle_signals,
        grace: Duration::from_secs(10),
        secrets,
        done,
    };
    Ok(scheduler::run(plan, &runner, &sopts, table, reporter))
}
