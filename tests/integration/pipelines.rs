//! Real-world pipelines (issue 12), without an engine: registries as tutorials and
//! CI systems write them, the Makefile tag convention, one Dockerfile per arch,
//! verify on images with an ENTRYPOINT or without `uname`, `multiarch init` on
//! per-arch layouts, and output that cannot be written. Runs that need a
//! container engine use a fake `docker` on PATH; the real engine is in
//! tests/integration/engine.rs and tests/integration/podman.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::fake_engine::{FakeEngine, Reply};
use crate::support::{temp_dir, Project, SHA};
use multiarch::plan::{Action, Host};
use multiarch::{Environment, GitContext, Plan, PlanOptions, Spec, Step, StepKind};

fn spec_in(dir: &Path, text: &str) -> Spec {
    Spec::from_str_in(text, "multiarch.toml", dir, &Environment::empty())
        .unwrap_or_else(|e| panic!("the spec is valid: {e}"))
}

fn fixture() -> PathBuf {
    PathBuf::from("tests/fixtures/project")
}

fn opts() -> PlanOptions {
    PlanOptions {
        host: Host::fixed("linux/amd64"),
        ..PlanOptions::default()
    }
}

fn on_main() -> GitContext {
    GitContext {
        branch: Some("main".into()),
        sha: Some(SHA.into()),
        ..GitContext::default()
    }
}

fn plan_of(text: &str, ctx: &GitContext) -> Plan {
    Plan::new(&spec_in(&fixture(), text), ctx, &opts()).unwrap_or_else(|e| panic!("plans: {e}"))
}

fn step<'p>(plan: &'p Plan, id: &str) -> &'p Step {
    plan.find_by_display(id).unwrap_or_else(|| {
        panic!(
            "no step {id} in {:?}",
            plan.steps().iter().map(|s| &s.id).collect::<Vec<_>>()
        )
    })
}

fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    argv.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].as_str())
}

fn build_arg<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == "--build-arg")
        .find_map(|w| w[1].strip_prefix(&format!("{name}=")))
}

// ------------------------------------------------------------ registries

#[test]
fn a_registry_needs_no_path() {
    for (registry, host, insecure) in [
        ("localhost:5000", "localhost:5000", true),
        ("127.0.0.1:5000", "127.0.0.1:5000", true),
        ("registry.lan:5000", "registry.lan:5000", false),
        ("[::1]:5000/x", "[::1]:5000", true),
        ("[2001:db8::1]/repo", "[2001:db8::1]", false),
    ] {
        let text = format!(
            "[project]\nregistry = \"{registry}\"\n[[image]]\nname = \"app\"\ncontext = \"app\"\n"
        );
        let p = plan_of(&text, &on_main());
        assert_eq!(p.registries(), [host], "{registry}");
        let push = step(&p, "push:app/arm64v8");
        assert_eq!(
            push.reference(),
            Some(format!("{registry}/app/arm64v8:{SHA}").as_str())
        );
        let create = step(&p, "manifest-create:app:latest");
        assert_eq!(
            create.reference(),
            Some(format!("{registry}/app:latest").as_str())
        );
        let scheme = if insecure { "http://" } else { "https://" };
        assert!(
            step(&p, "manifest-push:app:latest").action.requests()[0]
                .url
                .starts_with(&format!("{scheme}{host}/v2/")),
            "{registry}: plain HTTP only for loopback"
        );
        // The verify step runs the list's entry by digest in the registry's repository.
        let verify = step(&p, "verify:app/amd64").command();
        assert!(
            verify
                .iter()
                .any(|a| a.starts_with(&format!("{registry}/app@<digest of linux/amd64"))),
            "{verify:?}"
        );
    }
}

#[test]
fn insecure_registries_take_ipv6_hosts_and_ports() {
    let text = "[project]\nregistry = \"[fd00::5]:5000/acme\"\ninsecure_registries = [\"[fd00::5]:5000\"]\n[[image]]\nname = \"app\"\ncontext = \"app\"\n";
    let p = plan_of(text, &on_main());
    assert_eq!(
        step(&p, "manifest-push:app:latest").action.requests()[0].url,
        "http://[fd00::5]:5000/v2/acme/app/manifests/latest"
    );
}

