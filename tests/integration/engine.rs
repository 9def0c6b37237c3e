//! Engine tests: a real dockerd, a real registry on a free loopback port, real
//! qemu. `cargo xtask ci` prepares all three and runs these with
//! `--include-ignored`; a plain `cargo test` without an engine leaves them ignored.

use crate::support;
use crate::support::code;

use std::time::Duration;

use crate::support::{
    engine_lock, processes_with, spawn_until, wait_until, Project, Registry, SHA,
};

const NEEDS_ENGINE: &str =
    "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`";

const SPEC: &str = r#"
[project]
registry = "${REG}/acme"

[archs]
default = ["amd64", "arm32v7", "arm64v8"]

[[image]]
name = "busybox"
context = "busybox"
verify = { command = ["uname", "-m"] }

[[image]]
name = "hello"
context = "hello"
depends_on = ["busybox"]
args = { BASE = "{image.busybox}" }
"#;

const HELLO: &str = "ARG BASE\nFROM ${BASE}\nCMD [\"uname\", \"-m\"]\n";

fn article_project() -> Project {
    let p = Project::new();
    p.file("multiarch.toml", SPEC)
        .file("hello/Dockerfile", HELLO);
    p
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn the_article_pipeline_publishes_a_list_of_exactly_its_platforms() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = article_project();
    let out = p.run(&reg, &["run", "--branch", "main", "--sha", SHA]);
    assert_eq!(code(&out), 0, "{}", NEEDS_ENGINE);
    let want = vec!["linux/amd64", "linux/arm/v7", "linux/arm64/v8"];
    assert_eq!(reg.list_platforms("acme/hello", "latest"), want);
    assert_eq!(reg.list_platforms("acme/hello", SHA), want);
    assert_eq!(reg.list_platforms("acme/busybox", "latest"), want);
    // What a user pulling the list on a Pi gets.
    let list = format!("{}/acme/hello:latest", reg.addr);
    assert_eq!(pull_and_run(&list, "linux/arm/v7"), "armv7l");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("published:"), "{summary}");
    assert!(summary.contains(&format!("{list}@sha256:")), "{summary}");

    // A rerun on the same sha succeeds (the local manifest cache of the first run
    // is replaced, not an error) and publishes the same platforms.
    let again = p.run(&reg, &["run", "--branch", "main", "--sha", SHA]);
    assert_eq!(code(&again), 0);
    assert_eq!(reg.list_platforms("acme/hello", "latest"), want);
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_feature_branch_pushes_per_arch_images_and_no_list() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = article_project();
    let out = p.run(&reg, &["run", "--branch", "feature/login", "--sha", SHA]);
    assert_eq!(code(&out), 0);
    for a in ["amd64", "arm32v7", "arm64v8"] {
        assert_eq!(
            reg.manifest(&format!("acme/hello/{a}"), SHA).0,
            200,
            "per-arch image {a} is pushed"
        );
    }
    assert_eq!(
        reg.manifest("acme/hello", SHA).0,
        404,
        "no list on a feature branch"
    );
    assert_eq!(reg.manifest("acme/hello", "latest").0, 404);
    assert_eq!(reg.manifest("acme/hello", "feature-login").0, 404);
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn an_arch_that_fails_to_build_blocks_its_list_but_not_the_other_arches() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = article_project();
    p.file(
        "multiarch.toml",
        &format!("{SPEC}\n[[image]]\nname = \"picky\"\ncontext = \"picky\"\ndepends_on = [\"busybox\"]\nargs = {{ BASE = \"{{image.busybox}}\" }}\n"),
    )
    .file("picky/Dockerfile", "ARG BASE\nFROM ${BASE}\nRUN test \"$(uname -m)\" != aarch64\nCMD [\"uname\", \"-m\"]\n");
    let out = p.run(&reg, &["run", "--branch", "main", "--sha", SHA]);
    assert_eq!(code(&out), 1, "a failed step exits 1");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("build:picky/arm64v8 — build failed"),
        "{summary}"
    );
    assert_eq!(reg.manifest("acme/picky", SHA).0, 404, "no partial list");
    assert_eq!(reg.manifest("acme/picky", "latest").0, 404);
    assert_eq!(reg.manifest("acme/picky/amd64", SHA).0, 200);
    assert_eq!(reg.manifest("acme/picky/arm32v7", SHA).0, 200);
    assert_eq!(reg.manifest("acme/picky/arm64v8", SHA).0, 404);
    // The other images are unaffected (keep-going).
    assert_eq!(reg.list_platforms("acme/hello", "latest").len(), 3);
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn sigint_mid_build_ends_every_process_of_the_run_and_exits_130() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = Project::new();
    p.file(
        "multiarch.toml",
        "[project]\nregistry = \"${REG}/acme\"\n[archs]\ndefault = [\"amd64\", \"arm64v8\"]\n[[image]]\nname = \"busybox\"\ncontext = \"busybox\"\n[[image]]\nname = \"slow\"\ncontext = \"slow\"\ndepends_on = [\"busybox\"]\nargs = { BASE = \"{image.busybox}\" }\n",
    )
    .file("slow/Dockerfile", "ARG BASE\nFROM ${BASE}\nRUN echo sleeping && sleep 120\n");
    let mut cmd = p.command(&["run", "--branch", "main", "--sha", SHA, "-j", "2"]);
    cmd.env("REG", &reg.addr);
    let (mut child, _seen) = spawn_until(cmd, "] sleeping", Duration::from_secs(180));
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut status = None;
    wait_until(Duration::from_secs(60), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    })
    .expect("multiarch ends within a minute of SIGINT");
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    // Every command of the run names the registry's port: none may be left.
    let left = processes_with(&reg.addr);
    assert!(
        left.is_empty(),
        "processes of the run left behind: {left:#?}"
    );
    assert_eq!(
        reg.manifest("acme/slow", SHA).0,
        404,
        "no list after an interrupted run"
    );
}

