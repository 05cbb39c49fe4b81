//! A run's figures from the API's `GET /ledger` (JSON) and from the
//! `sluice run` processes' logs.

use anyhow::bail;
use serde_json::{Value, json};

use crate::bench::peers::api::success_times;

/// What the API's `ledger` says of a run against `quota`/s: successes,
/// calls, refusals, failures, duplicates, order violations, the span from
/// the first success to the last, the share of the ceiling used and the
/// busiest second.
pub fn figures(ledger: &Value, quota: u32) -> anyhow::Result<Value> {
    let (Some(first), Some(last)) = (
        ledger["first_success_ms"].as_u64(),
        ledger["last_success_ms"].as_u64(),
    ) else {
        bail!("the API saw no success");
    };
    let successes = number(&ledger["successes"]);
    let times = success_times(ledger)?;
    Ok(json!({
        "quota_per_second": quota,
        "successes": successes,
        "calls": ledger["calls"],
        "refused": ledger["rate_limit_hits"],
        "failures": ledger["failures"],
        "duplicates": ledger["duplicates"],
        "order_violations": ledger["order_violations"],
        "span_seconds": (last - first) as f64 / 1_000.0,
        "ceiling_used": ceiling_used(successes, first, last, quota),
        "busiest_second": busiest(&times, 1_000),
    }))
}

/// Successes ÷ the most `quota`/s admits from `first` to `last` (ms):
/// `quota × (⌊span ÷ 1 s⌋ + 1)`, as `LedgerCounts::ceiling_used`.
fn ceiling_used(successes: u64, first: u64, last: u64, quota: u32) -> f64 {
    let windows = last.saturating_sub(first) / 1_000 + 1;
    successes as f64 / (u64::from(quota) * windows).max(1) as f64
}

/// The most of sorted `times` (ms) less than `window` ms apart.
fn busiest(times: &[u64], window: u64) -> usize {
    let mut start = 0;
    let mut most = 0;
    for (end, &at) in times.iter().enumerate() {
        while at - times[start] >= window {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

/// Records delivered to each partition (every source's), duplicates
/// included, in partition order.
pub fn per_partition(ledger: &Value) -> Vec<usize> {
    let mut counts = std::collections::BTreeMap::<u64, usize>::new();
    for partitions in ledger["streams"]
        .as_object()
        .into_iter()
        .flat_map(|s| s.values())
    {
        for (partition, deliveries) in partitions.as_object().into_iter().flatten() {
            let n = deliveries["delivered"].as_array().map_or(0, Vec::len);
            *counts
                .entry(partition.parse().unwrap_or(u64::MAX))
                .or_default() += n;
        }
    }
    counts.into_values().collect()
}

/// A count of the ledger, 0 when missing.
pub fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// When the first member said the stream was drained: the timestamp
/// (RFC 3339, UTC) that starts its log line.
pub fn first_drained(logs: &[String]) -> Option<String> {
    logs.iter()
        .flat_map(|log| log.lines())
        .filter(|line| line.contains("the stream is drained"))
        .filter_map(|line| line.split_whitespace().next())
        .min()
        .map(str::to_owned)
}

/// The partitions a member's `log` says it took before `drained` (all,
/// without it): once one member ends, the others may take the partitions
/// it gave up, with nothing left in them.
pub fn taken_before(log: &str, drained: Option<&str>) -> usize {
    log.lines()
        .filter(|line| line.contains("took partition"))
        .filter(|line| {
            let at = line.split_whitespace().next().unwrap_or_default();
            drained.is_none_or(|drained| at < drained)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_counts_whole_windows_as_the_tests_do() {
        // As `LedgerCounts::ceiling_used`'s examples: 300 at 0, 1 s and
        // 2 s, or one every 10 ms to 2 990 ms, are all 100/s admits.
        assert!((ceiling_used(300, 0, 2_000, 100) - 1.0).abs() < 1e-12);
        assert!((ceiling_used(300, 0, 2_990, 100) - 1.0).abs() < 1e-12);
        assert!((ceiling_used(285, 500, 3_499, 100) - 0.95).abs() < 1e-12);
    }

    #[test]
    fn the_busiest_second_is_of_successes_under_a_second_apart() {
        assert_eq!(busiest(&[0, 500, 999, 1_000, 1_998], 1_000), 3);
        assert_eq!(busiest(&[], 1_000), 0);
    }

    #[test]
    fn partitions_taken_once_a_member_saw_the_stream_drained_are_not_counted() {
        let first = "2026-12-04T14:49:54.6Z took partition partition=\"2\"\n\
                     2026-12-04T14:50:58.6Z the stream is drained: ending the run\n";
        let last = "2026-12-04T14:49:54.6Z took partition partition=\"7\"\n\
                    2026-12-04T14:50:58.7Z took partition partition=\"2\"\n\
                    2026-12-04T14:50:59.1Z the stream is drained: ending the run\n";
        let logs = [first.to_owned(), last.to_owned()];
        let drained = first_drained(&logs);
        assert_eq!(drained.as_deref(), Some("2026-12-04T14:50:58.6Z"));
        assert_eq!(taken_before(last, drained.as_deref()), 1);
        assert_eq!(taken_before(last, None), 2);
    }
}