#[test]
fn plain_http_reaches_path_less_and_ipv6_loopback_registries() {
    use multiarch::engine::podman::registries_conf;
    use multiarch::exec::session::plain_http_registries;
    for (registry, want) in [
        ("localhost:5000", vec!["localhost:5000"]),
        ("[::1]:5000/x", vec!["[::1]:5000"]),
        ("127.0.0.1:5000", vec!["127.0.0.1:5000"]),
        ("registry.lan:5000", vec![]),
        ("127.example.com:5000", vec![]),
    ] {
        let text = format!(
            "[project]\nregistry = \"{registry}\"\n[[image]]\nname = \"app\"\ncontext = \"app\"\n"
        );
        let p = plan_of(&text, &on_main());
        assert_eq!(plain_http_registries(&p), want, "{registry}");
    }
    // Podman reads them from the registries.conf of the run, brackets and all.
    let conf = registries_conf(None, &["[::1]:5000".into()]).unwrap();
    let t: toml::Table = conf.parse().unwrap();
    assert_eq!(t["registry"][0]["location"].as_str(), Some("[::1]:5000"));
    assert_eq!(t["registry"][0]["insecure"].as_bool(), Some(true));
}

#[test]
fn registry_ports_are_1_to_65535() {
    for (value, ok) in [
        ("localhost:1", true),
        ("localhost:65535", true),
        ("localhost:0", false),
        ("localhost:65536", false),
        ("localhost:70000/acme", false),
    ] {
        let text = format!(
            "[project]\nregistry = \"{value}\"\n[[image]]\nname = \"app\"\ncontext = \"app\"\n"
        );
        let r = Spec::from_str_in(&text, "multiarch.toml", &fixture(), &Environment::empty());
        assert_eq!(
            r.is_ok(),
            ok,
            "{value}: {:?}",
            r.err().map(|e| e.to_string())
        );
    }
}

// ------------------------------------------------------------ template variables

const MAKEFILE_TAGS: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"

[archs]
default = ["amd64", "arm32v7", "arm64v8"]

[tags]
arch = "{repo}:{version}_{platform_tag}"
manifest = ["{version}", "{major}.{minor}"]

[publish]
tags = ["v*"]

[[image]]
name = "app"
context = "app"
args = { GOOS = "{os}", GOARCH = "{architecture}", GOARM = "{variant}", PLATFORM = "{platform}" }
"#;

fn on_tag(tag: &str) -> GitContext {
    GitContext {
        git_tag: Some(tag.into()),
        sha: Some(SHA.into()),
        ..GitContext::default()
    }
}

#[test]
fn makefile_style_per_arch_tags_and_version_lists() {
    let p = plan_of(MAKEFILE_TAGS, &on_tag("v1.4.2"));
    let r = |a: &str| {
        step(&p, &format!("push:app/{a}"))
            .reference()
            .unwrap()
            .to_string()
    };
    assert_eq!(r("amd64"), "127.0.0.1:5000/acme/app:1.4.2_linux_amd64");
    assert_eq!(r("arm32v7"), "127.0.0.1:5000/acme/app:1.4.2_linux_arm_v7");
    assert_eq!(r("arm64v8"), "127.0.0.1:5000/acme/app:1.4.2_linux_arm64");
    let lists: Vec<&str> = p
        .steps()
        .iter()
        .filter(|s| s.kind() == StepKind::ManifestPush)
        .filter_map(|s| s.reference())
        .collect();
    assert_eq!(
        lists,
        [
            "127.0.0.1:5000/acme/app:1.4.2",
            "127.0.0.1:5000/acme/app:1.4"
        ]
    );
    let b = step(&p, "build:app/arm32v7").command();
    assert_eq!(build_arg(&b, "GOOS"), Some("linux"));
    assert_eq!(build_arg(&b, "GOARCH"), Some("arm"));
    assert_eq!(build_arg(&b, "GOARM"), Some("v7"));
    assert_eq!(build_arg(&b, "PLATFORM"), Some("linux/arm/v7"));
    let b = step(&p, "build:app/amd64").command();
    assert_eq!(build_arg(&b, "GOARM"), Some(""), "no variant: empty");
}

