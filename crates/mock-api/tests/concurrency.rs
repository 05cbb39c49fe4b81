//! The limit under heavy concurrency over real HTTP: 200 clients hammer a
//! limit of 20 successes a second for 3 seconds of real time. Counted by
//! the server's admission times, no 1-second window holds more than 20.
//! A test binary of its own, so that its load does not disturb the others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use sluice_mock_api::{MockApiConfig, Quota};
use tokio::time::Instant;

const CLIENTS: usize = 200;
const LIMIT: u32 = 20;

#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    limited: u64,
    failed: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_clients_never_get_more_than_the_limit_in_any_window() {
    let api = common::start(MockApiConfig {
        rate_limit: Some(Quota::per_second(LIMIT)),
        failure_rate: 0.2,
        latency_min: Duration::ZERO,
        latency_max: Duration::from_millis(20),
        seed: 5,
    })
    .await;
    let url = format!("{}/records", api.url());
    // One client, cloned: its pool opens a connection for each of the 200
    // concurrent requests (building 200 clients would take seconds of TLS
    // set-up in a debug build).
    let http = reqwest::Client::new();
    let started = Instant::now();
    let until = started + Duration::from_secs(3);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let url = url.clone();
            let http = http.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut sequence = 0u64;
                while Instant::now() < until {
                    let body = format!(r#"{{"stream":"c{client}","sequence":{sequence}}}"#);
                    let response = http.post(&url).body(body).send().await.unwrap();
                    match response.status().as_u16() {
                        200 => {
                            tally.ok += 1;
                            sequence += 1;
                        }
                        429 => {
                            let retry_after: u64 = response.headers()["retry-after"]
                                .to_str()
                                .unwrap()
                                .parse()
                                .unwrap();
                            assert!(retry_after >= 1);
                            tally.limited += 1;
                        }
                        503 => tally.failed += 1,
                        other => panic!("unexpected status {other}"),
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for client in clients {
        let tally = client.await.unwrap();
        total.ok += tally.ok;
        total.limited += tally.limited;
        total.failed += tally.failed;
    }
    let ledger = api.shutdown().await.unwrap();

    assert_eq!(
        (
            ledger.counts.successes,
            ledger.counts.rate_limit_hits,
            ledger.counts.failures
        ),
        (total.ok, total.limited, total.failed)
    );
    assert_eq!(ledger.counts.cancelled, 0);
    assert_eq!(ledger.counts.calls, total.ok + total.limited + total.failed);
    assert_eq!(ledger.success_times_ms.len() as u64, total.ok);
    let busiest = ledger.max_successes_in_any(Duration::from_secs(1));
    assert!(
        busiest <= LIMIT as usize,
        "{busiest} successes in one window"
    );
    // The clients pressed hard, and failures gave their slots back: the
    // limit was reached, about 20 a second.
    assert!(total.limited > 0 && total.failed > 0, "{total:?}");
    assert!(total.ok >= 40, "{total:?}");
    assert_eq!(busiest, LIMIT as usize);
    assert_eq!(
        (ledger.counts.duplicates, ledger.counts.order_violations),
        (0, 0)
    );
    eprintln!(
        "{total:?}, busiest window {busiest}, {:?}",
        started.elapsed()
    );
}
