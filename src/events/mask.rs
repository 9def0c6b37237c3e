//! Secrets never appear in any output: every line, note, reason and summary goes
//! through this before it reaches a reporter.

use super::{RunEvent, StepReport, StepStatus};

#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

pub const MASK: &str = "••••••";

impl Masker {
    pub fn new(secrets: &[String]) -> Self {
        // Very short values would mask ordinary text; credentials are longer.
        let mut secrets: Vec<String> = secrets.iter().filter(|s| s.len() >= 4).cloned().collect();
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Masker { secrets }
    }

    pub fn mask(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// Every string of a JSON value (the plan event of `--events`).
    pub fn mask_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                let masked = self.mask(s);
                if masked != *s {
                    *s = masked;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.mask_json(x)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| self.mask_json(x)),
            _ => {}
        }
    }

    fn report(&self, r: StepReport) -> StepReport {
        use StepStatus::*;
        StepReport {
            status: match r.status {
                Failed(x) => Failed(self.mask(&x)),
                TimedOut(x) => TimedOut(self.mask(&x)),
                Skipped(x) => Skipped(self.mask(&x)),
                Cached(x) => Cached(self.mask(&x)),
                other => other,
            },
            tail: r.tail.iter().map(|l| self.mask(l)).collect(),
            detail: r.detail.as_deref().map(|d| self.mask(d)),
            ..r
        }
    }

    pub fn event(&self, e: RunEvent) -> RunEvent {
        if self.secrets.is_empty() {
            return e;
        }
        match e {
            RunEvent::StepStarted { id, command } => RunEvent::StepStarted {
                id,
                command: command.iter().map(|c| self.mask(c)).collect(),
            },
            RunEvent::Output { id, line } => RunEvent::Output {
                id,
                line: self.mask(&line),
            },
            RunEvent::Note { id, message } => RunEvent::Note {
                id,
                message: self.mask(&message),
            },
            RunEvent::StepFinished(r) => RunEvent::StepFinished(self.report(r)),
            RunEvent::Finished(mut s) => {
                s.steps = s.steps.into_iter().map(|r| self.report(r)).collect();
                RunEvent::Finished(s)
            }
            e @ RunEvent::Started { .. } => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence() {
        let m = Masker::new(&["hunter22".into(), "hunter22-long".into()]);
        assert_eq!(
            m.mask("a hunter22-long b hunter22"),
            format!("a {MASK} b {MASK}")
        );
        assert_eq!(Masker::new(&["ab".into()]).mask("ab"), "ab");
    }

    #[test]
    fn masks_json_strings_at_any_depth() {
        let m = Masker::new(&["hunter22".into()]);
        let mut v = serde_json::json!({"a": ["x hunter22", {"b": "hunter22"}], "n": 1});
        m.mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": [format!("x {MASK}"), {"b": MASK}], "n": 1})
        );
    }
}
