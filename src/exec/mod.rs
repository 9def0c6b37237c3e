//! Running a plan: preflight checks, emulation, the scheduler, the engine runner,
//! and the reporters' events.

pub mod dispatcher;
pub mod error;
pub mod executor;
pub mod pool;
pub mod preflight;
pub mod process;
pub mod qemu;
pub mod retry;
pub mod runner;
pub mod secrets;
pub mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::environment::Environment;
use crate::events::{Masker, Reporter, RunEvent, RunSummary};
use crate::plan::{Action, Plan, StepKind};
pub use dispatcher::FailureMode;
pub use error::{RunError, SessionError};
pub use executor::{StepExecutor, StepIo, StepResult};
use pool::{Interrupts, PoolOptions};
use process::{Command, Output, ProcessTable};
use qemu::Binfmt;
pub use runner::EngineRunner;

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
    /// `--force-tags`: floating tags move even to an older commit's list.
    pub force_tags: bool,
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
            force_tags: false,
        }
    }
}

pub use crate::registry::auth::Credentials;

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A message of multiarch's own before the steps run (login, emulation setup,
/// the engine's preparation), through the reporters and the masking layer.
fn note(reporter: &mut dyn Reporter, masker: &Masker, id: &str, message: String) {
    reporter.event(&masker.event(RunEvent::Note {
        id: id.to_string(),
        message,
    }));
}

/// Set up emulation before anything is scheduled: a missing handler after setup
/// is an environment problem (exit 3), said before any build runs.
fn setup_qemu_first(
    plan: &Plan,
    runner: &EngineRunner,
    table: &Arc<ProcessTable>,
    masker: &Masker,
    reporter: &mut dyn Reporter,
) -> Result<Option<(String, StepResult, Duration)>, RunError> {
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
    // The note that the setup runs comes first, then the setup's own lines as
    // they come: both closures speak through the one reporter.
    let reporter = std::cell::RefCell::new(reporter);
    let id = step.id.to_string();
    let say = |m: String| note(*reporter.borrow_mut(), masker, &id, m);
    let run = |argv: Vec<String>| {
        let cmd = Command {
            argv: crate::engine::argv::with_ids(&argv, &runner.run_id, &id),
            dir: Some(plan.dir.clone()),
            env: runner.env.clone(),
            stdin: None,
            timeout: step.timeout.or(Some(Duration::from_secs(300))),
        };
        let mut line = |l: &str| say(l.to_string());
        let f = process::spawn(&cmd, table, Output::Merged(&mut line));
        runner.after_container(
            &crate::engine::EngineTarget::local(plan.engine),
            &id,
            &f.exit,
        );
        f
    };
    qemu::ensure(&Binfmt::default(), handlers, setup, run, say)
        .map_err(RunError::EmulationMissing)?;
    Ok(Some((id, StepResult::ok(), t0.elapsed())))
}

/// Run a plan with a reporter: preflight, login, emulation, external needs, then
/// the scheduler. The library's entry point for `cargo xtask images`.
pub fn run(
    plan: &Plan,
    opts: &RunOptions,
    env: &Environment,
    reporter: &mut dyn Reporter,
) -> Result<RunSummary, RunError> {
    let table = ProcessTable::new();
    // From the first command on: a signal during preflight ends it as
    // interrupted (exit 130), with its children ended, not by the default action.
    let interrupts = if opts.handle_signals {
        Interrupts::listen(table.clone()).map(Arc::new)
    } else {
        None
    };
    // The engine's preparation (podman: a registries.conf for plain-HTTP
    // registries) applies to login and the registry checks too; it goes (with
    // the run's private login config) when the runner is dropped, on every
    // path out.
    let mut runner = EngineRunner::for_plan(plan, env, &table)?;
    let result = run_listening(
        plan,
        opts,
        env,
        reporter,
        table,
        interrupts.clone(),
        &mut runner,
    );
    let interrupted = match &result {
        Ok(s) => s.interrupted,
        Err(e) => matches!(e, RunError::Interrupted { .. }),
    };
    runner.remove_run_containers(plan, interrupted);
    if let Some(i) = interrupts {
        i.close();
    }
    result
}

