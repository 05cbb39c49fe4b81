//! The HTTP sink as a connector: its settings (section `[http]`, flags
//! `--http-*`, variables `SLUICE_HTTP_*`), the processor settings an HTTP
//! API implies, and how a pipeline builds the sink.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_processor::{ConnectorError, CountedFrom, SettingError, SinkConnector, SinkPolicy};

use crate::config::{DEFAULT_KEY_FIELD, HttpSinkConfig, redact_userinfo};
use crate::headers;
use crate::sink::HttpSink;
use crate::status::{
    DEFAULT_FATAL_ON, DEFAULT_REJECT_ON, DEFAULT_RETRY_ON, StatusClasses, StatusList,
};

/// The per-request timeout of a configured pipeline, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The shortest request timeout.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// The longest request timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);

/// How much longer than the request timeout the processor lets a call
/// run, so that the HTTP client's own timeout is the one that answers.
pub const CALL_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// How long past its window the client counts a success: covers the
/// delay between sending a call and the API counting it, on a good
/// network. A longer delay shows as a refusal, after which windows count
/// from answers (see [`CountedFrom::CallThenAnswer`]).
pub const RATE_LIMIT_MARGIN: Duration = Duration::from_millis(25);

/// An HTTP API as the pipeline's sink: `sink = "http"` (the default).
///
/// Each call `POST`s one record, or a JSON array of a batch's records, with
/// an `Idempotency-Key` (see [`HttpSink`]).
///
/// ```
/// use sluice_http::HttpSettings;
///
/// let settings: HttpSettings = toml::from_str(
///     "url = 'https://api.example.com/records'\nheaders = ['Authorization: Bearer ${API_TOKEN}']",
/// )?;
/// assert_eq!(settings.timeout(), std::time::Duration::from_secs(30));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// The API's URL: each call POSTs one record, or an array of them.
    /// Required.
    #[arg(id = "http.url", long = "http-url", value_name = "URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A header of every call, `Name: value`; `${VAR}` in the value is read
    /// from the environment. Values are never printed. Repeatable.
    #[arg(id = "http.headers", long = "http-header", value_name = "NAME: VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// The longest a call may take before it is retried: 1ms to 1h.
    /// Default 30s.
    #[arg(
        id = "http.timeout",
        long = "http-timeout",
        alias = "timeout",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// The field each record of a batch (a JSON array body) gets with its
    /// own key, so that the API can drop a record it already has whatever
    /// batch it comes in; `""` adds no field. Default `idempotency_key`.
    #[arg(id = "http.key_field", long = "http-key-field", value_name = "NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_field: Option<String>,
    /// A URL that must answer GET with 2xx before the run reads anything
    /// (e.g. the API's /health), and that tells, while calls fail with
    /// nothing delivered, whether the API is up (the records are then at
    /// fault) or down (they wait). Without it, the run checks that the
    /// API's URL answers a HEAD request (any answer at start; below 500
    /// for up).
    #[arg(
        id = "http.health_url",
        long = "health-url",
        alias = "http-health-url",
        value_name = "URL"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_url: Option<String>,
    /// Statuses retried as transient failures: codes and classes, e.g.
    /// `408,425,5xx` (the default). 429 always means rate limited.
    #[arg(
        id = "http.retry_on",
        long = "http-retry-on",
        alias = "retry-on",
        value_name = "STATUSES"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<StatusList>,
    /// Statuses that reject the record (dead-lettered): default `4xx`
    /// (but for the codes listed elsewhere).
    #[arg(
        id = "http.reject_on",
        long = "http-reject-on",
        alias = "reject-on",
        value_name = "STATUSES"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_on: Option<StatusList>,
    /// Statuses that say the configuration is wrong (URL, credentials):
    /// records wait, and the run halts after a few in a row. Default
    /// `3xx,401,403,404,405`.
    #[arg(
        id = "http.fatal_on",
        long = "http-fatal-on",
        alias = "fatal-on",
        value_name = "STATUSES"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fatal_on: Option<StatusList>,
    /// A header to send each call's leases in, when partitions are shared
    /// by processes (`--nats-lease`): `partition=token` pairs, e.g.
    /// `Sluice-Lease: 3=1042, 7=1050`. A token is the revision of the
    /// holder's claim on the lease, higher for every new holder, so the
    /// API can refuse a stale writer. Off by default.
    #[arg(
        id = "http.lease_header",
        long = "http-lease-header",
        value_name = "NAME"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_header: Option<String>,
}

