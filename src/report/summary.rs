//! The table at the end of a run: failures first with their last lines, every
//! step with its status, time and detail, then what was published.

use std::fmt::Write as _;

use super::info::PlanInfo;
use super::style::Style;
use super::{RunSummary, StepReport, StepStatus};
use crate::events::format::{self, short_digest};
use crate::plan::StepKind;

/// Something this run left in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The step that pushed it.
    pub step: String,
    /// A list (manifest-push), or a per-arch image (push).
    pub list: bool,
    pub reference: String,
    pub digest: Option<String>,
    pub platforms: Vec<String>,
}

/// The lists first, then the per-arch images, each in plan order.
pub fn published(s: &RunSummary, info: &PlanInfo) -> Vec<Published> {
    let of = |kind: StepKind| {
        s.steps
            .iter()
            .filter(move |r| r.kind == kind && r.status.is_ok())
            .map(move |r| Published {
                step: r.id.clone(),
                list: kind == StepKind::ManifestPush,
                reference: r.reference.clone().unwrap_or_else(|| r.id.clone()),
                digest: r.digest.clone(),
                // A list: what the registry serves; else what the plan built.
                platforms: if r.platforms.is_empty() {
                    info.platforms(&r.id).to_vec()
                } else {
                    r.platforms.clone()
                },
            })
    };
    of(StepKind::ManifestPush)
        .chain(of(StepKind::Push))
        .collect()
}

/// Grouped by image: a header with the platforms, then its lists, then its
/// per-arch images labelled with their arch. Every line is a full
/// `reference@digest`, ready to pull or pin.
fn render_published(o: &mut String, published: &[Published], info: &PlanInfo, style: Style) {
    let mut groups: Vec<(Option<&str>, Vec<&Published>)> = Vec::new();
    for p in published {
        let image = info.image(&p.step);
        match groups.iter_mut().find(|(i, _)| *i == image) {
            Some((_, v)) => v.push(p),
            None => groups.push((image, vec![p])),
        }
    }
    for (image, mut entries) in groups {
        entries.sort_by_key(|p| !p.list);
        let indent = if let Some(name) = image {
            let mut platforms: Vec<&str> = Vec::new();
            for p in &entries {
                for pl in &p.platforms {
                    if !platforms.contains(&pl.as_str()) {
                        platforms.push(pl);
                    }
                }
            }
            let _ = writeln!(
                o,
                "  {}  {}",
                style.bold(name),
                style.dim(&platforms.join(", "))
            );
            "    "
        } else {
            "  "
        };
        let w = entries
            .iter()
            .map(|p| label(p, info).len())
            .max()
            .unwrap_or(0);
        for p in entries {
            let mut line = format!("{indent}{:w$}  {}", label(p, info), p.reference);
            if let Some(d) = &p.digest {
                let _ = write!(line, "@{d}");
            }
            let _ = writeln!(o, "{line}");
        }
    }
}

fn label<'a>(p: &Published, info: &'a PlanInfo) -> &'a str {
    if p.list {
        "list"
    } else {
        info.step(&p.step)
            .and_then(|s| s.arch.as_deref())
            .unwrap_or("image")
    }
}

/// Counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub cached: usize,
    pub failed: usize,
    pub not_run: usize,
}

impl Counts {
    pub fn of(steps: &[StepReport]) -> Counts {
        let mut c = Counts::default();
        for r in steps {
            match r.status {
                StepStatus::Ok => c.ok += 1,
                StepStatus::Cached(_) => {
                    c.ok += 1;
                    c.cached += 1
                }
                StepStatus::Failed(_) | StepStatus::TimedOut(_) => c.failed += 1,
                StepStatus::Skipped(_) | StepStatus::Cancelled => c.not_run += 1,
            }
        }
        c
    }
}

/// One word for how the run ended: success, failed, interrupted.
pub fn outcome(s: &RunSummary) -> &'static str {
    if s.interrupted {
        "interrupted"
    } else if s.failed().next().is_some() {
        "failed"
    } else {
        "success"
    }
}

/// The summary without plan details (no platforms) and without colour.
pub fn render_summary(s: &RunSummary) -> String {
    render_summary_with(s, &PlanInfo::default(), Style::PLAIN)
}

pub fn render_summary_with(s: &RunSummary, info: &PlanInfo, style: Style) -> String {
    let mut o = String::new();
    let _ = writeln!(o);
    let failed: Vec<&StepReport> = s.failed().collect();
    if !failed.is_empty() {
        let _ = writeln!(o, "{}", style.bold("failures:"));
        for f in &failed {
            let _ = writeln!(
                o,
                "  {} — {}",
                style.bad(&f.id),
                f.status.reason().unwrap_or("")
            );
            for l in &f.tail {
                let _ = writeln!(o, "    {} {l}", style.dim("|"));
            }
        }
        let _ = writeln!(o);
    }
    let w = s
        .steps
        .iter()
        .map(|r| r.id.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 70);
    let _ = writeln!(
        o,
        "{}",
        style.bold(&format!(
            "{:w$}  {:9}  {:>8}  detail",
            "step", "status", "time"
        ))
    );
    let ordered = failed
        .iter()
        .copied()
        .chain(s.steps.iter().filter(|r| !r.status.is_failure()));
    for r in ordered {
        let detail = match (&r.status, &r.digest) {
            (StepStatus::Ok, Some(d)) => short_digest(d),
            (StepStatus::Ok, None) => r.detail.clone().unwrap_or_default(),
            (StepStatus::Cached(why), Some(d)) => format!("{why}; {}", short_digest(d)),
            (st, _) => st.reason().unwrap_or("").to_string(),
        };
        let time = if matches!(r.status, StepStatus::Skipped(_) | StepStatus::Cancelled) {
            "-".to_string()
        } else {
            format::duration(r.duration)
        };
        let line = format!(
            "{:w$}  {}  {:>8}  {}",
            r.id,
            style.status(&r.status, 9),
            time,
            if r.status.is_ok() {
                style.dim(&detail)
            } else {
                detail
            }
        );
        let _ = writeln!(o, "{}", line.trim_end());
    }
    let published = published(s, info);
    if !published.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "{}", style.bold("published:"));
        render_published(&mut o, &published, info, style);
    }
    if !info.publish
        && !info.publish_reason.is_empty()
        && !published.iter().any(|p| p.list)
        && !s.interrupted
    {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "no lists: this build does not publish ({})",
            info.publish_reason
        );
    }
    let c = Counts::of(&s.steps);
    let cached = if c.cached > 0 {
        format!(" ({} cached)", c.cached)
    } else {
        String::new()
    };
    let word = outcome(s);
    let word = match word {
        "success" => style.ok(word),
        _ => style.bad(word),
    };
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{word}: {} ok{cached}, {} failed, {} not run, in {}",
        c.ok,
        c.failed,
        c.not_run,
        format::duration(s.duration)
    );
    o
}
