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
    repo_with(SPEC)
}

/// [`repo`] with another spec.
fn repo_with(spec: &str) -> Repo {
    let p = Project::new_without_busybox();
    let fake = FakeEngine::new(p.path());
    fake.start_registry();
    p.file("multiarch.toml", &fake.real(spec))
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
    // Each run's output to a file (a pipe read after the other run's could fill).
    let logs = crate::support::temp_dir("two-runs");
    let mut children: Vec<_> = [&r.a, &r.b]
        .iter()
        .map(|sha| {
            let log = logs.path().join(sha.as_str());
            let out = std::fs::File::create(&log).unwrap();
            let err = out.try_clone().unwrap();
            let child = r
                .command(r.p.path(), sha, &[])
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap();
            (child, log)
        })
        .collect();
    for (c, log) in &mut children {
        let ok = c.wait().unwrap().success();
        let out = r.fake.shown(&std::fs::read_to_string(log).unwrap());
        assert!(ok, "{out}");
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

/// A verify job after the publish job (`--stage verify`, as `multiarch ci`
/// generates it) proves what the publish job published, from the plan: every
/// other tag of the build names the same index (a floating one: or a newer
/// commit's list), the list has one entry per arch, and each entry is the
/// digest the arch's commit-tagged image names.
#[test]
fn a_verify_job_proves_every_tag_and_entry_another_job_published() {
    let r = repo();
    assert_eq!(r.run(&r.a, &[]).0, 0);
    let (code, out) = r.run(&r.a, &["--stage", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "127.0.0.1:5999/acme/app:latest names the same index as 127.0.0.1:5999/acme/app:{}",
            r.a
        )),
        "{out}"
    );
    // B published since: A's verify job finds latest moved on, and says so.
    assert_eq!(r.run(&r.b, &[]).0, 0);
    let (code, out) = r.run(&r.a, &["--stage", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "127.0.0.1:5999/acme/app:latest has moved on to commit {}'s list sha256:",
            &r.b[..7]
        )) && out.contains(": newer"),
        "{out}"
    );
    // latest put back on A's list behind B's back: B's verify job fails.
    let a_list = r.fake.registry().manifest("acme/app", &r.a).unwrap();
    r.fake.registry().put("acme/app", "latest", &a_list);
    let (code, out) = r.run(&r.b, &["--stage", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "127.0.0.1:5999/acme/app:latest names commit {}'s list sha256:",
            &r.a[..7]
        )) && out.contains(&format!(
            "not this commit's list (the one 127.0.0.1:5999/acme/app:{} names",
            r.b
        )),
        "{out}"
    );
    // Another list of B under latest (another build of B, with another
    // version annotation, published since): B's own, and said so.
    let b_list = r.fake.registry().manifest("acme/app", &r.b).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&b_list).unwrap();
    v["annotations"]["org.opencontainers.image.version"] = "1.0.0".into();
    r.fake
        .registry()
        .put("acme/app", "latest", &serde_json::to_vec(&v).unwrap());
    let (code, out) = r.run(&r.b, &["--stage", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("a list of this commit, not the one"), "{out}");
    // B's amd64 tag names an index (BuildKit's attestations, containerd's
    // image store) whose image is the list's entry: as manifest-create
    // listed it.
    r.fake.registry().put("acme/app", "latest", &b_list);
    let v: serde_json::Value = serde_json::from_slice(&b_list).unwrap();
    let amd = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()
        .clone();
    let per_arch = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [amd],
    });
    let amd_image = r.fake.registry().manifest("acme/app/amd64", &r.b).unwrap();
    r.fake.registry().put(
        "acme/app/amd64",
        &r.b,
        &serde_json::to_vec(&per_arch).unwrap(),
    );
    let (code, out) = r.run(&r.b, &["--arch", "amd64", "--stage", "verify"]);
    assert_eq!(code, 0, "{out}");
    r.fake.registry().put("acme/app/amd64", &r.b, &amd_image);
    // A single-arch push over latest (`docker push app:latest` by hand): not
    // a list, whatever its annotations.
    r.fake.registry().put("acme/app", "latest", &amd_image);
    let (code, out) = r.run(&r.b, &["--arch", "amd64", "--stage", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("127.0.0.1:5999/acme/app:latest names sha256:")
            && out.contains("which is not a list"),
        "{out}"
    );
    r.fake.registry().put("acme/app", "latest", &b_list);
    // B's amd64 image retagged to another image: its list entry is not it.
    let arm = r
        .fake
        .registry()
        .manifest("acme/app/arm64v8", &r.b)
        .unwrap();
    r.fake.registry().put("acme/app/amd64", &r.b, &arm);
    let (code, out) = r.run(&r.b, &["--stage", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("entry is sha256:")
            && out.contains(&format!(
                "not the image pushed as 127.0.0.1:5999/acme/app/amd64:{}",
                r.b
            )),
        "{out}"
    );
    // A list with an entry too few (another tool's), under B's tag.
    let mut v: serde_json::Value = serde_json::from_slice(&b_list).unwrap();
    v["manifests"].as_array_mut().unwrap().truncate(1);
    let one = serde_json::to_vec(&v).unwrap();
    r.fake.registry().put("acme/app", &r.b, &one);
    r.fake.registry().put("acme/app", "latest", &one);
    let (code, out) = r.run(&r.b, &["--arch", "amd64", "--stage", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("lists linux/amd64; this build's list is linux/amd64, linux/arm64/v8"),
        "{out}"
    );
    // latest gone (someone's cleanup) after the publish job: not proved.
    r.fake.registry().put("acme/app", &r.b, &b_list);
    r.fake
        .registry()
        .fail_after("GET", "/acme/app/manifests/latest", 404, 100, 0);
    let (code, out) = r.run(&r.b, &["--arch", "amd64", "--stage", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "127.0.0.1:5999/acme/app:latest names nothing, not this commit's list (the one 127.0.0.1:5999/acme/app:{} names",
            r.b
        )),
        "{out}"
    );
}

/// A verify job whose first list tag is floating (`{branch}`, as many
/// projects tag: no `{sha}` list) after a newer commit's publish: the tag
/// moved on, which is no failure, and the newer list's entries are not held
/// to this commit's images.
#[test]
fn a_verify_job_after_a_newer_publish_accepts_floating_tags_that_moved_on() {
    let r = repo_with(&format!(
        "{SPEC}\n[tags]\nmanifest = [\"{{branch}}\", \"latest\"]\n"
    ));
    assert_eq!(r.run(&r.a, &[]).0, 0);
    assert_eq!(r.run(&r.b, &[]).0, 0);
    assert_eq!(r.revision("main"), r.b);
    let (code, out) = r.run(&r.a, &["--stage", "verify"]);
    assert_eq!(code, 0, "{out}");
    let short = &r.b[..7];
    assert!(
        out.contains(&format!(
            "127.0.0.1:5999/acme/app:main has moved on to commit {short}'s list"
        )) && out.contains(
            "running this commit's linux/amd64 image, 127.0.0.1:5999/acme/app/amd64@sha256:"
        ) && out.contains(
            "127.0.0.1:5999/acme/app:latest names the same index as 127.0.0.1:5999/acme/app:main",
        ),
        "{out}"
    );
    // Moved back to A's parent's list? There is none; a list of no commit
    // this build knows (another tool's, no revision) under a floating tag
    // cannot be judged: said, not failed.
    let mut v: serde_json::Value =
        serde_json::from_slice(&r.fake.registry().manifest("acme/app", "main").unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("annotations");
    r.fake
        .registry()
        .put("acme/app", "main", &serde_json::to_vec(&v).unwrap());
    let (code, out) = r.run(&r.b, &["--stage", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("cannot be told (no revision annotation to compare)"),
        "{out}"
    );
    // A commit-tagged list beside the floating first one: it is this
    // commit's list, checked whole, while the branch tag moved on.
    let r = repo_with(&format!(
        "{SPEC}\n[tags]\nmanifest = [\"{{branch}}\", \"{{sha}}\"]\n"
    ));
    assert_eq!(r.run(&r.a, &[]).0, 0);
    assert_eq!(r.run(&r.b, &[]).0, 0);
    let (code, out) = r.run(&r.a, &["--stage", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "127.0.0.1:5999/acme/app:main has moved on to commit {}'s list",
            &r.b[..7]
        )) && out.contains(&format!(
            "127.0.0.1:5999/acme/app:{} serves linux/amd64 as sha256:",
            r.a
        )),
        "{out}"
    );
    // Docker manifest lists carry no annotations: the commit-tagged list is
    // this commit's, and the floating one that moved cannot be judged.
    let r = repo_with(&format!(
        "{SPEC}\n[publish]\nindex = \"docker\"\n[tags]\nmanifest = [\"{{branch}}\", \"{{sha}}\"]\n"
    ));
    assert_eq!(r.run(&r.a, &[]).0, 0);
    // A newer list under main (the fake's builds of A and B are the same
    // bytes, so B's list would be A's: the entries in another order stand in).
    let mut v: serde_json::Value =
        serde_json::from_slice(&r.fake.registry().manifest("acme/app", "main").unwrap()).unwrap();
    v["manifests"].as_array_mut().unwrap().reverse();
    r.fake
        .registry()
        .put("acme/app", "main", &serde_json::to_vec(&v).unwrap());
    let (code, out) = r.run(&r.a, &["--stage", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("127.0.0.1:5999/acme/app:main names sha256:")
            && out.contains("cannot be told (no revision annotation to compare)")
            && out.contains(&format!(
                "127.0.0.1:5999/acme/app:{} serves linux/amd64 as sha256:",
                r.a
            )),
        "{out}"
    );
}

/// Credentials from docker's config.json (`auths`) and from a credential
/// helper, echoed back by a registry that refuses them (the header and the
/// password in its message), never reach the output, the events or the JUnit
/// report: the registry client masks what it found.
#[test]
fn credentials_a_registry_echoes_are_masked_everywhere() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let p = Project::new_without_busybox();
    let fake = FakeEngine::new(p.path());
    let (addr, _) = crate::support::echoing_registry();
    p.file(
        "multiarch.toml",
        // Each arch on its own (fake) builder: no emulation, so the run does
        // not depend on the host's binfmt handlers.
        "[project]\nregistry = \"${REG}/acme\"\n[arch.amd64]\nbuilder = \"ssh://fake-amd64\"\n[arch.arm64v8]\nbuilder = \"ssh://fake-arm64\"\n[archs]\ndefault = [\"amd64\", \"arm64v8\"]\n[[image]]\nname = \"app\"\n",
    )
    .file("Dockerfile", "FROM scratch\n")
    .file(
        "bin/docker-credential-test",
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"h3lper-secret-pw\"}\\n' \"$server\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        p.path().join("bin/docker-credential-test"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let configs = [
        (
            format!(
                r#"{{"auths":{{"{addr}":{{"auth":"{}"}}}}}}"#,
                b64("ci:c0nfig-secret-pw")
            ),
            "c0nfig-secret-pw",
        ),
        (r#"{"credsStore":"test"}"#.to_string(), "h3lper-secret-pw"),
    ];
    for (config, secret) in configs {
        let dc = crate::support::temp_dir("docker-config");
        std::fs::write(dc.path().join("config.json"), &config).unwrap();
        let out = p
            .command(&[
                "run",
                "--branch",
                "main",
                "--sha",
                crate::support::SHA,
                "--events",
                "events.jsonl",
                "--junit",
                "junit.xml",
            ])
            .env("PATH", fake.path())
            .env("REG", &addr)
            .env("DOCKER_CONFIG", dc.path())
            .env_remove("DOCKER_HOST")
            .env_remove("MULTIARCH_REGISTRY_PASSWORD")
            .env_remove("CI_REGISTRY_PASSWORD")
            .output()
            .unwrap();
        let t = crate::support::text(&out);
        assert_eq!(crate::support::code(&out), 1, "{t}");
        assert!(
            t.contains("refused Authorization: Basic ••••••") && t.contains("(password ••••••)"),
            "the registry's message, masked: {t}"
        );
        let events = std::fs::read_to_string(p.path().join("events.jsonl")).unwrap();
        let junit = std::fs::read_to_string(p.path().join("junit.xml")).unwrap();
        for (what, text) in [("output", &t), ("events", &events), ("junit", &junit)] {
            assert!(!text.contains(secret), "{secret} in the {what}: {text}");
            assert!(
                !text.contains(&b64(&format!("ci:{secret}"))),
                "the Basic header of {secret} in the {what}: {text}"
            );
        }
    }
}

// ------------------------------------------------------------ the real registry

mod engine {
    use std::process::Command;

    use crate::support::{self, engine_lock, free_port, temp_dir, Project, Registry, SHA};
    use crate::support::{code, text};
    use multiarch::registry::auth::basic;
    use multiarch::registry::{manifest_url, Scheme, MANIFEST_ACCEPT};

    const NEEDS: &str =
        "needs dockerd, docker-registry, skopeo and apache2-utils; run by `cargo xtask ci`";

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

    /// GET a manifest (with `authorization`): its status and JSON.
    fn get(
        reg: &str,
        repo: &str,
        reference: &str,
        authorization: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let c = support::client();
        let mut r = c
            .get(manifest_url(Scheme::Http, reg, repo, reference))
            .accept(MANIFEST_ACCEPT);
        if let Some(a) = authorization {
            r = r.authorization(a);
        }
        let a = r.send().unwrap();
        (
            a.status(),
            serde_json::from_slice(a.body()).unwrap_or_default(),
        )
    }

    fn put(reg: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> u16 {
        support::client()
            .put(
                manifest_url(Scheme::Http, reg, repo, reference),
                body.to_vec(),
            )
            .content_type(media_type)
            .send()
            .unwrap()
            .status()
    }

    #[test]
    #[ignore = "needs dockerd, docker-registry, skopeo and apache2-utils; run by `cargo xtask ci`"]
    fn independent_clients_read_the_annotated_index() {
        let _g = engine_lock();
        let reg = Registry::start();
        let p = Project::new();
        p.file("multiarch.toml", SPEC);
        let out = p.run(&reg, &["run", "--branch", "main", "--sha", SHA]);
        assert_eq!(code(&out), 0, "{NEEDS}");
        let (status, index) = get(&reg.addr, "acme/busybox", "latest", None);
        assert_eq!(status, 200);
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(
            index["annotations"]["org.opencontainers.image.revision"],
            SHA
        );
        assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
        let image = format!("docker://{}/acme/busybox:latest", reg.addr);
        let raw = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &image])
            .output()
            .expect("skopeo is installed (cargo xtask ci installs it)");
        assert_eq!(code(&raw), 0, "{}", text(&raw));
        let raw: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
        assert_eq!(raw, index, "skopeo reads the same index");
        let dest = temp_dir("skopeo-copy");
        let copy = Command::new("skopeo")
            .args(["copy", "--all", "--src-tls-verify=false", &image])
            .arg(format!("dir:{}", dest.path().join("all").display()))
            .output()
            .unwrap();
        assert_eq!(code(&copy), 0, "every entry can be copied: {}", text(&copy));
        let tag = format!("{}/acme/busybox:latest", reg.addr);
        let pull = Command::new("docker")
            .args(["pull", "--platform", "linux/arm64", &tag])
            .output()
            .unwrap();
        assert_eq!(code(&pull), 0, "{}", text(&pull));
        let arch = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Architecture}}", &tag])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&arch.stdout).trim(), "arm64");
        let _ = Command::new("docker").args(["rmi", &tag]).output();
    }

    #[test]
    #[ignore = "needs dockerd, docker-registry, skopeo and apache2-utils; run by `cargo xtask ci`"]
    fn an_entry_that_is_an_index_with_an_attestation_becomes_its_image_and_keeps_the_attestation() {
        let _g = engine_lock();
        let reg = Registry::start();
        let p = Project::new();
        p.file("multiarch.toml", SPEC);
        let out = p.run(
            &reg,
            &[
                "run", "--branch", "main", "--sha", SHA, "--stage", "build", "--stage", "push",
            ],
        );
        assert_eq!(code(&out), 0, "{NEEDS}");
        // What BuildKit with attestations pushes: the per-arch reference is an
        // index of the image and an attestation manifest about it.
        let repo = "acme/busybox/amd64";
        let (_, image) = get(&reg.addr, repo, SHA, None);
        let image_bytes = serde_json::to_vec(&image).unwrap();
        let image_digest = multiarch::registry::client::sha256(&image_bytes);
        assert_eq!(
            put(
                &reg.addr,
                repo,
                &image_digest,
                image["mediaType"].as_str().unwrap(),
                &image_bytes
            ),
            201
        );
        let config = &image["config"];
        let att = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config["digest"], "size": config["size"]},
            "layers": []
        });
        let att_bytes = serde_json::to_vec(&att).unwrap();
        let att_digest = multiarch::registry::client::sha256(&att_bytes);
        assert_eq!(
            put(
                &reg.addr,
                repo,
                &att_digest,
                "application/vnd.oci.image.manifest.v1+json",
                &att_bytes
            ),
            201
        );
        let child = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": image["mediaType"], "digest": image_digest, "size": image_bytes.len(),
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": att_digest,
                 "size": att_bytes.len(), "platform": {"architecture": "unknown", "os": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": image_digest}}
            ]
        });
        assert_eq!(
            put(
                &reg.addr,
                repo,
                SHA,
                "application/vnd.oci.image.index.v1+json",
                &serde_json::to_vec(&child).unwrap()
            ),
            201
        );
        let out = p.run(
            &reg,
            &[
                "run", "--branch", "main", "--sha", SHA, "--stage", "publish", "--stage", "verify",
            ],
        );
        assert_eq!(code(&out), 0, "{}", text(&out));
        let (_, list) = get(&reg.addr, "acme/busybox", SHA, None);
        let entries = list["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 4, "3 images and the attestation: {list}");
        let amd64 = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == "amd64")
            .unwrap();
        assert_eq!(
            amd64["digest"],
            image_digest.as_str(),
            "the image, not the index"
        );
        let a = entries
            .iter()
            .find(|e| e["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
            .expect("the attestation is kept");
        assert_eq!(a["digest"], att_digest.as_str());
        assert_eq!(
            a["annotations"]["vnd.docker.reference.digest"],
            image_digest.as_str()
        );
        // Both are in the list's repository, so a client can read them there.
        assert_eq!(get(&reg.addr, "acme/busybox", &att_digest, None).0, 200);
    }

    fn htpasswd(user: &str, password: &str) -> String {
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("htpasswd is installed (apache2-utils; cargo xtask ci installs it)");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    #[ignore = "needs dockerd, docker-registry, skopeo and apache2-utils; run by `cargo xtask ci`"]
    fn basic_auth_from_the_environment_a_helper_and_a_wrong_password() {
        let _g = engine_lock();
        let auth = temp_dir("htpasswd");
        let file = auth.path().join("htpasswd");
        std::fs::write(&file, format!("{}\n", htpasswd("ci", "s3cret-pw"))).unwrap();
        let reg = Registry::start_with(
            free_port(),
            &format!(
                "auth:\n  htpasswd:\n    realm: multiarch-test\n    path: {}\n",
                file.display()
            ),
        );
        let p = Project::new();
        p.file("multiarch.toml", SPEC);
        // The environment's credentials: docker logs in for the per-arch
        // pushes, multiarch's client uses them for the lists.
        let (out, _) = login_run(&p, &reg, "ci", "s3cret-pw");
        assert_eq!(code(&out), 0, "{NEEDS}: {}", text(&out));
        assert!(!text(&out).contains("s3cret-pw"), "the secret is masked");
        let good = basic("ci", "s3cret-pw");
        assert_eq!(get(&reg.addr, "acme/busybox", "latest", Some(&good)).0, 200);

        // A wrong password in docker's config: the list step fails once, fast,
        // with the registry's message, and is not retried.
        let (out, took) = run_with_config(
            &p,
            &reg,
            &auths(&reg, "ci", "wrong"),
            WRONG_PASSWORD_RUN,
            None,
        );
        let t = text(&out);
        assert_ne!(code(&out), 0, "{t}");
        // A HEAD's answer has no body: its status is the message.
        assert!(
            t.contains("401 UNAUTHORIZED") || t.contains("401 Unauthorized"),
            "the registry's message: {t}"
        );
        assert!(!t.contains("retry"), "no retry of a 401: {t}");
        assert!(took < std::time::Duration::from_secs(20), "fast: {took:?}");

        // A credential helper on PATH (`credsStore`) that knows the password.
        let helper = temp_dir("helper");
        let script = helper.path().join("docker-credential-test");
        std::fs::write(
            &script,
            "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"s3cret-pw\"}\\n' \"$server\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            helper.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let (out, _) = run_with_config(
            &p,
            &reg,
            r#"{"credsStore":"test"}"#,
            &["--stage", "publish", "--stage", "verify", "--force-tags"],
            Some(&path),
        );
        assert_eq!(code(&out), 0, "{}", text(&out));
    }

    /// What a run with a wrong password runs: the list steps, with retries
    /// allowed (a 401 must not use them).
    const WRONG_PASSWORD_RUN: &[&str] = &["--stage", "publish", "--retries", "5"];

    /// `run --login` with `user`/`password` in the environment (docker logs
    /// in to a private config): its output and how long it took.
    fn login_run(
        p: &Project,
        reg: &Registry,
        user: &str,
        password: &str,
    ) -> (std::process::Output, std::time::Duration) {
        let docker_config = temp_dir("docker-config");
        let started = std::time::Instant::now();
        let out = p
            .command(&["run", "--branch", "main", "--sha", SHA, "--login"])
            .env("REG", &reg.addr)
            .env("DOCKER_CONFIG", docker_config.path())
            .env("MULTIARCH_REGISTRY_USER", user)
            .env("MULTIARCH_REGISTRY_PASSWORD", password)
            .output()
            .unwrap();
        (out, started.elapsed())
    }

    /// docker's config.json with `user:password` for the registry.
    fn auths(reg: &Registry, user: &str, password: &str) -> String {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr)
    }

    /// `run ARGS…` with `config` as docker's config.json (and `path` as PATH):
    /// its output and how long it took.
    fn run_with_config(
        p: &Project,
        reg: &Registry,
        config: &str,
        args: &[&str],
        path: Option<&str>,
    ) -> (std::process::Output, std::time::Duration) {
        let d = temp_dir("docker-config-file");
        std::fs::write(d.path().join("config.json"), config).unwrap();
        let started = std::time::Instant::now();
        let mut c = p.command(&["run", "--branch", "main", "--sha", SHA]);
        c.args(args)
            .env("REG", &reg.addr)
            .env("DOCKER_CONFIG", d.path());
        if let Some(path) = path {
            c.env("PATH", path);
        }
        let out = c.output().unwrap();
        (out, started.elapsed())
    }

    /// A token server (user `ci`, password `t0ken-s3cret`), the registry
    /// with `auth: token` behind it, and a project of SPEC.
    fn behind_a_token_server() -> (crate::support::token_server::TokenServer, Registry, Project) {
        let tokens = crate::support::token_server::TokenServer::start("ci", "t0ken-s3cret");
        let reg = Registry::start_with(free_port(), &tokens.registry_config());
        let p = Project::new();
        p.file("multiarch.toml", SPEC);
        (tokens, reg, p)
    }

    /// The list `acme/busybox:TAG`, read with a pull token of `tokens`, has
    /// the three arches.
    fn assert_whole_list(
        reg: &Registry,
        tokens: &crate::support::token_server::TokenServer,
        tag: &str,
    ) {
        let read = format!("Bearer {}", tokens.token(&["repository:acme/busybox:pull"]));
        let (status, index) = get(&reg.addr, "acme/busybox", tag, Some(&read));
        assert_eq!(status, 200, "{tag}: {index}");
        assert_eq!(
            index["manifests"].as_array().map(Vec::len),
            Some(3),
            "{tag}: {index}"
        );
    }

    /// The registry with `auth: token` and a token server of the test: docker
    /// logs in and pushes through the token flow, multiarch's client gets
    /// tokens for the push scope of the lists; a wrong password asks the token
    /// server once and fails fast with its message.
    #[test]
    #[ignore = "needs dockerd, docker-registry, skopeo, apache2-utils and openssl; run by `cargo xtask ci`"]
    fn bearer_tokens_from_a_token_server_and_a_wrong_password() {
        let _g = engine_lock();
        let (tokens, reg, p) = behind_a_token_server();
        let (out, took) = login_run(&p, &reg, "ci", "t0ken-s3cret");
        let t = text(&out);
        eprintln!("--- the token run took {took:?}\n{t}");
        assert_eq!(code(&out), 0, "{NEEDS}: {t}");
        assert!(!t.contains("t0ken-s3cret"), "the password is masked");
        let issued = tokens.issued();
        for token in &issued {
            assert!(!t.contains(token.as_str()), "a token in the output: {t}");
        }
        // Anonymous reads are refused; with a token the list is whole.
        assert_eq!(get(&reg.addr, "acme/busybox", "latest", None).0, 401);
        for tag in ["latest", SHA] {
            assert_whole_list(&reg, &tokens, tag);
        }
        let seen = tokens.requests();
        let ours =
            |r: &&support::token_server::TokenRequest| r.user_agent.starts_with("multiarch/");
        assert!(
            seen.iter().filter(ours).any(|r| r.granted
                && r.scopes
                    .iter()
                    .any(|s| s == "repository:acme/busybox:pull,push")),
            "multiarch's client asked for the list's push scope: {seen:#?}"
        );
        assert!(
            seen.iter().any(|r| r.granted
                && !ours(&r)
                && r.scopes.iter().any(|s| s.ends_with(":push,pull"))),
            "docker pushed through the token flow: {seen:#?}"
        );
        assert!(seen.iter().all(|r| r.granted), "{seen:#?}");
        eprintln!(
            "token requests: {} ({} from multiarch's client, {} from docker); {} tokens issued",
            seen.len(),
            seen.iter().filter(ours).count(),
            seen.iter().filter(|r| !ours(r)).count(),
            issued.len()
        );

        // A wrong password (docker's config): one token request, refused; the
        // run fails fast with the token server's message, nothing retried.
        let before = tokens.requests().len();
        let (out, took) = run_with_config(
            &p,
            &reg,
            &auths(&reg, "ci", "wr0ng-passw0rd"),
            WRONG_PASSWORD_RUN,
            None,
        );
        let t = text(&out);
        eprintln!("--- the wrong password took {took:?}\n{t}");
        assert_ne!(code(&out), 0, "{t}");
        assert!(t.contains("incorrect username or password"), "{t}");
        assert!(
            !t.to_lowercase().contains("retry"),
            "no retry of a 401: {t}"
        );
        assert!(!t.contains("wr0ng-passw0rd"), "{t}");
        assert!(took < std::time::Duration::from_secs(20), "fast: {took:?}");
        let refused: Vec<_> = tokens.requests().split_off(before);
        assert_eq!(
            refused.len(),
            1,
            "one token request for the wrong password, not a storm: {refused:#?}"
        );
        assert!(!refused[0].granted);
        assert_eq!(
            (refused[0].method.as_str(), refused[0].user.as_deref()),
            ("GET", Some("ci"))
        );
    }

    /// An `identitytoken` in docker's config, beside an `auth` with a user and
    /// no password: what `docker login` writes for an OAuth2 registry (`az acr
    /// login` writes exactly this). docker pushes and multiarch publishes with
    /// refresh-token POSTs to the token server; the token is in no output.
    #[test]
    #[ignore = "needs dockerd, docker-registry, skopeo, apache2-utils and openssl; run by `cargo xtask ci`"]
    fn identity_tokens_in_docker_config_go_through_oauth2() {
        use base64::Engine as _;
        let _g = engine_lock();
        let (tokens, reg, p) = behind_a_token_server();
        let refresh = tokens.refresh_token();
        let user = base64::engine::general_purpose::STANDARD
            .encode("00000000-0000-0000-0000-000000000000:");
        let config = format!(
            r#"{{"auths":{{"{}":{{"auth":"{user}","identitytoken":"{refresh}"}}}}}}"#,
            reg.addr
        );
        let (out, took) = run_with_config(&p, &reg, &config, &[], None);
        let t = text(&out);
        eprintln!("--- the identity-token run took {took:?}\n{t}");
        assert_eq!(code(&out), 0, "{NEEDS}: {t}");
        assert!(!t.contains(&refresh), "the identity token is masked: {t}");
        for token in tokens.issued() {
            assert!(!t.contains(token.as_str()), "a token in the output: {t}");
        }
        assert_whole_list(&reg, &tokens, "latest");
        let seen = tokens.requests();
        assert!(seen.iter().all(|r| r.granted), "{seen:#?}");
        let posts_from = |multiarch: bool| {
            seen.iter()
                .any(|r| r.method == "POST" && r.user_agent.starts_with("multiarch/") == multiarch)
        };
        assert!(
            posts_from(true),
            "multiarch's client used the refresh token: {seen:#?}"
        );
        assert!(
            posts_from(false),
            "docker used the refresh token: {seen:#?}"
        );
    }
}

