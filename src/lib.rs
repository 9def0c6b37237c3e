//! multiarch: build, publish and verify multi-architecture container images from
//! one declarative file.
//!
//! ```no_run
//! use multiarch::{Environment, GitContext, GitCli, Overrides, Plan, PlanOptions, Spec};
//! # fn main() -> Result<(), multiarch::Error> {
//! let env = Environment::from_process();
//! let spec = Spec::load("multiarch.toml".as_ref(), &env)?;
//! let ctx = GitContext::detect(&env, &GitCli::new(&spec.dir), &Overrides::default())?;
//! let plan = Plan::new(&spec, &ctx, &PlanOptions::default())?;
//! print!("{}", multiarch::plan::render_text(&plan));
//! let mut reporter = multiarch::report::PlainReporter::new(std::io::stdout(), false, false);
//! let summary = multiarch::run(&plan, &multiarch::RunOptions::default(), &env, &mut reporter)?;
//! std::process::exit(summary.exit_code());
//! # }
//! ```

// In layer order, lowest first (one group per layer): a module uses only the
// modules of earlier layers (tests/integration/layering.rs checks it; the
// unit tests' testutil, at the end, is in the lowest).
pub mod diagnostic;
pub mod environment;
pub mod exit;
pub mod file_error;
pub mod graph;
pub mod par;

pub mod spec;

pub mod validate;

pub mod context;

pub mod engine;

pub mod registry;

pub mod plan;

pub mod events;

pub mod exec;

pub mod report;

pub mod ci;
pub mod doctor;
pub mod init;

pub mod error;

pub mod cli;

pub use context::{GitCli, GitContext, Overrides};
pub use diagnostic::SpecErrors;
pub use environment::Environment;
pub use error::Error;
pub use events::{Reporter, RunEvent, RunSummary, StepStatus};
pub use exec::{run, FailureMode, RunOptions};
pub use plan::{Plan, PlanOptions, Stage, Step, StepKind};
pub use spec::Spec;

#[cfg(test)]
mod testutil;
