//! Command-line flags: one module per subcommand, value parsers with
//! their bounds in `parse`.

mod generate;
mod mock_api;
mod parse;
mod run;
mod scale_out;
mod simulate;

use clap::{Parser, Subcommand};

pub use generate::GenerateArgs;
pub use mock_api::MockApiArgs;
pub use run::{JsonFields, Ordering as RunOrdering, Profile, RunArgs, RunSettings};
pub use scale_out::{
    DEFAULT_NATS_ACK_WAIT, DEFAULT_NATS_CONSUMER, DEFAULT_NATS_LEASE, DEFAULT_NATS_SUBJECT,
    NatsSettings, ScaleOutArgs,
};
pub use simulate::{ClientRateLimit, OrderingArg, SimulateArgs};

/// Exit codes of `sluice run`, as `--help` lists them.
pub const RUN_EXIT_CODES: &str = "Exit codes:
  0  every record was delivered or dead-lettered
  1  the run ended with records not processed, or failed (e.g. a checkpoint could not be written)
  2  a flag, setting, input or checkpoint is invalid
  3  a signal stopped the run; what was not processed is past the checkpoint, for the next run
SIGINT or SIGTERM stops reading, finishes or hands back what is in flight within
--drain-timeout, writes the checkpoint and prints the report; a second signal
cancels what is in flight at once (the checkpoint is still written).";

/// Exit codes, as `--help` lists them.
pub const EXIT_CODES: &str = "Exit codes:
  0  the run completed and every check passed
  1  the run completed but a check failed, or it could not run
  2  a flag or setting is invalid";

/// sluice: concurrent sources to a rate-limited, unreliable API, with
/// nothing lost.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about,
    after_help = "Each command's --help lists its flags, their bounds and its exit codes."
)]
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
    /// Deliver records from files or stdin to an HTTP API, at its quota,
    /// with checkpoints, dead letters and metrics.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Serve the original test's API over HTTP on loopback: POST /records,
    /// GET /ledger. Prints its address first; stops on Ctrl-C or SIGTERM.
    #[command(after_help = EXIT_CODES)]
    MockApi(MockApiArgs),
    /// Write NDJSON records from the stream simulator (bad data included)
    /// to stdout, for `sluice run --input -`.
    #[command(after_help = EXIT_CODES)]
    Generate(GenerateArgs),
}
