//! `.github/workflows/images.yml`: least privilege (`contents: read`;
//! `packages: write` only on jobs that push), actions pinned to a commit,
//! registry secrets only in the steps that run multiarch, native arm runners,
//! one publish at a time.

use std::path::Path;

use serde::Serialize;

use super::gate::{github_condition, posix_gates, publishing_globs};
use super::CiError;
use super::{job_ids, to_yaml, Layout, Ordered};
use crate::spec::{Arch, Platform, Spec};

/// `(action, commit, version)`: pinned to a full commit, the version in a comment.
const CHECKOUT: (&str, &str, &str) = (
    "actions/checkout",
    "08c6903cd8c0fde910a37f88322edcfb5dd907a8",
    "v5.0.0",
);
const SETUP_QEMU: (&str, &str, &str) = (
    "docker/setup-qemu-action",
    "29109295f81e9208d7d86ff1c6c12d2833863392",
    "v3.6.0",
);

/// GitHub-hosted runners: amd64 and arm64, the same Ubuntu.
const AMD64_RUNNER: &str = "ubuntu-24.04";
const ARM64_RUNNER: &str = "ubuntu-24.04-arm";

const DEFAULT_INSTALL: &str = "cargo install --locked multiarch";

/// The publish job's first step where GitHub's `if:` is wider than the globs:
/// the ref's name against the globs' POSIX EREs (`gate::posix_ere`, from the
/// same globset regex as multiarch's matching).
const GATE: &str = r#"case "$GITHUB_REF" in
  refs/heads/*) name="${GITHUB_REF#refs/heads/}" re="${PUBLISH_BRANCHES:-}" ;;
  refs/tags/*) name="${GITHUB_REF#refs/tags/}" re="${PUBLISH_TAGS:-}" ;;
  *) name="" re="" ;;
esac
if [ -n "$re" ] && [[ "$name" =~ $re ]]; then publish=true; else publish=false; fi
echo "publish=$publish" >> "$GITHUB_OUTPUT"
echo "$GITHUB_REF publishes: $publish"
"#;

#[derive(Serialize)]
struct Workflow {
    name: &'static str,
    on: Vec<&'static str>,
    permissions: Permissions,
    jobs: Ordered<Job>,
}

#[derive(Serialize, Clone)]
struct Permissions {
    contents: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    packages: Option<&'static str>,
}

#[derive(Serialize)]
struct Job {
    name: String,
    #[serde(rename = "runs-on")]
    runs_on: RunsOn,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    needs: Vec<String>,
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    condition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Permissions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<Concurrency>,
    steps: Vec<Step>,
}

/// A GitHub-hosted label, or labels of self-hosted runners (`runner_tags`).
#[derive(Serialize)]
#[serde(untagged)]
enum RunsOn {
    Hosted(&'static str),
    SelfHosted(Vec<String>),
}

#[derive(Serialize)]
struct Concurrency {
    group: String,
    #[serde(rename = "cancel-in-progress")]
    cancel_in_progress: bool,
}

#[derive(Serialize, Default)]
struct Step {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    condition: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uses: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<Ordered<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<String>,
}

impl Step {
    fn uses((action, commit, _): (&str, &str, &str)) -> Step {
        Step {
            uses: Some(format!("{action}@{commit}")),
            ..Step::default()
        }
    }
}

/// Where an arch's jobs run, and that runner's platform when it is known.
fn runner(arch: &Arch) -> (RunsOn, Option<Platform>) {
    if !arch.runner_tags.is_empty() {
        let mut labels = vec!["self-hosted".to_string()];
        labels.extend(
            arch.runner_tags
                .iter()
                .filter(|t| *t != "self-hosted")
                .cloned(),
        );
        return (RunsOn::SelfHosted(labels), None);
    }
    // A native builder does the work elsewhere: the job only drives it.
    let arm = arch.builder.is_none() && matches!(arch.platform.arch.as_str(), "arm64" | "arm");
    let (label, platform) = if arm {
        (ARM64_RUNNER, "linux/arm64")
    } else {
        (AMD64_RUNNER, "linux/amd64")
    };
    (RunsOn::Hosted(label), Platform::parse(platform).ok())
}

/// `.github/workflows/images.yml` for the spec; `root` is the repository's top.
pub fn github(spec: &Spec, root: &Path) -> Result<String, CiError> {
    let layout = Layout::new(spec, root)?;
    if layout.file.as_deref().is_some_and(|f| f.contains("${{")) {
        return Err(CiError::GitHubExpression(layout.shown.clone()));
    }
    let install = spec
        .ci
        .install
        .clone()
        .unwrap_or_else(|| DEFAULT_INSTALL.into());
    let read = Permissions {
        contents: "read",
        packages: None,
    };
    let push = Permissions {
        contents: "read",
        packages: Some("write"),
    };
    // Only the step that runs multiarch sees the registry credentials.
    let credentials = if registry_host(spec) == Some("ghcr.io") {
        [
            ("MULTIARCH_REGISTRY_USER", "${{ github.actor }}"),
            ("MULTIARCH_REGISTRY_PASSWORD", "${{ secrets.GITHUB_TOKEN }}"),
        ]
    } else {
        [
            (
                "MULTIARCH_REGISTRY_USER",
                "${{ secrets.MULTIARCH_REGISTRY_USER }}",
            ),
            (
                "MULTIARCH_REGISTRY_PASSWORD",
                "${{ secrets.MULTIARCH_REGISTRY_PASSWORD }}",
            ),
        ]
    };
    let steps = |qemu: bool, line: String| -> Vec<Step> {
        let mut s = vec![Step::uses(CHECKOUT)];
        if qemu {
            s.push(Step::uses(SETUP_QEMU));
        }
        s.push(Step {
            name: Some("Install multiarch".into()),
            run: Some(install.clone()),
            ..Step::default()
        });
        s.push(Step {
            env: Some(Ordered(
                credentials
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )),
            run: Some(line),
            ..Step::default()
        });
        s
    };
    let clean = |n: &str| n.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
    let builds = job_ids(&layout.arches, "build", clean);
    let verifies = job_ids(&layout.arches, "verify", clean);
    let mut jobs = Vec::new();
    for (a, id) in layout.arches.iter().zip(&builds) {
        let (runs_on, platform) = runner(a);
        let qemu = !super::handlers_needed(a, platform.as_ref()).is_empty();
        jobs.push((
            id.clone(),
            Job {
                name: format!("build {}", a.name),
                runs_on,
                needs: Vec::new(),
                condition: None,
                permissions: Some(if layout.pushes() {
                    push.clone()
                } else {
                    read.clone()
                }),
                concurrency: None,
                steps: steps(qemu, layout.run_line(Some(&a.name), layout.build_stages())?),
            },
        ));
    }
    let mut inexact = false;
    let globs = publishing_globs(spec);
    if let Some((cond, exact)) = github_condition(&globs).filter(|_| layout.publishes()) {
        let mut steps = steps(false, layout.run_line(None, &["publish"])?);
        if !exact {
            // The `if:` is wider than the globs: a first step decides exactly,
            // and the others (the secrets among them) run only when it says so.
            let (branches, tags, gate_exact) = posix_gates(&globs);
            inexact = !gate_exact;
            for s in &mut steps {
                s.condition = Some("steps.gate.outputs.publish == 'true'");
            }
            // Bytes, as globset matches them: `?` is one byte.
            let env = [
                ("PUBLISH_BRANCHES", branches),
                ("PUBLISH_TAGS", tags),
                ("LC_ALL", Some("C".to_string())),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
            steps.insert(
                0,
                Step {
                    id: Some("gate"),
                    name: Some("Does this ref publish?".into()),
                    env: Some(Ordered(env)),
                    run: Some(GATE.into()),
                    ..Step::default()
                },
            );
        }
        jobs.push((
            "publish".into(),
            Job {
                name: "publish".into(),
                runs_on: RunsOn::Hosted(AMD64_RUNNER),
                needs: builds.clone(),
                condition: Some(cond.render()),
                permissions: Some(push.clone()),
                // One publish at a time, none cancelled: floating tags move forward only.
                concurrency: Some(Concurrency {
                    group: "${{ github.workflow }}-publish".into(),
                    cancel_in_progress: false,
                }),
                steps,
            },
        ));
    }
    if layout.verifies() {
        for ((a, id), build) in layout.arches.iter().zip(&verifies).zip(&builds) {
            let (runs_on, platform) = runner(a);
            let qemu = !super::handlers_needed(a, platform.as_ref()).is_empty();
            let mut needs = vec![build.clone()];
            if layout.publishes() {
                needs.push("publish".into());
            }
            jobs.push((
                id.clone(),
                Job {
                    name: format!("verify {}", a.name),
                    runs_on,
                    needs,
                    // Also when publish was skipped (a ref that does not publish).
                    condition: Some("${{ !failure() && !cancelled() }}".into()),
                    permissions: Some(Permissions {
                        contents: "read",
                        packages: Some("read"),
                    }),
                    concurrency: None,
                    steps: steps(qemu, layout.run_line(Some(&a.name), &["verify"])?),
                },
            ));
        }
    }
    let workflow = Workflow {
        name: "images",
        on: vec!["push", "pull_request"],
        permissions: read,
        jobs: Ordered(jobs),
    };
    let header = layout.header("github", None, inexact)?;
    Ok(format!(
        "{header}{}",
        with_version_comments(&to_yaml(&workflow)?)
    ))
}

fn registry_host(spec: &Spec) -> Option<&str> {
    spec.project
        .registry
        .as_deref()
        .and_then(|r| r.split('/').next())
}

/// `uses: ACTION@COMMIT` → `uses: ACTION@COMMIT # VERSION` (what Dependabot and
/// Renovate read), kept only when the document still means the same.
fn with_version_comments(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 64);
    for line in yaml.lines() {
        out.push_str(line);
        for (action, commit, version) in [CHECKOUT, SETUP_QEMU] {
            if line.trim_start_matches([' ', '-']) == format!("uses: {action}@{commit}") {
                out.push_str(" # ");
                out.push_str(version);
            }
        }
        out.push('\n');
    }
    let same = serde_yaml::from_str::<serde_yaml::Value>(&out).ok()
        == serde_yaml::from_str::<serde_yaml::Value>(yaml).ok();
    if same {
        out
    } else {
        yaml.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comments_change_nothing_but_comments() {
        let yaml = "steps:\n- uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8\n";
        assert_eq!(
            with_version_comments(yaml),
            "steps:\n- uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0\n"
        );
        // Inside a block scalar the same text is data, not a key: left alone.
        let block =
            "run: |-\n  x\n  uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8\n";
        assert_eq!(with_version_comments(block), block);
    }
}
