//! The `sluice` binary: parses the flags, sets up logging (`-v`, `RUST_LOG`),
//! runs the subcommand and exits with its code.

use std::env::VarError;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{Cli, Command};
use sluice::commands;
use sluice::commands::run::EXIT_SETTING;
use sluice::logging;

/// The pipeline allocates and frees every record's JSON payload on
/// different threads; mimalloc does that about 30 % faster than the system
/// allocator here (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.validate() {
        error.exit();
    }
    let rust_log = match std::env::var("RUST_LOG") {
        Ok(rust_log) => Some(rust_log),
        Err(VarError::NotPresent) => None,
        Err(VarError::NotUnicode(_)) => {
            eprintln!("sluice: RUST_LOG is not valid UTF-8");
            return ExitCode::from(EXIT_SETTING);
        }
    };
    let filter = match logging::filter(cli.verbose, rust_log.as_deref()) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("sluice: RUST_LOG is not a valid log filter: {error}");
            return ExitCode::from(EXIT_SETTING);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // To stderr, erasing the live status line of `run` before a log
        // line and drawing it again after.
        .with_writer(sluice::status::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Simulate(args) => commands::simulate::run(&args),
        Command::Generate(args) => commands::generate::run(&args),
        Command::MockApi(args) => commands::mock_api::run(&args),
        Command::Run(args) => commands::run::run(&args, cli.quiet),
        Command::Check(args) => commands::check::run(&args),
        Command::Completions(args) => commands::completions::run(&args),
        Command::Man(args) => commands::man::run(&args),
    }
}
