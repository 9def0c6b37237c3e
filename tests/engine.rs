//! Engine tests: a real dockerd, a real registry on a free loopback port, real
//! qemu. `cargo xtask ci` prepares all three and runs these with
//! `--include-ignored`; a plain `cargo test` without an engine leaves them ignored.

mod support;

use std::time::Duration;

use support::{engine_lock, processes_with, spawn_until, wait_until, Project, Registry, SHA};

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

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
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
    let run = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--pull",
            "always",
            "--platform",
            "linux/arm/v7",
            &list,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "armv7l",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
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
