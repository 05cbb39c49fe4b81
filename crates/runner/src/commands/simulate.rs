//! The `sluice simulate` command: a run against the simulated sources and
//! API, judged against the original test's thresholds.

use std::io::IsTerminal;
use std::process::ExitCode;

use sluice_sim::simulation::{self, SimulationError};

use crate::cli::SimulateArgs;
use crate::render;
use crate::status::StatusLine;

/// Runs `sluice simulate` with `args`; its exit code.
pub fn run(args: &SimulateArgs) -> ExitCode {
    let config = match args.to_checked_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("sluice: {message}");
            return ExitCode::from(2);
        }
    };
    let live = !args.json && std::io::stderr().is_terminal();
    if !args.json {
        println!("{}", render::banner(&config));
    }
    let virtual_time = config.virtual_time;
    let mut status = StatusLine::new();
    let result = simulation::run_blocking(
        &config,
        |metrics| {
            if live {
                status.draw(metrics);
            }
        },
        // Ctrl-C cuts a real-time run short; a virtual minute takes
        // milliseconds, and tests run many at once.
        move || async move {
            if virtual_time || tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        },
    );
    if live {
        crate::status::hide();
    }
    let run = match result {
        Ok(run) => run,
        Err(error) => {
            eprintln!("sluice: {error}");
            return match error {
                SimulationError::Runtime(_) | SimulationError::Streams(_) => ExitCode::FAILURE,
                SimulationError::Simulator(_) | SimulationError::Processor(_) => ExitCode::from(2),
            };
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&run) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("sluice: could not write the report as JSON: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", render::report(&run));
    }
    if run.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
