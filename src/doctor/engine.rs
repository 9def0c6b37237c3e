//! The checks of the engine: it is installed and answers (through the probes of
//! [`crate::engine::Engine`]), it has `manifest`, podman's rlimits.

use std::sync::Arc;

use super::{Blame, Check, Doctor, ENGINE_VARS};
use crate::context::DockerCli;
use crate::engine::EngineTarget;
use crate::exec::process::{self, Command, Exit, Output, ProcessTable};
use crate::spec::{Builder, BuilderSetting, EngineKind};

impl Doctor<'_> {
    /// The docker builder a run would use, and why; what to install when `auto`
    /// falls back to the classic builder (a warning) or `buildkit` cannot be had.
    pub(super) fn builder_check(&self, setting: BuilderSetting) -> Check {
        let alternatives: Vec<&str> = self
            .docker_alternatives
            .iter()
            .map(String::as_str)
            .collect();
        match DockerCli::resolve(None, setting, true, self.env, &alternatives) {
            Ok(c) => {
                let what = format!("builder: {}: {}", c.mode.describe(), c.why);
                match c.note {
                    None => Check::ok(what),
                    Some(fallback) => {
                        Check::warn(what)
                            .detail("no cross-compiling FROM --platform=$BUILDPLATFORM stages, build secrets or registry cache")
                            .fix(fallback.fix())
                    }
                }
            }
            Err(e) => Check::fail(format!("builder: {e}"), Blame::Environment)
                .fix("install the buildx plugin, set MULTIARCH_DOCKER to a CLI with BuildKit, or use builder = \"classic\""),
        }
    }

    pub(super) fn command(&self, argv: Vec<String>) -> Command {
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
    pub(super) fn engine_check(
        &self,
        t: &EngineTarget,
        table: &Arc<ProcessTable>,
    ) -> (Check, bool) {
        let program = t.kind.program();
        let server = t.engine().probe_server(t);
        let client = t.engine().probe_client(t);
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
        let f = process::spawn(&self.command(server), table, Output::Captured);
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
            let detail = f.first_line().trim().to_string();
            let fix = match (t.kind, &t.builder) {
                (EngineKind::Docker, None) => "start the daemon (`sudo systemctl start docker`, or `sudo dockerd &` without systemd), or point DOCKER_HOST at a running one; in multiarch's own repository `cargo xtask devenv` sets one up",
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
        let c = process::spawn(&self.command(client), table, Output::Captured);
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
}

/// Rootful podman asks for RLIMIT_NOFILE=1048576, which fails where the hard
/// limit is lower and root lacks CAP_SYS_RESOURCE (containers, sandboxes).
/// multiarch works around it for its own runs; a user's `podman run` would not.
pub(super) fn podman_rlimit_check() -> Check {
    match crate::exec::session::rlimit_problem() {
        None => Check::ok("podman: containers' default rlimits can be set here"),
        Some(why) => Check::ok(
            "podman: multiarch runs podman with `[containers] default_ulimits = []` (CONTAINERS_CONF) so containers inherit this machine's limits",
        )
        .detail(why)
        .fix("for your own `podman run`: put `default_ulimits = []` under [containers] in /etc/containers/containers.conf, or pass `--ulimit nofile=20000:20000`"),
    }
}
