//! The engine tests of tests/integration/engine.rs, run through podman: the article's pipeline,
//! a feature branch, an arch that fails to build — on a registry on a free loopback
//! port, with real qemu. Podman's storage and build cache are its own (not
//! dockerd's). `cargo xtask ci` installs podman and runs these with
//! `--include-ignored`. The plan tests at the end need no engine.

use crate::support;
use crate::support::code;

use std::process::{Command, Output};

use crate::support::{engine_lock, Project, Registry, SHA};
use multiarch::exec::session::Session;
use multiarch::spec::EngineKind;
use multiarch::Environment;

const NEEDS_PODMAN: &str = "needs podman, docker-registry and qemu binfmt; run by `cargo xtask ci`";

const SPEC: &str = r#"
[project]
registry = "${REG}/acme"
engine = "podman"

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

/// Podman, set up the way multiarch sets it up for a run on `reg` (registries.conf
/// marking it plain HTTP; containers.conf without default rlimits where needed).
/// Images of the registry are removed from podman's storage on drop.
struct PodmanFor {
    session: Session,
    registry: String,
}

impl PodmanFor {
    fn new(reg: &Registry) -> PodmanFor {
        let session = Session::prepare(
            EngineKind::Podman,
            &Environment::from_process(),
            std::slice::from_ref(&reg.addr),
        )
        .expect("podman session");
        PodmanFor {
            session,
            registry: reg.addr.clone(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .args(args)
            .envs(self.session.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("podman is installed (cargo xtask ci installs it)")
    }
}

impl Drop for PodmanFor {
    fn drop(&mut self) {
        let out = self.run(&["images", "--format", "{{.ID}} {{.Repository}}"]);
        let mine: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, repo)| repo.starts_with(&format!("{}/", self.registry)))
            .map(|(id, _)| id.to_string())
            .collect();
        if !mine.is_empty() {
            let mut args = vec!["rmi", "--force", "--ignore"];
            args.extend(mine.iter().map(String::as_str));
            let _ = self.run(&args);
        }
    }
}

#[test]
#[ignore = "needs podman, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn the_article_pipeline_publishes_a_list_of_exactly_its_platforms_with_podman() {
    let _g = engine_lock();
    let reg = Registry::start();
    let podman = PodmanFor::new(&reg);
    let p = article_project();
    let out = p.run(&reg, &["run", "--branch", "main", "--sha", SHA]);
    assert_eq!(code(&out), 0, "{NEEDS_PODMAN}");
    let want = vec!["linux/amd64", "linux/arm/v7", "linux/arm64/v8"];
    assert_eq!(reg.list_platforms("acme/hello", "latest"), want);
    assert_eq!(reg.list_platforms("acme/hello", SHA), want);
    assert_eq!(reg.list_platforms("acme/busybox", "latest"), want);
    let summary = String::from_utf8_lossy(&out.stdout);
    // Built in podman's storage, not dockerd's.
    let built = format!("{}/acme/hello/arm64v8:{SHA}", reg.addr);
    assert!(podman.run(&["image", "exists", &built]).status.success());
    let in_docker = Command::new("docker")
        .args(["image", "inspect", &built])
        .output();
    assert!(
        in_docker.is_ok_and(|o| !o.status.success()),
        "not built by docker"
    );
    // The digests multiarch recorded are the ones the registry serves.
    let list = format!("{}/acme/hello:latest", reg.addr);
    let (status, body) = reg.manifest("acme/hello", "latest");
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        assert!(
            summary.contains(d),
            "{d} (an entry of the list) is in the summary: {summary}"
        );
    }
    assert!(summary.contains(&format!("{list}@sha256:")), "{summary}");

    // What a user pulling the list on a Pi gets.
    let run = podman.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pull",
        "always",
        "--platform",
        "linux/arm/v7",
        &list,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "armv7l",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // A rerun on the same sha succeeds (a stale local list would be replaced) and
    // publishes the same platforms; the flag overrides nothing here but works.
    let again = p.run(
        &reg,
        &[
            "run", "--engine", "podman", "--branch", "main", "--sha", SHA,
        ],
    );
    assert_eq!(code(&again), 0);
    assert_eq!(reg.list_platforms("acme/hello", "latest"), want);
}