#[test]
fn platform_tag_alone_makes_the_per_arch_reference_unique() {
    let text = "[tags]\narch = \"{repo}:{sha}_{platform_tag}\"\n[archs]\ndefault = [\"amd64\", \"arm32v6\", \"arm32v7\", \"arm64v8\"]\n[[image]]\nname = \"app\"\ncontext = \"app\"\n";
    let p = plan_of(text, &on_main());
    assert_eq!(
        step(&p, "push:app/arm32v6").reference(),
        Some(format!("app:{SHA}_linux_arm_v6").as_str())
    );
}

// ------------------------------------------------------------ per-arch Dockerfiles

const PI: &str = r#"
[archs]
default = ["amd64", "arm32v7", "arm64v8"]

[[image]]
name = "pi"
context = "pi"
dockerfile = "Dockerfile.amd64"
target = "runtime"
args = { VERSION = "1", FLAVOUR = "plain" }
verify = { command = ["/app", "--version"], expect = "app 1" }

[image.per_arch.arm64v8]
dockerfile = "Dockerfile.aarch64"

[image.per_arch."linux/arm/v7"]
dockerfile = "Dockerfile.armhf"
target = "armhf"
args = { FLAVOUR = "hf", GOARM = "7" }
verify = { command = ["uname", "-m"] }
"#;

#[test]
fn per_arch_tables_override_one_arch() {
    let p = plan_of(PI, &on_main());
    let amd = step(&p, "build:pi/amd64").command();
    assert_eq!(flag(&amd, "-f"), Some("pi/Dockerfile.amd64"));
    assert_eq!(flag(&amd, "--target"), Some("runtime"));
    assert_eq!(build_arg(&amd, "FLAVOUR"), Some("plain"));
    assert_eq!(build_arg(&amd, "GOARM"), None);

    let arm64 = step(&p, "build:pi/arm64v8").command();
    assert_eq!(flag(&arm64, "-f"), Some("pi/Dockerfile.aarch64"));
    assert_eq!(
        flag(&arm64, "--target"),
        Some("runtime"),
        "not overridden: the image's"
    );

    let arm = step(&p, "build:pi/arm32v7").command();
    assert_eq!(flag(&arm, "-f"), Some("pi/Dockerfile.armhf"));
    assert_eq!(flag(&arm, "--target"), Some("armhf"));
    assert_eq!(
        build_arg(&arm, "FLAVOUR"),
        Some("hf"),
        "merged over the image's"
    );
    assert_eq!(build_arg(&arm, "VERSION"), Some("1"), "the image's kept");
    assert_eq!(build_arg(&arm, "GOARM"), Some("7"), "added");

    // The image's verify for amd64 and arm64v8; arm32v7's own (the uname check).
    let check = |id: &str| match &step(&p, id).action {
        Action::Test { check, .. } | Action::Verify { check, .. } => check.clone(),
        _ => panic!("{id} is not a test or verify"),
    };
    assert_eq!(check("test:pi/arm64v8").command, ["/app", "--version"]);
    assert!(!check("test:pi/arm64v8").platform_fallback);
    assert_eq!(check("verify:pi/arm32v7").command, ["uname", "-m"]);
    assert!(check("verify:pi/arm32v7").platform_fallback);
}

