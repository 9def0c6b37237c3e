//! The CI systems multiarch knows, and what their variables say about the build.

use crate::environment::Environment;

/// What a CI system's variables tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiInfo {
    pub system: &'static str,
    /// The branch being built; on a pull/merge request, its source branch.
    pub branch: Option<String>,
    pub git_tag: Option<String>,
    pub sha: Option<String>,
    /// Set on pull/merge-request builds (their number, or `true`).
    pub pull_request: Option<String>,
    pub source_url: Option<String>,
    pub diff_base: Option<String>,
}

fn s(env: &Environment, key: &str) -> Option<String> {
    env.non_empty(key).map(str::to_string)
}

/// `refs/heads/x` → branch x; `refs/tags/v1` → tag v1; `refs/pull/…` → PR.
fn split_ref(r: &str) -> (Option<String>, Option<String>) {
    if let Some(b) = r.strip_prefix("refs/heads/") {
        (Some(b.to_string()), None)
    } else if let Some(t) = r.strip_prefix("refs/tags/") {
        (None, Some(t.to_string()))
    } else {
        (None, None)
    }
}

/// Detect the CI system from its marker variable, then read its variables.
pub fn detect_ci(env: &Environment) -> Option<CiInfo> {
    if env.is_true("GITLAB_CI") {
        return Some(gitlab(env));
    }
    if env.is_true("GITHUB_ACTIONS") {
        return Some(github(env));
    }
    if env.is_true("CIRCLECI") {
        return Some(circleci(env));
    }
    if env.is_true("BUILDKITE") {
        return Some(buildkite(env));
    }
    if env
        .get("TF_BUILD")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Some(azure(env));
    }
    if env.non_empty("BITBUCKET_BUILD_NUMBER").is_some()
        || env.non_empty("BITBUCKET_COMMIT").is_some()
    {
        return Some(bitbucket(env));
    }
    if env.is_true("TRAVIS") {
        return Some(travis(env));
    }
    if env.non_empty("JENKINS_URL").is_some() || env.non_empty("JENKINS_HOME").is_some() {
        return Some(jenkins(env));
    }
    None
}

