//! `.gitlab-ci.yml`: the seed article's setup (docker-in-docker, `DOCKER_HOST`,
//! TLS, emulation) around one `multiarch run` line per job; multiarch logs in
//! itself through `docker login --password-stdin` with GitLab's
//! `CI_REGISTRY_USER` / `CI_REGISTRY_PASSWORD` (or `MULTIARCH_REGISTRY_*`).

use std::path::Path;

use serde::Serialize;

use super::gate::{self, gitlab_rule};
use super::CiError;
use super::{emulation_lines, handlers_needed, job_ids, to_yaml, Layout, Ordered};
use crate::spec::{Platform, Spec};

/// The default job image: the docker CLI (Alpine, whose cargo builds multiarch).
pub const DEFAULT_IMAGE: &str = "docker:29";

/// How the runner runs jobs, which decides where the engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Executor {
    /// The docker executor: a `docker:dind` service reached over TLS at
    /// `tcp://docker:2376` (the service is on the job's network, not loopback).
    #[default]
    Docker,
    /// The Kubernetes executor: services share the job's pod, so dind listens
    /// on 127.0.0.1 only, without TLS.
    Kubernetes,
    /// A shell executor: the runner's own engine; no image, no service.
    Shell,
}

impl Executor {
    /// The CLI flag that selects it (`None` for the default).
    fn flag(self) -> Option<&'static str> {
        match self {
            Executor::Docker => None,
            Executor::Kubernetes => Some("--executor kubernetes"),
            Executor::Shell => Some("--executor shell"),
        }
    }
}

#[derive(Serialize)]
struct File {
    stages: Vec<&'static str>,
    #[serde(skip_serializing_if = "Variables::is_empty")]
    variables: Variables,
    default: Defaults,
    #[serde(flatten)]
    jobs: Ordered<Job>,
}

#[derive(Serialize, Default)]
struct Variables {
    #[serde(rename = "DOCKER_HOST", skip_serializing_if = "Option::is_none")]
    docker_host: Option<String>,
    #[serde(rename = "DOCKER_TLS_CERTDIR", skip_serializing_if = "Option::is_none")]
    tls_certdir: Option<String>,
    #[serde(rename = "DOCKER_TLS_VERIFY", skip_serializing_if = "Option::is_none")]
    tls_verify: Option<String>,
    #[serde(rename = "DOCKER_CERT_PATH", skip_serializing_if = "Option::is_none")]
    cert_path: Option<String>,
}

impl Variables {
    fn is_empty(&self) -> bool {
        self.docker_host.is_none()
    }
}

#[derive(Serialize)]
struct Defaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<Service>,
    before_script: Vec<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Service {
    Image(String),
    WithCommand { name: String, command: Vec<String> },
}

#[derive(Serialize)]
struct Job {
    stage: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    needs: Option<Vec<Need>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_group: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rules: Vec<Rule>,
    script: Vec<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Need {
    Job(String),
    Optional { job: String, optional: bool },
}

#[derive(Serialize)]
struct Rule {
    #[serde(rename = "if")]
    condition: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<&'static str>,
}

/// The dind service for a job image: the same engine version on both sides.
fn dind_for(image: &str) -> String {
    match image.strip_prefix("docker:") {
        Some(tag) if !tag.contains('@') && !tag.ends_with("-dind") => format!("docker:{tag}-dind"),
        _ => format!("{DEFAULT_IMAGE}-dind"),
    }
}

/// `.gitlab-ci.yml` for the spec; `root` is the repository's top directory.
pub fn gitlab(spec: &Spec, root: &Path, executor: Executor) -> Result<String, CiError> {
    let layout = Layout::new(spec, root)?;
    let job_image = spec
        .ci
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE.into());
    let alpine_docker = job_image.starts_with("docker:");
    let image = job_image;
    let (variables, image, services) = match executor {
        Executor::Docker => (
            Variables {
                docker_host: Some("tcp://docker:2376".into()),
                tls_certdir: Some("/certs".into()),
                tls_verify: Some("1".into()),
                cert_path: Some("/certs/client".into()),
            },
            Some(image.clone()),
            vec![Service::Image(dind_for(&image))],
        ),
        Executor::Kubernetes => (
            Variables {
                docker_host: Some("tcp://127.0.0.1:2375".into()),
                tls_certdir: Some(String::new()),
                ..Variables::default()
            },
            Some(image.clone()),
            vec![Service::WithCommand {
                name: dind_for(&image),
                command: vec!["--tls=false".into(), "--host=tcp://127.0.0.1:2375".into()],
            }],
        ),
        Executor::Shell => (Variables::default(), None, Vec::new()),
    };
    let install = match &spec.ci.install {
        Some(i) => i.clone(),
        // Alpine's cargo; cargo installs into ~/.cargo/bin.
        None if alpine_docker && executor != Executor::Shell => {
            "apk add --no-cache cargo && cargo install --locked multiarch && export PATH=\"$HOME/.cargo/bin:$PATH\"".into()
        }
        None => "cargo install --locked multiarch && export PATH=\"$HOME/.cargo/bin:$PATH\"".into(),
    };

