//! `cargo xtask acceptance`: the 10-second check in real time, held to the
//! original test's thresholds and to this project's targets, and the eleven
//! validation cases.

use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use sluice_models::{ModelError, ProcessedRecord};

use crate::util::{build_release_sluice, root, verdict};

/// Flags of `cargo xtask acceptance`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the run's JSON object on stdout (the checks go to stderr).
    #[arg(long)]
    json: bool,
    /// The run's seed (default: drawn by sluice and reported).
    #[arg(long)]
    seed: Option<u64>,
}

/// Runs the acceptance check; `Ok(false)` when a check fails.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    let sluice = build_release_sluice()?;
    let mut command = Command::new(&sluice);
    command.args(["simulate", "--json"]);
    if let Some(seed) = args.seed {
        command.args(["--seed", &seed.to_string()]);
    }
    eprintln!(
        "running the 10-second check in real time: {}",
        describe(&command)
    );
    let output = command
        .output()
        .with_context(|| format!("could not run {}", sluice.display()))?;
    let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "sluice did not print a JSON report (exit {}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }

    let mut lines = vec![format!(
        "seed {}: delivered {} of {} possible, {} calls, {} refused",
        report["seed"],
        report["delivered"],
        ceiling(&report),
        report["attempts"],
        report["rate_limit_hits"]
    )];
    let mut all_passed = true;
    for (passed, name, detail) in run_checks(&report)
        .into_iter()
        .chain(validation_case_checks()?)
    {
        all_passed &= passed;
        lines.push(verdict(passed, &name, &detail));
    }
    lines.push(if all_passed {
        "acceptance: PASS".to_owned()
    } else {
        "acceptance: FAIL".to_owned()
    });
    for line in lines {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(all_passed)
}

fn describe(command: &Command) -> String {
    let args: Vec<_> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        args.join(" ")
    )
}

fn ceiling(report: &Value) -> f64 {
    report["api_rate_limit"].as_f64().unwrap_or(0.0) * report["duration_s"].as_f64().unwrap_or(0.0)
}

/// The original's thresholds and this project's targets.
fn run_checks(report: &Value) -> Vec<(bool, String, String)> {
    let number = |field: &str| report[field].as_f64().unwrap_or(f64::NAN);
    let count = |field: &str| report[field].as_u64().unwrap_or(u64::MAX);
    let exact = |name: &str| {
        report["accuracy"]["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|check| check["name"] == name && check["exact"] == true)
    };
    let attempts = count("attempts");
    let hits = count("rate_limit_hits");
    let check = |passed: bool, name: &str, detail: String| (passed, name.to_owned(), detail);
    vec![
        check(
            number("processing_rate_per_second") >= 5.0,
            "original: processing rate >= 5/s",
            format!("{:.2}/s", number("processing_rate_per_second")),
        ),
        check(
            number("error_rate") <= 0.30,
            "original: error rate <= 30%",
            format!("{:.1}%", number("error_rate") * 100.0),
        ),
        check(
            count("backlog_size") <= 100,
            "original: final backlog <= 100",
            count("backlog_size").to_string(),
        ),
        check(
            number("metrics_accuracy") >= 0.75,
            "original: metric accuracy >= 3 of 4",
            format!("{:.0} of 4", number("metrics_accuracy") * 4.0),
        ),
        check(
            number("ceiling_utilization") >= 0.98,
            "target: ceiling utilization >= 0.98",
            format!(
                "{:.3} ({} of {})",
                number("ceiling_utilization"),
                count("delivered"),
                ceiling(report)
            ),
        ),
        check(
            hits.saturating_mul(100) <= attempts,
            "target: rate-limit hits <= 1% of attempts",
            format!("{hits} of {attempts}"),
        ),
        check(
            count("lost") == 0 && count("duplicates") == 0 && count("order_violations") == 0,
            "target: lost = duplicates = order violations = 0",
            format!(
                "{} / {} / {}",
                count("lost"),
                count("duplicates"),
                count("order_violations")
            ),
        ),
        check(
            report["conserved"] == true,
            "target: ingested = delivered + dead-lettered + handed back",
            format!(
                "{} = {} + {} + {}",
                count("ingested"),
                count("delivered"),
                count("dead_lettered"),
                count("handed_back")
            ),
        ),
        check(
            number("metrics_accuracy") == 1.0
                && ["total_processed", "error_rate", "rate_limit_hits"]
                    .iter()
                    .all(|n| exact(n)),
            "target: metric accuracy 4 of 4 with exact counts",
            format!(
                "{:.0} of 4, counts exact: {}",
                number("metrics_accuracy") * 4.0,
                exact("total_processed")
            ),
        ),
    ]
}

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    expect_valid: bool,
    field: Option<String>,
    record: Value,
}

/// The eleven validation cases, through `ProcessedRecord::parse_json`.
fn validation_case_checks() -> anyhow::Result<Vec<(bool, String, String)>> {
    let path = root().join("crates/models/tests/data/validation_cases.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let cases: Cases = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a case file", path.display()))?;
    if cases.cases.len() != 11 {
        bail!(
            "{} holds {} cases, expected 11",
            path.display(),
            cases.cases.len()
        );
    }
    Ok(cases
        .cases
        .into_iter()
        .map(|case| {
            let outcome = ProcessedRecord::parse_json(&case.record.to_string());
            let (passed, detail) = match (&outcome, case.expect_valid, &case.field) {
                (Ok(_), true, _) => (true, "valid".to_owned()),
                (Err(error @ ModelError::Invalid { .. }), false, Some(field)) => (
                    error.fields() == [field.as_str()],
                    format!("invalid: {error}"),
                ),
                (outcome, expected, _) => {
                    (false, format!("expected valid={expected}, got {outcome:?}"))
                }
            };
            (passed, format!("validation case {}", case.name), detail)
        })
        .collect())
}
