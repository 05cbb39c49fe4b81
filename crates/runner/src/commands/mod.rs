//! One module per subcommand: each turns its parsed flags into the work,
//! prints what it did and returns the exit code.

pub mod generate;
pub mod mock_api;
pub mod run;
pub mod simulate;
