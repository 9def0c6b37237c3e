//! Pushes of per-arch images: the registry write under the retry policy, then
//! the pushed digest from the engine's answer (its output, or the digest file an
//! engine such as podman writes), else the image's repository digests.

use super::EngineRunner;
use crate::engine::answers::repo_digest;
use crate::engine::{Engine, EngineTarget};
use crate::exec::executor::{StepIo, StepResult};
use crate::exec::process::Finished;
use crate::plan::Step;
use crate::spec::reference;

impl EngineRunner {
    pub(super) fn push(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        reference: &str,
    ) -> StepResult {
        let e = engine.engine();
        let (f, digest) =
            self.push_reading_digest(step, io, e, |file| e.push(engine, reference, file));
        if !f.exit.success() {
            return self.fail("push failed", &f);
        }
        let digest = digest.or_else(|| {
            let out = self.captured(e.repo_digests(engine, reference), step, io, false);
            let repo = reference::parse(reference).ok()?.repository();
            repo_digest(out.stdout.first()?, &repo)
        });
        match digest {
            Some(d) => StepResult::pushed(Some(d)),
            None => StepResult::failed(
                "pushed, but the digest could not be read from the output",
                f.stdout,
            ),
        }
    }

    /// Run the push `argv(digest_file)` makes, as a registry write; the digest
    /// it sent, from its output or the digest file (removed afterwards).
    fn push_reading_digest(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &dyn Engine,
        argv: impl FnOnce(&str) -> Vec<String>,
    ) -> (Finished, Option<String>) {
        let file = self.session.file_for(&step.id.to_string());
        let f = self.write(argv(&file.display().to_string()), step, io);
        let written = std::fs::read_to_string(&file).ok();
        let _ = std::fs::remove_file(&file);
        let digest = f
            .exit
            .success()
            .then(|| engine.pushed_digest(&f.stdout, written.as_deref()))
            .flatten();
        (f, digest)
    }
}
