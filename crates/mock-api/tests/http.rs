//! The mock API over real HTTP on 127.0.0.1: bodies, the limit, failures,
//! cancellation and the ledger. Real time, a few seconds at most per test;
//! assertions are on counts and the ledger, never on wall-clock durations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Answer, get_json, ledger, limited, plain, post, start};
use serde_json::json;
use sluice_mock_api::{
    LedgerCounts, MockApiConfig, MockApiError, Quota, StaleLeases, run_until, serve_with,
};

#[tokio::test]
async fn bad_bodies_get_400_and_are_counted_apart_from_calls() {
    let api = start(plain()).await;
    let client = reqwest::Client::new();
    for body in ["{not json", "42", r#"[{"stream":"a"}, 7]"#, "", "null"] {
        let Answer {
            status,
            body: answer,
            ..
        } = post(&client, &api, body, None).await;
        assert_eq!(status, 400, "{body:?}");
        let error = answer["error"].as_str().unwrap();
        assert!(!error.is_empty() && error.len() < 200, "{error:?}");
    }
    let ledger = ledger(&client, &api).await;
    assert_eq!(ledger.counts.bad_requests, 5);
    assert_eq!(
        (
            ledger.counts.calls,
            ledger.counts.successes,
            ledger.counts.records_delivered
        ),
        (0, 0, 0)
    );
    api.shutdown().await.unwrap();
}

#[tokio::test]
async fn one_record_and_an_array_are_accepted_and_named_in_the_ledger() {
    let api = start(plain()).await;
    let client = reqwest::Client::new();
    let one = post(
        &client,
        &api,
        r#"{"stream":"orders","partition":2,"sequence":7}"#,
        None,
    )
    .await;
    assert_eq!((one.status, one.body), (200, json!({ "accepted": 1 })));
    let array = json!([
        {"source": "web_analytics", "partition": 1, "sequence_id": 3, "payload": {"x": 1}},
        {"stream": "orders", "partition": 2, "sequence": 8},
        {"anything": true},
    ]);
    let many = post(&client, &api, &array.to_string(), None).await;
    assert_eq!((many.status, many.body), (200, json!({ "accepted": 3 })));

    let served = ledger(&client, &api).await;
    assert_eq!(served, api.ledger());
    assert_eq!(
        (
            served.counts.calls,
            served.counts.successes,
            served.counts.records_delivered
        ),
        (2, 2, 4)
    );
    assert_eq!(served.delivered("orders", 2), [7, 8]);
    assert_eq!(served.delivered("web_analytics", 1), [3]);
    assert_eq!(served.delivered("-", 0), [0]);
    assert_eq!(served.success_times_ms.len(), 2);
    assert!(served.counts.first_success_ms.unwrap() <= served.counts.last_success_ms.unwrap());
    assert_eq!(
        (served.counts.duplicates, served.counts.order_violations),
        (0, 0)
    );
    assert!(
        served
            .lost_from([("orders", 2, 7), ("orders", 2, 8)])
            .is_empty()
    );
    assert_eq!(served.lost_from([("orders", 2, 9)]), [("orders", 2, 9)]);

    // The JSON carries every field under its documented name.
    let raw: serde_json::Value = get_json(&client, &api, "/ledger").await;
    for field in [
        "calls",
        "successes",
        "failures",
        "rate_limit_hits",
        "bad_requests",
        "cancelled",
        "records_delivered",
        "first_success_ms",
        "last_success_ms",
        "success_times_ms",
        "streams",
        "idempotency_keys",
        "duplicates",
        "order_violations",
    ] {
        assert!(raw.get(field).is_some(), "missing {field}: {raw}");
    }
    assert_eq!(raw["streams"]["orders"]["2"]["delivered"], json!([7, 8]));
    let final_ledger = api.shutdown().await.unwrap();
    assert_eq!(final_ledger, served);
}

