//! The command line: clap structs and dispatch only. Everything else is the library.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

mod help;
mod run;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::context::{BuilderChoice, DockerCli, GitCli, GitContext, Overrides};
use crate::environment::Environment;
use crate::error::Error;
use crate::exit;
use crate::plan::{self, Host, Plan, PlanOptions, Stage};
use crate::spec::{parse_duration, BuilderSetting, EngineKind, Spec};

#[derive(Debug, Parser)]
#[command(
    name = "multiarch",
    version,
    about = "Build, publish and verify multi-architecture container images from one multiarch.toml",
    long_about = "Build, publish and verify multi-architecture container images from one multiarch.toml.\n\n\
multiarch plans the whole pipeline as a DAG (setup-qemu → build → test → push → \
manifest-create → manifest-push → verify), runs it in parallel, publishes lists only \
on the configured branches, and explains every error against the file.",
    after_help = "Examples:\n  multiarch init                  # a starter multiarch.toml from the Dockerfiles here\n  multiarch doctor                # can a run succeed on this machine? how to fix it\n  multiarch check\n  multiarch plan --branch main\n  multiarch plan --format json | jq '.steps[].id'\n  multiarch run -j 4\n  multiarch run --arch arm64v8 --stage build --stage push\n  multiarch run --junit report.xml --events events.jsonl\n  multiarch completions bash > /etc/bash_completion.d/multiarch\n\nExit codes: 0 success, 1 a step failed, 2 the file or arguments are wrong, 3 the environment is not usable, 130 interrupted."
)]
pub struct Cli {
    /// When to use colour: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Print only errors and the final summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more: every command as it starts.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate multiarch.toml; print nothing but errors.
    #[command(after_help = help::CHECK)]
    Check(FileArg),
    /// Show the steps a run would execute, with their exact commands.
    #[command(after_help = help::PLAN)]
    Plan(PlanArgs),
    /// Print a CI pipeline that runs as-is: a build job per arch on its runner, a
    /// publish job on exactly the publishing refs, a verify job per arch.
    #[command(after_help = help::CI)]
    Ci(CiArgs),
    /// Run the plan: build, test, push, publish the lists and verify them.
    #[command(after_help = help::RUN)]
    Run(RunArgs),
    /// Check that a run could succeed here (engine, emulation, registry, git,
    /// what would be published), each problem with a fix.
    #[command(after_help = help::DOCTOR)]
    Doctor(DoctorArgs),
    /// Write a commented starter multiarch.toml, one image per Dockerfile found
    /// under the current directory.
    #[command(after_help = help::INIT)]
    Init(InitArgs),
    /// Print a shell completion script.
    #[command(after_help = help::COMPLETIONS)]
    Completions(CompletionsArgs),
    /// Render a recorded `--events` file as a run would (for tests and demos).
    #[command(hide = true)]
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub commit: Overrides,
    /// The engine to check, overriding [project] engine.
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing multiarch.toml.
    #[arg(long)]
    pub force: bool,
    /// The arches every image is built for (repeatable; default amd64, arm64v8).
    #[arg(long = "arch", value_name = "NAME")]
    pub archs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// An events file written by `run --events FILE` (`-`: stdin).
    #[arg(value_name = "FILE")]
    pub events: PathBuf,
    /// Pause between events, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay_ms: u64,
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// Live on a terminal; sections in GitLab CI and GitHub Actions; else plain.
    Auto,
    /// The live view (on a terminal; plain elsewhere).
    Live,
    /// Lines prefixed with their step id.
    Plain,
    /// GitLab CI collapsible sections.
    Gitlab,
    /// GitHub Actions groups.
    Github,
}

