//! The sluice command line: flags ([`cli`]), one module per subcommand
//! ([`commands`]: the work, the report, the exit code), the human-readable
//! reports ([`render`]), signals ([`signals`]) and the log filter
//! ([`logging`]).
//!
//! The work itself is the libraries': `sluice run` is `sluice-pipeline`'s
//! pipeline, `sluice simulate` and `sluice generate` are `sluice-sim`'s,
//! `sluice mock-api` is `sluice-mock-api`'s server.

pub mod cli;
pub mod commands;
pub mod logging;
pub mod render;
pub mod signals;
pub mod status;
