//! setup-qemu: drafted first, needed by the builds and verifies of emulated
//! arches, dropped by `seal` when nothing emulated is in the plan.

use super::PlanBuilder;
use crate::context::Host;
use crate::engine::argv;
use crate::plan::{Action, StepId, StepIdx};
use crate::spec::EngineKind;

impl PlanBuilder<'_> {
    /// The setup-qemu step at index 0; its action is known once every image is drafted.
    pub(super) fn draft_qemu(&mut self) -> StepIdx {
        let idx = self.draft.push_with(
            StepId::SetupQemu,
            Action::SetupQemu {
                handlers: Vec::new(),
                setup: Vec::new(),
            },
            self.opts.step_timeout.or(self.spec.project.timeout),
            [],
        );
        self.draft.only_if_needed(idx);
        idx
    }

    /// The handlers every emulated arch needs, and the command that registers them.
    pub(super) fn finish_qemu(&mut self) {
        let mut handlers: Vec<String> = self
            .emulated
            .iter()
            .filter_map(|a| {
                self.spec
                    .arch(a)
                    .and_then(|x| x.platform.qemu_handler())
                    .map(str::to_string)
            })
            .collect();
        handlers.sort();
        handlers.dedup();
        let setup = self
            .spec
            .qemu
            .setup
            .clone()
            .unwrap_or_else(|| default_qemu_setup(&self.opts.host, self.engine));
        self.draft
            .set_action(self.qemu, Action::SetupQemu { handlers, setup });
    }
}

/// `update-binfmts --enable` where it is installed, else the engine's way.
fn default_qemu_setup(host: &Host, engine: EngineKind) -> Vec<String> {
    if host.has_update_binfmts {
        vec!["update-binfmts".into(), "--enable".into()]
    } else {
        argv::qemu_register(engine)
    }
}
