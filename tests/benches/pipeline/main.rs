//! End-to-end pipeline benchmarks, one scenario per process (so that memory
//! readings are its own), each printing one JSON object on stdout. Run by
//! `cargo xtask bench`, which writes BENCHMARKS.md; by hand:
//! `cargo bench -p sluice-tests --bench pipeline -- <scenario>`.
//!
//! - `simulated`: records made in memory, the simulated API;
//! - `ndjson`: an NDJSON file through the `json` profile;
//! - `http`: an NDJSON file through the `seed` profile and the HTTP sink to
//!   `sluice mock-api`, against a bare client loop.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // a benchmark may panic on setup errors

mod data;
mod http;
mod mock_api;
mod ndjson;
mod simulated;

use std::time::Duration;

use async_trait::async_trait;
use sluice_processor::{DeliveryOrder, Envelope, SendError, Sink};

use simulated::Transform;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCENARIOS: &str = "throughput, throughput-unordered, throughput-passthrough, \
    throughput-one-thread, latency-bound-virtual, latency-bound-real, overload, many-partitions, \
    ndjson-json, ndjson-json-schema, http-single, http-batch \
    (the http scenarios take --run N: odd runs measure the bare client first; \
    --only pipeline|baseline measures one side alone, for a profiler)";

fn main() {
    // cargo bench passes --bench; scenario names are the other arguments.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.iter().find(|a| !a.starts_with("--")).cloned();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let run = flag("--run").and_then(|n| n.parse().ok()).unwrap_or(1);
    let only = flag("--only");
    let result = match scenario.as_deref().unwrap_or("throughput") {
        "throughput" => {
            simulated::raw_throughput(8, DeliveryOrder::Partition, Transform::Standard, 2)
        }
        "throughput-unordered" => {
            simulated::raw_throughput(8, DeliveryOrder::None, Transform::Standard, 2)
        }
        "throughput-passthrough" => {
            simulated::raw_throughput(8, DeliveryOrder::Partition, Transform::PassThrough, 2)
        }
        "throughput-one-thread" => {
            simulated::raw_throughput(8, DeliveryOrder::Partition, Transform::Standard, 1)
        }
        "many-partitions" => {
            simulated::raw_throughput(2_500, DeliveryOrder::Partition, Transform::Standard, 2)
        }
        "latency-bound-virtual" => simulated::latency_bound(true),
        "latency-bound-real" => simulated::latency_bound(false),
        "overload" => simulated::overload(Duration::from_secs(60)),
        "ndjson-json" => ndjson::ndjson(false),
        "ndjson-json-schema" => ndjson::ndjson(true),
        "http-single" => http::http(http::SINGLE, run, only),
        "http-batch" => http::http(http::BATCH, run, only),
        other => {
            eprintln!("unknown scenario {other:?}; scenarios: {SCENARIOS}");
            std::process::exit(2);
        }
    };
    println!("{result}");
}

/// Accepts every record at once. (The processor counts the deliveries; a
/// shared counter here would add a contended cache line per record that is
/// the fixture's, not the pipeline's.)
struct InstantSink;

#[async_trait]
impl<R: Sync + 'static> Sink<R> for InstantSink {
    async fn send(&self, _: &[Envelope<R>]) -> Result<(), SendError> {
        Ok(())
    }
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    cpu_time_of("/proc/self/stat")
}

/// User plus system CPU time of the process whose `stat` file is at
/// `path` (clock ticks at USER_HZ = 100: 10 ms resolution).
fn cpu_time_of(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name (field 2) may hold spaces: count from its ')'.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // After the name: state (field 3) at 0, ..., utime (14) at 11, stime (15) at 12.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((field(11) + field(12)) * 10)
}

/// Resident set size now and at its peak, MiB (from /proc/self/status).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn multi_thread_runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
}
