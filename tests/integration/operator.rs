//! Operator experience (issue 6): the reporters fed synthetic events (no
//! processes), the live view on an in-memory terminal and on a real pty, the
//! events stream and JUnit parsed back, `doctor` on good and broken machines,
//! `init`, completions and help.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::fake_engine::{FakeEngine, Reply};
use crate::support::{temp_dir, Project, SHA};
use indicatif::{ProgressDrawTarget, TermLike};
use multiarch::context::GitContext;
use multiarch::doctor::Doctor;
use multiarch::exec::pool::{self, PoolOptions};
use multiarch::exec::process::ProcessTable;
use multiarch::exec::{StepExecutor, StepIo, StepResult};
use multiarch::plan::{Host, Plan, PlanOptions, Step, StepKind};
use multiarch::report::live::LiveOptions;
use multiarch::report::replay::{EventReader, Parsed};
use multiarch::report::{
    render_summary_with, CiLog, GroupedReporter, JUnitReporter, JsonEventsReporter, LiveReporter,
    PlainReporter, PlanInfo, Reporter, RunEvent, RunSummary, StepStatus, Style,
};
use multiarch::{Environment, Spec};

const SPEC: &str = r#"
[project]
registry = "127.0.0.1:5000/acme"

[archs]
default = ["amd64", "arm64v8"]

[tags]
manifest = ["{sha}", "latest"]

[[image]]
name = "hello"
context = "hello"
"#;

fn project() -> Project {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", SPEC)
        .file("hello/Dockerfile", "FROM scratch\n");
    p
}

/// The example plan on `main` (publishing), planned for an amd64 host.
fn plan_of(p: &Project) -> Plan {
    let spec = Spec::load(&p.path().join("multiarch.toml"), &Environment::empty()).unwrap();
    let ctx = GitContext {
        branch: Some("main".into()),
        sha: Some(SHA.into()),
        ..GitContext::default()
    };
    let opts = PlanOptions {
        host: Host::fixed("linux/amd64"),
        ..PlanOptions::default()
    };
    Plan::new(&spec, &ctx, &opts).unwrap()
}

/// A stand-in for the engine: two lines per step, digests for pushes, and the
/// steps in `fail` fail with a last line.
struct Fake {
    fail: Vec<&'static str>,
}

impl StepExecutor for Fake {
    fn execute(&self, step: &Step, io: &StepIo<'_>) -> StepResult {
        io.line(&format!("{} {}", step.kind().as_str(), step.id));
        io.line("done");
        if self.fail.iter().any(|f| step.id == *f) {
            io.line("exec /bin/sh: exec format error");
            return StepResult::failed("build failed: exit code 1", Vec::new());
        }
        let digest = match step.kind() {
            StepKind::Push => Some(format!("sha256:{}", "a1".repeat(32))),
            StepKind::ManifestPush => Some(format!("sha256:{}", "b2".repeat(32))),
            _ => None,
        };
        StepResult {
            status: StepStatus::Ok,
            digest,
            tail: Vec::new(),
            detail: None,
            platforms: Box::default(),
        }
    }
}

#[derive(Default)]
struct Collect(Vec<RunEvent>);

impl Reporter for Collect {
    fn event(&mut self, e: &RunEvent) {
        self.0.push(e.clone());
    }
}

