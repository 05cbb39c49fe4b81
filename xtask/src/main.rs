//! Project automation, run as `cargo xtask <task>`:
//!
//! - `acceptance`: the 10-second check in real time, against the original
//!   test's thresholds and this project's targets, and the eleven
//!   validation cases;
//! - `sweep`: the deterministic simulation sweep over more seeds;
//! - `bench`: the benchmark suite, written to BENCHMARKS.md.

mod acceptance;
mod bench;
mod sweep;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "sluice's project automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build in release, run the 10-second check in real time and check it;
    /// check the eleven validation cases. Exits non-zero on any FAIL.
    Acceptance(acceptance::Args),
    /// Run the deterministic simulation sweep over more seeds, in release.
    Sweep(sweep::Args),
    /// Run the benchmarks in release and write BENCHMARKS.md.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::Acceptance(args) => acceptance::run(&args),
        Task::Sweep(args) => sweep::run(&args),
        Task::Bench(args) => bench::run(&args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
