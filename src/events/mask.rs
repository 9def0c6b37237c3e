//! Secrets never appear in any output: every line, note, reason and summary goes
//! through this before it reaches a reporter.

use super::{RunEvent, StepReport, StepStatus};
use crate::registry::auth::SecretSet;
pub use crate::registry::auth::MASK;

/// Masks the secrets of a [`SecretSet`]: those it was made with, and those
/// added to the set later (the registry client's finds).
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: SecretSet,
}

impl Masker {
    pub fn new(secrets: &[String]) -> Self {
        Masker {
            secrets: SecretSet::new(secrets),
        }
    }

    /// A mask that reads `set`, now and as it grows.
    pub fn sharing(set: SecretSet) -> Self {
        Masker { secrets: set }
    }

    pub fn mask(&self, s: &str) -> String {
        self.secrets.mask(s)
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
    fn every_line_of_a_multi_line_secret_is_masked_on_its_own() {
        let key = "{\n  \"type\": \"service_account\",\n  \"private_key\": \"-----BEGIN KEY-----\\nMIIEv\"\n}";
        let m = Masker::new(&[key.into()]);
        assert_eq!(
            m.mask(&format!("login with {key} ok")),
            format!("login with {MASK} ok")
        );
        for line in key.lines().filter(|l| l.trim().len() >= 4) {
            let masked = m.mask(&format!("> {line}"));
            assert!(!masked.contains(line.trim()), "{masked}");
        }
        assert_eq!(m.mask("{"), "{");
    }

    #[test]
    fn a_secret_added_to_a_shared_set_later_is_masked_from_then_on() {
        let set = SecretSet::default();
        let m = Masker::sharing(set.clone());
        assert_eq!(m.mask("Bearer tok-123456"), "Bearer tok-123456");
        set.add("tok-123456");
        assert_eq!(m.mask("Bearer tok-123456"), format!("Bearer {MASK}"));
        let e = m.event(RunEvent::Note {
            id: "x".into(),
            message: "denied: tok-123456".into(),
        });
        assert!(!format!("{e:?}").contains("tok-123456"), "{e:?}");
        assert!(!format!("{set:?}").contains("tok-123456"));
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
