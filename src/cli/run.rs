//! `multiarch run`: flags → [`RunOptions`], the reporters, the exit code. Which
//! human view a run gets (live, plain, CI sections) is decided here, from the
//! terminal and the environment; the reporters only ever see events.

use std::fs::File;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::{Output, Progress, ReplayArgs, RunArgs};
use crate::environment::Environment;
use crate::error::{exit, Error};
use crate::exec::mask::Masker;
use crate::exec::scheduler::FailureMode;
use crate::exec::{run, Credentials, RunOptions};
use crate::plan::Plan;
use crate::report::events::{EventReader, Parsed};
use crate::report::live::LiveOptions;
use crate::report::{
    CiLog, GroupedReporter, JUnitReporter, JsonEventsReporter, LiveReporter, PlainReporter,
    PlanInfo, Reporter, Style, Tee,
};
use crate::spec::Spec;

/// The human view a run gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Live,
    Plain,
    Ci(CiLog),
}

/// `--progress auto`: the live view on a terminal; sections in GitLab CI and
/// GitHub Actions; plain lines elsewhere and with `-q`.
pub fn choose_view(progress: Progress, env: &Environment, quiet: bool, terminal: bool) -> View {
    let live_ok = terminal && env.get("TERM") != Some("dumb");
    match progress {
        Progress::Live if live_ok => View::Live,
        Progress::Live | Progress::Plain => View::Plain,
        Progress::Gitlab => View::Ci(CiLog::GitLab),
        Progress::Github => View::Ci(CiLog::GitHub),
        Progress::Auto if quiet => View::Plain,
        Progress::Auto if env.is_true("GITLAB_CI") => View::Ci(CiLog::GitLab),
        Progress::Auto if env.is_true("GITHUB_ACTIONS") => View::Ci(CiLog::GitHub),
        Progress::Auto if live_ok => View::Live,
        Progress::Auto => View::Plain,
    }
}

/// The human reporter: on stdout, or on stderr when stdout carries `--events -`.
fn human<'a>(view: View, out: Output, to_stderr: bool, info: PlanInfo) -> Box<dyn Reporter + 'a> {
    let sink: Box<dyn Write + 'a> = if to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let text_style = Style::new(if to_stderr {
        out.color
    } else {
        out.color_stdout
    });
    match view {
        View::Live => Box::new(
            LiveReporter::stderr(
                sink,
                LiveOptions {
                    style: Style::new(out.color),
                    summary_style: text_style,
                    verbose: out.verbose,
                    quiet: out.quiet,
                    ..LiveOptions::default()
                },
            )
            .with_plan(info),
        ),
        View::Plain => Box::new(
            PlainReporter::new(sink, out.quiet, out.verbose)
                .with_plan(info)
                .with_style(text_style),
        ),
        View::Ci(kind) => Box::new(
            GroupedReporter::new(sink, kind, out.verbose)
                .with_plan(info)
                .with_style(text_style),
        ),
    }
}

fn create(path: &Path, what: &str) -> Result<BufWriter<File>, Error> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| Error::Usage(format!("{what} {}: {e}", path.display())))
}

fn is_stdout(p: &Path) -> bool {
    p.as_os_str() == "-"
}

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
    let info = PlanInfo::from_plan(plan);
    // The plan event is written here, not by the scheduler: mask it with the
    // secrets the scheduler masks everything else with.
    let secrets: Vec<String> = Credentials::from_env(env)
        .map(|c| vec![c.password])
        .unwrap_or_default();
    let masker = Masker::new(&secrets);
    // Files are opened before anything runs: a wrong path is exit 2, not a lost
    // report after an hour of builds.
    let events_to_stdout = args.events.as_deref().is_some_and(is_stdout);
    let mut events = match &args.events {
        Some(p) => {
            let w: Box<dyn Write> = if is_stdout(p) {
                Box::new(std::io::stdout())
            } else {
                Box::new(create(p, "--events: cannot write")?)
            };
            Some(
                JsonEventsReporter::new(w, plan, &masker)
                    .map_err(|e| Error::Usage(format!("--events: cannot write: {e}")))?,
            )
        }
        None => None,
    };
    let mut junit = match &args.junit {
        Some(p) => Some(JUnitReporter::new(
            create(p, "--junit: cannot write")?,
            info.clone(),
        )),
        None => None,
    };
    let view = choose_view(
        args.progress,
        env,
        out.quiet,
        std::io::stderr().is_terminal(),
    );
    let mut human = human(view, out, events_to_stdout, info);
    let result = {
        let mut tee = Tee::new();
        tee.push(&mut human);
        if let Some(e) = events.as_mut() {
            tee.push(e);
        }
        if let Some(j) = junit.as_mut() {
            tee.push(j);
        }
        run(plan, &opts, env, &mut tee)
    };
    // The live view is cleared before any error is printed.
    drop(human);
    match result {
        Ok(summary) => Ok(summary.exit_code()),
        Err(e) => {
            let message = masker.mask(&e.to_string());
            if let Some(ev) = events.as_mut() {
                ev.error(&message, e.exit_code());
            }
            if let Some(j) = junit.as_mut() {
                j.error(&message);
            }
            Err(e)
        }
    }
}

/// `multiarch replay FILE`: feed a recorded events stream to the view a run
/// would get, optionally at a human pace.
pub fn replay(args: &ReplayArgs, env: &Environment, out: Output) -> Result<i32, Error> {
    let text = if is_stdout(&args.events) {
        let mut s = String::new();
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| Error::io(Path::new("-"), e))?;
            s.push_str(&line);
            s.push('\n');
        }
        s
    } else {
        std::fs::read_to_string(&args.events).map_err(|e| Error::io(&args.events, e))?
    };
    let mut reader = EventReader::new();
    let mut parsed = Vec::new();
    for (n, line) in text.lines().enumerate() {
        match reader.read(line) {
            Ok(Some(p)) => parsed.push(p),
            Ok(None) => {}
            Err(e) => {
                return Err(Error::Usage(format!(
                    "{}:{}: {e}",
                    args.events.display(),
                    n + 1
                )))
            }
        }
    }
    let info = parsed
        .iter()
        .find_map(|p| match p {
            Parsed::Plan(i) => Some(i.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let view = choose_view(
        args.progress,
        env,
        out.quiet,
        std::io::stderr().is_terminal(),
    );
    let mut human = human(view, out, false, info);
    let mut code = exit::SUCCESS;
    for p in parsed {
        match p {
            Parsed::Plan(_) => continue,
            Parsed::Event(e) => {
                if let crate::report::RunEvent::Finished(s) = &e {
                    code = s.exit_code();
                }
                human.event(&e);
            }
            Parsed::Error { message, exit_code } => {
                drop(human);
                return Err(match exit_code {
                    exit::ENVIRONMENT => Error::Environment(message),
                    exit::STEP_FAILED => Error::Failed(message),
                    exit::INTERRUPTED => Error::Interrupted,
                    _ => Error::Usage(message),
                });
            }
        }
        if args.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(args.delay_ms));
        }
    }
    Ok(code)
}
