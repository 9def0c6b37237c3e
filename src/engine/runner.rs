//! Runs the steps of a plan on a real engine, whichever it is: each step's
//! commands (the argv comes from the step's [`Engine`](super::Engine)), the
//! platform check after a build, the verify command's expected output, digests,
//! retries of transient failures.

use std::path::PathBuf;
use std::time::Duration;

use super::argv::{self, EngineTarget};
pub use super::find_digest;
use super::session::{plain_http_registries, Session};
use super::{registry_digest, ListItem};
use crate::environment::Environment;
use crate::error::Error;
use crate::exec::process::{self, Command, Exit, Finished};
use crate::exec::scheduler::{StepExecutor, StepIo, StepResult};
use crate::plan::{Action, Check, Plan, Step, StepId};
use crate::report::StepStatus;
use crate::spec::reference;
use crate::spec::{EngineKind, Platform};

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
    /// Retries of transient registry failures.
    pub retries: u32,
    /// First backoff delay (doubled each retry, with jitter).
    pub backoff: Duration,
    /// Registries to reach over plain HTTP besides loopback.
    pub insecure: Vec<String>,
    /// `--skip-existing`: an arch whose immutable per-arch reference is already in
    /// the registry is not built, tested or pushed again.
    pub skip_existing: bool,
    /// Per-arch references found in the registry: reference → digest.
    existing: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Lists read from the registry in this run: list → the engine's JSON of it.
    /// Filled by a manifest-create that found its list already published
    /// (`--skip-existing`) and by the first verify of a list; read by verify.
    lists: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Lists the registry already serves with exactly the entries this run would
    /// publish (`--skip-existing`): their manifest-push has nothing to do.
    unchanged: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl EngineRunner {
    /// A runner for docker with no run-wide preparation.
    pub fn new(dir: PathBuf) -> Self {
        Self::with_session(dir, Session::new(super::engine(EngineKind::Docker).env()))
    }

    /// A runner for `plan`: its engine prepares the run (podman writes a
    /// registries.conf for the plan's plain-HTTP registries). What the preparation
    /// changed is in [`EngineRunner::notes`].
    pub fn for_plan(plan: &Plan, env: &Environment) -> Result<Self, Error> {
        let session = super::engine(plan.engine).session(env, &plain_http_registries(plan))?;
        let mut r = Self::with_session(plan.dir.clone(), session);
        r.insecure = plan.insecure_registries.clone();
        Ok(r)
    }

    fn with_session(dir: PathBuf, session: Session) -> Self {
        EngineRunner {
            dir,
            env: session.env.clone(),
            session,
            retries: 3,
            backoff: Duration::from_secs(1),
            skip_existing: false,
            insecure: Vec::new(),
            existing: Default::default(),
            lists: Default::default(),
            unchanged: Default::default(),
        }
    }

    /// What the engine's preparation changed, for the person running multiarch.
    pub fn notes(&self) -> &[String] {
        &self.session.notes
    }

    fn command(&self, argv: Vec<String>, step: &Step) -> Command {
        Command {
            argv,
            dir: Some(self.dir.clone()),
            env: self.env.clone(),
            stdin: None,
            timeout: step.timeout,
        }
    }

    /// Run, streaming every line to the step's output.
    fn stream(&self, argv: Vec<String>, step: &Step, io: &StepIo<'_>) -> Finished {
        let cmd = self.command(argv, step);
        process::run_streaming(&cmd, &io.table, &mut |l| io.line(l))
    }

    /// Run, capturing stdout apart; both are shown afterwards.
    fn captured(&self, argv: Vec<String>, step: &Step, io: &StepIo<'_>, show: bool) -> Finished {
        let cmd = self.command(argv, step);
        let f = process::run_captured(&cmd, &io.table);
        if show {
            for l in f.stderr.iter().chain(f.stdout.iter()) {
                io.line(l);
            }
        }
        f
    }

    /// Run a read-only registry query, retrying a failure a few times: a list
    /// just pushed can be briefly unreadable while other lists of the same
    /// repository are written. An answer that is final (not found, denied) is
    /// not retried.
    fn captured_retrying(&self, argv: Vec<String>, step: &Step, io: &StepIo<'_>) -> Finished {
        let what = argv.get(1..3).map(|a| a.join(" ")).unwrap_or_default();
        self.retrying(&what, io, || {
            let f = self.captured(argv.clone(), step, io, false);
            if f.exit.success() {
                Ok(f)
            } else {
                Err(f)
            }
        })
        .unwrap_or_else(|f| f)
    }

    /// The digest of a per-arch reference in the registry, asked the engine's way,
    /// retried like [`Self::captured_retrying`] (each attempt from the start: a
    /// podman lookup is several commands).
    fn lookup_retrying(
        &self,
        engine: &EngineTarget,
        reference: &str,
        insecure: bool,
        step: &Step,
        io: &StepIo<'_>,
    ) -> Result<String, Finished> {
        self.retrying(&format!("reading {reference}"), io, || {
            registry_digest(engine.engine(), reference, insecure, &mut |a| {
                self.captured(a, step, io, false)
            })
        })
    }

    fn retrying<T>(
        &self,
        what: &str,
        io: &StepIo<'_>,
        mut attempt_once: impl FnMut() -> Result<T, Finished>,
    ) -> Result<T, Finished> {
        let mut attempt = 0u32;
        loop {
            let f = match attempt_once() {
                Ok(t) => return Ok(t),
                Err(f) => f,
            };
            let text = f
                .stderr
                .iter()
                .chain(f.stdout.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join("\n");
            if !matches!(f.exit, Exit::Code(_))
                || attempt >= self.retries
                || is_permanent(&text)
                || io.cancelled()
            {
                return Err(f);
            }
            attempt += 1;
            let why = f
                .stderr
                .iter()
                .chain(f.stdout.iter())
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_else(|| f.exit.describe());
            let delay = backoff(self.backoff / 2, attempt);
            io.note(&format!(
                "{what} failed ({why}); retry {attempt} in {:.1}s",
                delay.as_secs_f64()
            ));
            if !wait_unless_cancelled(delay, io) {
                return Err(f);
            }
        }
    }

    /// Run a registry command, retrying transient failures with exponential backoff
    /// and jitter; never retrying auth, not-found or bad-request errors.
    fn with_retries(&self, argv: Vec<String>, step: &Step, io: &StepIo<'_>) -> Finished {
        let mut attempt = 0u32;
        loop {
            let f = self.stream(argv.clone(), step, io);
            if f.exit.success() || !matches!(f.exit, Exit::Code(_)) || io.cancelled() {
                return f;
            }
            let text = f.stdout.join("\n");
            if attempt >= self.retries || !is_transient(&text) {
                return f;
            }
            attempt += 1;
            let delay = backoff(self.backoff, attempt);
            io.note(&format!(
                "transient failure ({}); retry {attempt}/{} in {:.1}s",
                last_error_line(&f),
                self.retries,
                delay.as_secs_f64()
            ));
            if !wait_unless_cancelled(delay, io) {
                return f;
            }
        }
    }

    fn fail(&self, what: &str, f: &Finished) -> StepResult {
        let status = match &f.exit {
            Exit::TimedOut(_) => StepStatus::TimedOut(format!("{what}: {}", f.exit.describe())),
            Exit::Cancelled => StepStatus::Cancelled,
            e => StepStatus::Failed(format!("{what}: {}", e.describe())),
        };
        let mut tail: Vec<String> = f.stderr.iter().chain(f.stdout.iter()).cloned().collect();
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

    fn setup_qemu(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        handlers: &[String],
        setup: &[String],
    ) -> StepResult {
        let missing = missing_handlers(handlers);
        if missing.is_empty() {
            io.line(&format!("binfmt handlers present: {}", handlers.join(", ")));
            return StepResult::ok();
        }
        io.line(&format!(
            "missing binfmt handlers: {}; running {}",
            missing.join(", "),
            crate::plan::render::argv_line(setup)
        ));
        let f = self.stream(setup.to_vec(), step, io);
        if !f.exit.success() {
            return self.fail("qemu setup failed", &f);
        }
        let still = missing_handlers(handlers);
        if !still.is_empty() {
            return StepResult::failed(
                format!(
                    "emulation is still missing after setup: {} (install qemu-user-static and binfmt-support, or run `update-binfmts --enable` as root; on another host, `docker run --privileged multiarch/qemu-user-static --reset -p yes`)",
                    still.join(", ")
                ),
                f.stdout,
            );
        }
        StepResult::ok()
    }

    fn build(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        build_argv: &[String],
        reference: &str,
        platform: &Platform,
    ) -> StepResult {
        // The classic builder's cache ignores the platform: a layer cached for one
        // arch (FROM scratch, or a shared multi-arch base) can be reused for another.
        // When that shows, build once more without the cache.
        let mut no_cache = false;
        loop {
            let mut a = build_argv.to_vec();
            if no_cache {
                if let Some(i) = a.iter().position(|x| x == "build") {
                    a.insert(i + 1, "--no-cache".into());
                }
            }
            let f = self.stream(a, step, io);
            if !f.exit.success() {
                if !no_cache
                    && f.stdout
                        .iter()
                        .any(|l| l.contains("does not match the specified platform"))
                {
                    io.note("the build cache holds a layer of another platform; building again with --no-cache");
                    no_cache = true;
                    continue;
                }
                return self.fail("build failed", &f);
            }
            let inspect = self.captured(argv::inspect_platform(engine, reference), step, io, false);
            if !inspect.exit.success() {
                return self.fail("cannot inspect the built image", &inspect);
            }
            let got = inspect.stdout.first().cloned().unwrap_or_default();
            if !platform_matches(&got, platform) {
                if !no_cache {
                    io.note(&format!(
                        "built {} instead of {platform}; building again with --no-cache",
                        got.trim_end_matches('/')
                    ));
                    no_cache = true;
                    continue;
                }
                return StepResult::failed(
                    format!(
                        "built {} but this arch is {platform}: the classic builder ignored --platform (a local base image of another platform?); remove the local base image and rebuild",
                        got.trim_end_matches('/')
                    ),
                    f.stdout.iter().rev().take(10).rev().cloned().collect(),
                );
            }
            io.line(&format!(
                "image platform {} matches {platform}",
                got.trim_end_matches('/')
            ));
            return StepResult::ok();
        }
    }

    /// Run the check in `image` (its argv from the engine) and compare its
    /// output. The uname check on an image without `uname` checks the image
    /// config's platform instead, and says so.
    #[allow(clippy::too_many_arguments)]
    fn run_and_check(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        image: &str,
        platform: &Platform,
        pull: argv::Pull,
        check: &Check,
        what: &str,
    ) -> StepResult {
        let run_argv = argv::run(engine, image, platform, pull, check.run_command());
        let expect = &check.expect;
        let mut attempt = 0u32;
        let f = loop {
            let f = self.captured(run_argv.clone(), step, io, true);
            // 125: the engine failed before the command ran; a pull that met a
            // registry's bad moment (a 500 while another list of the repository is
            // being pushed) is worth another try, the command's own failure is not.
            let text = f
                .stderr
                .iter()
                .chain(f.stdout.iter())
                .cloned()
                .collect::<Vec<_>>();
            if f.exit != Exit::Code(125)
                || attempt >= self.retries
                || io.cancelled()
                || !is_transient(&text.join("\n"))
            {
                break f;
            }
            attempt += 1;
            let delay = backoff(self.backoff, attempt);
            io.note(&format!(
                "transient failure ({}); retry {attempt}/{} in {:.1}s",
                text.iter()
                    .rev()
                    .find(|l| !l.trim().is_empty() && !l.starts_with("Run '"))
                    .cloned()
                    .unwrap_or_else(|| f.exit.describe()),
                self.retries,
                delay.as_secs_f64()
            ));
            if !wait_unless_cancelled(delay, io) {
                break f;
            }
        };
        if !f.exit.success() {
            let first = check.command.first().map_or("", String::as_str);
            if check.platform_fallback && is_missing_executable(&f, first) {
                return self.platform_from_config(step, io, engine, image, platform, first, what);
            }
            return self.fail(&format!("{what} command failed"), &f);
        }
        let out = f.stdout.join("\n");
        if !expect.check(&out) {
            return StepResult::failed(
                format!(
                    "{what} printed `{}`, expected {}",
                    out.trim(),
                    expect.describe()
                ),
                f.stdout.clone(),
            );
        }
        StepResult::ok()
    }

    /// The image has no `command` (scratch, distroless): its config's platform
    /// must be the arch's.
    #[allow(clippy::too_many_arguments)]
    fn platform_from_config(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        image: &str,
        platform: &Platform,
        command: &str,
        what: &str,
    ) -> StepResult {
        let inspect = self.captured(argv::inspect_platform(engine, image), step, io, false);
        if !inspect.exit.success() {
            return self.fail(
                &format!("{what}: the image has no `{command}`, and its config cannot be read"),
                &inspect,
            );
        }
        let got = inspect.stdout.first().map_or("", |l| l.trim());
        let got = got.trim_end_matches('/');
        if !platform_matches(got, platform) {
            return StepResult::failed(
                format!("{what}: the image has no `{command}`, and its config says {got}, not {platform}"),
                inspect.stdout,
            );
        }
        let detail = format!("platform checked from config: {got}");
        io.note(&format!("the image has no `{command}` to run: {detail}"));
        StepResult::ok_with(detail)
    }

    fn push(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        reference: &str,
    ) -> StepResult {
        let file = self.session.file_for(&step.id.to_string());
        let push = engine
            .engine()
            .push(engine, reference, &file.display().to_string());
        let f = self.with_retries(push, step, io);
        let written = std::fs::read_to_string(&file).ok();
        let _ = std::fs::remove_file(&file);
        if !f.exit.success() {
            return self.fail("push failed", &f);
        }
        let digest = engine.engine().pushed_digest(&f.stdout, written.as_deref());
        let digest = digest.or_else(|| {
            let a = engine.engine().repo_digests(engine, reference);
            let out = self.captured(a, step, io, false);
            let repo = reference::parse(reference).ok()?.repository();
            let list: Vec<String> = serde_json::from_str(out.stdout.first()?).ok()?;
            list.iter()
                .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(str::to_string))
        });
        match digest {
            Some(d) => StepResult {
                status: StepStatus::Ok,
                digest: Some(d),
                tail: Vec::new(),
                detail: None,
            },
            None => StepResult::failed(
                "pushed, but the digest could not be read from the output",
                f.stdout,
            ),
        }
    }

    /// The digest of a per-arch reference: from this run's push, else the registry.
    #[allow(clippy::too_many_arguments)]
    fn entry_digest(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        push_step: &StepId,
        reference: &str,
        insecure: bool,
    ) -> Result<String, StepResult> {
        if let Some(d) = io.digest_of(&push_step.to_string()) {
            return Ok(d);
        }
        let local = EngineTarget::local(engine.kind);
        self.lookup_retrying(&local, reference, insecure, step, io)
            .map_err(|f| StepResult::failed(format!("{reference} was not pushed in this run and is not in the registry ({push_step} is needed first)"), f.stderr))
    }

    fn manifest_create(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        list: &str,
        entries: &[crate::plan::ListEntry],
        insecure: bool,
    ) -> StepResult {
        let mut items = Vec::new();
        for e in entries {
            match self.entry_digest(step, io, engine, &e.push_step, &e.reference, insecure) {
                Ok(d) => items.push(ListItem {
                    reference: format!("{}@{d}", repo_of(&e.reference)),
                    platform: e.platform.clone(),
                }),
                Err(r) => return r,
            }
        }
        let mut commands = argv::manifest_create(engine, list, &items, insecure).into_iter();
        // The first removes a list an earlier run left locally; usually there is none.
        if let Some(rm) = commands.next() {
            let _ = self.captured(rm, step, io, false);
        }
        if self.skip_existing {
            if let Some(cached) = self.published_already(step, io, engine, list, &items, insecure) {
                return cached;
            }
        }
        for a in commands {
            let what = format!(
                "{} failed",
                a.iter()
                    .skip_while(|x| *x != "manifest")
                    .take(2)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let f = self.with_retries(a, step, io);
            if !f.exit.success() {
                return self.fail(&what, &f);
            }
        }
        StepResult::ok()
    }

    /// With `--skip-existing`, after the local list is removed: when the registry
    /// already serves `list` with exactly `items` (the same per-arch digests, the
    /// same platforms, nothing else), the step is cached and so is its
    /// manifest-push. Anything else (no list, an unreadable one, a missing or an
    /// extra entry, another digest or platform) is created and pushed again.
    fn published_already(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        list: &str,
        items: &[ListItem],
        insecure: bool,
    ) -> Option<StepResult> {
        let local = EngineTarget::local(engine.kind);
        let f = self.captured(
            argv::manifest_inspect(&local, list, insecure),
            step,
            io,
            false,
        );
        if !f.exit.success() {
            return None;
        }
        let json = f.stdout.join("\n");
        let entries = list_entries(&json)?;
        let want: Vec<(String, String)> = {
            let mut v: Vec<_> = items
                .iter()
                .filter_map(|i| {
                    let (_, digest) = i.reference.rsplit_once('@')?;
                    Some((i.platform.to_string(), digest.to_string()))
                })
                .collect();
            v.sort();
            v
        };
        if want.len() != items.len() || entries != want {
            io.note(&format!(
                "{list} in the registry is not this run's list ({}); creating it again",
                describe_entries(&entries)
            ));
            return None;
        }
        if let Ok(mut m) = self.unchanged.lock() {
            m.insert(list.to_string());
        }
        if let Ok(mut m) = self.lists.lock() {
            m.insert(list.to_string(), json);
        }
        io.line(&format!(
            "{list} in the registry already lists {}",
            describe_entries(&entries)
        ));
        Some(StepResult {
            status: StepStatus::Cached(format!(
                "{list} already lists these {} entries",
                entries.len()
            )),
            digest: None,
            tail: Vec::new(),
            detail: None,
        })
    }

    fn manifest_push(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        list: &str,
        insecure: bool,
    ) -> StepResult {
        if self.skip_existing && self.unchanged.lock().is_ok_and(|m| m.contains(list)) {
            return StepResult {
                status: StepStatus::Cached(format!(
                    "{list} is already in the registry with these entries"
                )),
                digest: None,
                tail: Vec::new(),
                detail: None,
            };
        }
        let file = self.session.file_for(&step.id.to_string());
        let push = engine
            .engine()
            .manifest_push(list, insecure, &file.display().to_string());
        let f = self.with_retries(push, step, io);
        let written = std::fs::read_to_string(&file).ok();
        let _ = std::fs::remove_file(&file);
        if !f.exit.success() {
            return self.fail("manifest push failed", &f);
        }
        let digest = engine.engine().pushed_digest(&f.stdout, written.as_deref());
        StepResult {
            status: StepStatus::Ok,
            digest,
            tail: Vec::new(),
            detail: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn verify(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        list: Option<&str>,
        reference: &str,
        push_step: &StepId,
        platform: &Platform,
        check: &Check,
        insecure: bool,
    ) -> StepResult {
        let by_digest = match list {
            Some(list) => {
                // The list as the registry serves it, read once per run: by the
                // first verify of it, or by a manifest-create that found it
                // already published.
                let known = self.lists.lock().ok().and_then(|m| m.get(list).cloned());
                let json = match known {
                    Some(json) => json,
                    None => {
                        let local = EngineTarget::local(engine.kind);
                        let f = self.captured_retrying(
                            argv::manifest_inspect(&local, list, insecure),
                            step,
                            io,
                        );
                        if !f.exit.success() {
                            return self.fail(&format!("cannot read the pushed list {list}"), &f);
                        }
                        let json = f.stdout.join("\n");
                        if let Ok(mut m) = self.lists.lock() {
                            m.insert(list.to_string(), json.clone());
                        }
                        json
                    }
                };
                match digest_for_platform(&json, platform) {
                    Some(d) => {
                        io.line(&format!("{list} serves {platform} as {d}"));
                        format!("{}@{d}", repo_of(list))
                    }
                    None => {
                        return StepResult::failed(
                            format!("the pushed list {list} has no entry for {platform}"),
                            json.lines().map(str::to_string).collect(),
                        )
                    }
                }
            }
            // The plan marks a verify plain-HTTP by its list; a build that
            // publishes no list reads the per-arch reference, whose registry
            // decides.
            None => match self.entry_digest(
                step,
                io,
                engine,
                push_step,
                reference,
                insecure || self.plain_http(reference),
            ) {
                Ok(d) => format!("{}@{d}", repo_of(reference)),
                Err(r) => return r,
            },
        };
        self.run_and_check(
            step,
            io,
            engine,
            &by_digest,
            platform,
            argv::Pull::Always,
            check,
            "verify",
        )
    }
}

impl EngineRunner {
    /// Whether `reference`'s registry is reached over plain HTTP: loopback, or
    /// one of `[project] insecure_registries`.
    fn plain_http(&self, reference: &str) -> bool {
        reference::parse(reference)
            .ok()
            .and_then(|r| r.domain)
            .is_some_and(|d| reference::is_loopback_host(&d) || self.insecure.contains(&d))
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
        let engine = super::engine(kind);
        let d = registry_digest(engine, reference, insecure, &mut |a| {
            self.captured(a, step, io, false)
        })
        .ok()?;
        if let Ok(mut m) = self.existing.lock() {
            m.insert(reference.to_string(), d.clone());
        }
        Some(d)
    }

    fn cached(reference: &str, digest: Option<String>) -> StepResult {
        StepResult {
            status: StepStatus::Cached(format!("{reference} is already in the registry")),
            digest,
            tail: Vec::new(),
            detail: None,
        }
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
                return Self::cached(r, digest);
            }
        }
        match &step.action {
            Action::SetupQemu { handlers, setup } => self.setup_qemu(step, io, handlers, setup),
            Action::Build {
                engine,
                reference,
                platform,
                ..
            } => self.build(step, io, engine, &step.command(), reference, platform),
            Action::Test {
                engine,
                reference,
                platform,
                check,
            } => self.run_and_check(
                step,
                io,
                engine,
                reference,
                platform,
                argv::Pull::Never,
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
                engine,
                list.as_deref(),
                reference,
                push_step,
                platform,
                check,
                *insecure,
            ),
        }
    }
}

fn repo_of(reference: &str) -> String {
    reference::parse(reference)
        .map(|r| r.repository())
        .unwrap_or_else(|_| reference.to_string())
}

/// binfmt handlers that are missing or disabled.
pub fn missing_handlers(handlers: &[String]) -> Vec<String> {
    handlers
        .iter()
        .filter(|h| {
            let path = std::path::Path::new("/proc/sys/fs/binfmt_misc").join(h);
            !std::fs::read_to_string(path)
                .is_ok_and(|s| s.lines().next().is_some_and(|l| l.trim() == "enabled"))
        })
        .cloned()
        .collect()
}

/// Whether a run failed because the runtime found no `command` in the image
/// (runc: `exec: "uname": executable file not found in $PATH`; crun:
/// "executable file `uname` not found in $PATH"), as docker and podman report it
/// with exit code 127 — not a command inside the container that exited 127.
pub fn is_missing_executable(f: &Finished, command: &str) -> bool {
    if f.exit != Exit::Code(127) || command.is_empty() {
        return false;
    }
    f.stderr.iter().chain(f.stdout.iter()).any(|l| {
        l.contains("executable file")
            && l.contains("not found")
            && (l.contains(&format!("\"{command}\"")) || l.contains(&format!("`{command}`")))
    })
}

/// `os/arch/variant` from `docker image inspect` against the arch's platform.
pub fn platform_matches(got: &str, want: &Platform) -> bool {
    let mut parts = got.trim().split('/');
    let os = parts.next().unwrap_or("");
    let arch = parts.next().unwrap_or("");
    let variant = parts.next().unwrap_or("");
    if os != want.os || arch != want.arch {
        return false;
    }
    match (&want.variant, variant) {
        (_, "") => true,
        (Some(w), v) => w == v,
        (None, _) => true,
    }
}

/// The digest of `platform`'s entry in a list (`docker manifest inspect` JSON).
pub fn digest_for_platform(json: &str, platform: &Platform) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let entries = v.get("manifests")?.as_array()?;
    entries.iter().find_map(|m| {
        let p = m.get("platform")?;
        let os = p.get("os")?.as_str()?;
        let arch = p.get("architecture")?.as_str()?;
        let variant = p.get("variant").and_then(|x| x.as_str()).unwrap_or("");
        let got = format!("{os}/{arch}/{variant}");
        platform_matches(&got, platform).then(|| m.get("digest")?.as_str().map(str::to_string))?
    })
}

/// The entries of a list (`manifest inspect` JSON) as sorted (platform, digest)
/// pairs; `None` when it is not a list or an entry lacks a digest or platform.
pub fn list_entries(json: &str) -> Option<Vec<(String, String)>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    for m in v.get("manifests")?.as_array()? {
        let digest = m.get("digest")?.as_str()?;
        let p = m.get("platform")?;
        let platform = Platform {
            os: p.get("os")?.as_str()?.to_string(),
            arch: p.get("architecture")?.as_str()?.to_string(),
            variant: p
                .get("variant")
                .and_then(|x| x.as_str())
                .filter(|x| !x.is_empty())
                .map(str::to_string),
        };
        out.push((platform.to_string(), digest.to_string()));
    }
    out.sort();
    Some(out)
}

