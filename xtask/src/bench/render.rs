//! The generated Markdown tables of BENCHMARKS.md.

use std::fmt::Write as _;

use serde_json::Value;

use super::targets::{targets, thousands};
use super::{RUNS, number};

/// The generated part of BENCHMARKS.md, from `results`.
pub fn render(results: &Value) -> String {
    let m = &results["machine"];
    let mut out = format!(
        "Measured {} to {} on {} ({} cores, {} GiB), Linux {}, {}; bench profile (release), mimalloc. \
         Load average (1 min) at the start {}, at the end {}.\n\n",
        text(&m["date"]),
        text(&m["finished"]),
        text(&m["cpu"]),
        m["cores"],
        m["memory_gib"],
        text(&m["kernel"]),
        text(&m["rustc"]),
        m["load_average_at_start"],
        m["load_average_at_end"],
    );
    out.push_str("### Targets\n\n| target | measured | verdict |\n| --- | --- | --- |\n");
    for (met, name, measured) in targets(results) {
        let verdict = if met { "met" } else { "**missed**" };
        let _ = writeln!(out, "| {name} | {measured} | {verdict} |");
    }
    let s = &results["scenarios"];
    raw_throughput(&mut out, s);
    latency_bound(&mut out, s);
    overload(&mut out, s);
    micro(&mut out, results);
    ndjson(&mut out, s);
    http(&mut out, s);
    overload_real(&mut out, s);
    quota_dip(&mut out, s);
    ceiling(&mut out, s);
    super::peers::render(&mut out, results);
    out
}

