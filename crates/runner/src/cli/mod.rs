//! Command-line flags: one module per subcommand, value parsers with
//! their bounds in `parse`.

mod generate;
mod parse;
mod simulate;

use clap::{Parser, Subcommand};

pub use generate::GenerateArgs;
pub use simulate::{ClientRateLimit, OrderingArg, SimulateArgs};

/// Exit codes, as `--help` lists them.
pub const EXIT_CODES: &str = "Exit codes:
  0  the run completed and every check passed
  1  the run completed but a check failed, or it could not run
  2  a flag or setting is invalid";

/// sluice: concurrent sources to a rate-limited, unreliable API, with
/// nothing lost.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline against the simulated sources and API. The defaults
    /// are the original test's 10-second check.
    #[command(after_help = EXIT_CODES)]
    Simulate(SimulateArgs),
    /// Write NDJSON records from the stream simulator (bad data included)
    /// to stdout, for `sluice run --input -`.
    #[command(after_help = EXIT_CODES)]
    Generate(GenerateArgs),
}
