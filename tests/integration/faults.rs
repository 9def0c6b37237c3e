//! Fault injection with the real engine and registry (issue "Reliability and
//! security"): registry down, flaky, back up; 401s; a failing arch with
//! `atomic`; signals mid-push; secrets. Run by `cargo xtask ci`.

use crate::support::{code, text};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{
    engine_lock, processes_with, spawn_until, unauthorized_registry, wait_until, FlakyProxy,
    Project, Registry, SHA,
};

/// One image (the busybox base) for amd64 and arm64v8, pushed to `${REG}/acme`.
const ONE: &str = r#"
[project]
registry = "${REG}/acme"
[archs]
default = ["amd64", "arm64v8"]
[[image]]
name = "busybox"
context = "busybox"
verify = { command = ["uname", "-m"] }
"#;

fn run_with_reg(p: &Project, reg: &str, args: &[&str]) -> std::process::Output {
    let out = p.command(args).env("REG", reg).output().unwrap();
    eprintln!("--- multiarch {}\n{}", args.join(" "), text(&out));
    out
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn registry_down_before_push_retries_then_fails_without_a_list() {
    let _g = engine_lock();
    let mut reg = Registry::start();
    reg.stop();
    let p = Project::new();
    p.file("multiarch.toml", ONE);
    let out = run_with_reg(
        &p,
        &reg.addr,
        &["run", "--branch", "main", "--sha", SHA, "--retries", "2"],
    );
    let t = text(&out);
    assert_eq!(code(&out), 1, "{t}");
    assert!(
        t.contains("retry 1/2") && t.contains("retry 2/2"),
        "each retry is reported:\n{t}"
    );
    assert!(t.contains("push:busybox/amd64 — push failed"), "{t}");
    assert!(!t.contains("[manifest-push:busybox:latest] ok"), "{t}");
    reg.restart();
    assert_eq!(reg.manifest("acme/busybox", "latest").0, 404, "no list");
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn registry_back_up_during_the_retries_lets_the_run_succeed() {
    let _g = engine_lock();
    let mut reg = Registry::start();
    reg.stop();
    let p = Project::new();
    p.file("multiarch.toml", ONE);
    let mut cmd = p.command(&[
        "run",
        "--branch",
        "main",
        "--sha",
        SHA,
        "--retries",
        "6",
        "-j",
        "1",
    ]);
    cmd.env("REG", &reg.addr);
    let (mut child, _) = spawn_until(cmd, "retry 1/6", Duration::from_secs(240));
    reg.restart();
    let mut status = None;
    wait_until(Duration::from_secs(300), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    })
    .expect("the run ends");
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert_eq!(
        reg.list_platforms("acme/busybox", "latest"),
        vec!["linux/amd64", "linux/arm64/v8"]
    );
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_flaky_registry_that_resets_connections_is_retried_through() {
    let _g = engine_lock();
    let reg = Registry::start();
    let proxy = FlakyProxy::start(&reg.addr, 4);
    let p = Project::new();
    p.file("multiarch.toml", ONE);
    let out = run_with_reg(
        &p,
        &proxy.addr,
        &["run", "--branch", "main", "--sha", SHA, "--retries", "5"],
    );
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    assert!(
        proxy.accepted.load(Ordering::SeqCst) > 4,
        "the proxy was used"
    );
    assert!(
        t.to_lowercase().contains("retry") || t.contains("Retrying"),
        "the log shows the retries:\n{t}"
    );
    assert_eq!(
        reg.list_platforms("acme/busybox", "latest"),
        vec!["linux/amd64", "linux/arm64/v8"]
    );
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_registry_answering_401_gets_no_retry_storm_and_a_clear_message() {
    let _g = engine_lock();
    let (addr, hits) = unauthorized_registry();
    let p = Project::new();
    p.file("multiarch.toml", ONE);
    let out = run_with_reg(
        &p,
        &addr,
        &["run", "--branch", "main", "--sha", SHA, "--retries", "5"],
    );
    let t = text(&out);
    assert_eq!(code(&out), 1, "{t}");
    assert!(
        !t.contains("multiarch: transient failure"),
        "a 401 is not retried:\n{t}"
    );
    assert!(t.contains("push failed"), "{t}");
    let lower = t.to_lowercase();
    assert!(
        lower.contains("unauthorized")
            || lower.contains("authentication required")
            || lower.contains("no basic auth credentials"),
        "{t}"
    );
    assert!(
        hits.load(Ordering::SeqCst) < 30,
        "requests to the registry: {}",
        hits.load(Ordering::SeqCst)
    );
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn with_atomic_one_failing_arch_means_no_list_at_all() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = Project::new();
    p.file(
        "multiarch.toml",
        &format!("{ONE}\n[publish]\natomic = true\n[[image]]\nname = \"picky\"\ncontext = \"picky\"\ndepends_on = [\"busybox\"]\nargs = {{ BASE = \"{{image.busybox}}\" }}\n"),
    )
    .file("picky/Dockerfile", "ARG BASE\nFROM ${BASE}\nRUN test \"$(uname -m)\" != aarch64\n");
    let out = run_with_reg(&p, &reg.addr, &["run", "--branch", "main", "--sha", SHA]);
    let t = text(&out);
    assert_eq!(code(&out), 1, "{t}");
    assert!(t.contains("atomic"), "{t}");
    assert_eq!(
        reg.manifest("acme/busybox", "latest").0,
        404,
        "atomic: not even the good image's list"
    );
    assert_eq!(reg.manifest("acme/busybox", SHA).0, 404);
    assert_eq!(reg.manifest("acme/picky", "latest").0, 404);
    assert_eq!(
        reg.manifest("acme/busybox/arm64v8", SHA).0,
        200,
        "per-arch images are still pushed"
    );
}

/// A listener that accepts and never answers: a push to it hangs.
pub(crate) fn black_hole() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    addr
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn sigterm_during_a_push_ends_everything_and_a_rerun_finishes() {
    let _g = engine_lock();
    let hole = black_hole();
    let p = Project::new();
    p.file("multiarch.toml", ONE);
    let mut cmd = p.command(&["run", "--branch", "main", "--sha", SHA]);
    cmd.env("REG", &hole);
    let (mut child, _) = spawn_until(
        cmd,
        "[push:busybox/amd64] started",
        Duration::from_secs(240),
    );
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let mut status = None;
    wait_until(Duration::from_secs(60), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    })
    .expect("multiarch ends within a minute of SIGTERM");
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    let left = processes_with(&hole);
    assert!(
        left.is_empty(),
        "processes of the run left behind: {left:#?}"
    );

    // The same command against a registry that works finishes the job.
    let reg = Registry::start();
    let out = run_with_reg(
        &p,
        &reg.addr,
        &["run", "--branch", "main", "--sha", SHA, "--skip-existing"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        reg.list_platforms("acme/busybox", "latest"),
        vec!["linux/amd64", "linux/arm64/v8"]
    );
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_secret_never_appears_in_any_argv_or_output() {
    let _g = engine_lock();
    let reg = Registry::start();
    let secret = "Zq9-multiarch-test-secret-7Hd";
    let p = Project::new();
    // The build prints the secret (a careless Dockerfile): the output must be masked.
    p.file("multiarch.toml", &format!("{ONE}\n[[image]]\nname = \"leaky\"\ncontext = \"leaky\"\ndepends_on = [\"busybox\"]\nargs = {{ BASE = \"{{image.busybox}}\" }}\n"))
        .file("leaky/Dockerfile", &format!("ARG BASE\nFROM ${{BASE}}\nRUN echo 'token is {secret}'\n"));
    // A wrapper engine that records every argv, then runs the real docker.
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v docker"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = p.path().join("bin");
    let log = p.path().join("argv.log");
    p.file("bin/docker", &format!("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{}'; done\nexec '{}' \"$@\"\n", log.display(), real.trim()));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("docker"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = p
        .command(&["run", "--login", "--branch", "main", "--sha", SHA])
        .env("REG", &reg.addr)
        .env("PATH", &path)
        .env("MULTIARCH_REGISTRY_USER", "tester")
        .env("MULTIARCH_REGISTRY_PASSWORD", secret)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(code(&out), 0, "{t}");
    let argv = std::fs::read_to_string(&log).unwrap();
    assert!(
        argv.contains("--password-stdin"),
        "docker login was called:\n{argv}"
    );
    assert!(argv.contains("build"), "the wrapper saw the run");
    assert_eq!(argv.matches(secret).count(), 0, "the secret is in an argv");
    assert_eq!(
        t.matches(secret).count(),
        0,
        "the secret is in the output:\n{t}"
    );
    assert!(
        t.contains("token is ••••••"),
        "the build's line is masked, not dropped:\n{t}"
    );
    // Nor in the plan.
    let plan = p
        .command(&["plan", "--format", "json", "--branch", "main", "--sha", SHA])
        .env("REG", &reg.addr)
        .env("MULTIARCH_REGISTRY_PASSWORD", secret)
        .output()
        .unwrap();
    assert_eq!(text(&plan).matches(secret).count(), 0);
    let _ = std::process::Command::new(real.trim())
        .args(["logout", &reg.addr])
        .output();
}
