//! Runs the steps of a plan on a real engine, whichever it is: each step's
//! commands (the argv comes from the step's [`Engine`](crate::engine::Engine)),
//! the platform check after a build ([`build`]), digests ([`push`]), lists
//! ([`list`]), the verify command's expected output ([`verify`]), retries of
//! transient failures ([`RetryPolicy`]).

mod build;
mod list;
mod push;
mod verify;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::executor::{StepExecutor, StepIo, StepResult};
use super::process::{self, Command, Exit, Finished, Output};
use super::qemu::{self, Binfmt};
use super::retry::{Retry, RetryPolicy};
use super::session::{plain_http_registries, unique_name, Session};
use super::SessionError;
use crate::engine::{self, EngineTarget};
use crate::environment::Environment;
use crate::events::StepStatus;
use crate::plan::{Action, Plan, Step};
use crate::registry::client::{CredentialHelper, Registry};
use crate::spec::reference;
use crate::spec::EngineKind;

/// How the runner runs commands.
#[derive(Debug)]
pub struct EngineRunner {
    /// Commands run here (the spec's directory; contexts are relative to it).
    pub dir: PathBuf,
    /// Extra environment for every command (`DOCKER_BUILDKIT=0`; podman's
    /// `CONTAINERS_REGISTRIES_CONF`).
    pub env: Vec<(String, String)>,
    /// The engine's preparation for this run; its files live as long as the runner.
    session: Session,
    /// Retries of registry commands.
    pub retry: RetryPolicy,
    /// The values of the plan's build secrets, written to files per build.
    pub secrets: super::secrets::SecretValues,
    /// Registries to reach over plain HTTP besides loopback.
    pub insecure: Vec<String>,
    /// `--skip-existing`: an arch whose immutable per-arch reference is already in
    /// the registry is not built, tested or pushed again.
    pub skip_existing: bool,
    /// Per-arch references found in the registry: reference → digest.
    existing: Mutex<HashMap<String, String>>,
    /// `--force-tags`: floating tags move even to an older commit's list.
    pub force_tags: bool,
    /// The registry's API: lists, verify's reads, lookups.
    registry: Arc<Registry>,
    /// The indexes this run assembled, by list.
    indexes: Mutex<HashMap<String, list::Built>>,
    /// What this run did with each list tag, by image, in the order pushed.
    published: Mutex<HashMap<String, Vec<(String, list::Published)>>>,
    /// Lists the registry already serves as exactly the index this run would
    /// publish (`--skip-existing`): their manifest-push has nothing to do.
    unchanged: Mutex<HashSet<String>>,
    /// This run's id, in the `multiarch.run` label of every container it starts.
    pub run_id: String,
    /// A container command of this run ended by a timeout, a cancellation or a
    /// signal: its container may be left, and the run's end looks for them.
    containers_left: std::sync::atomic::AtomicBool,
    /// `[publish] atomic`: indexes are PUT by digest when assembled, and the
    /// tags moved one at a time under this lock, each remembered with what it
    /// named before, so a failed move puts every moved tag back.
    pub atomic: bool,
    tag_moves: Mutex<list::TagMoves>,
    /// Entries copied into a list's repository (`REPO@DIGEST`), one copy at a time.
    copied: Mutex<HashSet<String>>,
}

impl EngineRunner {
    /// A runner for docker with no run-wide preparation.
    pub fn new(dir: PathBuf) -> Self {
        Self::with_session(dir, Session::new(engine::engine(EngineKind::Docker).env()))
    }

    /// The registry client's secrets (for the run's mask).
    pub fn registry_secrets(&self) -> crate::registry::auth::SecretSet {
        self.registry.secrets()
    }

    /// A runner for `plan`: its engine prepares the run (podman writes a
    /// registries.conf for the plan's plain-HTTP registries). What the preparation
    /// changed is in [`EngineRunner::notes`].
    /// Credential helpers run as the run's processes (`table`): a signal ends
    /// them with the rest.
    pub fn for_plan(
        plan: &Plan,
        env: &Environment,
        table: &Arc<process::ProcessTable>,
    ) -> Result<Self, SessionError> {
        let session = Session::prepare(plan.engine, env, &plain_http_registries(plan))?;
        let mut r = Self::with_session(plan.dir.clone(), session);
        r.insecure = plan.insecure_registries.clone();
        r.registry = Arc::new(registry_for(env, &r.insecure, &plan.dir, table));
        r.atomic = plan.atomic;
        Ok(r)
    }

