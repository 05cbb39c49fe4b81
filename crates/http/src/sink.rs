//! [`HttpSink`]: batches of records `POST`ed as JSON.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;
use sluice_processor::{Envelope, RecordKey, SendError, Sink, SinkError};

use crate::check::{self, Target};
use crate::config::{
    BodyShape, ConfigError, Header, HeadersDebug, HttpSinkConfig, redact_userinfo,
};
use crate::headers::{self, Lookup, Secrets};
use crate::idempotency::{IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_PREFIX, idempotency_key};
use crate::response;
use crate::status::StatusClasses;
use crate::userinfo;

/// A [`Sink`] that delivers each batch as one HTTP `POST` with a JSON body,
/// for any record type that implements [`Serialize`].
///
/// # The request
/// - The body is `application/json`: with [`BodyShape::SingleOrArray`] a
///   batch of one record is the record itself and a larger batch an array
///   of records; with [`BodyShape::Array`] always an array. Only the
///   records are sent, not their identities.
/// - `Idempotency-Key` carries [`idempotency_key`] of the batch's record
///   identities: the same on every retry of the batch and after a restart.
/// - The configured [`Header`]s, with `${NAME}` expanded from the
///   environment once, at [`HttpSink::new`].
/// - One `reqwest::Client`, built once: one connection pool (HTTP/1.1,
///   TLS by rustls) shared by every call and every clone of an `Arc` of
///   the sink. Redirects are not followed: a `POST` redirected with 301 or
///   302 would be replayed as a `GET` and its records silently lost.
///
/// # Outcomes
/// | response | result |
/// | --- | --- |
/// | 2xx | delivered |
/// | 429 | [`SinkError::RateLimited`], with `Retry-After` (seconds or an HTTP date) when it parses |
/// | `retry_on` (default 408, 425, 5xx) | [`SinkError::Transient`] |
/// | `fatal_on` (default 3xx, 401, 403, 404, 405) | [`SinkError::Misconfigured`]: `HTTP 404 Not Found from http://host:port/path`, then the start of the body |
/// | `reject_on` (default any other 4xx), or a status in no list | [`SinkError::Rejected`]: the status and the start of the body ([`MAX_BODY_EXCERPT`](crate::MAX_BODY_EXCERPT) bytes) |
/// | 413 to a batch of several records | the batch is sent again in halves (see below) |
/// | connection refused or reset before a response, a name that does not resolve, a TLS failure | [`SinkError::Unavailable`], naming the URL |
/// | timeout, broken response body | [`SinkError::Transient`] |
///
/// The status lists are [`StatusClasses`] ([`HttpSinkConfig::statuses`]).
/// Messages name the URL without userinfo, query or fragment.
///
/// # 413 Payload Too Large
/// A batch of several records answered 413 is sent again in two halves,
/// each split again while it gets 413, down to single records; a single
/// record answered 413 is rejected. The second half goes only once the
/// first is delivered (or rejected), to keep a partition's order; what is
/// not sent takes the outcome that held it back. The call's outcome is
/// then one per record. Each half is a request of its own, which the
/// API's quota counts while the processor's limiter counted one call: a
/// batch of n records split down to single records makes up to 2n − 1
/// requests. Keep `batch.max_records` within what the API takes.
///
/// A record that cannot be encoded as JSON is rejected on its own; the
/// rest of its batch fails transiently and is retried without it.
///
/// # Secrets
/// Secret header values (see [`Header`]) and the URL's userinfo appear in
/// no `Debug` output, log event or error message: messages never quote a
/// request header or the URL, and a response body that echoes a secret
/// has it replaced by `<redacted>` before it is quoted.
///
/// # Cancel safety
/// The processor may drop a call's future at any point (its per-call
/// timeout, or the drain deadline of a stop). Dropping it closes the
/// connection, but the request may or may not have reached the server and
/// been processed: the records are then retried or handed back, and may
/// arrive again. The `Idempotency-Key` lets the downstream recognise the
/// same batch and drop the duplicate.
///
/// ```no_run
/// use std::time::Duration;
/// use sluice_http::{HttpSink, HttpSinkConfig};
///
/// # fn main() -> Result<(), sluice_http::ConfigError> {
/// // API_TOKEN must be set in the environment; its value is never shown.
/// let config = HttpSinkConfig::new("https://api.example.com/v1/records")
///     .header("Authorization", "Bearer ${API_TOKEN}")
///     .timeout(Duration::from_secs(5));
/// let sink = HttpSink::new(config)?;
/// println!("{sink:?}"); // Authorization: <redacted>
/// // StreamProcessor::builder(...).sink(sink) ... (see sluice-processor)
/// # Ok(())
/// # }
/// ```
pub struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    shown_url: String,
    headers: Vec<Header>,
    timeout: Duration,
    body: BodyShape,
    key_field: Option<String>,
    /// The health URL and how it is shown.
    health: Option<(reqwest::Url, String)>,
    secrets: Secrets,
    statuses: StatusClasses,
    /// The URL as failures name it: no userinfo, query or fragment.
    api_url: String,
    /// The header that carries the call's leases, if sent.
    lease_header: Option<HeaderName>,
}

