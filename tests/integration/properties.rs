//! Properties: every valid spec plans into a sound DAG, and no input — random
//! text, a valid spec with random byte edits, any template string — panics.
//! Case counts are modest so that `cargo test` stays fast in debug builds.

use std::collections::BTreeSet;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::subsequence;

use multiarch::plan::{render_json, Host};
use multiarch::spec::arch::BUILTIN;
use multiarch::spec::reference;
use multiarch::spec::template::{self, Braces, Location};
use multiarch::spec::Platform;
use multiarch::{Environment, GitContext, Plan, PlanOptions, Spec, Stage};

const SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// The number of cases: `default`, or PROPTEST_CASES when set (for a longer run).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn project() -> PathBuf {
    PathBuf::from("tests/fixtures/project")
}

fn env() -> Environment {
    Environment::from_pairs([("REGISTRY", "127.0.0.1:5000"), ("EMPTY", "")])
}

/// What a generated spec is made of.
#[derive(Debug, Clone)]
struct Shape {
    /// Per image: a bit mask over the built-in arches.
    arch_masks: Vec<u16>,
    /// Per image: raw picks of earlier images to depend on.
    dep_picks: Vec<Vec<usize>>,
    /// Per image: index into CONTEXTS.
    contexts: Vec<usize>,
    /// Per image: use `[archs].default` instead of an `archs` key (when it can).
    use_default: Vec<bool>,
    /// Per image: write arches as OCI platforms rather than names.
    as_platform: Vec<bool>,
    default_mask: u16,
    arch_tag: usize,
    manifest_mask: u8,
    registry: usize,
    branches: usize,
    push: usize,
    verify: (bool, bool),
}

const CONTEXTS: &[&str] = &["app", "base", "api", "."];
const ARCH_TAGS: &[&str] = &[
    "{repo}/{arch}:{sha}",
    "{repo}:{sha}-{arch}",
    "{repo}/{arch}:{short_sha}",
    "{repo}:{sha}_{platform_tag}",
    "{repo}-{os}-{architecture}{variant}:{short_sha}",
];
const MANIFEST_TAGS: &[&str] = &[
    "\"{sha}\"",
    "\"latest\"",
    "\"{branch}\"",
    "\"{short_sha}\"",
    "{ tag = \"{version}\", when = \"git-tag\" }",
    "{ tag = \"stable\", branches = [\"main\", \"release/**\"] }",
    "\"v{major}.{minor}\"",
    "\"{git_tag}\"",
];
const REGISTRIES: &[Option<&str>] = &[
    None,
    Some("${REGISTRY}/acme"),
    Some("registry.example.com"),
    Some("localhost:5000"),
    Some("[::1]:5000/team"),
];
const PUBLISH_BRANCHES: &[&str] = &["[\"main\"]", "[\"**\"]", "[\"main\", \"release/**\"]"];
const PUSH: &[&str] = &["always", "publish-branches", "never"];

fn shape() -> impl Strategy<Value = Shape> {
    (1..=20usize).prop_flat_map(|n| {
        (
            (
                prop::collection::vec(1u16..1024, n),
                prop::collection::vec(prop::collection::vec(any::<usize>(), 0..3), n),
                prop::collection::vec(0..CONTEXTS.len(), n),
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(any::<bool>(), n),
            ),
            (
                1u16..1024,
                0..ARCH_TAGS.len(),
                1u8..=255,
                0..REGISTRIES.len(),
                0..PUBLISH_BRANCHES.len(),
                0..PUSH.len(),
                (any::<bool>(), any::<bool>()),
            ),
        )
            .prop_map(
                |(
                    (arch_masks, dep_picks, contexts, use_default, as_platform),
                    (default_mask, arch_tag, manifest_mask, registry, branches, push, verify),
                )| Shape {
                    arch_masks,
                    dep_picks,
                    contexts,
                    use_default,
                    as_platform,
                    default_mask,
                    arch_tag,
                    manifest_mask,
                    registry,
                    branches,
                    push,
                    verify,
                },
            )
    })
}

fn arches_of(mask: u16) -> BTreeSet<usize> {
    (0..BUILTIN.len())
        .filter(|i| mask & (1 << i) != 0)
        .collect()
}

fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", v.join(", "))
}

