//! The integration tests: one test binary, a module per area (fewer links, one
//! `support`). Tests that need the engine (a real dockerd, registry, qemu or
//! podman) are `#[ignore]`d in a plain `cargo test` and run by `cargo xtask ci`
//! (`--include-ignored`); everything else runs everywhere.

mod support;

mod builders;
mod buildkit;
mod ci_generation;
mod diagnostics;
mod engine;
mod faults;
mod hardening;
mod layering;
mod operator;
mod pipelines;
mod plan;
mod podman;
mod properties;
mod publishing;
mod runner;
mod scale;