#[derive(Debug, Args)]
pub struct CiArgs {
    /// The CI system.
    #[arg(value_enum)]
    pub system: CiSystem,
    #[command(flatten)]
    pub file: FileArg,
    /// Write the pipeline to FILE (parent directories are created) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write nothing: exit 1 when the -o FILE differs from what would be
    /// generated (with a short diff), 0 when it is up to date.
    #[arg(long, requires = "output")]
    pub check: bool,
    /// GitLab: how the runner runs jobs. docker: a docker:dind service over TLS
    /// (default); kubernetes: dind on the pod's loopback, without TLS; shell:
    /// the runner's own engine, no image or service.
    #[arg(long, value_enum, value_name = "EXECUTOR")]
    pub executor: Option<ExecutorArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    Docker,
    Kubernetes,
    Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CiSystem {
    Gitlab,
    Github,
}

#[derive(Debug, Args, Clone)]
pub struct FileArg {
    /// The spec (default: ./multiarch.toml, else the nearest one in a parent directory).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct Select {
    #[command(flatten)]
    pub commit: Overrides,
    /// Only images whose name matches this glob (repeatable).
    #[arg(long = "image", value_name = "GLOB")]
    pub images: Vec<String>,
    /// Only this arch (a name or a platform; repeatable).
    #[arg(long = "arch", value_name = "NAME")]
    pub archs: Vec<String>,
    /// Only these stages (repeatable): build = setup-qemu + build + test, push,
    /// publish = manifest-create + manifest-push, verify.
    #[arg(long = "stage", value_enum, value_name = "STAGE")]
    pub stages: Vec<StageArg>,
    /// Only images with files changed since REV (and the images that depend on them).
    #[arg(long = "changed-since", value_name = "REV")]
    pub changed_since: Option<String>,
    /// The engine, overriding [project] engine.
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Build every layer again (`docker build --no-cache`).
    #[arg(long)]
    pub no_cache: bool,
    /// Pull newer versions of the base images for each build (`docker build
    /// --pull`), as release pipelines that rebuild on base-image updates do.
    #[arg(long)]
    pub pull: bool,
    /// The docker builder, overriding [project] builder: auto (BuildKit when the
    /// docker CLI can), buildkit, classic.
    #[arg(long, value_enum, value_name = "BUILDER")]
    pub builder: Option<BuilderArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuilderArg {
    Auto,
    Buildkit,
    Classic,
}

impl From<BuilderArg> for BuilderSetting {
    fn from(b: BuilderArg) -> BuilderSetting {
        match b {
            BuilderArg::Auto => BuilderSetting::Auto,
            BuilderArg::Buildkit => BuilderSetting::BuildKit,
            BuilderArg::Classic => BuilderSetting::Classic,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StageArg {
    Build,
    Push,
    Publish,
    Verify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Docker,
    Podman,
}

impl From<EngineArg> for EngineKind {
    fn from(e: EngineArg) -> EngineKind {
        match e {
            EngineArg::Docker => EngineKind::Docker,
            EngineArg::Podman => EngineKind::Podman,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Dot,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub select: Select,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub select: Select,
    /// Steps run at once (default: [project] jobs, else the number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Print what would run, run nothing (needs no engine).
    #[arg(long)]
    pub dry_run: bool,
    /// After a failure, go on with independent steps (the default).
    #[arg(long, conflicts_with = "fail_fast")]
    pub keep_going: bool,
    /// After a failure, start nothing new and end what runs.
    #[arg(long)]
    pub fail_fast: bool,
    /// Log in to the registry first (credentials from MULTIARCH_REGISTRY_USER /
    /// MULTIARCH_REGISTRY_PASSWORD, or GitLab's CI_REGISTRY_USER / CI_REGISTRY_PASSWORD).
    #[arg(long)]
    pub login: bool,
    /// Retries of transient registry failures (overrides [project] retries; at most 20).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=crate::spec::MAX_RETRIES as i64))]
    pub retries: Option<u32>,
    /// Skip build, test and push of an arch whose per-arch reference (with the
    /// commit sha) is already in the registry: a rerun redoes only what failed.
    #[arg(long)]
    pub skip_existing: bool,
    /// Move floating list tags (`latest`, `{branch}`) even when the list they
    /// name now is of a newer commit.
    #[arg(long)]
    pub force_tags: bool,
    /// Per-step timeout, e.g. 30m (overrides the spec's timeouts).
    #[arg(long = "step-timeout", value_name = "DURATION", value_parser = step_timeout)]
    pub step_timeout: Option<std::time::Duration>,
    /// Stream events as JSON lines to FILE (`-`: stdout; the human output then
    /// goes to stderr): the plan, steps started, output lines, steps finished,
    /// the end of the run.
    #[arg(long, value_name = "FILE|-")]
    pub events: Option<PathBuf>,
    /// Write a JUnit XML report (one test case per step) to FILE when the run ends.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// How progress is shown.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

impl From<StageArg> for Stage {
    fn from(s: StageArg) -> Stage {
        match s {
            StageArg::Build => Stage::Build,
            StageArg::Push => Stage::Push,
            StageArg::Publish => Stage::Publish,
            StageArg::Verify => Stage::Verify,
        }
    }
}

/// Output settings shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Colour on stderr (diagnostics, the live view).
    pub color: bool,
    /// Colour on stdout (plain output, summaries, doctor).
    pub color_stdout: bool,
    pub quiet: bool,
    pub verbose: bool,
    pub width: usize,
}

/// `--color auto`: a terminal, or a CI log that renders ANSI (GitLab, GitHub
/// Actions); never with NO_COLOR set or TERM=dumb.
pub fn use_color(choice: Color, env: &Environment, terminal: bool) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            env.get("NO_COLOR").is_none_or(|v| v.is_empty())
                && env.get("TERM") != Some("dumb")
                && (terminal || env.is_true("GITLAB_CI") || env.is_true("GITHUB_ACTIONS"))
        }
    }
}

impl Output {
    fn new(cli: &Cli, env: &Environment) -> Output {
        let color = use_color(cli.color, env, std::io::stderr().is_terminal());
        let color_stdout = use_color(cli.color, env, std::io::stdout().is_terminal());
        let width = env
            .get("COLUMNS")
            .and_then(|c| c.parse().ok())
            .unwrap_or(100usize)
            .clamp(60, 200);
        Output {
            color,
            color_stdout,
            quiet: cli.quiet,
            verbose: cli.verbose,
            width,
        }
    }
}

/// `--step-timeout`: a duration that is not zero (90s, 30m, 1h).
fn step_timeout(t: &str) -> Result<std::time::Duration, String> {
    parse_duration(t)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{t}` is not a duration (e.g. 90s, 30m, 1h)"))
}

/// Parse the arguments, run, and return the exit code.
pub fn main_with(args: Vec<std::ffi::OsString>, env: Environment) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::SUCCESS
                }
                _ => exit::USAGE,
            };
        }
    };
    let out = Output::new(&cli, &env);
    match dispatch(cli, &env, out) {
        Ok(code) => code,
        // The reader went away (`multiarch plan | head -1`): nothing to say, and
        // nothing went wrong here — as ripgrep does, exit 0.
        Err(e) if e.is_broken_pipe() => exit::SUCCESS,
        Err(e) => {
            report_error(&e, out);
            e.exit_code()
        }
    }
}

/// Write `text` to standard output, all of it, or say why not.
pub fn print_stdout(text: &[u8]) -> Result<(), Error> {
    let mut o = std::io::stdout().lock();
    o.write_all(text)
        .and_then(|_| o.flush())
        .map_err(Error::stdout)
}

pub fn report_error(e: &Error, out: Output) {
    let mut stderr = std::io::stderr().lock();
    match e {
        Error::Spec(errs) => {
            let _ = stderr.write_all(errs.render(out.color, out.width).as_bytes());
        }
        Error::Interrupted => {
            let _ = writeln!(
                stderr,
                "multiarch: interrupted; every child process was ended"
            );
        }
        other => {
            let _ = writeln!(stderr, "error: {}", other.with_help());
        }
    }
}

fn dispatch(cli: Cli, env: &Environment, out: Output) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(std::path::Path::new("."), e))?;
    match cli.command {
        Command::Check(f) => {
            let path = Spec::locate(f.file.as_deref(), &cwd)?;
            let spec = Spec::load(&path, env)?;
            // SPEC.md §2: BuildKit features with the classic builder are an
            // error with a span, which the file alone can show.
            if spec.project.engine == EngineKind::Docker
                && spec.project.builder == crate::spec::BuilderSetting::Classic
            {
                let files = spec_dockerfiles(&spec);
                let uses = buildkit_uses(&spec, &files);
                let first = first_use(&spec, files.iter().map(String::as_str), &uses);
                if let Some((file, used)) = first {
                    return Err(needs_buildkit(&spec, file, &used, "builder = \"classic\""));
                }
            }
            if out.verbose {
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: ok ({} images)",
                    path.display(),
                    spec.images.len()
                );
            }
            Ok(exit::SUCCESS)
        }
        Command::Plan(a) => {
            let (spec, plan) = load_and_plan(&a.file, &a.select, None, env, &cwd)?;
            let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let written = match a.format {
                Format::Text => stdout.write_all(plan::render_text(&plan).as_bytes()),
                // Indented for a person at a terminal; one line for a pipe.
                Format::Json if std::io::stdout().is_terminal() => {
                    plan::write_json(&plan, &mut stdout)
                }
                Format::Json => plan::write_json_compact(&plan, &mut stdout),
                Format::Dot => stdout.write_all(plan::render_dot(&plan).as_bytes()),
            };
            let written = written.and_then(|_| stdout.flush());
            // The process ends right after: freeing a plan of thousands of steps
            // would only cost time.
            std::mem::forget(plan);
            std::mem::forget(spec);
            written.map_err(Error::stdout)?;
            Ok(exit::SUCCESS)
        }
        Command::Ci(a) => ci(&a, env, &cwd, out),
        Command::Run(a) => {
            let (_spec, plan) = load_and_plan(&a.file, &a.select, a.step_timeout, env, &cwd)?;
            run::cli_run(&plan, &a, env, out)
        }
        Command::Doctor(a) => {
            let mut d = crate::doctor::Doctor::new(env, &cwd);
            d.file = a.file.file;
            d.overrides = a.commit;
            d.engine = a.engine.map(EngineKind::from);
            let report = d.run();
            print_stdout(report.render(out.color_stdout).as_bytes())?;
            Ok(report.exit_code())
        }
        Command::Init(a) => {
            let opts = crate::init::InitOptions {
                force: a.force,
                archs: a.archs,
            };
            let done = crate::init::init(&cwd, &opts, env)?;
            let mut o = String::new();
            let w = done.images.iter().map(|i| i.name.len()).max().unwrap_or(0);
            let _ = writeln!(
                o,
                "wrote {} with {} image{}:",
                done.path.display(),
                done.images.len(),
                if done.images.len() == 1 { "" } else { "s" }
            );
            for i in &done.images {
                let _ = writeln!(o, "  {:w$}  {}", i.name, i.shown());
                for (file, kept) in &i.left_out {
                    let _ = writeln!(
                        o,
                        "  {:w$}  left out {}: its arch is built from {}",
                        "",
                        file.display(),
                        kept.display()
                    );
                }
            }
            let _ = writeln!(
                o,
                "next: `multiarch doctor`, `multiarch plan`, then `multiarch run` (MULTIARCH_REGISTRY=host:port to push elsewhere)"
            );
            print_stdout(o.as_bytes())?;
            Ok(exit::SUCCESS)
        }
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into memory first: the generator panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "multiarch", &mut script);
            print_stdout(&script)?;
            Ok(exit::SUCCESS)
        }
        Command::Replay(a) => run::replay(&a, env, out),
    }
}

/// `multiarch ci`: generate, then print, write or check.
fn ci(a: &CiArgs, env: &Environment, cwd: &std::path::Path, out: Output) -> Result<i32, Error> {
    let path = Spec::locate(a.file.file.as_deref(), cwd)?;
    let mut spec = Spec::load(&path, env)?;
    let root = GitCli::new(&spec.dir)
        .toplevel()
        .unwrap_or_else(|| cwd.to_path_buf());
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    spec.path = std::fs::canonicalize(&spec.path).unwrap_or(spec.path);
    let executor = match a.executor {
        None | Some(ExecutorArg::Docker) => crate::ci::Executor::Docker,
        Some(ExecutorArg::Kubernetes) => crate::ci::Executor::Kubernetes,
        Some(ExecutorArg::Shell) => crate::ci::Executor::Shell,
    };
    let (text, command) = match a.system {
        CiSystem::Gitlab => (crate::ci::gitlab(&spec, &root, executor)?, "gitlab"),
        CiSystem::Github => {
            if a.executor.is_some() {
                return Err(crate::ci::CiError::ExecutorOnGitHub.into());
            }
            (crate::ci::github(&spec, &root)?, "github")
        }
    };
    let Some(out_path) = &a.output else {
        print_stdout(text.as_bytes())?;
        return Ok(exit::SUCCESS);
    };
    if a.check {
        let current = std::fs::read_to_string(out_path).map_err(|e| Error::io(out_path, e))?;
        if current == text {
            return Ok(exit::SUCCESS);
        }
        eprintln!(
            "{} is out of date: regenerate it with `multiarch ci {command} … -o {}` (the same flags without --check)\n{}",
            out_path.display(),
            out_path.display(),
            crate::ci::diff_hint(&current, &text, 20)
        );
        // 1, as a failed step: a lint step in CI fails.
        return Ok(exit::STEP_FAILED);
    }
    if let Some(dir) = out_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    }
    std::fs::write(out_path, text.as_bytes()).map_err(|e| Error::write(out_path, e))?;
    if out.verbose {
        eprintln!("wrote {}", out_path.display());
    }
    Ok(exit::SUCCESS)
}

/// Load the spec, detect the commit, plan.
pub fn load_and_plan(
    file: &FileArg,
    select: &Select,
    step_timeout: Option<std::time::Duration>,
    env: &Environment,
    cwd: &std::path::Path,
) -> Result<(Spec, Plan), Error> {
    let path = Spec::locate(file.file.as_deref(), cwd)?;
    // What the docker CLI can build with is asked while the file loads (a
    // docker CLI start is longer than loading most files), unless podman or
    // the classic builder is asked for on the command line.
    let engine = select.engine.map(EngineKind::from);
    let detecting = (engine != Some(EngineKind::Podman)
        && !matches!(select.builder, Some(BuilderArg::Classic)))
    .then(|| DockerCli::detect_in_background(env, crate::context::ALTERNATIVE_DOCKERS));
    let overrides = select.commit.clone();
    // The commit is asked of git (two processes) while the file loads: it needs
    // only the file's directory. A file that does not load is said first.
    let (spec, ctx) = std::thread::scope(|scope| {
        let dir = crate::spec::source_dir(&path);
        let ctx = scope.spawn(|| GitContext::detect(env, &GitCli::new(dir), &overrides));
        let spec = Spec::load(&path, env);
        // A panic in the detection is a bug: raise it here.
        let ctx = ctx.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (spec, ctx)
    });
    let spec = spec?;
    let ctx = ctx?;
    let git = GitCli::new(&spec.dir);
    let changed_since = select.changed_since.clone().or_else(|| {
        // A GitLab merge-request pipeline builds what its diff touches.
        ctx.pull_request.as_ref().and(ctx.diff_base.clone())
    });
    let changed_files = match &changed_since {
        Some(rev) => {
            let files = git.changed_files(rev).map_err(|message| {
                crate::context::ContextError::ChangedFiles {
                    rev: rev.clone(),
                    message,
                }
            })?;
            // git prints paths from the repository's top; images' paths are relative
            // to the spec's directory.
            let top = git.toplevel().unwrap_or_else(|| spec.dir.clone());
            let dir = std::fs::canonicalize(&spec.dir).unwrap_or_else(|_| spec.dir.clone());
            let prefix = dir
                .strip_prefix(std::fs::canonicalize(&top).unwrap_or(top))
                .map(|p| p.to_path_buf())
                .unwrap_or_default();
            let files = files
                .into_iter()
                .filter_map(|f| {
                    let p = std::path::PathBuf::from(&f);
                    p.strip_prefix(&prefix)
                        .ok()
                        .map(|r| r.to_string_lossy().into_owned())
                })
                .collect();
            Some((rev.clone(), files))
        }
        None => None,
    };
    let base_sha = changed_since.as_deref().and_then(|rev| git.resolve(rev));
    let detect = || match detecting {
        Some(d) => d.wait(env),
        None => DockerCli::detect(env, crate::context::ALTERNATIVE_DOCKERS),
    };
    let builder = choose_builder(&spec, engine, select.builder, env, detect)?;
    let opts = PlanOptions {
        images: select.images.clone(),
        archs: select.archs.clone(),
        stages: select.stages.iter().map(|s| Stage::from(*s)).collect(),
        engine,
        changed_files,
        base_sha,
        host: Host::detect(),
        step_timeout,
        no_cache: select.no_cache,
        pull: select.pull,
        builder,
    };
    let classic = engine.unwrap_or(spec.project.engine) == EngineKind::Docker
        && opts.builder.mode == crate::spec::BuildMode::Classic;
    // The classic builder's Dockerfile check reads every Dockerfile of the
    // file while the plan is drafted (on one thread); the plan's are judged.
    let (plan, uses) = std::thread::scope(|scope| {
        let uses = classic.then(|| scope.spawn(|| buildkit_uses(&spec, &spec_dockerfiles(&spec))));
        let plan = Plan::new(&spec, &ctx, &opts);
        // A panic in the check is a bug: raise it here.
        let uses = uses.map(|m| m.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        (plan, uses)
    });
    let plan = plan?;
    if let Some(uses) = uses {
        classic_can_build(&spec, &plan, &opts.builder, &uses)?;
    }
    Ok((spec, plan))
}

/// What [`crate::spec::buildkit_use`] finds in each Dockerfile (`None`: none,
/// or the file cannot be read), by the Dockerfile as a build step names it.
type Uses = std::collections::HashMap<String, Option<crate::spec::BuildKitUse>>;

/// Every Dockerfile of the file's images, each once, in file order.
fn spec_dockerfiles(spec: &Spec) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    spec.images
        .iter()
        .flat_map(|i| i.per_arch.values())
        .map(|b| b.dockerfile.display().to_string())
        .filter(|f| seen.insert(f.clone()))
        .collect()
}

/// [`Uses`] of `files`, read on threads: a monorepo has a Dockerfile per image.
fn buildkit_uses(spec: &Spec, files: &[String]) -> Uses {
    let found = crate::par::in_order(files.len(), 64, |k| {
        let text = std::fs::read_to_string(spec.dir.join(&files[k])).ok()?;
        crate::spec::buildkit_use(&text)
    });
    files.iter().cloned().zip(found).collect()
}

/// The first of `files` that uses a BuildKit feature (one not in `uses` is
/// read here; one that cannot be read is the build's to report).
fn first_use<'a>(
    spec: &Spec,
    files: impl IntoIterator<Item = &'a str>,
    uses: &Uses,
) -> Option<(&'a str, crate::spec::BuildKitUse)> {
    files.into_iter().find_map(|file| {
        let used = match uses.get(file) {
            Some(u) => u.clone(),
            None => std::fs::read_to_string(spec.dir.join(file))
                .ok()
                .and_then(|t| crate::spec::buildkit_use(&t)),
        };
        Some((file, used?))
    })
}

/// The docker builder: `--builder`, else `$MULTIARCH_BUILDER`, else `[project]
/// builder`, resolved against what the docker CLI can do (`detect`, called
/// only when that is needed).
pub fn choose_builder(
    spec: &Spec,
    engine: Option<EngineKind>,
    flag: Option<BuilderArg>,
    env: &Environment,
    detect: impl FnOnce() -> DockerCli,
) -> Result<BuilderChoice, Error> {
    let docker = engine.unwrap_or(spec.project.engine) == EngineKind::Docker;
    Ok(DockerCli::resolve_with(
        flag.map(BuilderSetting::from),
        spec.project.builder,
        docker,
        env,
        detect,
    )?)
}

/// The classic builder fails on `RUN --mount`, heredocs and `COPY --chmod`:
/// say so before anything runs, at the Dockerfile's line, for the first of the
/// plan's Dockerfiles that has one (a Dockerfile that cannot be read is the
/// build's to report). When the file or the command line chose classic, the
/// error points into the Dockerfile (exit 2); when `auto` fell back to it, the
/// docker CLI is what is missing (exit 3).
fn classic_can_build(
    spec: &Spec,
    plan: &Plan,
    builder: &crate::context::BuilderChoice,
    uses: &Uses,
) -> Result<(), Error> {
    let builds = plan.steps().iter().filter_map(|s| match &s.action {
        plan::Action::Build { args, .. } => Some(args.dockerfile.as_str()),
        _ => None,
    });
    let Some((file, used)) = first_use(spec, builds, uses) else {
        return Ok(());
    };
    match &builder.note {
        Some(fallback) => Err(crate::context::ContextError::NeedsBuildKit {
            file: file.to_string(),
            line: used.line,
            what: used.what,
            why: builder.why.clone(),
            fix: fallback.fix(),
        }
        .into()),
        None => Err(needs_buildkit(spec, file, &used, &builder.why)),
    }
}

/// `file` (as a build names it, below the spec's directory) uses `used`, and
/// the builder is classic because `why`: an error at the Dockerfile's line.
fn needs_buildkit(spec: &Spec, file: &str, used: &crate::spec::BuildKitUse, why: &str) -> Error {
    let text = std::fs::read_to_string(spec.dir.join(file)).unwrap_or_default();
    // Read again for the message: if it changed since, no span past its end.
    let span = if text.get(used.span.clone()).is_some() {
        used.span.clone()
    } else {
        0..0
    };
    let file = file.strip_prefix("./").unwrap_or(file);
    let source = crate::diagnostic::SourceFile::new(file, text);
    let problem = crate::diagnostic::Problem::new(
        "needs-buildkit",
        span,
        format!("{file}:{} uses {}, which the classic builder does not have ({why})", used.line, used.what),
        "needs BuildKit",
    )
    .help("use builder = \"buildkit\" (or --builder buildkit; `auto` picks it when the docker CLI can), or engine = \"podman\"");
    Error::Spec(crate::diagnostic::SpecErrors::new(&source, vec![problem]))
}