/// The TOML text of a shape, and every image's arches (indices into BUILTIN).
fn render_spec(s: &Shape) -> (String, Vec<BTreeSet<usize>>) {
    let mut t = String::from("version = 1\n\n[project]\n");
    if let Some(r) = REGISTRIES[s.registry] {
        t.push_str(&format!("registry = \"{r}\"\n"));
    }
    let default = arches_of(s.default_mask);
    t.push_str(&format!(
        "\n[archs]\ndefault = {}\n",
        quoted_list(default.iter().map(|&i| BUILTIN[i].0))
    ));
    let manifest: Vec<&str> = (0..MANIFEST_TAGS.len())
        .filter(|i| s.manifest_mask & (1 << i) != 0)
        .map(|i| MANIFEST_TAGS[i])
        .collect();
    t.push_str(&format!(
        "\n[tags]\narch = \"{}\"\nmanifest = [{}]\n",
        ARCH_TAGS[s.arch_tag],
        manifest.join(", ")
    ));
    t.push_str(&format!(
        "\n[publish]\nbranches = {}\ntags = [\"v*\"]\npush = \"{}\"\n",
        PUBLISH_BRANCHES[s.branches], PUSH[s.push]
    ));
    t.push_str(&format!(
        "\n[verify]\nenabled = {}\nbefore_push = {}\n",
        s.verify.0, s.verify.1
    ));
    let mut all: Vec<BTreeSet<usize>> = Vec::new();
    for i in 0..s.arch_masks.len() {
        let mut deps: Vec<usize> = if i == 0 {
            Vec::new()
        } else {
            s.dep_picks[i].iter().map(|p| p % i).collect()
        };
        deps.sort_unstable();
        deps.dedup();
        // `{image.D}` needs D built for every arch of this image.
        let mut arches = arches_of(s.arch_masks[i]);
        for d in &deps {
            arches = arches.intersection(&all[*d]).copied().collect();
        }
        if arches.is_empty() {
            deps.clear();
            arches = arches_of(s.arch_masks[i]);
        }
        let explicit = !(s.use_default[i] && deps.is_empty());
        if !explicit {
            arches = default.clone();
        }
        t.push_str(&format!(
            "\n[[image]]\nname = \"img-{i}\"\ncontext = \"{}\"\n",
            CONTEXTS[s.contexts[i]]
        ));
        if explicit {
            let names = arches.iter().map(|&a| {
                if s.as_platform[i] {
                    BUILTIN[a].1
                } else {
                    BUILTIN[a].0
                }
            });
            t.push_str(&format!("archs = {}\n", quoted_list(names)));
        }
        if !deps.is_empty() {
            let names: Vec<String> = deps.iter().map(|d| format!("img-{d}")).collect();
            t.push_str(&format!(
                "depends_on = {}\n",
                quoted_list(names.iter().map(String::as_str))
            ));
            let args: Vec<String> = deps
                .iter()
                .map(|d| format!("BASE_{d} = \"{{image.img-{d}}}\""))
                .collect();
            t.push_str(&format!("args = {{ {} }}\n", args.join(", ")));
        }
        all.push(arches);
    }
    (t, all)
}

fn context() -> impl Strategy<Value = GitContext> {
    (
        proptest::option::of("[a-zA-Z0-9/._$()@ ~;`-]{0,40}"),
        proptest::option::of(prop::sample::select(vec![
            "v1.2.3",
            "v2.0",
            "nightly",
            "1.0.0-rc.1",
        ])),
        proptest::option::of("[0-9]{1,4}"),
    )
        .prop_map(|(branch, git_tag, pr)| GitContext {
            branch,
            git_tag: git_tag.map(str::to_string),
            sha: Some(SHA.into()),
            pull_request: pr,
            ..GitContext::default()
        })
}

fn stages() -> impl Strategy<Value = Vec<Stage>> {
    subsequence(
        vec![Stage::Build, Stage::Push, Stage::Publish, Stage::Verify],
        0..=4,
    )
}

