//! Monorepos and scale-out with the real engine: changed-only builds, a native
//! builder on a second dockerd, CI sharding (per-arch jobs, then publish), and a
//! rerun with --skip-existing that builds nothing. Run by `cargo xtask ci`.

use crate::support::{code, text};
use std::time::Instant;

use crate::support::{engine_lock, git, Project, Registry, SecondDaemon};

const TWO_APPS: &str = r#"
[project]
registry = "${REG}/acme"
[archs]
default = ["amd64", "arm64v8"]
[[image]]
name = "busybox"
context = "busybox"
verify = { command = ["uname", "-m"] }
[[image]]
name = "app"
context = "app"
depends_on = ["busybox"]
args = { BASE = "{image.busybox}" }
[[image]]
name = "other"
context = "other"
depends_on = ["busybox"]
args = { BASE = "{image.busybox}" }
"#;

const APP: &str = "ARG BASE\nFROM ${BASE}\nCOPY hello.txt /hello.txt\nCMD [\"uname\", \"-m\"]\n";

fn two_apps() -> Project {
    let p = Project::new();
    p.file("multiarch.toml", TWO_APPS)
        .file("app/Dockerfile", APP)
        .file("app/hello.txt", "app 1\n")
        .file("other/Dockerfile", APP)
        .file("other/hello.txt", "other 1\n")
        .file(".gitignore", "bin/\n");
    p
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn changed_since_builds_only_the_changed_image_and_its_dependents() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = two_apps();
    let dir = p.path();
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "first"]);
    let first = git(dir, &["rev-parse", "HEAD"]);
    // Everything, at the first commit.
    let o = p.run(&reg, &["run", "--branch", "main"]);
    assert_eq!(code(&o), 0, "{}", text(&o));

    // A change under other/ only.
    p.file("other/hello.txt", "other 2\n");
    git(dir, &["commit", "-qam", "change other"]);
    let second = git(dir, &["rev-parse", "HEAD"]);
    let plan = p
        .command(&[
            "plan",
            "--format",
            "json",
            "--branch",
            "main",
            "--changed-since",
            &first,
        ])
        .env("REG", &reg.addr)
        .output()
        .unwrap();
    assert_eq!(code(&plan), 0, "{}", text(&plan));
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let built: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "build")
        .map(|s| s["image"].as_str().unwrap())
        .collect();
    assert_eq!(built, vec!["other", "other"], "only `other` is built");
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        skipped.contains(&"build:app") && skipped.contains(&"build:busybox"),
        "{skipped:?}"
    );
    let reason = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "build:app")
        .unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("unchanged since"), "{reason}");
    // `other` builds on the base made at the first commit.
    let build = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "build:other/arm64v8")
        .unwrap();
    let argv: Vec<&str> = build["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        argv.contains(&format!("BASE={}/acme/busybox/arm64v8:{first}", reg.addr).as_str()),
        "{argv:?}"
    );

    let o = p.run(
        &reg,
        &["run", "--branch", "main", "--changed-since", &first],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(reg.manifest("acme/other/arm64v8", &second).0, 200);
    assert_eq!(
        reg.manifest("acme/app/arm64v8", &second).0,
        404,
        "app was not rebuilt"
    );
    assert_eq!(
        reg.list_platforms("acme/other", &second),
        vec!["linux/amd64", "linux/arm64/v8"]
    );

    // A change in the base rebuilds it and everything that depends on it.
    p.file(
        "busybox/Dockerfile",
        &format!(
            "{}\n# touched\n",
            std::fs::read_to_string(dir.join("busybox/Dockerfile")).unwrap()
        ),
    );
    git(dir, &["commit", "-qam", "change base"]);
    let plan = p
        .command(&[
            "plan",
            "--format",
            "json",
            "--branch",
            "main",
            "--changed-since",
            "HEAD~1",
        ])
        .env("REG", &reg.addr)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let mut images: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "build")
        .map(|s| s["image"].as_str().unwrap())
        .collect();
    images.dedup();
    assert_eq!(images, vec!["busybox", "app", "other"]);
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_native_builder_on_a_second_engine_joins_the_same_list() {
    let _g = engine_lock();
    let reg = Registry::start();
    let builder = SecondDaemon::start();
    let p = Project::new();
    p.file(
        "multiarch.toml",
        &format!(
            "[project]\nregistry = \"${{REG}}/acme\"\n[archs]\ndefault = [\"amd64\", \"arm64v8\"]\n[arch.arm64v8]\nbuilder = \"{}\"\n[[image]]\nname = \"busybox\"\ncontext = \"busybox\"\nverify = {{ command = [\"uname\", \"-m\"] }}\n",
            builder.host
        ),
    );
    let sha = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
    let plan = p
        .command(&["plan", "--branch", "main", "--sha", sha])
        .env("REG", &reg.addr)
        .output()
        .unwrap();
    let planned = text(&plan);
    assert!(
        planned.contains(&format!("docker --host {} build", builder.host)),
        "{planned}"
    );
    let o = p.run(&reg, &["run", "--branch", "main", "--sha", sha]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let arm = format!("{}/acme/busybox/arm64v8:{sha}", reg.addr);
    assert!(
        builder.docker(&["image", "inspect", &arm]).status.success(),
        "the arm64 image is on the builder"
    );
    let local = std::process::Command::new("docker")
        .args(["image", "inspect", &arm])
        .output()
        .unwrap();
    assert!(!local.status.success(), "and not on the local engine");
    assert_eq!(
        reg.list_platforms("acme/busybox", "latest"),
        vec!["linux/amd64", "linux/arm64/v8"]
    );
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn sharded_per_arch_jobs_then_a_publish_job_assemble_the_list() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = Project::new();
    p.file(
        "multiarch.toml",
        "[project]\nregistry = \"${REG}/acme\"\n[archs]\ndefault = [\"amd64\", \"arm64v8\"]\n[[image]]\nname = \"busybox\"\ncontext = \"busybox\"\nverify = { command = [\"uname\", \"-m\"] }\n",
    );
    let sha = "5ad05ad05ad05ad05ad05ad05ad05ad05ad05ad0";
    let base = ["--branch", "main", "--sha", sha];
    let with = |extra: &[&str]| -> Vec<String> {
        ["run"]
            .iter()
            .chain(extra)
            .chain(base.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        p.run(&reg, &a)
    };
    // One arch only: the publish job refuses a partial list.
    let o = run(with(&[
        "--arch", "amd64", "--stage", "build", "--stage", "push",
    ]));
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = run(with(&["--stage", "publish"]));
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        text(&o).contains("push:busybox/arm64v8"),
        "names the missing arch: {}",
        text(&o)
    );
    assert_eq!(reg.manifest("acme/busybox", "latest").0, 404);
    // The other arch's job; its local images are gone before publishing, as on
    // another runner.
    let o = run(with(&[
        "--arch", "arm64v8", "--stage", "build", "--stage", "push",
    ]));
    assert_eq!(code(&o), 0, "{}", text(&o));
    for a in ["amd64", "arm64v8"] {
        let _ = std::process::Command::new("docker")
            .args(["rmi", &format!("{}/acme/busybox/{a}:{sha}", reg.addr)])
            .output();
    }
    let o = run(with(&["--stage", "publish"]));
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        reg.list_platforms("acme/busybox", "latest"),
        vec!["linux/amd64", "linux/arm64/v8"]
    );
    let o = run(with(&["--stage", "verify"]));
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("[verify:busybox/arm64v8] ok"),
        "{}",
        text(&o)
    );
    // The verify job proves the publish job's other tag and each entry, in
    // the real registry.
    assert!(
        text(&o).contains(&format!(
            "{}/acme/busybox:latest names the same index as {}/acme/busybox:",
            reg.addr, reg.addr
        )),
        "{}",
        text(&o)
    );
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_rerun_with_skip_existing_builds_nothing() {
    let _g = engine_lock();
    let reg = Registry::start();
    let p = two_apps();
    let sha = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
    let t0 = Instant::now();
    let o = p.run(
        &reg,
        &["run", "--branch", "main", "--sha", sha, "--skip-existing"],
    );
    let full = t0.elapsed();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t1 = Instant::now();
    let o = p.run(
        &reg,
        &["run", "--branch", "main", "--sha", sha, "--skip-existing"],
    );
    let rerun = t1.elapsed();
    let text = text(&o);
    assert_eq!(code(&o), 0, "{text}");
    assert!(
        !text.contains("Sending build context"),
        "no build ran:\n{text}"
    );
    assert!(text.contains("[build:app/arm64v8] cached"), "{text}");
    assert!(text.contains("[push:other/amd64] cached"), "{text}");
    assert_eq!(
        reg.list_platforms("acme/app", "latest"),
        vec!["linux/amd64", "linux/arm64/v8"]
    );
    eprintln!(
        "full run {:.1}s, rerun with --skip-existing {:.1}s",
        full.as_secs_f64(),
        rerun.as_secs_f64()
    );
}
