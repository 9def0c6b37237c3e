//! Reading the commit from `git`, behind a trait tests can fake.

use std::path::{Path, PathBuf};

/// What multiarch asks git. Every answer is optional: not a repository, no tag.
pub trait Git {
    fn head_sha(&self) -> Option<String>;
    fn branch(&self) -> Option<String>;
    fn tag_at_head(&self) -> Option<String>;
    fn commit_time(&self, sha: &str) -> Option<i64>;
    fn remote_url(&self) -> Option<String>;
}

/// No git at all (tests, or a directory outside any repository).
pub struct NoGit;

impl Git for NoGit {
    fn head_sha(&self) -> Option<String> {
        None
    }
    fn branch(&self) -> Option<String> {
        None
    }
    fn tag_at_head(&self) -> Option<String> {
        None
    }
    fn commit_time(&self, _sha: &str) -> Option<i64> {
        None
    }
    fn remote_url(&self) -> Option<String> {
        None
    }
}

/// The `git` command, run in a directory.
pub struct GitCli {
    dir: PathBuf,
}

impl GitCli {
    pub fn new(dir: &Path) -> Self {
        GitCli {
            dir: dir.to_path_buf(),
        }
    }

    fn run(&self, args: &[&str]) -> Option<String> {
        let mut argv = vec!["-C".to_string(), self.dir.display().to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let out = duct::cmd("git", argv)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin_null()
            .stderr_null()
            .stdout_capture()
            .unchecked()
            .run()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (!s.is_empty()).then_some(s)
    }

    /// Files changed between `rev` and HEAD (`git diff --name-only REV...HEAD`).
    pub fn changed_files(&self, rev: &str) -> Result<Vec<String>, String> {
        let range = format!("{rev}...HEAD");
        let out = duct::cmd!(
            "git",
            "-C",
            &self.dir,
            "diff",
            "--name-only",
            "-z",
            &range,
            "--"
        )
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin_null()
        .stderr_capture()
        .stdout_capture()
        .unchecked()
        .run()
        .map_err(|e| format!("cannot run git: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "git diff --name-only {range} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(out
            .stdout
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    /// The full sha of a revision (`HEAD~1`, a branch, a sha).
    pub fn resolve(&self, rev: &str) -> Option<String> {
        self.run(&["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")])
    }

    /// Whether commit `a` is an ancestor of (or is) commit `b`
    /// (`git merge-base --is-ancestor`); `None` when either is not in the local
    /// history (a shallow clone, a commit of another clone) or git cannot say.
    pub fn is_ancestor(&self, a: &str, b: &str) -> Option<bool> {
        for c in [a, b] {
            self.run(&["rev-parse", "--verify", "-q", &format!("{c}^{{commit}}")])?;
        }
        let out = duct::cmd!("git", "-C", &self.dir, "merge-base", "--is-ancestor", a, b)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin_null()
            .stderr_null()
            .stdout_null()
            .unchecked()
            .run()
            .ok()?;
        match out.status.code() {
            Some(0) => Some(true),
            Some(1) => Some(false),
            _ => None,
        }
    }

    /// The repository's top directory.
    pub fn toplevel(&self) -> Option<PathBuf> {
        self.run(&["rev-parse", "--show-toplevel"])
            .map(PathBuf::from)
    }
}

impl Git for GitCli {
    fn head_sha(&self) -> Option<String> {
        self.run(&["rev-parse", "--verify", "-q", "HEAD"])
    }

    fn branch(&self) -> Option<String> {
        self.run(&["symbolic-ref", "--short", "-q", "HEAD"])
    }

    fn tag_at_head(&self) -> Option<String> {
        self.run(&["describe", "--tags", "--exact-match", "HEAD"])
    }

    fn commit_time(&self, sha: &str) -> Option<i64> {
        self.run(&["log", "-1", "--format=%ct", sha])?.parse().ok()
    }

    fn remote_url(&self) -> Option<String> {
        self.run(&["config", "--get", "remote.origin.url"])
    }
}
