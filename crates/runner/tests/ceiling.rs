//! `sluice generate` into `sluice run` against `sluice mock-api
//! --rate-limit 50/s`: every record once, in order, at the API's ceiling.
//! In a test binary of its own, so that no other test shares the machine
//! while it measures the ceiling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    MockApi, dead_letters, delivered_counts, expected, generate, report, start_run, wait_bounded,
};
use sluice_mock_api::Quota;

#[test]
fn generated_records_reach_a_fifty_per_second_api_once_each_in_order_at_its_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockApi::start(&["--rate-limit", "50/s"]);
    let input = generate(dir.path(), "records.ndjson", 3_000, 7);
    let dead = dir.path().join("dead.ndjson");
    let run = start_run(
        &input,
        &api,
        "50/s",
        &["--dead-letters", dead.to_str().unwrap()],
    );
    let output = wait_bounded(run, Duration::from_secs(240));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&output);

    let (valid, invalid) = expected(&input);
    assert!(!invalid.is_empty(), "the data set has undeliverable lines");
    let counts = delivered_counts(&api);
    let delivered: BTreeSet<_> = counts.keys().cloned().collect();
    assert_eq!(
        delivered, valid,
        "every valid record delivered, nothing else"
    );
    assert!(counts.values().all(|&n| n == 1), "each once");
    let ledger = api.ledger();
    assert_eq!(ledger.counts.order_violations, 0);
    let letters = dead_letters(&dead);
    let lettered: BTreeSet<_> = letters
        .iter()
        .map(|(s, p, q, _)| (s.clone(), *p, *q))
        .collect();
    assert_eq!(lettered, invalid, "every undeliverable line dead-lettered");
    assert!(letters.iter().all(|(.., reason)| !reason.is_empty()));
    assert_eq!(report["ingested"], 3_000);
    assert_eq!(report["delivered"].as_u64(), Some(valid.len() as u64));
    assert_eq!(report["dead_lettered"].as_u64(), Some(invalid.len() as u64));
    assert_eq!(report["conserved"], true);

    // The ceiling over the run: the most 50/s admits from the first
    // success to the last. A regression floor, not the target: 0.959 is
    // measured on a quiet machine (BENCHMARKS.md); one window more in the
    // span, as a busy 2-core machine (CI beside other builds) gives, reads
    // 0.944 or less.
    let used = ledger.counts.ceiling_used(Quota::per_second(50)).unwrap();
    assert!(
        used >= 0.85,
        "{used:.3} of the ceiling ({} successes)",
        ledger.counts.successes
    );
    assert!(ledger.max_successes_in_any(Duration::from_secs(1)) <= 50);
    assert!(
        ledger.counts.rate_limit_hits * 100 <= ledger.counts.calls,
        "{} refused of {} calls",
        ledger.counts.rate_limit_hits,
        ledger.counts.calls
    );
}
