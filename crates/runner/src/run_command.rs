//! The `sluice run` command: runtime, signals, status line, report, exit
//! code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use crate::cli::RunSettings;
use crate::pipeline::{self, Hooks, RunError, RunSummary};
use crate::signals::Signals;

/// Exit code when a signal stopped the run: records not processed were
/// handed back and stay past the checkpoint, for the next run.
pub const EXIT_INTERRUPTED: u8 = 3;

/// Runs `settings` and says how it went, as an exit code.
pub fn run(settings: &RunSettings) -> ExitCode {
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
    let live = !settings.json && std::io::stderr().is_terminal();
    let outcome = runtime.block_on(async {
        let signals = Signals::install();
        let hooks = Hooks {
            on_status: |metrics: &sluice_processor::MetricsSnapshot| {
                if live {
                    eprint!("\r{}", crate::render::status_line(metrics));
                    let _ = std::io::stderr().flush();
                }
            },
            stop: Box::pin(signals.clone().nth(1))
                as std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
            abort: Box::pin(signals.nth(2)),
        };
        pipeline::run(settings, hooks).await
    });
    if live {
        eprint!("\r\x1b[2K");
    }
    match outcome {
        Ok(summary) => {
            print_summary(&summary, settings.json);
            if summary.interrupted {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if summary.conserved && summary.handed_back == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(RunError::Setting(message)) => {
            eprintln!("sluice: {message}");
            ExitCode::from(2)
        }
        Err(RunError::Failed(message)) => {
            eprintln!("sluice: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_summary(summary: &RunSummary, json: bool) {
    if json {
        match serde_json::to_string_pretty(summary) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("sluice: could not write the report as JSON: {error}"),
        }
        return;
    }
    let s = summary;
    println!(
        "{} sluice run {}",
        if s.interrupted { "⏹️" } else { "✅" },
        if s.interrupted {
            "stopped by a signal"
        } else {
            "finished"
        }
    );
    println!(
        "⚖️  ingested {} = delivered {} + dead-lettered {} + handed back {}{}",
        s.ingested,
        s.delivered,
        s.dead_lettered,
        s.handed_back,
        if s.conserved { "" } else { "  (VIOLATED)" }
    );
    println!(
        "📞 API calls: {} ({} failed, {} refused); {:.1} records/s over {:.1}s",
        s.calls, s.failed_calls, s.rate_limit_hits, s.delivered_per_second, s.elapsed_seconds
    );
    println!(
        "⏱️  latency, intake to delivery: p50 {:.1}ms, p99 {:.1}ms",
        s.p50_latency_ms, s.p99_latency_ms
    );
    for (reason, count) in &s.dead_letter_reasons {
        println!("🪦 dead-lettered ({reason}): {count}");
    }
    for (file, offset, lines) in &s.checkpoints {
        println!(
            "📌 checkpoint of {}: byte {offset}, line {lines}",
            file.display()
        );
    }
    for failure in &s.failures {
        println!("💥 {failure}");
    }
}