/// Run the real scheduler over the plan with the fake engine, one step at a
/// time (a deterministic order), and return its events with fixed durations.
fn recorded(plan: &Plan, fail: &[&'static str]) -> Vec<RunEvent> {
    let mut c = Collect::default();
    pool::drive(
        plan,
        &Fake {
            fail: fail.to_vec(),
        },
        &PoolOptions::default(),
        ProcessTable::new(),
        &mut c,
    );
    let fixed = |kind: StepKind| match kind {
        StepKind::Build => Duration::from_millis(1200),
        StepKind::Verify | StepKind::Test => Duration::from_millis(400),
        _ => Duration::from_millis(100),
    };
    c.0.into_iter()
        .map(|e| match e {
            RunEvent::StepFinished(mut r) => {
                if !matches!(r.status, StepStatus::Skipped(_)) {
                    r.duration = fixed(r.kind);
                }
                RunEvent::StepFinished(r)
            }
            RunEvent::Finished(mut s) => {
                for r in &mut s.steps {
                    if !matches!(r.status, StepStatus::Skipped(_)) {
                        r.duration = fixed(r.kind);
                    }
                }
                s.duration = Duration::from_millis(6100);
                RunEvent::Finished(s)
            }
            e => e,
        })
        .collect()
}

fn feed(r: &mut dyn Reporter, events: &[RunEvent]) {
    for e in events {
        r.event(e);
    }
}

fn summary_of(events: &[RunEvent]) -> RunSummary {
    events
        .iter()
        .find_map(|e| match e {
            RunEvent::Finished(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap()
}

fn text(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap()
}

// ---------------------------------------------------------------- plain, summary

#[test]
fn plain_output_of_a_failing_run() {
    let p = project();
    let plan = plan_of(&p);
    let events = recorded(&plan, &["build:hello/arm64v8"]);
    let mut out = Vec::new();
    feed(
        &mut PlainReporter::new(&mut out, false, false).with_plan(PlanInfo::from_plan(&plan)),
        &events,
    );
    let out = text(out);
    assert!(!out.contains('\x1b'), "no control codes in plain output");
    insta::assert_snapshot!(out);
}

#[test]
fn plain_quiet_shows_only_failures_and_the_summary() {
    let p = project();
    let plan = plan_of(&p);
    let events = recorded(&plan, &["build:hello/arm64v8"]);
    let mut out = Vec::new();
    feed(&mut PlainReporter::new(&mut out, true, false), &events);
    let out = text(out);
    assert!(!out.contains("] started"), "{out}");
    assert!(
        out.contains("[build:hello/arm64v8] FAILED (1.2s): build failed: exit code 1"),
        "{out}"
    );
    assert!(
        out.contains("failed: 4 ok, 1 failed, 8 not run, in 6.1s"),
        "{out}"
    );
}

#[test]
fn summary_of_a_publishing_run() {
    let p = project();
    let plan = plan_of(&p);
    let events = recorded(&plan, &[]);
    let s = summary_of(&events);
    insta::assert_snapshot!(render_summary_with(
        &s,
        &PlanInfo::from_plan(&plan),
        Style::PLAIN
    ));
}

#[test]
fn summary_statuses_cached_timed_out_cancelled() {
    use multiarch::report::StepReport;
    let r = |id: &str, kind, status, ms, digest: Option<&str>| StepReport {
        id: id.into(),
        kind,
        status,
        duration: Duration::from_millis(ms),
        digest: digest.map(str::to_string),
        reference: Some(format!("reg/acme/{}", id.replace([':', '/'], "-"))),
        tail: Vec::new(),
        detail: None,
        platforms: Vec::new(),
    };
    let s = RunSummary {
        steps: vec![
            r(
                "build:api/amd64",
                StepKind::Build,
                StepStatus::Cached("already in the registry".into()),
                0,
                None,
            ),
            r(
                "push:api/amd64",
                StepKind::Push,
                StepStatus::Cached("already in the registry".into()),
                0,
                Some("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            ),
            r(
                "build:api/arm64v8",
                StepKind::Build,
                StepStatus::TimedOut("timed out after 30m00s".into()),
                1_800_000,
                None,
            ),
            r(
                "verify:api/amd64",
                StepKind::Verify,
                StepStatus::Cancelled,
                0,
                None,
            ),
        ],
        duration: Duration::from_secs(1801),
        interrupted: true,
    };
    let info = PlanInfo {
        publish: false,
        publish_reason: "branch `feature/x` does not match publish.branches (main)".into(),
        ..PlanInfo::default()
    };
    insta::assert_snapshot!(render_summary_with(&s, &info, Style::PLAIN));
}

#[test]
fn colour_only_when_asked() {
    let p = project();
    let plan = plan_of(&p);
    let events = recorded(&plan, &["build:hello/arm64v8"]);
    let mut out = Vec::new();
    feed(
        &mut PlainReporter::new(&mut out, false, false).with_style(Style::new(true)),
        &events,
    );
    let out = text(out);
    assert!(out.contains("\x1b[1;31mFAILED\x1b[0m"), "{out}");
    assert!(out.contains("\x1b[32mok\x1b[0m"), "{out}");
}

// ---------------------------------------------------------------- CI sections

/// Two steps running at once, their lines interleaved.
fn interleaved() -> Vec<RunEvent> {
    use multiarch::report::StepReport;
    let started = |id: &str| RunEvent::StepStarted {
        id: id.into(),
        command: vec!["docker".into(), "build".into(), id.into()],
    };
    let line = |id: &str, l: &str| RunEvent::Output {
        id: id.into(),
        line: l.into(),
    };
    let done = |id: &str, status: StepStatus, ms: u64| StepReport {
        id: id.into(),
        kind: StepKind::Build,
        status,
        duration: Duration::from_millis(ms),
        digest: None,
        reference: None,
        tail: vec!["exec format error".into()],
        detail: None,
        platforms: Vec::new(),
    };
    let a = done("build:api/amd64", StepStatus::Ok, 1200);
    let b = done(
        "build:api/arm64v8",
        StepStatus::Failed("build failed: exit code 1".into()),
        900,
    );
    let c = done(
        "test:api/arm64v8",
        StepStatus::Skipped("needs build:api/arm64v8 failed".into()),
        0,
    );
    vec![
        RunEvent::Started { steps: 3, jobs: 2 },
        started("build:api/amd64"),
        started("build:api/arm64v8"),
        line("build:api/amd64", "Step 1/2 : FROM scratch"),
        line("build:api/arm64v8", "Step 1/2 : FROM scratch"),
        RunEvent::Note {
            id: "build:api/arm64v8".into(),
            message: "platform mismatch; building again without the cache".into(),
        },
        line(
            "build:api/arm64v8",
            "::endgroup:: (printed by a Dockerfile)",
        ),
        line("build:api/amd64", "Step 2/2 : COPY . /"),
        RunEvent::StepFinished(b.clone()),
        RunEvent::StepFinished(c.clone()),
        line("build:api/amd64", "Successfully built 0123abcd"),
        RunEvent::StepFinished(a.clone()),
        RunEvent::Finished(RunSummary {
            steps: vec![a, b, c],
            duration: Duration::from_millis(2100),
            interrupted: false,
        }),
    ]
}

fn grouped(kind: CiLog) -> String {
    let mut out = Vec::new();
    {
        let mut r = GroupedReporter::new(&mut out, kind, false)
            .with_clock(Box::new(|| 1_700_000_000), "TOKEN");
        feed(&mut r, &interleaved());
    }
    text(out)
}

#[test]
fn gitlab_sections_are_written_whole() {
    let out = grouped(CiLog::GitLab);
    // Each section holds only its own step's lines, in order.
    let amd = out
        .split("section_start:1700000000:step_2_build_api_amd64")
        .nth(1)
        .unwrap();
    let amd = amd.split("section_end").next().unwrap();
    assert!(amd.contains("Step 1/2 : FROM scratch\nStep 2/2 : COPY . /\nSuccessfully built"));
    assert!(!amd.contains("platform mismatch"));
    insta::assert_snapshot!(out.replace('\x1b', "<ESC>").replace('\r', "<CR>"));
}

#[test]
fn github_groups_stop_workflow_commands_inside() {
    let out = grouped(CiLog::GitHub);
    insta::assert_snapshot!(out);
}

// ---------------------------------------------------------------- events, JUnit

#[test]
fn the_events_stream_has_one_finished_event_per_step() {
    let p = project();
    let plan = plan_of(&p);
    let events = recorded(&plan, &["build:hello/arm64v8"]);
    let mut out = Vec::new();
    {
        let mut r = JsonEventsReporter::new(&mut out, &plan, &multiarch::events::Masker::default())
            .unwrap();
        feed(&mut r, &events);
    }
    let out = text(out);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines[0]["event"], "plan");
    assert_eq!(
        lines[0]["steps"].as_array().unwrap().len(),
        plan.steps().len()
    );
    assert_eq!(
        lines[0]["platforms"]["manifest-push:hello:latest"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );
    assert_eq!(lines[1]["event"], "started");
    assert_eq!(lines.last().unwrap()["event"], "run-finished");
    let finished: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "step-finished")
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    let want: Vec<String> = plan.steps().iter().map(|s| s.id.to_string()).collect();
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    let mut got = finished.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "exactly one step-finished per step of the plan");
    let failed = lines
        .iter()
        .find(|l| l["id"] == "build:hello/arm64v8" && l["event"] == "step-finished")
        .unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["reason"], "build failed: exit code 1");
    assert_eq!(failed["duration_ms"], 1200);
    assert_eq!(failed["platforms"], serde_json::json!(["linux/arm64/v8"]));
    assert!(failed["tail"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("exec /bin/sh: exec format error")));
    let push = lines
        .iter()
        .find(|l| l["id"] == "push:hello/amd64" && l["event"] == "step-finished")
        .unwrap();
    assert_eq!(push["digest"], format!("sha256:{}", "a1".repeat(32)));
    let end = lines.last().unwrap();
    assert_eq!(end["status"], "failed");
    assert_eq!(end["exit_code"], 1);
    assert_eq!(
        (
            end["ok"].as_u64(),
            end["failed"].as_u64(),
            end["not_run"].as_u64()
        ),
        (Some(4), Some(1), Some(8))
    );
    assert!(lines
        .iter()
        .any(|l| l["event"] == "output" && l["line"] == "build build:hello/amd64"));

    // Read back, the stream gives the same summary.
    let mut reader = EventReader::new();
    let mut replayed = None;
    for l in out.lines() {
        if let Some(Parsed::Event(RunEvent::Finished(s))) = reader.read(l).unwrap() {
            replayed = Some(s);
        }
    }
    let replayed = replayed.unwrap();
    let original = summary_of(&events);
    let info = PlanInfo::from_plan(&plan);
    assert_eq!(
        render_summary_with(&replayed, &info, Style::PLAIN),
        render_summary_with(&original, &info, Style::PLAIN)
    );
}

#[test]
fn the_events_stream_masks_the_plan() {
    let p = Project::new_without_busybox();
    p.file(
        "multiarch.toml",
        &SPEC.replace(
            "context = \"hello\"",
            "context = \"hello\"\nargs = { GREETING = \"hi s3cr3t-value\" }",
        ),
    )
    .file("hello/Dockerfile", "FROM scratch\n");
    let plan = plan_of(&p);
    let mut out = Vec::new();
    JsonEventsReporter::new(
        &mut out,
        &plan,
        &multiarch::events::Masker::new(&["s3cr3t-value".into()]),
    )
    .unwrap();
    let out = text(out);
    assert!(!out.contains("s3cr3t-value"), "{out}");
    assert!(out.contains("hi ••••••"), "{out}");
}

#[test]
fn the_junit_report_parses_and_has_a_test_case_per_step() {
    let p = project();
    let plan = plan_of(&p);
    let events = recorded(&plan, &["build:hello/arm64v8"]);
    let mut out = Vec::new();
    {
        let mut r = JUnitReporter::new(&mut out, PlanInfo::from_plan(&plan));
        feed(&mut r, &events);
    }
    let xml = text(out);
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(
        root.attribute("tests"),
        Some(plan.steps().len().to_string().as_str())
    );
    assert_eq!(root.attribute("failures"), Some("1"));
    assert_eq!(root.attribute("skipped"), Some("8"));
    let suites: Vec<&str> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(suites, ["multiarch", "hello"]);
    let cases: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), plan.steps().len());
    let failed = cases
        .iter()
        .find(|c| c.attribute("name") == Some("build:hello/arm64v8"))
        .unwrap();
    assert_eq!(failed.attribute("time"), Some("1.200"));
    let failure = failed
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(
        failure.attribute("message"),
        Some("build failed: exit code 1")
    );
    assert!(failure
        .text()
        .unwrap()
        .ends_with("exec /bin/sh: exec format error"));
    let skipped = cases
        .iter()
        .find(|c| c.attribute("name") == Some("test:hello/arm64v8"))
        .unwrap()
        .children()
        .find(|n| n.has_tag_name("skipped"))
        .unwrap();
    assert_eq!(
        skipped.attribute("message"),
        Some("needs build:hello/arm64v8 failed")
    );
    let ok = cases
        .iter()
        .find(|c| c.attribute("name") == Some("push:hello/amd64"))
        .unwrap();
    assert_eq!(ok.children().filter(|n| n.is_element()).count(), 0);
}

#[test]
fn junit_text_survives_markup_and_control_characters() {
    use multiarch::report::StepReport;
    let r = StepReport {
        id: "build:a<b>/amd64".into(),
        kind: StepKind::Build,
        status: StepStatus::Failed("\"quoted\" & <tagged>\nsecond line".into()),
        duration: Duration::from_millis(10),
        digest: None,
        reference: None,
        tail: vec!["\x1b[31mred\x1b[0m \x07bell ]]> end".into()],
        detail: None,
        platforms: Vec::new(),
    };
    let s = RunSummary {
        steps: vec![r.clone()],
        duration: Duration::from_millis(10),
        interrupted: false,
    };
    let mut out = Vec::new();
    {
        let mut j = JUnitReporter::new(&mut out, PlanInfo::default());
        j.event(&RunEvent::StepFinished(r));
        j.event(&RunEvent::Finished(s));
    }
    let xml = text(out);
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let f = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(
        f.attribute("message"),
        Some("\"quoted\" & <tagged>\nsecond line")
    );
    assert_eq!(f.text(), Some("red bell ]]> end"));
}

// ---------------------------------------------------------------- the live view

/// A terminal in memory: what indicatif draws, through a real VT100 emulator.
#[derive(Clone)]
struct Screen(Arc<Mutex<vt100::Parser>>);

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Screen")
    }
}

