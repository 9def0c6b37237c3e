//! `cargo xtask ci`: what CI runs, in order, stopping at the first failure.

use std::process::Command;
use std::time::Instant;

use crate::devenv::exit_code;
use crate::Result;

pub fn run(args: &[String]) -> Result<i32> {
    let mut engine = true;
    for arg in args {
        match arg.as_str() {
            "--no-engine" => engine = false,
            other => {
                eprintln!("xtask: ci: unknown argument `{other}` (expected --no-engine)");
                return Ok(2);
            }
        }
    }
    let started = Instant::now();
    let steps: [&[&str]; 2] = [
        &["fmt", "--all", "--", "--check"],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ];
    for args in steps {
        let code = step(cargo().args(args))?;
        if code != 0 {
            return Ok(code);
        }
    }

    // The linters tests/integration/ci_generation.rs checks `multiarch ci`'s output with.
    header("CI linters");
    let linters = crate::devenv::ensure_ci_linters(&crate::devenv::state_dir()?)?;
    let mut test = cargo();
    test.args(["test", "--workspace"])
        .env("MULTIARCH_CI_TOOLS", &linters);
    let mut buildkit_pass = None;
    if engine {
        header("engine environment");
        let env = crate::setup_engine()?;
        // The engine tests run through podman too (tests/integration/podman.rs).
        eprintln!("xtask: {}", crate::devenv::ensure_podman()?);
        // tests/integration/publishing.rs: skopeo, htpasswd and openssl.
        crate::devenv::ensure_publishing_tools()?;
        test.args(["--", "--include-ignored"])
            .env("MULTIARCH_BUSYBOX", &env.busybox_dir)
            .env("MULTIARCH_ENGINE_TESTS", "1")
            // This pass is the classic builder's; BuildKit's is the next one.
            .env("MULTIARCH_TEST_BUILDER", "classic");
        // The docker engine tests once more with BuildKit (the article's
        // pipeline, faults, cross-compiling, secrets, registry cache).
        let mut bk = cargo();
        bk.args([
            "test",
            "--test",
            "integration",
            "--",
            "--include-ignored",
            "engine::",
        ])
        .env("MULTIARCH_BUSYBOX", &env.busybox_dir)
        .env("MULTIARCH_ENGINE_TESTS", "1")
        .env("MULTIARCH_TEST_BUILDER", "buildkit");
        if let Some(d) = &env.buildkit_docker {
            bk.env("MULTIARCH_TEST_DOCKER", d);
        }
        buildkit_pass = Some(bk);
    }
    let code = step(&mut test)?;
    if code != 0 {
        return Ok(code);
    }
    if let Some(mut bk) = buildkit_pass {
        header("engine tests with BuildKit");
        let code = step(&mut bk)?;
        if code != 0 {
            return Ok(code);
        }
    }
    if !engine {
        // They need no engine: run them in this mode too.
        let mut lint = cargo();
        lint.args([
            "test",
            "--test",
            "integration",
            "--",
            "--ignored",
            "ci_generation::linters::",
        ])
        .env("MULTIARCH_CI_TOOLS", &linters);
        let code = step(&mut lint)?;
        if code != 0 {
            return Ok(code);
        }
    }
    // The spec fuzz target, for a bounded time (longer runs: `cargo xtask fuzz 3600`).
    header("fuzz (60 s)");
    let code = crate::fuzz::run(&["60".to_string()])?;
    if code != 0 {
        return Ok(code);
    }
    // The benchmark harness runs (its figures are not checked: docs/benchmarks.md).
    let mut args = vec!["--quick".to_string()];
    if !engine {
        args.extend(["planning", "scheduler", "startup"].map(String::from));
    }
    header(&format!("cargo xtask bench {}", args.join(" ")));
    let t0 = Instant::now();
    let code = crate::bench_task(&args)?;
    println!(
        "==> {} ({:.1}s)",
        if code == 0 { "ok" } else { "FAILED" },
        t0.elapsed().as_secs_f64()
    );
    if code == 0 {
        println!("\n==> ci passed in {:.1}s", started.elapsed().as_secs_f64());
    }
    Ok(code)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn header(title: &str) {
    println!("\n==> {title}");
}

/// Runs one step under a header; returns its exit code.
fn step(cmd: &mut Command) -> Result<i32> {
    // `$CARGO` is a full toolchain path; the header reads better with the bare name.
    let program = std::path::Path::new(cmd.get_program());
    let shown = std::iter::once(program.file_name().unwrap_or(program.as_os_str()))
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    header(&shown);
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let code = exit_code(status);
    let seconds = started.elapsed().as_secs_f64();
    if code == 0 {
        println!("==> ok ({seconds:.1}s)");
    } else {
        println!("==> FAILED with exit code {code} ({seconds:.1}s): {shown}");
    }
    Ok(code)
}
