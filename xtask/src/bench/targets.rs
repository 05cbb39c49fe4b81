//! The targets of the benchmark suite (issue 10 and before) and their
//! verdicts.

use serde_json::Value;

use super::number;

/// Records per second a scenario must reach: (scenario, target).
const RATE_TARGETS: [(&str, f64); 6] = [
    ("throughput", 2_000_000.0),
    ("throughput-unordered", 2_000_000.0),
    ("many-partitions", 1_000_000.0),
    ("ndjson-json", 1_000_000.0),
    ("ndjson-json-schema", 500_000.0),
    ("http-batch", 300_000.0),
];

/// The share of the bare client loop's rate `http-single` must reach.
const HTTP_SINGLE_SHARE: f64 = 0.8;

/// Records a call `http-batch` must carry on average (of 500 at most).
const HTTP_BATCH_RECORDS_PER_CALL: f64 = 400.0;

/// Successes a second the slowest 5-second window of `quota-dip` must
/// reach (of 50).
const QUOTA_DIP_FLOOR: f64 = 48.0;

/// How many times one call in flight's rate `json-no-partition` must
/// reach with sixteen.
const JSON_NO_PARTITION_RATIO: f64 = 10.0;

/// The share of the API's ceiling `ceiling-one` and `ceiling-three` must
/// use (successes ÷ the most the quota admits from the first success to
/// the last), with no call refused (and, for three, no duplicate).
const CEILING_SHARE: f64 = 0.95;

/// The share `ceiling-uneven` must use: bounded below 0.952 by the shared
/// window's rate (BENCHMARKS.md, ARCHITECTURE.md "Skewed partitions").
const CEILING_UNEVEN_SHARE: f64 = 0.90;

/// The most RSS an overload may reach, MiB.
const OVERLOAD_PEAK_MIB: f64 = 64.0;

/// How far RSS over an overload's last 30 s may spread, percent of its
/// maximum there.
const OVERLOAD_SPREAD_PCT: f64 = 5.0;

/// The targets of the benchmark suite: (met, name, measured), for the
/// scenarios in `results`.
pub fn targets(results: &Value) -> Vec<(bool, String, String)> {
    let s = &results["scenarios"];
    let mut targets = Vec::new();
    for (scenario, target) in RATE_TARGETS {
        if scenario == "http-batch" {
            http_single(s, &mut targets);
        }
        if s[scenario].is_null() {
            continue;
        }
        let rate = number(&s[scenario]["records_per_second"]);
        targets.push((
            rate >= target,
            format!("{scenario}: >= {} records/s", thousands(target)),
            format!("{} records/s", thousands(rate)),
        ));
    }
    edge(s, &mut targets);
    ceiling(s, &mut targets);
    for scenario in ["latency-bound-virtual", "latency-bound-real"] {
        if s[scenario].is_null() {
            continue;
        }
        let utilization = number(&s[scenario]["ceiling_utilization"]);
        targets.push((
            utilization >= 0.95,
            format!("{scenario}: ceiling utilization >= 0.95"),
            format!("{utilization:.3}"),
        ));
    }
    for scenario in ["overload", "overload-real"] {
        let overload = &s[scenario];
        if overload.is_null() {
            continue;
        }
        let spread = number(&overload["last_half_spread_pct"]);
        let peak = number(&overload["peak_rss_mib"]);
        targets.push((
            spread <= OVERLOAD_SPREAD_PCT,
            format!("{scenario}: memory flat (RSS over the last 30 s within 5 % of its maximum)"),
            format!(
                "{spread:.1} % ({:.1} to {:.1} MiB)",
                number(&overload["last_half_min_rss_mib"]),
                number(&overload["last_half_max_rss_mib"])
            ),
        ));
        targets.push((
            peak < OVERLOAD_PEAK_MIB,
            format!("{scenario}: peak RSS < 64 MiB"),
            format!("{peak:.1} MiB"),
        ));
    }
    targets
}

