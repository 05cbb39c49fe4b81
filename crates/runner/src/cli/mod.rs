//! Command-line flags: one module per subcommand, value parsers with
//! their bounds in `parse`.

mod completions;
mod generate;
mod man;
mod mock_api;
mod parse;
mod run;
mod simulate;

use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory, Parser, Subcommand};

use completions::COMPLETIONS_AFTER_HELP;
use man::MAN_AFTER_HELP;

pub use completions::CompletionsArgs;
pub use generate::GenerateArgs;
pub use man::ManArgs;
pub use mock_api::MockApiArgs;
pub use run::{RunArgs, RunConfig};
pub use simulate::{DEFAULT_SIMULATE_QUEUE_CAPACITY, SimulateArgs};

/// What `sluice run --help` ends with: settings, exit codes, examples.
pub const RUN_AFTER_HELP: &str = "Settings:
  Every flag is also a key of the --config file and a SLUICE_<KEY> variable
  (flags over variables over the file): --concurrency is `concurrency` and
  SLUICE_CONCURRENCY; a connector's are in its section: --http-url is `url`
  in [http] and SLUICE_HTTP_URL. --print-config shows every key.

Failures:
  A record's own failure (400, 422, other 4xx, invalid input) dead-letters it at once.
  The API failing (cannot connect, DNS, TLS; 5xx or timeouts while nothing gets
  through) never does: records wait and are retried, and stderr says so every 10s.
  A record whose own calls keep failing while others get through is dead-lettered
  after --max-attempts. 3xx, 401, 403, 404, 405 three times in a row stop the run
  (exit 5). --retry-on, --reject-on, --fatal-on change the classes; 429 is a refusal.
  Dead letters go to --dead-letters, by default CHECKPOINT.dead-letters or
  ./sluice.dead-letters; `--dead-letters none` discards them.

Exit codes:
  0  every record was delivered or dead-lettered, within --max-dead-letters
  1  records not processed, an input not read to its end, or a checkpoint not written
  2  a flag, setting, input or checkpoint is invalid or in use, or the API cannot be reached
  3  a signal stopped the run; what was not processed is past the checkpoint, for the next run
  4  more records dead-lettered than --max-dead-letters allows (default 10%)
  5  the API said, call after call, that the client is misconfigured (401, 404, 3xx...)
SIGINT or SIGTERM stops reading, finishes or hands back what is in flight within
--drain-deadline, writes the checkpoint and prints the report; a second signal
cancels what is in flight at once (the checkpoint is still written).

Examples:
  sluice run orders.ndjson --http-url http://127.0.0.1:8080/records --rate-limit 15/s
  sluice run 'data/*.ndjson' --profile json --checkpoint state/ --dead-letters dead.ndjson \\
      --http-url https://api.example.com/v1/records --http-header 'Authorization: Bearer ${API_TOKEN}'
  sluice generate --records 300 | sluice run - --http-url http://127.0.0.1:8080/records
  sluice run nats://127.0.0.1:4222 --nats-stream RECORDS --rate-limit 100/s \\
      --shared-limit redis://127.0.0.1:6379/quota --http-url http://127.0.0.1:8080/records
  sluice run --config run.toml --print-config
  sluice check --config run.toml";

/// What `sluice check --help` ends with.
pub const CHECK_AFTER_HELP: &str = "Exit codes:
  0  everything a run would use can be used
  2  something cannot; each line marked ✗ says what and why

Example:
  sluice check --config run.toml && sluice run --config run.toml";

/// Exit codes, as `--help` lists them.
pub const EXIT_CODES: &str = "Exit codes:
  0  the run completed and every check passed
  1  the run completed but a check failed, or it could not run
  2  a flag or setting is invalid";

/// What `sluice simulate --help` ends with.
pub const SIMULATE_AFTER_HELP: &str = "Exit codes:
  0  the run completed and every check passed
  1  the run completed but a check failed, or it could not run
  2  a flag or setting is invalid

