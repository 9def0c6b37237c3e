//! manifest-create: each entry's digest (this run's push, else the registry),
//! then the engine's commands that assemble the list. With `--skip-existing`, a
//! list the registry already serves with exactly these entries is left alone.

use super::{repo_of, EngineRunner};
use crate::engine::answers::list_entries;
use crate::engine::{EngineTarget, ListItem};
use crate::events::format::short_digest;
use crate::exec::executor::{StepIo, StepResult};
use crate::plan::{ListEntry, Step, StepId};

impl EngineRunner {
    /// The digest of a per-arch reference: from this run's push, else the registry.
    pub(super) fn entry_digest(
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
        self.lookup(engine.kind, reference, insecure, step, io)
            .map_err(|f| StepResult::failed(format!("{reference} was not pushed in this run and is not in the registry ({push_step} is needed first)"), f.stderr))
    }

    pub(super) fn manifest_create(
        &self,
        step: &Step,
        io: &StepIo<'_>,
        engine: &EngineTarget,
        list: &str,
        entries: &[ListEntry],
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
        let mut commands = engine
            .engine()
            .manifest_create(list, &items, insecure)
            .into_iter();
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
            let f = self.write(a, step, io);
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
            local.engine().manifest_inspect(list, insecure),
            step,
            io,
            false,
        );
        if !f.exit.success() {
            return None;
        }
        let json = f.stdout.join("\n");
        let entries = list_entries(&json)?;
        let mut want: Vec<(String, String)> = items
            .iter()
            .filter_map(|i| {
                let (_, digest) = i.reference.rsplit_once('@')?;
                Some((i.platform.to_string(), digest.to_string()))
            })
            .collect();
        want.sort();
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
        Some(StepResult::cached(
            format!("{list} already lists these {} entries", entries.len()),
            None,
        ))
    }
}

fn describe_entries(entries: &[(String, String)]) -> String {
    if entries.is_empty() {
        return "no entries".into();
    }
    entries
        .iter()
        .map(|(p, d)| format!("{p} {}", short_digest(d)))
        .collect::<Vec<_>>()
        .join(", ")
}
