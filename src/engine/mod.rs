//! Container engines: the argv of every command (pure), and running them.

pub mod argv;
pub mod runner;

pub use runner::EngineRunner;
