//! Publishing over the registry's API (issue 15, and the "Publishing integrity"
//! part of issue 17), against the fake engine and the fake registry: floating
//! tags move forward only (git ancestry, or commit time outside the local
//! history), `--force-tags`, concurrent runs, verify of every published tag, and
//! an entry that is itself an index with an attestation.

use std::process::{Command, Output};

use crate::support::fake_engine::FakeEngine;
use crate::support::{git, Project};

const SPEC: &str = r#"
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

/// A git repository with the spec, two commits A then B (B a day later), and
/// the fake engine and registry.
struct Repo {
    p: Project,
    fake: FakeEngine,
    a: String,
    b: String,
}

fn repo() -> Repo {
    let p = Project::new_without_busybox();
    let fake = FakeEngine::new(p.path());
    fake.start_registry();
    p.file("multiarch.toml", &fake.real(SPEC))
        .file("Dockerfile", "FROM scratch\n")
        .file(".gitignore", "bin/\nfake-engine/\n*.jsonl\n");
    let dir = p.path();
    git(dir, &["init", "-q"]);
    git(dir, &["add", "."]);
    commit(dir, "A", "2026-01-01T00:00:00Z");
    let a = git(dir, &["rev-parse", "HEAD"]);
    p.file("NOTES", "b\n");
    git(dir, &["add", "NOTES"]);
    commit(dir, "B", "2026-01-02T00:00:00Z");
    let b = git(dir, &["rev-parse", "HEAD"]);
    Repo { p, fake, a, b }
}

fn commit(dir: &std::path::Path, msg: &str, date: &str) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            msg,
        ])
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_AUTHOR_DATE", date)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Repo {
    fn command(&self, dir: &std::path::Path, sha: &str, args: &[&str]) -> Command {
        let mut c = self.p.command(&["run", "--branch", "main", "--sha", sha]);
        c.current_dir(dir)
            .args(args)
            .env("PATH", self.fake.path())
            .env("MULTIARCH_RETRY_BACKOFF_MS", "1")
            .env_remove("DOCKER_HOST")
            .env_remove("MULTIARCH_REGISTRY_PASSWORD")
            .env_remove("CI_REGISTRY_PASSWORD");
        c
    }

    fn run_in(&self, dir: &std::path::Path, sha: &str, args: &[&str]) -> (i32, String) {
        let out: Output = self.command(dir, sha, args).output().unwrap();
        let text = self.fake.shown(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        eprintln!("--- run {sha} {args:?}\n{text}");
        (out.status.code().unwrap_or(-1), text)
    }

    fn run(&self, sha: &str, args: &[&str]) -> (i32, String) {
        self.run_in(self.p.path(), sha, args)
    }

    /// The revision annotation of the index `tag` names.
    fn revision(&self, tag: &str) -> String {
        let bytes = self.fake.registry().manifest("acme/app", tag).expect(tag);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["annotations"]["org.opencontainers.image.revision"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[test]
fn a_floating_tag_does_not_move_back_to_an_older_commit() {
    let r = repo();
    assert_eq!(r.run(&r.b, &[]).0, 0);
    assert_eq!(r.revision("latest"), r.b);
    // Its parent, published later (a slow pipeline, a retried job).
    let (code, out) = r.run(&r.a, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r.revision("latest"), r.b, "latest still names B's list");
    assert_eq!(r.revision(&r.a), r.a, "A's {{sha}} list exists");
    let short = &r.b[..7];
    assert!(
        out.contains(&format!("kept latest at {short}: newer")),
        "the step and the summary say why:\n{out}"
    );
    // Verify says the kept tag was kept, and passes.
    assert!(out.contains("success"), "{out}");
    // --force-tags moves it anyway.
    let (code, out) = r.run(&r.a, &["--force-tags"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r.revision("latest"), r.a);
    // And the newer commit moves it forward again.
    assert_eq!(r.run(&r.b, &[]).0, 0);
    assert_eq!(r.revision("latest"), r.b);
}

#[test]
fn outside_the_local_history_the_commit_time_decides() {
    let r = repo();
    assert_eq!(r.run(&r.b, &[]).0, 0);
    // A shallow clone of A (as CI checks out): B is not in its history.
    let shallow = crate::support::temp_dir("shallow");
    let c = shallow.path().to_path_buf();
    let url = format!("file://{}", r.p.path().display());
    git(&c, &["init", "-q"]);
    git(&c, &["fetch", "-q", "--depth", "1", &url, &r.a]);
    git(
        &c,
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "FETCH_HEAD",
        ],
    );
    let (code, out) = r.run_in(&c, &r.a, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(r.revision("latest"), r.b, "B was created after A");
    assert!(
        out.contains(&format!("kept latest at {}: newer (", &r.b[..7]))
            && out.contains("not in the local history"),
        "{out}"
    );
}

#[test]
fn two_runs_at_once_publish_whole_lists() {
    let r = repo();
    let mut children: Vec<_> = [&r.a, &r.b]
        .iter()
        .map(|sha| r.command(r.p.path(), sha, &[]).spawn().unwrap())
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    for tag in [r.a.as_str(), r.b.as_str(), "latest"] {
        let bytes = r.fake.registry().manifest("acme/app", tag).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let platforms: Vec<String> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(platforms, ["amd64", "arm64"], "{tag}: one entry per arch");
    }
    // Whichever ran last, the floating tags end at B or stay there.
    assert_eq!(r.revision("latest"), r.b);
}

#[test]
fn verify_fails_when_a_published_tag_names_another_list() {
    let r = repo();
    // A tag gone between the push and the verify (someone else's cleanup): the
    // fake registry answers verify's reads of it with a 404.
    r.fake
        .registry()
        .fail_after("HEAD", "/acme/app/manifests/latest", 404, 100, 0);
    let (code, out) = r.run(&r.b, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("127.0.0.1:5999/acme/app:latest names nothing, not the index this run pushed"),
        "{out}"
    );
}
