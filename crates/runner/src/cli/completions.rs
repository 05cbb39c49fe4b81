//! Flags of `sluice completions`.

use clap::Args;
use clap_complete::Shell;

/// What `sluice completions --help` ends with: where each shell looks.
pub const COMPLETIONS_AFTER_HELP: &str = "Exit codes:
  0  the script was written
  1  it could not be written
  2  the shell is not one of those listed

Examples:
  sluice completions bash > ~/.local/share/bash-completion/completions/sluice
  sluice completions zsh > ~/.zfunc/_sluice     # fpath=(~/.zfunc $fpath) before compinit
  sluice completions fish > ~/.config/fish/completions/sluice.fish";

/// Flags of `sluice completions`: the completion script of one shell.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete `sluice` in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}
