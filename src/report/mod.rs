//! What a run reports: events from the scheduler, and the reporters that turn them
//! into text, a live terminal view, CI log sections, JSON lines and JUnit XML.
//! The scheduler knows nothing about terminals: every reporter is fed only
//! [`RunEvent`]s (already masked), plus what [`PlanInfo`] says about the plan.

pub mod buildkit;
pub mod error;
pub mod grouped;
pub mod info;
pub mod json;
pub mod junit;
pub mod live;
pub mod plain;
pub mod replay;
pub mod sink;
pub mod style;
pub mod summary;

pub use crate::events::{
    Masker, Reporter, RunEvent, RunSummary, Silent, StepReport, StepStatus, Tee,
};
pub use error::ReportError;
pub use grouped::{CiLog, GroupedReporter};
pub use info::{PlanInfo, StepInfo};
pub use json::JsonEventsReporter;
pub use junit::JUnitReporter;
pub use live::LiveReporter;
pub use plain::PlainReporter;
pub use style::Style;
pub use summary::{render_summary, render_summary_with};
