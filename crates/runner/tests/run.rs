//! `sluice run` as users run it: `sluice generate` files, `sluice mock-api`
//! and scripted APIs on 127.0.0.1, real processes and signals. Each test
//! bounds its waits; none asserts a duration but the pause a Retry-After
//! asks for (a lower bound the client cannot beat).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::{
    MockApi, delivered_counts, eventually, expected, generate, report, signal, sluice, start_run,
    wait_bounded,
};

#[test]
fn after_kill_9_a_restart_from_the_checkpoint_delivers_the_rest_repeating_only_keys_already_sent() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockApi::start(&["--rate-limit", "200/s"]);
    let input = generate(dir.path(), "records.ndjson", 3_000, 8);
    let checkpoint = dir.path().join("records.checkpoint.json");
    let dead = dir.path().join("dead.ndjson");
    let run = || {
        start_run(
            &input,
            &api,
            "200/s",
            &[
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--dead-letters",
                dead.to_str().unwrap(),
            ],
        )
    };
    let first = run();
    eventually(Duration::from_secs(60), "600 delivered", || {
        api.counts().records_delivered >= 600
    });
    signal(&first, "-9");
    let killed = wait_bounded(first, Duration::from_secs(10));
    assert!(!killed.status.success());
    assert!(
        checkpoint.exists(),
        "a checkpoint was written before the kill"
    );

    let output = wait_bounded(run(), Duration::from_secs(120));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let (valid, _) = expected(&input);
    let counts = delivered_counts(&api);
    let missing: Vec<_> = valid
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicated: Vec<_> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        duplicated.len() <= 1_000,
        "{} duplicates, queue capacity 1000",
        duplicated.len()
    );
    common::sent_again_under_the_same_key(&api, duplicated);
}

#[test]
fn sigint_stops_with_a_report_and_a_checkpoint_and_a_restart_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockApi::start(&["--rate-limit", "100/s"]);
    let input = generate(dir.path(), "records.ndjson", 2_000, 9);
    let checkpoint = dir.path().join("cp.json");
    let dead = dir.path().join("dead.ndjson");
    let run = || {
        start_run(
            &input,
            &api,
            "100/s",
            &[
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--dead-letters",
                dead.to_str().unwrap(),
            ],
        )
    };
    let first = run();
    eventually(Duration::from_secs(60), "200 delivered", || {
        api.counts().records_delivered >= 200
    });
    signal(&first, "-INT");
    let stopped = wait_bounded(first, Duration::from_secs(30));
    assert_eq!(
        stopped.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let stop_report = report(&stopped);
    assert_eq!(stop_report["interrupted"], true);
    assert_eq!(stop_report["conserved"], true);
    assert!(stop_report["handed_back"].as_u64().unwrap() > 0);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    assert!(saved["offset"].as_u64().unwrap() > 0);

    let output = wait_bounded(run(), Duration::from_secs(120));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (valid, _) = expected(&input);
    let counts = delivered_counts(&api);
    assert!(
        valid.iter().all(|id| counts.contains_key(id)),
        "nothing lost"
    );
    // The checkpoint holds what was resolved past its watermark: nothing
    // delivered before the stop is sent again, no letter written twice.
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered again: {twice:?}");
    let letters = common::dead_letters(&dead);
    let unique: std::collections::BTreeSet<_> = letters.iter().collect();
    assert!(!letters.is_empty());
    assert_eq!(unique.len(), letters.len(), "a letter written twice");
}

#[test]
fn the_readme_demo_works_as_written() {
    let api = MockApi::start(&[]);
    let pipeline = format!(
        "{bin} generate --records 100 | {bin} run - --http-url {url} --json",
        bin = env!("CARGO_BIN_EXE_sluice"),
        url = api.url()
    );
    // Its dead letters go to ./sluice.dead-letters: a directory of its own.
    let cwd = tempfile::tempdir().unwrap();
    let output = shell(&pipeline, cwd.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&output);
    assert_eq!(report["ingested"], 100);
    assert_eq!(report["conserved"], true);
    assert_eq!(
        report["delivered"].as_u64().unwrap() + report["dead_lettered"].as_u64().unwrap(),
        100
    );
    assert_eq!(
        api.ledger().counts.records_delivered,
        report["delivered"].as_u64().unwrap()
    );
    // Without --dead-letters, the letters are in the default file, which
    // the report and stderr name.
    let dead = report["dead_lettered"].as_u64().unwrap();
    assert!(dead > 0, "the generator writes bad records");
    assert_eq!(report["dead_letter_file"], "sluice.dead-letters");
    let letters = std::fs::read_to_string(cwd.path().join("sluice.dead-letters")).unwrap();
    assert_eq!(letters.lines().count() as u64, dead);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the letters are in sluice.dead-letters"),
        "{stderr}"
    );
    // Past --max-dead-letters the run fails, with its own exit code.
    let strict = format!(
        "{bin} generate --records 100 | {bin} run - --http-url {url} --max-dead-letters 0 --dead-letters none",
        bin = env!("CARGO_BIN_EXE_sluice"),
        url = api.url()
    );
    let output = shell(&strict, cwd.path());
    assert_eq!(output.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&output.stdout).contains("more than --max-dead-letters 0"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("discarded"));

    // `simulate --json` names the facts it shares with `run --json` alike.
    let simulated = sluice()
        .args(["simulate", "--virtual-time", "--seed", "3", "--json"])
        .output()
        .unwrap();
    let simulated: serde_json::Value = serde_json::from_slice(&simulated.stdout).unwrap();
    for shared in [
        "ingested",
        "delivered",
        "dead_lettered",
        "handed_back",
        "conserved",
        "calls",
        "rate_limit_hits",
        "failed_calls",
        "elapsed_seconds",
        "delivered_per_second",
        "p50_latency_ms",
        "p99_latency_ms",
        "dead_letter_reasons",
    ] {
        assert!(report.get(shared).is_some(), "run --json lacks {shared}");
        assert!(
            simulated.get(shared).is_some(),
            "simulate --json lacks {shared}"
        );
    }
}

#[test]
fn a_closed_stdout_loses_the_report_not_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockApi::start(&["--rate-limit", "none", "--failure-rate", "0"]);
    let input = generate(dir.path(), "records.ndjson", 50, 11);
    // One bad line: a dead letter, to fail the second run by its count.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    file.write_all(b"not json\n").unwrap();
    for (extra, code) in [(&[][..], 0), (&["--max-dead-letters", "0"][..], 4)] {
        let mut child = sluice()
            .current_dir(dir.path())
            .args([
                "run",
                input.to_str().unwrap(),
                "--json",
                "--http-url",
                &api.url(),
            ])
            .args(["--rate-limit", "none"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| true`: the reader is gone before the report is written.
        drop(child.stdout.take());
        let output = wait_bounded(child, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Runs `command` with `sh -c` in `dir`, bounded in time.
fn shell(command: &str, dir: &std::path::Path) -> std::process::Output {
    let child = std::process::Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, Duration::from_secs(60))
}
