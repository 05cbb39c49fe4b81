//! The Markdown tables of the peers jobs, for the generated part of
//! BENCHMARKS.md.

use std::fmt::Write as _;

use serde_json::Value;

use super::super::number;
use super::super::targets::thousands;
use super::{CONCURRENCY, FAILURE_RATE, Job, QUOTA};

/// The clients, in the tables' order.
const CLIENTS: [&str; 3] = ["sluice", "python", "vector"];

/// The peers tables, from `results`; nothing if no peers job ever ran.
pub fn render(out: &mut String, results: &Value) {
    let s = &results["scenarios"];
    let key = |job: Job, client: &str| format!("peers-{}-{client}", job.name());
    if Job::ALL
        .iter()
        .all(|&job| CLIENTS.iter().all(|c| s[key(job, c)].is_null()))
    {
        return;
    }
    let quota = &s[key(Job::Quota, "sluice")];
    let _ = write!(
        out,
        "\n### Peers: the same jobs by sluice and by other clients (`--peers`)\n\n\
         Each run against a fresh `sluice mock-api`, the client reading the same `sluice generate` \
         file (4 sources x 8 partitions, every line deliverable) and sending the same JSON objects \
         with the same keys (Vector: SHA-256 keys), {CONCURRENCY} calls in flight. CPU is the \
         client process's utime + stime (`/proc/<pid>/stat`), peak RSS its VmHWM; figures of \
         deliveries, refusals, order and duplicates are the API's ledger. See \"Peers\" below the \
         generated part for the clients.\n\n\
         **Quota**: `--rate-limit {QUOTA}/s --failure-rate {FAILURE_RATE}` (10-50 ms), one record \
         a call, {} s, then SIGTERM. Ceiling used: successes / ({QUOTA} x the windows of one \
         second from the first success to the last).\n\n\
         | client | delivered | calls | refused (429) | failed (503) | order violations | duplicates | ceiling used | CPU | peak RSS |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        if quota["seconds"].is_null() {
            "60".to_owned()
        } else {
            quota["seconds"].to_string()
        },
    );
    for client in CLIENTS {
        let r = &s[key(Job::Quota, client)];
        if let Some(reason) = not_run(r) {
            let _ = writeln!(out, "| {client} | {reason} |{}", " |".repeat(8));
            continue;
        }
        let _ = writeln!(
            out,
            "| {client} | {} | {} | {} | {} | {} | {} | {:.3} | {:.2} s | {:.1} MiB |",
            thousands(number(&r["delivered"])),
            thousands(number(&r["calls"])),
            thousands(number(&r["refused"])),
            thousands(number(&r["failed"])),
            thousands(number(&r["order_violations"])),
            thousands(number(&r["duplicates"])),
            number(&r["ceiling_used"]),
            number(&r["cpu_seconds"]),
            number(&r["peak_rss_mib"]),
        );
    }
    out.push_str(
        "\n**Fast API**: `--rate-limit none --failure-rate 0 --latency 0ms`; every record of the \
         file. Records/s over the API's first to last success; wall time from the client's start \
         to its exit (Vector: to the ledger holding every record). CPU per record includes the \
         client's start.\n\n\
         | job | client | records | records/s | wall time | calls | records/call | order violations | duplicates | CPU µs/record | peak RSS |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for job in [Job::Single, Job::Batch] {
        let name = format!("{} ({} a call)", job.name(), job.batch());
        for client in CLIENTS {
            let r = &s[key(job, client)];
            if let Some(reason) = not_run(r) {
                let _ = writeln!(out, "| {name} | {client} | {reason} |{}", " |".repeat(8));
                continue;
            }
            let _ = writeln!(
                out,
                "| {name} | {client} | {} | {} | {:.2} s | {} | {:.1} | {} | {} | {:.1} | {:.1} MiB |",
                thousands(number(&r["delivered"])),
                thousands(number(&r["records_per_second"])),
                number(&r["wall_seconds"]),
                thousands(number(&r["calls"])),
                number(&r["records_per_call"]),
                thousands(number(&r["order_violations"])),
                thousands(number(&r["duplicates"])),
                number(&r["cpu_us_per_record"]),
                number(&r["peak_rss_mib"]),
            );
        }
    }
    kept_from_earlier(out, results);
}

/// The longest reason a row gives for not running, in characters.
const REASON_CHARS: usize = 160;

/// `not run: <reason>` for a result that is missing or says why it did
/// not run (on one line, cut at [`REASON_CHARS`]).
fn not_run(result: &Value) -> Option<String> {
    if result.is_null() {
        return Some("not run".to_owned());
    }
    let reason = result["not_run"].as_str()?;
    let mut line: String = reason
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "/");
    if let Some((cut, _)) = line.char_indices().nth(REASON_CHARS) {
        line.truncate(cut);
        line.push_str("...");
    }
    Some(format!("not run: {line}"))
}

/// A line naming the rows measured before this run (kept from an earlier
/// one), with their dates.
fn kept_from_earlier(out: &mut String, results: &Value) {
    let date = results["machine"]["date"].as_str().unwrap_or("");
    let kept: Vec<String> = Job::ALL
        .iter()
        .flat_map(|job| CLIENTS.map(|client| format!("peers-{}-{client}", job.name())))
        .filter_map(|key| {
            let measured = results["scenarios"][&key]["measured"].as_str()?;
            (measured < date).then(|| format!("`{key}` ({measured})"))
        })
        .collect();
    if !kept.is_empty() {
        let _ = writeln!(out, "\nKept from an earlier run: {}.", kept.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn missing_clients_say_why_and_earlier_rows_are_named() {
        let results = json!({
            "machine": { "date": "2026-12-04 05:00 UTC" },
            "scenarios": {
                "peers-quota-sluice": {
                    "seconds": 60, "delivered": 2941, "calls": 3473, "refused": 0,
                    "failed": 532, "order_violations": 0, "duplicates": 0,
                    "ceiling_used": 0.98, "cpu_seconds": 1.0, "peak_rss_mib": 35.3,
                    "measured": "2026-12-04 05:01 UTC",
                },
                "peers-single-python": {
                    "delivered": 20000, "records_per_second": 3512.4, "wall_seconds": 6.0,
                    "calls": 20000, "records_per_call": 1.0, "order_violations": 0,
                    "duplicates": 0, "cpu_us_per_record": 299.5, "peak_rss_mib": 38.7,
                    "measured": "2026-12-03 10:00 UTC",
                },
                "peers-quota-vector": { "not_run": "VECTOR is not set\n(see | below)" },
            },
        });
        let mut out = String::new();
        render(&mut out, &results);
        assert!(
            out.contains(
                "| sluice | 2 941 | 3 473 | 0 | 532 | 0 | 0 | 0.980 | 1.00 s | 35.3 MiB |"
            ),
            "{out}"
        );
        assert!(
            out.contains("| vector | not run: VECTOR is not set (see / below) |"),
            "{out}"
        );
        assert!(
            out.contains("| single (1 a call) | python | 20 000 | 3 512 |"),
            "{out}"
        );
        assert!(
            out.contains("| batch (500 a call) | sluice | not run |"),
            "{out}"
        );
        assert!(
            out.contains("Kept from an earlier run: `peers-single-python` (2026-12-03 10:00 UTC)."),
            "{out}"
        );

        let mut none = String::new();
        render(&mut none, &json!({ "scenarios": {} }));
        assert!(none.is_empty());
    }
}