/// `quota-dip`'s timeline: successes in each second at the API.
fn quota_dip(out: &mut String, s: &Value) {
    let dip = &s["quota-dip"];
    if dip.is_null() {
        return;
    }
    let seconds: Vec<String> = dip["per_second"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n.to_string())
        .collect();
    let _ = write!(
        out,
        "\n### Quota run: successes per second at the API (50/s, 15 % failures, one record a call)\n\n\
         {} successes, {} refused; mean {:.2}/s from the first success to the last; slowest 5 s window \
         after the first 2 s: {:.1}/s.\n\n```text\n{}\n```\n",
        dip["successes"],
        dip["refused"],
        number(&dip["successes_per_second"]),
        number(&dip["slowest_5s_window_per_second"]),
        seconds
            .chunks(20)
            .map(|row| row.join(" "))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

/// `ceiling-one`, `ceiling-three` and `ceiling-uneven`: the ceiling used,
/// and what each process delivered.
fn ceiling(out: &mut String, s: &Value) {
    let scenarios = ["ceiling-one", "ceiling-three", "ceiling-uneven"];
    if scenarios.iter().all(|scenario| s[*scenario].is_null()) {
        return;
    }
    out.push_str(
        "\n### 11. The API's ceiling through `sluice run`: one process, and three sharing a \
         JetStream stream and one Redis quota\n\n\
         Against `sluice mock-api` (15 % failures, 10-50 ms). Ceiling used: successes ÷ the most \
         the quota admits from the first success to the last, quota x (⌊span ÷ 1 s⌋ + 1); \
         every figure but the wall time and the processes' is the API's ledger.\n\n\
         | scenario | processes | quota | records | successes | span | ceiling used | refused (of calls) \
         | duplicates | order violations | busiest second | lost | wall time |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for scenario in scenarios {
        let r = &s[scenario];
        if r.is_null() {
            continue;
        }
        let processes = r["processes"].as_array().map_or(1, Vec::len);
        let _ = writeln!(
            out,
            "| {scenario} | {processes} | {}/s | {} | {} | {:.1} s | {:.3} | {} ({}) | {} | {} | {} | {} | {:.1} s |",
            r["quota_per_second"],
            thousands(number(&r["records"])),
            thousands(number(&r["successes"])),
            number(&r["span_seconds"]),
            number(&r["ceiling_used"]),
            r["refused"],
            thousands(number(&r["calls"])),
            r["duplicates"],
            r["order_violations"],
            r["busiest_second"],
            if r["lost"].is_null() {
                "0".to_owned()
            } else {
                r["lost"].to_string()
            },
            number(&r["wall_seconds"]),
        );
    }
    for scenario in ["ceiling-three", "ceiling-uneven"] {
        let r = &s[scenario];
        let Some(processes) = r["processes"].as_array() else {
            continue;
        };
        let each: Vec<String> = processes
            .iter()
            .map(|p| {
                format!(
                    "{} ({}, {})",
                    thousands(number(&p["delivered"])),
                    p["partitions_taken"],
                    p["leases_lost"]
                )
            })
            .collect();
        let partitions: Vec<String> = r["per_partition"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| thousands(number(n)))
            .collect();
        let _ = write!(
            out,
            "\n`{scenario}`: delivered by each process (with the partitions it took before the \
             first process saw the stream drained, and the leases it lost) {}; {} dead-lettered; \
             records delivered per partition (0 to 7): {}.\n",
            each.join(", "),
            r["dead_lettered"],
            partitions.join(", "),
        );
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// "low to high" of a run's sorted `runs_<key>`, or "one run".
fn range(r: &Value, key: &str) -> String {
    let values: Vec<f64> = r[format!("runs_{key}")]
        .as_array()
        .into_iter()
        .flatten()
        .map(number)
        .collect();
    match (values.first(), values.last()) {
        (Some(low), Some(high)) => format!("{} to {}", thousands(*low), thousands(*high)),
        _ => "one run".to_owned(),
    }
}

fn raw_throughput(out: &mut String, s: &Value) {
    let _ = write!(
        out,
        "\n### 1, 4. Raw throughput: 1 000 000 records made before the clock starts, instant sink, no limit\n\n\
         Median of {RUNS} runs, each in its own process; the range is of the {RUNS}.\n\n\
         | scenario | partitions | ordering | transform | threads | records/s (median) | range | CPU ns/record | RSS with inputs | peak RSS |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for scenario in [
        "throughput",
        "throughput-unordered",
        "throughput-passthrough",
        "throughput-one-thread",
        "many-partitions",
    ] {
        let r = &s[scenario];
        if r.is_null() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {scenario} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} MiB | {:.0} MiB |",
            r["partitions"],
            text(&r["ordering"]),
            text(&r["transform"]),
            r["threads"],
            thousands(number(&r["records_per_second"])),
            range(r, "records_per_second"),
            number(&r["cpu_ns_per_record"]),
            number(&r["rss_with_inputs_mib"]),
            number(&r["rss_peak_mib"]),
        );
    }
}

fn latency_bound(out: &mut String, s: &Value) {
    out.push_str(
        "\n### 2. Latency-bound API: 100 ms latency, limit 5 000/s, 10 % failures, 4 x 250 partitions, 10 s\n\n\
         | clock | wall time | delivered (of 50 000) | ceiling utilization | calls | refused | p50 | p99 | lost |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for scenario in ["latency-bound-virtual", "latency-bound-real"] {
        let r = &s[scenario];
        if r.is_null() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {:.2} s | {} | {:.3} | {} | {} | {:.0} ms | {:.0} ms | {} |",
            if r["virtual_time"] == true {
                "virtual"
            } else {
                "real"
            },
            number(&r["wall_seconds"]),
            r["delivered"],
            number(&r["ceiling_utilization"]),
            r["attempts"],
            r["rate_limit_hits"],
            number(&r["p50_latency_ms"]),
            number(&r["p99_latency_ms"]),
            r["lost"],
        );
    }
}

fn overload(out: &mut String, s: &Value) {
    let o = &s["overload"];
    if !o.is_null() {
        let _ = write!(
            out,
            "\n### 3. Overload: sources offering {:.0} records/s to an API limited to {}/s, {} s of real time, queue of {}\n\n",
            number(&o["offered_rate"]),
            o["api_limit"],
            o["seconds"],
            o["queue_capacity"],
        );
        overload_samples(out, o, true);
    }
}

fn overload_real(out: &mut String, s: &Value) {
    let o = &s["overload-real"];
    if !o.is_null() {
        let _ = write!(
            out,
            "\n### 8. Overload through the real path: `sluice run` reading a file of {} records \
             against `sluice mock-api --rate-limit {}/s` (15 % failures, 10-50 ms), {} s, queue of {}, {} calls in flight\n\n\
             The RSS is the `sluice run` process's (VmRSS, sampled every second; peak VmHWM); \
             backlog and delivered from its `/metrics`. At the stop: {}.\n\n",
            thousands(number(&o["file_records"])),
            o["api_limit"],
            o["seconds"],
            o["queue_capacity"],
            o["max_in_flight"],
            text(&o["summary_line"]),
        );
        overload_samples(out, o, false);
    }
}

fn overload_samples(out: &mut String, o: &Value, offered: bool) {
    let _ = write!(
        out,
        "Delivered {}; peak RSS {:.1} MiB; RSS over the last half {:.1} to {:.1} MiB ({:.1} % spread); \
         largest backlog {}.\n\n| second | RSS | backlog | delivered |{}\n| --- | --- | --- | --- |{}\n",
        o["delivered"],
        number(&o["peak_rss_mib"]),
        number(&o["last_half_min_rss_mib"]),
        number(&o["last_half_max_rss_mib"]),
        number(&o["last_half_spread_pct"]),
        o["max_backlog"],
        if offered { " offered |" } else { "" },
        if offered { " --- |" } else { "" },
    );
    for sample in o["samples"].as_array().into_iter().flatten() {
        let second = sample["second"].as_u64().unwrap_or(0);
        if second == 1 || second % 5 == 0 {
            let _ = write!(
                out,
                "| {second} | {:.1} MiB | {} | {} |",
                number(&sample["rss_mib"]),
                sample["backlog"],
                sample["delivered"],
            );
            if offered {
                let _ = write!(out, " {} |", sample["offered"]);
            }
            out.push('\n');
        }
    }
}

fn ndjson(out: &mut String, s: &Value) {
    let _ = write!(
        out,
        "\n### 6. NDJSON file (page cache) through the `json` profile to an instant sink\n\n\
         1 000 000 `sluice generate` lines (4 sources x 8 partitions, identity and priority from \
         their fields), one file, `LineSource` + `JsonLines`; 8 workers, a queue of 1 000. \
         Median of {RUNS} runs.\n\n\
         | scenario | JSON Schema | file | records/s (median) | range | CPU ns/record | peak RSS |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for scenario in ["ndjson-json", "ndjson-json-schema"] {
        let r = &s[scenario];
        if r.is_null() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {scenario} | {} | {:.0} MiB | {} | {} | {:.0} | {:.0} MiB |",
            if r["schema"] == true {
                "five typed fields"
            } else {
                "none"
            },
            number(&r["file_mib"]),
            thousands(number(&r["records_per_second"])),
            range(r, "records_per_second"),
            number(&r["cpu_ns_per_record"]),
            number(&r["rss_peak_mib"]),
        );
    }
}

