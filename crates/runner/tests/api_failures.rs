//! `sluice run` against APIs on 127.0.0.1 that are misconfigured, down,
//! or refuse one record: an API failing is not a record failing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use common::{dead_letters, eventually, report, signal, sluice, wait_bounded};

/// Each record's `n`, in the order the API accepted them, by partition.
type Accepted = Arc<Mutex<BTreeMap<u64, Vec<u64>>>>;

/// An API on 127.0.0.1 with its own runtime: dropped, it is gone, its
/// connections with it (connection refused).
struct Api {
    runtime: Option<tokio::runtime::Runtime>,
    addr: std::net::SocketAddr,
    accepted: Accepted,
}

impl Api {
    /// Listens on `port` (0: any) with the routes below.
    fn start(port: u16, accepted: Accepted) -> Api {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/records", post(records))
            .route("/small", post(small))
            .route("/last", post(last))
            .route("/unauthorized", post(|| async { StatusCode::UNAUTHORIZED }))
            .route(
                "/moved",
                any(|| async { (StatusCode::MOVED_PERMANENTLY, [("location", "/records")]) }),
            )
            .with_state(Arc::clone(&accepted));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Api {
            runtime: Some(runtime),
            addr,
            accepted,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepted(&self) -> BTreeMap<u64, Vec<u64>> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `POST /records`: record 5 always gets 500 (a poison record); a body
/// of more than 5 records gets 413; anything else is accepted. `POST
/// /small`: the same without the poison record. Other methods get 405,
/// so a `HEAD` says the API is up.
async fn records(State(accepted): State<Accepted>, body: String) -> Response {
    accept(accepted, body, Some(5))
}

async fn small(State(accepted): State<Accepted>, body: String) -> Response {
    accept(accepted, body, None)
}

/// `POST /last`: as `/records`, with record 30 (a run's last) the poison.
async fn last(State(accepted): State<Accepted>, body: String) -> Response {
    accept(accepted, body, Some(30))
}

fn accept(accepted: Accepted, body: String, poison: Option<u64>) -> Response {
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let records = match value {
        serde_json::Value::Array(records) => records,
        one => vec![one],
    };
    if records.len() > 5 {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    if records.iter().any(|r| r["n"].as_u64() == poison) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "this record breaks us").into_response();
    }
    let mut accepted = accepted.lock().unwrap();
    for record in records {
        let partition = record["p"].as_u64().unwrap();
        accepted
            .entry(partition)
            .or_default()
            .push(record["n"].as_u64().unwrap());
    }
    StatusCode::OK.into_response()
}

/// How many records the API accepted so far.
fn delivered(accepted: &Accepted) -> usize {
    accepted.lock().unwrap().values().map(Vec::len).sum()
}

/// `RECORDS` lines `{"n":N,"p":N%3}` in `dir/numbers.ndjson`.
fn input(dir: &Path, records: u64) {
    let lines: String = (1..=records)
        .map(|n| format!("{{\"n\":{n},\"p\":{}}}\n", n % 3))
        .collect();
    std::fs::write(dir.join("numbers.ndjson"), lines).unwrap();
}

fn run(dir: &Path, url: &str, extra: &[&str]) -> Child {
    sluice()
        .current_dir(dir)
        .args([
            "run",
            "numbers.ndjson",
            "--profile",
            "json",
            "--partition-field",
            "p",
        ])
        .args([
            "--checkpoint",
            "numbers.checkpoint",
            "--dead-letters",
            "dead.ndjson",
        ])
        .args(["--http-url", url, "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every `n` of 1..=records but `except`, once, ascending in each partition.
fn all_in_order(accepted: &BTreeMap<u64, Vec<u64>>, records: u64, except: &[u64]) {
    let mut seen: Vec<u64> = accepted.values().flatten().copied().collect();
    seen.sort_unstable();
    let expected: Vec<u64> = (1..=records).filter(|n| !except.contains(n)).collect();
    assert_eq!(seen, expected);
    for (partition, ns) in accepted {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "partition {partition}: {ns:?}"
        );
    }
}

#[test]
fn a_misconfigured_api_dead_letters_nothing_stops_and_a_rerun_delivers_everything() {
    for (path, says) in [
        ("/unauthorized", "401"),
        ("/missing", "404"),
        ("/moved", "301"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        input(dir, 12);
        let api = Api::start(0, Accepted::default());
        let output = wait_bounded(run(dir, &api.url(path), &[]), Duration::from_secs(60));
        assert_eq!(output.status.code(), Some(5), "{path}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(says),
            "{path}: {}",
            stderr(&output)
        );
        let report = report(&output);
        assert_eq!(report["dead_lettered"], 0, "{path}");
        assert!(report["halted"].as_str().unwrap().contains(says));
        assert!(dead_letters(&dir.join("dead.ndjson")).is_empty());
        // The right URL, the same checkpoint: every record.
        let output = wait_bounded(run(dir, &api.url("/records"), &[]), Duration::from_secs(60));
        // Record 5 is poison: 1 letter of 12, within --max-dead-letters.
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        all_in_order(&api.accepted(), 12, &[5]);
    }
}

#[test]
fn an_api_that_cannot_be_reached_stops_the_run_before_it_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    input(dir, 3);
    let api = Api::start(0, Accepted::default());
    let closed = format!("http://{}/records", common::closed_address());
    let plain_as_tls = api.url("/records").replace("http://", "https://");
    for url in [closed, plain_as_tls] {
        let output = wait_bounded(run(dir, &url, &[]), Duration::from_secs(60));
        assert_eq!(output.status.code(), Some(2), "{url}");
        let said = stderr(&output);
        assert!(
            said.contains("cannot reach the API") && said.contains("127.0.0.1"),
            "{said}"
        );
        assert!(!dir.join("numbers.checkpoint").exists(), "nothing was read");
    }
}

/// A run over `records` lines against `route` of an API of its own, to
/// its end (bounded): the folder, the API and what the run said.
fn run_to_end(records: u64, route: &str, extra: &[&str]) -> (tempfile::TempDir, Api, Output) {
    let tmp = tempfile::tempdir().unwrap();
    input(tmp.path(), records);
    let api = Api::start(0, Accepted::default());
    let child = run(tmp.path(), &api.url(route), extra);
    let output = wait_bounded(child, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    (tmp, api, output)
}

/// Runs 30 records against `route`, whose record `poison` always gets a
/// 500: it alone is dead-lettered after its 3 attempts (1 letter of 30 is
/// within --max-dead-letters, 10 %, so the run exits 0), the rest
/// delivered in order.
fn one_poison_record(route: &str, poison: u64, extra: &[&str]) {
    let extra = [extra, &["--max-attempts", "3"][..]].concat();
    let (tmp, api, _) = run_to_end(30, route, &extra);
    let letters = dead_letters(&tmp.path().join("dead.ndjson"));
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0].3.contains("gave up after 3 attempts"),
        "{letters:?}"
    );
    assert!(letters[0].3.contains("500"), "{letters:?}");
    all_in_order(&api.accepted(), 30, &[poison]);
}

#[test]
fn a_poison_record_alone_is_dead_lettered_and_its_partition_goes_on_in_order() {
    one_poison_record("/records", 5, &["--concurrency", "4"]);
}

#[test]
fn the_last_record_failing_alone_is_dead_lettered_and_the_run_ends() {
    // Record 30 may fail after every other record was delivered: nothing
    // else gets through meanwhile, and the API's HEAD answer (405) tells
    // it from an outage.
    one_poison_record("/last", 30, &[]);
}

#[test]
fn an_api_down_for_30_s_loses_nothing_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    input(dir, 600);
    let accepted = Accepted::default();
    let api = Api::start(0, Arc::clone(&accepted));
    let port = api.addr.port();
    let url = api.url("/records");
    let child = run(dir, &url, &["--rate-limit", "20/s", "--max-attempts", "2"]);
    eventually(Duration::from_secs(60), "50 delivered", || {
        delivered(&accepted) >= 50
    });
    drop(api);
    std::thread::sleep(Duration::from_secs(30));
    let api = Api::start(port, Arc::clone(&accepted));
    eventually(Duration::from_secs(120), "every record but 5", || {
        delivered(&accepted) >= 599
    });
    let output = wait_bounded(child, Duration::from_secs(60));
    let said = stderr(&output);
    assert!(said.contains("the API is failing"), "{said}");
    assert!(said.contains("the API answers again"), "{said}");
    let report = report(&output);
    assert_eq!(report["dead_lettered"], 1, "only the poison record: {said}");
    all_in_order(&api.accepted(), 600, &[5]);
    let _ = signal;
}

#[test]
fn a_batch_too_large_is_halved_and_nothing_is_dead_lettered() {
    // 413 above 5 records a call, batches of up to 20.
    let extra = ["--batch-max", "20", "--concurrency", "4"];
    let (_tmp, api, output) = run_to_end(60, "/small", &extra);
    assert_eq!(report(&output)["dead_lettered"], 0);
    all_in_order(&api.accepted(), 60, &[]);
}