impl Screen {
    fn new(rows: u16, cols: u16) -> Screen {
        Screen(Arc::new(Mutex::new(vt100::Parser::new(
            rows.try_into().unwrap(),
            cols.try_into().unwrap(),
            1000,
        ))))
    }

    fn put(&self, s: &str) -> std::io::Result<()> {
        self.0.lock().unwrap().process(s.as_bytes());
        Ok(())
    }

    /// The visible rows, trailing blanks trimmed.
    fn rows(&self) -> Vec<String> {
        let p = self.0.lock().unwrap();
        let (_, cols) = p.screen().size();
        let mut rows: Vec<String> = p
            .screen()
            .rows(0, cols.get())
            .map(|r| r.trim_end().to_string())
            .collect();
        while rows.last().is_some_and(|r| r.is_empty()) {
            rows.pop();
        }
        rows
    }
}

impl TermLike for Screen {
    fn width(&self) -> u16 {
        self.0.lock().unwrap().screen().size().1.get()
    }
    fn height(&self) -> u16 {
        self.0.lock().unwrap().screen().size().0.get()
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}A"))
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}B"))
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}C"))
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}D"))
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\r\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stdout on the same screen (the summary is printed there).
struct ScreenWriter(Screen);

impl Write for ScreenWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A terminal turns \n into \r\n (onlcr).
        let s = String::from_utf8_lossy(buf).replace('\n', "\r\n");
        self.0.put(&s)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_live_view_shows_running_steps_and_ends_clean() {
    let screen = Screen::new(40, 100);
    let mut live = LiveReporter::new(
        ScreenWriter(screen.clone()),
        ProgressDrawTarget::term_like(Box::new(screen.clone())),
        LiveOptions {
            tick: None,
            ..LiveOptions::default()
        },
    );
    let events = interleaved();
    // Started, both steps started, their first lines, the note.
    feed(&mut live, &events[..6]);
    let rows = screen.rows();
    let joined = rows.join("\n");
    let line_of = |id: &str| {
        rows.iter()
            .find(|r| r.contains(id))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        line_of("build:api/amd64").contains("Step 1/2 : FROM scratch"),
        "a running step shows its latest line:\n{joined}"
    );
    assert!(
        line_of("build:api/amd64").starts_with(|c: char| ('⠁'..='⣿').contains(&c)),
        "with a spinner:\n{joined}"
    );
    assert!(
        rows.last().unwrap().contains("0/3 steps · 2 running"),
        "the overall bar is last:\n{joined}"
    );
    assert!(
        joined.contains("note build:api/arm64v8: platform mismatch"),
        "notes scroll above:\n{joined}"
    );
    // The failure and the skip.
    feed(&mut live, &events[6..10]);
    let rows = screen.rows();
    let joined = rows.join("\n");
    assert!(
        joined.contains("   FAILED [  0.9s] build:api/arm64v8  build failed: exit code 1"),
        "{joined}"
    );
    assert!(joined.contains("| exec format error"), "{joined}");
    assert!(
        rows.last()
            .unwrap()
            .contains("2/3 steps · 1 running · 1 failed"),
        "{joined}"
    );
    assert!(
        !joined.contains("⠋ build:api/arm64v8"),
        "its bar is gone:\n{joined}"
    );
    // The rest: every bar is cleared, then the summary.
    feed(&mut live, &events[10..]);
    let rows = screen.rows();
    let joined = rows.join("\n");
    assert!(
        !joined.contains("steps ·") && !joined.contains('⠋') && !joined.contains('⠙'),
        "nothing of the live view is left:\n{joined}"
    );
    assert!(
        rows.last()
            .unwrap()
            .starts_with("failed: 1 ok, 1 failed, 1 not run"),
        "{joined}"
    );
    insta::assert_snapshot!(joined);
}