impl HttpSink {
    /// Builds the sink and its client, expanding `${NAME}` header values
    /// from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] when the URL is not an `http` or `https` URL, the
    /// timeout is zero, a header is invalid or reserved (`Content-Type`,
    /// `Idempotency-Key`, ...), a referenced environment variable is unset
    /// (the error names it), or the client cannot be built.
    pub fn new(config: HttpSinkConfig) -> Result<Self, ConfigError> {
        Self::with_environment(config, &headers::process_environment)
    }

    fn with_environment(
        config: HttpSinkConfig,
        lookup: &dyn Fn(&str) -> Lookup,
    ) -> Result<Self, ConfigError> {
        let shown_url = redact_userinfo(&config.url).into_owned();
        let mut url =
            reqwest::Url::parse(&config.url).map_err(|error| ConfigError::InvalidUrl {
                url: shown_url.clone(),
                reason: error.to_string(),
            })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::UnsupportedScheme {
                scheme: url.scheme().to_owned(),
            });
        }
        if config.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        config.statuses.validate()?;
        let mut resolved = headers::resolve(&config.headers, lookup)?;
        // The userinfo goes out as basic authentication, and the URL kept
        // (and handed to reqwest) carries no credential.
        let mut secrets = resolved.secrets;
        if let Some(credentials) = userinfo::take_credentials(&mut url) {
            if resolved.map.contains_key(AUTHORIZATION) {
                return Err(ConfigError::ConflictingAuthorization);
            }
            resolved.map.insert(AUTHORIZATION, credentials.header);
            secrets = secrets.with(credentials.secrets);
        }
        let health = match &config.health_url {
            None => None,
            Some(text) => {
                let shown = redact_userinfo(text).into_owned();
                let url = reqwest::Url::parse(text).map_err(|error| ConfigError::InvalidUrl {
                    url: shown.clone(),
                    reason: error.to_string(),
                })?;
                Some((url, shown))
            }
        };
        let resolved_names: Vec<HeaderName> = resolved.map.keys().cloned().collect();
        let client = reqwest::Client::builder()
            .default_headers(resolved.map)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice-http/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ConfigError::Client(response::describe(&error, &secrets)))?;
        let api_url = response::shown_url(&url);
        let lease_header = match config.lease_header {
            None => None,
            Some(name) => {
                let parsed = headers::configurable_name(&name)?;
                if resolved_names.contains(&parsed) {
                    // Sent twice, the API could not tell which to trust.
                    return Err(ConfigError::ReservedHeader { name });
                }
                Some(parsed)
            }
        };
        Ok(HttpSink {
            client,
            url,
            shown_url,
            headers: config.headers,
            timeout: config.timeout,
            body: config.body,
            key_field: config.key_field,
            health,
            secrets,
            statuses: config.statuses,
            api_url,
            lease_header,
        })
    }

    /// The URL posted to, userinfo redacted.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// Checks that the API can be reached without sending a record: a
    /// `HEAD` request to the URL, which any answer passes (its name
    /// resolves, it accepts a connection, TLS agrees; `405` is fine),
    /// then, when a health URL is configured, a `GET` of it, which must
    /// answer 2xx. Returns what it found.
    ///
    /// # Errors
    /// [`SinkError::Unavailable`] (or, for a health URL not answering 2xx,
    /// [`SinkError::Misconfigured`]) naming the URL (without credentials) and
    /// what failed: the connection, TLS, the timeout, or the health URL's
    /// status.
    pub async fn check_reachable(&self) -> Result<String, SinkError> {
        let api = Target {
            url: &self.url,
            shown: &self.shown_url,
        };
        let health = self
            .health
            .as_ref()
            .map(|(url, shown)| Target { url, shown });
        check::reachable(&self.client, api, health, &self.secrets).await
    }

    /// Delivers one batch: see the type's documentation.
    async fn deliver<R: Serialize + Sync>(&self, batch: &[Envelope<R>]) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.post(batch).await {
            (Err(SendError::Batch(_)), true) if batch.len() > 1 => {
                tracing::debug!(
                    records = batch.len(),
                    "413 Payload Too Large: sending the batch in halves"
                );
                let outcomes = self.in_halves(batch).await;
                if outcomes.iter().all(Result::is_ok) {
                    Ok(())
                } else {
                    Err(SendError::PerRecord(outcomes))
                }
            }
            (result, _) => result,
        }
    }

    /// One request of `batch`; its outcome, and whether the API answered
    /// 413 Payload Too Large.
    pub(crate) async fn post<R: Serialize>(
        &self,
        batch: &[Envelope<R>],
    ) -> (Result<(), SendError>, bool) {
        // Derived once: a record without a key of its own hashes its id.
        let keys: Vec<RecordKey> = batch.iter().map(Envelope::key).collect();
        let body = match self.encode(batch, &keys) {
            Ok(body) => body,
            Err(error) => return (Err(error), false),
        };
        let key = idempotency_key(keys);
        let Ok(key_value) = HeaderValue::from_str(&key) else {
            let error = SinkError::Transient("cannot build the Idempotency-Key header".to_owned());
            return (Err(error.into()), false);
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(IDEMPOTENCY_KEY_HEADER, key_value);
        if let Some(name) = &self.lease_header
            && let Some(leases) = leases(batch)
        {
            request = request.header(name, leases);
        }
        let sent = request.body(body).send().await;
        let (result, too_large) = match sent {
            Ok(reply) => {
                let status = reply.status();
                sluice_processor::note_call_status(status.as_u16());
                let answer =
                    response::outcome(reply, &self.secrets, &self.statuses, &self.api_url).await;
                tracing::debug!(
                    records = batch.len(),
                    idempotency_key = %key,
                    status = status.as_u16(),
                    "http sink call answered"
                );
                answer
            }
            Err(error) => (
                Err(response::failure(
                    &error,
                    &self.secrets,
                    &self.api_url,
                    self.timeout,
                )),
                false,
            ),
        };
        if let Err(error) = &result {
            tracing::debug!(records = batch.len(), idempotency_key = %key, %error, "http sink call failed");
        }
        (result.map_err(SendError::Batch), too_large)
    }

    /// The request body of `batch`, whose records' keys are `keys`, or
    /// which records cannot be encoded.
    fn encode<R: Serialize>(
        &self,
        batch: &[Envelope<R>],
        keys: &[RecordKey],
    ) -> Result<Vec<u8>, SendError> {
        let encoded = match (self.body, batch) {
            (BodyShape::SingleOrArray, [one]) => serde_json::to_vec(&one.record),
            _ => match &self.key_field {
                Some(field) => keyed_array(batch, keys, field),
                None => serde_json::to_vec(&Records(batch)),
            },
        };
        encoded.map_err(|batch_error| {
            let outcomes: Vec<Result<(), SinkError>> = batch
                .iter()
                .map(|envelope| match serde_json::to_vec(&envelope.record) {
                    Err(error) => Err(SinkError::Rejected(format!(
                        "cannot encode the record as JSON: {error}"
                    ))),
                    Ok(_) => Err(SinkError::Transient(
                        "not sent: another record of its batch cannot be encoded as JSON"
                            .to_owned(),
                    )),
                })
                .collect();
            if outcomes
                .iter()
                .any(|outcome| matches!(outcome, Err(SinkError::Rejected(_))))
            {
                SendError::PerRecord(outcomes)
            } else {
                SinkError::Rejected(format!("cannot encode the batch as JSON: {batch_error}"))
                    .into()
            }
        })
    }
}

