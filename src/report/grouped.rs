//! CI logs: each step's output in a collapsible section, GitLab's
//! `section_start`/`section_end` or GitHub Actions' `::group::`. Steps run in
//! parallel, so a step's lines are kept until it finishes and its section is
//! written whole; only a short `[id] started` line is written as it starts, so a
//! long build still shows life.

use std::collections::{HashMap, VecDeque};
use std::io::Write;

use super::info::PlanInfo;
use super::plain::finished_line;
use super::style::Style;
use super::summary::render_summary_with;
use super::{Reporter, RunEvent, StepStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiLog {
    /// `\e[0Ksection_start:<ts>:<name>[collapsed=true]\r\e[0K<header>` … `section_end`.
    GitLab,
    /// `::group::<header>` … `::endgroup::`, with workflow commands stopped inside.
    GitHub,
}

/// Seconds since the Unix epoch (GitLab's section timestamps).
pub type Clock = Box<dyn Fn() -> u64>;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct StepLog {
    started: u64,
    lines: VecDeque<String>,
}

/// Lines kept per step; a section shows the last ones (a note says how many were
/// left out).
const MAX_LINES: usize = 20_000;

pub struct GroupedReporter<W: Write> {
    out: W,
    kind: CiLog,
    verbose: bool,
    style: Style,
    info: PlanInfo,
    clock: Clock,
    token: String,
    logs: HashMap<String, StepLog>,
    dropped: HashMap<String, usize>,
    sections: usize,
}

impl<W: Write> GroupedReporter<W> {
    pub fn new(out: W, kind: CiLog, verbose: bool) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        GroupedReporter {
            out,
            kind,
            verbose,
            style: Style::PLAIN,
            info: PlanInfo::default(),
            clock: Box::new(unix_now),
            token: format!("multiarch-{:x}", nanos ^ u128::from(std::process::id())),
            logs: HashMap::new(),
            dropped: HashMap::new(),
            sections: 0,
        }
    }

    pub fn with_plan(mut self, info: PlanInfo) -> Self {
        self.info = info;
        self
    }

    pub fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// A fixed clock and `::stop-commands::` token (snapshot tests).
    pub fn with_clock(mut self, clock: Clock, token: &str) -> Self {
        self.clock = clock;
        self.token = token.to_string();
        self
    }

    fn push_line(&mut self, id: &str, line: String) {
        if let Some(log) = self.logs.get_mut(id) {
            if log.lines.len() >= MAX_LINES {
                log.lines.pop_front();
                *self.dropped.entry(id.to_string()).or_default() += 1;
            }
            log.lines.push_back(line);
        }
    }

    fn section(&mut self, r: &super::StepReport) {
        let log = self.logs.remove(&r.id).unwrap_or(StepLog {
            started: (self.clock)(),
            lines: VecDeque::new(),
        });
        let dropped = self.dropped.remove(&r.id).unwrap_or(0);
        let header = finished_line(r, self.style);
        let failed = r.status.is_failure();
        let o = &mut self.out;
        match self.kind {
            CiLog::GitLab => {
                self.sections += 1;
                let name = section_name(self.sections, &r.id);
                let collapsed = if failed { "" } else { "[collapsed=true]" };
                let _ = write!(
                    o,
                    "\x1b[0Ksection_start:{}:{name}{collapsed}\r\x1b[0K{header}\n",
                    log.started
                );
                if dropped > 0 {
                    let _ = writeln!(o, "({dropped} earlier lines left out)");
                }
                for l in &log.lines {
                    let _ = writeln!(o, "{l}");
                }
                let _ = write!(o, "\x1b[0Ksection_end:{}:{name}\r\x1b[0K\n", (self.clock)());
            }
            CiLog::GitHub => {
                let _ = writeln!(o, "::group::{}", escape_data(&header));
                // The step's own output must not run workflow commands
                // (`::endgroup::`, `::add-mask::`, …).
                let _ = writeln!(o, "::stop-commands::{}", self.token);
                if dropped > 0 {
                    let _ = writeln!(o, "({dropped} earlier lines left out)");
                }
                for l in &log.lines {
                    let _ = writeln!(o, "{l}");
                }
                let _ = writeln!(o, "::{}::", self.token);
                let _ = writeln!(o, "::endgroup::");
                if failed {
                    let _ = writeln!(
                        o,
                        "::error title={}::{}",
                        escape_property(&format!("{} {}", r.id, r.status.label())),
                        escape_data(r.status.reason().unwrap_or(""))
                    );
                }
            }
        }
    }
}

/// GitLab section names: `[A-Za-z0-9_.-]`, unique within the job.
fn section_name(n: usize, id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("step_{n}_{clean}")
}

/// GitHub workflow-command message escaping.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

impl<W: Write> Reporter for GroupedReporter<W> {
    fn event(&mut self, e: &RunEvent) {
        match e {
            RunEvent::Started { steps, jobs } => {
                let _ = writeln!(
                    self.out,
                    "multiarch: running {steps} steps, {jobs} at a time"
                );
            }
            RunEvent::StepStarted { id, command } => {
                let mut log = StepLog {
                    started: (self.clock)(),
                    lines: VecDeque::new(),
                };
                if self.verbose {
                    log.lines
                        .push_back(format!("$ {}", crate::plan::render::argv_line(command)));
                }
                self.logs.insert(id.clone(), log);
                let _ = writeln!(self.out, "[{id}] started");
            }
            RunEvent::Output { id, line } => self.push_line(id, line.clone()),
            RunEvent::Note { id, message } => {
                // Retries and checks: in the step's section, and at once (they
                // explain a pause).
                let _ = writeln!(self.out, "[{id}] multiarch: {message}");
                self.push_line(id, format!("multiarch: {message}"));
            }
            RunEvent::StepFinished(r) => match r.status {
                StepStatus::Skipped(_) | StepStatus::Cancelled
                    if !self.logs.contains_key(&r.id) =>
                {
                    let _ = writeln!(self.out, "{}", finished_line(r, self.style));
                }
                _ => self.section(r),
            },
            RunEvent::Finished(s) => {
                let _ = self
                    .out
                    .write_all(render_summary_with(s, &self.info, self.style).as_bytes());
            }
        }
        let _ = self.out.flush();
    }
}
