//! Plain text: each output line prefixed by its step id, a summary at the end.
//! No control codes (unless colour is asked for), so CI logs and pipes stay
//! readable.

use std::io::Write;

use super::info::PlanInfo;
use super::style::Style;
use super::summary::render_summary_with;
use super::{Reporter, RunEvent, StepStatus};
use crate::events::format;

pub struct PlainReporter<W: Write> {
    out: W,
    pub quiet: bool,
    pub verbose: bool,
    style: Style,
    info: PlanInfo,
}

impl<W: Write> PlainReporter<W> {
    pub fn new(out: W, quiet: bool, verbose: bool) -> Self {
        PlainReporter {
            out,
            quiet,
            verbose,
            style: Style::PLAIN,
            info: PlanInfo::default(),
        }
    }

    /// Platforms of the published lists and the publishing decision, for the summary.
    pub fn with_plan(mut self, info: PlanInfo) -> Self {
        self.info = info;
        self
    }

    pub fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }
}

/// `[id] ok (1.2s)`, `[id] FAILED (0.9s): reason`, `[id] skipped: reason`.
pub(crate) fn finished_line(r: &super::StepReport, style: Style) -> String {
    let label = style.status(&r.status, 0);
    let reason = r
        .status
        .reason()
        .or(r.detail.as_deref())
        .map(|x| format!(": {x}"))
        .unwrap_or_default();
    match r.status {
        StepStatus::Skipped(_) | StepStatus::Cancelled => format!("[{}] {label}{reason}", r.id),
        _ => format!(
            "[{}] {label} ({}){reason}",
            r.id,
            format::duration(r.duration)
        ),
    }
}

impl<W: Write> Reporter for PlainReporter<W> {
    fn event(&mut self, e: &RunEvent) {
        let o = &mut self.out;
        match e {
            RunEvent::Started { steps, jobs } => {
                if !self.quiet {
                    let _ = writeln!(o, "multiarch: running {steps} steps, {jobs} at a time");
                }
            }
            RunEvent::StepStarted { id, command } => {
                if !self.quiet {
                    let _ = writeln!(o, "[{id}] started");
                    if self.verbose {
                        let _ = writeln!(o, "[{id}] $ {}", crate::plan::render::argv_line(command));
                    }
                }
            }
            RunEvent::Output { id, line } => {
                if !self.quiet {
                    let _ = writeln!(o, "[{id}] {line}");
                }
            }
            RunEvent::Note { id, message } => {
                let _ = writeln!(o, "[{id}] multiarch: {message}");
            }
            RunEvent::StepFinished(r) => {
                if !self.quiet || r.status.is_failure() {
                    let _ = writeln!(o, "{}", finished_line(r, self.style));
                }
            }
            RunEvent::Finished(s) => {
                let _ = o.write_all(render_summary_with(s, &self.info, self.style).as_bytes());
            }
        }
        let _ = o.flush();
    }
}
