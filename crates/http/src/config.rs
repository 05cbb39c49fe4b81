//! What an [`HttpSink`](crate::HttpSink) is built from, and why building
//! can fail.

use std::fmt;
use std::time::Duration;

use crate::headers;
use crate::status::{StatusClassError, StatusClasses};

/// The per-request timeout when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how an [`HttpSink`](crate::HttpSink) delivers.
///
/// Build one with [`HttpSinkConfig::new`] and the builder methods, or
/// fill the public fields. Its `Debug` output hides every secret header
/// value (see [`Header`]) and the URL's userinfo.
///
/// ```
/// use std::time::Duration;
/// use sluice_http::{BodyShape, HttpSinkConfig};
///
/// let config = HttpSinkConfig::new("https://user:pw@api.example.com/records")
///     .header("Authorization", "Bearer ${API_TOKEN}")
///     .header("X-Client", "sluice")
///     .timeout(Duration::from_secs(5))
///     .body(BodyShape::SingleOrArray);
/// let shown = format!("{config:?}");
/// assert!(shown.contains("<redacted>") && !shown.contains("pw@"));
/// ```
#[derive(Clone)]
pub struct HttpSinkConfig {
    /// Where each batch is `POST`ed: an `http` or `https` URL. Userinfo
    /// (`user:password@`) is sent as HTTP basic authentication and is a
    /// secret.
    pub url: String,
    /// Sent with every request, in order; a name may repeat.
    pub headers: Vec<Header>,
    /// The longest a request may take, from connecting to reading the
    /// whole response. The processor bounds each call by its own
    /// `call_timeout` as well; keep this one no longer.
    pub timeout: Duration,
    /// How a batch is laid out in the request body.
    pub body: BodyShape,
    /// The field each record of a JSON array body gets with its own key
    /// (`sluice-` and 32 hex digits), so that a downstream can drop a
    /// duplicate record whatever batch it came in; `None` adds none.
    /// Default [`DEFAULT_KEY_FIELD`].
    pub key_field: Option<String>,
    /// A URL that must answer a `GET` with 2xx before a run reads anything
    /// (see [`HttpSink::check_reachable`](crate::HttpSink::check_reachable)).
    pub health_url: Option<String>,
    /// What each failed status means: retried, rejected, or fatal (the
    /// client's configuration is wrong). Default [`StatusClasses::default`].
    pub statuses: StatusClasses,
    /// A header that carries the lease of each partition of the call, for
    /// records read under leases (partitions shared by processes, see
    /// [`Envelope::fence`](sluice_processor::Envelope::fence)):
    /// `partition=token` pairs separated by `, `, e.g. `3=1042, 7=1050`.
    /// The token of a partition is higher for every new holder (the
    /// revision of its claim on the lease), so an API that fences stale writers refuses a call whose
    /// token for a partition is lower than one it has seen. `None` (the
    /// default) sends none.
    pub lease_header: Option<String>,
}

/// The field that carries each record's key in a JSON array body.
pub const DEFAULT_KEY_FIELD: &str = "idempotency_key";

impl HttpSinkConfig {
    /// A configuration that posts to `url`, with no extra headers, the
    /// [`DEFAULT_TIMEOUT`] and [`BodyShape::SingleOrArray`].
    pub fn new(url: impl Into<String>) -> Self {
        HttpSinkConfig {
            url: url.into(),
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            body: BodyShape::default(),
            key_field: Some(DEFAULT_KEY_FIELD.to_owned()),
            health_url: None,
            statuses: StatusClasses::default(),
            lease_header: None,
        }
    }

    /// Adds a header. `${NAME}` in `value` is replaced by the environment
    /// variable `NAME` when the sink is built; see [`Header`].
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Adds a header whose value is a secret whatever its name.
    #[must_use]
    pub fn secret_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::secret(name, value));
        self
    }

    /// Sets the per-request timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the body layout.
    #[must_use]
    pub fn body(mut self, body: BodyShape) -> Self {
        self.body = body;
        self
    }

    /// Sets a URL that must answer a `GET` with 2xx before a run starts.
    #[must_use]
    pub fn health_url(mut self, url: Option<String>) -> Self {
        self.health_url = url;
        self
    }

    /// Sets the field that carries each record's key in an array body
    /// (`None`: no such field).
    #[must_use]
    pub fn key_field(mut self, field: Option<String>) -> Self {
        self.key_field = field;
        self
    }

    /// Sets what each failed status means.
    #[must_use]
    pub fn statuses(mut self, statuses: StatusClasses) -> Self {
        self.statuses = statuses;
        self
    }

    /// Sets the header that carries the calls' leases (`None`: none).
    #[must_use]
    pub fn lease_header(mut self, name: Option<String>) -> Self {
        self.lease_header = name;
        self
    }
}

impl fmt::Debug for HttpSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSinkConfig")
            .field("url", &redact_userinfo(&self.url))
            .field("headers", &HeadersDebug(&self.headers))
            .field("timeout", &self.timeout)
            .field("body", &self.body)
            .field("key_field", &self.key_field)
            .field(
                "health_url",
                &self.health_url.as_deref().map(redact_userinfo),
            )
            .field("statuses", &self.statuses)
            .field("lease_header", &self.lease_header)
            .finish()
    }
}

