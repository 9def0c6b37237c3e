//! The live terminal view: one line per running step (spinner, elapsed time, its
//! latest output line) above an overall bar (done / total, running, failed).
//! Finished steps scroll above as one line each; at the end the bars are cleared
//! and the summary is printed, so nothing of the live view is left behind.
//!
//! ```text
//!        ok [  1.2s] build:hello/amd64
//!        ok [  0.1s] push:hello/amd64  sha256:e836da6c1a2b…
//!    FAILED [  0.9s] build:hello/arm64v8  build failed: exit code 1
//!          | The command '/bin/sh -c test "$(uname -m)" != aarch64' returned a non-zero code: 1
//! ⠹ build:greeter/arm32v7   4s Step 4/6 : RUN gcc -O2 -o /greet greet.c
//! ⠼ test:uname/arm64v8      1s
//! [=========>--------------------]  5/17 steps · 2 running · 1 failed  6s
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::info::PlanInfo;
use super::style::{strip_controls, Style};
use super::summary::render_summary_with;
use super::{Reporter, RunEvent, StepReport, StepStatus};
use crate::events::format::{self, short_digest};

#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// Colour of the bars and the lines above them (stderr).
    pub style: Style,
    /// Colour of the summary (stdout, which may not be the terminal).
    pub summary_style: Style,
    /// Also print every command as it starts, and every output line.
    pub verbose: bool,
    /// Print only failures above the bars.
    pub quiet: bool,
    /// Animate spinners and elapsed times on a timer (`None`: redraw only on
    /// events, for tests).
    pub tick: Option<Duration>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            style: Style::PLAIN,
            summary_style: Style::PLAIN,
            verbose: false,
            quiet: false,
            tick: Some(Duration::from_millis(100)),
        }
    }
}

/// Failure lines shown above the bars (the summary has the rest).
const TAIL_LINES: usize = 5;

pub struct LiveReporter<W: Write> {
    mp: MultiProgress,
    overall: Option<ProgressBar>,
    bars: HashMap<String, ProgressBar>,
    /// BuildKit's steps seen in each running build's output.
    builds: HashMap<String, super::buildkit::BuildProgress>,
    out: W,
    opts: LiveOptions,
    info: PlanInfo,
    id_width: usize,
    done: u64,
    failed: usize,
    running: usize,
    finished: bool,
}

impl<W: Write> LiveReporter<W> {
    /// Bars on `target` (stderr on a terminal); the summary goes to `out`.
    pub fn new(out: W, target: ProgressDrawTarget, opts: LiveOptions) -> Self {
        LiveReporter {
            mp: MultiProgress::with_draw_target(target),
            overall: None,
            bars: HashMap::new(),
            builds: HashMap::new(),
            out,
            opts,
            info: PlanInfo::default(),
            id_width: 0,
            done: 0,
            failed: 0,
            running: 0,
            finished: false,
        }
    }

    /// Bars on stderr, redrawn at most 15 times a second.
    pub fn stderr(out: W, opts: LiveOptions) -> Self {
        Self::new(out, ProgressDrawTarget::stderr_with_hz(15), opts)
    }

    pub fn with_plan(mut self, info: PlanInfo) -> Self {
        self.id_width = info
            .steps
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        self.info = info;
        self
    }

    /// The template with colour, or without it; a template indicatif refuses
    /// (none of these) would fall back to its default bar.
    fn style(&self, color: &str, plain: &str) -> ProgressStyle {
        let template = if self.opts.style.color { color } else { plain };
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
    }

