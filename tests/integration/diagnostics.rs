//! A corpus of malformed multiarch.toml files (tests/fixtures/invalid/), each a
//! mistake a user makes, and the diagnostics they get: file, line:column, a label
//! on the offending value and a help line. The rendered text is snapshotted.
//!
//! Every fixture is loaded as `multiarch.toml` in tests/fixtures/project/, which
//! holds real Dockerfiles, so a missing Dockerfile is only reported on purpose. The
//! environment is built by hand: nothing depends on the test process's variables.

use std::path::{Path, PathBuf};

use multiarch::spec::LoadError;
use multiarch::{Environment, Spec};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The directory fixtures are loaded in, relative (cargo runs tests in the package
/// root) so that messages naming it are the same on every machine.
fn project() -> PathBuf {
    PathBuf::from("tests/fixtures/project")
}

fn env() -> Environment {
    Environment::from_pairs([
        ("HOME", "/home/ci"),
        ("DOCKER_HUB_USER", "acme"),
        ("NODE_VERSION", "20"),
    ])
}

/// Load a fixture, check that it is refused as a file problem, and render it.
fn render(name: &str) -> String {
    let path = fixtures().join("invalid").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let result = Spec::from_str_in(&text, "multiarch.toml", &project(), &env());
    let err = match result {
        Ok(_) => panic!("{name}: expected the file to be refused"),
        Err(e) => e,
    };
    assert_eq!(err.exit_code(), 2, "{name}: {err}");
    let LoadError::Invalid(errs) = &err else {
        panic!("{name}: expected diagnostics about the file, got: {err}");
    };
    assert!(!errs.is_empty(), "{name}: no diagnostics");
    for d in &errs.diagnostics {
        let p = &d.problem;
        assert!(!p.label.is_empty(), "{name}: `{}` has no label", p.message);
        assert!(
            p.help.as_deref().is_some_and(|h| !h.trim().is_empty()),
            "{name}: `{}` has no help",
            p.message
        );
        assert!(
            p.span.end <= text.len() && p.span.start <= p.span.end,
            "{name}: `{}` has a span {:?} outside the file",
            p.message,
            p.span
        );
        assert!(
            !p.span.is_empty() || p.code == "toml-syntax",
            "{name}: `{}` points at nothing ({:?})",
            p.message,
            p.span
        );
    }
    // Source order: what the user reads top to bottom.
    let starts: Vec<usize> = errs
        .diagnostics
        .iter()
        .map(|d| d.problem.span.start)
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_unstable();
    assert_eq!(
        starts, sorted,
        "{name}: diagnostics are not in source order"
    );
    let rendered = errs.render(false, 80);
    assert!(
        rendered.contains("[multiarch.toml:"),
        "{name}: the rendering names no file:line:col:\n{rendered}"
    );
    rendered
}

/// The diagnostics' codes and `file:line:col`, one per line (the one-line form the
/// summary uses).
fn locations(name: &str) -> Vec<String> {
    let path = fixtures().join("invalid").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(path).unwrap();
    match Spec::from_str_in(&text, "multiarch.toml", &project(), &env()) {
        Err(LoadError::Invalid(errs)) => errs
            .diagnostics
            .iter()
            .map(|d| format!("{} {}", d.location(), d.problem.code))
            .collect(),
        other => panic!("{name}: expected diagnostics, got {other:?}"),
    }
}

macro_rules! corpus {
    ($($name:ident),* $(,)?) => {
        const CORPUS: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                let rendered = render(stringify!($name));
                insta::assert_snapshot!(stringify!($name), rendered);
            }
        )*
    };
}

corpus! {
    // Unknown keys and wrong types.
    unknown_top_level_key,
    unknown_project_key,
    unknown_image_key,
    unknown_key_no_suggestion,
    manifest_tag_table_typo,
    wrong_type_jobs,
    wrong_type_archs,
    image_as_table,
    version_2,
    // Arches and platforms.
    unknown_arch,
    unknown_arch_no_alias,
    bad_platform,
    bad_platform_os,
    empty_matrix,
    duplicate_arch,
    new_arch_without_uname,
    new_arch_without_platform,
    builder_and_docker_context,
    bad_builder_url,
    // Names, repositories and references.
    uppercase_image_name,
    missing_image_name,
    invalid_repository,
    invalid_registry,
    insecure_registry_url,
    registry_port_zero,
    insecure_registry_port_out_of_range,
    bad_ipv6_registry,
    invalid_tag_template,
    invalid_arch_reference_template,
    arch_reference_without_arch,
    arch_in_manifest_tag,
    // Images and their dependencies.
    no_images,
    duplicate_images,
    unknown_depends_on,
    dependency_cycle,
    self_dependency,
    image_var_not_dependency,
    image_var_missing_arch,
    image_var_in_tags,
    // Templates and the environment.
    unknown_template_variable,
    platform_tag_typo,
    platform_tag_in_manifest_tag,
    dockerfile_git_variable,
    unclosed_brace,
    stray_closing_brace,
    unset_env_var,
    bad_env_var_name,
    bad_when,
    // Globs.
    bad_glob_publish_branches,
    bad_glob_paths,
    // Files on disk.
    missing_dockerfile,
    missing_context,
    templated_dockerfile_missing,
    // Per-arch overrides.
    per_arch_unknown_arch,
    per_arch_arch_not_in_image,
    per_arch_unknown_key,
    per_arch_missing_dockerfile,
    per_arch_duplicate,
    verify_entrypoint_wrong_type,
    // Build args.
    invalid_build_arg_name,
    invalid_arch_arg,
    secret_build_arg,
    // Settings.
    jobs_zero,
    bad_duration,
    unknown_engine,
    unknown_push_mode,
    empty_verify_command,
    // TOML syntax.
    toml_unclosed_string,
    toml_duplicate_key,
    toml_bare_string,
    // All at once.
    several_errors,
}

