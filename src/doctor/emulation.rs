//! The check of emulation: each arch that is not native here needs its binfmt
//! handler registered and enabled (read through [`crate::exec::qemu::Binfmt`]).

use super::{Blame, Check, Doctor};
use crate::exec::qemu::{Binfmt, HandlerState};
use crate::spec::Spec;

impl Doctor<'_> {
    pub(super) fn emulation_checks(&self, spec: &Spec) -> Vec<Check> {
        let mut out = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for i in &spec.images {
            for a in &i.archs {
                if !seen.contains(&a.as_str()) {
                    seen.push(a);
                }
            }
        }
        let setup = spec.qemu.setup.clone().unwrap_or_else(|| {
            if self.host.has_update_binfmts {
                vec!["update-binfmts".into(), "--enable".into()]
            } else {
                Vec::new()
            }
        });
        let binfmt = Binfmt::at(&self.binfmt_dir);
        let mounted = binfmt.mounted();
        let mut emulated = 0;
        for name in seen {
            let Some(arch) = spec.arch(name) else {
                continue;
            };
            if !arch.needs_emulation(&self.host.platform) {
                continue;
            }
            emulated += 1;
            let Some(handler) = arch.platform.qemu_handler() else {
                out.push(
                    Check::fail(
                        format!(
                            "emulation for {name} ({}): no qemu handler is known for it",
                            arch.platform
                        ),
                        Blame::Environment,
                    )
                    .fix(format!(
                        "build it on a native machine: [arch.{name}] builder = \"ssh://user@host\""
                    )),
                );
                continue;
            };
            let what = format!("emulation for {name} ({}): {handler}", arch.platform);
            match binfmt.state(handler) {
                HandlerState::Enabled { fix_binary } => {
                    if fix_binary {
                        out.push(Check::ok(format!("{what} is enabled")));
                    } else {
                        out.push(
                            Check::warn(format!("{what} is enabled without the F (fix-binary) flag"))
                                .detail("builds and containers only find the emulator if it is inside the image")
                                .fix("register it with F: Debian's qemu-user-static does (`update-binfmts --enable`), or `docker run --rm --privileged multiarch/qemu-user-static --reset -p yes`"),
                        );
                    }
                }
                HandlerState::Disabled => out.push(
                    Check::warn(format!("{what} is registered but disabled"))
                        .detail(match setup.is_empty() {
                            false => format!(
                                "`run` enables it first with `{}` (as root)",
                                crate::plan::render::argv_line(&setup)
                            ),
                            true => "`run` fails on it".to_string(),
                        })
                        .fix(format!(
                            "echo 1 > {}",
                            self.binfmt_dir.join(handler).display()
                        )),
                ),
                HandlerState::Missing => {
                    let known = self.binfmts_db.join(handler).exists();
                    let updates = setup.first().is_some_and(|p| p == "update-binfmts");
                    let mut c =
                        if (known && updates) || (spec.qemu.setup.is_some() && !setup.is_empty()) {
                            Check::warn(format!("{what} is not registered")).detail(format!(
                                "`run` registers it first with `{}` (as root)",
                                crate::plan::render::argv_line(&setup)
                            ))
                        } else {
                            Check::fail(format!("{what} is not registered"), Blame::Environment)
                        };
                    if !mounted {
                        c = c.detail(format!(
                            "binfmt_misc is not mounted at {}",
                            self.binfmt_dir.display()
                        ));
                    }
                    let mount = if mounted {
                        String::new()
                    } else {
                        format!(
                            "mount -t binfmt_misc binfmt_misc {}; ",
                            self.binfmt_dir.display()
                        )
                    };
                    out.push(c.fix(format!(
                        "as root: {mount}apt-get install qemu-user-static binfmt-support && update-binfmts --enable\n(or build {name} natively: [arch.{name}] builder = \"ssh://user@host\")"
                    )));
                }
            }
        }
        if emulated == 0 {
            out.push(Check::ok(format!(
                "emulation: not needed (every arch runs natively on {} or on its builder)",
                self.host.platform
            )));
        }
        out
    }
}