/// A batch's records as a JSON array, each record that is a JSON object
/// given `field` with its key first (see [`record_key`](crate::record_key)). A record that
/// is not an object (a number, an array) is sent as it is.
///
/// Written by hand rather than through a serde wrapper: adding a field to
/// any `Serialize` type needs serde's private flattening machinery, or a
/// `serde_json::Value` per record; splicing the field into each record's
/// encoding keeps one buffer and no intermediate tree.
fn keyed_array<R: Serialize>(
    batch: &[Envelope<R>],
    keys: &[RecordKey],
    field: &str,
) -> serde_json::Result<Vec<u8>> {
    let name = serde_json::to_vec(field)?;
    let mut body = Vec::with_capacity(batch.len() * 160);
    let mut record = Vec::with_capacity(256);
    body.push(b'[');
    for (i, (envelope, key)) in batch.iter().zip(keys).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        record.clear();
        serde_json::to_writer(&mut record, &envelope.record)?;
        let Some(rest) = record.strip_prefix(b"{") else {
            body.extend_from_slice(&record);
            continue;
        };
        body.push(b'{');
        body.extend_from_slice(&name);
        body.extend_from_slice(b":\"");
        body.extend_from_slice(IDEMPOTENCY_KEY_PREFIX.as_bytes());
        body.extend_from_slice(&key.to_hex());
        body.push(b'"');
        if rest != b"}" {
            body.push(b',');
        }
        body.extend_from_slice(rest);
    }
    body.push(b']');
    Ok(body)
}