#[test]
fn an_unreachable_engine_exits_3_before_any_step() {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", SPEC)
        .file("hello/Dockerfile", HELLO)
        .file("busybox/Dockerfile", "FROM scratch\n");
    let out = p
        .command(&["run", "--branch", "main", "--sha", SHA])
        .env("REG", "127.0.0.1:1")
        .env("DOCKER_HOST", "unix:///nonexistent/multiarch-test.sock")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3, "{err}");
    assert!(err.contains("does not answer"), "{err}");
    assert!(err.contains("help:"), "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("[build:"),
        "no step ran"
    );
}

#[test]
fn dry_run_needs_no_engine() {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", SPEC)
        .file("hello/Dockerfile", HELLO)
        .file("busybox/Dockerfile", "FROM scratch\n");
    let out = p
        .command(&["run", "--dry-run", "--branch", "main", "--sha", SHA])
        .env("REG", "127.0.0.1:1")
        .env("DOCKER_HOST", "unix:///nonexistent/multiarch-test.sock")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("docker build --build-arg ARCH=arm64v8 --platform linux/arm64/v8"),
        "{text}"
    );
    assert!(text.contains("dry run"), "{text}");
}

/// A registry named by host and port alone, one Dockerfile per arch, and the
/// Makefile convention for per-arch tags: `{repo}:{version}_{platform_tag}` with
/// lists `{version}` and `{major}.{minor}`, on the git tag v1.4.2.
const PER_ARCH_SPEC: &str = r#"
[project]
registry = "${REG}"

[archs]
default = ["amd64", "arm32v7", "arm64v8"]

[tags]
arch = "{repo}:{version}_{platform_tag}"
manifest = ["{version}", "{major}.{minor}"]

[publish]
tags = ["v*"]

[[image]]
name = "busybox"
context = "busybox"

[[image]]
name = "pi"
context = "pi"
dockerfile = "Dockerfile.{arch}"
depends_on = ["busybox"]
args = { BASE = "{image.busybox}" }