#[test]
fn a_templated_dockerfile_names_one_file_per_arch() {
    let tmp = temp_dir("per-arch");
    for f in ["Dockerfile.amd64", "Dockerfile.arm64v8", "Dockerfile.armhf"] {
        std::fs::create_dir_all(tmp.path().join("img")).unwrap();
        std::fs::write(tmp.path().join("img").join(f), "FROM scratch\n").unwrap();
    }
    let text = "[archs]\ndefault = [\"amd64\", \"arm32v7\", \"arm64v8\"]\n[[image]]\nname = \"img\"\ncontext = \"img\"\ndockerfile = \"Dockerfile.{arch}\"\n[image.per_arch.arm32v7]\ndockerfile = \"Dockerfile.armhf\"\n";
    let spec = spec_in(tmp.path(), text);
    let p = Plan::new(&spec, &on_main(), &opts()).unwrap();
    for (a, f) in [
        ("amd64", "img/Dockerfile.amd64"),
        ("arm64v8", "img/Dockerfile.arm64v8"),
        ("arm32v7", "img/Dockerfile.armhf"),
    ] {
        assert_eq!(
            flag(&step(&p, &format!("build:img/{a}")).command(), "-f"),
            Some(f)
        );
    }
    assert_eq!(spec.images[0].paths, ["img/**"], "the context holds them");
}

#[test]
fn changed_since_watches_every_per_arch_dockerfile() {
    let tmp = temp_dir("per-arch-paths");
    std::fs::create_dir_all(tmp.path().join("app")).unwrap();
    std::fs::create_dir_all(tmp.path().join("docker")).unwrap();
    for f in ["Dockerfile.amd64", "Dockerfile.arm64v8"] {
        std::fs::write(tmp.path().join("docker").join(f), "FROM scratch\n").unwrap();
    }
    let text = "[[image]]\nname = \"app\"\ncontext = \"app\"\ndockerfile = \"../docker/Dockerfile.{arch}\"\n";
    let spec = spec_in(tmp.path(), text);
    assert_eq!(
        spec.images[0].paths,
        [
            "app/**",
            "docker/Dockerfile.amd64",
            "docker/Dockerfile.arm64v8"
        ]
    );
    let changed = |f: &str| {
        let o = PlanOptions {
            changed_files: Some(("HEAD~1".into(), vec![f.to_string()])),
            ..opts()
        };
        Plan::new(&spec, &on_main(), &o)
            .unwrap()
            .steps()
            .iter()
            .any(|s| s.id == "build:app/arm64v8")
    };
    assert!(changed("docker/Dockerfile.arm64v8"));
    assert!(!changed("docker/README.md"));
}

// ------------------------------------------------------------ verify and ENTRYPOINT

fn run_argv(plan: &Plan, id: &str) -> Vec<String> {
    step(plan, id).command()
}

#[test]
fn the_check_replaces_the_entrypoint_unless_asked_to_keep_it() {
    let text = r#"
[[image]]
name = "server"
context = "app"

[[image]]
name = "cli"
context = "api"
verify = { command = ["version"], expect = "cli 2", entrypoint = true }

[image.per_arch.arm64v8]
verify = { entrypoint = false, command = ["/usr/bin/cli", "version"] }
"#;
    let p = plan_of(text, &on_main());
    let t = run_argv(&p, "test:server/amd64");
    assert_eq!(flag(&t, "--entrypoint"), Some("uname"));
    assert_eq!(
        t[t.len() - 2..],
        [format!("server/amd64:{SHA}"), "-m".into()]
    );
    let v = run_argv(&p, "verify:server/amd64");
    assert_eq!(flag(&v, "--entrypoint"), Some("uname"));
    assert_eq!(v.last().map(String::as_str), Some("-m"));

    let c = run_argv(&p, "test:cli/amd64");
    assert_eq!(flag(&c, "--entrypoint"), None, "{c:?}");
    assert_eq!(
        c[c.len() - 2..],
        [format!("cli/amd64:{SHA}"), "version".into()]
    );
    let c = run_argv(&p, "test:cli/arm64v8");
    assert_eq!(flag(&c, "--entrypoint"), Some("/usr/bin/cli"));
    assert_eq!(c.last().map(String::as_str), Some("version"));
}

