//! `HttpSink` against a real HTTP server on 127.0.0.1: the request it
//! sends, and how each kind of answer (or its absence) maps onto the
//! processor's outcomes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Reply, Server, Silent, batch, failure, refused_url, send};
use serde_json::{Value, json};
use sluice_http::{
    BodyShape, ConfigError, HttpSink, HttpSinkConfig, IDEMPOTENCY_KEY_HEADER, MAX_BODY_EXCERPT,
    idempotency_key, record_key,
};
use sluice_processor::{Envelope, FenceToken, SendError, SinkError};

fn sink(url: &str) -> HttpSink {
    HttpSink::new(HttpSinkConfig::new(url)).unwrap()
}

/// The outcome of sending one record to a server that answers `reply`.
async fn outcome_of(reply: impl Fn() -> Reply + Send + Sync + 'static) -> Result<(), SendError> {
    let server = Server::start(move |_| reply()).await;
    send(
        &sink(&server.url()),
        &batch("outcomes", 0, vec![json!({"n": 0})]),
    )
    .await
}

#[tokio::test]
async fn a_single_record_is_sent_as_the_object_itself() {
    let server = Server::replying(200).await;
    let records = batch("single", 7, vec![json!({"id": 1, "name": "a"})]);
    send(&sink(&server.url()), &records).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.json(), json!({"id": 1, "name": "a"}));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header(IDEMPOTENCY_KEY_HEADER),
        Some(idempotency_key(records.iter().map(Envelope::key)).as_str())
    );
}

#[tokio::test]
async fn a_batch_is_sent_as_an_array_in_order() {
    let server = Server::replying(200).await;
    let records = batch(
        "array",
        0,
        vec![json!({"n": 0}), json!({"n": 1}), json!({"n": 2})],
    );
    send(&sink(&server.url()), &records).await.unwrap();
    let key = |i: usize| record_key(records[i].key());
    assert_eq!(
        server.requests()[0].json(),
        json!([
            {"idempotency_key": key(0), "n": 0},
            {"idempotency_key": key(1), "n": 1},
            {"idempotency_key": key(2), "n": 2}
        ])
    );
}

#[tokio::test]
async fn each_record_keeps_its_key_whatever_batch_carries_it() {
    let server = Server::replying(200).await;
    let records = batch("rebatched", 0, (0..4).map(|n| json!({ "n": n })).collect());
    let sink = sink(&server.url());
    send(&sink, &records[..3]).await.unwrap();
    // After a restart the same records come cut otherwise.
    send(&sink, &records[2..]).await.unwrap();
    let requests = server.requests();
    let keys_of = |body: Value| -> Vec<(i64, String)> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["n"].as_i64().unwrap(),
                    r["idempotency_key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let (first, second) = (keys_of(requests[0].json()), keys_of(requests[1].json()));
    assert_eq!(first[2], second[0], "record 2 kept its key");
    assert_ne!(first[1].1, first[2].1);
    assert_ne!(
        requests[0].header(IDEMPOTENCY_KEY_HEADER),
        requests[1].header(IDEMPOTENCY_KEY_HEADER)
    );
}

#[tokio::test]
async fn the_array_shape_wraps_even_one_record() {
    let server = Server::replying(200).await;
    let config = HttpSinkConfig::new(server.url()).body(BodyShape::Array);
    let sink = HttpSink::new(config).unwrap();
    send(&sink, &batch("wrapped", 0, vec![json!({"n": 0})]))
        .await
        .unwrap();
    let key = record_key(
        Envelope::new(
            sluice_processor::RecordId {
                stream: sluice_processor::StreamName::new("wrapped").unwrap(),
                partition: 0,
                sequence: 0,
            },
            (),
        )
        .key(),
    );
    assert_eq!(
        server.requests()[0].json(),
        json!([{"idempotency_key": key, "n": 0}])
    );
}

#[tokio::test]
async fn the_idempotency_key_is_stable_across_retries_and_instances() {
    let server = Server::replying(200).await;
    let first = batch("keys", 10, vec![json!(1), json!(2)]);
    let other = batch("keys", 12, vec![json!(3), json!(4)]);
    let (a, b) = (sink(&server.url()), sink(&server.url()));
    send(&a, &first).await.unwrap();
    send(&a, &first).await.unwrap(); // a retry
    send(&b, &first).await.unwrap(); // another instance, as after a restart
    send(&a, &other).await.unwrap();
    let keys: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.header(IDEMPOTENCY_KEY_HEADER).unwrap().to_owned())
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0], keys[2]);
    assert_ne!(keys[0], keys[3]);
    assert!(
        keys.iter()
            .all(|k| k.starts_with("sluice-") && k.len() == 39)
    );
}

