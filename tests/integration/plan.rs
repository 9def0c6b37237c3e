//! The planner through the library, on the seed article's pipeline: one image, three
//! arches, a registry on 127.0.0.1:5000, the default manifest tags. The git context
//! is built by hand and the host is fixed, so nothing here depends on the machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use multiarch::plan::{render_json, Host};
use multiarch::{Environment, GitContext, Plan, PlanOptions, Spec, Stage, Step, StepKind};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const REG: &str = "127.0.0.1:5000/acme";

/// The seed article's pipeline.
const SEED: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"

[archs]
default = ["amd64", "arm32v7", "arm64v8"]

[[image]]
name = "app"
context = "app"
"#;

/// A base image and an app built on it, per arch.
const BASE_APP: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"

[archs]
default = ["amd64", "arm32v7", "arm64v8"]

[[image]]
name = "base"
context = "base"

[[image]]
name = "app"
context = "app"
depends_on = ["base"]
args = { BASE = "{image.base}" }
"#;

fn project() -> PathBuf {
    PathBuf::from("tests/fixtures/project")
}

fn spec(text: &str) -> Spec {
    Spec::from_str_in(text, "multiarch.toml", &project(), &Environment::empty())
        .unwrap_or_else(|e| panic!("the spec is valid: {e}"))
}

fn on_branch(branch: &str) -> GitContext {
    GitContext {
        branch: Some(branch.to_string()),
        sha: Some(SHA.to_string()),
        ..GitContext::default()
    }
}

fn opts() -> PlanOptions {
    PlanOptions {
        host: Host::fixed("linux/amd64"),
        ..PlanOptions::default()
    }
}

fn plan(text: &str, ctx: &GitContext) -> Plan {
    plan_with(text, ctx, &opts())
}

fn plan_with(text: &str, ctx: &GitContext, o: &PlanOptions) -> Plan {
    Plan::new(&spec(text), ctx, o).unwrap_or_else(|e| panic!("plans: {e}"))
}

/// An id's text, kept for the rest of the test (assertions compare `&str`s).
fn text(id: impl std::fmt::Display) -> &'static str {
    Box::leak(id.to_string().into_boxed_str())
}

fn ids(plan: &Plan) -> Vec<&'static str> {
    plan.steps().iter().map(|s| text(&s.id)).collect()
}

fn step<'p>(plan: &'p Plan, id: &str) -> &'p Step {
    plan.find_by_display(id)
        .unwrap_or_else(|| panic!("no step {id} in {:?}", ids(plan)))
}

/// The ids of a step's needs in the plan.
fn needs(plan: &Plan, id: &str) -> Vec<&'static str> {
    let idx = plan.find(&step(plan, id).id).unwrap();
    plan.need_ids(idx).map(text).collect()
}

/// The registry requests a step makes, `METHOD URL`.
fn reads(plan: &Plan, id: &str) -> Vec<String> {
    step(plan, id)
        .action
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect()
}

/// The ids of a step's needs outside the plan.
fn external(plan: &Plan, id: &str) -> Vec<&'static str> {
    step(plan, id)
        .external_needs()
        .iter()
        .map(|e| text(&e.id))
        .collect()
}

/// The reference an external need is checked by.
fn external_ref(plan: &Plan, need: &str) -> Option<String> {
    plan.steps()
        .iter()
        .flat_map(|s| s.external_needs())
        .find(|e| e.id == need)
        .and_then(|e| e.reference.as_deref().map(str::to_string))
}

fn skipped(plan: &Plan) -> Vec<(&'static str, &str)> {
    plan.skipped()
        .iter()
        .map(|s| (text(&s.id), s.reason.as_str()))
        .collect()
}

fn count(plan: &Plan, kind: StepKind) -> usize {
    plan.steps().iter().filter(|s| s.kind() == kind).count()
}

