//! `--events FILE|-`: one JSON object per line, as things happen.
//!
//! ```text
//! {"event":"plan", …the plan of SPEC.md §4…, "platforms":{"push:api/amd64":["linux/amd64"],…}}
//! {"event":"started","steps":17,"jobs":4}
//! {"event":"step-started","id":"build:api/amd64","command":["docker","build",…]}
//! {"event":"output","id":"build:api/amd64","line":"Step 1/3 : FROM …"}
//! {"event":"note","id":"push:api/amd64","message":"transient failure (…); retry 1/3 in 0.9s"}
//! {"event":"step-finished","id":"push:api/amd64","kind":"push","status":"ok","duration_ms":812,"digest":"sha256:…",…}
//! {"event":"step-finished","id":"test:hello/arm64v8","kind":"test","status":"ok","detail":"platform checked from config: linux/arm64/v8",…}
//! {"event":"run-finished","status":"success","exit_code":0,"duration_ms":6100,"ok":17,…,"published":[…]}
//! {"event":"error","message":"the local docker engine does not answer: …","exit_code":3}
//! ```
//!
//! Every step of the plan gets exactly one `step-finished` (run, skipped or
//! cancelled). Lines, notes and reasons arrive masked from the scheduler; the plan
//! event is masked here with the same secrets. A stream reads back into [`RunEvent`]s
//! ([`super::replay::EventReader`]: tests, and re-rendering a recorded run).

use serde::{Deserialize, Serialize};
use std::io::Write;

use super::info::{PlanInfo, StepInfo};
use super::summary::{outcome, published, Counts};
use crate::events::format::millis;
use crate::events::{Masker, Reporter, RunEvent, RunSummary, StepReport};
use crate::plan::Plan;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedRecord {
    pub id: String,
    pub kind: String,
    /// ok, cached, failed, timed-out, skipped, cancelled.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How a step that succeeded did it ("platform checked from config: …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The step's image, arch, tag and platforms, as the plan says.
    #[serde(flatten)]
    pub step: StepInfo,
    /// The last lines of output of a failed step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<String>,
    /// A manifest-push: the platforms the registry serves under the list
    /// (`platforms`, from the plan, is what was asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served_platforms: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRecord {
    /// `list` (manifest-push) or `image` (a per-arch push).
    pub kind: String,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default)]
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// success, failed, interrupted.
    pub status: String,
    pub exit_code: i32,
    pub interrupted: bool,
    pub duration_ms: u64,
    pub ok: usize,
    pub cached: usize,
    pub failed: usize,
    pub not_run: usize,
    pub published: Vec<PublishedRecord>,
}

/// One line of the stream (the plan event is written separately: it is the plan
/// JSON itself with `"event":"plan"` added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Record {
    Started {
        steps: usize,
        jobs: usize,
    },
    StepStarted {
        id: String,
        command: Vec<String>,
    },
    Output {
        id: String,
        line: String,
    },
    Note {
        id: String,
        message: String,
    },
    StepFinished(Box<FinishedRecord>),
    RunFinished(RunRecord),
    /// The run could not start (or stopped) with an error: no run-finished follows.
    Error {
        message: String,
        exit_code: i32,
    },
}

pub fn finished_record(r: &StepReport, info: &PlanInfo) -> FinishedRecord {
    let step = info.step(&r.id).cloned().unwrap_or_default();
    FinishedRecord {
        id: r.id.clone(),
        kind: r.kind.as_str().to_string(),
        status: r.status.code().to_string(),
        reason: r.status.reason().map(str::to_string),
        detail: r.detail.clone(),
        duration_ms: millis(r.duration),
        digest: r.digest.clone(),
        reference: r.reference.clone(),
        step,
        tail: r.tail.clone(),
        served_platforms: r.platforms.clone(),
    }
}

pub fn run_record(s: &RunSummary, info: &PlanInfo) -> RunRecord {
    let c = Counts::of(&s.steps);
    RunRecord {
        status: outcome(s).to_string(),
        exit_code: s.exit_code(),
        interrupted: s.interrupted,
        duration_ms: millis(s.duration),
        ok: c.ok,
        cached: c.cached,
        failed: c.failed,
        not_run: c.not_run,
        published: published(s, info)
            .into_iter()
            .map(|p| PublishedRecord {
                kind: if p.list { "list" } else { "image" }.to_string(),
                reference: p.reference,
                digest: p.digest,
                platforms: p.platforms,
            })
            .collect(),
    }
}

