//! `cargo xtask fuzz [SECONDS]`: the libFuzzer target over spec loading,
//! validation and planning (fuzz/fuzz_targets/spec.rs), for a bounded time.
//!
//! cargo-fuzz needs nightly-only flags (sanitizers); these machines have one stable
//! toolchain, so it runs with RUSTC_BOOTSTRAP=1.

use std::process::Command;

use crate::devenv::{exit_code, workspace_root};
use crate::Result;

pub fn run(args: &[String]) -> Result<i32> {
    let secs: u64 = match args {
        [] => 60,
        [s] => s
            .parse()
            .map_err(|_| format!("fuzz: `{s}` is not a number of seconds"))?,
        _ => return Err("usage: cargo xtask fuzz [SECONDS]".into()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let installed = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
        let st = Command::new(&cargo)
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .map_err(|e| format!("cannot run cargo install: {e}"))?;
        if !st.success() {
            return Ok(exit_code(st));
        }
    }
    let root = workspace_root();
    let fuzz = root.join("fuzz");
    let corpus = fuzz.join("corpus/spec");
    std::fs::create_dir_all(&corpus)
        .map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    let st = Command::new(&cargo)
        .current_dir(&fuzz)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "spec"])
        .arg(&corpus)
        .arg(fuzz.join("seeds/spec"))
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .args(["-rss_limit_mb=1024", "-timeout=10", "-print_final_stats=1"])
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    Ok(exit_code(st))
}
