//! Reading an `--events` stream back (`multiarch replay`, tests): the plan event
//! into a [`PlanInfo`], every other line into the [`RunEvent`] it recorded.

use std::time::Duration;

use super::info::{PlanInfo, StepInfo};
use super::json::Record;
use crate::events::{RunEvent, RunSummary, StepReport, StepStatus};
use crate::plan::StepKind;

/// What one line of an events stream holds.
#[derive(Debug, Clone)]
pub enum Parsed {
    Plan(PlanInfo),
    Event(RunEvent),
    Error { message: String, exit_code: i32 },
}

/// Reads an events stream back: the plan event into a [`PlanInfo`], the rest into
/// [`RunEvent`]s (the summary is rebuilt from the step-finished events).
#[derive(Debug, Default)]
pub struct EventReader {
    reports: Vec<StepReport>,
    order: Vec<String>,
}

impl EventReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn read(&mut self, line: &str) -> Result<Option<Parsed>, String> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        if v.get("event").and_then(|e| e.as_str()) == Some("plan") {
            let info = plan_info_of(&v);
            self.order = info.order.clone();
            return Ok(Some(Parsed::Plan(info)));
        }
        let r: Record = serde_json::from_value(v).map_err(|e| format!("not an event: {e}"))?;
        Ok(Some(match r {
            Record::Started { steps, jobs } => Parsed::Event(RunEvent::Started { steps, jobs }),
            Record::StepStarted { id, command } => {
                Parsed::Event(RunEvent::StepStarted { id, command })
            }
            Record::Output { id, line } => Parsed::Event(RunEvent::Output { id, line }),
            Record::Note { id, message } => Parsed::Event(RunEvent::Note { id, message }),
            Record::StepFinished(f) => {
                let kind =
                    StepKind::parse(&f.kind).ok_or(format!("unknown step kind `{}`", f.kind))?;
                let status = StepStatus::from_code(&f.status, f.reason)
                    .ok_or(format!("unknown status `{}`", f.status))?;
                let report = StepReport {
                    id: f.id,
                    kind,
                    status,
                    duration: Duration::from_millis(f.duration_ms),
                    digest: f.digest,
                    reference: f.reference,
                    tail: f.tail,
                    detail: f.detail,
                    platforms: f.served_platforms,
                };
                self.reports.push(report.clone());
                Parsed::Event(RunEvent::StepFinished(report))
            }
            Record::RunFinished(r) => Parsed::Event(RunEvent::Finished(RunSummary {
                steps: self.in_plan_order(),
                duration: Duration::from_millis(r.duration_ms),
                interrupted: r.interrupted,
            })),
            Record::Error { message, exit_code } => Parsed::Error { message, exit_code },
        }))
    }
}

impl EventReader {
    /// The summary lists steps in plan order, as the scheduler's does.
    fn in_plan_order(&mut self) -> Vec<StepReport> {
        let mut reports = std::mem::take(&mut self.reports);
        let rank: std::collections::HashMap<&str, usize> = self
            .order
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        reports.sort_by_key(|r| rank.get(r.id.as_str()).copied().unwrap_or(usize::MAX));
        reports
    }
}

fn plan_info_of(v: &serde_json::Value) -> PlanInfo {
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let platforms = v.get("platforms");
    let listed = v
        .get("steps")
        .and_then(|x| x.as_array())
        .map(|a| a.as_slice())
        .unwrap_or(&[]);
    let order = listed.iter().filter_map(|st| s(st, "id")).collect();
    let steps = listed
        .iter()
        .filter_map(|st| {
            let id = s(st, "id")?;
            let platforms = platforms
                .and_then(|p| p.get(&id))
                .and_then(|p| serde_json::from_value(p.clone()).ok())
                .unwrap_or_default();
            Some((
                id,
                StepInfo {
                    image: s(st, "image"),
                    arch: s(st, "arch"),
                    tag: s(st, "tag"),
                    platforms,
                },
            ))
        })
        .collect();
    PlanInfo {
        steps,
        order,
        publish: v.get("publish").and_then(|p| p.as_bool()).unwrap_or(false),
        publish_reason: s(v, "publish_reason").unwrap_or_default(),
    }
}