    fn with_session(dir: PathBuf, session: Session) -> Self {
        EngineRunner {
            dir,
            env: session.env.clone(),
            session,
            retry: RetryPolicy::default(),
            secrets: Default::default(),
            skip_existing: false,
            insecure: Vec::new(),
            existing: Default::default(),
            force_tags: false,
            registry: Arc::new(Registry::new(
                &Environment::empty(),
                &[],
                crate::registry::http::DEFAULT_TIMEOUT,
            )),
            indexes: Default::default(),
            published: Default::default(),
            unchanged: Default::default(),
            run_id: unique_name("multiarch"),
            containers_left: Default::default(),
            atomic: false,
            tag_moves: Default::default(),
            copied: Default::default(),
        }
    }

    /// Remove the containers of this run with every one of `labels` (besides
    /// the run's own), on `t`'s engine: what a timed-out or cancelled `docker
    /// run` leaves (only the CLI was ended). Its own process table: the run's
    /// may be cancelled by now. Returns how many were removed.
    pub fn remove_containers(&self, t: &EngineTarget, labels: &[String]) -> usize {
        let table = process::ProcessTable::new();
        let run = |argv| {
            let cmd = Command {
                argv,
                dir: Some(self.dir.clone()),
                env: self.env.clone(),
                stdin: None,
                timeout: Some(std::time::Duration::from_secs(60)),
            };
            process::spawn(&cmd, &table, Output::Captured)
        };
        let mut all = vec![format!("{}={}", engine::argv::RUN_LABEL, self.run_id)];
        all.extend(labels.iter().cloned());
        let e = t.engine();
        let found = run(e.labelled_containers(t, &all));
        let ids: Vec<String> = found
            .stdout
            .iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if ids.is_empty() {
            return 0;
        }
        run(e.remove_containers(t, &ids));
        ids.len()
    }

    /// A container command ended as `exit`: when it did not end by itself, its
    /// step's container is removed now (and the run's end looks again).
    pub fn after_container(&self, t: &EngineTarget, step: &str, exit: &Exit) {
        if matches!(exit, Exit::TimedOut(_) | Exit::Cancelled | Exit::Signal(_)) {
            self.containers_left
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.remove_containers(t, &[format!("{}={step}", engine::argv::STEP_LABEL)]);
        }
    }