/// A batch's records, serialised as a JSON array without copying them.
struct Records<'a, R>(&'a [Envelope<R>]);

impl<R: Serialize> Serialize for Records<'_, R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|envelope| &envelope.record))
    }
}

#[async_trait]
impl<R> Sink<R> for HttpSink
where
    R: Serialize + Send + Sync + 'static,
{
    async fn send(&self, batch: &[Envelope<R>]) -> Result<(), SendError> {
        self.deliver(batch).await
    }

    /// See [`HttpSink::check_reachable`].
    async fn check(&self) -> Result<String, SinkError> {
        self.check_reachable().await
    }

    /// The health URL, when configured, answers 2xx; else a `HEAD` of the
    /// URL answers below 500 (`405` from an API that routes only `POST`
    /// is up; a `502` or `503` from a proxy before it is down). Without a
    /// health URL, an API whose service answers `HEAD` while its `POST`s
    /// fail with 5xx is taken as up, so such an outage spends attempts:
    /// configure a health URL where that can happen.
    async fn is_up(&self) -> bool {
        let health = self.health.as_ref().map(|(url, _)| url);
        check::answers_as_up(&self.client, &self.url, health).await
    }
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.shown_url)
            .field("headers", &HeadersDebug(&self.headers))
            .field("timeout", &self.timeout)
            .field("body", &self.body)
            .field("statuses", &self.statuses)
            .finish_non_exhaustive()
    }
}