/// The targets of issue 20: full batches, no dip at a quota, and the
/// concurrency asked for on records that name no partition.
fn edge(s: &Value, targets: &mut Vec<(bool, String, String)>) {
    let per_call = &s["http-batch-records-per-call"];
    if !per_call.is_null() {
        let records = number(&per_call["records_per_call"]);
        targets.push((
            records >= HTTP_BATCH_RECORDS_PER_CALL,
            "http-batch-records-per-call: >= 400 records a call (batch-max 500)".to_owned(),
            format!("{records:.1} ({} calls)", per_call["calls"]),
        ));
    }
    let dip = &s["quota-dip"];
    if !dip.is_null() {
        let slowest = number(&dip["slowest_5s_window_per_second"]);
        targets.push((
            slowest >= QUOTA_DIP_FLOOR,
            "quota-dip: no 5 s window under 48 successes/s (quota 50/s) after 2 s".to_owned(),
            format!(
                "slowest {slowest:.1}/s; mean {:.2}/s; {} refused",
                number(&dip["successes_per_second"]),
                dip["refused"]
            ),
        ));
    }
    let json = &s["json-no-partition"];
    if !json.is_null() {
        let ratio = number(&json["ratio"]);
        targets.push((
            ratio >= JSON_NO_PARTITION_RATIO,
            "json-no-partition: 16 calls in flight >= 10 x one (50 ms API)".to_owned(),
            format!(
                "{ratio:.1} x ({} vs {} records/s)",
                thousands(number(&json["sixteen"]["records_per_second"])),
                thousands(number(&json["one_in_flight"]["records_per_second"]))
            ),
        ));
    }
}

/// The targets of issue 22: the API's ceiling used through `sluice run`,
/// by one process and by three sharing one quota; (scenario, what, share,
/// no call refused, no duplicate).
fn ceiling(s: &Value, targets: &mut Vec<(bool, String, String)>) {
    let scenarios = [
        ("ceiling-one", "one process", CEILING_SHARE, true, false),
        (
            "ceiling-three",
            "three processes",
            CEILING_SHARE,
            true,
            true,
        ),
        (
            "ceiling-uneven",
            "three, one partition half the records",
            CEILING_UNEVEN_SHARE,
            false,
            false,
        ),
    ];
    for (scenario, what, share, no_refusal, no_duplicate) in scenarios {
        let r = &s[scenario];
        if r.is_null() {
            continue;
        }
        let used = number(&r["ceiling_used"]);
        let (refused, duplicates) = (number(&r["refused"]), number(&r["duplicates"]));
        let mut name = format!(
            "{scenario}: >= {share:.2} of a {}/s ceiling ({what})",
            r["quota_per_second"]
        );
        if no_refusal {
            name.push_str(", none refused");
        }
        if no_duplicate {
            name.push_str(", no duplicate");
        }
        targets.push((
            used >= share
                && (!no_refusal || refused == 0.0)
                && (!no_duplicate || duplicates == 0.0),
            name,
            format!(
                "{used:.3} ({} successes in {:.1} s); {refused} of {} calls refused; \
                 {duplicates} duplicates",
                r["successes"],
                number(&r["span_seconds"]),
                r["calls"]
            ),
        ));
    }
}

/// `http-single` against 0.8 x `http-baseline` (medians of their runs),
/// with the range of the per-run ratios.
fn http_single(s: &Value, targets: &mut Vec<(bool, String, String)>) {
    let (single, baseline) = (&s["http-single"], &s["http-baseline"]);
    if single.is_null() || baseline.is_null() {
        return;
    }
    let rate = number(&single["records_per_second"]);
    let base = number(&baseline["records_per_second"]);
    let ratios: Vec<f64> = baseline["runs_ratio_to_baseline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(number)
        .collect();
    let range = match (ratios.first(), ratios.last()) {
        (Some(low), Some(high)) => format!("; per run {low:.2} to {high:.2}"),
        _ => String::new(),
    };
    targets.push((
        rate >= HTTP_SINGLE_SHARE * base,
        "http-single: >= 0.8 x http-baseline (records/s)".to_owned(),
        format!(
            "{} of {} records/s = {:.3}{range}",
            thousands(rate),
            thousands(base),
            rate / base
        ),
    ));
}

/// `n` rounded, with a space between groups of three digits.
pub fn thousands(n: f64) -> String {
    if !n.is_finite() {
        return "?".to_owned();
    }
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    if n < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_000.0), "1 000");
        assert_eq!(thousands(1_568_258.2), "1 568 258");
        assert_eq!(thousands(-12_345.0), "-12 345");
        assert_eq!(thousands(f64::NAN), "?");
    }
}
