//! Where the build is: branch, git tag, sha, pull/merge-request status, from flags,
//! then the CI's variables, then git itself.

mod ci;
mod error;
mod git;
mod host;

pub use ci::{detect_ci, CiInfo};
pub use error::ContextError;
pub use git::{Git, GitCli, NoGit};
pub use host::{BuilderChoice, Detecting, DockerCli, Fallback, Host, ALTERNATIVE_DOCKERS};

use crate::environment::Environment;
use crate::spec::reference::sanitize_tag;
use crate::spec::vars::{semver_parts, GitValues};

/// What the command line says about the commit (highest priority; `--branch ""`
/// says there is none). The fields' docs are the flags' help.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// The branch being built (default: from CI variables, then git).
    #[arg(long, value_name = "B")]
    pub branch: Option<String>,
    /// The git tag being built (default: from CI variables, then git).
    #[arg(long = "git-tag", value_name = "T")]
    pub git_tag: Option<String>,
    /// The full commit sha (default: from CI variables, then git).
    #[arg(long, value_name = "S")]
    pub sha: Option<String>,
}

/// The commit being built and how it was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitContext {
    /// The branch as named (not sanitised).
    pub branch: Option<String>,
    pub git_tag: Option<String>,
    /// 40 lowercase hex digits.
    pub sha: Option<String>,
    /// Commit time (seconds since the epoch), for reproducible `created` labels.
    pub commit_time: Option<i64>,
    /// A pull/merge-request build: never publishes.
    pub pull_request: Option<String>,
    /// The CI system detected, if any.
    pub ci: Option<&'static str>,
    /// A URL of the source repository (credentials removed).
    pub source_url: Option<String>,
    /// GitLab merge-request pipelines: the diff base sha.
    pub diff_base: Option<String>,
    /// Where branch/tag/sha came from ("--branch", "GitLab CI", "git").
    pub origin: Vec<(&'static str, String)>,
}

impl GitContext {
    /// Flags first, then the CI's variables, then `git`.
    pub fn detect(
        env: &Environment,
        git: &dyn Git,
        flags: &Overrides,
    ) -> Result<GitContext, ContextError> {
        let ci = detect_ci(env);
        let mut ctx = GitContext {
            ci: ci.as_ref().map(|c| c.system),
            ..GitContext::default()
        };
        if let Some(sha) = &flags.sha {
            let s = sha.trim().to_ascii_lowercase();
            if !is_full_sha(&s) {
                return Err(ContextError::BadSha { given: sha.clone() });
            }
            ctx.sha = Some(s);
            ctx.origin.push(("sha", "--sha".into()));
        }
        if let Some(b) = &flags.branch {
            ctx.branch = Some(b.clone()).filter(|b| !b.is_empty());
            ctx.origin.push(("branch", "--branch".into()));
        }
        if let Some(t) = &flags.git_tag {
            ctx.git_tag = Some(t.clone()).filter(|t| !t.is_empty());
            ctx.origin.push(("git tag", "--git-tag".into()));
        }
        // An empty flag (`--git-tag "$CI_COMMIT_TAG"` on a branch pipeline) says
        // "none" for that one value: the other still comes from CI or git.
        let given = |f: &Option<String>| f.as_deref().is_some_and(|v| !v.is_empty());
        let flag_ref = given(&flags.branch) || given(&flags.git_tag);
        let emptied = |f: &Option<String>| f.as_deref() == Some("");
        if let Some(ci) = &ci {
            if ctx.sha.is_none() {
                if let Some(s) = ci
                    .sha
                    .as_ref()
                    .map(|s| s.to_ascii_lowercase())
                    .filter(|s| is_full_sha(s))
                {
                    ctx.sha = Some(s);
                    ctx.origin.push(("sha", ci.system.into()));
                }
            }
            if !flag_ref {
                ctx.branch = ci.branch.clone();
                ctx.git_tag = ci.git_tag.clone();
                if ci.branch.is_some() || ci.git_tag.is_some() {
                    ctx.origin.push(("branch/tag", ci.system.into()));
                }
            }
            ctx.pull_request = ci.pull_request.clone();
            ctx.source_url = ci.source_url.clone();
            ctx.diff_base = ci.diff_base.clone();
        }
        let from_ci = ci
            .as_ref()
            .is_some_and(|c| c.branch.is_some() || c.git_tag.is_some());
        if ctx.sha.is_none() {
            if let Some(s) = git.head_sha().filter(|s| is_full_sha(s)) {
                ctx.sha = Some(s);
                ctx.origin.push(("sha", "git".into()));
            }
        }
        if !flag_ref && !from_ci {
            ctx.branch = git.branch();
            ctx.git_tag = git.tag_at_head();
            if ctx.branch.is_some() || ctx.git_tag.is_some() {
                ctx.origin.push(("branch/tag", "git".into()));
            }
        }
        if ctx.source_url.is_none() {
            ctx.source_url = git.remote_url().map(|u| strip_credentials(&u));
        }
        if emptied(&flags.branch) {
            ctx.branch = None;
        }
        if emptied(&flags.git_tag) {
            ctx.git_tag = None;
        }
        if let Some(sha) = &ctx.sha {
            ctx.commit_time = git.commit_time(sha);
        }
        Ok(ctx)
    }

