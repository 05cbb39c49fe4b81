//! The `sluice` binary, end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

#[test]
fn a_virtual_time_run_prints_the_required_json_fields_and_replays_exactly() {
    let args = [
        "simulate",
        "--virtual-time",
        "--seed",
        "1",
        "--duration",
        "60s",
        "--json",
    ];
    let first = sluice(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report = json(&first);
    for field in [
        "duration_s",
        "offered",
        "ingested",
        "delivered",
        "dead_lettered",
        "handed_back",
        "attempts",
        "failed_calls",
        "rate_limit_hits",
        "processing_rate_per_second",
        "avg_processing_time_ms",
        "p50_latency_ms",
        "p99_latency_ms",
        "error_rate",
        "backlog_size",
        "ceiling_utilization",
        "lost",
        "duplicates",
        "order_violations",
        "metrics_accuracy",
        "passed",
    ] {
        assert!(report.get(field).is_some(), "missing {field}");
    }
    assert_eq!(report["duration_s"], 60.0);
    assert_eq!(report["passed"], true);
    assert_eq!(first.stdout, sluice(&args).stdout, "same seed, same output");
}

#[test]
fn the_human_report_keeps_the_original_seven_lines_in_order() {
    let output = sluice(&["simulate", "--virtual-time", "--seed", "2"]);
    let text = String::from_utf8(output.stdout).unwrap();
    let prefixes = [
        "✅ Processing completed!",
        "📈 Total processed: ",
        "⚡ Processing rate: ",
        "🕐 Avg processing time: ",
        "❌ Error rate: ",
        "📦 Final backlog: ",
        "🚦 Rate limit hits: ",
    ];
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with(prefixes[0]))
        .take(7)
        .collect();
    assert_eq!(lines.len(), 7, "{text}");
    for (line, prefix) in lines.iter().zip(prefixes) {
        assert!(
            line.starts_with(prefix),
            "{line:?} should start with {prefix:?}"
        );
    }
    assert!(text.contains("Conservation: ingested"));
    assert!(text.contains("🎉 All performance requirements met!"));
    assert!(output.status.success());
}

#[test]
fn an_api_that_always_fails_ends_without_panic_and_without_loss() {
    let output = sluice(&[
        "simulate",
        "--virtual-time",
        "--failure-rate",
        "1",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "the run completes but fails its checks"
    );
    let report = json(&output);
    assert_eq!(report["delivered"], 0);
    assert_eq!(report["lost"], 0);
    let ingested = report["ingested"].as_u64().unwrap();
    let accounted =
        report["dead_lettered"].as_u64().unwrap() + report["handed_back"].as_u64().unwrap();
    assert_eq!(ingested, accounted);
}

#[test]
fn a_bad_flag_value_gets_a_clear_message_and_exit_code_2() {
    for (args, expected) in [
        (&["simulate", "--failure-rate", "2"][..], "--failure-rate"),
        (
            &["simulate", "--sources", "nope"][..],
            "unknown data source",
        ),
        (&["simulate", "--duration", "forever"][..], "--duration"),
        (&["simulate", "--no-such-flag"][..], "--no-such-flag"),
        (&["launch"][..], "unrecognized subcommand"),
    ] {
        let output = sluice(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty());
    }
}
