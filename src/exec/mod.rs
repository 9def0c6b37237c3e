//! Running a plan: the scheduler, the engine runner and the reporters' events.

use crate::cli::{Output, RunArgs};
use crate::environment::Environment;
use crate::error::Error;
use crate::plan::Plan;
use crate::spec::Spec;

pub fn cli_run(
    _spec: &Spec,
    plan: &Plan,
    args: &RunArgs,
    _env: &Environment,
    _out: Output,
) -> Result<i32, Error> {
    if args.dry_run {
        print!("{}", crate::plan::render_text(plan));
        return Ok(0);
    }
    Err(Error::Environment("not yet".into()))
}