/// The summary and the events say what the registry serves under each list
/// published (the index's image entries, each checked against its config read
/// from the registry), not what the plan asked for; a kept floating tag falls
/// back to the plan's platforms.
#[test]
fn published_lists_carry_the_platforms_the_registry_serves() {
    let r = repo();
    let (code, out) = r.run(&r.b, &["--events", "events.jsonl"]);
    assert_eq!(code, 0, "{out}");
    let events = std::fs::read_to_string(r.p.path().join("events.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let served = |tag: &str| -> Vec<String> {
        let bytes = r.fake.registry().manifest("acme/app", tag).expect(tag);
        crate::support::index_platforms(&serde_json::from_slice(&bytes).unwrap())
    };
    let pushes: Vec<&serde_json::Value> = records
        .iter()
        .filter(|e| e["event"] == "step-finished" && e["kind"] == "manifest-push")
        .collect();
    assert!(!pushes.is_empty(), "{events}");
    for e in pushes {
        let tag = e["tag"].as_str().unwrap();
        let mut got: Vec<String> = serde_json::from_value(e["served_platforms"].clone())
            .unwrap_or_else(|_| panic!("no served_platforms: {e}"));
        got.sort();
        assert_eq!(got, served(tag), "{e}");
        assert_eq!(got, ["linux/amd64", "linux/arm64/v8"], "{e}");
    }
    let finished = records
        .iter()
        .find(|e| e["event"] == "run-finished")
        .expect("run-finished");
    let lists: Vec<&serde_json::Value> = finished["published"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "list")
        .collect();
    assert!(!lists.is_empty(), "{finished}");
    for l in lists {
        let reference = l["reference"].as_str().unwrap();
        let tag = reference.rsplit(':').next().unwrap();
        let mut got: Vec<String> = serde_json::from_value(l["platforms"].clone()).unwrap();
        got.sort();
        assert_eq!(got, served(tag), "{l}");
    }
}