#[tokio::test]
async fn success_statuses_deliver() {
    for status in [200, 201, 202, 204] {
        assert_eq!(
            outcome_of(move || Reply::status(status)).await,
            Ok(()),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_429_with_delta_seconds_is_rate_limited_for_that_long() {
    let result = outcome_of(|| Reply::status(429).with_header("retry-after", "2")).await;
    assert_eq!(
        failure(result),
        SinkError::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        }
    );
}

#[tokio::test]
async fn a_429_with_an_http_date_waits_until_then() {
    let before = SystemTime::now();
    // The server dates its answer 3 s after its own clock, to the second.
    let result = outcome_of(|| {
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
        Reply::status(429).with_header("retry-after", date)
    })
    .await;
    let elapsed = before.elapsed().unwrap();
    let SinkError::RateLimited {
        retry_after: Some(wait),
    } = failure(result)
    else {
        panic!("expected a wait");
    };
    // The date is at most 3 s after the server's clock, which is not
    // before ours at the start; truncation to the second loses < 1 s and
    // the call itself took `elapsed`.
    assert!(wait <= Duration::from_secs(3), "{wait:?}");
    assert!(
        wait + elapsed > Duration::from_secs(2),
        "{wait:?} after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_429_without_a_usable_retry_after_has_no_wait() {
    let bare = outcome_of(|| Reply::status(429)).await;
    assert_eq!(failure(bare), SinkError::RateLimited { retry_after: None });
    let garbled = outcome_of(|| Reply::status(429).with_header("retry-after", "soon")).await;
    assert_eq!(
        failure(garbled),
        SinkError::RateLimited { retry_after: None }
    );
    let past = outcome_of(|| {
        Reply::status(429).with_header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")
    })
    .await;
    assert_eq!(
        failure(past),
        SinkError::RateLimited {
            retry_after: Some(Duration::ZERO)
        }
    );
}

#[tokio::test]
async fn server_errors_and_408_are_transient() {
    for status in [408, 500, 502, 503, 504] {
        let result = outcome_of(move || Reply::status(status).with_body("try later")).await;
        let SinkError::Transient(message) = failure(result) else {
            panic!("{status} should be transient");
        };
        assert!(message.contains(&status.to_string()), "{message}");
        assert!(message.contains("try later"), "{message}");
    }
}

#[tokio::test]
async fn other_statuses_are_rejected_with_the_status_and_body() {
    let result = outcome_of(|| Reply::status(400).with_body("bad field x")).await;
    let SinkError::Rejected(message) = failure(result) else {
        panic!("400 should be rejected");
    };
    assert!(message.contains("400"), "{message}");
    assert!(message.contains("bad field x"), "{message}");
    // 401, 403, 404 and 405 say the configuration is wrong (see
    // failures.rs); 413 to a single record rejects it.
    for status in [409, 413, 418, 422] {
        let result = outcome_of(move || Reply::status(status)).await;
        assert!(
            matches!(failure(result), SinkError::Rejected(m) if m.contains(&status.to_string())),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_long_error_body_is_cut() {
    let result = outcome_of(|| Reply::status(422).with_body("é".repeat(2_000))).await;
    let SinkError::Rejected(message) = failure(result) else {
        panic!("422 should be rejected");
    };
    let quoted = message.split_once(": ").unwrap().1;
    assert!(
        quoted.len() <= MAX_BODY_EXCERPT + '…'.len_utf8(),
        "{}",
        quoted.len()
    );
    assert!(
        quoted.starts_with("éé") && quoted.ends_with('…'),
        "{quoted}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed_and_say_the_url_is_wrong() {
    let server = Server::start(|_| Reply::status(302).with_header("location", "/elsewhere")).await;
    let result = send(&sink(&server.url()), &batch("redirect", 0, vec![json!(1)])).await;
    assert!(matches!(failure(result), SinkError::Misconfigured(m) if m.contains("302")));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let url = refused_url();
    let result = send(&sink(&url), &batch("refused", 0, vec![json!(1)])).await;
    let SinkError::Unavailable(message) = failure(result) else {
        panic!("a refused connection: the API cannot be reached");
    };
    assert!(message.contains(&url), "{message}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_transiently() {
    let silent = Silent::start().await;
    let config = HttpSinkConfig::new(silent.url()).timeout(Duration::from_millis(200));
    let sink = HttpSink::new(config).unwrap();
    let result = send(&sink, &batch("silent", 0, vec![json!(1)])).await;
    let SinkError::Transient(message) = failure(result) else {
        panic!("expected a transient failure");
    };
    assert!(message.contains("timed out"), "{message}");
}

#[tokio::test]
async fn url_userinfo_is_sent_as_basic_auth_and_never_shown() {
    // The server echoes the Authorization header in a rejection.
    let server = Server::start(|request| {
        let auth = request.header("authorization").unwrap_or("none").to_owned();
        Reply::status(400).with_body(format!("who is {auth}?"))
    })
    .await;
    let with_userinfo = |url: &str| url.replacen("http://", "http://sluice:hunter2pw@", 1);
    let sink = sink(&with_userinfo(&server.url()));
    let failed = failure(send(&sink, &batch("userinfo", 0, vec![json!(1)])).await);
    // base64("sluice:hunter2pw")
    let token = "c2x1aWNlOmh1bnRlcjJwdw==";
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Basic {token}").as_str())
    );
    let refused = sink_error_text(&with_userinfo(&refused_url())).await;
    for shown in [failed.to_string(), refused, format!("{sink:?}")] {
        assert!(
            !shown.contains("hunter2pw") && !shown.contains(token),
            "{shown}"
        );
    }
    assert!(failed.to_string().contains("<redacted>"), "{failed}");
}

/// The error message of one call to `url`.
async fn sink_error_text(url: &str) -> String {
    failure(send(&sink(url), &batch("errors", 0, vec![json!(1)])).await).to_string()
}

#[test]
fn an_unset_variable_is_a_construction_error_naming_it() {
    let variable = "SLUICE_HTTP_TEST_SURELY_UNSET_0C3E91";
    assert!(std::env::var_os(variable).is_none());
    let config = HttpSinkConfig::new("https://api.example.com/")
        .header("Authorization", format!("Bearer ${{{variable}}}"));
    let error = HttpSink::new(config).unwrap_err();
    assert_eq!(
        error,
        ConfigError::UnsetVariable {
            header: "Authorization".into(),
            variable: variable.into()
        }
    );
    assert!(error.to_string().contains(variable), "{error}");
}

#[test]
fn bad_configurations_are_refused() {
    let refused = |config: HttpSinkConfig| HttpSink::new(config).unwrap_err();
    assert!(matches!(
        refused(HttpSinkConfig::new("ftp://host/")),
        ConfigError::UnsupportedScheme { .. }
    ));
    assert!(matches!(
        refused(HttpSinkConfig::new("not a url")),
        ConfigError::InvalidUrl { .. }
    ));
    assert!(matches!(
        refused(HttpSinkConfig::new("http://host/").header("Idempotency-Key", "mine")),
        ConfigError::ReservedHeader { .. }
    ));
    assert!(matches!(
        refused(HttpSinkConfig::new("http://u:p@host/").header("Authorization", "Basic x")),
        ConfigError::ConflictingAuthorization
    ));
}

#[tokio::test]
async fn the_lease_header_names_each_partitions_lease_once_in_batch_order() {
    let server = Server::replying(200).await;
    let lease = |partition: &str, token| {
        Some(FenceToken {
            name: partition.into(),
            token,
        })
    };
    let mut records = batch("leased", 0, (0..4).map(|n| json!({ "n": n })).collect());
    for (envelope, fence) in
        records
            .iter_mut()
            .zip([lease("7", 40), lease("7", 40), lease("3", 12), None])
    {
        envelope.fence = fence;
    }
    let config = HttpSinkConfig::new(server.url()).lease_header(Some("Sluice-Lease".into()));
    let leased = HttpSink::new(config).unwrap();
    send(&leased, &records).await.unwrap();
    // Off by default; and no header for records read under no lease.
    send(&sink(&server.url()), &records).await.unwrap();
    send(&leased, &records[3..]).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].header("sluice-lease"), Some("7=40, 3=12"));
    assert_eq!(requests[1].header("sluice-lease"), None);
    assert_eq!(requests[2].header("sluice-lease"), None);
}

#[test]
fn a_lease_header_must_be_a_name_of_its_own() {
    let refused = |name: &str| {
        let config = HttpSinkConfig::new("http://host/")
            .header("X-Lease", "mine")
            .lease_header(Some(name.into()));
        HttpSink::new(config).unwrap_err()
    };
    assert!(matches!(
        refused("x-lease"),
        ConfigError::ReservedHeader { .. }
    ));
    assert!(matches!(
        refused("Idempotency-Key"),
        ConfigError::ReservedHeader { .. }
    ));
    assert!(matches!(
        refused("no spaces"),
        ConfigError::InvalidHeaderName { .. }
    ));
}

#[tokio::test]
async fn an_empty_batch_sends_nothing() {
    let server = Server::replying(200).await;
    let empty: Vec<Envelope<Value>> = Vec::new();
    send(&sink(&server.url()), &empty).await.unwrap();
    assert!(server.requests().is_empty());
}
