//! The sluice command line's library: one simulated run
//! ([`simulation::run`]), its results ([`report::RunReport`]) and their
//! rendering. The binary (`src/main.rs`) parses flags into a
//! [`simulation::SimulationConfig`]; tests and `cargo xtask` call the same
//! code.

pub mod cli;
pub mod exporter;
pub mod generate;
pub mod pipeline;
pub mod render;
pub mod report;
pub mod run_command;
pub mod signals;
pub mod simulation;