impl Default for HttpSettings {
    /// The documented defaults; no URL.
    fn default() -> Self {
        let defaults = StatusClasses::default();
        HttpSettings {
            url: None,
            headers: Vec::new(),
            timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            key_field: Some(DEFAULT_KEY_FIELD.to_owned()),
            health_url: None,
            retry_on: Some(defaults.retry_on),
            reject_on: Some(defaults.reject_on),
            fatal_on: Some(defaults.fatal_on),
            lease_header: None,
        }
    }
}

impl HttpSettings {
    /// The request timeout: as set, else [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }

    /// The sink's configuration.
    ///
    /// # Errors
    /// A [`SettingError`] naming the setting that is missing, out of
    /// bounds, or malformed. A header's value is never in the message.
    pub fn sink_config(&self) -> Result<HttpSinkConfig, SettingError> {
        let url = self.url.clone().ok_or_else(|| {
            SettingError::new("http.url", "--http-url", "required: the API's URL")
        })?;
        let timeout = SettingError::check_duration(
            "http.timeout",
            "--http-timeout",
            self.timeout(),
            MIN_TIMEOUT,
            MAX_TIMEOUT,
        )?;
        let key_field = match self.key_field.as_deref() {
            None => Some(DEFAULT_KEY_FIELD.to_owned()),
            Some("") => None,
            Some(field) => Some(field.to_owned()),
        };
        let mut config = HttpSinkConfig::new(url)
            .timeout(timeout)
            .key_field(key_field)
            .health_url(self.health_url.clone())
            .lease_header(self.lease_header.clone())
            .statuses(self.statuses()?);
        for header in &self.headers {
            let (name, value) = header.split_once(':').ok_or_else(|| {
                // The value may be a secret: name the header only.
                let name: String = header.chars().take_while(|c| *c != ' ').take(64).collect();
                SettingError::new(
                    "http.headers",
                    "--http-header",
                    format!("{name}...: write it as 'Name: value'"),
                )
            })?;
            // The sink keeps values read from the environment (and
            // credentials by name) secret itself.
            config = config.header(name.trim(), value.trim());
        }
        Ok(config)
    }

    /// The status lists: as set, else their defaults (`retry_on`
    /// `408,425,5xx`, `reject_on` `4xx`, `fatal_on` `3xx,401,403,404,405`).
    ///
    /// # Errors
    /// A [`SettingError`] naming the list whose entry is also in another
    /// list, or cannot be listed (a 2xx; 429 outside `retry_on`).
    pub fn statuses(&self) -> Result<StatusClasses, SettingError> {
        let list = |set: &Option<StatusList>, default: &str| {
            set.clone()
                .unwrap_or_else(|| default.parse().unwrap_or_default())
        };
        let classes = StatusClasses {
            retry_on: list(&self.retry_on, DEFAULT_RETRY_ON),
            reject_on: list(&self.reject_on, DEFAULT_REJECT_ON),
            fatal_on: list(&self.fatal_on, DEFAULT_FATAL_ON),
        };
        classes.validate().map_err(|error| {
            let (key, flag) = match error.list() {
                Some("retry_on") => ("http.retry_on", "--http-retry-on"),
                Some("reject_on") => ("http.reject_on", "--http-reject-on"),
                _ => ("http.fatal_on", "--http-fatal-on"),
            };
            SettingError::new(key, flag, error.to_string())
        })?;
        Ok(classes)
    }