#[test]
fn the_live_view_under_a_pty_renders_and_ends_clean() {
    // The real binary on a real pseudo-terminal (`script` from util-linux),
    // replaying a recorded run: no engine needed.
    let p = project();
    let plan = plan_of(&p);
    let events = recorded(&plan, &["build:hello/arm64v8"]);
    let file = p.path().join("events.jsonl");
    {
        let mut f = std::fs::File::create(&file).unwrap();
        let mut r =
            JsonEventsReporter::new(&mut f, &plan, &multiarch::events::Masker::default()).unwrap();
        feed(&mut r, &events);
    }
    let bin = env!("CARGO_BIN_EXE_multiarch");
    let cmd = format!(
        "stty cols 100 rows 50; exec '{bin}' replay '{}' --delay-ms 15",
        file.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("GITLAB_CI")
        .env_remove("GITHUB_ACTIONS")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux/bsdutils) runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the replayed run failed, so does replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = out.stdout;
    let mut vt = vt100::Parser::new(50.try_into().unwrap(), 100.try_into().unwrap(), 0);
    // Rows as the terminal shows them (indicatif fills lines to the width and
    // lets the terminal wrap; `contents()` would join those rows).
    let rows = |vt: &vt100::Parser| -> String {
        vt.screen()
            .rows(0, 100)
            .map(|r| r.trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut saw_live = false;
    // Feed it redraw by redraw and look at the screen in between.
    for chunk in raw.split_inclusive(|b| *b == b'\r') {
        vt.process(chunk);
        let screen = rows(&vt);
        if screen.contains("steps · 1 running")
            && screen
                .lines()
                .any(|l| l.contains("build:hello/amd64") && l.contains("build build:hello/amd64"))
        {
            saw_live = true;
        }
    }
    assert!(
        saw_live,
        "a frame showed a running step with its latest line and the overall bar:\n{}",
        String::from_utf8_lossy(&raw)
    );
    let end = rows(&vt);
    assert!(
        !end.contains("steps ·") && !end.chars().any(|c| ('⠁'..='⣿').contains(&c)),
        "the live view is cleared:\n{end}"
    );
    assert!(end.contains("failures:"), "{end}");
    assert!(
        end.trim_end()
            .ends_with("failed: 4 ok, 1 failed, 8 not run, in 6.1s"),
        "{end}"
    );
    assert!(
        end.contains("\n   FAILED [  1.2s] build:hello/arm64v8  build failed: exit code 1\n        | build build:hello/arm64v8\n"),
        "{end}"
    );
}

// ---------------------------------------------------------------- the CLI

fn multiarch(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_multiarch"));
    c.args(args).current_dir(dir).env("NO_COLOR", "1");
    for k in [
        "GITLAB_CI",
        "GITHUB_ACTIONS",
        "MULTIARCH_REGISTRY",
        "DOCKER_HOST",
    ] {
        c.env_remove(k);
    }
    c.output().unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_run_that_cannot_start_still_writes_its_reports() {
    let p = project();
    let junit = p.path().join("report.xml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_multiarch"))
        .args([
            "run", "--branch", "main", "--sha", SHA, "--events", "-", "--junit",
        ])
        .arg(&junit)
        .current_dir(p.path())
        .env("DOCKER_HOST", "unix:///nonexistent")
        .env("NO_COLOR", "1")
        .env_remove("GITLAB_CI")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["event"], "plan");
    assert_eq!(lines[1]["event"], "error");
    assert_eq!(lines[1]["exit_code"], 3);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let err = doc.descendants().find(|n| n.has_tag_name("error")).unwrap();
    assert!(
        err.attribute("message")
            .unwrap()
            .contains("does not answer"),
        "{xml}"
    );
}

#[test]
fn a_report_path_that_cannot_be_written_is_a_usage_error() {
    let p = project();
    let out = multiarch(
        p.path(),
        &[
            "run",
            "--sha",
            SHA,
            "--junit",
            "/nonexistent-dir/report.xml",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--junit: cannot write"));
}

#[test]
fn completions_for_each_shell() {
    let dir = temp_dir("completions");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef multiarch"),
        ("fish", "complete -c multiarch"),
    ] {
        let out = multiarch(dir.path(), &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let s = stdout(&out);
        assert!(s.contains(marker), "{shell}: {s}");
        assert!(s.contains("doctor") && s.contains("junit"), "{shell}");
    }
}

#[test]
fn every_subcommand_has_examples_in_its_help() {
    let dir = temp_dir("help");
    for sub in [
        "check",
        "plan",
        "run",
        "ci",
        "doctor",
        "init",
        "completions",
    ] {
        let out = multiarch(dir.path(), &[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}");
        assert!(
            stdout(&out).contains("Examples:"),
            "{sub} --help has no examples"
        );
    }
    let top = stdout(&multiarch(dir.path(), &["--help"]));
    assert!(
        top.contains("Examples:") && top.contains("multiarch doctor"),
        "{top}"
    );
    assert!(!top.contains("replay"), "the replay command stays hidden");
}

// ---------------------------------------------------------------- init

#[test]
fn init_writes_a_file_that_passes_check_and_refuses_to_overwrite() {
    let tmp = temp_dir("init");
    let dir = tmp.path().join("shop");
    for (path, text) in [
        ("Dockerfile", "FROM scratch\n"),
        (
            "services/api/Dockerfile",
            "ARG ARCH=amd64\nFROM ${ARCH}/alpine\n",
        ),
        ("services/api/worker.Dockerfile", "FROM scratch\n"),
        ("legacy/api/Containerfile", "FROM scratch\n"),
        ("web/My App.Dockerfile", "FROM scratch\n"),
        ("node_modules/pkg/Dockerfile", "FROM scratch\n"),
        ("target/debug/Dockerfile", "FROM scratch\n"),
        (".git/Dockerfile", "FROM scratch\n"),
        (".devcontainer/Dockerfile", "FROM scratch\n"),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let out = multiarch(&dir, &["init"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(
        "init_stdout",
        stdout(&out).replace(&dir.display().to_string(), "[DIR]")
    );
    let written = std::fs::read_to_string(dir.join("multiarch.toml")).unwrap();
    insta::assert_snapshot!("init_file", written);
    // It loads, and `multiarch check` agrees.
    let spec = Spec::load(&dir.join("multiarch.toml"), &Environment::empty()).unwrap();
    let names: Vec<&str> = spec.images.iter().map(|i| i.name.as_str()).collect();
    // Sorted paths: legacy/api comes first and is `api`; the next one takes its parent.
    assert_eq!(names, ["shop", "api", "services-api", "worker", "my-app"]);
    assert_eq!(
        spec.images[3].build_for("amd64").unwrap().dockerfile,
        PathBuf::from("services/api/worker.Dockerfile")
    );
    let check = multiarch(&dir, &["check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let plan = multiarch(&dir, &["plan", "--sha", SHA, "--branch", "main"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );

    // A second init refuses, and leaves the file alone.
    std::fs::write(dir.join("multiarch.toml"), "# mine\n").unwrap();
    let again = multiarch(&dir, &["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(dir.join("multiarch.toml")).unwrap(),
        "# mine\n"
    );
    let forced = multiarch(
        &dir,
        &["init", "--force", "--arch", "amd64", "--arch", "arm32v7"],
    );
    assert_eq!(forced.status.code(), Some(0));
    let spec = Spec::load(&dir.join("multiarch.toml"), &Environment::empty()).unwrap();
    assert_eq!(spec.images[0].archs, ["amd64", "arm32v7"]);
}

#[test]
fn a_build_arg_with_no_value_names_the_file_and_line() {
    let tmp = temp_dir("no-value");
    std::fs::write(tmp.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(
        tmp.path().join("multiarch.toml"),
        "[[image]]\nname = \"app\"\nargs = { T = \"{git_tag}\" }\n",
    )
    .unwrap();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let out = multiarch(tmp.path(), &["plan", "--sha", sha, "--branch", "main"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("multiarch.toml:3) uses {git_tag}, which has no value"),
        "{err}"
    );
}

#[test]
fn a_multiarch_toml_that_is_a_directory_is_said_to_be_one() {
    let tmp = temp_dir("spec-dir");
    std::fs::create_dir(tmp.path().join("multiarch.toml")).unwrap();
    let out = multiarch(tmp.path(), &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("multiarch.toml is a directory"), "{err}");
}

#[test]
fn init_without_dockerfiles_or_with_a_bad_arch_is_a_usage_error() {
    let tmp = temp_dir("init-empty");
    let out = multiarch(tmp.path(), &["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Dockerfile"));
    std::fs::write(tmp.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let out = multiarch(tmp.path(), &["init", "--arch", "arm46"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`--arch arm46` is not an arch"), "{err}");
    assert!(err.contains("help: built-in arches: amd64, "), "{err}");
    assert!(
        !err.contains("multiarch.toml:"),
        "no file was written: {err}"
    );
    assert!(!tmp.path().join("multiarch.toml").exists());
    // Common names and platforms are the built-in names, each once.
    let out = multiarch(
        tmp.path(),
        &[
            "init",
            "--arch",
            "x86_64",
            "--arch",
            "aarch64",
            "--arch",
            "linux/amd64",
            "--arch",
            "armhf",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(tmp.path().join("multiarch.toml")).unwrap();
    assert!(
        text.contains("default = [\"amd64\", \"arm64v8\", \"arm32v7\"]"),
        "{text}"
    );
}

#[test]
fn init_that_cannot_write_the_file_says_write_and_the_path() {
    let tmp = temp_dir("init-unwritable");
    std::fs::write(tmp.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    // A directory where the file goes: writing fails even as root.
    std::fs::create_dir(tmp.path().join("multiarch.toml")).unwrap();
    let out = multiarch(tmp.path(), &["init", "--force"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot write"), "{err}");
    assert!(err.contains("multiarch.toml"), "{err}");
}

#[test]
fn a_spec_that_cannot_be_read_says_read_and_the_path() {
    let tmp = temp_dir("spec-unreadable");
    // A link to itself: reading fails even as root (ELOOP).
    std::os::unix::fs::symlink("loop.toml", tmp.path().join("loop.toml")).unwrap();
    let out = multiarch(tmp.path(), &["check", "-f", "loop.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read loop.toml: "), "{err}");
    // Found by name in a directory below a valid spec: this one is taken (and
    // cannot be read), not the parent's.
    std::fs::write(tmp.path().join("multiarch.toml"), "[image.x]\n").unwrap();
    let sub = tmp.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::symlink("multiarch.toml", sub.join("multiarch.toml")).unwrap();
    let out = multiarch(&sub, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read ") && err.contains("sub/multiarch.toml: "),
        "{err}"
    );
}

// ---------------------------------------------------------------- doctor

/// The fake engine (support::fake_engine) in `dir`, answering like a working
/// docker 28.2.2 with dockerd 20.10.24 (and podman 4.3.1): a PATH with it first.
fn fake_docker(dir: &Path) -> String {
    FakeEngine::new(dir).path()
}

/// As [`fake_docker`], with a daemon that does not answer (DOCKER_HOST=unix:///nonexistent).
fn unreachable_docker(dir: &Path) -> String {
    let fake = FakeEngine::new(dir);
    fake.on(
        "version --format {{.Server.Version}}",
        [Reply::exit(1).stderr(
            "Cannot connect to the Docker daemon at unix:///nonexistent. Is the docker daemon running?",
        )],
    );
    fake.path()
}

/// A registry's `/v2/` on a free loopback port: 200, or 401 without the right
/// basic credentials.
fn fake_registry(auth: Option<&'static str>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let ok = match auth {
                None => true,
                // Header names are case-insensitive (HTTP/1.1 clients send them lowercased).
                Some(a) => req.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == format!("Basic {a}")
                    })
                }),
            };
            let status = if ok { "200 OK" } else { "401 Unauthorized" };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            );
        }
    });
    addr
}

fn binfmt(dir: &Path, handlers: &[(&str, &str)]) -> PathBuf {
    let d = dir.join("binfmt_misc");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("status"), "enabled\n").unwrap();
    for (h, flags) in handlers {
        std::fs::write(
            d.join(h),
            format!(
                "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: {flags}\noffset 0\n"
            ),
        )
        .unwrap();
    }
    d
}

fn doctor_project(registry: &str) -> Project {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", &SPEC.replace("127.0.0.1:5000", registry))
        .file("hello/Dockerfile", "FROM scratch\n");
    p
}

fn doctor_text(d: &Doctor, registry: &str) -> (String, i32) {
    let r = d.run();
    let text = r
        .render(false)
        .replace(registry, "[REGISTRY]")
        .replace(&d.cwd.display().to_string(), "[DIR]");
    (text, r.exit_code())
}

#[test]
fn doctor_on_a_good_machine() {
    let reg = fake_registry(None);
    let p = doctor_project(&reg);
    let env = Environment::from_pairs([
        ("PATH", fake_docker(p.path())),
        ("HOME", p.path().display().to_string()),
    ]);
    let mut d = Doctor::new(&env, p.path());
    d.host = Host::fixed("linux/amd64");
    d.binfmt_dir = binfmt(p.path(), &[("qemu-aarch64", "POCF")]);
    d.overrides.branch = Some("main".into());
    d.overrides.sha = Some(SHA.into());
    d.docker_alternatives.clear();
    let (text, code) = doctor_text(&d, &reg);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn doctor_knows_podman() {
    let reg = fake_registry(None);
    let p = doctor_project(&reg);
    let env = Environment::from_pairs([
        ("PATH", fake_docker(p.path())),
        ("HOME", p.path().display().to_string()),
    ]);
    let mut d = Doctor::new(&env, p.path());
    d.host = Host::fixed("linux/amd64");
    d.binfmt_dir = binfmt(p.path(), &[("qemu-aarch64", "POCF")]);
    d.overrides.branch = Some("main".into());
    d.overrides.sha = Some(SHA.into());
    d.docker_alternatives.clear();
    d.engine = Some(multiarch::spec::EngineKind::Podman);
    let (text, code) = doctor_text(&d, &reg);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("engine: podman 4.3.1"), "{text}");
    // Whether this machine has the rlimit problem or not, doctor says which.
    assert!(text.contains("\nok    podman: "), "{text}");
    assert!(!text.contains("docker"), "only podman is asked: {text}");
}

#[test]
fn doctor_on_a_broken_machine() {
    // Nothing listens on port 1 of loopback.
    let reg = "127.0.0.1:1";
    let p = doctor_project(reg);
    let env = Environment::from_pairs([
        ("PATH", unreachable_docker(p.path())),
        ("DOCKER_HOST", "unix:///nonexistent".to_string()),
        ("HOME", p.path().display().to_string()),
    ]);
    let mut d = Doctor::new(&env, p.path());
    d.host = Host::fixed("linux/amd64");
    d.binfmt_dir = p.path().join("no-binfmt_misc");
    d.binfmts_db = p.path().join("no-binfmts");
    d.overrides.branch = Some("feature/login".into());
    d.overrides.sha = Some(SHA.into());
    d.docker_alternatives.clear();
    let (text, code) = doctor_text(&d, reg);
    assert_eq!(code, 3, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn doctor_with_the_real_docker_cli_and_no_daemon() {
    let p = doctor_project("127.0.0.1:1");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_multiarch"))
        .args(["doctor", "--sha", SHA])
        .current_dir(p.path())
        .env("DOCKER_HOST", "unix:///nonexistent")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let engine = text.lines().find(|l| l.contains("engine:")).unwrap();
    assert!(engine.starts_with("FAIL  engine:"), "{text}");
    assert!(
        engine.contains("does not answer") || engine.contains("not installed"),
        "{text}"
    );
    assert!(text.contains("      fix: "), "{text}");
}

#[test]
fn doctor_checks_credentials_against_a_registry_that_needs_them() {
    // "tester:right" in base64.
    let reg = fake_registry(Some("dGVzdGVyOnJpZ2h0"));
    let p = doctor_project(&reg);
    let path = fake_docker(p.path());
    let run = |password: Option<&str>| {
        let mut env = Environment::from_pairs([
            ("PATH", path.clone()),
            ("HOME", p.path().display().to_string()),
        ]);
        if let Some(pw) = password {
            env.set("MULTIARCH_REGISTRY_USER", "tester");
            env.set("MULTIARCH_REGISTRY_PASSWORD", pw);
        }
        let mut d = Doctor::new(&env, p.path());
        d.host = Host::fixed("linux/amd64");
        d.binfmt_dir = binfmt(p.path(), &[("qemu-aarch64", "POCF")]);
        d.overrides.sha = Some(SHA.into());
        d.docker_alternatives.clear();
        doctor_text(&d, &reg)
    };
    let (text, code) = run(Some("right"));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ok    credentials: tester is accepted by [REGISTRY]"),
        "{text}"
    );
    let (text, code) = run(Some("wrong-password"));
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("FAIL  credentials: [REGISTRY] refuses tester (HTTP 401)"),
        "{text}"
    );
    assert!(!text.contains("wrong-password"), "{text}");
    let (text, code) = run(None);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("FAIL  credentials: none for [REGISTRY], and it needs a login"),
        "{text}"
    );
}

#[test]
fn doctor_says_exit_2_for_a_broken_file() {
    let p = Project::new_without_busybox();
    p.file("multiarch.toml", "[project]\nregistri = \"x\"\n");
    let env = Environment::from_pairs([("PATH", fake_docker(p.path()))]);
    let mut d = Doctor::new(&env, p.path());
    d.host = Host::fixed("linux/amd64");
    let r = d.run();
    assert_eq!(r.exit_code(), 2);
    let text = r.render(false);
    assert!(
        text.starts_with("FAIL  multiarch.toml has 2 problems"),
        "{text}"
    );
    assert!(
        text.contains("multiarch.toml:2:1: unknown key `registri`"),
        "{text}"
    );
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn doctor_on_the_real_engine_says_a_run_can_start() {
    let _g = support::engine_lock();
    let reg = support::Registry::start();
    let p = doctor_project(&reg.addr);
    let out = p
        .command(&["doctor", "--branch", "main", "--sha", SHA])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ok    engine: docker"), "{text}");
    assert!(text.contains("ok    emulation for arm64v8"), "{text}");
    assert!(
        text.contains(&format!("ok    registry {} answers", reg.addr)),
        "{text}"
    );
    assert!(text.contains("doctor: a run can start here"), "{text}");
}

#[test]
#[ignore = "needs dockerd, docker-registry and qemu binfmt; run by `cargo xtask ci`"]
fn a_real_run_writes_events_and_junit() {
    let _g = support::engine_lock();
    let reg = support::Registry::start();
    let p = Project::new();
    p.file(
        "multiarch.toml",
        "[project]\nregistry = \"${REG}/acme\"\n[archs]\ndefault = [\"amd64\", \"arm64v8\"]\n[[image]]\nname = \"busybox\"\ncontext = \"busybox\"\nverify = { command = [\"uname\", \"-m\"] }\n",
    );
    let events = p.path().join("events.jsonl");
    let junit = p.path().join("junit.xml");
    let out = p.run(
        &reg,
        &[
            "run",
            "--branch",
            "main",
            "--sha",
            SHA,
            "--events",
            &events.display().to_string(),
            "--junit",
            &junit.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps = lines[0]["steps"].as_array().unwrap().len();
    let finished = lines
        .iter()
        .filter(|l| l["event"] == "step-finished")
        .count();
    assert_eq!(finished, steps);
    let end = lines.last().unwrap();
    assert_eq!(end["status"], "success");
    let list = end["published"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "list" && p["reference"].as_str().unwrap().ends_with(":latest"))
        .unwrap();
    assert_eq!(
        list["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );
    assert!(list["digest"].as_str().unwrap().starts_with("sha256:"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        steps
    );
    let summary = stdout(&out);
    assert!(summary.contains("published:"), "{summary}");
    assert!(summary.contains("linux/amd64, linux/arm64/v8"), "{summary}");
}

#[test]
fn a_replayed_error_ends_with_the_code_it_was_recorded_with() {
    let p = Project::new_without_busybox();
    for (code, shown) in [(3, 3), (1, 1), (2, 2), (101, 101), (130, 130)] {
        let line = format!(
            "{{\"event\":\"error\",\"message\":\"boom\\n  help: fix it\",\"exit_code\":{code}}}\n"
        );
        p.file("events.jsonl", &line);
        let out = p
            .command(&["replay", "events.jsonl", "--progress", "plain"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(shown), "recorded {code}");
        let err = String::from_utf8_lossy(&out.stderr);
        if code != 130 {
            assert_eq!(err, "error: boom\n  help: fix it\n", "recorded {code}");
        }
    }
    p.file("events.jsonl", "{\"event\":\"started\"\n");
    let out = p.command(&["replay", "events.jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: events.jsonl:1: not JSON"));
}