#[test]
fn every_fixture_is_in_the_corpus() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    assert!(CORPUS.len() >= 35);
}

#[test]
fn several_errors_are_all_reported_in_source_order() {
    assert_eq!(
        locations("several_errors"),
        [
            "multiarch.toml:6:10 unknown-engine",
            "multiarch.toml:7:8 bad-jobs",
            "multiarch.toml:10:21 unknown-arch",
            "multiarch.toml:13:23 unknown-variable",
            "multiarch.toml:16:8 unknown-push-mode",
            "multiarch.toml:23:8 bad-image-name",
            "multiarch.toml:29:15 unknown-dependency",
            "multiarch.toml:30:10 bad-build-arg",
        ]
    );
}

#[test]
fn a_cycle_names_every_member() {
    let rendered = render("dependency_cycle");
    assert!(
        rendered.contains("base → app → api → base")
            || rendered.contains("app → api → base → app")
            || rendered.contains("api → base → app → api"),
        "{rendered}"
    );
}

#[test]
fn spans_point_at_the_value() {
    // line:column of the offending value, not of its table or key.
    assert_eq!(
        locations("unknown_arch"),
        ["multiarch.toml:3:21 unknown-arch"]
    );
    assert_eq!(
        locations("unknown_template_variable"),
        ["multiarch.toml:3:23 unknown-variable"]
    );
    assert_eq!(
        locations("unset_env_var"),
        ["multiarch.toml:3:13 unset-env"]
    );
    assert_eq!(
        locations("unknown_depends_on"),
        ["multiarch.toml:9:15 unknown-dependency"]
    );
}

#[test]
fn the_process_environment_is_not_read() {
    // CI_REGISTRY_IMAGE may well be set where the tests run; the spec only sees the
    // environment it is given.
    let text = "[project]\nregistry = \"${CI_REGISTRY_IMAGE}\"\n[[image]]\nname = \"app\"\ncontext = \"app\"\n";
    let dir = project();
    let with = Environment::from_pairs([("CI_REGISTRY_IMAGE", "registry.example.com/acme")]);
    let spec = Spec::from_str_in(text, "multiarch.toml", &dir, &with).unwrap();
    assert_eq!(
        spec.project.registry.as_deref(),
        Some("registry.example.com/acme")
    );
    let err = Spec::from_str_in(text, "multiarch.toml", &dir, &Environment::empty()).unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn a_valid_file_in_the_fixture_project_loads() {
    // The fixture project itself is sound: failures above come from the fixtures.
    let text = r#"
[project]
registry = "127.0.0.1:5000/acme"

[[image]]
name = "base"
context = "base"

[[image]]
name = "app"
context = "app"
depends_on = ["base"]
args = { BASE = "{image.base}" }

[[image]]
name = "api"
context = "api"

[[image]]
name = "root"
"#;
    let spec = Spec::from_str_in(text, "multiarch.toml", &project(), &env())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.images.len(), 4);
}

/// A monorepo-sized file is checked on several threads; its problems still come
/// in file order, each image's where a single loop would put it: names refused
/// before the images are checked, repositories used twice after.
#[test]
fn large_file_problems_in_file_order() {
    let mut text = String::from("version = 1\n[archs]\ndefault = [\"amd64\"]\n");
    let mut expected = Vec::new();
    for i in 0..600 {
        match i % 100 {
            // An unknown arch: found by the image's own check.
            10 => {
                text.push_str(&format!(
                    "[[image]]\nname = \"img-{i}\"\narchs = [\"nope{i}\"]\n"
                ));
                expected.push(format!("nope{i}"));
            }
            // The name of the image before: refused before any image is checked.
            20 => {
                text.push_str(&format!("[[image]]\nname = \"img-{}\"\n", i - 1));
                expected.push(format!("img-{}", i - 1));
            }
            // The repository of the image before: found after the check.
            30 => {
                text.push_str(&format!(
                    "[[image]]\nname = \"img-{i}\"\nrepository = \"img-{}\"\n",
                    i - 1
                ));
                expected.push(format!("`img-{}`", i - 1));
            }
            _ => text.push_str(&format!("[[image]]\nname = \"img-{i}\"\n")),
        }
    }
    let Err(LoadError::Invalid(errs)) =
        Spec::from_str_in(&text, "multiarch.toml", &project(), &env())
    else {
        panic!("expected diagnostics");
    };
    // (Two images in one repository also share a reference: a check of the
    // whole plan, not of one image, left out here.)
    let ours = ["unknown-arch", "duplicate-image", "duplicate-repository"];
    let problems: Vec<_> = errs
        .diagnostics
        .iter()
        .map(|d| &d.problem)
        .filter(|p| ours.contains(&p.code))
        .collect();
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), expected.len(), "{messages:#?}");
    for (m, e) in messages.iter().zip(&expected) {
        assert!(
            m.contains(e.as_str()),
            "`{m}` should name {e}: {messages:#?}"
        );
    }
    let starts: Vec<usize> = problems.iter().map(|p| p.span.start).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
}
