//! The process exit codes of SPEC.md §3, as named constants. A leaf module: the
//! run summary (events) and the top-level error both map onto these.

/// Everything succeeded.
pub const SUCCESS: i32 = 0;
/// A step failed; the summary names it.
pub const STEP_FAILED: i32 = 1;
/// The file or the arguments are wrong.
pub const USAGE: i32 = 2;
/// The environment is not usable (no engine, emulation missing).
pub const ENVIRONMENT: i32 = 3;
/// An internal error of multiarch itself: a bug to report, never a user's
/// mistake. The same code as a Rust panic.
pub const INTERNAL: i32 = 101;
/// Interrupted by SIGINT/SIGTERM; every child process was ended first.
pub const INTERRUPTED: i32 = 130;
