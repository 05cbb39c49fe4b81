//! One module per subcommand: each turns its parsed flags into the work,
//! prints what it did and returns the exit code.

pub mod check;
pub mod generate;
pub mod mock_api;
pub mod run;
pub mod simulate;

use std::process::ExitCode;

/// A tokio runtime for a command: on all cores, or on this thread alone.
///
/// # Errors
/// When the runtime cannot be built, says so on stderr and returns the
/// exit code to end with.
pub(crate) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|error| {
        eprintln!("sluice: could not start the async runtime: {error}");
        ExitCode::FAILURE
    })
}