fn arch_ref(image: &str, arch: &str) -> String {
    format!("{REG}/{image}/{arch}:{SHA}")
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every need is an earlier step; ids are unique.
fn assert_topological(plan: &Plan) {
    let mut seen = BTreeSet::new();
    for idx in plan.indices() {
        let s = plan.step(idx);
        for n in plan.need_ids(idx) {
            assert!(
                seen.contains(text(n)),
                "{} needs {n}, which is not earlier in the plan",
                s.id
            );
        }
        assert!(seen.insert(text(&s.id)), "{} is listed twice", s.id);
    }
}

const ARCHES: [&str; 3] = ["amd64", "arm32v7", "arm64v8"];

#[test]
fn publish_branch_runs_the_whole_pipeline_in_order() {
    let p = plan(SEED, &on_branch("main"));
    assert!(p.publish, "{}", p.publish_reason);
    assert_eq!(
        ids(&p),
        [
            "setup-qemu".to_string(),
            "build:app/amd64".into(),
            "test:app/amd64".into(),
            "push:app/amd64".into(),
            "build:app/arm32v7".into(),
            "test:app/arm32v7".into(),
            "push:app/arm32v7".into(),
            "build:app/arm64v8".into(),
            "test:app/arm64v8".into(),
            "push:app/arm64v8".into(),
            format!("manifest-create:app:{SHA}"),
            format!("manifest-push:app:{SHA}"),
            "manifest-create:app:latest".into(),
            "manifest-push:app:latest".into(),
            "verify:app/amd64".into(),
            "verify:app/arm32v7".into(),
            "verify:app/arm64v8".into(),
        ]
    );
    for (kind, n) in [
        (StepKind::SetupQemu, 1),
        (StepKind::Build, 3),
        (StepKind::Test, 3),
        (StepKind::Push, 3),
        (StepKind::ManifestCreate, 2),
        (StepKind::ManifestPush, 2),
        (StepKind::Verify, 3),
    ] {
        assert_eq!(count(&p, kind), n, "{kind:?}");
    }
    assert!(p.skipped().is_empty(), "{:?}", skipped(&p));
    assert_topological(&p);
}

#[test]
fn publish_branch_needs() {
    let p = plan(SEED, &on_branch("main"));
    // The native arch needs no emulation; the others wait for qemu.
    assert!(needs(&p, "build:app/amd64").is_empty());
    assert_eq!(needs(&p, "build:app/arm32v7"), ["setup-qemu"]);
    assert_eq!(needs(&p, "build:app/arm64v8"), ["setup-qemu"]);
    for a in ARCHES {
        assert_eq!(
            needs(&p, &format!("test:app/{a}")),
            [format!("build:app/{a}")]
        );
        assert_eq!(
            needs(&p, &format!("push:app/{a}")),
            [format!("test:app/{a}")]
        );
    }
    // A list needs the test and the push of every arch: no partial lists.
    let every_arch: Vec<String> = ARCHES
        .iter()
        .flat_map(|a| [format!("test:app/{a}"), format!("push:app/{a}")])
        .collect();
    for tag in [SHA, "latest"] {
        assert_eq!(needs(&p, &format!("manifest-create:app:{tag}")), every_arch);
    }
    // Lists of one repository are pushed one after another.
    assert_eq!(
        needs(&p, &format!("manifest-push:app:{SHA}")),
        [format!("manifest-create:app:{SHA}")]
    );
    assert_eq!(
        needs(&p, "manifest-push:app:latest"),
        [
            "manifest-create:app:latest".to_string(),
            format!("manifest-push:app:{SHA}")
        ]
    );
    // Verify proves what the registry serves under the first tag, and runs
    // after the last tag moved: it proves every tag this run published (a
    // verify that ran before `latest` moved did not read it).
    let first = format!("manifest-push:app:{SHA}");
    let last = "manifest-push:app:latest";
    assert_eq!(needs(&p, "verify:app/amd64"), [first.as_str(), last]);
    for a in ["arm32v7", "arm64v8"] {
        let n = needs(&p, &format!("verify:app/{a}"));
        assert!(n.contains(&first.as_str()), "{a}: {n:?}");
        assert!(n.contains(&last), "{a}: {n:?}");
        assert!(
            n.contains(&"setup-qemu"),
            "an emulated verify needs qemu: {n:?}"
        );
    }
}

#[test]
fn build_argv_is_the_articles_command() {
    let p = plan(SEED, &on_branch("main"));
    let b = step(&p, "build:app/arm64v8");
    let r = arch_ref("app", "arm64v8");
    assert_eq!(b.reference(), Some(r.as_str()));
    assert_eq!(
        b.platform().map(|p| p.to_string()).as_deref(),
        Some("linux/arm64/v8")
    );
    assert_eq!(
        b.command(),
        argv(&[
            "docker",
            "build",
            "--build-arg",
            "ARCH=arm64v8",
            "--platform",
            "linux/arm64/v8",
            "-t",
            &r,
            "--label",
            &format!("org.opencontainers.image.revision={SHA}"),
            "--label",
            "org.opencontainers.image.version=0123456",
            "-f",
            "app/Dockerfile",
            "--network",
            "host",
            "app",
        ])
    );
    // The build step also checks the built image's platform.
    assert_eq!(b.commands().len(), 2);
    assert_eq!(b.commands()[1][..3], argv(&["docker", "image", "inspect"]));

    let t = step(&p, "test:app/arm32v7");
    assert_eq!(
        t.command(),
        argv(&[
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--platform",
            "linux/arm/v7",
            "--pull",
            "never",
            "--label",
            "multiarch.run=<run-id>",
            "--label",
            "multiarch.step=<step-id>",
            "--entrypoint",
            "uname",
            &arch_ref("app", "arm32v7"),
            "-m",
        ])
    );
    assert_eq!(
        step(&p, "push:app/amd64").command(),
        argv(&["docker", "push", &arch_ref("app", "amd64")])
    );
}

#[test]
fn lists_are_made_of_the_pushed_digests() {
    let p = plan(SEED, &on_branch("main"));
    let create = step(&p, "manifest-create:app:latest");
    assert_eq!(create.reference(), Some("127.0.0.1:5000/acme/app:latest"));
    assert_eq!(create.tag(), Some("latest"));
    // Read over the registry's API, by the digests this run pushes.
    assert!(create.command().is_empty());
    let want: Vec<String> = ARCHES
        .iter()
        .map(|a| {
            format!("GET http://127.0.0.1:5000/v2/acme/app/{a}/manifests/<digest of push:app/{a}>")
        })
        .collect();
    assert_eq!(reads(&p, "manifest-create:app:latest"), want);
    let put = step(&p, "manifest-push:app:latest").action.requests();
    assert_eq!(
        (put[0].method, put[0].url.as_str(), put[0].media_type),
        (
            "PUT",
            "http://127.0.0.1:5000/v2/acme/app/manifests/latest",
            "application/vnd.oci.image.index.v1+json"
        )
    );
    // Verify runs the platform's entry of the list by digest, never a shared tag.
    let v = step(&p, "verify:app/arm64v8");
    let run = v.command();
    let image = &run[run.len() - 2];
    assert!(
        image.starts_with("127.0.0.1:5000/acme/app@<digest of linux/arm64/v8 in "),
        "{run:?}"
    );
    assert!(run
        .windows(2)
        .any(|w| w == ["--platform", "linux/arm64/v8"]));
}

#[test]
fn feature_branch_pushes_per_arch_and_publishes_nothing() {
    let p = plan(SEED, &on_branch("feature/login"));
    assert!(!p.publish);
    assert_eq!(count(&p, StepKind::ManifestCreate), 0);
    assert_eq!(count(&p, StepKind::ManifestPush), 0);
    assert_eq!(count(&p, StepKind::Push), 3);
    assert_eq!(count(&p, StepKind::Verify), 3);
    let reason = "this build does not publish: branch `feature/login` does not match publish.branches (main, master)";
    assert_eq!(
        skipped(&p),
        [
            ("manifest-create:app:{sha}", reason),
            ("manifest-push:app:{sha}", reason),
            ("manifest-create:app:latest", reason),
            ("manifest-push:app:latest", reason),
        ]
    );
    let s = &p.skipped()[0];
    assert_eq!(s.id.kind(), StepKind::ManifestCreate);
    assert_eq!(s.id.image(), Some("app"));
    assert_eq!(s.id.tag(), Some("{sha}"));
    assert_eq!(s.id.arch(), None);
    // Verify pulls the pushed per-arch image by its digest.
    for a in ARCHES {
        let v = step(&p, &format!("verify:app/{a}"));
        let n = needs(&p, &format!("verify:app/{a}"));
        assert!(n.contains(&format!("push:app/{a}").as_str()), "{n:?}");
        let by_digest = format!("{REG}/app/{a}@<digest of push:app/{a}>");
        assert!(v.command().contains(&by_digest), "{:?}", v.command());
        assert!(v.command().windows(2).any(|w| w == ["--pull", "always"]));
    }
    assert_topological(&p);
}

#[test]
fn merge_request_builds_never_publish() {
    let ctx = GitContext {
        pull_request: Some("!42".into()),
        ..on_branch("main")
    };
    let p = plan(SEED, &ctx);
    assert!(!p.publish);
    assert!(
        p.publish_reason.contains("pull/merge-request"),
        "{}",
        p.publish_reason
    );
    assert_eq!(count(&p, StepKind::ManifestCreate), 0);
    assert_eq!(count(&p, StepKind::ManifestPush), 0);
    // push = "always" (the default) still pushes per arch on an MR build.
    assert_eq!(count(&p, StepKind::Push), 3);
    assert!(p
        .skipped()
        .iter()
        .all(|s| s.reason.contains("pull/merge-request")));
    assert_eq!(p.skipped().len(), 4);
}

#[test]
fn merge_request_with_publish_branches_pushes_nothing() {
    let text = format!("{SEED}\n[publish]\npush = \"publish-branches\"\n");
    let ctx = GitContext {
        pull_request: Some("17".into()),
        ..on_branch("main")
    };
    let p = plan(&text, &ctx);
    assert_eq!(count(&p, StepKind::Push), 0);
    assert_eq!(count(&p, StepKind::Verify), 0);
    assert_eq!(count(&p, StepKind::Build), 3);
    assert_eq!(count(&p, StepKind::Test), 3);
    let kinds: BTreeSet<StepKind> = p.skipped().iter().map(|s| s.id.kind()).collect();
    assert!(kinds.contains(&StepKind::Push), "{:?}", skipped(&p));
    assert!(kinds.contains(&StepKind::Verify), "{:?}", skipped(&p));
    assert_topological(&p);
}

#[test]
fn push_never_builds_and_tests_only() {
    let text = format!("{SEED}\n[publish]\npush = \"never\"\n");
    let p = plan(&text, &on_branch("main"));
    assert_eq!(
        ids(&p),
        [
            "setup-qemu",
            "build:app/amd64",
            "test:app/amd64",
            "build:app/arm32v7",
            "test:app/arm32v7",
            "build:app/arm64v8",
            "test:app/arm64v8",
        ]
    );
    let sk = skipped(&p);
    for a in ARCHES {
        assert!(
            sk.contains(&(&format!("push:app/{a}"), "[publish] push = \"never\"")),
            "{sk:?}"
        );
        assert!(
            sk.contains(&(
                &format!("verify:app/{a}"),
                "nothing is pushed for this arch"
            )),
            "{sk:?}"
        );
    }
    for t in ["{sha}", "latest"] {
        assert!(
            sk.contains(&(
                &format!("manifest-create:app:{t}"),
                "[publish] push = \"never\": nothing to list"
            )),
            "{sk:?}"
        );
    }
    assert_topological(&p);
}

const RELEASES: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"

[archs]
default = ["amd64", "arm64v8"]

[tags]
manifest = ["{sha}", { tag = "{version}", when = "git-tag" }, "{major}.{minor}",
            { tag = "latest", branches = ["main"] }]

[publish]
tags = ["v*"]

[[image]]
name = "app"
context = "app"
"#;

/// RELEASES planned on a build of git tag `tag`.
fn on_git_tag(tag: &str) -> Plan {
    let ctx = GitContext {
        git_tag: Some(tag.into()),
        sha: Some(SHA.into()),
        ..GitContext::default()
    };
    plan(RELEASES, &ctx)
}

/// The tags the plan's manifest-pushes move, in order.
fn pushed_tags(p: &Plan) -> Vec<&str> {
    p.steps()
        .iter()
        .filter(|s| s.kind() == StepKind::ManifestPush)
        .map(|s| s.tag().unwrap())
        .collect()
}

#[test]
fn a_git_tag_matching_publish_tags_publishes() {
    let p = on_git_tag("v1.4.2");
    assert!(p.publish, "{}", p.publish_reason);
    assert!(p.publish_reason.contains("v*"), "{}", p.publish_reason);
    assert_eq!(pushed_tags(&p), [SHA, "1.4.2", "1.4"]);
    // latest is only for main; this build has no branch.
    assert_eq!(
        p.skipped()
            .iter()
            .filter(|s| s.id.kind() == StepKind::ManifestCreate)
            .map(|s| (s.id.tag().unwrap(), s.reason.as_str()))
            .collect::<Vec<_>>(),
        [(
            "latest",
            "branch `(none)` does not match this tag's branches (main)"
        )]
    );
    assert_topological(&p);
}

#[test]
fn a_pre_release_tag_publishes_its_version_and_leaves_major_minor_alone() {
    // docker/metadata-action's rule: a release candidate must not move `1.4`.
    let p = on_git_tag("v1.5.0-rc.1");
    assert!(p.publish, "{}", p.publish_reason);
    assert_eq!(pushed_tags(&p), [SHA, "1.5.0-rc.1"]);
    assert!(p
        .skipped()
        .iter()
        .any(|s| s.id.tag() == Some("{major}.{minor}")
            && s.reason.contains("a pre-release sets only {version}")));
}

#[test]
fn a_git_tag_not_matching_does_not_publish() {
    let ctx = GitContext {
        git_tag: Some("nightly-2024".into()),
        sha: Some(SHA.into()),
        ..GitContext::default()
    };
    let p = plan(RELEASES, &ctx);
    assert!(!p.publish);
    assert_eq!(count(&p, StepKind::ManifestCreate), 0);
}

#[test]
fn on_main_the_version_tags_are_skipped_with_a_reason() {
    let p = plan(RELEASES, &on_branch("main"));
    assert!(p.publish);
    let lists: Vec<&str> = p
        .steps()
        .iter()
        .filter(|s| s.kind() == StepKind::ManifestCreate)
        .map(|s| s.tag().unwrap())
        .collect();
    assert_eq!(lists, [SHA, "latest"]);
    let sk = skipped(&p);
    assert!(sk.contains(&(
        "manifest-create:app:{version}",
        "when = \"git-tag\" and this build is not of a git tag"
    )));
    assert!(sk.contains(&(
        "manifest-create:app:{major}.{minor}",
        "no semver release tag (a pre-release sets only {version}): {major} has no value"
    )));
}

#[test]
fn spec_section_4_skipped_reason_for_a_version_tag() {
    // SPEC.md §4: a `{version}` tag without a git tag is left out, saying why.
    let text = SEED.replace(
        "[[image]]",
        "[tags]\nmanifest = [\"{sha}\", \"{version}\"]\n\n[[image]]",
    );
    let p = plan(&text, &on_branch("main"));
    let s = p
        .skipped()
        .iter()
        .find(|s| s.id == "manifest-create:app:{version}")
        .expect("skipped");
    assert_eq!(s.id.kind(), StepKind::ManifestCreate);
    assert_eq!(s.id.tag(), Some("{version}"));
    assert_eq!(s.reason, "no git tag: {version} has no value");
}

#[test]
fn depends_on_orders_builds_per_arch() {
    let p = plan(BASE_APP, &on_branch("main"));
    assert_topological(&p);
    for a in ARCHES {
        let n = needs(&p, &format!("build:app/{a}"));
        assert!(n.contains(&format!("push:base/{a}").as_str()), "{a}: {n:?}");
        // `{image.base}` is the base's per-arch reference for the same arch.
        let b = step(&p, &format!("build:app/{a}"));
        let arg = format!("BASE={}", arch_ref("base", a));
        assert!(
            b.command()
                .windows(2)
                .any(|w| w[0] == "--build-arg" && w[1] == arg),
            "{:?}",
            b.command()
        );
    }
    // Every base step comes before app's build of the same arch.
    let pos = |id: &str| ids(&p).iter().position(|x| *x == id).unwrap();
    for a in ARCHES {
        assert!(pos(&format!("push:base/{a}")) < pos(&format!("build:app/{a}")));
    }
}

#[test]
fn depends_on_without_pushes_waits_for_the_test() {
    let text = format!("{BASE_APP}\n[publish]\npush = \"never\"\n");
    let p = plan(&text, &on_branch("main"));
    assert_eq!(
        needs(&p, "build:app/arm64v8"),
        ["setup-qemu", "test:base/arm64v8"]
    );
    assert_eq!(needs(&p, "build:app/amd64"), ["test:base/amd64"]);
}

#[test]
fn image_selection_makes_dependencies_external() {
    let o = PlanOptions {
        images: vec!["app".into()],
        ..opts()
    };
    let p = plan_with(BASE_APP, &on_branch("main"), &o);
    assert!(p.steps().iter().all(|s| s.image() != Some("base")));
    for a in ARCHES {
        let b = format!("build:app/{a}");
        let ext = format!("push:base/{a}");
        assert_eq!(external(&p, &b), [ext.as_str()]);
        assert!(!needs(&p, &b).contains(&ext.as_str()));
        assert_eq!(external_ref(&p, &ext), Some(arch_ref("base", a)));
    }
    assert_topological(&p);
}

#[test]
fn arch_selection_builds_one_arch_and_lists_nothing() {
    let o = PlanOptions {
        archs: vec!["linux/arm64".into()],
        ..opts()
    };
    let p = plan_with(SEED, &on_branch("main"), &o);
    assert_eq!(
        ids(&p),
        [
            "setup-qemu",
            "build:app/arm64v8",
            "test:app/arm64v8",
            "push:app/arm64v8",
            "verify:app/arm64v8",
        ]
    );
    // A list needs every arch: it is not assembled from one.
    assert!(p
        .skipped()
        .iter()
        .any(|s| s.id.kind() == StepKind::ManifestCreate && s.reason.contains("--arch")));
}

#[test]
fn an_unknown_arch_flag_is_a_usage_error() {
    let o = PlanOptions {
        archs: vec!["arm64v7".into()],
        ..opts()
    };
    // `arm64v7` is a common alias of arm64v8 and is accepted.
    assert!(Plan::new(&spec(SEED), &on_branch("main"), &o).is_ok());
    let o = PlanOptions {
        archs: vec!["sparc".into()],
        ..opts()
    };
    let e = Plan::new(&spec(SEED), &on_branch("main"), &o).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let o = PlanOptions {
        images: vec!["nope*".into()],
        ..opts()
    };
    let e = Plan::new(&spec(SEED), &on_branch("main"), &o).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("matches no image"), "{e}");
}