/// Shows headers as a map of name to value, secrets redacted.
pub(crate) struct HeadersDebug<'a>(pub(crate) &'a [Header]);

impl fmt::Debug for HeadersDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|header| (&header.name, header.shown())))
            .finish()
    }
}

/// How a batch is laid out in the JSON request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyShape {
    /// A batch of one record is the record itself (what an API taking one
    /// record per call expects); a larger batch is a JSON array of records.
    #[default]
    SingleOrArray,
    /// Always a JSON array, even of one record.
    Array,
}

/// One configured request header.
///
/// The value may refer to environment variables as `${NAME}` (letters,
/// digits and `_`, not starting with a digit), expanded once when the sink
/// is built; `$${` is a literal `${`, and any other `$` is kept as is.
///
/// A header's value is **secret** when the header is marked so, when its
/// name is one of [`SECRET_HEADER_NAMES`](crate::SECRET_HEADER_NAMES)
/// (`Authorization`, `Proxy-Authorization`, `X-Api-Key`, `Cookie`, in any
/// case), or when its value refers to the environment. A secret never
/// appears in `Debug` output, logs or error messages, and is marked
/// sensitive for reqwest and hyper.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name, e.g. `X-Api-Key`.
    pub name: String,
    /// The value as written, `${NAME}` references unexpanded.
    pub value: String,
    /// Whether the value is secret whatever the name.
    pub secret: bool,
}

impl Header {
    /// A header, secret only if its name or its value makes it so.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
            secret: false,
        }
    }

    /// A header whose value is secret.
    pub fn secret(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            secret: true,
            ..Header::new(name, value)
        }
    }

    /// Whether the value is secret: marked so, named so, or taken from
    /// the environment.
    pub fn is_secret(&self) -> bool {
        self.secret
            || headers::is_secret_name(&self.name)
            || headers::references_environment(&self.value)
    }

    fn shown(&self) -> &dyn fmt::Debug {
        if self.is_secret() {
            &Redacted
        } else {
            &self.value
        }
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("name", &self.name)
            .field("value", self.shown())
            .field("secret", &self.is_secret())
            .finish()
    }
}

/// Prints `<redacted>`.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

pub(crate) use sluice_processor::redact_userinfo;

/// Why an [`HttpSink`](crate::HttpSink) could not be built. No variant
/// holds a header value or the URL's userinfo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL does not parse.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, userinfo redacted.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The URL's scheme is neither `http` nor `https`.
    #[error("unsupported URL scheme `{scheme}`: use http or https")]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// The timeout is zero: every request would fail.
    #[error("the request timeout must be longer than zero")]
    ZeroTimeout,
    /// The status lists cannot be used: a status in two lists, or one that
    /// cannot be listed.
    #[error("status classes: {0}")]
    Statuses(#[from] StatusClassError),
    /// A header's name is not a valid HTTP header name.
    #[error("invalid header name `{name}`")]
    InvalidHeaderName {
        /// The name as configured.
        name: String,
    },
    /// A header's value (after expansion) is not a valid HTTP header value,
    /// e.g. it holds a line break.
    #[error("invalid value for header `{name}` (the value is not shown)")]
    InvalidHeaderValue {
        /// The header's name.
        name: String,
    },
    /// A header the sink sets itself, such as `Content-Type` or
    /// `Idempotency-Key`.
    #[error("header `{name}` is set by the sink and cannot be configured")]
    ReservedHeader {
        /// The header's name.
        name: String,
    },
    /// A `${` without its `}` or with an invalid variable name.
    #[error(
        "header `{header}`: malformed `${{NAME}}` reference (write `$${{` for a literal `${{`)"
    )]
    MalformedReference {
        /// The header's name.
        header: String,
    },
    /// A `${NAME}` reference to a variable that is not set.
    #[error("header `{header}`: environment variable `{variable}` is not set")]
    UnsetVariable {
        /// The header's name.
        header: String,
        /// The variable's name.
        variable: String,
    },
    /// A `${NAME}` reference to a variable that is not valid Unicode.
    #[error("header `{header}`: environment variable `{variable}` is not valid Unicode")]
    NonUnicodeVariable {
        /// The header's name.
        header: String,
        /// The variable's name.
        variable: String,
    },
    /// The URL has userinfo (sent as basic authentication) and an
    /// `Authorization` header is configured too.
    #[error(
        "the URL's userinfo and a configured `Authorization` header both authenticate: keep one"
    )]
    ConflictingAuthorization,
    /// reqwest could not build its client (e.g. TLS setup failed).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn debug_hides_secrets_only() {
        let config = HttpSinkConfig::new("https://me:hunter2@example.com/")
            .header("authorization", "Bearer abc123")
            .header("X-Env", "pre-${SOME_VAR}")
            .secret_header("X-Signature", "sig-456")
            .header("X-Trace", "trace-789");
        let shown = format!("{config:?}");
        for hidden in ["hunter2", "abc123", "SOME_VAR", "sig-456"] {
            assert!(!shown.contains(hidden), "{hidden} in {shown}");
        }
        assert!(shown.contains("trace-789"), "{shown}");
        assert!(shown.contains("\"authorization\": <redacted>"), "{shown}");
        let header = format!("{:?}", Header::secret("X-S", "value-1"));
        assert!(!header.contains("value-1"), "{header}");
    }
}
