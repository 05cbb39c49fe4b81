//! The overload through the real path: `sluice run` reading a large
//! generated file (faster than the API takes it) against `sluice mock-api
//! --rate-limit 1000/s`, the RSS of the `sluice run` process sampled every
//! second from `/proc/<pid>/status`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::util::{generated_file, root};

/// How long the overload runs.
pub const SECONDS: u64 = 60;

/// The API's limit (and the client's `--rate-limit`), successes a second.
const API_LIMIT: u32 = 1_000;

/// Records in the file: more than the run can deliver in [`SECONDS`] plus
/// a full queue, so the source never runs dry.
const FILE_RECORDS: u64 = 200_000;

/// `--queue-capacity`, as in the simulated overload.
const QUEUE_CAPACITY: u32 = 10_000;

/// `--max-in-flight`, as in the simulated overload.
const MAX_IN_FLIGHT: u32 = 64;

/// A child process killed when dropped, so that a failed run leaves
/// nothing behind.
pub(super) struct Process(pub(super) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// The process id.
    pub(super) fn id(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM (the first signal: a bounded stop), then its standard
    /// output until it exits.
    pub(super) fn terminate(mut self) -> anyhow::Result<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status()
            .context("could not run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed ({status})", self.id());
        }
        let mut stdout = String::new();
        if let Some(mut out) = self.0.stdout.take() {
            out.read_to_string(&mut stdout)?;
        }
        self.0.wait()?;
        Ok(stdout)
    }
}

/// Runs the overload for `seconds` and returns its figures and samples.
pub fn run(sluice: &Path, seconds: u64) -> anyhow::Result<Value> {
    let input = input_file(sluice)?;
    let work = root().join("target/bench-data/overload-real");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let mut api = Command::new(sluice)
        .args(["mock-api", "--listen", "127.0.0.1:0", "--rate-limit"])
        .arg(format!("{API_LIMIT}/s"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("mock-api.log"))?)
        .spawn()
        .context("could not start sluice mock-api")?;
    let mut address = String::new();
    if let Some(out) = api.stdout.take() {
        BufReader::new(out).read_line(&mut address)?;
    }
    let api = Process(api);
    let metrics_addr = free_port()?;
    let run = Command::new(sluice)
        .arg("run")
        .arg("--input")
        .arg(&input)
        .arg("--http-url")
        .arg(format!("http://{}/records", address.trim()))
        .arg("--rate-limit")
        .arg(format!("{API_LIMIT}/s"))
        .arg("--queue-capacity")
        .arg(QUEUE_CAPACITY.to_string())
        .arg("--max-in-flight")
        .arg(MAX_IN_FLIGHT.to_string())
        .arg("--checkpoint")
        .arg(work.join("checkpoint.json"))
        .arg("--dead-letters")
        .arg(work.join("dead-letters.ndjson"))
        .arg("--metrics-addr")
        .arg(metrics_addr.to_string())
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("run.log"))?)
        .spawn()
        .context("could not start sluice run")?;
    let mut run = Process(run);

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut peak = 0.0_f64;
    for second in 1..=seconds {
        let due = started + Duration::from_secs(second);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if let Some(status) = run.0.try_wait()? {
            bail!("sluice run ended after {second} s ({status})");
        }
        let (rss, hwm) = rss_mib(run.id());
        peak = peak.max(hwm);
        let metrics = scrape(metrics_addr).unwrap_or_default();
        samples.push(json!({
            "second": second,
            "rss_mib": rss,
            "backlog": metric(&metrics, "sluice_records_in_pipeline"),
            "delivered": metric(&metrics, "sluice_records_delivered_total"),
        }));
    }
    let summary = run.terminate()?;
    let summary: Value = serde_json::from_str(&summary).with_context(|| {
        let log = std::fs::read_to_string(work.join("run.log")).unwrap_or_default();
        format!("sluice run printed no JSON summary:\n{log}")
    })?;
    api.terminate()?;
    let api_said = std::fs::read_to_string(work.join("mock-api.log")).unwrap_or_default();
    Ok(figures(seconds, &samples, peak, &summary, &api_said))
}

/// The overload's figures: RSS peak and spread over the last half.
fn figures(seconds: u64, samples: &[Value], peak: f64, summary: &Value, api: &str) -> Value {
    let number = |v: &Value| v.as_f64().unwrap_or(0.0);
    let rss: Vec<f64> = samples.iter().map(|s| number(&s["rss_mib"])).collect();
    let last_half = &rss[rss.len() / 2..];
    let last_max = last_half.iter().copied().fold(0.0, f64::max);
    let last_min = last_half.iter().copied().fold(f64::MAX, f64::min);
    let max_backlog = samples
        .iter()
        .filter_map(|s| s["backlog"].as_u64())
        .max()
        .unwrap_or(0);
    let summary_line = format!(
        "delivered {}, dead-lettered {}, handed back {}, conserved {}, {} calls, {} refused; the API: {}",
        summary["delivered"],
        summary["dead_lettered"],
        summary["handed_back"],
        summary["conserved"],
        summary["calls"],
        summary["rate_limit_hits"],
        api.lines()
            .last()
            .unwrap_or("?")
            .trim_start_matches("sluice mock-api: "),
    );
    json!({
        "seconds": seconds,
        "api_limit": API_LIMIT,
        "file_records": FILE_RECORDS,
        "queue_capacity": QUEUE_CAPACITY,
        "max_in_flight": MAX_IN_FLIGHT,
        "delivered": summary["delivered"],
        "peak_rss_mib": peak.max(rss.iter().copied().fold(0.0, f64::max)),
        "last_half_max_rss_mib": last_max,
        "last_half_min_rss_mib": last_min,
        "last_half_spread_pct": 100.0 * (last_max - last_min) / last_max,
        "max_backlog": max_backlog,
        "summary_line": summary_line,
        "summary": summary,
        "samples": samples,
    })
}

/// `sluice generate --records 200000 --seed 1 --partitions 8` (1 % of the
/// lines undeliverable, the default), made once under `target/bench-data`.
fn input_file(sluice: &Path) -> anyhow::Result<PathBuf> {
    let path = root()
        .join("target/bench-data")
        .join(format!("overload-real-{FILE_RECORDS}.ndjson"));
    generated_file(sluice, &path, FILE_RECORDS, &[])
}

/// An address on 127.0.0.1 with a port free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// VmRSS and VmHWM of process `pid`, MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
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

/// `GET /metrics` (Prometheus text format), over a plain HTTP/1.0
/// connection.
fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The sum of every series of metric `name` (over its labels).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next())
        .filter_map(|value| value.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_is_summed_over_its_labels() {
        let text = "# TYPE sluice_records_delivered_total counter\n\
            sluice_records_delivered_total{stream=\"a\"} 3\n\
            sluice_records_delivered_total{stream=\"b\"} 4\n\
            sluice_records_delivered_total_extra 100\n\
            sluice_records_in_pipeline 10000\n";
        assert_eq!(metric(text, "sluice_records_delivered_total"), 7);
        assert_eq!(metric(text, "sluice_records_in_pipeline"), 10_000);
        assert_eq!(metric(text, "sluice_http_requests_total"), 0);
    }
}
