//! The runner's behaviour without a daemon: `multiarch run` against the fake
//! engine (support::fake_engine) — retries, the rebuild on a wrong platform,
//! digests, `--skip-existing`, cancellation, keep-going and fail-fast, preflight,
//! external needs, login secrets, atomic publishing. The real-engine tests
//! (engine, faults, podman) check the same against dockerd and a registry.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::fake_engine::{FakeEngine, Reply};
use crate::support::{processes_with, wait_until, Project, SHA};

/// Two arches, each on its own (fake) native builder: no qemu, the same plan on
/// any host.
pub(crate) const TWO_ARCHES: &str = r#"
[project]
registry = "127.0.0.1:5999/acme"

[arch.amd64]
builder = "ssh://fake-amd64"
[arch.arm64v8]
builder = "ssh://fake-arm64"

[archs]
default = ["amd64", "arm64v8"]

[[image]]
name = "app"
"#;

const AMD64: &str = "127.0.0.1:5999/acme/app/amd64:5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const ARM64: &str = "127.0.0.1:5999/acme/app/arm64v8:5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const LIST: &str = "127.0.0.1:5999/acme/app:5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// The fake registry's host as the tests write it: the fake registry listens on
/// a free port, and the spec, the calls and the runs' output are rewritten
/// between the two.
const REGISTRY_FILE: &str = ".fake-registry";

/// The digest the fake's default push wrote for `reference` (after the run).
fn default_digest(fake: &FakeEngine, reference: &str) -> String {
    fake.pushed_digest(reference)
}

pub(crate) fn project(spec: &str) -> (Project, FakeEngine) {
    let p = Project::new_without_busybox();
    let fake = FakeEngine::new(p.path());
    let host = fake.start_registry();
    p.file("multiarch.toml", &fake.real(spec))
        .file("Dockerfile", "FROM scratch\n")
        .file(REGISTRY_FILE, &host);
    (p, fake)
}

/// `multiarch run --branch main --sha SHA ARGS… --events EVENTS` with the fake on
/// PATH and retries without backoff.
pub(crate) fn command(p: &Project, fake: &FakeEngine, args: &[&str]) -> Command {
    let mut c = p.command(&["run", "--branch", "main", "--sha", SHA]);
    c.args(args)
        .arg("--events")
        .arg(p.path().join("events.jsonl"))
        .env("PATH", fake.path())
        .env("MULTIARCH_RETRY_BACKOFF_MS", "1")
        .env_remove("DOCKER_HOST")
        .env_remove("MULTIARCH_REGISTRY_PASSWORD")
        .env_remove("CI_REGISTRY_PASSWORD");
    c
}

/// What a run did: its exit code, its output, and its recorded events.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) events: Vec<serde_json::Value>,
}

impl Run {
    pub(crate) fn of(p: &Project, out: Output) -> Run {
        let host = std::fs::read_to_string(p.path().join(REGISTRY_FILE)).unwrap_or_default();
        let shown = |t: String| {
            if host.is_empty() {
                t
            } else {
                t.replace(&host, crate::support::fake_engine::SHOWN_REGISTRY)
            }
        };
        let r = Run {
            code: out.status.code(),
            stdout: shown(String::from_utf8_lossy(&out.stdout).into_owned()),
            stderr: shown(String::from_utf8_lossy(&out.stderr).into_owned()),
            events: shown(
                std::fs::read_to_string(p.path().join("events.jsonl")).unwrap_or_default(),
            )
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
        };
        eprintln!("--- stdout\n{}--- stderr\n{}", r.stdout, r.stderr);
        r
    }

    fn finished(&self, id: &str) -> &serde_json::Value {
        self.events
            .iter()
            .find(|e| e["event"] == "step-finished" && e["id"] == id)
            .unwrap_or_else(|| panic!("{id} did not finish:\n{}", self.stdout))
    }

    pub(crate) fn status(&self, id: &str) -> String {
        self.finished(id)["status"].as_str().unwrap().to_string()
    }

