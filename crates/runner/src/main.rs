//! The `sluice` binary.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{Cli, Command, GenerateArgs, MockApiArgs, SimulateArgs};
use sluice::render;
use sluice::simulation::{self, SimulationError};
use tracing_subscriber::EnvFilter;

/// The pipeline allocates and frees every record's JSON payload on
/// different threads; mimalloc does that about 30 % faster than the system
/// allocator here (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Simulate(args) => simulate(&args),
        Command::Generate(args) => generate(&args),
        Command::MockApi(args) => mock_api(&args),
        Command::Run(args) => sluice::run_command::run(&args),
    }
}

fn mock_api(args: &MockApiArgs) -> ExitCode {
    let config = args.to_config();
    if let Err(error) = config.validate() {
        eprintln!(
            "sluice: --{}: {error}",
            error
                .field()
                .split('.')
                .next()
                .unwrap_or("")
                .replace('_', "-")
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sluice: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("sluice: --listen {}: {error}", args.listen);
                return ExitCode::from(2);
            }
        };
        let handle = match sluice_mock_api::serve(config, listener).await {
            Ok(handle) => handle,
            Err(error) => {
                eprintln!("sluice: {error}");
                return ExitCode::FAILURE;
            }
        };
        // The address first, alone on its line, for scripts.
        println!("{}", handle.local_addr());
        let _ = std::io::stdout().flush();
        sluice::signals::first().await;
        match handle.shutdown().await {
            Ok(ledger) => {
                eprintln!(
                    "sluice mock-api: {} calls, {} successes ({} records), {} failures, {} refused",
                    ledger.counts.calls,
                    ledger.counts.successes,
                    ledger.counts.records_delivered,
                    ledger.counts.failures,
                    ledger.counts.rate_limit_hits
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("sluice: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

fn generate(args: &GenerateArgs) -> ExitCode {
    let config = match args.to_stream_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("sluice: {message}");
            return ExitCode::from(2);
        }
    };
    let target = match args.nats_target() {
        Ok(target) => target,
        Err(message) => {
            eprintln!("sluice: {message}");
            return ExitCode::from(2);
        }
    };
    let written = match target {
        Some(target) => publish(config, args, &target),
        None => sluice::generate::write_records(
            config,
            args.records,
            args.invalid_rate,
            std::io::stdout().lock(),
        ),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(sluice::generate::GenerateError::Write(error))
            if error.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            // The reader stopped reading (`sluice generate | head`): not a failure.
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sluice: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `sluice generate --to nats://...`: publishes, then says how many.
fn publish(
    config: sluice_sim::StreamConfig,
    args: &GenerateArgs,
    target: &sluice::generate::NatsTarget,
) -> Result<(), sluice::generate::GenerateError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stored = runtime.block_on(sluice::generate::publish_records(
        config,
        args.records,
        args.invalid_rate,
        target,
    ))?;
    eprintln!(
        "sluice: {stored} records stored in JetStream stream `{}`",
        target.stream
    );
    Ok(())
}

fn simulate(args: &SimulateArgs) -> ExitCode {
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
    let result = simulation::run_blocking(&config, |metrics| {
        if live {
            eprint!("\r{}", render::status_line(metrics));
            let _ = std::io::stderr().flush();
        }
    });
    if live {
        eprint!("\r\x1b[2K");
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