#[test]
fn stage_build_is_qemu_build_and_test() {
    let o = PlanOptions {
        stages: vec![Stage::Build],
        ..opts()
    };
    let p = plan_with(BASE_APP, &on_branch("main"), &o);
    let kinds: BTreeSet<StepKind> = p.steps().iter().map(|s| s.kind()).collect();
    assert_eq!(
        kinds,
        [StepKind::SetupQemu, StepKind::Build, StepKind::Test].into()
    );
    // app's build needs base's push, which is another stage: external.
    assert_eq!(needs(&p, "build:app/arm64v8"), ["setup-qemu"]);
    assert_eq!(external(&p, "build:app/arm64v8"), ["push:base/arm64v8"]);
    assert_topological(&p);
}

#[test]
fn stage_publish_needs_the_pushes_from_the_registry() {
    let o = PlanOptions {
        stages: vec![Stage::Publish],
        ..opts()
    };
    let p = plan_with(SEED, &on_branch("main"), &o);
    assert_eq!(
        ids(&p),
        [
            format!("manifest-create:app:{SHA}"),
            format!("manifest-push:app:{SHA}"),
            "manifest-create:app:latest".into(),
            "manifest-push:app:latest".into(),
        ]
    );
    let c = "manifest-create:app:latest";
    assert!(needs(&p, c).is_empty());
    let want: Vec<String> = ARCHES
        .iter()
        .flat_map(|a| [format!("test:app/{a}"), format!("push:app/{a}")])
        .collect();
    assert_eq!(external(&p, c), want);
    for a in ARCHES {
        assert_eq!(
            external_ref(&p, &format!("push:app/{a}")),
            Some(arch_ref("app", a))
        );
    }
}

