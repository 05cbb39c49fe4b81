//! Request headers: environment expansion, secrecy, and the reqwest
//! [`HeaderMap`] the client sends on every call.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{ConfigError, Header};

/// Header names whose values are always treated as secrets, compared
/// case-insensitively.
pub const SECRET_HEADER_NAMES: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "cookie",
];

/// Header names the sink sets itself; a configured header may not use them.
pub const RESERVED_HEADER_NAMES: [&str; 6] = [
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "idempotency-key",
];

/// The shortest secret the sink scrubs from response bodies quoted in
/// error messages: shorter ones would blank out ordinary words.
const MIN_SCRUBBED_LEN: usize = 4;

/// Whether a header called `name` always carries a secret.
pub(crate) fn is_secret_name(name: &str) -> bool {
    SECRET_HEADER_NAMES
        .iter()
        .any(|secret| secret.eq_ignore_ascii_case(name))
}

/// One piece of a header value as written in the configuration.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    /// Text sent as is.
    Literal(&'a str),
    /// `${NAME}`: the value of the environment variable `NAME`.
    Variable(&'a str),
}

/// Splits `value` into literal text and `${NAME}` references. `$${` is a
/// literal `${`; any other `$` is literal. `None` when a `${` is not closed
/// or the name in it is not `[A-Za-z_][A-Za-z0-9_]*`.
fn pieces(value: &str) -> Option<Vec<Piece<'_>>> {
    let mut pieces = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            // `$${`: a literal `${`.
            pieces.push(Piece::Literal(&rest[..at]));
            pieces.push(Piece::Literal("${"));
            rest = escaped;
        } else if let Some(inner) = after.strip_prefix('{') {
            pieces.push(Piece::Literal(&rest[..at]));
            let end = inner.find('}')?;
            let name = &inner[..end];
            if !is_variable_name(name) {
                return None;
            }
            pieces.push(Piece::Variable(name));
            rest = &inner[end + 1..];
        } else {
            pieces.push(Piece::Literal(&rest[..=at]));
            rest = after;
        }
    }
    pieces.push(Piece::Literal(rest));
    pieces.retain(|piece| *piece != Piece::Literal(""));
    Some(pieces)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether the value as written refers to the environment (or cannot be
/// parsed, in which case it is treated as a secret too, to be safe).
pub(crate) fn references_environment(value: &str) -> bool {
    pieces(value).is_none_or(|pieces| pieces.iter().any(|p| matches!(p, Piece::Variable(_))))
}

/// The value as written without its `${NAME}` references: the text that
/// is sent as is. `None` when the references cannot be parsed.
pub(crate) fn literal_text(value: &str) -> Option<String> {
    let pieces = pieces(value)?;
    Some(
        pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Literal(text) => Some(*text),
                Piece::Variable(_) => None,
            })
            .collect(),
    )
}

/// What a lookup of one environment variable found.
pub(crate) enum Lookup {
    /// The variable's value.
    Set(String),
    /// The variable is not set.
    Unset,
    /// The variable is set but is not valid Unicode.
    NotUnicode,
}

/// Looks `name` up in the process environment.
pub(crate) fn process_environment(name: &str) -> Lookup {
    match std::env::var(name) {
        Ok(value) => Lookup::Set(value),
        Err(std::env::VarError::NotPresent) => Lookup::Unset,
        Err(std::env::VarError::NotUnicode(_)) => Lookup::NotUnicode,
    }
}

/// A header value with its `${NAME}` references replaced, and the values
/// of the variables it used (each one a secret).
struct Expanded {
    value: String,
    variables: Vec<String>,
}

fn expand(header: &Header, lookup: &dyn Fn(&str) -> Lookup) -> Result<Expanded, ConfigError> {
    let pieces = pieces(&header.value).ok_or_else(|| ConfigError::MalformedReference {
        header: header.name.clone(),
    })?;
    let mut value = String::with_capacity(header.value.len());
    let mut variables = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => value.push_str(text),
            Piece::Variable(name) => match lookup(name) {
                Lookup::Set(found) => {
                    value.push_str(&found);
                    variables.push(found);
                }
                Lookup::Unset => {
                    return Err(ConfigError::UnsetVariable {
                        header: header.name.clone(),
                        variable: name.to_owned(),
                    });
                }
                Lookup::NotUnicode => {
                    return Err(ConfigError::NonUnicodeVariable {
                        header: header.name.clone(),
                        variable: name.to_owned(),
                    });
                }
            },
        }
    }
    Ok(Expanded { value, variables })
}

/// The configured headers, ready to send, and the secret strings that
/// must never be shown.
pub(crate) struct Resolved {
    /// Sent on every request; secret values are marked sensitive.
    pub(crate) map: HeaderMap,
    /// Every secret header value, and every environment value used in
    /// one, for scrubbing text that may echo them.
    pub(crate) secrets: Secrets,
}

/// `name` as a header name the configuration may set: valid, and not one
/// the sink sets itself.
pub(crate) fn configurable_name(name: &str) -> Result<HeaderName, ConfigError> {
    let parsed =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| ConfigError::InvalidHeaderName {
            name: name.to_owned(),
        })?;
    if RESERVED_HEADER_NAMES.contains(&parsed.as_str()) {
        return Err(ConfigError::ReservedHeader {
            name: name.to_owned(),
        });
    }
    Ok(parsed)
}

