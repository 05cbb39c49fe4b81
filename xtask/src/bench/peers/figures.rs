//! The figures of one peers run: the API's ledger counts, the client
//! process's resources, and what the client says of itself.

use serde_json::{Value, json};

use super::watch::Watched;
use super::{CONCURRENCY, Client, FAILURE_RATE, Job};

/// The figures of one run: the API's ledger counts, the client process's
/// resources, and what the client says of itself.
pub fn figures(
    job: Job,
    client: &Client,
    counts: &Value,
    watched: &Watched,
    exit: Option<i32>,
    own: &str,
    quota_seconds: u64,
) -> Value {
    let count = |name: &str| counts[name].as_u64().unwrap_or(0);
    let delivered = count("records_delivered").saturating_sub(count("duplicates"));
    let successes = count("successes");
    let span_ms = count("last_success_ms").saturating_sub(count("first_success_ms"));
    let mut result = json!({
        "client": client.name(),
        "job": job.name(),
        "file_records": job.records(),
        "batch_max": job.batch(),
        "concurrency": CONCURRENCY,
        "delivered": delivered,
        "calls": count("calls"),
        "successes": successes,
        "refused": count("rate_limit_hits"),
        "failed": count("failures"),
        "cancelled": count("cancelled"),
        "order_violations": count("order_violations"),
        "duplicates": count("duplicates"),
        "records_per_call": count("records_delivered") as f64 / successes.max(1) as f64,
        "first_to_last_success_seconds": span_ms as f64 / 1000.0,
        "cpu_seconds": watched.cpu_seconds,
        "cpu_us_per_record": watched.cpu_seconds * 1e6 / delivered.max(1) as f64,
        "peak_rss_mib": watched.peak_rss_mib,
        "wall_seconds": watched.wall_seconds,
        "exit_code": exit,
        "ledger": counts,
        "own": own_figures(client, own),
    });
    match job.quota() {
        Some(quota) => {
            // As `LedgerCounts::ceiling_used`: the most a sliding window of
            // one second admits from the first success to the last.
            let windows = span_ms / 1000 + 1;
            result["quota"] = json!(quota);
            result["failure_rate"] = json!(FAILURE_RATE);
            result["seconds"] = json!(quota_seconds);
            result["ceiling_used"] = json!(successes as f64 / (u64::from(quota) * windows) as f64);
        }
        None => {
            result["records_per_second"] = json!(delivered as f64 / (span_ms.max(1) as f64 / 1e3));
        }
    }
    result
}

/// What the client printed of itself: sluice's JSON report (some of its
/// counters), the Python client's JSON line; Vector prints none.
fn own_figures(client: &Client, own: &str) -> Value {
    match client {
        Client::Sluice(_) => {
            let report: Value = serde_json::from_str(own).unwrap_or(Value::Null);
            let mut kept = serde_json::Map::new();
            for key in [
                "delivered",
                "dead_lettered",
                "handed_back",
                "calls",
                "rate_limit_hits",
                "failed_calls",
                "ordering",
            ] {
                kept.insert(key.to_owned(), report[key].clone());
            }
            Value::Object(kept)
        }
        Client::Python(_) => own
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .unwrap_or(Value::Null),
        Client::Vector(_) => Value::Null,
    }
}
