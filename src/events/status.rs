//! How a step ended.

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    Ok,
    /// Not run because its result already exists (`--skip-existing`); counts as ok.
    Cached(String),
    Failed(String),
    TimedOut(String),
    /// Not run, and why (a dependency failed, fail-fast, atomic).
    Skipped(String),
    /// Not run: interrupted.
    Cancelled,
}

impl StepStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, StepStatus::Ok | StepStatus::Cached(_))
    }

    pub fn is_failure(&self) -> bool {
        matches!(self, StepStatus::Failed(_) | StepStatus::TimedOut(_))
    }

    /// As the human views show it.
    pub fn label(&self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Cached(_) => "cached",
            StepStatus::Failed(_) => "FAILED",
            StepStatus::TimedOut(_) => "TIMED OUT",
            StepStatus::Skipped(_) => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            StepStatus::Failed(r)
            | StepStatus::TimedOut(r)
            | StepStatus::Skipped(r)
            | StepStatus::Cached(r) => Some(r),
            _ => None,
        }
    }

    /// As `--events` writes it: ok, cached, failed, timed-out, skipped, cancelled.
    pub fn code(&self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Cached(_) => "cached",
            StepStatus::Failed(_) => "failed",
            StepStatus::TimedOut(_) => "timed-out",
            StepStatus::Skipped(_) => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// The status [`StepStatus::code`] wrote, with its reason.
    pub fn from_code(code: &str, reason: Option<String>) -> Option<StepStatus> {
        let r = reason.unwrap_or_default();
        Some(match code {
            "ok" => StepStatus::Ok,
            "cached" => StepStatus::Cached(r),
            "failed" => StepStatus::Failed(r),
            "timed-out" => StepStatus::TimedOut(r),
            "skipped" => StepStatus::Skipped(r),
            "cancelled" => StepStatus::Cancelled,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back() {
        for s in [
            StepStatus::Ok,
            StepStatus::Cached("c".into()),
            StepStatus::Failed("f".into()),
            StepStatus::TimedOut("t".into()),
            StepStatus::Skipped("s".into()),
            StepStatus::Cancelled,
        ] {
            let back = StepStatus::from_code(s.code(), s.reason().map(str::to_string));
            assert_eq!(back.as_ref(), Some(&s));
        }
        assert_eq!(StepStatus::from_code("great", None), None);
    }
}