fn describe_entries(entries: &[(String, String)]) -> String {
    if entries.is_empty() {
        return "no entries".into();
    }
    entries
        .iter()
        .map(|(p, d)| format!("{p} {}", crate::report::summary::short_digest(d)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Answers that another try cannot change: authentication, not found, a bad
/// request (README: a 401/403/404/400 is never retried). A 429 is not one.
pub fn is_permanent(output: &str) -> bool {
    let o = output.to_ascii_lowercase();
    let permanent = [
        "unauthorized",
        "authentication required",
        "denied",
        "401 ",
        "403 ",
        "404 ",
        "not found",
        "manifest unknown",
        "name unknown",
        "400 bad request",
        "invalid reference",
        "no such manifest",
    ];
    permanent.iter().any(|p| o.contains(p)) && !o.contains("429")
}

/// Errors worth retrying: the network or the registry having a bad moment.
pub fn is_transient(output: &str) -> bool {
    if is_permanent(output) {
        return false;
    }
    let o = output.to_ascii_lowercase();
    let transient = [
        "connection refused",
        "connection reset",
        "broken pipe",
        "i/o timeout",
        "timeout",
        "timed out",
        "tls handshake",
        "unexpected eof",
        ": eof",
        "no such host",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway",
        "500 internal server error",
        "429",
        "too many requests",
        "toomanyrequests",
        "server misbehaving",
        "temporary failure",
    ];
    transient.iter().any(|t| o.contains(t))
}

fn last_error_line(f: &Finished) -> String {
    f.stdout
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| f.exit.describe())
}

/// Exponential backoff with ±25 % jitter, capped at 30 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let capped = exp.min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.75 + (nanos % 1000) as f64 / 2000.0;
    capped.mul_f64(jitter)
}

/// Wait `d`, returning early (false) if the run is cancelled.
fn wait_unless_cancelled(d: Duration, io: &StepIo<'_>) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if io.cancelled() {
            return false;
        }
        std::thread::park_timeout(
            Duration::from_millis(100)
                .min(end.saturating_duration_since(std::time::Instant::now())),
        );
    }
    !io.cancelled()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_check() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert!(platform_matches("linux/arm64/v8", &arm64));
        assert!(platform_matches("linux/arm64/", &arm64));
        assert!(!platform_matches("linux/amd64/", &arm64));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(platform_matches("linux/arm/v7", &v7));
        assert!(!platform_matches("linux/arm/v6", &v7));
    }

    #[test]
    fn digests_from_push_output() {
        let l = "abc: digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef size: 527";
        assert_eq!(
            find_digest(l).unwrap(),
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        assert_eq!(find_digest("no digest here"), None);
    }

    #[test]
    fn list_entries_by_platform() {
        let json = r#"{"schemaVersion":2,"manifests":[
            {"digest":"sha256:aa","platform":{"architecture":"amd64","os":"linux"}},
            {"digest":"sha256:bb","platform":{"architecture":"arm","os":"linux","variant":"v7"}},
            {"digest":"sha256:cc","platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
        assert_eq!(
            digest_for_platform(json, &Platform::parse("linux/arm/v7").unwrap()).as_deref(),
            Some("sha256:bb")
        );
        assert_eq!(
            digest_for_platform(json, &Platform::parse("linux/arm64").unwrap()).as_deref(),
            Some("sha256:cc")
        );
        assert_eq!(
            digest_for_platform(json, &Platform::parse("linux/s390x").unwrap()),
            None
        );
    }

    #[test]
    fn transient_or_not() {
        assert!(is_transient("Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused"));
        assert!(is_transient(
            "received unexpected HTTP status: 503 Service Unavailable"
        ));
        assert!(is_transient("toomanyrequests: 429"));
        assert!(!is_transient("unauthorized: authentication required"));
        assert!(!is_transient("manifest unknown"));
        assert!(is_permanent("no such manifest: 127.0.0.1:5000/a/amd64:1"));
        assert!(is_permanent("unauthorized: authentication required"));
        assert!(!is_permanent(
            "received unexpected HTTP status: 500 Internal Server Error"
        ));
        assert!(!is_permanent("toomanyrequests: 429 not found"));
        assert!(!is_transient("some other error"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_secs(1);
        assert!(backoff(b, 1) <= Duration::from_millis(1250));
        assert!(backoff(b, 3) >= Duration::from_secs(3));
        assert!(backoff(b, 20) <= Duration::from_millis(37_500));
    }
}