#[test]
fn a_file_wide_entrypoint_setting_applies_to_every_image() {
    let text = "[verify]\nentrypoint = true\ncommand = [\"selftest\"]\n[[image]]\nname = \"app\"\ncontext = \"app\"\n";
    let p = plan_of(text, &on_main());
    let t = run_argv(&p, "test:app/amd64");
    assert_eq!(flag(&t, "--entrypoint"), None);
    assert_eq!(t.last().map(String::as_str), Some("selftest"));
}

// ------------------------------------------------------------ a fake docker

/// The fake engine's answer for an image without `command`, as dockerd with
/// runc gives it (exit 127).
fn without(fake: &FakeEngine, command: &str) {
    fake.on(
        &format!("run *--entrypoint {command} *"),
        [Reply::exit(127).stderr(&format!(
            "docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"{command}\": executable file not found in $PATH: unknown."
        ))],
    );
}

const ONE_ARCH: &str = r#"
[archs]
default = ["amd64"]

[[image]]
name = "hello"
context = "hello"
"#;

/// A project and a fake docker whose image has an ENTRYPOINT that refuses
/// unknown arguments: a run that keeps it fails with exit 64.
fn fake_project(spec: &str) -> (Project, FakeEngine) {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", spec)
        .file("hello/Dockerfile", "FROM scratch\n");
    let fake = FakeEngine::new(p.path());
    (p, fake)
}

fn entrypoint_refuses_arguments(fake: &FakeEngine) {
    fake.on("run *--entrypoint *", [Reply::pass()]);
    fake.on("run *", [Reply::exit(64).stderr("usage: server [serve]")]);
}

fn run_command(p: &Project, fake: &FakeEngine) -> Command {
    let mut c = p.command(&["run", "--sha", SHA, "--branch", "main", "--stage", "build"]);
    c.env("PATH", fake.path()).env_remove("DOCKER_HOST");
    c
}

fn run_fake(p: &Project, fake: &FakeEngine, args: &[&str]) -> Output {
    run_command(p, fake).args(args).output().unwrap()
}