#[test]
fn stage_verify_needs_the_published_list() {
    let o = PlanOptions {
        stages: vec![Stage::Verify],
        ..opts()
    };
    let p = plan_with(SEED, &on_branch("main"), &o);
    assert_eq!(
        ids(&p),
        [
            "setup-qemu",
            "verify:app/amd64",
            "verify:app/arm32v7",
            "verify:app/arm64v8"
        ]
    );
    assert_eq!(
        external(&p, "verify:app/amd64"),
        [format!("manifest-push:app:{SHA}")]
    );
    assert_eq!(
        external_ref(&p, &format!("manifest-push:app:{SHA}")),
        Some(format!("{REG}/app:{SHA}"))
    );
    assert_eq!(needs(&p, "verify:app/arm64v8"), ["setup-qemu"]);
    // The lists are another job's: verify reads the build's other tag too,
    // and the arch's commit-tagged image its entry must be.
    assert_eq!(
        reads(&p, "verify:app/arm64v8"),
        [
            format!("GET http://127.0.0.1:5000/v2/acme/app/manifests/{SHA}"),
            "GET http://127.0.0.1:5000/v2/acme/app/manifests/latest".to_string(),
            format!("HEAD http://127.0.0.1:5000/v2/acme/app/arm64v8/manifests/{SHA}"),
        ]
    );
    // A run that publishes them reads only the list it resolves.
    let p = plan(SEED, &on_branch("main"));
    assert_eq!(step(&p, "verify:app/arm64v8").action.requests().len(), 1);
    // A floating first tag: the verify job resolves the commit-tagged list
    // (no later commit moves it), and reads the floating one after it.
    let text = format!("{SEED}\n[tags]\nmanifest = [\"{{branch}}\", \"{{sha}}\"]\n");
    let p = plan_with(&text, &on_branch("main"), &o);
    let v = step(&p, "verify:app/amd64");
    assert_eq!(
        reads(&p, "verify:app/amd64"),
        [
            format!("GET http://127.0.0.1:5000/v2/acme/app/manifests/{SHA}"),
            "GET http://127.0.0.1:5000/v2/acme/app/manifests/main".to_string(),
            format!("HEAD http://127.0.0.1:5000/v2/acme/app/amd64/manifests/{SHA}"),
        ]
    );
    assert!(
        v.command()
            .iter()
            .any(|w| w.contains(&format!("in {REG}/app:{SHA}>"))),
        "{:?}",
        v.command()
    );
}

