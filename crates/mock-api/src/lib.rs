//! The original test's downstream API over real HTTP, for `sluice
//! mock-api`: rate limited, slow and unreliable, keeping a [`Ledger`] of
//! what it accepted.
//!
//! - `POST /records`: the body is one JSON value, a record (an object) or
//!   an array of records. Anything else gets `400` with a JSON error. A
//!   well-formed body is one call:
//!   1. **Limit.** If the window of the [`Quota`] is full, `429` at once,
//!      with `Retry-After` (whole seconds, rounded up, at least 1) saying
//!      when the oldest live slot frees. Otherwise the call reserves a
//!      slot: the limit counts *successes* and holds under any
//!      concurrency. A slot is freed at once if its call fails or is
//!      cancelled (the client went away), and one window after admission
//!      if it succeeds.
//!   2. **Latency.** The call waits a seeded random duration in
//!      `latency_min..=latency_max` (tokio's clock).
//!   3. **Fate.** With probability `failure_rate`, `503`; otherwise `200`
//!      with `{"accepted": N}`.
//! - `GET /ledger`: the [`Ledger`] as JSON: counts, admission times of
//!   successes, every delivered record by identity ([`RecordIdentity`]:
//!   `stream` or `source`, `partition`, `sequence` or `sequence_id`),
//!   `Idempotency-Key` counts, duplicates and order violations.
//! - `GET /ledger/counts`: its counters alone ([`LedgerCounts`]), cheap
//!   to poll while a run goes on: the whole ledger grows with every
//!   record, and copying it holds up the calls in flight.
//!
//! The limit, the latency and failure draws and the ledger's counts are
//! the shared model of the API (`sluice-api-model`, the same one
//! `sluice-sim`'s `SimulatedApi` runs on tokio's paused clock), here on
//! tokio's clock in real time; [`MockApiConfig`], [`Quota`] and
//! [`ConfigError`] are its types. This crate owns the HTTP: routes, bodies
//! and record identities, status codes and `Retry-After`, the JSON
//! [`Ledger`] (times in whole milliseconds), and what only HTTP has:
//! malformed bodies and `Idempotency-Key` counts.
//!
//! The listener is the caller's; our servers listen on `127.0.0.1`
//! ([`DEFAULT_ADDR`]) unless told otherwise.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use sluice_mock_api::{MockApiConfig, Quota, serve};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = MockApiConfig {
//!     rate_limit: Some(Quota::per_second(20)),
//!     failure_rate: 0.1,
//!     latency_min: Duration::from_millis(5),
//!     latency_max: Duration::from_millis(20),
//!     seed: 42,
//! };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let api = serve(config, listener).await?;
//! println!("POST records to {}/records", api.url());
//! // ... run a client against it ...
//! let ledger = api.shutdown().await?;
//! assert!(ledger.max_successes_in_any(Duration::from_secs(1)) <= 20);
//! println!("lost: {:?}", ledger.lost_from([("orders", 0, 1), ("orders", 0, 2)]));
//! # Ok(())
//! # }
//! ```

mod api;
mod ledger;
mod record;
mod server;

pub use ledger::{Ledger, LedgerCounts, PartitionDeliveries, SUCCESS_TIMES_CAP};
pub use record::{RecordIdentity, UNNAMED_STREAM};
pub use server::{
    DEFAULT_ADDR, IDEMPOTENCY_KEY, LEASE_HEADER, MAX_BODY_BYTES, MockApiError, MockApiHandle,
    SHUTDOWN_GRACE, StaleLeases, run_until, serve, serve_with,
};
pub use sluice_api_model::{Behaviour as MockApiConfig, ConfigError, Quota};
