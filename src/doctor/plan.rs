//! The checks of the file, the commit and the plan: does multiarch.toml load,
//! which commit is built, what a run would do and publish.

use super::{first_line, Blame, Check, Doctor};
use crate::context::{GitCli, GitContext};
use crate::plan::{Plan, PlanOptions, StepKind};
use crate::spec::{LoadError, Spec};

impl Doctor<'_> {
    pub(super) fn spec_check(&self, checks: &mut Vec<Check>) -> Option<Spec> {
        let path = match Spec::locate(self.file.as_deref(), &self.cwd) {
            Ok(p) => p,
            Err(e) => {
                let fix = if self.file.is_some() {
                    "check the path given to -f"
                } else {
                    "run `multiarch init` to write one from the Dockerfiles here, or pass -f FILE"
                };
                checks.push(
                    Check::fail(
                        format!("no multiarch.toml: {}", first_line(&e.to_string())),
                        Blame::File,
                    )
                    .fix(fix),
                );
                return None;
            }
        };
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        match Spec::load(&path, self.env) {
            Ok(spec) => {
                let images: Vec<&str> = spec.images.iter().map(|i| i.name.as_str()).collect();
                let mut archs: Vec<&str> = Vec::new();
                for i in &spec.images {
                    for a in &i.archs {
                        if !archs.contains(&a.as_str()) {
                            archs.push(a);
                        }
                    }
                }
                checks.push(Check::ok(format!(
                    "{name}: {} image{} ({}), archs {}",
                    images.len(),
                    if images.len() == 1 { "" } else { "s" },
                    images.join(", "),
                    archs.join(", ")
                )));
                Some(spec)
            }
            Err(LoadError::Invalid(errs)) => {
                let mut c = Check::fail(
                    format!(
                        "{name} has {} problem{}",
                        errs.len(),
                        if errs.len() == 1 { "" } else { "s" }
                    ),
                    Blame::File,
                )
                .fix(format!(
                    "`multiarch check -f {}` shows each one with its line and a hint",
                    path.display()
                ));
                for d in errs.diagnostics.iter().take(5) {
                    c = c.detail(format!("{}: {}", d.location(), d.problem.message));
                }
                checks.push(c);
                None
            }
            Err(e) => {
                checks.push(Check::fail(format!("{name}: {e}"), Blame::File));
                None
            }
        }
    }

    pub(super) fn git_check(&self, spec: &Spec, checks: &mut Vec<Check>) -> Option<GitContext> {
        let git = GitCli::new(&spec.dir);
        let ctx = match GitContext::detect(self.env, &git, &self.overrides) {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check::fail(format!("git: {e}"), Blame::File));
                return None;
            }
        };
        let from = |what: &str| {
            ctx.origin
                .iter()
                .filter(|(k, _)| k.contains(what))
                .map(|(_, v)| v.as_str())
                .next()
                .unwrap_or("")
                .to_string()
        };
        let what = match (&ctx.branch, &ctx.git_tag) {
            (Some(b), Some(t)) => format!("branch `{b}`, git tag `{t}`"),
            (Some(b), None) => format!("branch `{b}`"),
            (None, Some(t)) => format!("git tag `{t}`"),
            (None, None) => "no branch or git tag".to_string(),
        };
        match &ctx.sha {
            Some(sha) => {
                let origin = from("branch");
                let by = if origin.is_empty() {
                    String::new()
                } else {
                    format!(" (from {origin})")
                };
                checks.push(Check::ok(format!(
                    "git: {what}{by}, commit {} (from {})",
                    &sha[..7.min(sha.len())],
                    from("sha")
                )));
            }
            None => checks.push(
                Check::warn(format!(
                    "git: {what}; no commit known (not a git checkout, no CI variables, no --sha)"
                ))
                .fix("run inside the git checkout, or pass --sha (and --branch) as CI jobs do"),
            ),
        }
        checks.push(match (ctx.ci, &ctx.pull_request) {
            (Some(ci), Some(pr)) => Check::ok(format!(
                "CI: {ci}, a pull/merge-request build ({pr}): it never publishes lists"
            )),
            (Some(ci), None) => Check::ok(format!("CI: {ci}")),
            (None, _) => Check::ok("CI: none detected (a local run)"),
        });
        Some(ctx)
    }

    pub(super) fn plan_check(
        &self,
        spec: &Spec,
        ctx: &GitContext,
        checks: &mut Vec<Check>,
    ) -> Option<Plan> {
        let opts = PlanOptions {
            host: self.host.clone(),
            engine: self.engine,
            ..PlanOptions::default()
        };
        match Plan::new(spec, ctx, &opts) {
            Ok(p) => Some(p),
            Err(e) => {
                let text = e.to_string();
                let (what, help) = match text.split_once("\n  help: ") {
                    Some((w, h)) => (w.to_string(), Some(h.to_string())),
                    None => (text, None),
                };
                let mut c = Check::fail(format!("plan: {what}"), Blame::File);
                c.fix = help;
                checks.push(c);
                None
            }
        }
    }
}

pub(super) fn publish_check(plan: &Plan) -> Check {
    let lists: Vec<&str> = plan
        .steps()
        .iter()
        .filter(|s| s.kind() == StepKind::ManifestPush)
        .filter_map(|s| s.reference())
        .collect();
    let pushes = plan
        .steps()
        .iter()
        .filter(|s| s.kind() == StepKind::Push)
        .count();
    let images = if pushes == 0 {
        "no per-arch image is pushed".to_string()
    } else {
        format!(
            "{pushes} per-arch image{} pushed",
            if pushes == 1 { " is" } else { "s are" }
        )
    };
    if plan.publish {
        let mut c = Check::ok(format!(
            "plan: publishes {} list{} ({}); {images}",
            lists.len(),
            if lists.len() == 1 { "" } else { "s" },
            plan.publish_reason
        ));
        for l in lists {
            c = c.detail(l.to_string());
        }
        for s in plan.skipped() {
            if matches!(s.id.kind(), StepKind::ManifestCreate) {
                c = c.detail(format!("left out: {} ({})", s.id, s.reason));
            }
        }
        c
    } else {
        Check::ok(format!(
            "plan: no lists, this build does not publish ({}); {images}",
            plan.publish_reason
        ))
    }
}