fn gitlab(env: &Environment) -> CiInfo {
    let mr = s(env, "CI_MERGE_REQUEST_IID").or_else(|| {
        (env.get("CI_PIPELINE_SOURCE") == Some("merge_request_event")).then(|| "true".into())
    });
    let branch = if mr.is_some() {
        s(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME").or_else(|| s(env, "CI_COMMIT_REF_NAME"))
    } else {
        s(env, "CI_COMMIT_BRANCH").or_else(|| {
            // CI_COMMIT_REF_NAME is the tag name on tag pipelines.
            s(env, "CI_COMMIT_TAG").map_or_else(|| s(env, "CI_COMMIT_REF_NAME"), |_| None)
        })
    };
    CiInfo {
        system: "GitLab CI",
        branch,
        git_tag: s(env, "CI_COMMIT_TAG"),
        sha: s(env, "CI_COMMIT_SHA"),
        pull_request: mr,
        source_url: s(env, "CI_PROJECT_URL"),
        diff_base: s(env, "CI_MERGE_REQUEST_DIFF_BASE_SHA"),
    }
}

fn github(env: &Environment) -> CiInfo {
    let event = env.get("GITHUB_EVENT_NAME").unwrap_or("");
    let is_pr = event.starts_with("pull_request")
        || env
            .get("GITHUB_REF")
            .is_some_and(|r| r.starts_with("refs/pull/"));
    let (mut branch, mut tag) = env.get("GITHUB_REF").map(split_ref).unwrap_or((None, None));
    if branch.is_none() && tag.is_none() {
        match env.get("GITHUB_REF_TYPE") {
            Some("branch") => branch = s(env, "GITHUB_REF_NAME"),
            Some("tag") => tag = s(env, "GITHUB_REF_NAME"),
            _ => {}
        }
    }
    let pull_request = is_pr.then(|| {
        env.get("GITHUB_REF")
            .and_then(|r| r.strip_prefix("refs/pull/"))
            .and_then(|r| r.split('/').next())
            .map_or("true".to_string(), str::to_string)
    });
    if is_pr {
        branch = s(env, "GITHUB_HEAD_REF");
        tag = None;
    }
    let source_url = match (
        env.non_empty("GITHUB_SERVER_URL"),
        env.non_empty("GITHUB_REPOSITORY"),
    ) {
        (Some(server), Some(repo)) => Some(format!("{server}/{repo}")),
        _ => None,
    };
    CiInfo {
        system: "GitHub Actions",
        branch,
        git_tag: tag,
        sha: s(env, "GITHUB_SHA"),
        pull_request,
        source_url,
        diff_base: None,
    }
}

fn jenkins(env: &Environment) -> CiInfo {
    let pr = s(env, "CHANGE_ID");
    let branch = if pr.is_some() {
        s(env, "CHANGE_BRANCH").or_else(|| s(env, "BRANCH_NAME"))
    } else {
        s(env, "BRANCH_NAME").or_else(|| {
            s(env, "GIT_BRANCH").map(|b| {
                b.strip_prefix("origin/")
                    .or_else(|| b.strip_prefix("refs/heads/"))
                    .unwrap_or(&b)
                    .to_string()
            })
        })
    };
    let tag = s(env, "TAG_NAME");
    CiInfo {
        system: "Jenkins",
        branch: if tag.is_some() && env.non_empty("BRANCH_NAME") == tag.as_deref() {
            None
        } else {
            branch
        },
        git_tag: tag,
        sha: s(env, "GIT_COMMIT"),
        pull_request: pr,
        source_url: s(env, "GIT_URL"),
        diff_base: None,
    }
}

fn circleci(env: &Environment) -> CiInfo {
    let pr = s(env, "CIRCLE_PR_NUMBER").or_else(|| s(env, "CIRCLE_PULL_REQUEST"));
    CiInfo {
        system: "CircleCI",
        branch: s(env, "CIRCLE_BRANCH"),
        git_tag: s(env, "CIRCLE_TAG"),
        sha: s(env, "CIRCLE_SHA1"),
        pull_request: pr,
        source_url: s(env, "CIRCLE_REPOSITORY_URL"),
        diff_base: None,
    }
}

fn buildkite(env: &Environment) -> CiInfo {
    let pr = s(env, "BUILDKITE_PULL_REQUEST").filter(|v| v != "false");
    CiInfo {
        system: "Buildkite",
        branch: s(env, "BUILDKITE_BRANCH"),
        git_tag: s(env, "BUILDKITE_TAG"),
        sha: s(env, "BUILDKITE_COMMIT"),
        pull_request: pr,
        source_url: s(env, "BUILDKITE_REPO"),
        diff_base: None,
    }
}

fn azure(env: &Environment) -> CiInfo {
    let is_pr = env.get("BUILD_REASON") == Some("PullRequest");
    let (mut branch, mut tag) = env
        .get("BUILD_SOURCEBRANCH")
        .map(split_ref)
        .unwrap_or((None, None));
    let pull_request = is_pr.then(|| {
        s(env, "SYSTEM_PULLREQUEST_PULLREQUESTID")
            .or_else(|| s(env, "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER"))
            .unwrap_or_else(|| "true".into())
    });
    if is_pr {
        branch = s(env, "SYSTEM_PULLREQUEST_SOURCEBRANCH")
            .map(|b| b.strip_prefix("refs/heads/").unwrap_or(&b).to_string());
        tag = None;
    }
    CiInfo {
        system: "Azure Pipelines",
        branch,
        git_tag: tag,
        sha: s(env, "BUILD_SOURCEVERSION"),
        pull_request,
        source_url: s(env, "BUILD_REPOSITORY_URI"),
        diff_base: None,
    }
}

fn bitbucket(env: &Environment) -> CiInfo {
    CiInfo {
        system: "Bitbucket Pipelines",
        branch: s(env, "BITBUCKET_BRANCH"),
        git_tag: s(env, "BITBUCKET_TAG"),
        sha: s(env, "BITBUCKET_COMMIT"),
        pull_request: s(env, "BITBUCKET_PR_ID"),
        source_url: s(env, "BITBUCKET_GIT_HTTP_ORIGIN"),
        diff_base: None,
    }
}

fn travis(env: &Environment) -> CiInfo {
    let pr = s(env, "TRAVIS_PULL_REQUEST").filter(|v| v != "false");
    let tag = s(env, "TRAVIS_TAG");
    let branch = if pr.is_some() {
        // On PR builds TRAVIS_BRANCH is the *target* branch.
        s(env, "TRAVIS_PULL_REQUEST_BRANCH")
    } else if tag.is_some() {
        // On tag builds TRAVIS_BRANCH holds the tag name.
        None
    } else {
        s(env, "TRAVIS_BRANCH")
    };
    CiInfo {
        system: "Travis CI",
        branch,
        git_tag: tag,
        sha: s(env, "TRAVIS_COMMIT"),
        pull_request: pr,
        source_url: s(env, "TRAVIS_REPO_SLUG").map(|r| format!("https://github.com/{r}")),
        diff_base: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::opt;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn ci(pairs: &[(&str, &str)]) -> CiInfo {
        detect_ci(&Environment::from_pairs(pairs.iter().copied())).expect("a CI is detected")
    }

    fn summary(c: &CiInfo) -> (&str, Option<&str>, Option<&str>, Option<&str>, Option<&str>) {
        (
            c.system,
            c.branch.as_deref(),
            c.git_tag.as_deref(),
            c.sha.as_deref(),
            c.pull_request.as_deref(),
        )
    }

    #[test]
    fn none_without_markers() {
        assert_eq!(
            detect_ci(&Environment::from_pairs([
                ("CI", "true"),
                ("HOME", "/root")
            ])),
            None
        );
    }

    /// One build a line: its variables (`SHA` stands for [`SHA`]), then what is
    /// detected: system | branch | git tag | pull request (`-`: none). Every
    /// case's commit is SHA.
    const CASES: &str = "
        GITLAB_CI=true CI_COMMIT_BRANCH=main CI_COMMIT_REF_NAME=main CI_COMMIT_SHA=SHA
            => GitLab CI | main | - | -
        GITLAB_CI=true CI_COMMIT_TAG=v1.2.0 CI_COMMIT_REF_NAME=v1.2.0 CI_COMMIT_SHA=SHA
            => GitLab CI | - | v1.2.0 | -
        GITLAB_CI=true CI_PIPELINE_SOURCE=merge_request_event CI_MERGE_REQUEST_IID=42
        CI_MERGE_REQUEST_SOURCE_BRANCH_NAME=feat/x CI_MERGE_REQUEST_DIFF_BASE_SHA=abc
        CI_COMMIT_SHA=SHA
            => GitLab CI | feat/x | - | 42
        GITHUB_ACTIONS=true GITHUB_REF=refs/heads/release/1.2 GITHUB_SHA=SHA
        GITHUB_EVENT_NAME=push
            => GitHub Actions | release/1.2 | - | -
        GITHUB_ACTIONS=true GITHUB_REF=refs/tags/v2.0.0 GITHUB_SHA=SHA GITHUB_EVENT_NAME=push
            => GitHub Actions | - | v2.0.0 | -
        GITHUB_ACTIONS=true GITHUB_EVENT_NAME=pull_request GITHUB_REF=refs/pull/17/merge
        GITHUB_HEAD_REF=fix/typo GITHUB_BASE_REF=main GITHUB_SHA=SHA
            => GitHub Actions | fix/typo | - | 17
        JENKINS_URL=http://127.0.0.1:8080/ GIT_BRANCH=origin/main GIT_COMMIT=SHA
            => Jenkins | main | - | -
        JENKINS_URL=http://127.0.0.1:8080/ BRANCH_NAME=PR-5 CHANGE_ID=5 CHANGE_BRANCH=feat/y
        GIT_COMMIT=SHA
            => Jenkins | feat/y | - | 5
        JENKINS_URL=x BRANCH_NAME=v1.0 TAG_NAME=v1.0 GIT_COMMIT=SHA
            => Jenkins | - | v1.0 | -
        CIRCLECI=true CIRCLE_BRANCH=main CIRCLE_SHA1=SHA
            => CircleCI | main | - | -
        CIRCLECI=true CIRCLE_BRANCH=feat CIRCLE_SHA1=SHA
        CIRCLE_PULL_REQUEST=https://github.com/a/b/pull/9
            => CircleCI | feat | - | https://github.com/a/b/pull/9
        BUILDKITE=true BUILDKITE_BRANCH=main BUILDKITE_COMMIT=SHA BUILDKITE_PULL_REQUEST=false
            => Buildkite | main | - | -
        BUILDKITE=true BUILDKITE_BRANCH=feat BUILDKITE_COMMIT=SHA BUILDKITE_PULL_REQUEST=12
            => Buildkite | feat | - | 12
        TF_BUILD=True BUILD_SOURCEBRANCH=refs/heads/main BUILD_SOURCEVERSION=SHA
        BUILD_REASON=IndividualCI
            => Azure Pipelines | main | - | -
        TF_BUILD=True BUILD_SOURCEBRANCH=refs/pull/3/merge BUILD_REASON=PullRequest
        SYSTEM_PULLREQUEST_SOURCEBRANCH=refs/heads/feat/z SYSTEM_PULLREQUEST_PULLREQUESTID=3
        BUILD_SOURCEVERSION=SHA
            => Azure Pipelines | feat/z | - | 3
        BITBUCKET_BUILD_NUMBER=7 BITBUCKET_BRANCH=master BITBUCKET_COMMIT=SHA
            => Bitbucket Pipelines | master | - | -
        BITBUCKET_BUILD_NUMBER=8 BITBUCKET_BRANCH=feat BITBUCKET_COMMIT=SHA BITBUCKET_PR_ID=4
            => Bitbucket Pipelines | feat | - | 4
        TRAVIS=true TRAVIS_BRANCH=main TRAVIS_COMMIT=SHA TRAVIS_PULL_REQUEST=false
            => Travis CI | main | - | -
        TRAVIS=true TRAVIS_BRANCH=main TRAVIS_COMMIT=SHA TRAVIS_PULL_REQUEST=11
        TRAVIS_PULL_REQUEST_BRANCH=feat/q
            => Travis CI | feat/q | - | 11
        TRAVIS=true TRAVIS_BRANCH=v3 TRAVIS_TAG=v3 TRAVIS_COMMIT=SHA TRAVIS_PULL_REQUEST=false
            => Travis CI | - | v3 | -
    ";

    #[test]
    fn each_system_s_branch_tag_and_pull_request() {
        let mut vars = String::new();
        let mut checked = 0;
        for line in CASES.lines().map(str::trim) {
            let Some(want) = line.strip_prefix("=> ") else {
                vars.push(' ');
                vars.push_str(line);
                continue;
            };
            let env: Vec<(&str, &str)> = vars
                .split_whitespace()
                .map(|kv| kv.split_once('=').expect("NAME=value"))
                .map(|(k, v)| (k, if v == "SHA" { SHA } else { v }))
                .collect();
            let want: Vec<&str> = want.split(" | ").collect();
            let c = ci(&env);
            assert_eq!(
                summary(&c),
                (want[0], opt(want[1]), opt(want[2]), Some(SHA), opt(want[3])),
                "{vars}"
            );
            vars.clear();
            checked += 1;
        }
        assert_eq!(checked, 20);
    }

    #[test]
    fn a_merge_request_carries_its_diff_base() {
        let mr = ci(&[
            ("GITLAB_CI", "true"),
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_MERGE_REQUEST_IID", "42"),
            ("CI_MERGE_REQUEST_DIFF_BASE_SHA", "abc"),
        ]);
        assert_eq!(mr.diff_base.as_deref(), Some("abc"));
    }
}
