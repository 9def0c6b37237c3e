//! Planning at scale, as a user runs it: the release `multiarch plan --format
//! json` process on generated monorepos of 10, 100, 1,000 and 5,000 images × 8
//! arches (images in depends_on chains of 10, each with a Dockerfile and a
//! `BASE` build arg on the previous image). For each size: the median wall time
//! of the process and its peak resident memory (`ru_maxrss` from `wait4`), and
//! the growth per image against the previous size (linear growth keeps the
//! per-image figures flat).
//!
//! The projects are written under target/bench/plan-N and left there, so a
//! profiler can be pointed at the same command afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

use super::monorepo;

pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Write the project (spec + a context with a Dockerfile per image) under `dir`.
fn write_project(dir: &Path, images: usize) -> Result<PathBuf> {
    monorepo::write(dir, images, monorepo::ARCHES, 10, monorepo::THREE_TAGS)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Build the release binary once and return its path.
pub fn release_binary(root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--bin", "multiarch"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release failed".into());
    }
    Ok(root.join("target/release/multiarch"))
}

/// Run a command to the end with stdout discarded; its wall time and peak RSS
/// (KiB), or an error with its stderr when it fails.
pub fn measure(cmd: &mut Command) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data that wait4 fills in; `pid` is our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    if r != pid {
        return Err(format!(
            "wait4 on {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("{cmd:?} failed: {}", err.trim()));
    }
    Ok((elapsed, usage.ru_maxrss as u64))
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(root: &Path, quick: bool) -> Result<()> {
    let exe = release_binary(root)?;
    let sizes: &[usize] = if quick {
        &[10, 100]
    } else {
        &[10, 100, 1000, 5000]
    };
    let rounds = if quick { 1 } else { 5 };
    println!(
        "{:>6} {:>7} {:>10} {:>10} {:>12} {:>12}",
        "images", "steps", "wall ms", "peak MiB", "µs/image", "KiB/image"
    );
    for &n in sizes {
        let dir = root.join(format!("target/bench/plan-{n}"));
        let path = write_project(&dir, n)?;
        let mut times = Vec::new();
        let mut peak = 0;
        for _ in 0..rounds {
            let (t, rss) = measure(
                Command::new(&exe)
                    .args(["plan", "--format", "json", "-f"])
                    .arg(&path)
                    .args(["--sha", SHA, "--branch", "main"])
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default()),
            )?;
            times.push(t);
            peak = peak.max(rss);
        }
        let t = median(times);
        // Steps: 8 per arch chain (build, test, push, verify) + lists; count
        // them from the JSON once.
        let out = Command::new(&exe)
            .args(["plan", "--format", "json", "-f"])
            .arg(&path)
            .args(["--sha", SHA, "--branch", "main"])
            .output()
            .map_err(|e| format!("cannot run multiarch: {e}"))?;
        let steps = String::from_utf8_lossy(&out.stdout)
            .matches("\"kind\":")
            .count();
        println!(
            "{:>6} {:>7} {:>10.1} {:>10.1} {:>12.1} {:>12.1}",
            n,
            steps,
            t.as_secs_f64() * 1000.0,
            peak as f64 / 1024.0,
            t.as_secs_f64() * 1e6 / n as f64,
            peak as f64 / n as f64
        );
    }
    Ok(())
}