#[test]
fn branch_names_are_sanitised_before_they_reach_argv() {
    let text = r#"
[project]
registry = "127.0.0.1:5000/acme"

[archs]
default = ["amd64", "arm64v8"]

[tags]
arch = "{repo}/{arch}:{branch}-{short_sha}"
manifest = ["{branch}", "{sha}"]

[publish]
branches = ["**"]

[[image]]
name = "app"
context = "app"
args = { BRANCH = "{branch}" }
labels = { "org.example.branch" = "{branch}" }
"#;
    let branch = "feat/$(reboot) `id`;rm -rf ~";
    let p = plan(text, &on_branch(branch));
    assert!(p.publish);
    let tag = "feat---reboot---id--rm--rf--";
    assert!(multiarch::spec::reference::is_valid_tag(tag));
    assert!(
        p.find_by_display(&format!("manifest-push:app:{tag}"))
            .is_some(),
        "{:?}",
        ids(&p)
    );
    let b = step(&p, "build:app/amd64");
    assert_eq!(
        b.reference(),
        Some(format!("{REG}/app/amd64:{tag}-0123456").as_str())
    );
    assert!(b.command().contains(&format!("BRANCH={tag}")));
    for s in p.steps() {
        for c in &s.commands() {
            for a in c {
                // (Spaces only appear in run-time placeholders: `<digest of …>`.)
                let a = match a.find("@<digest of ") {
                    Some(i) => &a[..i],
                    None => a.as_str(),
                };
                for bad in ["$(", "`", ";", " ", "~", "reboot)"] {
                    assert!(!a.contains(bad), "{}: `{a}` contains `{bad}`", s.id);
                }
            }
        }
    }
    // The plan records the branch as it was named; only argv is sanitised.
    assert_eq!(p.branch.as_deref(), Some(branch));
}