    /// At the run's end (every path out): when a container command of the run
    /// did not end by itself, or the run was interrupted, every container with
    /// the run's label goes, on every engine of the plan.
    pub fn remove_run_containers(&self, plan: &Plan, interrupted: bool) {
        if interrupted
            || self
                .containers_left
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            for t in plan.engine_targets() {
                self.remove_containers(&t, &[]);
            }
        }
    }

    /// Logins of this run go to a private copy of the user's engine config
    /// (see [`Session::private_logins`]), for every later command too.
    pub fn private_logins(
        &mut self,
        kind: EngineKind,
        env: &Environment,
        registries: &[String],
    ) -> Result<(), SessionError> {
        let var = self.session.private_logins(kind, env, registries)?;
        self.env.retain(|(k, _)| *k != var.0);
        self.env.push(var);
        Ok(())
    }

    /// What the engine's preparation changed, for the person running multiarch.
    pub fn notes(&self) -> &[String] {
        &self.session.notes
    }

    fn command(&self, argv: Vec<String>, step: &Step) -> Command {
        Command {
            argv: engine::argv::with_ids(&argv, &self.run_id, &step.id.to_string()),
            dir: Some(self.dir.clone()),
            env: self.env.clone(),
            stdin: None,
            timeout: step.timeout,
        }
    }

    /// Run, streaming every line to the step's output.
    fn stream(&self, argv: Vec<String>, step: &Step, io: &StepIo<'_>) -> Finished {
        let cmd = self.command(argv, step);
        process::spawn(&cmd, &io.table, Output::Merged(&mut |l| io.line(l)))
    }

    /// Run, capturing stdout apart; both are shown afterwards when `show`.
    fn captured(&self, argv: Vec<String>, step: &Step, io: &StepIo<'_>, show: bool) -> Finished {
        let cmd = self.command(argv, step);
        let f = process::spawn(&cmd, &io.table, Output::Captured);
        if show {
            for l in f.lines() {
                io.line(l);
            }
        }
        f
    }

    /// A registry write, streamed, under the retry policy.
    fn write(&self, argv: Vec<String>, step: &Step, io: &StepIo<'_>) -> Finished {
        self.retry
            .run(Retry::Write, io, || {
                ok_or_err(self.stream(argv.clone(), step, io))
            })
            .unwrap_or_else(|f| f)
    }

    fn fail(&self, what: &str, f: &Finished) -> StepResult {
        let status = match &f.exit {
            Exit::TimedOut(_) => StepStatus::TimedOut(format!("{what}: {}", f.exit.describe())),
            Exit::Cancelled => StepStatus::Cancelled,
            e => StepStatus::Failed(format!("{what}: {}", e.describe())),
        };
        let mut tail: Vec<String> = f.lines().cloned().collect();
        if tail.len() > 15 {
            tail.drain(..tail.len() - 15);
        }
        StepResult {
            status,
            digest: None,
            tail,
            detail: None,
            platforms: Box::default(),
        }
    }

    /// With `--skip-existing`: the digest of `reference` when the registry has it.
    fn existing(&self, io: &StepIo<'_>, reference: &str) -> Option<String> {
        if !self.skip_existing {
            return None;
        }
        if let Some(d) = self.existing.lock().ok()?.get(reference) {
            return Some(d.clone());
        }
        let d = self.registry_digest(reference, Some(io)).ok()??;
        if let Ok(mut m) = self.existing.lock() {
            m.insert(reference.to_string(), d.clone());
        }
        Some(d)
    }
}

impl StepExecutor for EngineRunner {
    fn execute(&self, step: &Step, io: &StepIo<'_>) -> StepResult {
        let per_arch = match &step.action {
            Action::Build { reference, .. }
            | Action::Test { reference, .. }
            | Action::Push { reference, .. } => Some(&**reference),
            _ => None,
        };
        if let Some(r) = per_arch {
            if let Some(d) = self.existing(io, r) {
                let digest = matches!(step.action, Action::Push { .. }).then_some(d);
                return StepResult::cached(format!("{r} is already in the registry"), digest);
            }
        }
        match &step.action {
            Action::SetupQemu { handlers, setup } => {
                let ran = qemu::ensure(
                    &Binfmt::default(),
                    handlers,
                    setup,
                    |argv| self.stream(argv, step, io),
                    |m| io.note(&m),
                );
                match ran {
                    Ok(()) => StepResult::ok(),
                    Err(e) => StepResult::failed(e.to_string(), Vec::new()),
                }
            }
            Action::Build {
                engine,
                reference,
                platform,
                args,
            } => self.build(step, io, engine, args, reference, platform),
            Action::Test {
                engine,
                reference,
                platform,
                check,
            } => self.check(
                step,
                io,
                verify::Target {
                    engine,
                    image: reference,
                    platform,
                    pull: crate::engine::Pull::Never,
                },
                check,
                "test",
            ),
            Action::Push {
                engine, reference, ..
            } => self.push(step, io, engine, reference),
            Action::ManifestCreate {
                list,
                entries,
                annotations,
                format,
                ..
            } => self.manifest_create(step, io, list, entries, annotations, *format),
            Action::ManifestPush { list, floating, .. } => {
                self.manifest_push(io, step.image().unwrap_or(""), list, *floating)
            }
            Action::Verify {
                engine,
                list,
                reference,
                push_step,
                platform,
                check,
                published_elsewhere,
                ..
            } => self.verify(
                step,
                io,
                verify::Verify {
                    engine,
                    list: list.as_deref(),
                    reference,
                    push_step,
                    platform,
                    published_elsewhere: published_elsewhere.as_deref(),
                },
                check,
            ),
        }
    }
}

