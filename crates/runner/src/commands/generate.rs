//! The `sluice generate` command: the simulator's records as NDJSON on
//! stdout, or loaded into a JetStream stream.

use std::process::ExitCode;

use sluice_nats::{JetStreamPublisher, StreamTarget};
use sluice_sim::ndjson::{GenerateError, lines, write_records};

use crate::cli::GenerateArgs;

/// Runs `sluice generate` with `args`; its exit code.
pub fn run(args: &GenerateArgs) -> ExitCode {
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
    match target {
        Some(target) => publish(config, args, &target),
        None => write(config, args),
    }
}

/// Writes the records to stdout.
fn write(config: sluice_sim::StreamConfig, args: &GenerateArgs) -> ExitCode {
    match write_records(
        config,
        args.records,
        args.invalid_rate,
        std::io::stdout().lock(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(GenerateError::Write(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
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
    target: &StreamTarget,
) -> ExitCode {
    let records = match lines(config, args.records, args.invalid_rate) {
        Ok(records) => records.map(|generated| {
            let text = String::from_utf8_lossy(&generated.line).into_owned();
            (generated.stream, generated.partition, text)
        }),
        Err(error) => {
            eprintln!("sluice: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match super::runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(JetStreamPublisher::load(target, records)) {
        Ok(stored) => {
            eprintln!(
                "sluice: {stored} records stored in JetStream stream `{}`",
                target.stream
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sluice: could not publish the records: {error}");
            if !target.create_stream {
                eprintln!("sluice: add --create-stream to create a missing stream");
            }
            ExitCode::FAILURE
        }
    }
}