#[test]
fn a_long_branch_is_cut_to_a_valid_tag() {
    let text = SEED.replace(
        "[[image]]",
        "[tags]\nmanifest = [\"{branch}\"]\n[publish]\nbranches = [\"**\"]\n\n[[image]]",
    );
    let branch = format!("-.feature/{}", "x".repeat(300));
    let p = plan(&text, &on_branch(&branch));
    let list = p
        .steps()
        .iter()
        .find(|s| s.kind() == StepKind::ManifestPush)
        .unwrap();
    let tag = list.tag().unwrap();
    assert_eq!(tag.len(), 128);
    assert!(tag.starts_with("feature-xxx"));
    assert!(multiarch::spec::reference::is_valid_tag(tag));
}

/// `registry = "docker.io/acme"` (and `index.docker.io`) is Docker Hub: the
/// list steps' requests go to its API host, not to docker.io's web site.
#[test]
fn docker_hub_lists_are_made_at_its_api_host() {
    for registry in ["docker.io/acme", "index.docker.io/acme"] {
        let p = plan(
            &format!("[project]\nregistry = \"{registry}\"\n[archs]\ndefault = [\"amd64\", \"arm64v8\"]\n[[image]]\nname = \"app\"\n"),
            &on_branch("main"),
        );
        let j: serde_json::Value = serde_json::from_str(&render_json(&p)).expect("valid JSON");
        let urls: Vec<&str> = j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == "manifest-push")
            .filter_map(|s| s["request"]["url"].as_str())
            .collect();
        assert!(!urls.is_empty(), "{j}");
        for u in urls {
            assert!(
                u.starts_with("https://registry-1.docker.io/v2/acme/app/manifests/"),
                "{registry}: {u}"
            );
        }
    }
}

