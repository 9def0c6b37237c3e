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

pub mod cli;
pub mod context;
pub mod diagnostic;
pub mod doctor;
pub mod engine;
pub mod environment;
pub mod error;
pub mod exec;
pub mod exit;
pub mod graph;
pub mod init;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod spec;
pub mod validate;

pub use context::{GitCli, GitContext, Overrides};
pub use diagnostic::SpecErrors;
pub use environment::Environment;
pub use error::Error;
pub use exec::{run, RunOptions};
pub use plan::{Plan, PlanOptions, Stage, Step, StepKind};
pub use spec::Spec;
