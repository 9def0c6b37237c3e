//! Planning at scale: a monorepo of 1,000 images × 8 arches, each image depending on
//! the previous one in chains of 10. Measures loading + validation, planning and
//! the JSON rendering separately (median of several iterations), then the whole
//! `multiarch plan --format json` process.
//!
//!     cargo bench --bench plan              # 1,000 images, 7 iterations
//!     cargo bench --bench plan -- --quick   # 100 images, 1 iteration

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use multiarch::plan::write_json_compact;
use multiarch::{Environment, Plan, Spec};

#[path = "support/monorepo.rs"]
mod monorepo;

use monorepo::ARCHES;

const CHAIN: usize = 10;
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn write_project(dir: &Path, images: usize) -> PathBuf {
    monorepo::write(dir, images, ARCHES, CHAIN, monorepo::THREE_TAGS).expect("write the project")
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    let n = v.len();
    let mid = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    mid.as_secs_f64() * 1000.0
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn main() {
    // `cargo bench` passes `--bench`; anything but `--quick` is ignored.
    let quick = std::env::args().any(|a| a == "--quick");
    let (images, iterations) = if quick { (100, 1) } else { (1000, 7) };
    let dir = std::env::temp_dir().join(format!("multiarch-bench-{}", std::process::id()));
    let path = write_project(&dir, images);
    let text = std::fs::read_to_string(&path).expect("read the spec");
    let env = Environment::empty();
    let (ctx, opts) = monorepo::main_at(SHA);

    let (mut load, mut plan_t, mut json_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut steps = 0;
    let mut bytes = 0;
    for _ in 0..iterations {
        let (spec, d) = time(|| Spec::from_str_in(&text, "multiarch.toml", &dir, &env));
        let spec = spec.unwrap_or_else(|e| panic!("the generated spec is valid: {e}"));
        load.push(d);
        let (plan, d) = time(|| Plan::new(&spec, &ctx, &opts));
        let plan = plan.unwrap_or_else(|e| panic!("plans: {e}"));
        plan_t.push(d);
        let (json, d) = time(|| {
            let mut buf = Vec::new();
            write_json_compact(&plan, &mut buf).map(|_| buf)
        });
        let json = json.expect("writes into memory");
        json_t.push(d);
        steps = plan.steps().len();
        bytes = json.len();
    }

    // The whole process, as CI runs it.
    let exe = env!("CARGO_BIN_EXE_multiarch");
    let mut process = Vec::new();
    for _ in 0..iterations {
        let (out, d) = time(|| {
            Command::new(exe)
                .args(["plan", "--format", "json", "-f"])
                .arg(&path)
                .args(["--sha", SHA, "--branch", "main"])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .output()
                .expect("run multiarch")
        });
        assert!(
            out.status.success(),
            "multiarch plan failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), bytes, "the CLI prints the library's JSON");
        process.push(d);
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "plan benchmark: {images} images × {} arches, chains of {CHAIN}: {steps} steps, {:.1} MiB of JSON; median of {iterations}",
        ARCHES.len(),
        bytes as f64 / 1024.0 / 1024.0
    );
    println!("  load + validate   {:>9.1} ms", median(load));
    println!("  plan              {:>9.1} ms", median(plan_t));
    println!("  JSON (compact)    {:>9.1} ms", median(json_t));
    println!(
        "  `multiarch plan --format json` process {:>9.1} ms",
        median(process)
    );
}