/// Podman logs in and pushes through a registry with `auth: token` (docker-
/// registry 2.8 and the test suite's token server), and multiarch's own client
/// publishes the lists through the same token flow: the whole pipeline with
/// bearer tokens, no secret in the output.
#[test]
#[ignore = "needs podman, docker-registry, openssl and qemu binfmt; run by `cargo xtask ci`"]
fn podman_publishes_through_a_token_server() {
    use crate::support::token_server::TokenServer;
    let _g = engine_lock();
    let tokens = TokenServer::start("ci", "p0dman-t0ken-pw");
    let reg = Registry::start_with(support::free_port(), &tokens.registry_config());
    let _podman = PodmanFor::new(&reg);
    let p = article_project();
    let auth = support::temp_dir("podman-auth");
    let out = p
        .command(&["run", "--branch", "main", "--sha", SHA, "--login"])
        .env("REG", &reg.addr)
        .env("DOCKER_CONFIG", auth.path())
        .env("REGISTRY_AUTH_FILE", auth.path().join("auth.json"))
        .env("MULTIARCH_REGISTRY_USER", "ci")
        .env("MULTIARCH_REGISTRY_PASSWORD", "p0dman-t0ken-pw")
        .output()
        .unwrap();
    let t = support::text(&out);
    assert_eq!(code(&out), 0, "{NEEDS_PODMAN}: {t}");
    assert!(
        !t.contains("p0dman-t0ken-pw"),
        "the password is masked: {t}"
    );
    for token in tokens.issued() {
        assert!(!t.contains(token.as_str()), "a token in the output: {t}");
    }
    // The list, read with a token of our own: exactly the three platforms.
    let read = format!("Bearer {}", tokens.token(&["repository:acme/hello:pull"]));
    let got = support::client()
        .get(format!(
            "http://{}/v2/acme/hello/manifests/latest",
            reg.addr
        ))
        .accept(multiarch::registry::MANIFEST_ACCEPT)
        .authorization(&read)
        .send()
        .unwrap();
    assert_eq!(got.status(), 200);
    let index: serde_json::Value = serde_json::from_slice(got.body()).unwrap();
    assert_eq!(
        support::index_platforms(&index),
        ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"]
    );
    let seen = tokens.requests();
    assert!(seen.iter().all(|r| r.granted), "{seen:#?}");
    assert!(
        seen.iter().any(|r| !r.user_agent.starts_with("multiarch/")
            && r.scopes
                .iter()
                .any(|s| s.contains("acme/hello/arm64v8") && s.contains("push"))),
        "podman pushed through the token flow: {seen:#?}"
    );
    assert!(
        seen.iter().any(|r| r.user_agent.starts_with("multiarch/")
            && r.scopes
                .iter()
                .any(|s| s == "repository:acme/hello:pull,push")),
        "multiarch's client published the list with a push token: {seen:#?}"
    );
}

#[test]
#[ignore = "needs podman, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_feature_branch_pushes_per_arch_images_and_no_list_with_podman() {
    let _g = engine_lock();
    let reg = Registry::start();
    let _podman = PodmanFor::new(&reg);
    let p = Project::new();
    // The docker spec, with the engine chosen by the flag.
    p.file("multiarch.toml", &SPEC.replace("engine = \"podman\"\n", ""))
        .file("hello/Dockerfile", HELLO);
    let out = p.run(
        &reg,
        &[
            "run",
            "--engine",
            "podman",
            "--branch",
            "feature/login",
            "--sha",
            SHA,
        ],
    );
    assert_eq!(code(&out), 0, "{NEEDS_PODMAN}");
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
    // verify ran each pushed per-arch image by digest.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verify:hello/arm32v7"), "{text}");

    // A later verify-only job finds the per-arch digests in the registry (no push
    // in this run): podman has to look them up.
    let verify = p.run(
        &reg,
        &[
            "run",
            "--engine",
            "podman",
            "--branch",
            "feature/login",
            "--sha",
            SHA,
            "--stage",
            "verify",
        ],
    );
    assert_eq!(code(&verify), 0);
}

#[test]
#[ignore = "needs podman, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn an_arch_that_fails_to_build_blocks_its_list_but_not_the_other_arches_with_podman() {
    let _g = engine_lock();
    let reg = Registry::start();
    let _podman = PodmanFor::new(&reg);
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
    assert_eq!(reg.list_platforms("acme/hello", "latest").len(), 3);
}

#[test]
fn without_podman_installed_a_run_exits_3_before_any_step() {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", SPEC)
        .file("hello/Dockerfile", HELLO)
        .file("busybox/Dockerfile", "FROM scratch\n");
    let empty = p.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = p
        .command(&["run", "--branch", "main", "--sha", SHA])
        .env("REG", "127.0.0.1:1")
        .env("PATH", &empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3, "{err}");
    assert!(err.contains("podman"), "{err}");
    assert!(err.contains("help:"), "{err}");
}

fn plan_json(p: &Project, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "--format", "json", "--branch", "main", "--sha", SHA];
    all.extend_from_slice(args);
    let out = p
        .command(&all)
        .env("REG", "127.0.0.1:5000")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn step<'a>(plan: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

