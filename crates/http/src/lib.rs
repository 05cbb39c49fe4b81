//! sluice's HTTP sink: delivers the processor's batches to a real API.
//!
//! [`HttpSink`] is a [`sluice_processor::Sink`] for any record type that
//! implements [`serde::Serialize`]: each batch is one `POST` with a JSON
//! body (the record itself for a batch of one, an array otherwise), an
//! `Idempotency-Key` derived from the records' identities
//! ([`idempotency_key`]), and the configured headers, whose values may
//! come from the environment (`${API_TOKEN}`) and are kept secret. The
//! response maps onto the processor's outcomes: 2xx delivered, 429 rate
//! limited (with `Retry-After`, see [`parse_retry_after`]), 408, 425, 5xx
//! and timeouts transient, 3xx, 401, 403, 404 and 405 misconfigured, an
//! unreachable API (refused, reset, DNS, TLS) unavailable, any other
//! status rejected; the status lists are configurable ([`StatusClasses`]),
//! and a batch answered 413 is sent again in halves.
//!
//! [`HttpSettings`] is the sink as a connector of a configured pipeline
//! (`[http]`, `--http-*`), with the processor settings an HTTP API implies.
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_http::{HttpSink, HttpSinkConfig};
//!
//! # fn main() -> Result<(), sluice_http::ConfigError> {
//! let sink = HttpSink::new(
//!     HttpSinkConfig::new("https://api.example.com/v1/records")
//!         .header("X-Api-Key", "${API_KEY}")
//!         .timeout(Duration::from_secs(5)),
//! )?;
//! # let _ = sink;
//! # Ok(())
//! # }
//! ```

mod check;
mod config;
mod headers;
mod idempotency;
mod response;
mod retry_after;
mod settings;
mod sink;
mod split;
mod status;
mod userinfo;

pub use config::{
    BodyShape, ConfigError, DEFAULT_KEY_FIELD, DEFAULT_TIMEOUT, Header, HttpSinkConfig,
};
pub use headers::{RESERVED_HEADER_NAMES, SECRET_HEADER_NAMES};
pub use idempotency::{
    IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_HEX_LEN, IDEMPOTENCY_KEY_PREFIX, idempotency_key,
    record_key,
};
pub use response::MAX_BODY_EXCERPT;
pub use retry_after::parse_retry_after;
pub use settings::{CALL_TIMEOUT_MARGIN, DEFAULT_REQUEST_TIMEOUT, HttpSettings, RATE_LIMIT_MARGIN};
pub use sink::HttpSink;
pub use status::{StatusClassError, StatusClasses, StatusList};
