//! The sluice command line's library, one module per subcommand's work:
//!
//! - `sluice run`: [`pipeline::run`] (files, stdin or JetStream, a profile,
//!   the HTTP sink, checkpoints, dead letters, a shared limit), [`run_command`] (runtime, signals,
//!   report, exit code), [`exporter`] (Prometheus metrics);
//! - `sluice simulate`: [`simulation::run`], its results
//!   ([`report::RunReport`]) and their [`render`]ing;
//! - `sluice generate`: [`generate`]; `sluice mock-api` is
//!   `sluice-mock-api`'s server.
//!
//! The binary (`src/main.rs`) parses flags ([`cli`]) and calls these; tests
//! and `cargo xtask` call the same code.

pub mod cli;
pub mod exporter;
pub mod generate;
mod inputs;
pub mod pipeline;
pub mod render;
pub mod report;
pub mod run_command;
pub mod signals;
pub mod simulation;
