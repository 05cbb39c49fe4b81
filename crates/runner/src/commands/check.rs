//! The `sluice check` command: what `run` would use, checked without
//! reading or sending a record.

use std::io::Write;
use std::process::ExitCode;

use sluice_pipeline::{Connectors, check};

use crate::cli::{RunArgs, RunConfig};
use crate::commands::run::{EXIT_DONE, EXIT_SETTING};

/// Runs `sluice check` with `args` (the flags of `run`): prints one line
/// per thing checked, exits 0 when all can be used and 2 otherwise.
pub fn run(args: &RunArgs) -> ExitCode {
    let connectors = Connectors::builtin();
    let loaded = args
        .layers(&connectors, std::env::vars())
        .and_then(|layers| layers.load::<RunConfig>());
    let config = match loaded {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sluice: ✗ settings: {error}");
            return ExitCode::from(EXIT_SETTING);
        }
    };
    let runtime = match super::runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let checked = runtime.block_on(check(&config.pipeline, &connectors));
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for item in &checked {
        // A closed stdout loses the lines, not the verdict.
        let _ = match &item.outcome {
            Ok(found) => writeln!(out, "✓ {}: {found}", item.what),
            Err(error) => {
                failed += 1;
                writeln!(out, "✗ {}: {error}", item.what)
            }
        };
    }
    if failed == 0 {
        let _ = writeln!(out, "sluice check: everything a run would use is usable");
        ExitCode::from(EXIT_DONE)
    } else {
        eprintln!("sluice check: {failed} problem(s); fix them and check again");
        ExitCode::from(EXIT_SETTING)
    }
}