/// Builds the header map from the configuration, expanding `${NAME}`
/// references with `lookup`.
pub(crate) fn resolve(
    headers: &[Header],
    lookup: &dyn Fn(&str) -> Lookup,
) -> Result<Resolved, ConfigError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    let mut secrets = Vec::new();
    for header in headers {
        let name = configurable_name(&header.name)?;
        let secret = header.is_secret();
        let expanded = expand(header, lookup)?;
        let mut value = HeaderValue::from_str(&expanded.value).map_err(|_| {
            ConfigError::InvalidHeaderValue {
                name: header.name.clone(),
            }
        })?;
        value.set_sensitive(secret);
        if secret {
            secrets.push(expanded.value);
            secrets.extend(expanded.variables);
        }
        map.append(name, value);
    }
    Ok(Resolved {
        map,
        secrets: Secrets::new(secrets),
    })
}

/// Secret strings to scrub from text the sink did not write itself (a
/// response body may echo a request header).
#[derive(Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    /// The placeholder that replaces a secret.
    pub(crate) const REDACTED: &'static str = "<redacted>";

    pub(crate) fn new(mut secrets: Vec<String>) -> Self {
        secrets.retain(|secret| secret.len() >= MIN_SCRUBBED_LEN);
        // Longest first, so that a whole value goes before a part of it.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Secrets(secrets)
    }

    /// These secrets and `extra` (e.g. the URL's credentials).
    pub(crate) fn with(mut self, extra: impl IntoIterator<Item = String>) -> Self {
        self.0.extend(extra);
        Secrets::new(self.0)
    }

    /// The longest secret, in bytes.
    pub(crate) fn longest(&self) -> usize {
        self.0.first().map_or(0, String::len)
    }

    /// `text` with every secret replaced by [`Secrets::REDACTED`].
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), Self::REDACTED);
            }
        }
        text
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} redacted>", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn env(name: &str) -> Lookup {
        match name {
            "TOKEN" => Lookup::Set("t0k3n".into()),
            "BAD" => Lookup::NotUnicode,
            _ => Lookup::Unset,
        }
    }

    fn header(name: &str, value: &str) -> Header {
        Header::new(name, value)
    }

    #[test]
    fn references_are_expanded_and_escapes_kept() {
        let cases = [
            ("plain", "plain"),
            ("Bearer ${TOKEN}", "Bearer t0k3n"),
            ("${TOKEN}${TOKEN}", "t0k3nt0k3n"),
            ("cost: $5", "cost: $5"),
            ("$${TOKEN}", "${TOKEN}"),
            ("trailing $", "trailing $"),
            ("a$$b", "a$$b"),
        ];
        for (written, sent) in cases {
            let resolved = resolve(&[header("X-Test", written)], &env).unwrap();
            assert_eq!(resolved.map["x-test"], sent, "{written}");
        }
    }

    #[test]
    fn bad_references_are_errors_naming_the_variable() {
        let unset = resolve(&[header("X-A", "${NOPE}")], &env).err().unwrap();
        assert_eq!(
            unset,
            ConfigError::UnsetVariable {
                header: "X-A".into(),
                variable: "NOPE".into()
            }
        );
        assert!(unset.to_string().contains("NOPE"));
        let bad = resolve(&[header("X-A", "${BAD}")], &env).err().unwrap();
        assert!(matches!(bad, ConfigError::NonUnicodeVariable { .. }));
        for malformed in ["${TOKEN", "${}", "${1X}", "${A-B}"] {
            let error = resolve(&[header("X-A", malformed)], &env).err().unwrap();
            assert!(
                matches!(error, ConfigError::MalformedReference { .. }),
                "{malformed}"
            );
        }
    }

    #[test]
    fn secrets_are_marked_sensitive() {
        let resolved = resolve(
            &[
                header("authorization", "Basic abcd"),
                header("X-From-Env", "${TOKEN}"),
                Header::secret("X-Signature", "sig-value"),
                header("X-Trace", "visible"),
            ],
            &env,
        )
        .unwrap();
        assert!(resolved.map["authorization"].is_sensitive());
        assert!(resolved.map["x-from-env"].is_sensitive());
        assert!(resolved.map["x-signature"].is_sensitive());
        assert!(!resolved.map["x-trace"].is_sensitive());
        let scrubbed = resolved
            .secrets
            .scrub("echo: Basic abcd, t0k3n, sig-value, visible");
        assert_eq!(
            scrubbed,
            "echo: <redacted>, <redacted>, <redacted>, visible"
        );
    }

    #[test]
    fn reserved_and_invalid_headers_are_refused() {
        for reserved in ["Content-Type", "idempotency-key", "Host"] {
            let error = resolve(&[header(reserved, "x")], &env).err().unwrap();
            assert!(
                matches!(error, ConfigError::ReservedHeader { .. }),
                "{reserved}"
            );
        }
        let error = resolve(&[header("bad name", "x")], &env).err().unwrap();
        assert!(matches!(error, ConfigError::InvalidHeaderName { .. }));
        let error = resolve(&[header("Authorization", "line\nbreak")], &env)
            .err()
            .unwrap();
        assert_eq!(
            error,
            ConfigError::InvalidHeaderValue {
                name: "Authorization".into()
            }
        );
        assert!(!error.to_string().contains("break"));
    }
}