fn events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn an_image_without_uname_is_checked_by_its_config_platform() {
    let (p, fake) = fake_project(ONE_ARCH);
    without(&fake, "uname");
    let out = run_fake(&p, &fake, &["--events", "-"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let ev = events(&String::from_utf8_lossy(&out.stdout));
    let test = ev
        .iter()
        .find(|e| e["event"] == "step-finished" && e["id"] == "test:hello/amd64")
        .expect("the test step finished");
    assert_eq!(test["status"], "ok");
    assert_eq!(test["detail"], "platform checked from config: linux/amd64");
    assert!(
        ev.iter().any(|e| e["event"] == "note"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("platform checked from config"))),
        "a note says so in the step's output"
    );
    // The human view (on stderr beside --events -) says so too.
    assert!(
        stderr.contains("platform checked from config: linux/amd64"),
        "{stderr}"
    );
    assert!(
        !fake
            .calls_matching("run *--entrypoint uname hello/amd64:*")
            .is_empty(),
        "the check replaced the entrypoint: {:?}",
        fake.calls()
    );
}

#[test]
fn an_explicit_command_that_is_missing_fails() {
    let spec = format!("{ONE_ARCH}verify = {{ command = [\"/hello\", \"--version\"] }}\n");
    let (p, fake) = fake_project(&spec);
    without(&fake, "/hello");
    let out = run_fake(&p, &fake, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("test:hello/amd64"), "{text}");
    assert!(
        text.contains("test command failed: exit code 127"),
        "{text}"
    );
    assert!(!text.contains("platform checked from config"), "{text}");
}

#[test]
fn keeping_the_entrypoint_passes_the_command_to_it() {
    // The fake image's ENTRYPOINT refuses unknown arguments (exit 64).
    let spec = format!("{ONE_ARCH}verify = {{ entrypoint = true }}\n");
    let (p, fake) = fake_project(&spec);
    entrypoint_refuses_arguments(&fake);
    let out = run_fake(&p, &fake, &[]);
    assert_eq!(out.status.code(), Some(1), "the entrypoint got `uname -m`");
    let (p, fake) = fake_project(ONE_ARCH);
    entrypoint_refuses_arguments(&fake);
    let out = run_fake(&p, &fake, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "replaced: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ------------------------------------------------------------ output that cannot be written

fn full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
}

fn to_full(mut c: Command) -> Output {
    c.stdout(full()).output().unwrap()
}

fn plan_project() -> Project {
    let p = Project::new_without_busybox();
    p.file(
        "multiarch.toml",
        "[project]\nregistry = \"localhost:5000\"\n[[image]]\nname = \"app\"\n",
    )
    .file("Dockerfile", "FROM scratch\n");
    p
}

fn says_stdout(o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write to standard output: No space left on device"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn stdout_that_cannot_be_written_is_exit_1() {
    let p = plan_project();
    let sel = ["--sha", SHA, "--branch", "main"];
    for format in ["text", "json", "dot"] {
        let mut args = vec!["plan", "--format", format];
        args.extend(sel);
        says_stdout(&to_full(p.command(&args)));
    }
    let mut dry = vec!["run", "--dry-run"];
    dry.extend(sel);
    says_stdout(&to_full(p.command(&dry)));
    for ci in ["gitlab", "github"] {
        says_stdout(&to_full(p.command(&["ci", ci])));
    }
    for shell in ["bash", "zsh", "fish"] {
        says_stdout(&to_full(p.command(&["completions", shell])));
    }
    says_stdout(&to_full(p.command(&["doctor"])));
    let tmp = temp_dir("init-full");
    std::fs::write(tmp.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let mut init = p.command(&["init"]);
    init.current_dir(tmp.path());
    says_stdout(&to_full(init));
}

/// A plan of thousands of steps is written by several threads (plan/render/json.rs):
/// a write that fails stops them, and the run says so as for a small plan.
#[test]
fn a_large_plan_that_cannot_be_written_is_exit_1() {
    let p = Project::new_without_busybox();
    let mut spec = String::from(
        "[project]\nregistry = \"localhost:5000\"\n[archs]\ndefault = [\"amd64\", \"arm32v7\", \"arm64v8\", \"ppc64le\"]\n",
    );
    for i in 0..200 {
        spec.push_str(&format!("[[image]]\nname = \"app-{i}\"\n"));
    }
    p.file("multiarch.toml", &spec)
        .file("Dockerfile", "FROM scratch\n");
    let args = ["plan", "--format", "json", "--sha", SHA, "--branch", "main"];
    let whole = p.command(&args).output().unwrap();
    assert_eq!(whole.status.code(), Some(0));
    let steps = serde_json::from_slice::<serde_json::Value>(&whole.stdout).unwrap()["steps"]
        .as_array()
        .map_or(0, |s| s.len());
    assert!(
        steps > 2 * 512,
        "large enough for the threaded writer: {steps} steps"
    );
    says_stdout(&to_full(p.command(&args)));
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let p = plan_project();
    for args in [
        vec!["plan", "--sha", SHA, "--branch", "main"],
        vec!["completions", "bash"],
    ] {
        let mut child = p
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before reading anything, as `| head -0` does.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: nothing scary: {err}");
    }
}

#[test]
fn report_paths_that_cannot_be_written_are_exit_2_before_anything_runs() {
    let (p, fake) = fake_project(ONE_ARCH);
    for (flag, file) in [
        ("--junit", "/nonexistent/dir/x.xml"),
        ("--junit", "/proc/version"),
        ("--events", "/dev/full"),
        ("--events", "/proc/version"),
        ("--events", "/nonexistent/dir/events.jsonl"),
    ] {
        let out = run_fake(&p, &fake, &[flag, file]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {file}: {err}");
        assert!(
            err.contains(&format!("{flag}: cannot write {file}")),
            "{flag} {file}: {err}"
        );
        assert!(
            fake.calls_matching("build *").is_empty(),
            "{flag} {file}: nothing ran: {:?}",
            fake.calls()
        );
    }
}

#[test]
fn a_run_whose_summary_or_events_cannot_be_written_is_exit_1() {
    let (p, fake) = fake_project(ONE_ARCH);
    let out = to_full(run_command(&p, &fake));
    says_stdout(&out);

    let mut c = run_command(&p, &fake);
    c.args(["--events", "-"]);
    let out = to_full(c);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write the events to standard output"),
        "{err}"
    );
    assert!(
        err.contains("ok") && err.contains("build:hello/amd64"),
        "the run went on, its view on stderr: {err}"
    );
}

#[test]
fn a_report_device_that_fails_at_the_end_is_exit_1() {
    // A device gets no placeholder (it could be a pipe): its write fails when the
    // report is written, and the run says which file.
    let (p, fake) = fake_project(ONE_ARCH);
    let out = run_fake(&p, &fake, &["--junit", "/dev/full"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write the JUnit report to /dev/full: No space left on device"),
        "{err}"
    );
}

#[test]
fn the_junit_file_holds_a_placeholder_until_the_report_replaces_it() {
    let (p, fake) = fake_project(ONE_ARCH);
    let junit = p.path().join("report.xml");
    let during = p.path().join("during-the-build.xml");
    fake.on("build *", [Reply::pass().copy(&junit, &during)]);
    let out = run_fake(&p, &fake, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    // While the build ran, the file held a report saying the run had not ended.
    let then = std::fs::read_to_string(&during).unwrap();
    assert!(
        then.contains("multiarch run is still running, or ended before writing its report"),
        "{then}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let cases: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(cases, ["build:hello/amd64", "test:hello/amd64"], "{xml}");
    assert!(!xml.contains("still running"), "{xml}");
}

// ------------------------------------------------------------ init

fn init_in(files: &[&str], args: &[&str]) -> (String, String) {
    let tmp = temp_dir("init-per-arch");
    let dir = tmp.path().join("project");
    for f in files {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "FROM scratch\n").unwrap();
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_multiarch"));
    c.arg("init").args(args).current_dir(&dir);
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("multiarch.toml")).unwrap();
    // What init wrote is what `check` accepts.
    Spec::load(&dir.join("multiarch.toml"), &Environment::empty())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let images = text
        .split_once("\n[[image]]")
        .map(|(_, rest)| format!("[[image]]{rest}"))
        .unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).replace(&dir.display().to_string(), "[DIR]");
    (images, stdout)
}

#[test]
fn init_writes_a_template_for_files_named_by_arch() {
    let (images, stdout) = init_in(
        &[
            "app/Dockerfile.amd64",
            "app/Dockerfile.arm64v8",
            "app/Dockerfile.arm32v7",
            "tools/Dockerfile",
        ],
        &[],
    );
    insta::assert_snapshot!("init_template", format!("{stdout}\n{images}"));
}

#[test]
fn init_writes_per_arch_tables_for_a_linuxserver_layout() {
    // linuxserver.io: Dockerfile (amd64), Dockerfile.aarch64, Dockerfile.armhf.
    let (images, _) = init_in(
        &["Dockerfile", "Dockerfile.aarch64", "Dockerfile.armhf"],
        &[],
    );
    insta::assert_snapshot!("init_linuxserver", images);
}

#[test]
fn init_reads_per_arch_directories_and_mixed_names() {
    let (images, _) = init_in(
        &[
            "amd64/Dockerfile",
            "arm64/Dockerfile",
            "armhf/Dockerfile",
            "exporter/x86_64.Dockerfile",
            "exporter/aarch64.Dockerfile",
            "exporter/worker.Dockerfile",
        ],
        &["--arch", "linux/amd64", "--arch", "arm64v8"],
    );
    insta::assert_snapshot!("init_directories", images);
}

/// Layouts of public projects' per-arch builds, each one image for its arches.
#[test]
fn init_takes_the_per_arch_layouts_of_public_projects() {
    // docker-library/hello-world: ARCH/NAME/Dockerfile.
    let (images, _) = init_in(
        &[
            "amd64/hello-world/Dockerfile",
            "arm32v7/hello-world/Dockerfile",
            "arm64v8/hello-world/Dockerfile",
        ],
        &[],
    );
    assert_eq!(images.matches("[[image]]").count(), 1, "{images}");
    assert!(images.contains("name = \"hello-world\""), "{images}");
    assert!(
        images.contains("dockerfile = \"{arch}/hello-world/Dockerfile\""),
        "{images}"
    );
    assert!(
        images.contains("archs = [\"amd64\", \"arm32v7\", \"arm64v8\"]"),
        "{images}"
    );
    // pi-hole's Dockerfile_ARCH, Dockerfile-ARCH, Containerfile.ARCH and
    // ARCH.Containerfile.
    for files in [
        ["Dockerfile_amd64", "Dockerfile_armhf", "Dockerfile_aarch64"],
        ["Dockerfile", "Dockerfile-armhf", "Dockerfile-arm64"],
        [
            "Containerfile",
            "Containerfile.armhf",
            "Containerfile.aarch64",
        ],
        [
            "amd64.Containerfile",
            "armhf.Containerfile",
            "arm64.Containerfile",
        ],
    ] {
        let (images, stdout) = init_in(&files, &[]);
        assert_eq!(
            images.matches("[[image]]").count(),
            1,
            "{files:?}: {images}"
        );
        assert!(
            images.contains("archs = [\"amd64\", \"arm32v7\", \"arm64v8\"]"),
            "{files:?}: {images}"
        );
        // Every file is the image's: init lists it, and so does the file's comment.
        for f in files {
            assert!(stdout.contains(f), "{f}: {stdout}");
            assert!(
                images
                    .lines()
                    .any(|l| l.starts_with("# from ") && l.contains(f)),
                "{f}: {images}"
            );
        }
    }
    // Debian's armel is ARMv5; a second file for one arch is left out, and said.
    let (images, stdout) = init_in(
        &[
            "Dockerfile",
            "Dockerfile.armel",
            "Dockerfile.aarch64",
            "Dockerfile.arm64",
        ],
        &[],
    );
    assert!(
        images.contains("[image.per_arch.arm32v5]\ndockerfile = \"Dockerfile.armel\""),
        "{images}"
    );
    assert!(
        images.contains("# left out: Dockerfile.arm64 (its arch is built from Dockerfile.aarch64)"),
        "{images}"
    );
    assert!(
        stdout.contains("left out Dockerfile.arm64: its arch is built from Dockerfile.aarch64"),
        "{stdout}"
    );
}

#[test]
fn init_follows_a_linked_dockerfile() {
    let tmp = temp_dir("init-links");
    let dir = tmp.path();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.join("Dockerfile.arm64"), "FROM scratch\n").unwrap();
    std::os::unix::fs::symlink("Dockerfile.arm64", dir.join("Dockerfile.armhf")).unwrap();
    // A link back up is not followed into a loop.
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_multiarch"))
        .arg("init")
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("multiarch.toml")).unwrap();
    assert!(text.contains("dockerfile = \"Dockerfile.armhf\""), "{text}");
    assert_eq!(text.matches("\n[[image]]\n").count(), 1, "{text}");
    // The build reads the file the link names (BuildKit cannot read a linked -f).
    let spec = spec_in(dir, &text);
    let plan = Plan::new(&spec, &on_main(), &opts()).unwrap();
    let name = &spec.images[0].name;
    let arm = step(&plan, &format!("build:{name}/arm32v7")).command();
    assert_eq!(flag(&arm, "-f"), Some("Dockerfile.arm64"), "{arm:?}");
}

#[test]
fn pull_refreshes_base_images_in_every_build() {
    let p = plan_project();
    let out = p
        .command(&[
            "plan", "--format", "json", "--sha", SHA, "--branch", "main", "--pull",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let builds: Vec<&serde_json::Value> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "build")
        .collect();
    assert_eq!(builds.len(), 2);
    for b in builds {
        let argv: Vec<&str> = b["command"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert_eq!(argv[..3], ["docker", "build", "--pull"], "{argv:?}");
    }
}
