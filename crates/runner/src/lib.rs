//! The sluice command line's library: flags, exit codes and rendering.
//!
//! - `sluice run`: [`cli::RunArgs`] (flags, layered over `SLUICE_*`
//!   variables and a config file by `sluice-pipeline`) and
//!   [`run_command`] (runtime, signals, report, exit code); the pipeline
//!   itself is `sluice-pipeline`'s.
//! - `sluice simulate`: [`simulation::run`], its results
//!   ([`report::RunReport`]) and their [`render`]ing;
//! - `sluice generate`: [`generate`]; `sluice mock-api` is
//!   `sluice-mock-api`'s server.
//!
//! The binary (`src/main.rs`) parses flags ([`cli`]) and calls these; tests
//! and `cargo xtask` call the same code.

pub mod cli;
pub mod generate;
pub mod render;
pub mod report;
pub mod run_command;
pub mod signals;
pub mod simulation;
