//! Docker: its builders (classic `DOCKER_BUILDKIT=0 docker build`, BuildKit
//! `DOCKER_BUILDKIT=1 docker build`, `docker buildx build --load`). Lists are
//! not docker's: they are made over the registry's API (exec/runner/list.rs).

use super::argv::{self, BuildArgs, EngineTarget};
use super::{find_digest, image_inspect, Engine, EngineCli};
use crate::spec::{BuildMode, EngineKind};

#[derive(Debug, Clone, Copy, Default)]
pub struct Docker;

impl Engine for Docker {
    fn cli(&self) -> EngineCli {
        EngineCli {
            kind: EngineKind::Docker,
            program: "docker",
            host_flag: "--host",
            context_flag: "--context",
        }
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

    /// The classic builder's flags; with BuildKit also `--progress plain` (line
    /// by line, for the live view), inline cache metadata in a pushed image, and
    /// buildx's `--load` (its result goes into the local image store, to be
    /// tested and pushed as the classic builder's is).
    fn build(&self, t: &EngineTarget, a: &BuildArgs) -> Vec<String> {
        let base = t.base();
        let at = base.len();
        let mut v = argv::build_flags(base, a);
        if a.mode == BuildMode::Classic {
            return v;
        }
        let mut extra: Vec<String> = Vec::new();
        if a.mode == BuildMode::Buildx {
            extra.push("--load".into());
        }
        extra.extend(["--progress", "plain"].map(String::from));
        if a.inline_cache {
            extra.extend(["--build-arg", "BUILDKIT_INLINE_CACHE=1"].map(String::from));
        }
        v.splice(at + 1..at + 1, extra);
        if a.mode == BuildMode::Buildx {
            v.insert(at, "buildx".into());
        }
        v
    }

    fn build_env(&self, a: &BuildArgs) -> Vec<(String, String)> {
        match a.mode {
            BuildMode::BuildKit => vec![("DOCKER_BUILDKIT".into(), "1".into())],
            _ => Vec::new(),
        }
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
        let mut v: Vec<String> = ["docker", "run", "--rm", "--privileged", "--network", "none"]
            .map(String::from)
            .to_vec();
        v.extend(argv::container_labels());
        v.extend(["multiarch/qemu-user-static", "--reset", "-p", "yes"].map(String::from));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn args(mode: BuildMode) -> BuildArgs {
        BuildArgs {
            cache_from: vec!["reg/app:latest".into()],
            mode,
            inline_cache: true,
            ..BuildArgs::example("arm32v7", "linux/arm/v7", "reg/app/arm32v7:1", "/tmp/x/npm")
        }
    }

    #[test]
    fn each_builder_has_its_argv_and_environment() {
        let t = EngineTarget::local(EngineKind::Docker);
        let classic = Docker.build(&t, &args(BuildMode::Classic));
        assert_eq!(classic[..3], s(&["docker", "build", "--build-arg"]));
        assert!(!classic.contains(&"--progress".to_string()));
        assert!(Docker.build_env(&args(BuildMode::Classic)).is_empty());
        let bk = Docker.build(&t, &args(BuildMode::BuildKit));
        assert_eq!(
            bk[..6],
            s(&[
                "docker",
                "build",
                "--progress",
                "plain",
                "--build-arg",
                "BUILDKIT_INLINE_CACHE=1"
            ])
        );
        let tail = bk
            .iter()
            .skip_while(|a| *a != "--cache-from")
            .take(4)
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(
            tail,
            s(&[
                "--cache-from",
                "reg/app:latest",
                "--secret",
                "id=npm,src=/tmp/x/npm"
            ])
        );
        assert_eq!(
            Docker.build_env(&args(BuildMode::BuildKit)),
            vec![("DOCKER_BUILDKIT".to_string(), "1".to_string())]
        );
        let bx = Docker.build(&t, &args(BuildMode::Buildx));
        assert_eq!(
            bx[..6],
            s(&["docker", "buildx", "build", "--load", "--progress", "plain"])
        );
        let mut pulled = args(BuildMode::BuildKit);
        pulled.no_cache = true;
        assert_eq!(
            Docker.build(&t, &pulled)[..4],
            s(&["docker", "build", "--progress", "plain"])
        );
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