pub fn record(e: &RunEvent, info: &PlanInfo) -> Record {
    match e {
        RunEvent::Started { steps, jobs } => Record::Started {
            steps: *steps,
            jobs: *jobs,
        },
        RunEvent::StepStarted { id, command } => Record::StepStarted {
            id: id.clone(),
            command: command.clone(),
        },
        RunEvent::Output { id, line } => Record::Output {
            id: id.clone(),
            line: line.clone(),
        },
        RunEvent::Note { id, message } => Record::Note {
            id: id.clone(),
            message: message.clone(),
        },
        RunEvent::StepFinished(r) => Record::StepFinished(Box::new(finished_record(r, info))),
        RunEvent::Finished(s) => Record::RunFinished(run_record(s, info)),
    }
}

/// The plan event: SPEC.md §4's object, `"event":"plan"` first, and the
/// platforms of each step (a list's: its entries').
pub fn plan_line(plan: &Plan, info: &PlanInfo, masker: &Masker) -> std::io::Result<String> {
    let mut buf = Vec::new();
    crate::plan::write_json_compact(plan, &mut buf)?;
    let mut v: serde_json::Value = serde_json::from_slice(&buf)?;
    let platforms: serde_json::Map<String, serde_json::Value> = info
        .steps
        .iter()
        .filter(|(_, s)| !s.platforms.is_empty())
        .map(|(id, s)| (id.clone(), serde_json::json!(s.platforms)))
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert("platforms".into(), serde_json::Value::Object(platforms));
    }
    masker.mask_json(&mut v);
    let body = serde_json::to_string(&v)?;
    Ok(match body.strip_prefix('{') {
        Some(rest) if rest != "}" => format!("{{\"event\":\"plan\",{rest}"),
        _ => "{\"event\":\"plan\"}".to_string(),
    })
}

pub struct JsonEventsReporter<W: Write> {
    out: W,
    info: PlanInfo,
}

impl<W: Write> JsonEventsReporter<W> {
    /// Writes the plan event at once (before any check runs), then one line per
    /// event.
    pub fn new(mut out: W, plan: &Plan, masker: &Masker) -> std::io::Result<Self> {
        let info = PlanInfo::from_plan(plan);
        writeln!(out, "{}", plan_line(plan, &info, masker)?)?;
        out.flush()?;
        Ok(JsonEventsReporter { out, info })
    }

    /// No plan event: the stream starts with the run (replays, tests).
    pub fn without_plan(out: W, info: PlanInfo) -> Self {
        JsonEventsReporter { out, info }
    }

    fn write(&mut self, r: &Record) {
        if let Ok(line) = serde_json::to_string(r) {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }

    /// The run ended in an error before (or instead of) a summary.
    pub fn error(&mut self, message: &str, exit_code: i32) {
        self.write(&Record::Error {
            message: message.to_string(),
            exit_code,
        });
    }
}

impl<W: Write> Reporter for JsonEventsReporter<W> {
    fn event(&mut self, e: &RunEvent) {
        let r = record(e, &self.info);
        self.write(&r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_step_is_one_flat_object_in_a_fixed_order() {
        let r = Record::StepFinished(Box::new(FinishedRecord {
            id: "push:api/amd64".into(),
            kind: "push".into(),
            status: "ok".into(),
            reason: None,
            detail: None,
            duration_ms: 812,
            digest: Some("sha256:ab".into()),
            reference: Some("reg/api/amd64:1".into()),
            step: StepInfo {
                image: Some("api".into()),
                arch: Some("amd64".into()),
                tag: None,
                platforms: vec!["linux/amd64".into()],
            },
            tail: Vec::new(),
            served_platforms: Vec::new(),
        }));
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"event":"step-finished","id":"push:api/amd64","kind":"push","status":"ok","duration_ms":812,"digest":"sha256:ab","reference":"reg/api/amd64:1","image":"api","arch":"amd64","platforms":["linux/amd64"]}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
