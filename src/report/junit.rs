//! `--junit FILE`: a JUnit XML report, one test case per step, grouped in one test
//! suite per image, as GitLab's test reports and GitHub's JUnit actions read it.
//! Failures carry the reason and the last lines of output; steps that did not run
//! are `<skipped/>` with the reason.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use super::info::PlanInfo;
use super::style::strip_controls;
use super::summary::Counts;
use super::{Reporter, RunEvent, RunSummary, StepReport, StepStatus};

/// Lines of output kept per step for `<system-out>` of a failure.
const KEEP_LINES: usize = 200;

pub struct JUnitReporter<W: Write> {
    out: Option<W>,
    info: PlanInfo,
    output: HashMap<String, VecDeque<String>>,
}

impl<W: Write> JUnitReporter<W> {
    /// `out` is written once, when the run finishes (or on [`Self::error`]).
    pub fn new(out: W, info: PlanInfo) -> Self {
        JUnitReporter {
            out: Some(out),
            info,
            output: HashMap::new(),
        }
    }

    /// The run did not get to its steps: one failing test case says why.
    pub fn error(&mut self, message: &str) {
        let xml = render_error(message);
        if let Some(mut o) = self.out.take() {
            let _ = o.write_all(xml.as_bytes());
            let _ = o.flush();
        }
    }
}

impl<W: Write> Reporter for JUnitReporter<W> {
    fn event(&mut self, e: &RunEvent) {
        match e {
            RunEvent::Output { id, line } => {
                let v = self.output.entry(id.clone()).or_default();
                if v.len() >= KEEP_LINES {
                    v.pop_front();
                }
                v.push_back(line.clone());
            }
            RunEvent::Note { id, message } => {
                self.output
                    .entry(id.clone())
                    .or_default()
                    .push_back(format!("multiarch: {message}"));
            }
            RunEvent::StepFinished(r) if r.status.is_ok() => {
                // Only failures show their output; keep memory flat.
                self.output.remove(&r.id);
            }
            RunEvent::Finished(s) => {
                let xml = render(s, &self.info, &self.output);
                if let Some(mut o) = self.out.take() {
                    let _ = o.write_all(xml.as_bytes());
                    let _ = o.flush();
                }
            }
            _ => {}
        }
    }
}

/// Text for XML: markup escaped; characters XML 1.0 cannot hold (control
/// characters other than newlines, escape sequences) removed. In attributes, a
/// newline is written `&#10;` so parsers keep it.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            o.push('\n');
        }
        escape_line(line, &mut o);
    }
    o
}

fn attr(s: &str) -> String {
    escape(s).replace('\n', "&#10;")
}

fn escape_line(s: &str, o: &mut String) {
    for c in strip_controls(s).chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => o.push(c),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn suite_of<'a>(r: &StepReport, info: &'a PlanInfo) -> &'a str {
    info.image(&r.id).unwrap_or("multiarch")
}

pub fn render(
    s: &RunSummary,
    info: &PlanInfo,
    output: &HashMap<String, VecDeque<String>>,
) -> String {
    // Suites in order of first appearance in the plan.
    let mut suites: Vec<(&str, Vec<&StepReport>)> = Vec::new();
    for r in &s.steps {
        let name = suite_of(r, info);
        match suites.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(r),
            None => suites.push((name, vec![r])),
        }
    }
    let total = Counts::of(&s.steps);
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        o,
        r#"<testsuites name="multiarch" tests="{}" failures="{}" errors="0" skipped="{}" time="{}">"#,
        s.steps.len(),
        total.failed,
        total.not_run,
        secs(s.duration)
    );
    for (name, steps) in suites {
        let owned: Vec<StepReport> = steps.iter().map(|r| (*r).clone()).collect();
        let c = Counts::of(&owned);
        let time: Duration = steps.iter().map(|r| r.duration).sum();
        let _ = writeln!(
            o,
            r#"  <testsuite name="{}" tests="{}" failures="{}" errors="0" skipped="{}" time="{}">"#,
            attr(name),
            steps.len(),
            c.failed,
            c.not_run,
            secs(time)
        );
        for r in steps {
            let _ = write!(
                o,
                r#"    <testcase name="{}" classname="multiarch.{}" time="{}""#,
                attr(&r.id),
                attr(name),
                secs(r.duration)
            );
            match &r.status {
                StepStatus::Ok => match &r.detail {
                    Some(d) => {
                        let _ = writeln!(o, ">");
                        let _ = writeln!(o, "      <system-out>{}</system-out>", escape(d));
                        let _ = writeln!(o, "    </testcase>");
                    }
                    None => {
                        let _ = writeln!(o, "/>");
                    }
                },
                StepStatus::Cached(why) => {
                    let _ = writeln!(o, ">");
                    let _ = writeln!(o, "      <system-out>cached: {}</system-out>", escape(why));
                    let _ = writeln!(o, "    </testcase>");
                }
                StepStatus::Failed(why) | StepStatus::TimedOut(why) => {
                    let kind = if matches!(r.status, StepStatus::TimedOut(_)) {
                        "timed-out"
                    } else {
                        "failed"
                    };
                    let _ = writeln!(o, ">");
                    let _ = writeln!(
                        o,
                        r#"      <failure message="{}" type="{kind}">{}</failure>"#,
                        attr(why),
                        escape(&r.tail.join("\n"))
                    );
                    if let Some(lines) = output.get(&r.id).filter(|l| !l.is_empty()) {
                        let _ = writeln!(
                            o,
                            "      <system-out>{}</system-out>",
                            escape(
                                &lines
                                    .iter()
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            )
                        );
                    }
                    let _ = writeln!(o, "    </testcase>");
                }
                StepStatus::Skipped(why) => {
                    let _ = writeln!(o, ">");
                    let _ = writeln!(o, r#"      <skipped message="{}"/>"#, attr(why));
                    let _ = writeln!(o, "    </testcase>");
                }
                StepStatus::Cancelled => {
                    let _ = writeln!(o, ">");
                    let _ = writeln!(o, r#"      <skipped message="cancelled: interrupted"/>"#);
                    let _ = writeln!(o, "    </testcase>");
                }
            }
        }
        let _ = writeln!(o, "  </testsuite>");
    }
    let _ = writeln!(o, "</testsuites>");
    o
}

/// A report for a run that stopped before its steps (no engine, a missing need).
pub fn render_error(message: &str) -> String {
    let (m, text) = (attr(message), escape(message));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="multiarch" tests="1" failures="0" errors="1" skipped="0" time="0.000">
  <testsuite name="multiarch" tests="1" failures="0" errors="1" skipped="0" time="0.000">
    <testcase name="preflight" classname="multiarch.preflight" time="0.000">
      <error message="{m}" type="error">{text}</error>
    </testcase>
  </testsuite>
</testsuites>
"#
    )
}
