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
use std::sync::Mutex;

use super::executor::{StepExecutor, StepIo, StepResult};
use super::process::{self, Command, Exit, Finished, Output};
use super::qemu::{self, Binfmt};
use super::retry::{Retry, RetryPolicy};
use super::session::{plain_http_registries, unique_name, Session};
use super::SessionError;
use crate::engine::{self, Engine, EngineTarget};
use crate::environment::Environment;
use crate::events::StepStatus;
use crate::plan::{Action, Plan, Step};
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
    /// Lists read from the registry in this run: list → the engine's JSON of it.
    /// Filled by a manifest-create that found its list already published
    /// (`--skip-existing`) and by the first verify of a list; read by verify.
    lists: Mutex<HashMap<String, String>>,
    /// Lists the registry already serves with exactly the entries this run would
    /// publish (`--skip-existing`): their manifest-push has nothing to do.
    unchanged: Mutex<HashSet<String>>,
    /// This run's id, in the `multiarch.run` label of every container it starts.
    pub run_id: String,
    /// A container command of this run ended by a timeout, a cancellation or a
    /// signal: its container may be left, and the run's end looks for them.
    containers_left: std::sync::atomic::AtomicBool,
}

impl EngineRunner {
    /// A runner for docker with no run-wide preparation.
    pub fn new(dir: PathBuf) -> Self {
        Self::with_session(dir, Session::new(engine::engine(EngineKind::Docker).env()))
    }

    /// A runner for `plan`: its engine prepares the run (podman writes a
    /// registries.conf for the plan's plain-HTTP registries). What the preparation
    /// changed is in [`EngineRunner::notes`].
    pub fn for_plan(plan: &Plan, env: &Environment) -> Result<Self, SessionError> {
        let session = Session::prepare(plan.engine, env, &plain_http_registries(plan))?;
        let mut r = Self::with_session(plan.dir.clone(), session);
        r.insecure = plan.insecure_registries.clone();
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
            lists: Default::default(),
            unchanged: Default::default(),
            run_id: unique_name("multiarch"),
            containers_left: Default::default(),
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

    /// A read-only registry query, captured, under the retry policy.
    fn read(&self, argv: Vec<String>, step: &Step, io: &StepIo<'_>) -> Finished {
        let what = argv.get(1..3).map(|a| a.join(" ")).unwrap_or_default();
        self.retry
            .run(Retry::Read(&what), io, || {
                ok_or_err(self.captured(argv.clone(), step, io, false))
            })
            .unwrap_or_else(|f| f)
    }

    /// The digest of a per-arch reference in the registry, asked the engine's
    /// way, under the retry policy (each attempt from the start: a podman lookup
    /// is several commands).
    fn lookup(
        &self,
        kind: EngineKind,
        reference: &str,
        insecure: bool,
        step: &Step,
        io: &StepIo<'_>,
    ) -> Result<String, Finished> {
        let what = format!("reading {reference}");
        self.retry.run(Retry::Read(&what), io, || {
            registry_digest(engine::engine(kind), reference, insecure, &mut |a| {
                self.captured(a, step, io, false)
            })
        })
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
        }
    }

    /// Whether `reference`'s registry is reached over plain HTTP: loopback, or
    /// one of `[project] insecure_registries`.
    fn plain_http(&self, reference: &str) -> bool {
        crate::registry::plain_http(reference, &self.insecure)
    }

    /// With `--skip-existing`: the digest of `reference` when the registry has it.
    fn existing(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        kind: EngineKind,
        reference: &str,
    ) -> Option<String> {
        if !self.skip_existing {
            return None;
        }
        if let Some(d) = self.existing.lock().ok()?.get(reference) {
            return Some(d.clone());
        }
        let insecure = self.plain_http(reference);
        let d = registry_digest(engine::engine(kind), reference, insecure, &mut |a| {
            self.captured(a, step, io, false)
        })
        .ok()?;
        if let Ok(mut m) = self.existing.lock() {
            m.insert(reference.to_string(), d.clone());
        }
        Some(d)
    }
}

impl StepExecutor for EngineRunner {
    fn execute(&self, step: &Step, io: &StepIo<'_>) -> StepResult {
        let per_arch = match &step.action {
            Action::Build {
                reference, engine, ..
            }
            | Action::Test {
                reference, engine, ..
            }
            | Action::Push {
                reference, engine, ..
            } => Some((reference.as_str(), engine.kind)),
            _ => None,
        };
        if let Some((r, kind)) = per_arch {
            if let Some(d) = self.existing(step, io, kind, r) {
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
                engine,
                list,
                entries,
                insecure,
            } => self.manifest_create(step, io, engine, list, entries, *insecure),
            Action::ManifestPush {
                engine,
                list,
                insecure,
            } => self.manifest_push(step, io, engine, list, *insecure),
            Action::Verify {
                engine,
                list,
                reference,
                push_step,
                platform,
                check,
                insecure,
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
                    insecure: *insecure,
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

/// Run the engine's [`Lookup`](crate::engine::Lookup) of `reference` with
/// `run`: the digest, or the failed command's output.
pub fn registry_digest(
    engine: &dyn Engine,
    reference: &str,
    insecure: bool,
    run: &mut dyn FnMut(Vec<String>) -> Finished,
) -> Result<String, Finished> {
    let lookup = engine.lookup(reference, insecure, &unique_name("lookup"));
    let mut result = None;
    for (i, argv) in lookup.commands.into_iter().enumerate() {
        let f = run(argv);
        if !f.exit.success() {
            result = Some(Err(f));
            break;
        }
        if i == lookup.answer {
            let digest = engine.lookup_digest(&f.stdout.join("\n"));
            result = Some(digest.ok_or(f));
            break;
        }
    }
    for argv in lookup.cleanup {
        let _ = run(argv);
    }
    result.unwrap_or_else(|| {
        Err(Finished {
            exit: Exit::Code(-1),
            stdout: Vec::new(),
            stderr: vec![format!("no answer about {reference}")],
            duration: std::time::Duration::ZERO,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_runs_until_the_answer_then_cleans_up() {
        let mut seen = Vec::new();
        let answer = r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:dd"}]}"#;
        let d = registry_digest(&engine::Podman, "reg/app/amd64:1", true, &mut |a| {
            seen.push(a[1..3].join(" "));
            Finished {
                exit: Exit::Code(0),
                stdout: vec![answer.to_string()],
                stderr: Vec::new(),
                duration: std::time::Duration::ZERO,
            }
        });
        assert_eq!(d.unwrap(), "sha256:dd");
        assert_eq!(seen, ["manifest create", "manifest inspect", "manifest rm"]);
        let mut probes = Vec::new();
        for _ in 0..2 {
            let _ = registry_digest(&engine::Podman, "x:1", true, &mut |a| {
                probes.push(a[3].clone());
                Finished {
                    exit: Exit::Code(1),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    duration: std::time::Duration::ZERO,
                }
            });
        }
        assert_eq!(probes.len(), 4, "create failed, then the cleanup");
        assert_ne!(probes[0], probes[2], "probes never share a name");
    }
}