    /// The template values of this commit.
    pub fn values(&self) -> GitValues {
        let (version, parts) = match &self.git_tag {
            Some(t) => semver_parts(t),
            None => (None, None),
        };
        let version = version.map(|v| sanitize_tag(&v)).filter(|v| !v.is_empty());
        GitValues {
            sha: self.sha.clone(),
            short_sha: self.sha.as_ref().map(|s| s[..7.min(s.len())].to_string()),
            branch: self
                .branch
                .as_deref()
                .map(sanitize_tag)
                .filter(|b| !b.is_empty()),
            git_tag: self
                .git_tag
                .as_deref()
                .map(sanitize_tag)
                .filter(|b| !b.is_empty()),
            version,
            major: parts.as_ref().map(|p| p.0.clone()),
            minor: parts.as_ref().map(|p| p.1.clone()),
            patch: parts.map(|p| p.2),
        }
    }
}

pub fn is_full_sha(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `https://user:token@host/x.git` → `https://host/x.git`: never put a credential
/// into an image label.
pub fn strip_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if path.is_empty() {
            return format!("{scheme}://{host}");
        }
        return format!("{scheme}://{host}/{path}");
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeGit;
    impl Git for FakeGit {
        fn head_sha(&self) -> Option<String> {
            Some("a".repeat(40))
        }
        fn branch(&self) -> Option<String> {
            Some("feature/x".into())
        }
        fn tag_at_head(&self) -> Option<String> {
            None
        }
        fn commit_time(&self, _sha: &str) -> Option<i64> {
            Some(1_700_000_000)
        }
        fn remote_url(&self) -> Option<String> {
            Some("https://ci:hunter2@git.example.com/acme/app.git".into())
        }
    }

    /// A GitLab CI branch pipeline's variables, commit `b…b`.
    fn gitlab_branch(branch: &str) -> Environment {
        Environment::from_pairs([
            ("GITLAB_CI", "true"),
            ("CI_COMMIT_BRANCH", branch),
            ("CI_COMMIT_SHA", &"b".repeat(40)),
        ])
    }

    #[test]
    fn git_is_the_fallback() {
        let c = GitContext::detect(&Environment::empty(), &FakeGit, &Overrides::default()).unwrap();
        assert_eq!(c.branch.as_deref(), Some("feature/x"));
        assert_eq!(c.sha, Some("a".repeat(40)));
        assert_eq!(c.commit_time, Some(1_700_000_000));
        assert_eq!(
            c.source_url.as_deref(),
            Some("https://git.example.com/acme/app.git")
        );
        assert_eq!(c.values().branch.as_deref(), Some("feature-x"));
        assert_eq!(c.values().short_sha.as_deref(), Some("aaaaaaa"));
    }

    #[test]
    fn flags_win_over_ci_and_git() {
        let env = gitlab_branch("develop");
        let flags = Overrides {
            branch: Some("main".into()),
            git_tag: None,
            sha: Some("C".repeat(40)),
        };
        let c = GitContext::detect(&env, &FakeGit, &flags).unwrap();
        assert_eq!(c.branch.as_deref(), Some("main"));
        assert_eq!(c.sha, Some("c".repeat(40)));
        assert_eq!(c.ci, Some("GitLab CI"));
    }

    #[test]
    fn an_empty_flag_says_none_for_its_value_alone() {
        // `--git-tag "$CI_COMMIT_TAG"` on a branch pipeline: the branch still
        // comes from CI (or git), so the branch build publishes.
        let env = gitlab_branch("main");
        let empty_tag = Overrides {
            git_tag: Some(String::new()),
            ..Overrides::default()
        };
        let c = GitContext::detect(&env, &FakeGit, &empty_tag).unwrap();
        assert_eq!(c.branch.as_deref(), Some("main"));
        assert_eq!(c.git_tag, None);
        let c = GitContext::detect(&Environment::empty(), &FakeGit, &empty_tag).unwrap();
        assert_eq!(c.branch.as_deref(), Some("feature/x"), "from git");
        // An empty --branch: no branch, whatever CI or git say.
        let empty_branch = Overrides {
            branch: Some(String::new()),
            ..Overrides::default()
        };
        let c = GitContext::detect(&env, &FakeGit, &empty_branch).unwrap();
        assert_eq!(c.branch, None);
    }

    #[test]
    fn ci_wins_over_git() {
        let env = gitlab_branch("develop");
        let c = GitContext::detect(&env, &FakeGit, &Overrides::default()).unwrap();
        assert_eq!(c.branch.as_deref(), Some("develop"));
        assert_eq!(c.sha, Some("b".repeat(40)));
    }

    #[test]
    fn a_short_sha_flag_is_refused() {
        let flags = Overrides {
            sha: Some("abc1234".into()),
            ..Overrides::default()
        };
        let e = GitContext::detect(&Environment::empty(), &NoGit, &flags).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn version_parts_from_the_tag() {
        let c = GitContext {
            git_tag: Some("v1.4.2".into()),
            ..GitContext::default()
        };
        let v = c.values();
        assert_eq!(v.version.as_deref(), Some("1.4.2"));
        assert_eq!(
            (v.major.as_deref(), v.minor.as_deref(), v.patch.as_deref()),
            (Some("1"), Some("4"), Some("2"))
        );
    }
}
