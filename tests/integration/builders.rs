//! Builders and build secrets without a daemon: which builder `auto` picks and
//! what the plan shows for it, the BuildKit argv (`--progress plain`, inline
//! cache, `--cache-from`, `--secret`), the secret's file as the build sees it and
//! after the run, and the errors of secrets with the classic builder. The real
//! thing (BuildKit cross-compiling, a secret in no layer, registry cache) is in
//! `engine.rs`.

use std::process::Command;

use crate::support::fake_engine::{FakeEngine, Reply};
use crate::support::{Project, SHA};

const SECRET: &str = "npm-tok-3f9a1c77e2";

const SPEC: &str = r#"
[project]
registry = "127.0.0.1:5999/acme"

[arch.amd64]
builder = "ssh://fake-amd64"

[archs]
default = ["amd64"]

[[image]]
name = "app"
cache_from = ["{repo}/{arch}:latest"]
secrets = { npm = { env = "NPM_TOKEN" } }
"#;

/// The spec with the fake engine, and the fake registry the lists go to (its
/// free port shown as 127.0.0.1:5999 in what the tests read).
fn project(spec: &str) -> (Project, FakeEngine) {
    let p = Project::new_without_busybox();
    let fake = FakeEngine::new(p.path());
    fake.start_registry();
    p.file("multiarch.toml", &fake.real(spec))
        .file("Dockerfile", "FROM scratch\n");
    (p, fake)
}

/// A docker CLI before 23.0: BuildKit built in, no buildx.
fn docker_20(fake: &FakeEngine) {
    fake.on(
        "--version",
        [Reply::ok().stdout("Docker version 20.10.24+dfsg1, build 297e128")],
    );
}

fn multiarch(p: &Project, fake: &FakeEngine, args: &[&str]) -> Command {
    let mut c = p.command(args);
    c.env("PATH", fake.path())
        .env("NPM_TOKEN", SECRET)
        .env_remove("DOCKER_HOST");
    c
}

/// `multiarch run` on main with plain progress and `-v`, `--events` and
/// `--junit` to `files` (as many as given): its exit code and all it printed.
fn run(p: &Project, fake: &FakeEngine, files: &[&std::path::Path]) -> (Option<i32>, String) {
    let mut c = multiarch(
        p,
        fake,
        &[
            "run",
            "--branch",
            "main",
            "--sha",
            SHA,
            "--progress",
            "plain",
            "-v",
        ],
    );
    for (flag, f) in ["--events", "--junit"].iter().zip(files) {
        c.arg(flag).arg(f);
    }
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), fake.shown(&text))
}

fn plan_json(p: &Project, fake: &FakeEngine, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "--format", "json", "--branch", "main", "--sha", SHA];
    args.extend(extra);
    let out = multiarch(p, fake, &args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&fake.shown(&String::from_utf8_lossy(&out.stdout))).unwrap()
}

fn build_argv(plan: &serde_json::Value) -> Vec<String> {
    let b = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "build")
        .unwrap();
    b["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn after<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn auto_builds_with_buildkit_on_a_cli_that_has_it_built_in() {
    let (p, fake) = project(SPEC);
    docker_20(&fake);
    let plan = plan_json(&p, &fake, &[]);
    assert_eq!(plan["builder"]["mode"], "buildkit", "{}", plan["builder"]);
    let argv = build_argv(&plan);
    assert_eq!(
        argv[..6],
        [
            "docker",
            "--host",
            "ssh://fake-amd64",
            "build",
            "--progress",
            "plain"
        ]
    );
    let args = after(&argv, "--build-arg");
    assert!(
        args.contains(&"BUILDKIT_INLINE_CACHE=1"),
        "a pushed image carries its cache: {argv:?}"
    );
    assert_eq!(
        after(&argv, "--cache-from"),
        ["127.0.0.1:5999/acme/app/amd64:latest"]
    );
    assert_eq!(
        after(&argv, "--secret"),
        ["id=npm,src=<file of secret npm>"]
    );
    let text = serde_json::to_string(&plan).unwrap();
    assert!(!text.contains(SECRET), "the plan holds no secret value");
}

#[test]
fn auto_falls_back_to_classic_on_a_cli_without_buildkit_and_says_why_once() {
    let spec = SPEC.replace("secrets = { npm = { env = \"NPM_TOKEN\" } }\n", "");
    let (p, fake) = project(&spec);
    let plan = plan_json(&p, &fake, &[]);
    assert_eq!(plan["builder"]["mode"], "classic");
    let argv = build_argv(&plan);
    assert!(!argv.contains(&"--progress".to_string()), "{argv:?}");
    assert!(!argv.iter().any(|a| a.contains("BUILDKIT")), "{argv:?}");
    let (code, text) = run(&p, &fake, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        text.matches("building with the classic builder: docker 28.2.2 has no buildx plugin")
            .count(),
        1,
        "{text}"
    );
    assert_eq!(
        fake.state("buildkit").as_deref(),
        Some("0"),
        "classic builds get DOCKER_BUILDKIT=0"
    );
}

