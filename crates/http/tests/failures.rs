//! How `HttpSink` tells an unreachable or misconfigured API from a bad
//! record, against real servers on 127.0.0.1: what cannot be reached is
//! unavailable, statuses that say the configuration is wrong are
//! misconfigured (naming the URL without credentials), the status lists
//! are configurable, and a batch answered 413 is sent in halves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{HANG_GUARD, Reply, Server, batch, failure, send};
use serde_json::{Value, json};
use sluice_http::{ConfigError, HttpSink, HttpSinkConfig, StatusClasses};
use sluice_processor::{SendError, Sink, SinkError};

fn sink(url: &str) -> HttpSink {
    HttpSink::new(HttpSinkConfig::new(url).timeout(Duration::from_secs(5))).unwrap()
}

async fn one(sink: &HttpSink) -> SinkError {
    failure(send(sink, &batch("failures", 0, vec![json!({"n": 0})])).await)
}

#[tokio::test]
async fn a_plain_server_spoken_to_over_https_is_unavailable() {
    let server = Server::replying(200).await;
    let url = format!("https://{}/records", server.addr());
    let SinkError::Unavailable(message) = one(&sink(&url)).await else {
        panic!("a TLS failure: the API cannot be reached");
    };
    assert!(message.contains(&url), "{message}");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_unavailable() {
    let error = one(&sink("http://sluice-test.invalid/records")).await;
    assert!(matches!(error, SinkError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn statuses_that_say_the_configuration_is_wrong_are_misconfigured() {
    for status in [301, 401, 403, 404, 405] {
        let server = Server::start(move |_| Reply::status(status).with_body("no such route")).await;
        // Credentials in the userinfo, a token in the query: neither shows.
        let url = format!(
            "http://admin:hunter2@{}/records?token=t0ps3cret",
            server.addr()
        );
        let SinkError::Misconfigured(message) = one(&sink(&url)).await else {
            panic!("{status} should say the configuration is wrong");
        };
        let shown = format!("from http://{}/records", server.addr());
        assert!(message.starts_with(&format!("HTTP {status}")), "{message}");
        assert!(message.contains(&shown), "{message}");
        assert!(message.contains("no such route"), "{message}");
        for secret in ["admin", "hunter2", "t0ps3cret"] {
            assert!(!message.contains(secret), "{message}");
        }
    }
}

#[tokio::test]
async fn server_errors_are_transient_and_bad_requests_rejected() {
    let server = Server::replying(500).await;
    assert!(
        matches!(one(&sink(&server.url())).await, SinkError::Transient(m) if m.contains("500"))
    );
    let server = Server::replying(400).await;
    assert!(matches!(one(&sink(&server.url())).await, SinkError::Rejected(m) if m.contains("400")));
    let server = Server::replying(425).await;
    assert!(matches!(
        one(&sink(&server.url())).await,
        SinkError::Transient(_)
    ));
}

#[tokio::test]
async fn the_status_lists_are_configurable() {
    let classes = StatusClasses {
        retry_on: "408".parse().unwrap(),
        reject_on: "4xx,503".parse().unwrap(),
        fatal_on: "5xx,409".parse().unwrap(),
    };
    let custom =
        |url: String| HttpSink::new(HttpSinkConfig::new(url).statuses(classes.clone())).unwrap();
    for (status, expected) in [
        (500, "fatal"),
        (503, "reject"),
        (409, "fatal"),
        (404, "reject"),
    ] {
        let server = Server::replying(status).await;
        let got = match one(&custom(server.url())).await {
            SinkError::Misconfigured(_) => "fatal",
            SinkError::Rejected(_) => "reject",
            other => panic!("{status}: {other:?}"),
        };
        assert_eq!(got, expected, "{status}");
    }
    let conflicting = StatusClasses {
        fatal_on: "404,503".parse().unwrap(),
        ..classes.clone()
    };
    let error = HttpSink::new(HttpSinkConfig::new("http://127.0.0.1:1/").statuses(conflicting))
        .err()
        .unwrap();
    assert!(matches!(error, ConfigError::Statuses(_)), "{error}");
    assert!(error.to_string().contains("503"), "{error}");
}

/// Answers 413 to a body of more than five records, 200 otherwise.
fn five_at_most() -> impl Fn(&common::Recorded) -> Reply + Send + Sync + 'static {
    |request| match request.json() {
        Value::Array(records) if records.len() > 5 => Reply::status(413),
        _ => Reply::status(200),
    }
}

#[tokio::test]
async fn a_batch_too_large_is_sent_in_halves_in_order() {
    let server = Server::start(five_at_most()).await;
    let records: Vec<Value> = (0..20).map(|n| json!({"n": n})).collect();
    let result = send(&sink(&server.url()), &batch("split", 0, records)).await;
    assert_eq!(result, Ok(()), "every record delivered, none rejected");
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| r.json().as_array().map_or(1, Vec::len))
        .collect();
    // 20 → 413; 10 → 413; 5, 5; 10 → 413; 5, 5.
    assert_eq!(sizes, [20, 10, 5, 5, 10, 5, 5]);
    let delivered: Vec<u64> = server
        .requests()
        .iter()
        .filter_map(|r| match r.json() {
            Value::Array(records) if records.len() <= 5 => Some(records),
            _ => None,
        })
        .flatten()
        .map(|record| record["n"].as_u64().unwrap())
        .collect();
    assert_eq!(delivered, (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_single_record_too_large_is_rejected_and_the_rest_still_go() {
    // Record 3 alone is too large; the others fit by fives.
    let server = Server::start(|request| match request.json() {
        Value::Array(records) if records.len() > 5 => Reply::status(413),
        Value::Array(records) if records.iter().any(|r| r["n"] == 3) => Reply::status(413),
        Value::Object(record) if record["n"] == 3 => Reply::status(413),
        _ => Reply::status(200),
    })
    .await;
    let records: Vec<Value> = (0..8).map(|n| json!({"n": n})).collect();
    let result = send(&sink(&server.url()), &batch("split-one", 0, records)).await;
    let Err(SendError::PerRecord(outcomes)) = result else {
        panic!("expected per-record outcomes, got {result:?}");
    };
    for (n, outcome) in outcomes.iter().enumerate() {
        if n == 3 {
            assert!(
                matches!(outcome, Err(SinkError::Rejected(m)) if m.contains("413")),
                "{outcome:?}"
            );
        } else {
            assert_eq!(outcome, &Ok(()), "record {n}");
        }
    }
    let single = send(
        &sink(&server.url()),
        &batch("one", 3, vec![json!({"n": 3})]),
    )
    .await;
    assert!(matches!(failure(single), SinkError::Rejected(m) if m.contains("413")));
}

#[tokio::test]
async fn the_api_is_up_when_head_answers_below_500_or_the_health_url_2xx() {
    let head_answers = |status: u16| {
        move |request: &common::Recorded| match request.method.as_str() {
            "HEAD" => Reply::status(status),
            _ => Reply::status(500),
        }
    };
    let up = async |server: &Server, health: Option<String>| {
        let config = HttpSinkConfig::new(server.url())
            .timeout(Duration::from_secs(5))
            .health_url(health);
        let sink = HttpSink::new(config).unwrap();
        tokio::time::timeout(HANG_GUARD, Sink::<Value>::is_up(&sink))
            .await
            .expect("the probe hung")
    };
    // POSTs fail with 500 in every case: only the probe tells.
    let routes_only_post = Server::start(head_answers(405)).await;
    assert!(
        up(&routes_only_post, None).await,
        "405: the service answers"
    );
    let behind_a_proxy = Server::start(head_answers(503)).await;
    assert!(!up(&behind_a_proxy, None).await, "503: down");
    let health = |status: u16| {
        move |request: &common::Recorded| match request.path.as_str() {
            "/health" => Reply::status(status),
            _ => Reply::status(405),
        }
    };
    let healthy = Server::start(health(204)).await;
    let url = Some(format!("http://{}/health", healthy.addr()));
    assert!(up(&healthy, url).await);
    let ailing = Server::start(health(503)).await;
    let url = Some(format!("http://{}/health", ailing.addr()));
    assert!(!up(&ailing, url).await, "the health URL decides, not HEAD");
    let missing = Server::start(health(404)).await;
    let url = Some(format!("http://{}/health", missing.addr()));
    assert!(!up(&missing, url).await, "a health URL must answer 2xx");
    let config = HttpSinkConfig::new(common::refused_url()).timeout(Duration::from_secs(5));
    let closed = HttpSink::new(config).unwrap();
    assert!(!Sink::<Value>::is_up(&closed).await, "no answer: down");
    assert!(
        ailing.requests().iter().all(|r| r.method != "POST"),
        "the probe sends no record"
    );
}