#[tokio::test]
async fn the_counts_endpoint_serves_the_ledgers_counters() {
    let api = start(limited(3, Duration::from_secs(60))).await;
    let client = reqwest::Client::new();
    for body in [
        r#"{"stream":"s","partition":0,"sequence":2}"#,
        r#"[{"stream":"s","partition":0,"sequence":1},{"stream":"s","partition":0,"sequence":2}]"#,
        r#"{"stream":"s","partition":1,"sequence":1}"#,
        r#"{"stream":"s","partition":1,"sequence":2}"#,
        "{not json",
    ] {
        post(&client, &api, body, None).await;
    }
    let counts: LedgerCounts = get_json(&client, &api, "/ledger/counts").await;
    let whole = ledger(&client, &api).await;
    assert_eq!(
        counts,
        LedgerCounts {
            calls: 4,
            successes: 3,
            failures: 0,
            rate_limit_hits: 1,
            bad_requests: 1,
            cancelled: 0,
            records_delivered: 4,
            duplicates: 1,
            order_violations: 1,
            first_success_ms: whole.counts.first_success_ms,
            last_success_ms: whole.counts.last_success_ms,
            lease_calls: 0,
            stale_lease_calls: 0,
        }
    );
    assert!(counts.first_success_ms.is_some());
    assert_eq!(
        (counts.calls, counts.successes, counts.records_delivered),
        (
            whole.counts.calls,
            whole.counts.successes,
            whole.counts.records_delivered
        )
    );
    assert_eq!(counts.distinct_records_delivered(), 3);
    api.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_window_answers_429_with_retry_after_then_admits_after_it() {
    let api = start(limited(1, Duration::from_secs(1))).await;
    let client = reqwest::Client::new();
    assert_eq!(post(&client, &api, "{}", None).await.status, 200);
    let refused = post(&client, &api, "{}", None).await;
    assert_eq!(refused.status, 429);
    let retry_after = refused.retry_after.unwrap();
    assert_eq!(retry_after, 1, "rounded up to whole seconds, at least 1");
    let wait_ms = refused.body["retry_after_ms"].as_u64().unwrap();
    assert!(wait_ms <= 1000, "{wait_ms}");
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(post(&client, &api, "{}", None).await.status, 200);

    let ledger = api.shutdown().await.unwrap();
    assert_eq!(
        (
            ledger.counts.calls,
            ledger.counts.successes,
            ledger.counts.rate_limit_hits
        ),
        (3, 2, 1)
    );
    assert_eq!(ledger.max_successes_in_any(Duration::from_secs(1)), 1);
}

#[tokio::test]
async fn failures_come_at_the_configured_rate_and_free_their_slot() {
    const CALLS: u32 = 500;
    const RATE: f64 = 0.3;
    // A limit of 400 an hour: failures must give their slot back, or the
    // last 100 calls would be refused (successes stay well under 400).
    let api = start(MockApiConfig {
        failure_rate: RATE,
        seed: 11,
        ..limited(400, Duration::from_secs(3600))
    })
    .await;
    let client = reqwest::Client::new();
    let (mut ok, mut unavailable) = (0u64, 0u64);
    for sequence in 0..CALLS {
        let answer = post(
            &client,
            &api,
            &json!({ "sequence": sequence }).to_string(),
            None,
        )
        .await;
        match answer.status {
            200 => ok += 1,
            503 => {
                assert_eq!(answer.body["error"], "simulated failure");
                unavailable += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let ledger = api.shutdown().await.unwrap();
    assert_eq!(
        (ledger.counts.successes, ledger.counts.failures),
        (ok, unavailable)
    );
    assert_eq!(ledger.counts.rate_limit_hits, 0);
    let expected = f64::from(CALLS) * RATE;
    let sigma = (f64::from(CALLS) * RATE * (1.0 - RATE)).sqrt();
    assert!(
        (unavailable as f64 - expected).abs() <= 4.0 * sigma,
        "{unavailable} failures of {CALLS}, expected {expected} ± {}",
        4.0 * sigma
    );
    // Every success's record is there, in order.
    assert_eq!(ledger.delivered("-", 0).len() as u64, ok);
    assert_eq!(ledger.counts.order_violations, 0);
}

#[tokio::test]
async fn a_client_that_goes_away_mid_call_frees_its_slot() {
    let api = start(MockApiConfig {
        latency_min: Duration::from_millis(400),
        latency_max: Duration::from_millis(400),
        ..limited(1, Duration::from_secs(60))
    })
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let gone = impatient
        .post(format!("{}/records", api.url()))
        .body(r#"{"sequence":1}"#)
        .send()
        .await;
    assert!(gone.unwrap_err().is_timeout());
    // The server learns of the closed connection shortly after.
    let mut waited = 0;
    while api.ledger().counts.cancelled == 0 {
        assert!(waited < 300, "the cancelled call was never noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let client = reqwest::Client::new();
    let answer = post(&client, &api, r#"{"sequence":2}"#, None).await;
    assert_eq!(answer.status, 200, "the cancelled call's slot was freed");
    assert_eq!(post(&client, &api, "{}", None).await.status, 429);

    let ledger = api.shutdown().await.unwrap();
    assert_eq!(
        (
            ledger.counts.calls,
            ledger.counts.cancelled,
            ledger.counts.successes,
            ledger.counts.rate_limit_hits
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(
        ledger.delivered("-", 0),
        [2],
        "the cancelled record is not delivered"
    );
}

#[tokio::test]
async fn idempotency_keys_are_counted_per_successful_call() {
    let api = start(plain()).await;
    let client = reqwest::Client::new();
    for key in ["orders/0/1", "orders/0/1", "orders/0/2"] {
        assert_eq!(post(&client, &api, "{}", Some(key)).await.status, 200);
    }
    assert_eq!(post(&client, &api, "{}", None).await.status, 200);
    let ledger = api.shutdown().await.unwrap();
    let keys: Vec<_> = ledger.idempotency_keys.into_iter().collect();
    assert_eq!(
        keys,
        [("orders/0/1".to_owned(), 2), ("orders/0/2".to_owned(), 1)]
    );

    // Keys of failed calls are not counted.
    let failing = start(MockApiConfig {
        failure_rate: 1.0,
        ..plain()
    })
    .await;
    assert_eq!(post(&client, &failing, "{}", Some("k")).await.status, 503);
    let ledger = failing.shutdown().await.unwrap();
    assert!(ledger.idempotency_keys.is_empty());
    assert_eq!(
        (ledger.counts.failures, ledger.counts.records_delivered),
        (1, 0)
    );
}

#[tokio::test]
async fn duplicates_and_order_violations_are_found_per_partition() {
    let api = start(plain()).await;
    let client = reqwest::Client::new();
    let record = |partition: u64, sequence: u64| json!({ "stream": "s", "partition": partition, "sequence": sequence });
    let calls = [
        json!([record(0, 1), record(0, 2), record(1, 10)]),
        json!([record(0, 3), record(1, 11)]),
        // (0, 2) again: a duplicate, and after 3: an order violation.
        record(0, 2),
        // 5 then 4: 4 comes after a higher sequence; not a duplicate.
        json!([record(0, 5), record(0, 4)]),
    ];
    for call in calls {
        assert_eq!(
            post(&client, &api, &call.to_string(), None).await.status,
            200
        );
    }
    let ledger = api.shutdown().await.unwrap();
    assert_eq!(ledger.delivered("s", 0), [1, 2, 3, 2, 5, 4]);
    assert_eq!(ledger.delivered("s", 1), [10, 11]);
    assert_eq!(
        (ledger.counts.duplicates, ledger.counts.order_violations),
        (1, 2)
    );
    assert_eq!(ledger.counts.records_delivered, 8);
    let expected = (1..=6).map(|sequence| ("s", 0, sequence));
    assert_eq!(ledger.lost_from(expected), [("s", 0, 6)]);
}

#[tokio::test]
async fn run_until_refuses_bad_settings_and_stops_on_its_signal() {
    let bad = MockApiConfig {
        rate_limit: Some(Quota::per_second(0)),
        ..plain()
    };
    let error = run_until(bad, "127.0.0.1:0", async {}).await.unwrap_err();
    assert!(matches!(&error, MockApiError::Config(e) if e.field() == "rate_limit.limit"));

    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let error = run_until(plain(), addr, async {}).await.unwrap_err();
    assert!(matches!(error, MockApiError::Bind { .. }), "{error}");
    drop(taken);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run_until(plain(), "127.0.0.1:0", async {
        let _ = stopped.await;
    }));
    stop.send(()).unwrap();
    let ledger = server.await.unwrap().unwrap();
    assert_eq!(ledger.counts.calls, 0);
}

#[tokio::test]
async fn after_shutdown_the_port_is_closed() {
    let api = start(plain()).await;
    let url = api.url();
    let client = reqwest::Client::new();
    assert_eq!(post(&client, &api, "{}", None).await.status, 200);
    api.shutdown().await.unwrap();
    let refused = reqwest::Client::new()
        .post(format!("{url}/records"))
        .body("{}")
        .send()
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn a_stale_lease_is_counted_and_refused_when_the_api_fences() {
    for stale in [StaleLeases::Count, StaleLeases::Refuse] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = serve_with(plain(), stale, listener).await.unwrap();
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for (sequence, leases) in [(1, "3=5"), (2, "3=4, 7=1"), (3, "3=5")] {
            let body = json!({"stream": "s", "partition": 3, "sequence": sequence});
            let answer = client
                .post(format!("{}/records", api.url()))
                .header("content-type", "application/json")
                .header("Sluice-Lease", leases)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            statuses.push(answer.status().as_u16());
        }
        let ledger = ledger(&client, &api).await;
        assert_eq!(
            (ledger.counts.lease_calls, ledger.counts.stale_lease_calls),
            (3, 1)
        );
        match stale {
            StaleLeases::Count => {
                assert_eq!(statuses, [200, 200, 200]);
                assert_eq!(ledger.delivered("s", 3), [1, 2, 3]);
            }
            StaleLeases::Refuse => {
                assert_eq!(statuses, [200, 409, 200]);
                assert_eq!(ledger.delivered("s", 3), [1, 3]);
            }
        }
        api.shutdown().await.unwrap();
    }
}