fn ok_or_err(f: Finished) -> Result<Finished, Finished> {
    if f.exit.success() {
        Ok(f)
    } else {
        Err(f)
    }
}

fn repo_of(reference: &str) -> String {
    reference::parse(reference)
        .map(|r| r.repository())
        .unwrap_or_else(|_| reference.to_string())
}

/// The run's registry client: credentials from `env` (the environment's, else
/// docker's config, whose credential helpers run in `dir` as processes of the
/// run's `table`).
pub fn registry_for(
    env: &Environment,
    insecure: &[String],
    dir: &std::path::Path,
    table: &Arc<process::ProcessTable>,
) -> Registry {
    Registry::new(env, insecure, crate::registry::http::DEFAULT_TIMEOUT).with_helper(Arc::new(
        HelperProcess {
            dir: dir.to_path_buf(),
            env: env.clone(),
            table: table.clone(),
            timeout: HELPER_TIMEOUT,
        },
    ))
}

/// How long a credential helper may take to answer.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `docker-credential-NAME get`, the server on stdin, JSON on stdout: through
/// the process path (argv, no shell, its own process group in the run's
/// table, so Ctrl-C and `--fail-fast` end it), with a deadline.
struct HelperProcess {
    dir: PathBuf,
    env: Environment,
    table: Arc<process::ProcessTable>,
    timeout: std::time::Duration,
}

impl CredentialHelper for HelperProcess {
    fn get(&self, helper: &str, server: &str) -> Result<String, String> {
        let mut env = Vec::new();
        for k in ["PATH", "HOME", "DOCKER_CONFIG"] {
            if let Some(v) = self.env.get(k) {
                env.push((k.to_string(), v.to_string()));
            }
        }
        let cmd = Command {
            argv: vec![format!("docker-credential-{helper}"), "get".to_string()],
            dir: Some(self.dir.clone()),
            env,
            stdin: Some(server.as_bytes().to_vec()),
            timeout: Some(self.timeout),
        };
        let f = process::spawn(&cmd, &self.table, Output::Captured);
        if f.exit.success() {
            return Ok(f.stdout.join("\n"));
        }
        let said = f.lines().cloned().collect::<Vec<_>>().join(" ");
        Err(match (&f.exit, said.trim()) {
            (Exit::TimedOut(d), _) => format!(
                "no answer within {} (a helper that waits for input or a prompt?)",
                crate::events::format::duration(*d)
            ),
            (e, "") => e.describe(),
            (e, said) => format!("{}: {said}", e.describe()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    /// A `docker-credential-hang` that marks it started, then sleeps.
    fn hanging_helper(timeout: Duration) -> (tempfile::TempDir, HelperProcess) {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("docker-credential-hang");
        std::fs::write(
            &script,
            "#!/bin/sh\ntouch \"$(dirname \"$0\")/started\"\nsleep 600\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:/usr/bin:/bin", d.path().display());
        let h = HelperProcess {
            dir: d.path().to_path_buf(),
            env: Environment::from_pairs([("PATH", path.as_str())]),
            table: process::ProcessTable::new(),
            timeout,
        };
        (d, h)
    }

    #[test]
    fn a_hanging_credential_helper_times_out_saying_so() {
        let (_d, h) = hanging_helper(Duration::from_millis(300));
        let t0 = Instant::now();
        let e = h.get("hang", "127.0.0.1:5000").unwrap_err();
        assert!(e.starts_with("no answer within"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert_eq!(h.table.running(), 0);
    }

    #[test]
    fn a_credential_helper_is_ended_with_the_runs_processes() {
        let (d, h) = hanging_helper(Duration::from_secs(60));
        let table = h.table.clone();
        let started = d.path().join("started");
        let cancel = std::thread::spawn(move || {
            while !started.exists() {
                std::thread::park_timeout(Duration::from_millis(20));
            }
            table.cancel(libc::SIGTERM);
        });
        let t0 = Instant::now();
        let e = h.get("hang", "127.0.0.1:5000").unwrap_err();
        cancel.join().unwrap();
        assert_eq!(e, "cancelled");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert_eq!(h.table.running(), 0);
    }
}
