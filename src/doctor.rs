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

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::context::{GitCli, GitContext, Overrides};
use crate::engine::argv::EngineTarget;
use crate::environment::Environment;
use crate::error::{exit, Error};
use crate::exec::process::{self, Command, Exit, ProcessTable};
use crate::exec::Credentials;
use crate::plan::{Host, Plan, PlanOptions, StepKind};
use crate::spec::reference::{self, is_loopback_host};
use crate::spec::{Builder, EngineKind, Spec};

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
        let fails = self
            .checks
            .iter()
            .filter(|c| c.level == Level::Fail)
            .count();
        let warns = self
            .checks
            .iter()
            .filter(|c| c.level == Level::Warn)
            .count();
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
        if installed {
            machine.push(self.manifest_check(engine, plan.as_ref(), &table));
            if engine == EngineKind::Podman {
                machine.push(podman_rlimit_check());
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

    fn spec_check(&self, checks: &mut Vec<Check>) -> Option<Spec> {
        let path = match Spec::locate(self.file.as_deref(), &self.cwd) {
            Ok(p) => p,
            Err(e) => {
                let fix = if self.file.is_some() {
                    "check the path given to -f"
                } else {
                    "run `multiarch init` to write one from the Dockerfiles here, or pass -f FILE"
                };
                checks.push(
                    Check::fail(
                        format!("no multiarch.toml: {}", first_line(&e.to_string())),
                        Blame::File,
                    )
                    .fix(fix),
                );
                return None;
            }
        };
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        match Spec::load(&path, self.env).map_err(Error::from) {
            Ok(spec) => {
                let images: Vec<&str> = spec.images.iter().map(|i| i.name.as_str()).collect();
                let mut archs: Vec<&str> = Vec::new();
                for i in &spec.images {
                    for a in &i.archs {
                        if !archs.contains(&a.as_str()) {
                            archs.push(a);
                        }
                    }
                }
                checks.push(Check::ok(format!(
                    "{name}: {} image{} ({}), archs {}",
                    images.len(),
                    if images.len() == 1 { "" } else { "s" },
                    images.join(", "),
                    archs.join(", ")
                )));
                Some(spec)
            }
            Err(Error::Spec(errs)) => {
                let mut c = Check::fail(
                    format!(
                        "{name} has {} problem{}",
                        errs.len(),
                        if errs.len() == 1 { "" } else { "s" }
                    ),
                    Blame::File,
                )
                .fix(format!(
                    "`multiarch check -f {}` shows each one with its line and a hint",
                    path.display()
                ));
                for d in errs.diagnostics.iter().take(5) {
                    c = c.detail(format!("{}: {}", d.location(), d.problem.message));
                }
                checks.push(c);
                None
            }
            Err(e) => {
                checks.push(Check::fail(format!("{name}: {e}"), Blame::File));
                None
            }
        }
    }

    fn git_check(&self, spec: &Spec, checks: &mut Vec<Check>) -> Option<GitContext> {
        let git = GitCli::new(&spec.dir);
        let ctx = match GitContext::detect(self.env, &git, &self.overrides) {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check::fail(format!("git: {e}"), Blame::File));
                return None;
            }
        };
        let from = |what: &str| {
            ctx.origin
                .iter()
                .filter(|(k, _)| k.contains(what))
                .map(|(_, v)| v.as_str())
                .next()
                .unwrap_or("")
                .to_string()
        };
        let what = match (&ctx.branch, &ctx.git_tag) {
            (Some(b), Some(t)) => format!("branch `{b}`, git tag `{t}`"),
            (Some(b), None) => format!("branch `{b}`"),
            (None, Some(t)) => format!("git tag `{t}`"),
            (None, None) => "no branch or git tag".to_string(),
        };
        match &ctx.sha {
            Some(sha) => {
                let origin = from("branch");
                let by = if origin.is_empty() {
                    String::new()
                } else {
                    format!(" (from {origin})")
                };
                checks.push(Check::ok(format!(
                    "git: {what}{by}, commit {} (from {})",
                    &sha[..7.min(sha.len())],
                    from("sha")
                )));
            }
            None => checks.push(
                Check::warn(format!(
                    "git: {what}; no commit known (not a git checkout, no CI variables, no --sha)"
                ))
                .fix("run inside the git checkout, or pass --sha (and --branch) as CI jobs do"),
            ),
        }
        checks.push(match (ctx.ci, &ctx.pull_request) {
            (Some(ci), Some(pr)) => Check::ok(format!(
                "CI: {ci}, a pull/merge-request build ({pr}): it never publishes lists"
            )),
            (Some(ci), None) => Check::ok(format!("CI: {ci}")),
            (None, _) => Check::ok("CI: none detected (a local run)"),
        });
        Some(ctx)
    }

    fn plan_check(&self, spec: &Spec, ctx: &GitContext, checks: &mut Vec<Check>) -> Option<Plan> {
        let opts = PlanOptions {
            host: self.host.clone(),
            engine: self.engine,
            ..PlanOptions::default()
        };
        match Plan::new(spec, ctx, &opts) {
            Ok(p) => Some(p),
            Err(e) => {
                let text = e.to_string();
                let (what, help) = match text.split_once("\n  help: ") {
                    Some((w, h)) => (w.to_string(), Some(h.to_string())),
                    None => (text, None),
                };
                let mut c = Check::fail(format!("plan: {what}"), Blame::File);
                c.fix = help;
                checks.push(c);
                None
            }
        }
    }

    fn command(&self, argv: Vec<String>) -> Command {
        let mut env: Vec<(String, String)> = ENGINE_VARS
            .iter()
            .filter_map(|k| Some((k.to_string(), self.env.get(k)?.to_string())))
            .collect();
        env.push(("DOCKER_CLI_HINTS".into(), "false".into()));
        Command {
            argv,
            dir: Some(self.cwd.clone()),
            env,
            stdin: None,
            timeout: Some(self.timeout),
        }
    }

    /// The check, and whether the engine's program is installed at all.
    fn engine_check(&self, t: &EngineTarget, table: &Arc<ProcessTable>) -> (Check, bool) {
        let program = t.kind.program();
        let mut server = t.base();
        let mut client = t.base();
        match t.kind {
            EngineKind::Docker => {
                server.extend(["version", "--format", "{{.Server.Version}}"].map(String::from));
                client.extend(["version", "--format", "{{.Client.Version}}"].map(String::from));
            }
            EngineKind::Podman => {
                server.extend(["info", "--format", "{{.Version.Version}}"].map(String::from));
                client.extend(["version", "--format", "{{.Client.Version}}"].map(String::from));
            }
        }
        let at = match &t.builder {
            Some(Builder::Host(h)) => format!("the builder {h}"),
            Some(Builder::Context(c)) => format!("the docker context {c}"),
            None => match (
                t.kind,
                self.env.non_empty("DOCKER_HOST"),
                self.env.non_empty("CONTAINER_HOST"),
            ) {
                (EngineKind::Docker, Some(h), _) => format!("DOCKER_HOST={h}"),
                (EngineKind::Podman, _, Some(h)) => format!("CONTAINER_HOST={h}"),
                _ => "the default socket".to_string(),
            },
        };
        let f = process::run_captured(&self.command(server), table);
        if let Exit::SpawnFailed(why) = &f.exit {
            let fix = match t.kind {
                EngineKind::Docker => "install it: `apt-get install docker.io` (Debian/Ubuntu), or Docker Engine from docs.docker.com; or use podman: [project] engine = \"podman\"",
                EngineKind::Podman => "install it: `apt-get install podman`; or use docker: [project] engine = \"docker\"",
            };
            return (
                Check::fail(format!("engine: {why}"), Blame::Environment).fix(fix),
                false,
            );
        }
        let version = f
            .stdout
            .first()
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        if !f.exit.success() || version.is_empty() {
            let detail = f
                .stderr
                .iter()
                .chain(f.stdout.iter())
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| f.exit.describe());
            let fix = match (t.kind, &t.builder) {
                (EngineKind::Docker, None) => "start the daemon: `sudo dockerd --bridge=none --iptables=false &` (or `systemctl start docker`), or point DOCKER_HOST at a running one; in this repository `cargo xtask devenv` sets one up",
                (EngineKind::Podman, None) => "check `podman info`; rootless podman needs XDG_RUNTIME_DIR and subuids",
                _ => "check that the builder is up and reachable: `docker --host … version`",
            };
            return (
                Check::fail(
                    format!("engine: {program} at {at} does not answer"),
                    Blame::Environment,
                )
                .detail(detail)
                .fix(fix),
                true,
            );
        }
        let c = process::run_captured(&self.command(client), table);
        let client = c
            .stdout
            .first()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "?".into());
        (
            Check::ok(format!(
                "engine: {program} {client}, daemon {version} ({at})"
            )),
            true,
        )
    }

    fn manifest_check(
        &self,
        engine: EngineKind,
        plan: Option<&Plan>,
        table: &Arc<ProcessTable>,
    ) -> Check {
        let program = engine.program();
        let mut argv = EngineTarget::local(engine).base();
        argv.extend(["manifest", "--help"].map(String::from));
        let f = process::run_captured(&self.command(argv), table);
        let text = format!("{}\n{}", f.stdout.join("\n"), f.stderr.join("\n"));
        if f.exit.success() && text.contains("create") {
            return Check::ok(format!("`{program} manifest` is available"));
        }
        let needed = plan.is_some_and(|p| {
            p.steps()
                .iter()
                .any(|s| matches!(s.kind(), StepKind::ManifestCreate | StepKind::ManifestPush))
        });
        let what = format!("`{program} manifest` is not available");
        let c = if needed {
            Check::fail(
                format!("{what}, and this build publishes lists"),
                Blame::Environment,
            )
        } else {
            Check::warn(format!("{what}; publishing builds need it"))
        };
        c.fix(match engine {
            EngineKind::Docker => "use Docker CLI 20.10 or newer (older ones: \"experimental\": \"enabled\" in ~/.docker/config.json)",
            EngineKind::Podman => "use podman 4 or newer",
        })
    }

    fn emulation_checks(&self, spec: &Spec) -> Vec<Check> {
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
        let mounted = self.binfmt_dir.join("status").exists();
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
            let state = std::fs::read_to_string(self.binfmt_dir.join(handler)).ok();
            match state {
                Some(s) if s.lines().next().is_some_and(|l| l.trim() == "enabled") => {
                    let fixed = s
                        .lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .is_some_and(|f| f.contains('F'));
                    if fixed {
                        out.push(Check::ok(format!("{what} is enabled")));
                    } else {
                        out.push(
                            Check::warn(format!("{what} is enabled without the F (fix-binary) flag"))
                                .detail("builds and containers only find the emulator if it is inside the image")
                                .fix("register it with F: Debian's qemu-user-static does (`update-binfmts --enable`), or `docker run --rm --privileged multiarch/qemu-user-static --reset -p yes`"),
                        );
                    }
                }
                Some(_) => out.push(
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
                None => {
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

    fn registry_checks(&self, plan: &Plan, checks: &mut Vec<Check>) {
        let uses = |s: &crate::plan::Step| {
            matches!(
                s.kind(),
                StepKind::Push
                    | StepKind::ManifestCreate
                    | StepKind::ManifestPush
                    | StepKind::Verify
            )
        };
        let mut hosts: Vec<String> = plan.registries().to_vec();
        let mut hub = false;
        let refs = plan
            .steps()
            .iter()
            .filter(|s| uses(s))
            .filter_map(|s| s.reference().map(str::to_string))
            .chain(
                plan.steps()
                    .iter()
                    .flat_map(|s| s.external_needs())
                    .filter_map(|e| e.reference.as_deref().map(str::to_string)),
            );
        for r in refs {
            match reference::parse(&r).ok().and_then(|r| r.domain) {
                Some(d) => {
                    if !hosts.contains(&d) {
                        hosts.push(d);
                    }
                }
                None => hub = true,
            }
        }
        hosts.sort();
        if hub {
            checks.push(
                Check::warn("registry: images go to Docker Hub (their references name no registry)")
                    .fix("set [project] registry = \"registry.example.com/team\" (or MULTIARCH_REGISTRY in the starter file)"),
            );
        }
        if hosts.is_empty() && !hub {
            checks.push(Check::ok(
                "registry: this run pushes nothing and reads nothing from a registry",
            ));
            return;
        }
        let creds = Credentials::from_env(self.env);
        for host in hosts {
            let plain_http = is_loopback_host(&host) || plan.insecure_registries.contains(&host);
            let applies = creds
                .as_ref()
                .filter(|c| c.registry.as_deref().is_none_or(|r| r == host));
            if !plain_http {
                checks.push(Check::ok(format!(
                    "registry {host}: HTTPS; not contacted by doctor (the first push checks it)"
                )));
                checks.push(self.credentials_check(&host, applies, None));
                continue;
            }
            match http_get_v2(&host, None, self.timeout) {
                Ok(200) => checks.push(Check::ok(format!("registry {host} answers http://{host}/v2/"))),
                Ok(401) => {
                    checks.push(Check::ok(format!(
                        "registry {host} answers http://{host}/v2/ (it needs a login)"
                    )));
                    let verified = applies.map(|c| http_get_v2(&host, Some((&c.user, &c.password)), self.timeout));
                    checks.push(self.credentials_check(&host, applies, Some(verified)));
                }
                Ok(code) => checks.push(
                    Check::warn(format!("registry {host}: http://{host}/v2/ answers HTTP {code}"))
                        .detail("a registry answers 200 or 401 there; is this a registry?"),
                ),
                Err(e) => checks.push(
                    Check::fail(
                        format!("registry {host} does not answer at http://{host}/v2/: {e}"),
                        Blame::Environment,
                    )
                    .fix("start it (`docker-registry serve config.yml`; in this repository `cargo xtask devenv`), or point [project] registry at one that runs"),
                ),
            }
        }
        if let Some(c) = &creds {
            if let Some(r) = &c.registry {
                if !plan.registries().contains(r) {
                    checks.push(
                        Check::warn(format!(
                            "credentials: they are for {r}, which this plan does not push to; `run` logs in only with --login"
                        ))
                        .fix("set MULTIARCH_REGISTRY_LOGIN (or CI_REGISTRY) to the registry of [project] registry"),
                    );
                }
            }
        }
    }

    /// `verified`: `None` for a registry doctor does not contact; else what /v2/
    /// answered with the configured credentials (if any apply).
    fn credentials_check(
        &self,
        host: &str,
        creds: Option<&Credentials>,
        verified: Option<Option<std::io::Result<u16>>>,
    ) -> Check {
        match (creds, verified) {
            (Some(c), Some(Some(Ok(200)))) => Check::ok(format!(
                "credentials: {} is accepted by {host}; `run` logs in with --password-stdin",
                c.user
            )),
            (Some(c), Some(Some(Ok(code)))) => Check::fail(
                format!("credentials: {host} refuses {} (HTTP {code})", c.user),
                Blame::Environment,
            )
            .fix("check MULTIARCH_REGISTRY_USER / MULTIARCH_REGISTRY_PASSWORD (or CI_REGISTRY_USER / CI_REGISTRY_PASSWORD)"),
            (Some(c), Some(Some(Err(e)))) => Check::warn(format!(
                "credentials: could not check {} at {host}: {e}",
                c.user
            )),
            (Some(c), _) => Check::ok(format!(
                "credentials: {} for {host} from the environment; `run` logs in with --password-stdin",
                c.user
            )),
            (None, verified) => match docker_config_auth(self.env, host) {
                Some(how) => Check::ok(format!("credentials: {host} is in the docker config ({how})")),
                None => {
                    let what = format!("credentials: none for {host}");
                    let fix = format!("`docker login {host}`, or set MULTIARCH_REGISTRY_USER and MULTIARCH_REGISTRY_PASSWORD (GitLab: CI_REGISTRY_USER / CI_REGISTRY_PASSWORD / CI_REGISTRY)");
                    if verified.is_some() {
                        // The registry said 401: pushes will fail.
                        Check::fail(format!("{what}, and it needs a login"), Blame::Environment).fix(fix)
                    } else {
                        Check::warn(format!("{what}; pushes fail if it needs a login")).fix(fix)
                    }
                }
            },
        }
    }
}

fn publish_check(plan: &Plan) -> Check {
    let lists: Vec<&str> = plan
        .steps()
        .iter()
        .filter(|s| s.kind() == StepKind::ManifestPush)
        .filter_map(|s| s.reference())
        .collect();
    let pushes = plan
        .steps()
        .iter()
        .filter(|s| s.kind() == StepKind::Push)
        .count();
    let images = if pushes == 0 {
        "no per-arch image is pushed".to_string()
    } else {
        format!(
            "{pushes} per-arch image{} pushed",
            if pushes == 1 { " is" } else { "s are" }
        )
    };
    if plan.publish {
        let mut c = Check::ok(format!(
            "plan: publishes {} list{} ({}); {images}",
            lists.len(),
            if lists.len() == 1 { "" } else { "s" },
            plan.publish_reason
        ));
        for l in lists {
            c = c.detail(l.to_string());
        }
        for s in plan.skipped() {
            if matches!(s.kind(), StepKind::ManifestCreate) {
                c = c.detail(format!("left out: {} ({})", s.id, s.reason));
            }
        }
        c
    } else {
        Check::ok(format!(
            "plan: no lists, this build does not publish ({}); {images}",
            plan.publish_reason
        ))
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// `GET http://HOST/v2/` over a plain TCP stream: the status code. Only called
/// for loopback and configured insecure registries.
fn http_get_v2(host: &str, auth: Option<(&str, &str)>, timeout: Duration) -> std::io::Result<u16> {
    let addr_text = if host.starts_with('[') {
        if host.contains("]:") {
            host.to_string()
        } else {
            format!("{host}:80")
        }
    } else if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = addr_text
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!("GET /v2/ HTTP/1.0\r\nHost: {host}\r\nUser-Agent: multiarch-doctor\r\n");
    if let Some((u, p)) = auth {
        req.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{u}:{p}").as_bytes())
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    // The status line is all that is needed.
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                o.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

/// Whether docker's config holds credentials for `host`, and how.
fn docker_config_auth(env: &Environment, host: &str) -> Option<String> {
    let dir = match env.non_empty("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env.non_empty("HOME")?).join(".docker"),
    };
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let bare = |k: &str| {
        k.trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    if let Some(helper) = v
        .get("credHelpers")
        .and_then(|h| h.get(host))
        .and_then(|h| h.as_str())
    {
        return Some(format!("credential helper `{helper}`"));
    }
    if v.get("auths")
        .and_then(|a| a.as_object())
        .is_some_and(|a| a.keys().any(|k| bare(k) == host))
    {
        return Some("`docker login`".to_string());
    }
    v.get("credsStore")
        .and_then(|s| s.as_str())
        .map(|s| format!("maybe: the credentials store `{s}` is not looked into"))
}

/// Rootful podman asks for RLIMIT_NOFILE=1048576, which fails where the hard
/// limit is lower and root lacks CAP_SYS_RESOURCE (containers, sandboxes).
/// multiarch works around it for its own runs; a user's `podman run` would not.
fn podman_rlimit_check() -> Check {
    match crate::engine::podman::rlimit_problem() {
        None => Check::ok("podman: containers' default rlimits can be set here"),
        Some(why) => Check::ok(
            "podman: multiarch runs podman with `[containers] default_ulimits = []` (CONTAINERS_CONF) so containers inherit this machine's limits",
        )
        .detail(why)
        .fix("for your own `podman run`: put `default_ulimits = []` under [containers] in /etc/containers/containers.conf, or pass `--ulimit nofile=20000:20000`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pa55"), "dXNlcjpwYTU1");
    }
}
