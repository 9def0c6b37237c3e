//! BuildKit with the real engine (issue 14): a cross-compiling image whose
//! foreign entries were built natively, a build secret that reaches the build and
//! nothing else, a rebuild on an empty cache that reuses the registry's layers.
//! These always build with BuildKit (`MULTIARCH_TEST_DOCKER`, else the CLI the
//! library's own detection finds); the other engine tests run once per builder.
//! Run by `cargo xtask ci`.

use crate::support::text;
use std::process::{Command, Output};

use multiarch::context::{DockerCli, ALTERNATIVE_DOCKERS};
use multiarch::spec::{BuildMode, BuilderSetting};
use multiarch::Environment;

use crate::support::{engine_lock, Project, Registry, SHA};

/// The docker CLI that builds with BuildKit here.
fn buildkit_docker() -> String {
    if let Ok(d) = std::env::var("MULTIARCH_TEST_DOCKER") {
        return d;
    }
    let cli = DockerCli::detect(&Environment::from_process(), ALTERNATIVE_DOCKERS);
    match cli.choose(BuilderSetting::Auto) {
        Ok(c) if c.mode != BuildMode::Classic => cli.program,
        _ => cli
            .alternative()
            .map(|(path, _)| path)
            .expect("no docker CLI with BuildKit: install docker.io (its /usr/bin/docker has it built in) or buildx"),
    }
}

fn cross_example() -> String {
    std::fs::read_to_string(crate::support::workspace().join("examples/cross/Dockerfile")).unwrap()
}

fn buildkit(p: &Project, reg: &Registry, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = p.command(args);
    c.env("REG", &reg.addr)
        .env("MULTIARCH_BUILDER", "buildkit")
        .env("MULTIARCH_DOCKER", buildkit_docker());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    eprintln!("--- multiarch {}\n{}", args.join(" "), text(&out));
    out
}