fn http(out: &mut String, s: &Value) {
    let _ = write!(
        out,
        "\n### 7. HTTP: the file through the `seed` profile and the HTTP sink to `sluice mock-api` \
         (loopback, no limit, no failures, no latency)\n\n\
         Each run is one process that starts its own `sluice mock-api` and measures both the \
         pipeline and the bare reqwest loop (same bodies, same `Idempotency-Key`s, as many tasks \
         as the pipeline has calls in flight) against it, alternating which goes first. \
         Median of {RUNS} runs; CPU per record is the client process's and the server's.\n\n\
         | scenario | records | records/call (max) | in flight | records/s (median) | range | calls | client CPU ns/record | server CPU ns/record |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for scenario in [
        "http-single",
        "http-baseline",
        "http-batch",
        "http-batch-baseline",
    ] {
        let r = &s[scenario];
        if r.is_null() {
            continue;
        }
        let per_call = if r["records_per_call"].is_null() {
            format!("{}", r["batch_max"])
        } else {
            format!("{:.1} ({})", number(&r["records_per_call"]), r["batch_max"])
        };
        let _ = writeln!(
            out,
            "| {scenario} | {} | {per_call} | {} | {} | {} | {} | {:.0} | {:.0} |",
            thousands(number(&r["records"])),
            r["max_in_flight"],
            thousands(number(&r["records_per_second"])),
            range(r, "records_per_second"),
            r["calls"],
            number(&r["cpu_ns_per_record"]),
            number(&r["server_cpu_ns_per_record"]),
        );
    }
}

fn micro(out: &mut String, results: &Value) {
    out.push_str(
        "\n### 5. Micro: transform + validate one record (criterion)\n\n\
         | payload | median ns/record | mean ns/record |\n| --- | --- | --- |\n",
    );
    if let Some(micro) = results["micro"].as_object() {
        for (kind, estimate) in micro {
            let _ = writeln!(
                out,
                "| {kind} | {:.0} | {:.0} |",
                number(&estimate["median_ns"]),
                number(&estimate["mean_ns"]),
            );
        }
    }
}