Examples:
  sluice simulate                                   # the original 10-second check
  sluice simulate --virtual-time --seed 1 --duration 60s --json
  sluice simulate --rate-limit auto                 # learn the API's limit
  sluice simulate --api-rate-limit 1000/min --failure-rate 0.3 --partitions 8";

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
    /// More of sluice's own logs on stderr: -v info, -vv debug, -vvv trace
    /// (libraries stay at warn). RUST_LOG, when set, replaces these levels.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output: `run` prints no status line, notes, or report of a run
    /// that did its job (errors, warnings, the dead letters' file, why a
    /// run failed, and --json still show).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Checks what clap cannot: `-q` with `-v` given at different levels
    /// (`sluice -v run --quiet`), which clap's conflict check, made on each
    /// level alone, lets through.
    ///
    /// # Errors
    /// The [`clap::Error`] clap gives for conflicting flags on one level;
    /// [`clap::Error::exit`] prints it and exits 2.
    pub fn validate(&self) -> Result<(), clap::Error> {
        if self.quiet && self.verbose > 0 {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "the argument '--quiet' cannot be used with '--verbose'",
            ));
        }
        Ok(())
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline against the simulated sources and API. The defaults
    /// are the original test's 10-second check.
    #[command(after_help = SIMULATE_AFTER_HELP)]
    Simulate(SimulateArgs),
    /// Deliver records from files or stdin to an HTTP API, at its quota,
    /// with checkpoints, dead letters and metrics.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(Box<RunArgs>),
    /// Check everything `run` would use, with the same flags and config:
    /// settings, profile and schema, headers and their variables, the API
    /// (reached; --health-url answers 2xx), Redis, NATS, inputs,
    /// checkpoint, dead-letter file. Reads and sends no record.
    #[command(after_help = CHECK_AFTER_HELP)]
    Check(Box<RunArgs>),
    /// Serve the original test's API over HTTP on loopback: POST /records,
    /// GET /ledger. Prints its address first; stops on Ctrl-C or SIGTERM.
    #[command(after_help = EXIT_CODES)]
    MockApi(MockApiArgs),
    /// Write NDJSON records from the stream simulator (bad data included)
    /// to stdout, for `sluice run --input -`.
    #[command(after_help = EXIT_CODES)]
    Generate(GenerateArgs),
    /// Write the completion script of a shell to stdout.
    #[command(after_help = COMPLETIONS_AFTER_HELP)]
    Completions(CompletionsArgs),
    /// Write the manual page (roff) of sluice to stdout, or every page
    /// into a directory.
    #[command(after_help = MAN_AFTER_HELP)]
    Man(ManArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `args` parse and pass [`Cli::validate`].
    fn accepted(args: &[&str]) -> bool {
        Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))
            .and_then(|cli| cli.validate())
            .is_ok()
    }

    #[test]
    fn verbose_counts_and_quiet_are_taken_at_any_level() {
        for (args, verbose) in [
            (&["sluice", "man"][..], 0),
            (&["sluice", "-v", "man"], 1),
            (&["sluice", "-vv", "man"], 2),
            (&["sluice", "man", "-vvv"], 3),
            (&["sluice", "-v", "-v", "man"], 2),
        ] {
            let cli = Cli::try_parse_from(args).expect("valid");
            assert_eq!(cli.verbose, verbose, "{args:?}");
            assert!(!cli.quiet);
        }
        let cli = Cli::try_parse_from(["sluice", "man", "--quiet"]).expect("valid");
        assert!(cli.quiet);
        assert!(accepted(&["-q", "man"]) && accepted(&["-v", "man"]));
    }

    #[test]
    fn quiet_and_verbose_are_refused_together_wherever_they_are() {
        for args in [
            &["-q", "-v", "man"][..],
            &["man", "-qv"],
            &["-v", "man", "--quiet"],
            &["-q", "man", "-vv"],
        ] {
            assert!(!accepted(args), "{args:?} accepted");
        }
    }
}
