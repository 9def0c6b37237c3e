//! A readable listing of the plan.

use std::fmt::Write;

use super::{argv_line, joined};
use crate::plan::{Action, Plan};

/// The header (what is built and whether it publishes), every step with its
/// needs and commands, then what was skipped and why.
pub fn render_text(plan: &Plan) -> String {
    let mut o = String::new();
    let short = plan
        .sha
        .as_deref()
        .map_or("(no sha)", |s| &s[..7.min(s.len())]);
    let what = match (&plan.branch, &plan.git_tag) {
        (Some(b), Some(t)) => format!("branch {b}, tag {t}"),
        (Some(b), None) => format!("branch {b}"),
        (None, Some(t)) => format!("tag {t}"),
        (None, None) => "no branch".to_string(),
    };
    let steps = plan.steps();
    let skipped = plan.skipped();
    let _ = writeln!(
        o,
        "plan for {what} at {short}: {} step{}, {} skipped",
        steps.len(),
        if steps.len() == 1 { "" } else { "s" },
        skipped.len()
    );
    let _ = writeln!(
        o,
        "{}: {}",
        if plan.publish {
            "publishes"
        } else {
            "does not publish"
        },
        plan.publish_reason
    );
    // Both ways: a Dockerfile that cross-compiles (`FROM --platform=$BUILDPLATFORM`,
    // `ARG TARGETARCH`) builds for the host under the classic builder.
    if plan.engine == crate::spec::EngineKind::Docker {
        let _ = writeln!(
            o,
            "builder: {}: {}",
            plan.builder.mode.describe(),
            plan.builder.why
        );
    }
    if plan.atomic && plan.publish {
        let _ = writeln!(o, "atomic: no list is pushed unless every image succeeds");
    }
    let width = steps.len().to_string().len();
    for idx in plan.indices() {
        let s = plan.step(idx);
        let _ = writeln!(o);
        let _ = write!(o, "{:>width$}. {}", idx.index() + 1, s.id);
        if let Some(r) = s.reference() {
            let _ = write!(o, "  → {r}");
        }
        let _ = writeln!(o);
        if plan.needs(idx).len() > 0 {
            let _ = writeln!(o, "{:width$}  needs: {}", "", joined(plan.need_ids(idx)));
        }
        if !s.external_needs().is_empty() {
            let _ = writeln!(
                o,
                "{:width$}  needs (from the registry): {}",
                "",
                joined(s.external_needs().iter().map(|e| &e.id))
            );
        }
        for c in s.commands() {
            let _ = writeln!(o, "{:width$}  $ {}", "", argv_line(&c));
        }
        for r in s.action.requests() {
            let _ = writeln!(o, "{:width$}  {} {}", "", r.method, r.url);
        }
        if let Action::SetupQemu { handlers, .. } = &s.action {
            let _ = writeln!(
                o,
                "{:width$}  (only if a handler is missing: {})",
                "",
                handlers.join(", ")
            );
        }
    }
    if !skipped.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "skipped:");
        let ids: Vec<String> = skipped.iter().map(|s| s.id.to_string()).collect();
        let w = ids.iter().map(String::len).max().unwrap_or(0).min(60);
        for (s, id) in skipped.iter().zip(&ids) {
            let _ = writeln!(o, "  {id:w$}  {}", s.reason);
        }
    }
    o
}