fn argv(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

#[test]
fn the_plan_shows_podmans_argv_for_every_step() {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", SPEC)
        .file("hello/Dockerfile", HELLO)
        .file("busybox/Dockerfile", "FROM scratch\n");
    let plan = plan_json(&p, &[]);
    let r = "127.0.0.1:5000/acme/hello";
    let build = argv(&step(&plan, "build:hello/arm32v7")["command"]);
    assert_eq!(
        &build[..8],
        [
            "podman",
            "build",
            "--build-arg",
            "ARCH=arm32v7",
            "--platform",
            "linux/arm/v7",
            "-t",
            &format!("{r}/arm32v7:{SHA}")
        ]
    );
    assert_eq!(&build[build.len() - 3..], ["--network", "host", "hello"]);
    assert_eq!(
        argv(&step(&plan, "build:hello/arm32v7")["commands"][1]),
        [
            "podman",
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}",
            &format!("{r}/arm32v7:{SHA}")
        ]
    );
    assert_eq!(
        argv(&step(&plan, "test:hello/arm64v8")["command"]),
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "none",
            "--platform",
            "linux/arm64/v8",
            "--pull",
            "never",
            "--label",
            "multiarch.run=<run-id>",
            "--label",
            "multiarch.step=<step-id>",
            "--entrypoint",
            "uname",
            &format!("{r}/arm64v8:{SHA}"),
            "-m"
        ]
    );
    assert_eq!(
        argv(&step(&plan, "push:hello/amd64")["command"]),
        [
            "podman",
            "push",
            "--digestfile",
            "<digest file>",
            &format!("{r}/amd64:{SHA}")
        ]
    );
    // Lists are made over the registry's API, whichever the engine: no
    // `podman manifest`.
    let list = format!("{r}:latest");
    let create = step(&plan, "manifest-create:hello:latest");
    assert!(create.get("command").is_none(), "{create}");
    assert_eq!(
        create["requests"][1]["url"],
        format!(
            "http://127.0.0.1:5000/v2/acme/hello/arm32v7/manifests/<digest of push:hello/arm32v7>"
        )
    );
    let push = step(&plan, "manifest-push:hello:latest");
    assert_eq!(push["request"]["method"], "PUT");
    assert_eq!(
        push["request"]["url"],
        "http://127.0.0.1:5000/v2/acme/hello/manifests/latest"
    );
    assert_eq!(
        push["request"]["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let _ = list;
    let verify = step(&plan, "verify:hello/arm32v7");
    assert_eq!(
        verify["request"]["url"],
        format!("http://127.0.0.1:5000/v2/acme/hello/manifests/{SHA}")
    );
    assert_eq!(
        &argv(&verify["command"])[..9],
        [
            "podman",
            "run",
            "--rm",
            "--network",
            "none",
            "--platform",
            "linux/arm/v7",
            "--pull",
            "always"
        ]
    );
    let text = serde_json::to_string(&plan).unwrap();
    assert!(!text.contains("\"docker\""), "no docker command: {text}");
    assert!(
        !text.contains("--insecure"),
        "plain HTTP comes from registries.conf"
    );
    assert!(
        !text.contains("tls-verify"),
        "plain HTTP comes from registries.conf"
    );
}

#[test]
fn the_engine_flag_overrides_the_file() {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", SPEC)
        .file("hello/Dockerfile", HELLO)
        .file("busybox/Dockerfile", "FROM scratch\n");
    let plan = plan_json(&p, &["--engine", "docker"]);
    let push = argv(&step(&plan, "push:hello/amd64")["command"]);
    assert_eq!(push[..2], ["docker", "push"]);
    // Lists are the registry API's with either engine.
    assert_eq!(
        step(&plan, "manifest-push:hello:latest")["request"]["method"],
        "PUT"
    );
    let plan = plan_json(&p, &["--engine", "podman"]);
    assert_eq!(
        argv(&step(&plan, "push:hello/amd64")["command"])[..2],
        ["podman", "push"]
    );
}

#[test]
#[ignore = "needs podman, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn images_with_an_entrypoint_or_without_uname_pass_the_default_check_with_podman() {
    let _g = engine_lock();
    let reg = Registry::start();
    let _podman = PodmanFor::new(&reg);
    let p = support::entrypoint_project("engine = \"podman\"");
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
    assert_eq!(code(&out), 0, "{NEEDS_PODMAN}");
    // Podman's image inspect has no variant: the config's os/arch is checked.
    support::assert_entrypoint_run(
        &reg,
        &events,
        &["test:server/arm64v8", "verify:selftest/arm64v8"],
        &[
            ("test:scratch/arm64v8", "linux/arm64"),
            ("verify:scratch/arm64v8", "linux/arm64"),
            ("verify:scratch/amd64", "linux/amd64"),
        ],
    );
}