#[test]
fn buildx_builds_and_loads() {
    let (p, fake) = project(SPEC);
    fake.on(
        "buildx version",
        [Reply::ok().stdout("github.com/docker/buildx v0.12.1")],
    );
    let plan = plan_json(&p, &fake, &[]);
    assert_eq!(plan["builder"]["mode"], "buildx");
    let argv = build_argv(&plan);
    assert_eq!(argv[3..7], ["buildx", "build", "--load", "--progress"]);
}

#[test]
fn buildkit_asked_for_on_a_cli_without_it_is_an_environment_error() {
    let (p, fake) = project(SPEC);
    let out = multiarch(&p, &fake, &["plan", "--builder", "buildkit", "--sha", SHA])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("has no buildx plugin"), "{err}");
    assert!(err.contains("MULTIARCH_DOCKER"), "{err}");
    // `plan` asks the other docker CLI only for this error: it must still be
    // named where it is one with BuildKit built in (Debian's docker.io, which
    // `cargo xtask ci` installs).
    let other = Command::new("/usr/bin/docker")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let builtin = ["18.09", "19.", "20.", "21.", "22."]
        .iter()
        .any(|v| other.starts_with(&format!("Docker version {v}")));
    assert_eq!(
        err.contains("or use /usr/bin/docker"),
        builtin,
        "/usr/bin/docker says {other:?}: {err}"
    );
}

#[test]
fn secrets_with_the_classic_builder_exit_2_before_anything_runs() {
    let (p, fake) = project(SPEC);
    docker_20(&fake);
    let out = multiarch(
        &p,
        &fake,
        &[
            "run",
            "--builder",
            "classic",
            "--branch",
            "main",
            "--sha",
            SHA,
        ],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("multiarch.toml:14), and the builder is classic"),
        "{err}"
    );
    assert!(err.contains("use builder = \"buildkit\""), "{err}");
    assert!(
        fake.calls_matching("build *").is_empty(),
        "nothing was built"
    );
}

#[test]
fn a_secret_reaches_the_build_as_a_private_file_that_is_gone_afterwards() {
    let (p, fake) = project(SPEC);
    docker_20(&fake);
    let junit = p.path().join("junit.xml");
    let events = p.path().join("events.jsonl");
    let (code, text) = run(&p, &fake, &[&events, &junit]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        fake.state("buildkit").as_deref(),
        Some("1"),
        "DOCKER_BUILDKIT=1 for the build"
    );
    assert_eq!(
        fake.state("secret-seen").as_deref(),
        Some(SECRET),
        "the build read the value"
    );
    assert_eq!(fake.state("secret-mode").unwrap().trim(), "600");
    assert_eq!(fake.state("secret-dir-mode").unwrap().trim(), "700");
    let path = fake.state("secret-path").unwrap();
    assert!(path.ends_with("/npm"), "{path}");
    assert!(
        !std::path::Path::new(&path).exists(),
        "the file is removed when the step ends"
    );
    assert!(
        !std::path::Path::new(&path).parent().unwrap().exists(),
        "and its directory"
    );
    let build = fake.calls_matching("build *");
    assert!(build[0]
        .line()
        .contains(&format!("--secret id=npm,src={path}")));
    for call in fake.calls() {
        assert!(
            !call.line().contains(SECRET),
            "no argv holds the value: {}",
            call.line()
        );
    }
    assert!(!text.contains(SECRET), "{text}");
    for f in [&junit, &events] {
        let body = std::fs::read_to_string(f).unwrap();
        assert!(!body.contains(SECRET), "{}", f.display());
    }
}

#[test]
fn a_secret_the_build_prints_is_masked() {
    let (p, fake) = project(SPEC);
    docker_20(&fake);
    fake.on(
        "build *",
        [Reply::pass().stdout(&format!("#7 0.31 token is {SECRET}"))],
    );
    let events = p.path().join("events.jsonl");
    let (code, text) = run(&p, &fake, &[&events]);
    assert_eq!(code, Some(0), "{text}");
    let body = std::fs::read_to_string(&events).unwrap();
    assert!(body.contains("token is ••••••"), "{body}");
    assert!(!body.contains(SECRET) && !text.contains(SECRET), "{text}");
}

