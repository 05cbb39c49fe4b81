//! The `sluice run` command: its settings, the runtime, signals, the
//! status line, the report and the exit code. The pipeline itself is
//! `sluice-pipeline`'s.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use sluice_pipeline::{
    ConfigLayers, Connectors, Hooks, Pipeline, PipelineError, RunSummary, effective_config,
};

use crate::cli::{RunArgs, RunConfig};
use crate::signals::Signals;
use crate::status::StatusLine;

/// Exit code of a run that did its job: every record delivered or
/// dead-lettered.
pub const EXIT_DONE: u8 = 0;
/// Exit code of a run that ended with records not processed, or failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a setting, input or checkpoint that cannot be used.
pub const EXIT_SETTING: u8 = 2;
/// Exit code when a signal stopped the run: records not processed were
/// handed back and stay past the checkpoint, for the next run.
pub const EXIT_INTERRUPTED: u8 = 3;
/// Exit code of a run that dead-lettered more records than
/// `--max-dead-letters` allows: every record is accounted for, and the
/// letters are in the file the report names.
pub const EXIT_DEAD_LETTERS: u8 = 4;
/// Exit code of a run the API stopped by saying, call after call, that
/// the client is misconfigured (401, 403, 404, 405, a redirect): nothing
/// was dead-lettered for it, and what was not delivered stays past the
/// checkpoint for a run with the right URL or credentials.
pub const EXIT_API_REFUSED: u8 = 5;

/// Runs `sluice run` with `args` and says how it went, as an exit code.
/// When `quiet`, no live status line, no notes, and no human report of a
/// run that did its job: errors, where the dead letters are, the report of
/// a run that did not (it says why) and the `--json` report still show.
pub fn run(args: &RunArgs, quiet: bool) -> ExitCode {
    let connectors = Connectors::builtin();
    let layers = match args.layers(&connectors, std::env::vars()) {
        Ok(layers) => layers,
        Err(error) => return fail(&error, None),
    };
    let config: RunConfig = match layers.load() {
        Ok(config) => config,
        Err(error) => return fail(&error, Some(&layers)),
    };
    if args.print_config {
        return print_config(&config, &connectors, &layers);
    }
    let runtime = match super::runtime(true) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let live = !quiet && !config.json && std::io::stderr().is_terminal();
    let outcome = runtime.block_on(async {
        let pipeline = Pipeline::build(&config.pipeline, &connectors).await?;
        if let Some(note) = pipeline.ordering_note().filter(|_| !quiet) {
            eprintln!("sluice: {note}");
        }
        let signals = Signals::install();
        let mut status = StatusLine::new();
        let hooks = Hooks {
            // Drawn over itself at the terminal's width; the log erases it
            // before a line of its own (status::LogWriter).
            on_status: move |metrics: &sluice_processor::MetricsSnapshot| {
                if live {
                    status.draw(metrics);
                }
            },
            stop: signals.clone().nth(1),
            abort: signals.nth(2),
        };
        pipeline.run(hooks).await
    });
    if live {
        crate::status::hide();
    }
    match outcome {
        Ok(summary) => {
            // Quiet, a run that did its job says nothing; one that did
            // not still says why in its report.
            let code = exit_code(&summary);
            if config.json || !quiet || code != EXIT_DONE {
                print_summary(&summary, config.json);
            }
            tell_where_letters_are(&summary);
            ExitCode::from(code)
        }
        Err(error) => fail(&error, Some(&layers)),
    }
}

/// The exit code of a run that ended so.
pub fn exit_code(summary: &RunSummary) -> u8 {
    if summary.halted.is_some() {
        EXIT_API_REFUSED
    } else if summary.interrupted {
        EXIT_INTERRUPTED
    } else if !summary.is_complete() {
        EXIT_FAILED
    } else if summary.too_many_dead_letters.is_some() {
        EXIT_DEAD_LETTERS
    } else {
        EXIT_DONE
    }
}

/// Says why the run could not start or finish, and where the setting at
/// fault came from; its exit code.
fn fail(error: &PipelineError, layers: Option<&ConfigLayers>) -> ExitCode {
    let origin = error
        .key()
        .zip(layers)
        .and_then(|(key, layers)| layers.origin(key));
    match origin {
        Some(origin) => eprintln!("sluice: {error} (set by {origin})"),
        None => eprintln!("sluice: {error}"),
    }
    ExitCode::from(if error.is_setting() {
        EXIT_SETTING
    } else {
        EXIT_FAILED
    })
}

/// `--print-config`: the effective configuration as TOML.
fn print_config(config: &RunConfig, connectors: &Connectors, layers: &ConfigLayers) -> ExitCode {
    match effective_config(&config.pipeline, connectors) {
        Ok(mut table) => {
            table.insert("json".to_owned(), toml::Value::Boolean(config.json));
            // A closed stdout (`| head`) is not the configuration's fault.
            let _ = write!(std::io::stdout().lock(), "{table}");
            ExitCode::from(EXIT_DONE)
        }
        Err(error) => fail(&error, Some(layers)),
    }
}

/// Says on stderr where the run's dead letters are, when it wrote any,
/// and which inputs could not be read.
fn tell_where_letters_are(summary: &RunSummary) {
    if let Some(halted) = &summary.halted {
        eprintln!(
            "sluice: stopped sending: {halted}. Nothing was dead-lettered for it; fix the URL or the credentials and run again"
        );
    }
    for failure in &summary.read_failures {
        eprintln!("sluice: reading failed: {failure}; the records after it were not read");
    }
    if summary.dead_lettered == 0 {
        return;
    }
    match &summary.dead_letter_file {
        Some(file) => eprintln!(
            "sluice: {} record(s) dead-lettered; the letters are in {}",
            summary.dead_lettered,
            file.display()
        ),
        None => eprintln!(
            "sluice: {} record(s) dead-lettered and discarded (--dead-letters none)",
            summary.dead_lettered
        ),
    }
}

/// Prints the report; a closed stdout (`| true`) loses the report, not the
/// run's exit code.
fn print_summary(summary: &RunSummary, json: bool) {
    let text = if json {
        match serde_json::to_string_pretty(summary) {
            Ok(text) => text + "\n",
            Err(error) => {
                eprintln!("sluice: could not write the report as JSON: {error}");
                return;
            }
        }
    } else {
        crate::render::run_summary(summary)
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
