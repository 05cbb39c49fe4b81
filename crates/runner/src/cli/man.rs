//! Flags of `sluice man`.

use std::path::PathBuf;

use clap::Args;

/// What `sluice man --help` ends with.
pub const MAN_AFTER_HELP: &str = "Exit codes:
  0  the page(s) were written
  1  a page could not be written

Examples:
  sluice man > ~/.local/share/man/man1/sluice.1
  sluice man --dir ~/.local/share/man/man1      # sluice.1, sluice-run.1, ...";

/// Flags of `sluice man`: the manual page of `sluice` on stdout, or the
/// pages of `sluice` and of each subcommand in a directory.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `sluice.1` and one page per subcommand (`sluice-run.1`, ...)
    /// into this directory, created if missing, and list them on stdout;
    /// without it, `sluice.1` alone goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