    /// These settings as they may be shown (`--print-config`): the URL's
    /// userinfo and every literal secret header value replaced by
    /// `<redacted>`; references to the environment (`${API_TOKEN}`) are
    /// kept, since they say where a secret comes from without holding it.
    ///
    /// ```
    /// use sluice_http::HttpSettings;
    ///
    /// let settings = HttpSettings {
    ///     url: Some("https://user:pw@api.example.com/records".into()),
    ///     headers: vec!["Authorization: Bearer abc123".into(), "X-Api-Key: ${KEY}".into()],
    ///     ..HttpSettings::default()
    /// };
    /// let shown = settings.redacted();
    /// assert_eq!(shown.url.as_deref(), Some("https://<redacted>@api.example.com/records"));
    /// assert_eq!(shown.headers, ["Authorization: <redacted>", "X-Api-Key: ${KEY}"]);
    /// ```
    pub fn redacted(&self) -> HttpSettings {
        HttpSettings {
            url: self
                .url
                .as_deref()
                .map(|url| redact_userinfo(url).into_owned()),
            headers: self
                .headers
                .iter()
                .map(|header| redact_header(header))
                .collect(),
            timeout: self.timeout,
            key_field: self.key_field.clone(),
            health_url: self
                .health_url
                .as_deref()
                .map(|url| redact_userinfo(url).into_owned()),
            retry_on: self.retry_on.clone(),
            reject_on: self.reject_on.clone(),
            fatal_on: self.fatal_on.clone(),
            lease_header: self.lease_header.clone(),
        }
    }
}

/// `Name: value` with the value replaced by `<redacted>` when it may hold
/// a literal secret: a secret name, and a value that is more than
/// references to the environment and one word (`Bearer ${TOKEN}`).
fn redact_header(header: &str) -> String {
    let Some((name, value)) = header.split_once(':') else {
        // Malformed: it may be anything.
        return "<redacted>".to_owned();
    };
    let only_references = headers::references_environment(value)
        && headers::literal_text(value).is_some_and(|literal| {
            let words: Vec<&str> = literal.split_whitespace().collect();
            words.len() <= 1
                && words
                    .iter()
                    .all(|word| word.chars().all(char::is_alphabetic))
        });
    if headers::is_secret_name(name.trim()) && !only_references {
        format!("{}: <redacted>", name.trim())
    } else {
        header.to_owned()
    }
}

