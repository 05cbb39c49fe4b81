//! Two runs of `sluice run` against `sluice mock-api`, as users start
//! them (issue 20):
//!
//! - `quota-dip`: a 50/s quota with 15 % failures, one record a call,
//!   until the file is delivered; every success's time from the API's
//!   ledger, as successes per second, and the slowest 5-second window
//!   after the first two seconds;
//! - `json-no-partition`: the `json` profile on a file whose records name
//!   no partition, against an API answering in 50 ms: 16 calls in flight
//!   against one (the rate the run's default ordering allows).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::peers::api::{MockApi, success_times};
use super::peers::input_file;
use crate::util::root;

/// The quota, successes a second.
const QUOTA: u32 = 50;

/// Records of the quota run: about a minute at the quota.
const QUOTA_RECORDS: u64 = 3_000;

/// The windows the quota run is judged on.
const WINDOW_MS: u64 = 5_000;

/// The quota run's first seconds, left out: the first window's calls go
/// at once and the second's follow them.
const SETTLE_MS: u64 = 2_000;

/// The API's latency in the `json-no-partition` runs.
const LATENCY: &str = "50ms";

/// Runs the quota run and returns its figures and timeline.
pub fn quota_dip(sluice: &Path) -> anyhow::Result<Value> {
    let work = work_dir("quota-dip")?;
    let input = input_file(sluice, &work, QUOTA_RECORDS)?;
    let api_args = [
        "--rate-limit".to_owned(),
        format!("{QUOTA}/s"),
        "--failure-rate".to_owned(),
        "0.15".to_owned(),
    ];
    let api = MockApi::start(sluice, &api_args, &work.join("mock-api.log"))?;
    let url = format!("http://{}/records", api.addr());
    let report = sluice_run(
        sluice,
        &input,
        &work,
        &[
            "--http-url",
            &url,
            "--rate-limit",
            &format!("{QUOTA}/s"),
            "--dead-letters",
            "none",
        ],
    )?;
    let ledger = api.ledger()?;
    api.stop()?;
    let times = success_times(&ledger)?;
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        bail!("the quota run delivered nothing");
    };
    let per_second = per_second(&times, first);
    let judged = (first + SETTLE_MS)..last.saturating_sub(WINDOW_MS);
    let slowest = judged
        .step_by(100)
        .map(|start| successes_in(&times, start, start + WINDOW_MS))
        .min()
        .unwrap_or(0);
    let span_s = (last - first) as f64 / 1_000.0;
    Ok(json!({
        "quota_per_second": QUOTA,
        "records": QUOTA_RECORDS,
        "successes": times.len(),
        "refused": ledger["rate_limit_hits"],
        "failures": ledger["failures"],
        "successes_per_second": (times.len().saturating_sub(1)) as f64 / span_s,
        "slowest_5s_window_per_second": slowest as f64 / (WINDOW_MS as f64 / 1_000.0),
        "per_second": per_second,
        "exit_delivered": report["delivered"],
    }))
}

/// Runs `json-no-partition` and returns both rates and their ratio.
pub fn json_no_partition(sluice: &Path) -> anyhow::Result<Value> {
    let work = work_dir("json-no-partition")?;
    let mut runs = serde_json::Map::new();
    for (name, concurrency, records) in [("one_in_flight", 1, 300), ("sixteen", 16, 3_000)] {
        let input = unpartitioned_file(&work, records)?;
        let api_args = [
            "--latency",
            LATENCY,
            "--rate-limit",
            "none",
            "--failure-rate",
            "0",
        ]
        .map(str::to_owned);
        let api = MockApi::start(sluice, &api_args, &work.join(format!("{name}-api.log")))?;
        let url = format!("http://{}/records", api.addr());
        let report = sluice_run(
            sluice,
            &input,
            &work,
            &[
                "--profile",
                "json",
                "--http-url",
                &url,
                "--rate-limit",
                "none",
                "--concurrency",
                &concurrency.to_string(),
                "--dead-letters",
                "none",
            ],
        )?;
        api.stop()?;
        runs.insert(
            name.to_owned(),
            json!({
                "concurrency": concurrency,
                "records": records,
                "records_per_second": report["delivered_per_second"],
                "ordering": report["ordering"],
                "ordering_note": report["ordering_note"],
            }),
        );
    }
    let rate = |name: &str| {
        runs[name]["records_per_second"]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    let ratio = rate("sixteen") / rate("one_in_flight");
    let mut result = Value::Object(runs);
    result["latency"] = json!(LATENCY);
    result["ratio"] = json!(ratio);
    Ok(result)
}

/// A fresh directory for `name` under `target/bench-data`.
pub(super) fn work_dir(name: &str) -> anyhow::Result<PathBuf> {
    let work = root().join("target/bench-data").join(name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    Ok(work)
}

/// `records` JSON objects naming no stream, partition or sequence.
fn unpartitioned_file(work: &Path, records: u64) -> anyhow::Result<PathBuf> {
    let path = work.join(format!("unpartitioned-{records}.ndjson"));
    let lines: String = (0..records)
        .map(|n| {
            format!(
                "{{\"order\":{n},\"item\":\"widget\",\"quantity\":{}}}\n",
                n % 7
            )
        })
        .collect();
    std::fs::write(&path, lines)?;
    Ok(path)
}

/// `sluice run INPUT ARGS --json` to its end; its report. A run that
/// fails (any exit but 0) is an error naming its stderr.
pub(super) fn sluice_run(
    sluice: &Path,
    input: &Path,
    work: &Path,
    args: &[&str],
) -> anyhow::Result<Value> {
    let stderr = work.join("run.log");
    let output = Command::new(sluice)
        .arg("run")
        .arg(input)
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&stderr)?)
        .output()
        .context("could not run sluice run")?;
    if !output.status.success() {
        let said = std::fs::read_to_string(&stderr).unwrap_or_default();
        bail!("sluice run failed ({}):\n{said}", output.status);
    }
    serde_json::from_slice(&output.stdout).context("sluice run printed no JSON report")
}

/// Successes in each whole second from `first` (the first success).
fn per_second(times: &[u64], first: u64) -> Vec<usize> {
    let seconds = times.last().map_or(0, |last| (last - first) / 1_000 + 1);
    (0..seconds)
        .map(|s| successes_in(times, first + s * 1_000, first + (s + 1) * 1_000))
        .collect()
}

/// Successes at `from` or later and before `to`, of sorted `times`.
fn successes_in(times: &[u64], from: u64, to: u64) -> usize {
    times.partition_point(|&t| t < to) - times.partition_point(|&t| t < from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_are_counted_per_second_and_per_window() {
        let times = [100, 900, 1_000, 1_999, 2_000, 4_500];
        assert_eq!(per_second(&times, 100), vec![3, 2, 0, 0, 1]);
        assert_eq!(successes_in(&times, 1_000, 2_000), 2);
        assert_eq!(successes_in(&times, 0, 10_000), 6);
    }
}
