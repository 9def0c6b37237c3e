//! `multiarch run`: flags → [`RunOptions`], the reporters, the exit code. Which
//! human view a run gets (live, plain, CI sections) is decided here, from the
//! terminal and the environment; the reporters only ever see events.

use std::fs::File;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::{Output, Progress, ReplayArgs, RunArgs};
use crate::environment::Environment;
use crate::error::Error;
use crate::events::Masker;
use crate::exec::{run, Credentials, FailureMode, RunOptions};
use crate::exit;
use crate::plan::Plan;
use crate::report::live::LiveOptions;
use crate::report::replay::{EventReader, Parsed};
use crate::report::sink::{is_broken_pipe, Checked, WriteStatus};
use crate::report::{
    CiLog, GroupedReporter, JUnitReporter, JsonEventsReporter, LiveReporter, PlainReporter,
    PlanInfo, ReportError, Reporter, Style, Tee,
};

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
/// What went wrong writing stdout is in the returned status.
fn human<'a>(
    view: View,
    out: Output,
    to_stderr: bool,
    info: PlanInfo,
) -> (Box<dyn Reporter + 'a>, WriteStatus) {
    let (sink, status): (Box<dyn Write + 'a>, WriteStatus) = if to_stderr {
        // A failing stderr has nowhere to be reported.
        (Box::new(std::io::stderr()), WriteStatus::default())
    } else {
        let (w, s) = Checked::new(std::io::stdout());
        (Box::new(w), s)
    };
    let text_style = Style::new(if to_stderr {
        out.color
    } else {
        out.color_stdout
    });
    let reporter: Box<dyn Reporter + 'a> = match view {
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
    };
    (reporter, status)
}

/// The human reporter `--progress` and the terminal choose.
fn human_for<'a>(
    progress: Progress,
    env: &Environment,
    out: Output,
    to_stderr: bool,
    info: PlanInfo,
) -> (Box<dyn Reporter + 'a>, WriteStatus) {
    let view = choose_view(progress, env, out.quiet, std::io::stderr().is_terminal());
    human(view, out, to_stderr, info)
}

/// A report file given on the command line, opened before anything runs: a path
/// that cannot be written is exit 2 then, not a lost report after an hour of
/// builds. A regular file gets `placeholder` at once (a file that takes no bytes,
/// such as /proc/version, shows now); the report replaces it when it is written.
struct ReportFile {
    file: File,
    /// The placeholder is still in the file: the next write replaces it.
    placeholder: bool,
}

impl ReportFile {
    fn create(path: &Path, flag: &'static str, placeholder: &[u8]) -> Result<ReportFile, Error> {
        let bad = |source: std::io::Error| ReportError::CreateReport {
            flag,
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::create(path).map_err(bad)?;
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        if regular && !placeholder.is_empty() {
            file.write_all(placeholder)
                .and_then(|_| file.flush())
                .map_err(bad)?;
        }
        Ok(ReportFile {
            file,
            placeholder: regular && !placeholder.is_empty(),
        })
    }
}

impl Write for ReportFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::mem::take(&mut self.placeholder) {
            use std::io::Seek;
            self.file.set_len(0)?;
            self.file.rewind()?;
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Every output of a run, to be checked when it ends: what it is, and its status.
type Outputs = Vec<(String, WriteStatus)>;

/// The first output that failed, as the run's error (a closed pipe excepted).
fn output_failure(outputs: &Outputs) -> Option<Error> {
    outputs.iter().find_map(|(what, status)| {
        let e = status.error()?;
        (!is_broken_pipe(&e)).then(|| {
            Error::Report(ReportError::Write {
                what: what.clone(),
                source: e,
            })
        })
    })
}

fn is_stdout(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// `--events FILE|-`, opened with the plan event written: a file that cannot
/// take it is exit 2 now; standard output that fails lets the run go on, and
/// the run says so at the end.
fn events_reporter(
    p: &Path,
    plan: &Plan,
    info: &PlanInfo,
    masker: &Masker,
    outputs: &mut Outputs,
) -> Result<JsonEventsReporter<Box<dyn Write>>, Error> {
    let (w, status): (Box<dyn Write>, WriteStatus) = if is_stdout(p) {
        let (w, s) = Checked::new(std::io::stdout());
        outputs.push(("the events to standard output".into(), s.clone()));
        (Box::new(w), s)
    } else {
        let file = BufWriter::new(ReportFile::create(p, "--events", b"")?);
        let (w, s) = Checked::new(file);
        outputs.push((format!("the events to {}", p.display()), s.clone()));
        (Box::new(w), s)
    };
    match JsonEventsReporter::new(w, plan, masker) {
        Ok(r) => Ok(r),
        Err(e) if !is_stdout(p) => Err(ReportError::CreateReport {
            flag: "--events",
            path: p.to_path_buf(),
            source: status.error().unwrap_or(e),
        }
        .into()),
        Err(_) => Ok(JsonEventsReporter::without_plan(
            Box::new(std::io::sink()) as Box<dyn Write>,
            info.clone(),
        )),
    }
}

pub fn cli_run(plan: &Plan, args: &RunArgs, env: &Environment, out: Output) -> Result<i32, Error> {
    if args.dry_run {
        let text = format!(
            "{}\n(dry run: nothing was run)\n",
            crate::plan::render_text(plan)
        );
        super::print_stdout(text.as_bytes())?;
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
        force_tags: args.force_tags,
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
    let mut outputs: Outputs = Vec::new();
    let mut events = match &args.events {
        Some(p) => Some(events_reporter(p, plan, &info, &masker, &mut outputs)?),
        None => None,
    };
    let mut junit = match &args.junit {
        Some(p) => {
            let placeholder = crate::report::junit::render_error(
                "multiarch run is still running, or ended before writing its report",
            );
            let file = ReportFile::create(p, "--junit", placeholder.as_bytes())?;
            let (w, s) = Checked::new(file);
            outputs.push((format!("the JUnit report to {}", p.display()), s));
            Some(JUnitReporter::new(w, info.clone()))
        }
        None => None,
    };
    let (mut human, human_status) = human_for(args.progress, env, out, events_to_stdout, info);
    outputs.push(("to standard output".into(), human_status));
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
        Ok(summary) => {
            // The events stream and the report are complete once they are dropped.
            drop(events);
            drop(junit);
            let code = summary.exit_code();
            match output_failure(&outputs) {
                Some(e) if code == exit::SUCCESS => Err(e),
                Some(e) => {
                    super::report_error(&e, out);
                    Ok(code)
                }
                None => Ok(code),
            }
        }
        Err(e) => {
            let e = Error::from(e);
            let message = masker.mask(&e.with_help());
            if let Some(ev) = events.as_mut() {
                ev.error(&message, e.exit_code());
            }
            if let Some(j) = junit.as_mut() {
                j.error(&message);
            }
            drop(events);
            drop(junit);
            if let Some(o) = output_failure(&outputs) {
                super::report_error(&o, out);
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
                return Err(ReportError::BadReplayLine {
                    path: args.events.clone(),
                    line: n + 1,
                    message: e,
                }
                .into())
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
    let (mut human, status) = human_for(args.progress, env, out, false, info);
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
                    exit::INTERRUPTED => Error::Interrupted,
                    // The recorded code, whatever it was (a usage error, an
                    // internal one): the replay ends as the run did.
                    exit_code => Error::Recorded { message, exit_code },
                });
            }
        }
        if args.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(args.delay_ms));
        }
    }
    drop(human);
    match status.error() {
        Some(e) => Err(Error::stdout(e)),
        None => Ok(code),
    }
}