/// `multiarch run` of a publishing build on main with BuildKit, its plain
/// progress shown (`-v`).
fn publish(p: &Project, reg: &Registry, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec![
        "run",
        "--branch",
        "main",
        "--sha",
        SHA,
        "--progress",
        "plain",
        "-v",
    ];
    args.extend(extra);
    buildkit(p, reg, &args, env)
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn run_in(reference: &str, platform: &str, cmd: &[&str]) -> String {
    let mut args = vec![
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        platform,
        reference,
    ];
    args.extend(cmd);
    let out = docker(&args);
    assert!(
        out.status.success(),
        "{reference} on {platform}: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const SPEC: &str = r#"
[project]
registry = "${REG}/acme"
[archs]
default = ["amd64", "arm32v7", "arm64v8"]
[[image]]
name = "busybox"
context = "busybox"
verify = { command = ["uname", "-m"] }
"#;

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_cross_compiled_image_is_built_natively_for_every_arch_and_runs_as_each() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = Project::new();
    p.file(
        "multiarch.toml",
        &format!("{SPEC}\n[[image]]\nname = \"cross\"\ndockerfile = \"cross/Dockerfile\"\ndepends_on = [\"busybox\"]\nargs = {{ BASE = \"{{image.busybox}}\" }}\n"),
    )
    // The repository's own example: its build stage is a static busybox of the
    // build machine's arch, from busybox/rootfs as here.
    .file("cross/Dockerfile", &cross_example());
    let out = publish(&p, &reg, &[], &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        !all.contains("legacy builder"),
        "no legacy-builder notice in a BuildKit run"
    );
    assert!(!all.contains("DEPRECATED"), "{all}");
    assert!(
        all.contains("[build 1/1] RUN"),
        "BuildKit's plain progress: {all}"
    );
    for (arch, platform, target) in [
        ("amd64", "linux/amd64", "amd64"),
        ("arm32v7", "linux/arm/v7", "arm/v7"),
        ("arm64v8", "linux/arm64/v8", "arm64"),
    ] {
        let r = format!("{}/acme/cross/{arch}:{SHA}", reg.addr);
        assert_eq!(
            run_in(&r, platform, &[]),
            format!("cross-compiled for {target} on x86_64"),
            "{arch}: the build stage ran natively"
        );
        let uname = run_in(&r, platform, &["uname", "-m"]);
        let want = match arch {
            "amd64" => "x86_64",
            "arm32v7" => "armv7l",
            _ => "aarch64",
        };
        assert_eq!(uname, want, "{arch} runs as its arch");
    }
    assert_eq!(
        reg.list_platforms("acme/cross", "latest"),
        ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"]
    );
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_build_secret_reaches_the_build_and_nothing_else() {
    const SECRET: &str = "s3cr3t-npm-tok-6a0d2e91";
    let _g = engine_lock();
    let reg = Registry::start();
    let p = Project::new();
    p.file(
        "multiarch.toml",
        &format!("{}\n[[image]]\nname = \"app\"\ncontext = \"app\"\ndepends_on = [\"busybox\"]\nargs = {{ BASE = \"{{image.busybox}}\" }}\nsecrets = {{ tok = {{ env = \"NPM_TOKEN\" }} }}\n", SPEC.replace("\"arm32v7\", ", "")),
    )
    .file(
        "app/Dockerfile",
        "ARG BASE\nFROM ${BASE}\nRUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /tok.sha\nCMD [\"cat\", \"/tok.sha\"]\n",
    );
    let events = p.path().join("events.jsonl");
    let junit = p.path().join("junit.xml");
    let (ev, ju) = (events.display().to_string(), junit.display().to_string());
    let out = publish(
        &p,
        &reg,
        &["--events", &ev, "--junit", &ju],
        &[("NPM_TOKEN", SECRET)],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let want = {
        let mut c = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin
            .take()
            .unwrap()
            .write_all(SECRET.as_bytes())
            .unwrap();
        let o = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("the output".into(), all.clone().into_bytes()),
        ("the events".into(), std::fs::read(&events).unwrap()),
        ("the JUnit report".into(), std::fs::read(&junit).unwrap()),
    ];
    for arch in ["amd64", "arm64v8"] {
        let r = format!("{}/acme/app/{arch}:{SHA}", reg.addr);
        let platform = if arch == "amd64" {
            "linux/amd64"
        } else {
            "linux/arm64"
        };
        assert_eq!(
            run_in(&r, platform, &[]),
            want,
            "{arch}: the build read the secret"
        );
        let history = docker(&["history", "--no-trunc", &r]);
        places.push((format!("docker history of {arch}"), history.stdout));
        let save = docker(&["save", &r]);
        assert!(save.status.success());
        places.push((format!("docker save of {arch}"), save.stdout));
    }
    let started: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "step-started")
        .collect();
    let build = started
        .iter()
        .find(|e| e["id"] == "build:app/amd64")
        .unwrap();
    let argv = build["command"].to_string();
    assert!(argv.contains("--secret"), "{argv}");
    for (what, bytes) in &places {
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "the secret is in {what}");
    }
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_rebuild_on_an_empty_cache_reuses_the_registry_s_layers() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = Project::new();
    p.file(
        "multiarch.toml",
        &format!("{}\n[[image]]\nname = \"slow\"\ncontext = \"slow\"\ndepends_on = [\"busybox\"]\nargs = {{ BASE = \"{{image.busybox}}\" }}\ncache_from = [\"{{repo}}:latest\"]\n", SPEC.replace("\"arm32v7\", \"arm64v8\"", "\"arm64v8\"")),
    )
    .file(
        "slow/Dockerfile",
        "ARG BASE\nFROM ${BASE}\nRUN i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo expensive-step-ran > /done\nCMD [\"cat\", \"/done\"]\n",
    );
    let first = publish(&p, &reg, &[], &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let prune = docker(&["builder", "prune", "-af"]);
    assert!(prune.status.success(), "{}", text(&prune));
    for arch in ["amd64", "arm64v8"] {
        for img in ["slow", "busybox"] {
            let _ = docker(&[
                "image",
                "rm",
                "-f",
                &format!("{}/acme/{img}/{arch}:{SHA}", reg.addr),
            ]);
        }
    }
    // The same commit again, its base taken from the registry: rebuilt from the
    // registry's cache.
    let again = publish(&p, &reg, &["--image", "slow"], &[]);
    let all = text(&again);
    assert_eq!(again.status.code(), Some(0), "{all}");
    assert!(all.contains("importing cache manifest from"), "{all}");
    // `#8 [2/2] RUN i=0; while …` then `#8 CACHED`, for each arch.
    let vertices: Vec<String> = all
        .lines()
        .filter(|l| l.contains("RUN i=0; while"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('#')))
        .map(str::to_string)
        .collect();
    assert!(!vertices.is_empty(), "{all}");
    for v in &vertices {
        assert!(
            all.lines().any(|l| l.contains(&format!("{v} CACHED"))),
            "the expensive step {v} came from the registry's cache: {all}"
        );
    }
}
