//! The `sluice completions` command: a shell's completion script, made by
//! clap_complete from the very flags `sluice` parses, on stdout.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs};

/// Runs `sluice completions` with `args`; its exit code.
pub fn run(args: &CompletionsArgs) -> ExitCode {
    super::write_stdout(&script(args.shell), "the completion script")
}

/// The completion script of `sluice` for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    // clap_complete panics when its writer fails: a buffer cannot, and
    // the script goes to stdout afterwards, where failing is reported.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    script
}
