//! The `sluice man` command: the manual pages, rendered as roff by
//! clap_mangen from the very flags `sluice` parses; `sluice.1` on stdout,
//! or every page into a directory.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_mangen::Man;

use crate::cli::{Cli, ManArgs};

/// Runs `sluice man` with `args`; its exit code.
pub fn run(args: &ManArgs) -> ExitCode {
    match &args.dir {
        None => {
            let mut roff = Vec::new();
            match manual(command()).render(&mut roff) {
                Ok(()) => super::write_stdout(&roff, "the manual page"),
                Err(error) => {
                    eprintln!("sluice: could not render the manual page: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(dir) => match write_pages(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(code) => code,
        },
    }
}

/// `sluice`'s command as its pages describe it: no `help` subcommand,
/// which has no page of its own (`--help` is on every page).
fn command() -> clap::Command {
    Cli::command().disable_help_subcommand(true)
}

/// The manual page of `command`, every page's footer naming sluice and
/// its version (a subcommand has no version of its own).
fn manual(command: clap::Command) -> Man {
    Man::new(command).source(format!("sluice {}", env!("CARGO_PKG_VERSION")))
}

/// Writes `sluice.1` and one page per visible subcommand, at any depth,
/// into `dir` (created if missing), naming each file on stdout.
///
/// # Errors
/// When the directory or a page cannot be written: says so on stderr and
/// returns the exit code to end with.
fn write_pages(dir: &Path) -> Result<(), ExitCode> {
    if let Err(error) = std::fs::create_dir_all(dir) {
        eprintln!("sluice: could not create {}: {error}", dir.display());
        return Err(ExitCode::FAILURE);
    }
    let mut root = command();
    // Built, subcommands know their display names (`sluice-run`), which
    // name their pages.
    root.build();
    let mut pending = VecDeque::from([root]);
    while let Some(command) = pending.pop_front() {
        pending.extend(
            command
                .get_subcommands()
                .filter(|subcommand| !subcommand.is_hide_set())
                .cloned(),
        );
        let page = manual(command);
        let path = dir.join(page.get_filename());
        if let Err(error) = page.generate_to(dir) {
            eprintln!("sluice: could not write {}: {error}", path.display());
            return Err(ExitCode::FAILURE);
        }
        // A closed stdout loses the list, not the pages.
        let _ = writeln!(std::io::stdout().lock(), "{}", path.display());
    }
    Ok(())
}
