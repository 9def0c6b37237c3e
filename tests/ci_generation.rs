//! `multiarch ci gitlab|github`: the output is YAML, and every command in it is one
//! the CLI itself accepts.

use std::path::Path;

use clap::Parser;
use multiarch::cli::Cli;
use multiarch::{Environment, Spec};

const SPEC: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"
[archs]
default = ["amd64", "arm64v8", "arm32v7"]
[arch.arm64v8]
runner_tags = ["arm64", "docker"]
[publish]
branches = ["main", "release/**"]
tags = ["v*"]
[[image]]
name = "app"
"#;

fn spec() -> (Spec, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("multiarch-ci-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(dir.join("multiarch.toml"), SPEC).unwrap();
    let s = Spec::load(&dir.join("multiarch.toml"), &Environment::empty()).unwrap();
    (s, dir)
}

/// Every string in the document that is a `multiarch …` command line.
fn commands(v: &serde_yaml::Value, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::String(s) if s.starts_with("multiarch ") => out.push(s.clone()),
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|i| commands(i, out)),
        serde_yaml::Value::Mapping(m) => m.values().for_each(|i| commands(i, out)),
        _ => {}
    }
}

fn check_commands(yaml: &str, want: usize) -> serde_yaml::Value {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"));
    let mut cmds = Vec::new();
    commands(&doc, &mut cmds);
    assert_eq!(cmds.len(), want, "{cmds:#?}");
    for c in &cmds {
        let argv: Vec<&str> = c.split_whitespace().collect();
        Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("`{c}` is refused by the CLI: {e}"));
    }
    doc
}

#[test]
fn gitlab_pipeline_parses_and_every_command_is_valid() {
    let (spec, dir) = spec();
    let yaml = multiarch::pipeline::gitlab(&spec, &dir);
    let doc = check_commands(&yaml, 5);
    assert_eq!(doc["build-arm64v8"]["tags"][0].as_str(), Some("arm64"));
    assert_eq!(
        doc["build-amd64"]["script"][0].as_str(),
        Some("multiarch run --arch amd64 --stage build --stage push")
    );
    let rules = serde_yaml::to_string(&doc["publish"]["rules"]).unwrap();
    assert!(rules.contains("merge_request_event"), "{rules}");
    assert!(
        rules.contains(r"$CI_COMMIT_BRANCH =~ /^release\/.*$/"),
        "{rules}"
    );
    assert!(rules.contains(r"$CI_COMMIT_TAG =~ /^v[^/]*$/"), "{rules}");
    assert_eq!(
        doc["verify"]["script"][0].as_str(),
        Some("multiarch run --stage verify")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn github_workflow_parses_and_every_command_is_valid() {
    let (spec, dir) = spec();
    let yaml = multiarch::pipeline::github(&spec, Path::new(&dir));
    let doc = check_commands(&yaml, 5);
    let jobs = &doc["jobs"];
    assert_eq!(jobs["build-arm64v8"]["runs-on"][0].as_str(), Some("arm64"));
    assert_eq!(
        jobs["build-amd64"]["runs-on"].as_str(),
        Some("ubuntu-latest")
    );
    let cond = jobs["publish"]["if"].as_str().unwrap();
    assert!(
        cond.contains("startsWith(github.ref, 'refs/heads/release/')"),
        "{cond}"
    );
    assert!(
        cond.contains("startsWith(github.ref, 'refs/tags/v')"),
        "{cond}"
    );
    assert!(cond.contains("pull_request"), "{cond}");
    assert_eq!(jobs["publish"]["needs"].as_sequence().unwrap().len(), 3);
    let _ = std::fs::remove_dir_all(dir);
}
