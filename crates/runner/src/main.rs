//! The `sluice` binary: parses the flags, sets up logging, runs the
//! subcommand and exits with its code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{Cli, Command};
use sluice::commands;
use tracing_subscriber::EnvFilter;

/// The pipeline allocates and frees every record's JSON payload on
/// different threads; mimalloc does that about 30 % faster than the system
/// allocator here (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Simulate(args) => commands::simulate::run(&args),
        Command::Generate(args) => commands::generate::run(&args),
        Command::MockApi(args) => commands::mock_api::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Check(args) => commands::check::run(&args),
    }
}
