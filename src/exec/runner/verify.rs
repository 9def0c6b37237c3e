//! Test and verify steps: the check command run in an image (the local one
//! before pushing; the registry's, by digest, after publishing), its output
//! compared with what the arch must print.

use super::{repo_of, EngineRunner};
use crate::engine::answers::{digest_for_platform, is_missing_executable, platform_matches};
use crate::engine::{EngineTarget, Pull};
use crate::exec::executor::{StepIo, StepResult};
use crate::exec::retry::Retry;
use crate::plan::{Check, Step, StepId};
use crate::spec::Platform;

/// Where a check runs.
pub(super) struct Target<'a> {
    pub engine: &'a EngineTarget,
    pub image: &'a str,
    pub platform: &'a Platform,
    pub pull: Pull,
}

/// What a verify step reads before it runs its check.
pub(super) struct Verify<'a> {
    pub engine: &'a EngineTarget,
    /// On a publishing build: the pushed list, resolved to this platform's digest.
    pub list: Option<&'a str>,
    /// The per-arch reference and the step that pushed it.
    pub reference: &'a str,
    pub push_step: &'a StepId,
    pub platform: &'a Platform,
    pub insecure: bool,
}

impl EngineRunner {
    /// Run the check in the target's image (its argv from the engine) and compare
    /// its output. The uname check on an image without `uname` checks the image
    /// config's platform instead, and says so.
    pub(super) fn check(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        t: Target<'_>,
        check: &Check,
        what: &str,
    ) -> StepResult {
        let run_argv =
            t.engine
                .engine()
                .run(t.engine, t.image, t.platform, t.pull, check.run_command());
        let f = self
            .retry
            .run(Retry::EngineRun, io, || {
                let f = self.captured(run_argv.clone(), step, io, true);
                self.after_container(t.engine, &step.id.to_string(), &f.exit);
                super::ok_or_err(f)
            })
            .unwrap_or_else(|f| f);
        if !f.exit.success() {
            let first = check.command.first().map_or("", String::as_str);
            let code = match f.exit {
                crate::exec::process::Exit::Code(c) => Some(c),
                _ => None,
            };
            if check.platform_fallback
                && is_missing_executable(code, f.lines().map(String::as_str), first)
            {
                return self.platform_from_config(step, io, &t, first, what);
            }
            return self.fail(&format!("{what} command failed"), &f);
        }
        let out = f.stdout.join("\n");
        if !check.expect.check(&out) {
            return StepResult::failed(
                format!(
                    "{what} printed `{}`, expected {}",
                    out.trim(),
                    check.expect.describe()
                ),
                f.stdout.clone(),
            );
        }
        StepResult::ok()
    }

    /// The image has no `command` (scratch, distroless): its config's platform
    /// must be the arch's.
    fn platform_from_config(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        t: &Target<'_>,
        command: &str,
        what: &str,
    ) -> StepResult {
        let inspect = self.captured(
            t.engine.engine().inspect_platform(t.engine, t.image),
            step,
            io,
            false,
        );
        if !inspect.exit.success() {
            return self.fail(
                &format!("{what}: the image has no `{command}`, and its config cannot be read"),
                &inspect,
            );
        }
        let got = inspect.stdout.first().map_or("", |l| l.trim());
        let got = got.trim_end_matches('/');
        if !platform_matches(got, t.platform) {
            return StepResult::failed(
                format!(
                    "{what}: the image has no `{command}`, and its config says {got}, not {}",
                    t.platform
                ),
                inspect.stdout,
            );
        }
        let detail = format!("platform checked from config: {got}");
        io.note(&format!("the image has no `{command}` to run: {detail}"));
        StepResult::ok_with(detail)
    }

    /// Resolve what the registry serves to a digest, then check it.
    pub(super) fn verify(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        v: Verify<'_>,
        check: &Check,
    ) -> StepResult {
        let by_digest = match v.list {
            Some(list) => match self.list_entry(step, io, &v, list) {
                Ok(r) => r,
                Err(r) => return r,
            },
            // The plan marks a verify plain-HTTP by its list; a build that
            // publishes no list reads the per-arch reference, whose registry
            // decides.
            None => {
                let insecure = v.insecure || self.plain_http(v.reference);
                match self.entry_digest(step, io, v.engine, v.push_step, v.reference, insecure) {
                    Ok(d) => format!("{}@{d}", repo_of(v.reference)),
                    Err(r) => return r,
                }
            }
        };
        let t = Target {
            engine: v.engine,
            image: &by_digest,
            platform: v.platform,
            pull: Pull::Always,
        };
        self.check(step, io, t, check, "verify")
    }

    /// `REPO@sha256:…` of the platform's entry in the pushed list, which is read
    /// once per run: by the first verify of it, or by a manifest-create that
    /// found it already published.
    fn list_entry(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        v: &Verify<'_>,
        list: &str,
    ) -> Result<String, StepResult> {
        let known = self.lists.lock().ok().and_then(|m| m.get(list).cloned());
        let json = match known {
            Some(json) => json,
            None => {
                let local = EngineTarget::local(v.engine.kind);
                let f = self.read(local.engine().manifest_inspect(list, v.insecure), step, io);
                if !f.exit.success() {
                    return Err(self.fail(&format!("cannot read the pushed list {list}"), &f));
                }
                let json = f.stdout.join("\n");
                if let Ok(mut m) = self.lists.lock() {
                    m.insert(list.to_string(), json.clone());
                }
                json
            }
        };
        match digest_for_platform(&json, v.platform) {
            Some(d) => {
                io.line(&format!("{list} serves {} as {d}", v.platform));
                Ok(format!("{}@{d}", repo_of(list)))
            }
            None => Err(StepResult::failed(
                format!("the pushed list {list} has no entry for {}", v.platform),
                json.lines().map(str::to_string).collect(),
            )),
        }
    }
}
