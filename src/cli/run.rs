//! `multiarch run`: flags → [`RunOptions`], a reporter, the exit code.

use crate::cli::{Output, RunArgs};
use crate::environment::Environment;
use crate::error::{exit, Error};
use crate::exec::scheduler::FailureMode;
use crate::exec::{run, RunOptions};
use crate::plan::Plan;
use crate::report::PlainReporter;
use crate::spec::Spec;

pub fn cli_run(
    _spec: &Spec,
    plan: &Plan,
    args: &RunArgs,
    env: &Environment,
    out: Output,
) -> Result<i32, Error> {
    if args.dry_run {
        print!("{}", crate::plan::render_text(plan));
        println!("\n(dry run: nothing was run)");
        return Ok(exit::SUCCESS);
    }
    let opts = RunOptions {
        jobs: args.jobs.map(|j| j as usize),
        failure: if args.fail_fast {
            FailureMode::FailFast
        } else {
            FailureMode::KeepGoing
        },
        retries: args.retries,
        login: args.login,
        handle_signals: true,
        skip_existing: args.skip_existing,
    };
    let stdout = std::io::stdout();
    let mut reporter = PlainReporter::new(stdout.lock(), out.quiet, out.verbose);
    let summary = run(plan, &opts, env, &mut reporter)?;
    Ok(summary.exit_code())
}
