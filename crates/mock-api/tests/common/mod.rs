//! Helpers shared by the HTTP tests: a server on `127.0.0.1:0` and a
//! client that posts bodies and reads the ledger.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use sluice_mock_api::{Ledger, MockApiConfig, MockApiHandle, Quota, serve};

/// Starts the mock API on an ephemeral loopback port.
pub async fn start(config: MockApiConfig) -> MockApiHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(config, listener).await.unwrap()
}

/// No limit, no failures, no latency.
pub fn plain() -> MockApiConfig {
    MockApiConfig {
        rate_limit: None,
        failure_rate: 0.0,
        latency_min: Duration::ZERO,
        latency_max: Duration::ZERO,
        seed: 1,
    }
}

/// `limit` successes per `window`, no failures, no latency.
pub fn limited(limit: u32, window: Duration) -> MockApiConfig {
    MockApiConfig {
        rate_limit: Some(Quota { limit, window }),
        ..plain()
    }
}

/// One response: status, `Retry-After` (if any) and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

/// Posts `body` to `/records`, with `key` as the `Idempotency-Key`.
pub async fn post(
    client: &reqwest::Client,
    api: &MockApiHandle,
    body: &str,
    key: Option<&str>,
) -> Answer {
    let mut request = client
        .post(format!("{}/records", api.url()))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().unwrap());
    let body = response.json().await.unwrap();
    Answer {
        status,
        retry_after,
        body,
    }
}

/// The ledger as `GET /ledger` serves it, checked against the handle's.
pub async fn ledger(client: &reqwest::Client, api: &MockApiHandle) -> Ledger {
    get_json(client, api, "/ledger").await
}

/// `GET` of `path` on `api`, expecting `200` and JSON of type `T`.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    api: &MockApiHandle,
    path: &str,
) -> T {
    let response = client
        .get(format!("{}{path}", api.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}