    // Untagged jobs run on the instance's default runners, amd64 on GitLab.com;
    // tagged ones on a runner the tags pick, taken to be of the arch.
    let amd64 = Platform::parse("linux/amd64").ok();
    let mut jobs = Vec::new();
    let builds = job_ids(&layout.arches, "build", str::to_string);
    let verifies = job_ids(&layout.arches, "verify", str::to_string);
    let per_arch =
        |a: &crate::spec::Arch, stages: &[&str]| -> Result<(Vec<String>, Vec<String>), CiError> {
            let runner = a.runner_tags.is_empty().then_some(amd64.as_ref()).flatten();
            let mut script = emulation_lines(&handlers_needed(a, runner));
            script.push(layout.run_line(Some(&a.name), stages)?);
            Ok((a.runner_tags.clone(), script))
        };
    for (a, id) in layout.arches.iter().zip(&builds) {
        let (tags, script) = per_arch(a, layout.build_stages())?;
        jobs.push((
            id.clone(),
            Job {
                stage: "build",
                tags,
                needs: Some(Vec::new()),
                resource_group: None,
                rules: Vec::new(),
                script,
            },
        ));
    }
    let mut inexact = false;
    if layout.publishes() {
        let mut rules = vec![
            Rule {
                condition: "$CI_PIPELINE_SOURCE == \"merge_request_event\"".into(),
                when: Some("never"),
            },
            Rule {
                condition: "$CI_PIPELINE_SOURCE == \"external_pull_request_event\"".into(),
                when: Some("never"),
            },
        ];
        for (kind, glob) in gate::publishing_globs(spec) {
            let (condition, exact) = gitlab_rule(kind, glob);
            inexact |= !exact;
            if !rules.iter().any(|r| r.condition == condition) {
                rules.push(Rule {
                    condition,
                    when: None,
                });
            }
        }
        jobs.push((
            "publish".into(),
            Job {
                stage: "publish",
                tags: Vec::new(),
                needs: Some(builds.iter().cloned().map(Need::Job).collect()),
                // One publish at a time: floating tags move forward only.
                resource_group: Some("multiarch-publish".into()),
                rules,
                script: vec![layout.run_line(None, &["publish"])?],
            },
        ));
    }
    if layout.verifies() {
        for ((a, id), build) in layout.arches.iter().zip(&verifies).zip(&builds) {
            let (tags, script) = per_arch(a, &["verify"])?;
            let mut needs = vec![Need::Job(build.clone())];
            if layout.publishes() {
                // Absent from pipelines that do not publish.
                needs.push(Need::Optional {
                    job: "publish".into(),
                    optional: true,
                });
            }
            jobs.push((
                id.clone(),
                Job {
                    stage: "verify",
                    tags,
                    needs: Some(needs),
                    resource_group: None,
                    rules: Vec::new(),
                    script,
                },
            ));
        }
    }
    let mut stages = vec!["build"];
    if layout.publishes() {
        stages.push("publish");
    }
    if layout.verifies() {
        stages.push("verify");
    }
    let file = File {
        stages,
        variables,
        default: Defaults {
            image,
            services,
            before_script: vec![install],
        },
        jobs: Ordered(jobs),
    };
    let header = layout.header("gitlab", executor.flag(), inexact)?;
    Ok(format!("{header}{}", to_yaml(&file)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_matches_the_job_image() {
        for (job_image, service) in [
            ("docker:29", "docker:29-dind"),
            ("docker:27.5.1", "docker:27.5.1-dind"),
            // Not docker's own image: the service is the default's.
            ("registry.example/ci:1", "docker:29-dind"),
        ] {
            assert_eq!(dind_for(job_image), service, "{job_image}");
        }
    }
}
