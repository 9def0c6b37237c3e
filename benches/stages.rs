//! Criterion micro-benchmarks of the planning pipeline's stages, on a generated
//! monorepo of 100 images × 8 arches in depends_on chains of 10:
//!
//! - `parse`    — the TOML syntax tree with spans (toml's `DeTable`);
//! - `load`     — the whole of `Spec::from_str_in`: parse, `${VAR}` expansion, the
//!   raw model and validation against every rule of SPEC.md (validation is
//!   `load` − `parse`);
//! - `plan`     — the `Spec` into the DAG with every argv;
//! - `json`     — the plan as SPEC.md §4 JSON (compact).
//!
//!     cargo bench --bench stages
//!
//! The whole-process figures (10 … 5,000 images, peak memory) are in
//! `cargo xtask bench planning` and docs/benchmarks.md.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use multiarch::plan::write_json_compact;
use multiarch::{Environment, Plan, Spec};

const IMAGES: usize = 100;
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

#[path = "support/monorepo.rs"]
mod monorepo;

fn project() -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("multiarch-stages-{}", std::process::id()));
    let path = monorepo::write(&dir, IMAGES, monorepo::ARCHES, 10, monorepo::THREE_TAGS)
        .expect("write the project");
    let text = std::fs::read_to_string(path).expect("read the spec");
    (dir, text)
}

fn parse(text: &str) -> usize {
    let (root, errors) = toml::de::DeTable::parse_recoverable(text);
    assert!(errors.is_empty(), "the generated spec parses");
    root.get_ref().len()
}

fn stages(c: &mut Criterion) {
    let (dir, text) = project();
    let env = Environment::empty();
    let spec = Spec::from_str_in(&text, "multiarch.toml", &dir, &env).expect("valid spec");
    let (ctx, opts) = monorepo::main_at(SHA);
    let plan = Plan::new(&spec, &ctx, &opts).expect("plans");

    let mut g = c.benchmark_group(format!(
        "{IMAGES} images x {} arches",
        monorepo::ARCHES.len()
    ));
    g.sample_size(20);
    g.bench_function("parse", |b| b.iter(|| parse(&text)));
    g.bench_function("load", |b| {
        b.iter(|| Spec::from_str_in(&text, "multiarch.toml", &dir, &env).expect("valid spec"))
    });
    g.bench_function("plan", |b| {
        b.iter(|| Plan::new(&spec, &ctx, &opts).expect("plans"))
    });
    g.bench_function("json", |b| {
        b.iter(|| {
            let mut sink = std::io::sink();
            write_json_compact(&plan, &mut sink).expect("writes")
        })
    });
    g.finish();
    cleanup(&dir);
}

fn cleanup(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, stages);
criterion_main!(benches);
