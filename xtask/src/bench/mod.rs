//! `cargo xtask bench [--quick] [NAME...]`: the benchmark harness. Each part
//! prints its figures; docs/benchmarks.md records them with the method.
//!
//! - `planning`  — `multiarch plan` on 10 … 5,000 images × 8 arches: wall time and
//!   peak memory of the process.
//! - `scheduler` — a fake engine with known step durations against the
//!   critical-path bound and `make -j`; the fixed overhead per step.
//! - `startup`   — `multiarch --version` and `check` on the example spec.
//! - `pipeline`  — the real pipeline on the engine: the article's sequential
//!   script, `multiarch run` (classic and BuildKit side by side), and a no-op
//!   rerun with `--skip-existing`.
//! - `buildkit`  — cross-compiled vs emulated, cold vs registry-cached.

pub mod buildkit;
/// The generated monorepo, shared with the crate's own benches.
#[path = "../../../benches/support/monorepo.rs"]
pub mod monorepo;
pub mod pipeline;
pub mod planning;
pub mod scheduler;
pub mod startup;