/// Every need is an existing, earlier step; ids are unique.
fn check_dag(plan: &Plan) -> Result<(), TestCaseError> {
    let mut seen = BTreeSet::new();
    let all: BTreeSet<String> = plan.steps().iter().map(|s| s.id.to_string()).collect();
    for idx in plan.indices() {
        let s = plan.step(idx);
        for n in plan.need_ids(idx) {
            let n = n.to_string();
            prop_assert!(all.contains(&n), "{} needs {n}: no such step", s.id);
            prop_assert!(seen.contains(&n), "{} needs {n}, listed later", s.id);
        }
        for n in s.external_needs() {
            prop_assert!(
                !all.contains(&n.id.to_string()),
                "{} external {} is in the plan",
                s.id,
                n.id
            );
        }
        prop_assert!(seen.insert(s.id.to_string()), "{} twice", s.id);
        prop_assert!(
            !s.command().is_empty() || !s.action.requests().is_empty(),
            "{} has no command and no request",
            s.id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn valid_specs_plan_into_a_sound_dag(
        s in shape(),
        ctx in context(),
        stages in stages(),
        pick_images in any::<u32>(),
        pick_arches in any::<u16>(),
    ) {
        let (text, arches) = render_spec(&s);
        let spec = Spec::from_str_in(&text, "multiarch.toml", &project(), &env())
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- spec ---\n{text}")))?;
        prop_assert_eq!(spec.images.len(), s.arch_masks.len());
        for (img, want) in spec.images.iter().zip(&arches) {
            let want: BTreeSet<&str> = want.iter().map(|&a| BUILTIN[a].0).collect();
            let got: BTreeSet<&str> = img.archs.iter().map(String::as_str).collect();
            prop_assert_eq!(got, want, "{}", img.name);
        }

        // The whole plan.
        let opts = PlanOptions { host: Host::fixed("linux/amd64"), ..PlanOptions::default() };
        let plan = Plan::new(&spec, &ctx, &opts)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- spec ---\n{text}")))?;
        check_dag(&plan)?;
        let json: serde_json::Value = serde_json::from_str(&render_json(&plan))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(json["steps"].as_array().map(Vec::len), Some(plan.steps().len()));
        if ctx.pull_request.is_some() {
            prop_assert!(!plan.publish);
        }
        if !plan.publish {
            prop_assert!(plan.steps().iter().all(|s| s.tag().is_none()));
        }
        // Branch text reaches argv only sanitised.
        for st in plan.steps() {
            for c in &st.commands() {
                for a in c {
                    prop_assert!(!a.contains("$(") && !a.contains('`') && !a.contains(';'),
                        "{}: {a}", st.id);
                }
            }
        }

        // A selection of images, arches and stages.
        let images: Vec<String> = spec.images.iter().enumerate()
            .filter(|(i, _)| pick_images & (1 << (i % 32)) != 0)
            .map(|(_, img)| img.name.clone())
            .collect();
        let used: BTreeSet<&str> = spec.images.iter().flat_map(|i| i.archs.iter().map(String::as_str)).collect();
        let arch_sel: Vec<String> = used.iter().enumerate()
            .filter(|(i, _)| pick_arches & (1 << i) != 0)
            .map(|(_, a)| a.to_string())
            .collect();
        let opts = PlanOptions {
            images,
            archs: arch_sel,
            stages,
            host: Host::fixed("linux/amd64"),
            ..PlanOptions::default()
        };
        let plan = Plan::new(&spec, &ctx, &opts)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- spec ---\n{text}")))?;
        check_dag(&plan)?;
        let again = Plan::new(&spec, &ctx, &opts)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(render_json(&plan), render_json(&again));
    }
}

/// A small valid spec to mutate.
const SEED: &str = r#"version = 1

[project]
registry = "${REGISTRY:-127.0.0.1:5000}/acme"
jobs = 4
timeout = "30m"

[archs]
default = ["amd64", "arm32v7", "linux/arm64"]

[arch.pi]
platform = "linux/arm/v6"
uname = ["armv6l"]
docker_context = "pi"

[tags]
arch = "{repo}/{arch}:{sha}"
manifest = ["{sha}", "{branch}", { tag = "latest", branches = ["main"] }, { tag = "{version}", when = "git-tag" }]

[publish]
branches = ["main", "release/**"]
tags = ["v*"]

[verify]
command = ["uname", "-m"]

[[image]]
name = "base"
context = "base"
archs = ["amd64", "arm32v7", "arm64v8", "pi"]

[[image]]
name = "app"
context = "app"
depends_on = ["base"]
args = { BASE = "{image.base}", V = "$${{x}}" }
labels = { "org.opencontainers.image.vendor" = "Acme" }
paths = ["app/**", "libs/{a,b}/**"]
verify = { command = ["/app", "--version"], expect = "app 1." }
"#;

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, u8),
    Delete(usize),
    Replace(usize, u8),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    // Bytes that matter to TOML and to templates, plus anything.
    let byte = prop_oneof![
        prop::sample::select(b"[]{}\"'=$,.\n#:-_/\\ 0aZ".to_vec()),
        any::<u8>(),
    ];
    let edit = prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Replace(i, b)),
    ];
    prop::collection::vec(edit, 1..8)
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut b = text.as_bytes().to_vec();
    for e in edits {
        let n = b.len().max(1);
        match *e {
            Edit::Insert(i, x) => b.insert(i % (b.len() + 1), x),
            Edit::Delete(i) if !b.is_empty() => {
                b.remove(i % n);
            }
            Edit::Replace(i, x) if !b.is_empty() => b[i % n] = x,
            _ => {}
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn load(text: &str) -> Result<Spec, multiarch::Error> {
    Ok(Spec::from_str_in(
        text,
        "multiarch.toml",
        &project(),
        &env(),
    )?)
}

/// Loading, rendering the errors, and planning what loads must not panic.
fn exercise(text: &str) -> Result<(), TestCaseError> {
    match load(text) {
        Ok(spec) => {
            let ctx = GitContext {
                branch: Some("main".into()),
                sha: Some(SHA.into()),
                ..GitContext::default()
            };
            let opts = PlanOptions {
                host: Host::fixed("linux/amd64"),
                ..PlanOptions::default()
            };
            if let Ok(plan) = Plan::new(&spec, &ctx, &opts) {
                check_dag(&plan)?;
            }
        }
        Err(e) => {
            prop_assert_eq!(e.exit_code(), 2);
            if let multiarch::Error::Spec(errs) = &e {
                prop_assert!(!errs.is_empty());
                let _ = errs.render(false, 80);
                let _ = errs.to_string();
            }
        }
    }
    Ok(())
}

#[test]
fn the_mutation_seed_is_valid() {
    load(SEED).unwrap_or_else(|e| panic!("{e}"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        exercise(&s)?;
    }

    #[test]
    fn toml_like_text_never_panics(s in "[\\[\\]a-z_={}\"'$,.\n :/0-9-]{0,300}") {
        exercise(&s)?;
    }

    #[test]
    fn edited_specs_never_panic(e in edits()) {
        exercise(&apply(SEED, &e))?;
    }

    #[test]
    fn template_parsing_never_panics(
        s in prop_oneof![any::<String>(), "[${}a-zA-Z_:.0-9-]{0,40}"],
        escaped in any::<bool>(),
    ) {
        let loc = Location {
            whole: 0..s.len() + 2,
            content_start: if escaped { None } else { Some(1) },
        };
        for braces in [Braces::Variables, Braces::Literal] {
            match template::parse(&s, &loc, &env(), braces) {
                Ok(t) => {
                    let _ = t.display();
                    let _ = t.render(|n| Some(format!("<{n}>")));
                    if braces == Braces::Literal {
                        prop_assert!(t.as_literal().is_some());
                    }
                    for (_, span) in t.vars() {
                        prop_assert!(span.end <= loc.whole.end, "{span:?}");
                    }
                }
                Err(problems) => {
                    prop_assert!(!problems.is_empty());
                    for p in problems {
                        prop_assert!(p.span.start <= p.span.end && p.span.end <= loc.whole.end,
                            "{}: {:?}", p.code, p.span);
                    }
                }
            }
        }
    }

    #[test]
    fn sanitised_branches_are_valid_tags(s in any::<String>()) {
        let t = reference::sanitize_tag(&s);
        prop_assert!(t.is_empty() || reference::is_valid_tag(&t), "{s:?} → {t:?}");
    }

    #[test]
    fn reference_and_platform_parsing_never_panic(s in any::<String>()) {
        let _ = reference::parse(&s);
        let _ = reference::parse_repository(&s);
        if let Ok(p) = Platform::parse(&s) {
            // A parsed platform is normalised: parsing its text gives it back.
            prop_assert_eq!(Platform::parse(&p.to_string()), Ok(p));
        }
    }
}
