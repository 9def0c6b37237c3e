//! Emulation: which binfmt handlers the kernel has, and the one path that sets
//! up the missing ones ([`ensure`]). `exec::run` calls it before any step is
//! scheduled (a handler still missing is exit 3, said before any build); the
//! runner's setup-qemu step calls the same function, for library users who
//! drive the pool themselves.

use std::path::{Path, PathBuf};

use super::process::Finished;
use crate::plan::render::argv_line;

/// Where the kernel lists binfmt handlers (`/proc/sys/fs/binfmt_misc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binfmt {
    pub dir: PathBuf,
}

/// What the kernel says about one handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerState {
    /// Registered and enabled; `fix_binary`: the F flag (the emulator is opened at
    /// registration, so containers and builds find it).
    Enabled {
        fix_binary: bool,
    },
    Disabled,
    Missing,
}

impl Default for Binfmt {
    fn default() -> Self {
        Binfmt {
            dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
        }
    }
}

impl Binfmt {
    pub fn at(dir: &Path) -> Binfmt {
        Binfmt {
            dir: dir.to_path_buf(),
        }
    }

    pub fn state(&self, handler: &str) -> HandlerState {
        match std::fs::read_to_string(self.dir.join(handler)) {
            Ok(s) if s.lines().next().is_some_and(|l| l.trim() == "enabled") => {
                HandlerState::Enabled {
                    fix_binary: s
                        .lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .is_some_and(|f| f.contains('F')),
                }
            }
            Ok(_) => HandlerState::Disabled,
            Err(_) => HandlerState::Missing,
        }
    }

    /// binfmt_misc is mounted here.
    pub fn mounted(&self) -> bool {
        self.dir.join("status").exists()
    }

    /// The handlers of `handlers` that are missing or disabled.
    pub fn missing(&self, handlers: &[String]) -> Vec<String> {
        handlers
            .iter()
            .filter(|h| !matches!(self.state(h), HandlerState::Enabled { .. }))
            .cloned()
            .collect()
    }
}

/// Emulation is still missing after the setup ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulationMissing {
    pub handlers: Vec<String>,
    /// How the setup command failed, if it did.
    pub setup_failed: Option<String>,
}

impl std::fmt::Display for EmulationMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "emulation for {} is missing", self.handlers.join(", "))?;
        match &self.setup_failed {
            None => f.write_str(" after running the setup"),
            Some(how) => write!(f, " and the setup failed ({how})"),
        }
    }
}

/// Make sure every handler of `handlers` is enabled: when one is not, say so,
/// run `setup` with `run` (which shows its output), and look again.
pub fn ensure(
    binfmt: &Binfmt,
    handlers: &[String],
    setup: &[String],
    run: impl FnOnce(Vec<String>) -> Finished,
    say: impl FnOnce(String),
) -> Result<(), EmulationMissing> {
    let missing = binfmt.missing(handlers);
    if missing.is_empty() {
        return Ok(());
    }
    say(format!(
        "binfmt handlers missing ({}); running {}",
        missing.join(", "),
        argv_line(setup)
    ));
    let f = run(setup.to_vec());
    let still = binfmt.missing(handlers);
    if still.is_empty() {
        return Ok(());
    }
    Err(EmulationMissing {
        handlers: still,
        setup_failed: (!f.exit.success()).then(|| f.exit.describe()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::process::Exit;

    fn dir_with(handlers: &[(&str, &str)]) -> (Binfmt, tempfile::TempDir) {
        let d = tempfile::tempdir().unwrap();
        for (h, text) in handlers {
            std::fs::write(d.path().join(h), text).unwrap();
        }
        (Binfmt::at(d.path()), d)
    }

    fn finished(code: i32) -> Finished {
        Finished {
            exit: Exit::Code(code),
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn handlers_are_read_from_the_kernels_list() {
        let (b, d) = dir_with(&[
            (
                "qemu-aarch64",
                "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: POCF\n",
            ),
            ("qemu-arm", "enabled\nflags: P\n"),
            ("qemu-s390x", "disabled\n"),
        ]);
        assert_eq!(
            b.state("qemu-aarch64"),
            HandlerState::Enabled { fix_binary: true }
        );
        assert_eq!(
            b.state("qemu-arm"),
            HandlerState::Enabled { fix_binary: false }
        );
        assert_eq!(b.state("qemu-s390x"), HandlerState::Disabled);
        assert_eq!(b.state("qemu-riscv64"), HandlerState::Missing);
        let all = ["qemu-aarch64", "qemu-s390x", "qemu-riscv64"].map(String::from);
        assert_eq!(b.missing(&all), ["qemu-s390x", "qemu-riscv64"]);
        drop(d);
    }

    #[test]
    fn setup_runs_only_when_a_handler_is_missing_and_is_checked_after() {
        let (b, d) = dir_with(&[("qemu-aarch64", "enabled\n")]);
        let mut said = Vec::new();
        let present = ["qemu-aarch64".to_string()];
        let r = ensure(
            &b,
            &present,
            &["setup".into()],
            |_| panic!("ran"),
            |m| said.push(m),
        );
        assert_eq!(r, Ok(()));
        assert!(said.is_empty());
        let wanted = ["qemu-arm".to_string()];
        let r = ensure(
            &b,
            &wanted,
            &["update-binfmts".into(), "--enable".into()],
            |argv| {
                assert_eq!(argv, ["update-binfmts", "--enable"]);
                finished(2)
            },
            |m| said.push(m),
        );
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            "emulation for qemu-arm is missing and the setup failed (exit code 2)"
        );
        assert_eq!(
            said,
            ["binfmt handlers missing (qemu-arm); running update-binfmts --enable"]
        );
        let fixed = ensure(
            &b,
            &wanted,
            &["true".into()],
            |_| {
                std::fs::write(d.path().join("qemu-arm"), "enabled\n").unwrap();
                finished(0)
            },
            |_| {},
        );
        assert_eq!(fixed, Ok(()));
    }
}
