//! One module per subcommand: each turns its parsed flags into the work,
//! prints what it did and returns the exit code.

pub mod check;
pub mod completions;
pub mod generate;
pub mod man;
pub mod mock_api;
pub mod run;
pub mod simulate;

use std::io::{ErrorKind, Write};
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

/// Writes `bytes`, which are `what`, to stdout; the exit code to end with.
/// A closed stdout (`| head`) took what it wanted: that is a success.
pub(crate) fn write_stdout(bytes: &[u8], what: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice: could not write {what}: {error}");
            ExitCode::FAILURE
        }
    }
}