#[test]
fn plan_json_has_the_fields_of_spec_section_4() {
    let p = plan(BASE_APP, &on_branch("main"));
    let j: serde_json::Value = serde_json::from_str(&render_json(&p)).expect("valid JSON");
    assert_eq!(j["version"], 1);
    assert_eq!(j["branch"], "main");
    assert_eq!(j["git_tag"], serde_json::Value::Null);
    assert_eq!(j["sha"], SHA);
    assert_eq!(j["publish"], true);
    let steps = j["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), p.steps().len());
    let kinds: BTreeSet<&str> = [
        "setup-qemu",
        "build",
        "test",
        "push",
        "manifest-create",
        "manifest-push",
        "verify",
    ]
    .into();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for s in steps {
        let id = s["id"].as_str().expect("id");
        let kind = s["kind"].as_str().expect("kind");
        assert!(kinds.contains(kind), "{kind}");
        assert!(id == kind || id.starts_with(&format!("{kind}:")), "{id}");
        for n in s["needs"].as_array().expect("needs") {
            let n = n.as_str().unwrap();
            assert!(seen.contains(n), "{id} needs {n}, not listed before it");
        }
        assert!(seen.insert(id), "{id} twice");
        // A step multiarch performs over the registry's API shows its
        // `request` instead of a `command`.
        if kind.starts_with("manifest-") {
            assert!(s.get("command").is_none(), "{s}");
            let r = &s["request"];
            assert!(
                r["method"].is_string() && r["url"].is_string() && r["media_type"].is_string(),
                "{s}"
            );
            assert!(s["image"].is_string() && s["tag"].is_string(), "{s}");
            assert!(s["reference"].is_string(), "{s}");
            continue;
        }
        let command: Vec<&str> = s["command"]
            .as_array()
            .expect("command")
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(!command.is_empty(), "{id}");
        match kind {
            "build" | "test" | "push" | "verify" => {
                assert!(s["image"].is_string() && s["arch"].is_string(), "{s}");
                assert!(
                    s["platform"].is_string() && s["reference"].is_string(),
                    "{s}"
                );
            }
            "manifest-create" | "manifest-push" => {
                assert!(s["image"].is_string() && s["tag"].is_string(), "{s}");
                assert!(s["reference"].is_string(), "{s}");
            }
            _ => {}
        }
    }
    // The example of §4, field by field.
    let build = steps
        .iter()
        .find(|s| s["id"] == "build:app/arm64v8")
        .unwrap();
    assert_eq!(build["kind"], "build");
    assert_eq!(build["image"], "app");
    assert_eq!(build["arch"], "arm64v8");
    assert_eq!(build["platform"], "linux/arm64/v8");
    assert_eq!(build["reference"], arch_ref("app", "arm64v8"));
    assert_eq!(
        build["needs"],
        serde_json::json!(["setup-qemu", "push:base/arm64v8"])
    );
    let command: Vec<&str> = build["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        command[..5],
        [
            "docker",
            "build",
            "--build-arg",
            "ARCH=arm64v8",
            "--platform"
        ]
    );
    let create = steps
        .iter()
        .find(|s| s["id"] == "manifest-create:app:latest")
        .unwrap();
    assert_eq!(create["tag"], "latest");
    assert_eq!(create["reference"], format!("{REG}/app:latest"));
    assert!(create.get("command").is_none(), "{create}");
    assert_eq!(create["request"]["method"], "GET");
    assert_eq!(
        create["request"]["url"],
        "http://127.0.0.1:5000/v2/acme/app/amd64/manifests/<digest of push:app/amd64>"
    );
    let push = steps
        .iter()
        .find(|s| s["id"] == "manifest-push:app:latest")
        .unwrap();
    assert_eq!(
        push["request"],
        serde_json::json!({"method": "PUT", "url": "http://127.0.0.1:5000/v2/acme/app/manifests/latest",
            "media_type": "application/vnd.oci.image.index.v1+json"})
    );
    assert_eq!(j["skipped"], serde_json::json!([]));
}

#[test]
fn skipped_json_entries_carry_id_kind_image_tag_reason() {
    let p = plan(SEED, &on_branch("develop"));
    let j: serde_json::Value = serde_json::from_str(&render_json(&p)).unwrap();
    let sk = j["skipped"].as_array().unwrap();
    assert_eq!(sk.len(), 4);
    let first = sk[0].as_object().unwrap();
    let keys: BTreeSet<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "image", "kind", "reason", "tag"].into());
    assert_eq!(first["id"], "manifest-create:app:{sha}");
    assert_eq!(first["kind"], "manifest-create");
    assert_eq!(first["tag"], "{sha}");
}

