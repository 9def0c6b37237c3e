//! A build step: the build's secrets written for it alone, the engine's build,
//! then the built image's platform checked against the arch's. The classic
//! builder's cache ignores the platform: a layer cached for one arch (FROM
//! scratch, or a shared multi-arch base) can be reused for another. When that
//! shows, the image is built once more without the cache. BuildKit keys its cache
//! by platform, but the check stays.

use super::EngineRunner;
use crate::engine::answers::platform_matches;
use crate::engine::{BuildArgs, EngineTarget};
use crate::exec::executor::{StepIo, StepResult};
use crate::exec::process::{self, Output};
use crate::plan::Step;
use crate::spec::Platform;

impl EngineRunner {
    pub(super) fn build(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        args: &BuildArgs,
        reference: &str,
        platform: &Platform,
    ) -> StepResult {
        // The files live until this function returns, however it returns.
        let (written, _files) = match self.secrets.write(args) {
            Ok(w) => w,
            Err(e) => {
                return StepResult::failed(
                    format!("cannot write the build's secrets: {e}"),
                    Vec::new(),
                )
            }
        };
        let args = &written;
        let mut no_cache: Option<BuildArgs> = None;
        loop {
            let a = no_cache.as_ref().unwrap_or(args);
            let mut cmd = self.command(engine.engine().build(engine, a), step);
            let extra = engine.engine().build_env(a);
            // Replaced, not appended: the first setting of a variable is the one
            // the child gets.
            cmd.env.retain(|(k, _)| !extra.iter().any(|(x, _)| x == k));
            cmd.env.extend(extra);
            let f = process::spawn(&cmd, &io.table, Output::Merged(&mut |l| io.line(l)));
            let rebuild = no_cache.is_none();
            if !f.exit.success() {
                if rebuild
                    && f.stdout
                        .iter()
                        .any(|l| l.contains("does not match the specified platform"))
                {
                    io.note("the build cache holds a layer of another platform; building again with --no-cache");
                    no_cache = Some(without_cache(args));
                    continue;
                }
                return self.fail("build failed", &f);
            }
            let inspect = self.captured(
                engine.engine().inspect_platform(engine, reference),
                step,
                io,
                false,
            );
            if !inspect.exit.success() {
                return self.fail("cannot inspect the built image", &inspect);
            }
            let got = inspect.stdout.first().cloned().unwrap_or_default();
            let shown = got.trim_end_matches('/');
            if !platform_matches(&got, platform) {
                if rebuild {
                    io.note(&format!(
                        "built {shown} instead of {platform}; building again with --no-cache"
                    ));
                    no_cache = Some(without_cache(args));
                    continue;
                }
                return StepResult::failed(
                    format!(
                        "built {shown} but this arch is {platform}: the classic builder ignored --platform (a local base image of another platform?); remove the local base image and rebuild"
                    ),
                    f.stdout.iter().rev().take(10).rev().cloned().collect(),
                );
            }
            io.line(&format!("image platform {shown} matches {platform}"));
            return StepResult::ok();
        }
    }
}

fn without_cache(args: &BuildArgs) -> BuildArgs {
    BuildArgs {
        no_cache: true,
        ..args.clone()
    }
}
