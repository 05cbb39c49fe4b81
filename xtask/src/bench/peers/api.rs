//! `sluice mock-api` as a process of its own, on a free port of
//! 127.0.0.1, and the counters of its ledger (`GET /ledger/counts`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use super::Process;

/// A running `sluice mock-api`, killed when dropped.
pub struct MockApi {
    /// The process.
    process: Process,
    /// Where it listens, `127.0.0.1:PORT`.
    addr: String,
}

impl MockApi {
    /// Starts `sluice mock-api --listen 127.0.0.1:0` with `args`, its
    /// standard error to `log`, and reads its address (the first line it
    /// prints).
    pub fn start(sluice: &Path, args: &[String], log: &Path) -> anyhow::Result<MockApi> {
        let mut child = Command::new(sluice)
            .args(["mock-api", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("could not start sluice mock-api")?;
        let out = child.stdout.take();
        let process = Process(child);
        let mut addr = String::new();
        if let Some(out) = out {
            BufReader::new(out).read_line(&mut addr)?;
        }
        let addr = addr.trim().to_owned();
        if addr.is_empty() {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            bail!("sluice mock-api printed no address:\n{said}");
        }
        Ok(MockApi { process, addr })
    }

    /// Where it listens, `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `GET /ledger/counts`: calls, successes, failures, refusals,
    /// records delivered, duplicates, order violations, first and last
    /// success (ms since the API started).
    pub fn counts(&self) -> anyhow::Result<Value> {
        let body = get(&self.addr, "/ledger/counts")?;
        serde_json::from_str(&body)
            .with_context(|| format!("GET /ledger/counts answered no JSON: {body}"))
    }

    /// `GET /ledger`: the counts and every success's time (ms since the
    /// API started).
    pub fn ledger(&self) -> anyhow::Result<Value> {
        let body = get(&self.addr, "/ledger")?;
        serde_json::from_str(&body).with_context(|| format!("GET /ledger answered no JSON: {body}"))
    }

    /// Stops it (SIGTERM) and waits for it.
    pub fn stop(self) -> anyhow::Result<()> {
        self.process.terminate().map(drop)
    }
}

/// Every success's time in a `ledger` (ms since the API started), in
/// order.
pub fn success_times(ledger: &Value) -> anyhow::Result<Vec<u64>> {
    let mut times: Vec<u64> = ledger["success_times_ms"]
        .as_array()
        .context("the ledger has no success_times_ms")?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    times.sort_unstable();
    Ok(times)
}

/// `GET path` over a plain HTTP/1.0 connection; the body of a 200.
fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("could not reach {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("GET {path} from {addr}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path} from {addr} answered {head}");
    }
    Ok(body.to_owned())
}
