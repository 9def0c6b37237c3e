//! Docker: the classic builder (`DOCKER_BUILDKIT=0`). Lists are not docker's:
//! they are made over the registry's API (exec/runner/list.rs).

use super::argv::EngineTarget;
use super::{find_digest, image_inspect, Engine};
use crate::spec::EngineKind;

#[derive(Debug, Clone, Copy, Default)]
pub struct Docker;

impl Engine for Docker {
    fn kind(&self) -> EngineKind {
        EngineKind::Docker
    }

    fn program(&self) -> &'static str {
        "docker"
    }

    fn host_flag(&self) -> &'static str {
        "--host"
    }

    fn context_flag(&self) -> &'static str {
        "--context"
    }

    fn env(&self) -> Vec<(String, String)> {
        // BuildKit without the buildx plugin fails every build; the CLI's hints are
        // noise in step output. dockerd treats loopback registries as plain HTTP
        // by itself; other insecure registries are the daemon's configuration, and
        // `docker manifest` gets `--insecure` per command: no other preparation.
        vec![
            ("DOCKER_BUILDKIT".into(), "0".into()),
            ("DOCKER_CLI_HINTS".into(), "false".into()),
        ]
    }

    fn inspect_platform(&self, t: &EngineTarget, reference: &str) -> Vec<String> {
        image_inspect(t, "{{.Os}}/{{.Architecture}}/{{.Variant}}", reference)
    }

    /// `docker push REF`: the digest is in its output.
    fn push(&self, t: &EngineTarget, reference: &str, _digest_file: &str) -> Vec<String> {
        let mut v = t.base();
        v.push("push".into());
        v.push(reference.to_string());
        v
    }

    fn pushed_digest(&self, output: &[String], _digest_file: Option<&str>) -> Option<String> {
        output.iter().rev().find_map(|l| find_digest(l))
    }

    /// The article's `docker run --privileged multiarch/qemu-user-static`.
    fn qemu_register(&self) -> Vec<String> {
        [
            "docker",
            "run",
            "--rm",
            "--privileged",
            "--network",
            "none",
            "multiarch/qemu-user-static",
            "--reset",
            "-p",
            "yes",
        ]
        .map(String::from)
        .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn digests_come_from_the_output() {
        let out = s(&["latest: digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef size: 527"]);
        assert_eq!(
            Docker.pushed_digest(&out, None).as_deref(),
            Some("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        );
    }
}
