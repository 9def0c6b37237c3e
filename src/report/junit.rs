//! `--junit FILE`: a JUnit XML report, one test case per step, grouped in one test
//! suite per image, as GitLab's test reports and GitHub's JUnit actions read it.
//! Failures carry the reason and the last lines of output; steps that did not run
//! are `<skipped/>` with the reason. Written by quick-junit (nextest's writer),
//! which escapes the markup and counts tests, failures and skips.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::info::PlanInfo;
use super::style::strip_controls;
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

/// Stands in for a newline inside attribute values while quick-junit writes them
/// (its writer leaves a raw newline there, which parsers read back as a space);
/// [`finish`] turns it into `&#10;`. A private-use character, removed from all
/// text first, so it only ever marks one of ours.
const NEWLINE_MARK: char = '\u{E000}';

/// Text for an XML text node, per line: escape sequences removed, other control
/// characters dropped, tabs as spaces ([`strip_controls`]), and the characters
/// XML 1.0 cannot hold (U+FFFE, U+FFFF) dropped. quick-junit escapes the markup.
fn text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            o.push('\n');
        }
        o.extend(
            strip_controls(line)
                .chars()
                .filter(|&c| !matches!(c, '\u{FFFE}' | '\u{FFFF}' | NEWLINE_MARK)),
        );
    }
    o
}

/// Text for an attribute value: as [`text`], its newlines kept as `&#10;`.
fn attr(s: &str) -> String {
    text(s).replace('\n', &NEWLINE_MARK.to_string())
}

/// The document quick-junit writes, with the attribute newlines put back.
fn finish(report: &Report) -> String {
    match report.to_string() {
        Ok(xml) => xml.replace(NEWLINE_MARK, "&#10;"),
        // Writing into a String cannot fail; say so in the file if it ever does.
        Err(e) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- the JUnit report could not be written: {} -->\n<testsuites/>\n",
            text(&e.to_string()).replace("--", "- -")
        ),
    }
}

fn suite_of<'a>(r: &StepReport, info: &'a PlanInfo) -> &'a str {
    info.image(&r.id).unwrap_or("multiarch")
}

/// One test case per step; its status as JUnit has it.
fn case(r: &StepReport, suite: &str, output: &HashMap<String, VecDeque<String>>) -> TestCase {
    let status = match &r.status {
        StepStatus::Ok | StepStatus::Cached(_) => TestCaseStatus::success(),
        StepStatus::Failed(why) | StepStatus::TimedOut(why) => {
            let mut f = TestCaseStatus::non_success(NonSuccessKind::Failure);
            f.set_message(attr(why))
                .set_type(if matches!(r.status, StepStatus::TimedOut(_)) {
                    "timed-out"
                } else {
                    "failed"
                })
                .set_description(text(&r.tail.join("\n")));
            f
        }
        StepStatus::Skipped(why) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(attr(why));
            s
        }
        StepStatus::Cancelled => {
            let mut s = TestCaseStatus::skipped();
            s.set_message("cancelled: interrupted");
            s
        }
    };
    let mut c = TestCase::new(attr(&r.id), status);
    c.set_classname(attr(&format!("multiarch.{suite}")))
        .set_time(r.duration);
    let system_out = match &r.status {
        StepStatus::Ok => r.detail.as_deref().map(text),
        StepStatus::Cached(why) => Some(text(&format!("cached: {why}"))),
        StepStatus::Failed(_) | StepStatus::TimedOut(_) => output
            .get(&r.id)
            .filter(|l| !l.is_empty())
            .map(|l| text(&l.iter().map(String::as_str).collect::<Vec<_>>().join("\n"))),
        StepStatus::Skipped(_) | StepStatus::Cancelled => None,
    };
    if let Some(o) = system_out {
        c.set_system_out(o);
    }
    c
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
    let mut report = Report::new("multiarch");
    report.set_time(s.duration);
    for (name, steps) in suites {
        let mut suite = TestSuite::new(attr(name));
        suite.set_time(steps.iter().map(|r| r.duration).sum());
        suite.add_test_cases(steps.iter().map(|r| case(r, name, output)));
        report.add_test_suite(suite);
    }
    finish(&report)
}

/// A report for a run that stopped before its steps (no engine, a missing need).
pub fn render_error(message: &str) -> String {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status
        .set_message(attr(message))
        .set_type("error")
        .set_description(text(message));
    let mut case = TestCase::new("preflight", status);
    case.set_classname("multiarch.preflight")
        .set_time(Duration::ZERO);
    let mut suite = TestSuite::new("multiarch");
    suite.set_time(Duration::ZERO).add_test_case(case);
    let mut report = Report::new("multiarch");
    report.set_time(Duration::ZERO).add_test_suite(suite);
    finish(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_newlines_survive_and_the_mark_never_leaks() {
        let xml = render_error("line one\nline \u{E000}two");
        assert!(xml.contains(r#"message="line one&#10;line two""#), "{xml}");
        assert!(!xml.contains(NEWLINE_MARK), "{xml}");
        assert!(xml.contains(">line one\nline two</error>"), "{xml}");
    }
}
