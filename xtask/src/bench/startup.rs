//! The tool's own start-up: the release binary's `multiarch --version` and
//! `multiarch check` on the repository's multiarch.toml, each run many times
//! (median and best), next to `true` (the cost of starting any process here).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::planning::{measure, median, release_binary};
use crate::Result;

fn sample(cmd: &mut Command, runs: usize) -> Result<(Duration, Duration, u64)> {
    let mut times = Vec::with_capacity(runs);
    let mut peak = 0;
    for _ in 0..runs {
        let (t, rss) = measure(cmd)?;
        times.push(t);
        peak = peak.max(rss);
    }
    let best = times.iter().min().copied().unwrap_or_default();
    Ok((median(times), best, peak))
}

pub fn run(root: &Path, quick: bool) -> Result<()> {
    let exe = release_binary(root)?;
    let runs = if quick { 5 } else { 101 };
    let spec = root.join("multiarch.toml");
    let cases: Vec<(&str, Command)> = vec![
        ("true (any process)", Command::new("true")),
        ("multiarch --version", {
            let mut c = Command::new(&exe);
            c.arg("--version");
            c
        }),
        ("multiarch check", {
            let mut c = Command::new(&exe);
            c.arg("check").arg("-f").arg(&spec).current_dir(root);
            c
        }),
        ("multiarch plan", {
            let mut c = Command::new(&exe);
            c.args([
                "plan",
                "--sha",
                super::planning::SHA,
                "--branch",
                "main",
                "-f",
            ])
            .arg(&spec)
            .current_dir(root);
            c
        }),
    ];
    println!(
        "{:<22} {:>10} {:>10} {:>10}   ({runs} runs)",
        "command", "median ms", "best ms", "peak MiB"
    );
    for (name, mut cmd) in cases {
        let (med, best, peak) = sample(&mut cmd, runs)?;
        println!(
            "{:<22} {:>10.2} {:>10.2} {:>10.1}",
            name,
            med.as_secs_f64() * 1000.0,
            best.as_secs_f64() * 1000.0,
            peak as f64 / 1024.0
        );
    }
    Ok(())
}