#[test]
fn without_a_sha_a_sha_template_is_a_usage_error() {
    let ctx = GitContext {
        branch: Some("main".into()),
        ..GitContext::default()
    };
    let e = Plan::new(&spec(SEED), &ctx, &opts()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("sha"), "{e}");

    // A spec whose templates do not use the sha plans without one.
    let text = SEED.replace(
        "[[image]]",
        "[tags]\narch = \"{repo}/{arch}:{branch}\"\nmanifest = [\"latest\"]\n\n[[image]]",
    );
    let p = Plan::new(&spec(&text), &ctx, &opts()).expect("no sha needed");
    assert_eq!(p.sha, None);
}

#[test]
fn planning_is_deterministic() {
    let s = spec(BASE_APP);
    let ctx = on_branch("main");
    let a = render_json(&Plan::new(&s, &ctx, &opts()).unwrap());
    let b = render_json(&Plan::new(&s, &ctx, &opts()).unwrap());
    assert_eq!(a, b);
    // And from a fresh load of the same text.
    let c = render_json(&Plan::new(&spec(BASE_APP), &ctx, &opts()).unwrap());
    assert_eq!(a, c);
}

#[test]
fn a_native_builder_needs_no_qemu() {
    let text = SEED.replace(
        "[[image]]",
        "[arch.arm64v8]\nbuilder = \"ssh://builder@arm64-1\"\n\n[[image]]",
    );
    let p = plan(&text, &on_branch("main"));
    let b = step(&p, "build:app/arm64v8");
    let n = needs(&p, "build:app/arm64v8");
    assert!(n.is_empty(), "{n:?}");
    assert_eq!(
        b.command()[..4],
        argv(&["docker", "--host", "ssh://builder@arm64-1", "build"])[..]
    );
    // arm32v7 is still emulated.
    assert_eq!(needs(&p, "build:app/arm32v7"), ["setup-qemu"]);
}

#[test]
fn an_arm64_host_emulates_amd64() {
    let o = PlanOptions {
        host: Host::fixed("linux/arm64"),
        ..opts()
    };
    let p = plan_with(SEED, &on_branch("main"), &o);
    assert_eq!(needs(&p, "build:app/amd64"), ["setup-qemu"]);
    assert!(needs(&p, "build:app/arm64v8").is_empty());
}

#[test]
fn every_step_kind_maps_to_its_stage() {
    let p = plan(BASE_APP, &on_branch("main"));
    let mut by_stage: BTreeMap<Stage, BTreeSet<StepKind>> = BTreeMap::new();
    for s in p.steps() {
        by_stage
            .entry(s.kind().stage())
            .or_default()
            .insert(s.kind());
    }
    assert_eq!(by_stage[&Stage::Push], [StepKind::Push].into());
    assert_eq!(
        by_stage[&Stage::Publish],
        [StepKind::ManifestCreate, StepKind::ManifestPush].into()
    );
}