[image.per_arch.arm32v7]
dockerfile = "Dockerfile.armhf"
"#;

fn per_arch_dockerfile(name: &str) -> String {
    format!(
        "ARG BASE\nFROM ${{BASE}}\nLABEL built-from={name}\nRUN echo {name} > /built-from\nCMD [\"cat\", \"/built-from\"]\n"
    )
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_registry_without_a_path_publishes_per_arch_dockerfiles_under_makefile_tags() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = Project::new();
    p.file("multiarch.toml", PER_ARCH_SPEC);
    for f in ["Dockerfile.amd64", "Dockerfile.arm64v8", "Dockerfile.armhf"] {
        p.file(&format!("pi/{f}"), &per_arch_dockerfile(f));
    }
    let out = p.run(&reg, &["run", "--git-tag", "v1.4.2", "--sha", SHA]);
    assert_eq!(code(&out), 0, "{}", NEEDS_ENGINE);
    // What the registry serves, over HTTP: the repositories sit at its root.
    let want = vec!["linux/amd64", "linux/arm/v7", "linux/arm64/v8"];
    assert_eq!(reg.list_platforms("pi", "1.4.2"), want);
    assert_eq!(reg.list_platforms("pi", "1.4"), want);
    assert_eq!(reg.list_platforms("busybox", "1.4"), want);
    for tag in [
        "1.4.2_linux_amd64",
        "1.4.2_linux_arm_v7",
        "1.4.2_linux_arm64",
    ] {
        assert_eq!(reg.manifest("pi", tag).0, 200, "per-arch tag {tag}");
    }
    assert_eq!(reg.manifest("pi", "latest").0, 404, "only the listed tags");
    // The list's entries are those per-arch images.
    let (_, index) = reg.manifest("pi", "1.4.2");
    let (_, arm) = reg.manifest("pi", "1.4.2_linux_arm_v7");
    let arm_digest = format!("sha256:{}", sha256_hex(arm.as_bytes()));
    assert!(index.contains(&arm_digest), "{index}");
    // Each arch was built from its own file: what only that file writes.
    for (platform, file) in [
        ("linux/arm/v7", "Dockerfile.armhf"),
        ("linux/arm64", "Dockerfile.arm64v8"),
        ("linux/amd64", "Dockerfile.amd64"),
    ] {
        let list = format!("{}/pi:1.4", reg.addr);
        assert_eq!(pull_and_run(&list, platform), file, "{platform}");
    }
}

/// What a user pulling `list` for `platform` gets: the trimmed stdout of its
/// default command.
fn pull_and_run(list: &str, platform: &str) -> String {
    let run = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--pull",
            "always",
            "--platform",
            platform,
            list,
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{list} on {platform}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).trim().to_string()
}

/// SHA-256 of a manifest body, as the registry names it (`sha256sum`: the tests
/// have no hashing crate).
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn images_with_an_entrypoint_or_without_uname_pass_the_default_check() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = support::entrypoint_project("");
    let events = p.path().join("events.jsonl");
    let out = p.run(
        &reg,
        &[
            "run",
            "--branch",
            "main",
            "--sha",
            SHA,
            "--events",
            events.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", NEEDS_ENGINE);
    support::assert_entrypoint_run(
        &reg,
        &events,
        &[
            "test:server/arm64v8",
            "verify:server/arm64v8",
            "test:selftest/arm64v8",
            "verify:selftest/amd64",
        ],
        &[
            ("test:scratch/amd64", "linux/amd64"),
            ("test:scratch/arm64v8", "linux/arm64/v8"),
            ("verify:scratch/arm64v8", "linux/arm64/v8"),
        ],
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    // (BuildKit writes arm64 without its default variant.)
    assert!(
        summary.contains("platform checked from config: linux/arm64"),
        "{summary}"
    );
    // The image's own entrypoint still refuses what the check would have passed it.
    let server = format!("{}/acme/server:latest", reg.addr);
    let direct = std::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", &server, "uname", "-m"])
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(64));
}