/// Preflight ended, or failed: as interrupted when a signal came meanwhile.
fn unless_interrupted<T>(
    interrupts: &Option<Arc<Interrupts>>,
    during: &'static str,
    r: Result<T, RunError>,
) -> Result<T, RunError> {
    match interrupts.as_ref().and_then(|i| i.received()) {
        Some(signal) => Err(RunError::Interrupted { during, signal }),
        None => r,
    }
}

fn run_listening(
    plan: &Plan,
    opts: &RunOptions,
    env: &Environment,
    reporter: &mut dyn Reporter,
    table: Arc<ProcessTable>,
    interrupts: Option<Arc<Interrupts>>,
    runner: &mut EngineRunner,
) -> Result<RunSummary, RunError> {
    // The builder note may ask another docker CLI what it is (one CLI start):
    // that is done while the engines are checked.
    let builder_note = (plan.builder.note.is_some()
        && plan.engine == crate::spec::EngineKind::Docker)
        .then(|| {
            let builder = plan.builder.clone();
            std::thread::spawn(move || builder.note_text())
        });
    unless_interrupted(
        &interrupts,
        "the engine checks",
        preflight::engines_answer(plan, &table),
    )?;
    let creds = Credentials::from_env(env);
    let mut secrets = Vec::new();
    if let Some(c) = &creds {
        secrets.push(c.password.clone());
    }
    let build_secrets = secrets::SecretValues::read(plan, env)?;
    secrets.extend(build_secrets.to_mask());
    // One mask for the whole run, shared with the registry client: what it
    // finds (docker config passwords, a helper's secret, bearer tokens) is
    // masked everywhere from the moment it is found.
    let found = runner.registry_secrets();
    for s in &secrets {
        found.add(s);
    }
    let masker = Masker::sharing(found);
    // A probe cannot panic but through a bug: then the note is not said.
    if let Some(Ok(Some(text))) = builder_note.map(|n| n.join()) {
        note(reporter, &masker, "builder", text);
    }
    runner.secrets = build_secrets;
    // The docker CLI the caller's environment names (process::spawn reads it).
    if let Some(d) = env.non_empty("MULTIARCH_DOCKER") {
        runner.env.push(("MULTIARCH_DOCKER".into(), d.to_string()));
    }
    for n in runner.notes() {
        note(reporter, &masker, "engine", n.clone());
    }
    match (&creds, opts.login) {
        (Some(c), _)
            if opts.login
                || c.registry
                    .as_ref()
                    .is_none_or(|r| plan.registries().contains(r)) =>
        {
            let registries = preflight::login_registries(plan, c)?;
            // The login goes to a private copy of the user's config, removed
            // with the runner: the user's config.json is never written.
            runner.private_logins(plan.engine, env, &registries)?;
            let r = preflight::login(c, &registries, &runner.env, &table, &masker, plan, reporter);
            unless_interrupted(&interrupts, "login", r)?
        }
        (None, true) => return Err(RunError::LoginWithoutCredentials),
        _ => {}
    }
    runner.retry.retries = opts.retries.or(plan.retries).unwrap_or(3);
    // For tests only (not a user setting): the first backoff in milliseconds, so
    // retry tests against a fake engine take no seconds.
    if let Some(ms) = env
        .get("MULTIARCH_RETRY_BACKOFF_MS")
        .and_then(|v| v.parse().ok())
    {
        runner.retry.backoff = Duration::from_millis(ms);
    }
    if opts.skip_existing {
        if !plan.immutable_refs {
            return Err(RunError::SkipExistingNeedsImmutableRefs);
        }
        runner.skip_existing = true;
    }
    runner.force_tags = opts.force_tags;
    let mut done = Vec::new();
    let qemu = setup_qemu_first(plan, runner, &table, &masker, reporter);
    if let Some(d) = unless_interrupted(&interrupts, "the emulation setup", qemu)? {
        done.push(d);
    }
    let external = preflight::check_external(plan, &table, runner);
    unless_interrupted(
        &interrupts,
        "the checks of needs outside the selection",
        external,
    )?;
    let popts = PoolOptions {
        jobs: opts.jobs.or(plan.jobs).unwrap_or_else(cpus),
        failure: opts.failure,
        handle_signals: opts.handle_signals,
        interrupts,
        grace: Duration::from_secs(10),
        masker,
        done,
    };
    Ok(pool::drive(plan, runner, &popts, table, reporter))
}