    fn step_style(&self) -> ProgressStyle {
        self.style(
            "{spinner:.cyan} {prefix:.bold} {elapsed:>4.dim} {wide_msg:.dim}",
            "{spinner} {prefix} {elapsed:>4} {wide_msg}",
        )
        .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "·"])
    }

    fn overall_style(&self) -> ProgressStyle {
        self.style(
            "{bar:30.cyan/blue} {pos:>3}/{len} steps{msg}  {elapsed:.dim}",
            "[{bar:30}] {pos:>3}/{len} steps{msg}  {elapsed}",
        )
        .progress_chars("=>-")
    }

    fn println(&self, line: String) {
        // Hidden targets drop this; the summary still says everything.
        let _ = self.mp.println(line);
    }

    fn update_overall(&self) {
        if let Some(o) = &self.overall {
            let s = self.opts.style;
            let mut msg = format!(" · {} running", self.running);
            if self.failed > 0 {
                msg.push_str(" · ");
                msg.push_str(&s.bad(&format!("{} failed", self.failed)));
            }
            o.set_message(msg);
            o.set_position(self.done);
        }
    }

    fn finished_line(&self, r: &StepReport) -> Option<String> {
        let s = self.opts.style;
        let shown = match r.status {
            StepStatus::Failed(_) | StepStatus::TimedOut(_) => true,
            StepStatus::Ok | StepStatus::Cached(_) => !self.opts.quiet,
            StepStatus::Skipped(_) | StepStatus::Cancelled => self.opts.verbose,
        };
        if !shown {
            return None;
        }
        let time = match r.status {
            StepStatus::Skipped(_) | StepStatus::Cancelled => "        ".to_string(),
            _ => format!("[{:>6}]", format::duration(r.duration)),
        };
        let detail = match (&r.status, &r.digest) {
            (StepStatus::Ok | StepStatus::Cached(_), Some(d)) => s.dim(&short_digest(d)),
            (StepStatus::Ok, None) => s.dim(r.detail.as_deref().unwrap_or("")),
            (st, _) => st.reason().unwrap_or("").to_string(),
        };
        // The label right-aligned, as cargo does.
        let pad = 9usize.saturating_sub(r.status.label().len());
        let line = format!(
            "{}{} {time} {}  {detail}",
            " ".repeat(pad),
            s.status(&r.status, 0),
            r.id
        );
        let mut out = line.trim_end().to_string();
        if r.status.is_failure() {
            let skip = r.tail.len().saturating_sub(TAIL_LINES);
            for l in &r.tail[skip..] {
                out.push('\n');
                out.push_str(&format!(
                    "{}{} {}",
                    " ".repeat(8),
                    s.dim("|"),
                    strip_controls(l)
                ));
            }
        }
        Some(out)
    }

    fn clear(&mut self) {
        for (_, b) in self.bars.drain() {
            b.finish_and_clear();
        }
        if let Some(o) = self.overall.take() {
            o.finish_and_clear();
        }
        let _ = self.mp.clear();
    }
}

impl<W: Write> Reporter for LiveReporter<W> {
    fn event(&mut self, e: &RunEvent) {
        match e {
            RunEvent::Started { steps, .. } => {
                let o = self.mp.add(ProgressBar::new(*steps as u64));
                o.set_style(self.overall_style());
                if let Some(t) = self.opts.tick {
                    o.enable_steady_tick(t);
                }
                self.overall = Some(o);
                self.update_overall();
            }
            RunEvent::StepStarted { id, command } => {
                let pb = ProgressBar::new_spinner();
                let pb = match &self.overall {
                    Some(o) => self.mp.insert_before(o, pb),
                    None => self.mp.add(pb),
                };
                pb.set_style(self.step_style());
                pb.set_prefix(format!("{id:w$}", w = self.id_width));
                if let Some(t) = self.opts.tick {
                    pb.enable_steady_tick(t);
                } else {
                    pb.tick();
                }
                if self.opts.verbose {
                    self.println(format!(
                        "{:>9} {id}  {}",
                        self.opts.style.dim("start"),
                        crate::plan::render::argv_line(command)
                    ));
                }
                self.bars.insert(id.clone(), pb);
                self.running += 1;
                self.update_overall();
            }
            RunEvent::Output { id, line } => {
                let clean = strip_controls(line);
                if self.opts.verbose {
                    self.println(format!("[{id}] {clean}"));
                }
                if let Some(pb) = self.bars.get(id) {
                    let clean = clean.trim();
                    let build = self.builds.entry(id.clone()).or_default();
                    match build.detail(clean) {
                        Some(step) => pb.set_message(step),
                        None if !clean.is_empty() => pb.set_message(clean.to_string()),
                        None => {}
                    }
                }
            }
            RunEvent::Note { id, message } => {
                self.println(format!(
                    "{:>9} {id}: {}",
                    self.opts.style.warn("note"),
                    strip_controls(message)
                ));
            }
            RunEvent::StepFinished(r) => {
                self.builds.remove(&r.id);
                if let Some(pb) = self.bars.remove(&r.id) {
                    pb.finish_and_clear();
                    self.mp.remove(&pb);
                    self.running = self.running.saturating_sub(1);
                }
                if let Some(line) = self.finished_line(r) {
                    self.println(line);
                }
                self.done += 1;
                if r.status.is_failure() {
                    self.failed += 1;
                }
                self.update_overall();
            }
            RunEvent::Finished(s) => {
                self.clear();
                self.finished = true;
                let text = render_summary_with(s, &self.info, self.opts.summary_style);
                let _ = self.out.write_all(text.as_bytes());
                let _ = self.out.flush();
            }
        }
    }
}

impl<W: Write> Drop for LiveReporter<W> {
    fn drop(&mut self) {
        // An error mid-run must not leave bars on the screen.
        if !self.finished {
            self.clear();
        }
    }
}
