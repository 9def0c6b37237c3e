//! Whether a build publishes, and why (SPEC.md §2).

use crate::context::GitContext;
use crate::spec::Spec;

/// Whether this build publishes lists, and why (SPEC.md §2).
pub fn decide_publish(spec: &Spec, ctx: &GitContext) -> (bool, String) {
    if let Some(pr) = &ctx.pull_request {
        return (
            false,
            format!("a pull/merge-request build ({pr}) never publishes"),
        );
    }
    if let Some(tag) = &ctx.git_tag {
        if let Some(p) = spec.publish.tags.matching(tag) {
            return (true, format!("git tag `{tag}` matches publish.tags `{p}`"));
        }
    }
    match &ctx.branch {
        Some(b) => match spec.publish.branches.matching(b) {
            Some(p) => (true, format!("branch `{b}` matches publish.branches `{p}`")),
            None => (
                false,
                match &ctx.git_tag {
                    Some(t) => format!("neither branch `{b}` nor git tag `{t}` matches [publish]"),
                    None => format!(
                        "branch `{b}` does not match publish.branches ({})",
                        spec.publish.branches.patterns.join(", ")
                    ),
                },
            ),
        },
        None => match &ctx.git_tag {
            Some(t) if spec.publish.tags.is_empty() => {
                (false, format!("git tag `{t}` and publish.tags is empty"))
            }
            Some(t) => (
                false,
                format!(
                    "git tag `{t}` does not match publish.tags ({})",
                    spec.publish.tags.patterns.join(", ")
                ),
            ),
            None => (false, "neither the branch nor a git tag is known".into()),
        },
    }
}