/// The leases of `batch`'s records, each partition's once, in the order
/// of the batch: `3=1042, 7=1050`; `None` when no record carries one.
fn leases<R>(batch: &[Envelope<R>]) -> Option<HeaderValue> {
    let mut seen: Vec<&sluice_processor::FenceToken> = Vec::new();
    for fence in batch.iter().filter_map(|envelope| envelope.fence.as_ref()) {
        if !seen.iter().any(|known| known.name == fence.name) {
            seen.push(fence);
        }
    }
    if seen.is_empty() {
        return None;
    }
    let text = seen
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    // Partition names are letters, digits, `-` and `_`: always a valid value.
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record_key;

    /// `sink`'s body for `batch`, its keys derived as `post` derives them.
    fn encoded<R: Serialize>(sink: &HttpSink, batch: &[Envelope<R>]) -> Result<Vec<u8>, SendError> {
        let keys: Vec<RecordKey> = batch.iter().map(Envelope::key).collect();
        sink.encode(batch, &keys)
    }

    fn env(name: &str) -> Lookup {
        if name == "TOKEN" {
            Lookup::Set("t0k3n-value".into())
        } else {
            Lookup::Unset
        }
    }

    #[test]
    fn construction_checks_the_url_and_timeout() {
        let build = |config| HttpSink::with_environment(config, &env);
        let error = build(HttpSinkConfig::new("ftp://u:pw123@host/"))
            .err()
            .unwrap();
        assert!(matches!(error, ConfigError::UnsupportedScheme { .. }));
        let error = build(HttpSinkConfig::new("http://u:pw123@exa mple/"))
            .err()
            .unwrap();
        assert!(matches!(error, ConfigError::InvalidUrl { .. }), "{error}");
        assert!(!error.to_string().contains("pw123"), "{error}");
        let error = build(HttpSinkConfig::new("http://host/").timeout(Duration::ZERO))
            .err()
            .unwrap();
        assert_eq!(error, ConfigError::ZeroTimeout);
        let sink =
            build(HttpSinkConfig::new("https://u:pw123@host/x").header("X-Auth", "${TOKEN}"))
                .unwrap();
        assert_eq!(sink.url(), "https://<redacted>@host/x");
        let shown = format!("{sink:?}");
        assert!(
            !shown.contains("t0k3n") && !shown.contains("pw123"),
            "{shown}"
        );
    }

    #[test]
    fn bodies_follow_the_shape() {
        let sink = HttpSink::with_environment(HttpSinkConfig::new("http://host/"), &env).unwrap();
        let stream = sluice_processor::StreamName::new("shape").unwrap();
        let envelope = |sequence, record| {
            Envelope::new(
                sluice_processor::RecordId {
                    stream,
                    partition: 0,
                    sequence,
                },
                record,
            )
        };
        let one = [envelope(0, serde_json::json!({"a": 1}))];
        let two = [
            envelope(0, serde_json::json!(1)),
            envelope(1, serde_json::json!(2)),
        ];
        assert_eq!(encoded(&sink, &one).unwrap(), br#"{"a":1}"#);
        // Records that are not objects have no room for a key.
        assert_eq!(encoded(&sink, &two).unwrap(), b"[1,2]");
        let array = HttpSink {
            body: BodyShape::Array,
            ..sink
        };
        let key = |envelope: &Envelope<serde_json::Value>| record_key(envelope.key());
        let objects = [
            envelope(0, serde_json::json!({"a": 1})),
            envelope(1, serde_json::json!({})),
        ];
        let expected = format!(
            r#"[{{"idempotency_key":"{}","a":1}},{{"idempotency_key":"{}"}}]"#,
            key(&objects[0]),
            key(&objects[1])
        );
        assert_eq!(encoded(&array, &objects).unwrap(), expected.as_bytes());
        let parsed: serde_json::Value =
            serde_json::from_slice(&encoded(&array, &objects).unwrap()).unwrap();
        assert_eq!(parsed[0]["a"], 1);
        let unnamed = HttpSink {
            key_field: None,
            ..array
        };
        assert_eq!(encoded(&unnamed, &one).unwrap(), br#"[{"a":1}]"#);
    }

    #[test]
    fn a_record_that_cannot_be_encoded_is_rejected_alone() {
        use std::collections::HashMap;
        let sink = HttpSink::with_environment(HttpSinkConfig::new("http://host/"), &env).unwrap();
        let stream = sluice_processor::StreamName::new("encode").unwrap();
        let good: HashMap<Vec<u8>, u8> = HashMap::new();
        let bad: HashMap<Vec<u8>, u8> = HashMap::from([(vec![1], 1)]);
        let batch: Vec<_> = [good.clone(), bad, good]
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                Envelope::new(
                    sluice_processor::RecordId {
                        stream,
                        partition: 0,
                        sequence: i as u64,
                    },
                    record,
                )
            })
            .collect();
        let Err(SendError::PerRecord(outcomes)) = encoded(&sink, &batch) else {
            panic!("expected per-record outcomes");
        };
        assert!(matches!(outcomes[0], Err(SinkError::Transient(_))));
        assert!(matches!(outcomes[1], Err(SinkError::Rejected(_))));
        assert!(matches!(outcomes[2], Err(SinkError::Transient(_))));
    }
}
