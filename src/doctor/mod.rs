//! `multiarch doctor`: checks that a run could succeed here, and says how to fix
//! what would stop it. Every check is one line, `ok`, `FAIL` or `warn`, with the
//! details and a `fix:` where there is one:
//!
//! ```text
//! ok    multiarch.toml: 3 images (busybox, uname, greeter), archs amd64, arm32v7, arm64v8
//! ok    engine: docker 28.2.2, daemon 20.10.24 (the default socket)
//! ok    `docker manifest` is available
//! FAIL  emulation for arm64v8 (linux/arm64/v8): qemu-aarch64 is not registered
//!       fix: apt-get install qemu-user-static binfmt-support, then (as root) update-binfmts --enable
//! ```
//!
//! Everything it looks at is injectable (the environment, the host platform, the
//! binfmt directories), so it is tested without touching the machine's setup.

mod emulation;
mod engine;
mod plan;
mod registry;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::context::Overrides;
use crate::engine::EngineTarget;
use crate::environment::Environment;
use crate::exec::process::ProcessTable;
use crate::exit;
use crate::plan::Host;
use crate::spec::EngineKind;
use engine::podman_rlimit_check;
use plan::publish_check;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// What a failure means for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The file or the arguments (exit 2).
    File,
    /// The machine (exit 3).
    Environment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub level: Level,
    pub what: String,
    pub details: Vec<String>,
    pub fix: Option<String>,
    pub blame: Blame,
}

impl Check {
    fn ok(what: impl Into<String>) -> Check {
        Check {
            level: Level::Ok,
            what: what.into(),
            details: Vec::new(),
            fix: None,
            blame: Blame::Environment,
        }
    }

    fn warn(what: impl Into<String>) -> Check {
        Check {
            level: Level::Warn,
            ..Check::ok(what)
        }
    }

    fn fail(what: impl Into<String>, blame: Blame) -> Check {
        Check {
            level: Level::Fail,
            blame,
            ..Check::ok(what)
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }

    fn detail(mut self, d: impl Into<String>) -> Check {
        self.details.push(d.into());
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// 0 when a run could succeed; 2 when the file or arguments are wrong; 3 when
    /// the machine is not ready.
    pub fn exit_code(&self) -> i32 {
        let fails = || self.checks.iter().filter(|c| c.level == Level::Fail);
        if fails().any(|c| c.blame == Blame::File) {
            exit::USAGE
        } else if fails().next().is_some() {
            exit::ENVIRONMENT
        } else {
            exit::SUCCESS
        }
    }

    fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.level == level).count()
    }

    pub fn render(&self, color: bool) -> String {
        let style = crate::report::Style::new(color);
        let mut o = String::new();
        for c in &self.checks {
            let label = format!("{:4}", c.level.label());
            let label = match c.level {
                Level::Ok => style.ok(&label),
                Level::Warn => style.warn(&label),
                Level::Fail => style.bad(&label),
            };
            o.push_str(&format!("{label}  {}\n", c.what));
            for d in &c.details {
                o.push_str(&format!("      {d}\n"));
            }
            if let Some(f) = &c.fix {
                let mut lines = f.lines();
                if let Some(first) = lines.next() {
                    o.push_str(&format!("      {} {first}\n", style.bold("fix:")));
                }
                for l in lines {
                    o.push_str(&format!("           {l}\n"));
                }
            }
        }
        let fails = self.count(Level::Fail);
        let warns = self.count(Level::Warn);
        let warned = match warns {
            0 => String::new(),
            1 => " (1 warning)".to_string(),
            n => format!(" ({n} warnings)"),
        };
        o.push('\n');
        if fails == 0 {
            o.push_str(&format!("doctor: a run can start here{warned}\n"));
        } else {
            o.push_str(&format!(
                "doctor: {fails} problem{} — a run would fail (exit {}){warned}\n",
                if fails == 1 { "" } else { "s" },
                self.exit_code()
            ));
        }
        o
    }
}

/// Variables engine commands see (from the injected environment, so a test can
/// point `DOCKER_HOST` elsewhere or put a fake `docker` first on `PATH`).
const ENGINE_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "DOCKER_API_VERSION",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_REGISTRIES_CONF",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "MULTIARCH_DOCKER",
];

/// The checks, and what they look at.
#[derive(Debug, Clone)]
pub struct Doctor<'a> {
    pub env: &'a Environment,
    /// Where to look for multiarch.toml (and its parents).
    pub cwd: PathBuf,
    /// `-f FILE`.
    pub file: Option<PathBuf>,
    /// `--branch`, `--git-tag`, `--sha`.
    pub overrides: Overrides,
    pub host: Host,
    /// `/proc/sys/fs/binfmt_misc`.
    pub binfmt_dir: PathBuf,
    /// binfmt-support's definitions (`/var/lib/binfmts`): a handler defined there
    /// but not registered is what `update-binfmts --enable` fixes.
    pub binfmts_db: PathBuf,
    /// Per engine command and per registry request.
    pub timeout: Duration,
    /// `--engine`, overriding `[project] engine`.
    pub engine: Option<EngineKind>,
    /// Other docker CLIs to suggest when the first one cannot build with BuildKit.
    pub docker_alternatives: Vec<String>,
}

impl<'a> Doctor<'a> {
    pub fn new(env: &'a Environment, cwd: &Path) -> Self {
        Doctor {
            env,
            cwd: cwd.to_path_buf(),
            file: None,
            overrides: Overrides::default(),
            host: Host::detect(),
            binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
            binfmts_db: PathBuf::from("/var/lib/binfmts"),
            timeout: Duration::from_secs(20),
            engine: None,
            docker_alternatives: crate::context::ALTERNATIVE_DOCKERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    pub fn run(&self) -> DoctorReport {
        let table = ProcessTable::new();
        // Computed in dependency order, shown in the order people read them:
        // the file, the machine, the registry, the commit, what a run would do.
        let mut file = Vec::new();
        let mut context = Vec::new();
        let mut outcome = Vec::new();
        let spec = self.spec_check(&mut file);
        let ctx = spec.as_ref().and_then(|s| self.git_check(s, &mut context));
        let plan = match (&spec, &ctx) {
            (Some(s), Some(c)) => self.plan_check(s, c, &mut outcome),
            _ => None,
        };
        let engine = self
            .engine
            .or(plan.as_ref().map(|p| p.engine))
            .or(spec.as_ref().map(|s| s.project.engine))
            .unwrap_or_default();
        let mut targets = vec![EngineTarget::local(engine)];
        if let Some(p) = &plan {
            for t in p.engine_targets() {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        let mut machine = Vec::new();
        let mut installed = true;
        for t in &targets {
            let (c, present) = self.engine_check(t, &table);
            if t.builder.is_none() {
                installed = present;
            }
            machine.push(c);
        }
        // Lists are made over the registry's API: no `manifest` command is needed.
        if installed {
            if engine == EngineKind::Podman {
                machine.push(podman_rlimit_check());
            } else {
                let setting = spec.as_ref().map(|s| s.project.builder).unwrap_or_default();
                machine.push(self.builder_check(setting));
            }
        }
        if let Some(s) = &spec {
            machine.extend(self.emulation_checks(s));
        }
        let mut registry = Vec::new();
        if let Some(p) = &plan {
            self.registry_checks(p, &mut registry);
            outcome.push(publish_check(p));
        }
        let checks = [file, machine, registry, context, outcome].concat();
        DoctorReport { checks }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}
