//! The `sluice mock-api` command: serves the original test's API over HTTP
//! until a signal, then prints the ledger's counts.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::MockApiArgs;

/// Runs `sluice mock-api` with `args`; its exit code.
pub fn run(args: &MockApiArgs) -> ExitCode {
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
    let runtime = match super::runtime(true) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("sluice: --listen {}: {error}", args.listen);
                return ExitCode::from(2);
            }
        };
        let handle = match sluice_mock_api::serve_with(config, args.stale_leases(), listener).await
        {
            Ok(handle) => handle,
            Err(error) => {
                eprintln!("sluice: {error}");
                return ExitCode::FAILURE;
            }
        };
        // The address first, alone on its line, for scripts.
        println!("{}", handle.local_addr());
        let _ = std::io::stdout().flush();
        crate::signals::first().await;
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