    fn reason(&self, id: &str) -> String {
        self.finished(id)["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn notes(&self, id: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == "note" && e["id"] == id)
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    }
}

fn run(p: &Project, fake: &FakeEngine, args: &[&str]) -> Run {
    Run::of(p, command(p, fake, args).output().unwrap())
}

fn lines(calls: &[crate::support::fake_engine::Call]) -> Vec<String> {
    calls.iter().map(|c| c.line()).collect()
}

// ---------------------------------------------------------------- the harness

#[test]
fn the_fake_engine_runs_a_two_arch_pipeline_end_to_end() {
    let (p, fake) = project(TWO_ARCHES);
    let r = run(&p, &fake, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    for id in [
        "build:app/amd64",
        "test:app/arm64v8",
        "push:app/arm64v8",
        "manifest-push:app:latest",
        "verify:app/amd64",
        "verify:app/arm64v8",
    ] {
        assert_eq!(r.status(id), "ok", "{id}");
    }
    assert_eq!(
        r.finished("push:app/amd64")["digest"],
        default_digest(&fake, AMD64).as_str()
    );
    let calls = fake.calls();
    let amd64: Vec<String> = calls
        .iter()
        .filter(|c| c.base == ["--host", "ssh://fake-amd64"])
        .map(|c| c.line())
        .collect();
    assert_eq!(
        amd64[0], "version --format {{.Server.Version}}",
        "preflight first"
    );
    assert!(amd64[1].starts_with("build --build-arg ARCH=amd64 --platform linux/amd64 -t "));
    // Every container is labelled with the run's id (one for the whole run).
    let runs: std::collections::BTreeSet<&str> = calls
        .iter()
        .flat_map(|c| &c.args)
        .filter_map(|a| a.strip_prefix("multiarch.run="))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs.first().unwrap();
    assert_eq!(
        amd64[2..5],
        [
            format!("image inspect --format {{{{.Os}}}}/{{{{.Architecture}}}}/{{{{.Variant}}}} {AMD64}"),
            format!("run --rm --network none --platform linux/amd64 --pull never --label multiarch.run={run} --label multiarch.step=test:app/amd64 --entrypoint uname {AMD64} -m"),
            format!("push {AMD64}"),
        ]
    );
    // The lists are made over the registry's API from the pushed digests: no
    // engine's `manifest` command.
    assert!(fake.calls_matching("manifest *").is_empty());
    let d_amd64 = default_digest(&fake, AMD64);
    let d_arm64 = default_digest(&fake, ARM64);
    let requests = fake.requests();
    for want in [
        format!("GET /v2/acme/app/amd64/manifests/{d_amd64}"),
        format!("GET /v2/acme/app/arm64v8/manifests/{d_arm64}"),
        format!("PUT /v2/acme/app/manifests/{d_arm64}"),
        format!("PUT /v2/acme/app/manifests/{SHA}"),
        "PUT /v2/acme/app/manifests/latest".to_string(),
        format!("GET /v2/acme/app/manifests/{SHA}"),
    ] {
        assert!(
            requests.contains(&want),
            "{want}\nin\n{}",
            requests.join("\n")
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fake.registry().manifest("acme/app", "latest").unwrap()).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"][0]["digest"], d_amd64.as_str());
    assert_eq!(
        index["manifests"][1]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );
    assert_eq!(
        index["annotations"]["org.opencontainers.image.revision"],
        SHA
    );
    // Verify runs each platform by the digest the list serves for it.
    assert!(
        lines(&fake.calls_matching("run *--pull always*")).contains(&format!(
            "run --rm --network none --platform linux/arm64/v8 --pull always --label multiarch.run={run} --label multiarch.step=verify:app/arm64v8 --entrypoint uname 127.0.0.1:5999/acme/app@{d_arm64} -m"
        )),
        "{:#?}",
        fake.calls_matching("run *")
    );
}

// ---------------------------------------------------------------- retries

const UNAVAILABLE: &str = "received unexpected HTTP status: 503 Service Unavailable";

#[test]
fn a_transient_push_failure_is_retried_and_the_list_gets_the_final_digest() {
    let (p, fake) = project(TWO_ARCHES);
    let busy = Reply::exit(1).stdout(UNAVAILABLE);
    fake.on("push *amd64*", [busy.clone(), busy, Reply::pass()]);
    let r = run(&p, &fake, &["--retries", "3"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert_eq!(fake.calls_matching("push *amd64*").len(), 3);
    let notes = r.notes("push:app/amd64");
    assert_eq!(notes.len(), 2, "{notes:?}");
    for (n, note) in notes.iter().enumerate() {
        assert!(
            note.starts_with(&format!(
                "transient failure ({UNAVAILABLE}); retry {}/3 in ",
                n + 1
            )),
            "{note}"
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fake.registry().manifest("acme/app", SHA).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        default_digest(&fake, AMD64).as_str()
    );
}

#[test]
fn a_denied_push_is_not_retried_and_blocks_the_lists() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on(
        "push *amd64*",
        [Reply::exit(1).stderr("unauthorized: authentication required")],
    );
    let r = run(&p, &fake, &["--retries", "3"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(fake.calls_matching("push *amd64*").len(), 1);
    assert_eq!(r.status("push:app/amd64"), "failed");
    assert_eq!(r.reason("push:app/amd64"), "push failed: exit code 1");
    assert!(r.notes("push:app/amd64").is_empty());
    assert_eq!(r.status("push:app/arm64v8"), "ok", "keep-going");
    assert!(!fake.requests().iter().any(|r| r.contains("/manifests/")));
    assert!(r
        .reason(&format!("manifest-create:app:{SHA}"))
        .contains("needs push:app/amd64 failed"));
}

#[test]
fn retries_n_means_n_more_attempts() {
    for (retries, attempts) in [("0", 1), ("2", 3)] {
        let (p, fake) = project(TWO_ARCHES);
        fake.on("push *amd64*", [Reply::exit(1).stdout(UNAVAILABLE)]);
        let r = run(&p, &fake, &["--retries", retries]);
        assert_eq!(r.code, Some(1));
        assert_eq!(
            fake.calls_matching("push *amd64*").len(),
            attempts,
            "--retries {retries}"
        );
        assert_eq!(r.notes("push:app/amd64").len(), attempts - 1);
    }
}

#[test]
fn a_list_that_is_not_found_is_read_once_per_verify() {
    let (p, fake) = project(TWO_ARCHES);
    let read = format!("/v2/acme/app/manifests/{SHA}");
    fake.registry().fail("GET", &read, 404, 100);
    let r = run(&p, &fake, &["--retries", "3"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|l| **l == format!("GET {read}"))
            .count(),
        2,
        "one read by each verify, none retried"
    );
    assert_eq!(
        r.reason("verify:app/amd64"),
        format!("the registry does not serve {LIST}")
    );
}

#[test]
fn a_test_run_the_engine_could_not_start_is_retried_and_a_failing_command_is_not() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on(
        "run *--pull never*amd64*",
        [
            Reply::exit(125).stderr(&format!(
                "docker: Error response from daemon: {UNAVAILABLE}."
            )),
            Reply::pass(),
        ],
    );
    fake.on(
        "run *--pull never*arm64v8*",
        [Reply::exit(1).stdout("uname: broken")],
    );
    let r = run(&p, &fake, &["--retries", "3"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(fake.calls_matching("run *--pull never*amd64*").len(), 2);
    assert_eq!(r.status("test:app/amd64"), "ok");
    let notes = r.notes("test:app/amd64");
    assert!(
        notes.len() == 1
            && notes[0].contains("503 Service Unavailable")
            && notes[0].contains("retry 1/3"),
        "{notes:?}"
    );
    assert_eq!(fake.calls_matching("run *--pull never*arm64v8*").len(), 1);
    assert_eq!(r.status("test:app/arm64v8"), "failed");
    assert_eq!(
        r.reason("test:app/arm64v8"),
        "test command failed: exit code 1"
    );
}

// ---------------------------------------------------------------- builds of the wrong platform

fn builds(fake: &FakeEngine, arch: &str) -> Vec<Vec<String>> {
    fake.calls_matching(&format!("build --*ARCH={arch} *"))
        .into_iter()
        .map(|c| c.args)
        .collect()
}

const INSPECT_AMD64: &str = "image inspect --format {{.Os}}/{{.Architecture}}/{{.Variant}} *amd64*";

#[test]
fn an_image_of_another_platform_is_built_again_without_the_cache() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on(
        INSPECT_AMD64,
        [Reply::ok().stdout("linux/arm64/v8"), Reply::pass()],
    );
    let r = run(&p, &fake, &["--stage", "build"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let b = builds(&fake, "amd64");
    assert_eq!(b.len(), 2);
    assert_ne!(b[0][1], "--no-cache");
    assert_eq!(b[1][..2], ["build", "--no-cache"]);
    assert_eq!(b[1][2..], b[0][1..], "otherwise the same build");
    assert_eq!(
        r.notes("build:app/amd64"),
        ["built linux/arm64/v8 instead of linux/amd64; building again with --no-cache"]
    );
    assert_eq!(builds(&fake, "arm64v8").len(), 1);
}

#[test]
fn a_cached_layer_of_another_platform_is_built_again_without_the_cache() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on(
        "build *ARCH=amd64*",
        [
            Reply::exit(1).stderr("The requested image's platform (linux/arm64/v8) does not match the specified platform (linux/amd64) and no specific platform was requested"),
            Reply::pass(),
        ],
    );
    let r = run(&p, &fake, &["--stage", "build"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let b = builds(&fake, "amd64");
    assert_eq!(b.len(), 2);
    assert_eq!(b[1][..2], ["build", "--no-cache"]);
    assert_eq!(
        r.notes("build:app/amd64"),
        ["the build cache holds a layer of another platform; building again with --no-cache"]
    );
}

#[test]
fn an_image_still_of_another_platform_after_the_rebuild_fails() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on(INSPECT_AMD64, [Reply::ok().stdout("linux/arm64/v8")]);
    let r = run(&p, &fake, &["--stage", "build"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(builds(&fake, "amd64").len(), 2, "one rebuild, no more");
    assert_eq!(r.status("build:app/amd64"), "failed");
    assert!(
        r.reason("build:app/amd64").starts_with(
            "built linux/arm64/v8 but this arch is linux/amd64: the classic builder ignored --platform"
        ),
        "{}",
        r.reason("build:app/amd64")
    );
    assert_eq!(r.status("build:app/arm64v8"), "ok");
}

// ---------------------------------------------------------------- digests

/// The digests of the `{sha}` list's entries, as the registry serves it.
fn created(fake: &FakeEngine) -> String {
    let Some(bytes) = fake.registry().manifest("acme/app", SHA) else {
        return String::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_digest_is_the_last_one_the_push_prints() {
    let (p, fake) = project(TWO_ARCHES);
    let b = fake.registry().image("acme/app/amd64", "b", "linux/amd64");
    fake.on(
        "push *amd64*",
        [Reply::ok()
            .stdout(&format!("{}: Layer already exists", digest('a')))
            .stdout(&format!("5eed: digest: {b} size: 527"))],
    );
    let r = run(&p, &fake, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert_eq!(r.finished("push:app/amd64")["digest"], b.as_str());
    assert!(created(&fake).starts_with(&b), "{}", created(&fake));
}

#[test]
fn podman_s_digest_comes_from_its_digest_file() {
    let (p, fake) = project(&TWO_ARCHES.replace("[project]\n", "[project]\nengine = \"podman\"\n"));
    let d = fake.registry().image("acme/app/amd64", "d", "linux/amd64");
    fake.on("push *amd64*", [Reply::ok().digest_file(&d)]);
    let r = run(&p, &fake, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let push = &fake.calls_matching("push *amd64*")[0];
    assert_eq!(push.program, "podman");
    assert_eq!(push.base, ["--url", "ssh://fake-amd64"]);
    assert_eq!(push.args[..2], ["push", "--digestfile"]);
    assert_eq!(r.finished("push:app/amd64")["digest"], d.as_str());
    assert!(
        fake.calls_matching("manifest *").is_empty(),
        "no podman manifest"
    );
    assert!(created(&fake).starts_with(&d), "{}", created(&fake));
}

#[test]
fn without_a_digest_in_the_output_the_local_repo_digests_are_asked() {
    let (p, fake) = project(TWO_ARCHES);
    let c = fake.registry().image("acme/app/amd64", "c", "linux/amd64");
    fake.on("push *amd64*", [Reply::ok().stdout("pushed")]);
    fake.on(
        "image inspect --format {{json .RepoDigests}} *amd64*",
        [Reply::ok().stdout(&fake.real(&format!("[\"127.0.0.1:5999/acme/app/amd64@{c}\"]")))],
    );
    let r = run(&p, &fake, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert_eq!(r.finished("push:app/amd64")["digest"], c.as_str());
    assert!(created(&fake).contains(&c));
}

#[test]
fn a_push_whose_digest_cannot_be_read_fails() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("push *amd64*", [Reply::ok().stdout("pushed")]);
    let r = run(&p, &fake, &[]);
    assert_eq!(r.code, Some(1));
    assert_eq!(r.status("push:app/amd64"), "failed");
    assert_eq!(
        r.reason("push:app/amd64"),
        "pushed, but the digest could not be read from the output"
    );
    assert!(created(&fake).is_empty());
}

// ---------------------------------------------------------------- --skip-existing

/// Both per-arch images of this commit in the registry (as an earlier run
/// pushed them): their digests.
fn in_registry(fake: &FakeEngine) -> (String, String) {
    let r = fake.registry();
    (
        r.image("acme/app/amd64", SHA, "linux/amd64"),
        r.image("acme/app/arm64v8", SHA, "linux/arm64/v8"),
    )
}

#[test]
fn skip_existing_builds_nothing_the_registry_has_and_lists_its_digests() {
    let (p, fake) = project(TWO_ARCHES);
    let (d1, d2) = in_registry(&fake);
    let r = run(&p, &fake, &["--skip-existing"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    for arch in ["amd64", "arm64v8"] {
        for kind in ["build", "test", "push"] {
            assert_eq!(
                r.status(&format!("{kind}:app/{arch}")),
                "cached",
                "{kind} {arch}"
            );
        }
    }
    assert_eq!(
        r.reason("build:app/amd64"),
        format!("{AMD64} is already in the registry")
    );
    assert!(fake.calls_matching("build *").is_empty());
    assert!(fake.calls_matching("push *").is_empty());
    assert!(fake.calls_matching("run *--pull never*").is_empty());
    assert_eq!(created(&fake), format!("{d1} {d2}"));
    assert_eq!(r.status(&format!("manifest-push:app:{SHA}")), "ok");
}

#[test]
fn skip_existing_leaves_a_list_that_is_already_published_alone() {
    let (p, fake) = project(TWO_ARCHES);
    in_registry(&fake);
    // A first run publishes; the second finds every list already there.
    assert_eq!(run(&p, &fake, &["--skip-existing"]).code, Some(0));
    let before = fake.requests().len();
    let r = run(&p, &fake, &["--skip-existing"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    for tag in [SHA, "latest"] {
        assert_eq!(r.status(&format!("manifest-create:app:{tag}")), "cached");
        assert_eq!(r.status(&format!("manifest-push:app:{tag}")), "cached");
    }
    let again = &fake.requests()[before..];
    assert!(
        !again.iter().any(|l| l.starts_with("PUT ")),
        "nothing is written again: {again:#?}"
    );
    assert_eq!(r.status("verify:app/arm64v8"), "ok");
}

#[test]
fn skip_existing_publishes_a_list_that_differs_again() {
    let (p, fake) = project(TWO_ARCHES);
    let (_, d2) = in_registry(&fake);
    // A list of another amd64 image is there under the tag.
    let other = digest('9');
    fake.registry().put(
        "acme/app",
        SHA,
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{other}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{d2}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#
        )
        .as_bytes(),
    );
    let r = run(&p, &fake, &["--skip-existing"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let notes = r.notes(&format!("manifest-create:app:{SHA}"));
    assert!(
        notes.len() == 1
            && notes[0].starts_with(&format!("{LIST} in the registry is sha256:"))
            && notes[0].ends_with("not this run's index; pushing it again"),
        "{notes:?}"
    );
    assert_eq!(r.status(&format!("manifest-create:app:{SHA}")), "ok");
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|l| **l == format!("PUT /v2/acme/app/manifests/{SHA}"))
            .count(),
        1
    );
    assert!(!created(&fake).contains(&other));
}

#[test]
fn skip_existing_needs_references_with_the_commit() {
    let (p, fake) = project(&format!(
        "{TWO_ARCHES}\n[tags]\narch = \"{{repo}}/{{arch}}:latest\"\n"
    ));
    let r = run(&p, &fake, &["--skip-existing"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("--skip-existing needs per-arch references that contain the commit"),
        "{}",
        r.stderr
    );
    assert!(fake.calls_matching("build *").is_empty());
}

// ---------------------------------------------------------------- signals, fail-fast, timeouts

pub(crate) fn spawn(p: &Project, fake: &FakeEngine, args: &[&str]) -> std::process::Child {
    command(p, fake, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub(crate) fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: signalling the multiarch this test started.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Its exit code, if it ends within `within`.
pub(crate) fn exit_within(child: &mut std::process::Child, within: Duration) -> Option<i32> {
    let mut code = None;
    let _ = wait_until(within, || match child.try_wait() {
        Ok(Some(s)) => {
            code = s.code();
            true
        }
        _ => false,
    });
    code
}

pub(crate) fn gone(fake: &FakeEngine) -> bool {
    wait_until(Duration::from_secs(5), || {
        processes_with(fake.marker()).is_empty()
    })
    .is_ok()
}

#[test]
fn sigint_ends_the_run_and_every_process_of_its_steps() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("push *amd64*", [Reply::hang()]);
    let mut child = spawn(&p, &fake, &[]);
    wait_until(Duration::from_secs(30), || {
        processes_with(fake.marker()).len() >= 2
    })
    .expect("the push hangs, with a grandchild");
    signal(&child, libc::SIGINT);
    let code = exit_within(&mut child, Duration::from_secs(8));
    assert_eq!(
        code,
        Some(130),
        "SIGTERM to the group ends it within the grace period"
    );
    assert!(gone(&fake), "{:?}", processes_with(fake.marker()));
    let r = Run::of(&p, child.wait_with_output().unwrap());
    assert_eq!(r.status("push:app/amd64"), "cancelled");
    // The arm64v8 arch may still be on its way when the signal comes: the
    // reason names the first need that was cancelled or never ran.
    let reason = r.reason(&format!("manifest-create:app:{SHA}"));
    assert!(
        reason.starts_with("needs ")
            && (reason.ends_with(" was cancelled") || reason.ends_with(" did not run")),
        "{reason}"
    );
    let end = r.events.last().unwrap();
    assert_eq!(
        (&end["event"], &end["status"], &end["exit_code"]),
        (&"run-finished".into(), &"interrupted".into(), &130.into())
    );
    assert!(fake.calls_matching("manifest *").is_empty());
}

#[test]
fn a_second_sigint_kills_what_ignores_the_first() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("push *amd64*", [Reply::hang_ignoring_term()]);
    let mut child = spawn(&p, &fake, &[]);
    wait_until(Duration::from_secs(30), || fake.hanging()).expect("the push hangs");
    wait_until(Duration::from_secs(5), || {
        !processes_with(fake.marker()).is_empty()
    })
    .expect("the hanging process runs");
    signal(&child, libc::SIGINT);
    wait_until(Duration::from_secs(10), || fake.got_term()).expect("the push got SIGTERM");
    assert!(!processes_with(fake.marker()).is_empty(), "and ignored it");
    signal(&child, libc::SIGINT);
    // Well before the 10 s grace would end it by SIGKILL anyway.
    assert_eq!(exit_within(&mut child, Duration::from_secs(8)), Some(130));
    assert!(gone(&fake), "{:?}", processes_with(fake.marker()));
}

#[test]
fn fail_fast_ends_the_running_steps_and_starts_no_more() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("build *ARCH=arm64v8*", [Reply::hang()]);
    fake.on(
        "build *ARCH=amd64*",
        [Reply::exit(1).after_hang().stdout("boom")],
    );
    // Both builds at once: the failing one waits until the other hangs.
    let mut child = spawn(&p, &fake, &["--fail-fast", "--jobs", "2"]);
    assert_eq!(exit_within(&mut child, Duration::from_secs(30)), Some(1));
    assert!(gone(&fake), "{:?}", processes_with(fake.marker()));
    let r = Run::of(&p, child.wait_with_output().unwrap());
    assert_eq!(r.status("build:app/amd64"), "failed");
    assert_eq!(r.status("build:app/arm64v8"), "cancelled");
    assert!(fake.calls_matching("push *").is_empty());
    assert!(fake.calls_matching("run *").is_empty());
}

#[test]
fn keep_going_runs_the_other_arches_to_the_end() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("build *ARCH=amd64*", [Reply::exit(1).stdout("boom")]);
    let r = run(&p, &fake, &[]);
    assert_eq!(r.code, Some(1));
    assert_eq!(r.status("build:app/amd64"), "failed");
    assert_eq!(r.reason("test:app/amd64"), "needs build:app/amd64 failed");
    for id in ["build:app/arm64v8", "test:app/arm64v8", "push:app/arm64v8"] {
        assert_eq!(r.status(id), "ok", "{id}");
    }
    assert_eq!(r.status(&format!("manifest-create:app:{SHA}")), "skipped");
    assert_eq!(r.status("verify:app/arm64v8"), "skipped");
    assert!(fake.calls_matching("manifest *").is_empty());
}

#[test]
fn a_step_over_its_timeout_is_ended_with_its_processes() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on("build *ARCH=amd64*", [Reply::hang()]);
    let r = run(&p, &fake, &["--stage", "build", "--step-timeout", "1s"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(r.status("build:app/amd64"), "timed-out");
    assert_eq!(
        r.reason("build:app/amd64"),
        "build failed: timed out after 1.0s"
    );
    assert_eq!(r.status("build:app/arm64v8"), "ok");
    assert!(gone(&fake), "{:?}", processes_with(fake.marker()));
}

// ---------------------------------------------------------------- before the steps

#[test]
fn an_engine_that_does_not_answer_is_exit_3_before_any_step() {
    let (p, fake) = project(TWO_ARCHES);
    fake.on(
        "version --format {{.Server.Version}}",
        [Reply::exit(1).stderr("Cannot connect to the Docker daemon at ssh://fake-arm64. Is the docker daemon running?")],
    );
    let r = run(&p, &fake, &[]);
    assert_eq!(r.code, Some(3));
    assert!(
        r.stderr
            .contains("does not answer: Cannot connect to the Docker daemon")
            && r.stderr.contains("help: "),
        "{}",
        r.stderr
    );
    assert!(fake.calls_matching("build *").is_empty());
}

#[test]
fn needs_outside_the_selection_must_be_in_the_registry() {
    let (p, fake) = project(TWO_ARCHES);
    let r = run(&p, &fake, &["--stage", "publish"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr
            .contains("needs outside this selection are missing:")
            && r.stderr
                .contains(&format!("push:app/amd64 ({AMD64} is not in the registry)")),
        "{}",
        r.stderr
    );
    assert!(created(&fake).is_empty());

    let (p, fake) = project(TWO_ARCHES);
    let (d1, _) = in_registry(&fake);
    let r = run(&p, &fake, &["--stage", "publish"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(created(&fake).starts_with(&d1));
}

#[test]
fn the_login_secret_goes_to_stdin_only_and_is_masked_everywhere() {
    const PW: &str = "s3cr3t-pw-4711";
    let (p, fake) = project(TWO_ARCHES);
    fake.on(
        "build *ARCH=amd64*",
        [Reply::exit(1).stdout(&format!("token={PW} rejected"))],
    );
    let junit = p.path().join("junit.xml");
    let out = command(&p, &fake, &["--login", "--junit", junit.to_str().unwrap()])
        .env("MULTIARCH_REGISTRY_USER", "ci-bot")
        .env("MULTIARCH_REGISTRY_PASSWORD", PW)
        .output()
        .unwrap();
    let r = Run::of(&p, out);
    assert_eq!(r.code, Some(1));
    let logins = fake.calls_matching("login *");
    assert_eq!(logins.len(), 1);
    assert_eq!(
        logins[0].line(),
        "login --username ci-bot --password-stdin 127.0.0.1:5999"
    );
    assert_eq!(logins[0].stdin.as_deref(), Some(PW));
    assert!(fake
        .calls()
        .iter()
        .all(|c| !c.args.iter().any(|a| a.contains(PW))));
    let events = std::fs::read_to_string(p.path().join("events.jsonl")).unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    for (what, text) in [
        ("stdout", &r.stdout),
        ("stderr", &r.stderr),
        ("events", &events),
        ("junit", &xml),
    ] {
        assert!(!text.contains(PW), "{what}: {text}");
    }
    assert!(r.stdout.contains("token=•••••• rejected"), "{}", r.stdout);
    assert!(xml.contains("token=•••••• rejected"), "{xml}");
}

const TWO_IMAGES: &str = r#"
[[image]]
name = "tool"
"#;

#[test]
fn atomic_publishing_holds_every_list_back_when_one_image_fails() {
    for atomic in [false, true] {
        let spec = format!("{TWO_ARCHES}{TWO_IMAGES}\n[publish]\natomic = {atomic}\n");
        let (p, fake) = project(&spec);
        fake.on("build *app/arm64v8*", [Reply::exit(1).stdout("boom")]);
        let r = run(&p, &fake, &[]);
        assert_eq!(r.code, Some(1));
        let tool = r.status(&format!("manifest-create:tool:{SHA}"));
        if atomic {
            assert_eq!(tool, "skipped");
            assert!(
                r.reason(&format!("manifest-create:tool:{SHA}"))
                    .starts_with("[publish] atomic: "),
                "{}",
                r.reason(&format!("manifest-create:tool:{SHA}"))
            );
            assert!(!fake.requests().iter().any(|l| l.starts_with("PUT ")));
        } else {
            assert_eq!(tool, "ok");
            assert!(fake.registry().manifest("acme/tool", SHA).is_some());
        }
        assert_eq!(r.status(&format!("manifest-create:app:{SHA}")), "skipped");
    }
}

#[test]
fn an_atomic_release_whose_tag_move_fails_puts_every_moved_tag_back() {
    let spec = format!("{TWO_ARCHES}{TWO_IMAGES}\n[publish]\natomic = true\n");
    let (p, fake) = project(&spec);
    // The release before: both images' lists.
    assert_eq!(run(&p, &fake, &[]).code, Some(0));
    let before = |repo: &str| fake.registry().manifest(repo, "latest").unwrap();
    let (app, tool) = (before("acme/app"), before("acme/tool"));
    // The next commit; one specific PUT fails (a fault proxy's 500), retried
    // and then given up.
    const NEXT: &str = "0000000000000000000000000000000000000abc";
    fake.registry()
        .fail("PUT", "/v2/acme/tool/manifests/latest", 500, 100);
    let mut c = p.command(&["run", "--branch", "main", "--sha", NEXT]);
    c.arg("--events")
        .arg(p.path().join("events.jsonl"))
        .env("PATH", fake.path())
        .env("MULTIARCH_RETRY_BACKOFF_MS", "1")
        .env_remove("DOCKER_HOST");
    let r = Run::of(&p, c.output().unwrap());
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert_eq!(r.status("manifest-push:tool:latest"), "failed");
    let reason = r.reason("manifest-push:tool:latest");
    assert!(reason.contains("[publish] atomic: "), "{reason}");
    // Every tag is where it was: the floating ones name the old lists, the new
    // commit's tags are gone.
    assert_eq!(before("acme/app"), app, "app:latest put back");
    assert_eq!(before("acme/tool"), tool);
    for repo in ["acme/app", "acme/tool"] {
        assert_eq!(
            fake.registry().manifest(repo, NEXT),
            None,
            "{repo}:{NEXT} removed: {reason}"
        );
    }
    // Each undo is said.
    let said: Vec<String> = r
        .events
        .iter()
        .filter(|e| e["event"] == "note")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .filter(|m| m.contains("put back to") || m.contains("removed (it did not exist before)"))
        .collect();
    assert!(!said.is_empty(), "{:#?}", r.events);
    // No verify passes on a release that was put back.
    assert_ne!(r.status("verify:app/amd64"), "ok");
}

// ---------------------------------------------------------------- reads of the registry

/// `multiarch run --stage verify` on a feature branch (no list) of a one-arch
/// spec: the per-arch reference is read (over plain HTTP: loopback) by the check
/// of needs outside the selection, then by the verify. The first read finds it;
/// later ones are answered `status` when there is one.
fn verify_reading(status: Option<u16>, extra: &[&str]) -> (Run, Vec<String>, Vec<String>) {
    let (p, fake) = project(
        "[project]\nregistry = \"127.0.0.1:5999/acme\"\n[archs]\ndefault = [\"amd64\"]\n[[image]]\nname = \"app\"\n",
    );
    fake.registry().image("acme/app/amd64", SHA, "linux/amd64");
    if let Some(s) = status {
        fake.registry()
            .fail_after("HEAD", "/acme/app/amd64/manifests/", s, 100, 1);
    }
    let mut c = p.command(&[
        "run",
        "--stage",
        "verify",
        "--branch",
        "feature/x",
        "--sha",
        SHA,
    ]);
    c.args(extra)
        .arg("--events")
        .arg(p.path().join("events.jsonl"))
        .env("PATH", fake.path())
        .env("MULTIARCH_RETRY_BACKOFF_MS", "1")
        .env_remove("DOCKER_HOST");
    let r = Run::of(&p, c.output().unwrap());
    (r, lines(&fake.calls()), fake.requests())
}

fn reads(requests: &[String]) -> usize {
    requests
        .iter()
        .filter(|l| l.starts_with("HEAD /v2/acme/app/amd64/manifests/"))
        .count()
}

#[test]
fn verify_on_a_branch_that_does_not_publish_reads_a_loopback_registry_over_plain_http() {
    let (r, calls, requests) = verify_reading(None, &[]);
    assert_eq!(r.code, Some(0), "{}\n{calls:#?}", r.stdout);
    assert_eq!(reads(&requests), 2, "{requests:#?}");
    assert!(
        calls.iter().any(|l| l.starts_with("run ")
            && l.contains("--platform linux/amd64")
            && l.contains(" 127.0.0.1:5999/acme/app/amd64@sha256:")),
        "the pushed image runs by digest:\n{calls:#?}"
    );
}

#[test]
fn a_transient_read_failure_is_retried_as_often_as_asked_and_no_more() {
    // The check of the needs outside `--stage verify` reads once, then the verify.
    for (retries, reads_wanted) in [("0", 1 + 1), ("2", 1 + 3)] {
        let (r, _, requests) = verify_reading(Some(503), &["--retries", retries]);
        assert_eq!(r.code, Some(1), "{}", r.stdout);
        assert_eq!(
            reads(&requests),
            reads_wanted,
            "--retries {retries}:\n{requests:#?}"
        );
        assert_eq!(
            r.stdout.contains("retry 2/2 in"),
            retries == "2",
            "each retry is reported:\n{}",
            r.stdout
        );
    }
}

#[test]
fn a_not_found_is_never_retried() {
    let (r, _, requests) = verify_reading(Some(404), &[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert_eq!(
        reads(&requests),
        2,
        "the default 3 retries do not apply to a 404:\n{requests:#?}"
    );
}
