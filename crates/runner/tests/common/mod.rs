//! Helpers of the tests that run `sluice` as users do: real processes,
//! real HTTP on 127.0.0.1, real signals.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_mock_api::{Ledger, LedgerCounts};

pub mod members;
pub mod services;

/// The binary under test.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// Starts `sluice run --json` reading `input` into `api` with the limit
/// `rate`, enough attempts that no record runs out of them against a 15 %
/// failure rate, and `extra` flags; stdout and stderr piped.
pub fn start_run(input: &Path, api: &MockApi, rate: &str, extra: &[&str]) -> Child {
    sluice()
        .args([
            "run",
            "--input",
            input.to_str().unwrap(),
            "--http-url",
            &api.url(),
        ])
        .args(["--rate-limit", rate, "--max-attempts", "30", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A `sluice mock-api` process, killed when dropped.
pub struct MockApi {
    child: Child,
    /// Its address.
    pub addr: String,
}

impl MockApi {
    /// Starts `sluice mock-api --listen 127.0.0.1:0` with `flags`.
    pub fn start(flags: &[&str]) -> MockApi {
        let mut child = sluice()
            .args(["mock-api", "--listen", "127.0.0.1:0"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        MockApi {
            child,
            addr: first.trim().to_owned(),
        }
    }

    /// Its records endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/records", self.addr)
    }

    /// Its ledger now.
    pub fn ledger(&self) -> Ledger {
        serde_json::from_str(&get(&self.addr, "/ledger")).unwrap()
    }

    /// Its ledger's counters now: cheap enough to poll while a run goes
    /// on without slowing the API down (the whole ledger is not).
    pub fn counts(&self) -> LedgerCounts {
        serde_json::from_str(&get(&self.addr, "/ledger/counts")).unwrap()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of `GET path` at `addr`, over plain HTTP/1.0.
pub fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    body.to_owned()
}

/// `sluice generate --records n --seed s` into `dir/name`.
pub fn generate(dir: &Path, name: &str, records: u64, seed: u64) -> PathBuf {
    let path = dir.join(name);
    let output = sluice()
        .args([
            "generate",
            "--records",
            &records.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    std::fs::write(&path, output.stdout).unwrap();
    path
}

/// Waits until `done` holds, checking every 50 ms, for at most `limit`.
pub fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` at most `limit`, killing it past that (a hang guard),
/// and returns what it wrote. Its pipes are read as it runs, so a child
/// that writes much is never blocked on a full pipe; a hung child's
/// stderr ends the panic message.
pub fn wait_bounded(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (sender, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    if let Ok(output) = waited.recv_timeout(limit) {
        return output.unwrap();
    }
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let said = waited
        .recv_timeout(Duration::from_secs(10))
        .ok()
        .and_then(Result::ok)
        .map(|output| String::from_utf8_lossy(&output.stderr).into_owned())
        .unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = said.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    panic!("the process did not end within {limit:?}; the end of its stderr:\n{tail}");
}

/// Sends `signal` (e.g. "-TERM", "-9") to `child`.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The JSON report `sluice run --json` printed.
pub fn report(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|error| {
        panic!(
            "no JSON report ({error}); stdout: {text}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The dead letters of a dead-letter file, as (stream, partition, sequence, reason).
pub fn dead_letters(file: &Path) -> Vec<(String, u64, u64, String)> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .map(|line| {
            let letter: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                letter["stream"].as_str().unwrap().to_owned(),
                letter["partition"].as_u64().unwrap(),
                letter["sequence"].as_u64().unwrap(),
                letter["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub type Identity = (String, u64, u64);

/// Every line of a `sluice generate` file: its seed identity when it is a
/// deliverable record, else its position (stream `records`, partition 0,
/// line number), as the run names undeliverable lines.
pub fn expected(file: &Path) -> (BTreeSet<Identity>, BTreeSet<Identity>) {
    let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
    let mut valid = BTreeSet::new();
    let mut invalid = BTreeSet::new();
    // A line cut short may end inside a character: read bytes.
    let bytes = std::fs::read(file).unwrap();
    let lines = bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty());
    for (i, line) in lines.enumerate() {
        match serde_json::from_slice::<sluice_models::StreamData>(line) {
            Ok(record) if record.timestamp > 0.0 => {
                valid.insert((
                    record.source.as_str().to_owned(),
                    u64::from(record.partition),
                    record.sequence_id,
                ));
            }
            Ok(record) => {
                invalid.insert((
                    record.source.as_str().to_owned(),
                    u64::from(record.partition),
                    record.sequence_id,
                ));
            }
            Err(_) => {
                invalid.insert((stem.clone(), 0, i as u64 + 1));
            }
        }
    }
    (valid, invalid)
}

/// How many times the API accepted each record.
pub fn delivered_counts(api: &MockApi) -> BTreeMap<Identity, u64> {
    let ledger = api.ledger();
    let mut counts = BTreeMap::new();
    for (stream, partitions) in &ledger.streams {
        for (partition, deliveries) in partitions {
            for sequence in &deliveries.delivered {
                *counts
                    .entry((stream.clone(), *partition, *sequence))
                    .or_default() += 1;
            }
        }
    }
    counts
}

/// Checks that each record of `duplicated` was sent again under the same
/// `Idempotency-Key`: the API saw its key at least twice.
pub fn sent_again_under_the_same_key<'a>(
    api: &MockApi,
    duplicated: impl IntoIterator<Item = &'a Identity>,
) {
    let keys = api.ledger().idempotency_keys;
    for (stream, partition, sequence) in duplicated {
        let id = sluice_processor::RecordId {
            stream: sluice_processor::StreamName::new(stream).unwrap(),
            partition: u32::try_from(*partition).unwrap(),
            sequence: *sequence,
        };
        let key = sluice_http::record_key(sluice_processor::RecordKey::of_id(&id));
        assert!(
            keys.get(&key).copied().unwrap_or(0) >= 2,
            "{id} was sent again under a new key"
        );
    }
}

/// An address on 127.0.0.1 where nothing listens (a port the system just
/// handed out and took back).
pub fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}