impl<R: Serialize + Send + Sync + 'static> SinkConnector<R> for HttpSettings {
    const NAME: &'static str = "http";

    type Sink = HttpSink;

    fn build(&self) -> Result<HttpSink, ConnectorError> {
        Ok(HttpSink::new(self.sink_config()?)?)
    }

    /// A call may run the request timeout plus [`CALL_TIMEOUT_MARGIN`]; a
    /// real API counts a call when it arrives, after the client sent it:
    /// successes count from the call plus [`RATE_LIMIT_MARGIN`] until the
    /// API refuses one, then from answers.
    fn policy(&self) -> SinkPolicy {
        SinkPolicy {
            call_timeout: self.timeout().saturating_add(CALL_TIMEOUT_MARGIN),
            counted_from: CountedFrom::CallThenAnswer,
            rate_limit_margin: RATE_LIMIT_MARGIN,
        }
    }

    fn redacted(&self) -> HttpSettings {
        HttpSettings::redacted(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn settings(url: &str, headers: &[&str]) -> HttpSettings {
        HttpSettings {
            url: Some(url.into()),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            ..HttpSettings::default()
        }
    }

    #[test]
    fn headers_are_split_at_their_first_colon_and_trimmed() {
        let config = settings("http://127.0.0.1:1/r", &["X-A:  b:c ", "X-Empty:"])
            .sink_config()
            .unwrap();
        let headers: Vec<_> = config
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(headers, [("X-A", "b:c"), ("X-Empty", "")]);
        assert_eq!(config.timeout, DEFAULT_REQUEST_TIMEOUT);
    }

    #[test]
    fn what_is_missing_or_malformed_is_named_without_the_value() {
        let missing = HttpSettings::default().sink_config().unwrap_err();
        assert_eq!(
            missing.to_string(),
            "http.url (--http-url): required: the API's URL"
        );
        let malformed = settings("http://h/r", &["Authorization Bearer-secret"])
            .sink_config()
            .unwrap_err()
            .to_string();
        assert!(malformed.contains("'Name: value'"), "{malformed}");
        assert!(!malformed.contains("Bearer-secret"), "{malformed}");
        let slow = HttpSettings {
            timeout: Some(Duration::from_secs(7_200)),
            ..settings("http://h/r", &[])
        };
        assert_eq!(
            slow.sink_config().unwrap_err().to_string(),
            "http.timeout (--http-timeout): must be 1ms to 1h, got 2h"
        );
    }

    #[test]
    fn status_lists_are_read_and_a_status_in_two_is_named() {
        let read: HttpSettings =
            toml::from_str("url = 'http://h/r'\nretry_on = '5xx'\nfatal_on = 401").unwrap();
        assert_eq!(read.retry_on.as_ref().unwrap().to_string(), "5xx");
        let statuses = read.statuses().unwrap();
        assert!(statuses.fatal_on.contains(401) && !statuses.fatal_on.contains(404));
        assert!(statuses.reject_on.contains(404), "the default reject_on");
        let twice = HttpSettings {
            retry_on: Some("408,503".parse().unwrap()),
            fatal_on: Some("503".parse().unwrap()),
            ..settings("http://h/r", &[])
        };
        assert_eq!(
            twice.sink_config().unwrap_err().to_string(),
            "http.fatal_on (--http-fatal-on): 503 is in both retry_on and fatal_on"
        );
        let error = toml::from_str::<HttpSettings>("reject_on = '4x'").unwrap_err();
        assert!(error.to_string().contains("4x"), "{error}");
    }

    #[test]
    fn the_policy_lets_the_client_time_out_first_and_counts_from_calls() {
        let policy = <HttpSettings as SinkConnector<u8>>::policy(&HttpSettings {
            timeout: Some(Duration::from_secs(2)),
            ..HttpSettings::default()
        });
        assert_eq!(policy.call_timeout, Duration::from_secs(3));
        assert_eq!(policy.counted_from, CountedFrom::CallThenAnswer);
        assert_eq!(policy.rate_limit_margin, RATE_LIMIT_MARGIN);
    }

    #[test]
    fn secrets_are_redacted_and_what_is_not_secret_is_shown() {
        for (header, shown) in [
            (
                "Authorization: Bearer ${TOKEN}",
                "Authorization: Bearer ${TOKEN}",
            ),
            ("Authorization: ${TOKEN}", "Authorization: ${TOKEN}"),
            ("authorization: Bearer abc123", "authorization: <redacted>"),
            ("X-Api-Key: k-${SUFFIX}", "X-Api-Key: <redacted>"),
            ("Cookie: a=b; c=${D}", "Cookie: <redacted>"),
            ("X-Client: sluice", "X-Client: sluice"),
            ("no colon at all", "<redacted>"),
        ] {
            assert_eq!(redact_header(header), shown, "{header}");
        }
        let shown = settings("https://u:p%40ss@h:1/r", &[]).redacted();
        assert_eq!(shown.url.as_deref(), Some("https://<redacted>@h:1/r"));
    }

    #[test]
    fn the_key_field_is_named_or_turned_off() {
        let with = |key_field: Option<&str>| {
            HttpSettings {
                url: Some("http://h/r".into()),
                key_field: key_field.map(str::to_owned),
                ..HttpSettings::default()
            }
            .sink_config()
            .unwrap()
            .key_field
        };
        assert_eq!(with(None).as_deref(), Some("idempotency_key"));
        assert_eq!(with(Some("_key")).as_deref(), Some("_key"));
        assert_eq!(with(Some("")), None);
    }

    #[test]
    fn only_the_settings_given_are_serialized_and_unknown_keys_are_refused() {
        let given = HttpSettings {
            url: Some("http://h/r".into()),
            headers: Vec::new(),
            timeout: None,
            key_field: None,
            health_url: None,
            retry_on: None,
            reject_on: None,
            fatal_on: None,
            lease_header: None,
        };
        assert_eq!(toml::to_string(&given).unwrap(), "url = \"http://h/r\"\n");
        let error = toml::from_str::<HttpSettings>("header = ['a: b']").unwrap_err();
        assert!(error.to_string().contains("header"), "{error}");
    }
}