fn check(spec: &str, env: &[(&str, &str)]) -> (i32, String) {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", spec)
        .file("Dockerfile", "FROM scratch\n");
    let mut c = p.command(&["check"]);
    c.env_remove("NPM_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn secrets_are_checked_with_spans() {
    let with = |secrets: &str| format!("[[image]]\nname = \"app\"\nsecrets = {secrets}\n");
    let (code, err) = check(&with("{ npm = { vault = \"x\" } }"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown secret source `vault`"), "{err}");
    let (code, err) = check(&with("{ npm = { env = \"NPM_TOKEN\" } }"), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("secret `npm` comes from $NPM_TOKEN, which is not set"),
        "{err}"
    );
    assert!(
        err.contains("multiarch.toml:3:"),
        "points at the line: {err}"
    );
    let (code, err) = check(&with("{ netrc = { file = \"no/such/netrc\" } }"), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("secret `netrc`: no file `no/such/netrc`"),
        "{err}"
    );
    let (code, err) = check(
        &with("{ npm = { env = \"X\", file = \"y\" } }"),
        &[("X", "1")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("needs exactly one source"), "{err}");
    let classic = format!(
        "[project]\nbuilder = \"classic\"\n{}",
        with("{ npm = { env = \"NPM_TOKEN\" } }")
    );
    let (code, err) = check(&classic, &[("NPM_TOKEN", SECRET)]);
    assert_eq!(code, 2);
    assert!(err.contains("secret `npm` needs BuildKit"), "{err}");
    assert!(err.contains("use builder = \"buildkit\""), "{err}");
    let (code, err) = check("[project]\nbuilder = \"buildkt\"\n", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown builder `buildkt`") && err.contains("buildkit"),
        "{err}"
    );
    let (code, err) = check(
        &with("{ npm = { env = \"NPM_TOKEN\" } }"),
        &[("NPM_TOKEN", SECRET)],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_text_plan_says_when_auto_falls_back_to_the_classic_builder() {
    let spec = SPEC.replace("secrets = { npm = { env = \"NPM_TOKEN\" } }\n", "");
    let (p, fake) = project(&spec);
    let out = multiarch(&p, &fake, &["plan", "--sha", SHA])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "builder: classic (DOCKER_BUILDKIT=0 docker build): docker 28.2.2 has no buildx plugin"
        ),
        "{text}"
    );
}

#[test]
fn a_cache_mount_with_the_classic_builder_is_an_error_at_its_dockerfile_line() {
    let spec = SPEC.replace("secrets = { npm = { env = \"NPM_TOKEN\" } }\n", "");
    let (p, fake) = project(&spec);
    p.file(
        "Dockerfile",
        "FROM scratch\nRUN --mount=type=cache,target=/root/.cache make\n",
    );
    let out = multiarch(&p, &fake, &["plan", "--builder", "classic", "--sha", SHA])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "Dockerfile:2 uses RUN --mount=type=cache, which the classic builder does not have"
        ),
        "{err}"
    );
    // The error points at the mount in the Dockerfile, with a label.
    assert!(err.contains("[Dockerfile:2:5]"), "{err}");
    assert!(err.contains("needs BuildKit"), "{err}");
    // `check` says it too when the file chooses classic.
    p.file(
        "multiarch.toml",
        &fake.real(&spec.replace("[project]\n", "[project]\nbuilder = \"classic\"\n")),
    );
    let out = multiarch(&p, &fake, &["check"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("Dockerfile:2 uses RUN --mount=type=cache"),
        "{err}"
    );
    p.file("multiarch.toml", &fake.real(&spec));
    // `auto` on a docker CLI without BuildKit: the machine lacks it (exit 3).
    let out = multiarch(&p, &fake, &["plan", "--sha", SHA])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(
            "which needs BuildKit, and the builder is classic: docker 28.2.2 has no buildx plugin"
        ),
        "{err}"
    );
    assert!(err.contains("help: install the buildx plugin"), "{err}");
    docker_20(&fake);
    let ok = multiarch(&p, &fake, &["plan", "--sha", SHA])
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "auto picks BuildKit, which has cache mounts"
    );
}

#[test]
fn a_secret_s_file_is_removed_when_the_run_is_interrupted_mid_build() {
    use std::time::Duration;
    let (p, fake) = project(SPEC);
    docker_20(&fake);
    fake.on("build *", [Reply::hang()]);
    let mut child = multiarch(&p, &fake, &["run", "--branch", "main", "--sha", SHA])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_until(Duration::from_secs(30), || fake.hanging())
        .expect("the build hangs");
    let path = fake
        .state("secret-path")
        .expect("the build got a secret file");
    assert!(
        std::path::Path::new(&path).exists(),
        "there while the build runs"
    );
    // SAFETY: signalling the multiarch this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut code = None;
    let _ = crate::support::wait_until(Duration::from_secs(15), || match child.try_wait() {
        Ok(Some(s)) => {
            code = s.code();
            true
        }
        _ => false,
    });
    assert_eq!(code, Some(130));
    let dir = std::path::Path::new(&path).parent().unwrap();
    assert!(!dir.exists(), "{} is removed after Ctrl-C", dir.display());
}

/// A builder named in `$MULTIARCH_BUILDER` that is none of the three is a usage
/// error (exit 2) naming the value and the choices.
#[test]
fn an_unknown_builder_in_the_environment_is_exit_2() {
    let (p, fake) = project(SPEC);
    docker_20(&fake);
    let out = multiarch(&p, &fake, &["plan", "--branch", "main", "--sha", SHA])
        .env("MULTIARCH_BUILDER", "kaniko")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("MULTIARCH_BUILDER=`kaniko` is not a builder: auto, buildkit or classic"),
        "{err}"
    );
}
