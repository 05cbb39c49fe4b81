//! From an HTTP exchange to the processor's [`SinkError`].

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use sluice_processor::SinkError;

use crate::headers::Secrets;
use crate::retry_after::parse_retry_after;
use crate::status::{Class, StatusClasses};

/// The most of a response body, in bytes, that an error message quotes:
/// the body's start, cut on a character boundary.
pub const MAX_BODY_EXCERPT: usize = 512;

/// The most of a successful (or rate-limited) response's body the sink
/// reads before letting the response go: read to its end, a small body
/// lets the connection return to the pool.
const DRAIN_LIMIT: usize = 64 * 1024;

/// The outcome of a call that got a response, and whether it was 413
/// Payload Too Large (which the sink may answer by splitting the batch).
///
/// 2xx is a delivery; 429 a refusal for the rate limit, with the wait of
/// its `Retry-After`; any other status what `classes` says (by default 408,
/// 425 and 5xx transient failures; 3xx, 401, 403, 404 and 405
/// misconfiguration, its message naming `url`; other statuses rejections;
/// redirects are not followed). A body that cannot be read where its
/// excerpt is wanted makes the failure transient.
pub(crate) async fn outcome(
    mut response: reqwest::Response,
    secrets: &Secrets,
    classes: &StatusClasses,
    url: &str,
) -> (Result<(), SinkError>, bool) {
    let status = response.status();
    if status.is_success() {
        drain(&mut response).await;
        return (Ok(()), false);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = retry_after(&response, SystemTime::now());
        drain(&mut response).await;
        return (Err(SinkError::RateLimited { retry_after }), false);
    }
    let too_large = status == StatusCode::PAYLOAD_TOO_LARGE;
    let class = classes.class(status.as_u16());
    let redirect = if status.is_redirection() {
        " (redirects are not followed)"
    } else {
        ""
    };
    let from = if class == Class::Fatal {
        format!(" from {url}")
    } else {
        String::new()
    };
    let excerpt = match excerpt(&mut response, secrets).await {
        Ok(excerpt) => excerpt,
        Err(error) => {
            let message = format!(
                "HTTP {status}{from}{redirect}, then reading the response body failed: {}",
                describe(&error, secrets)
            );
            return (Err(SinkError::Transient(message)), too_large);
        }
    };
    let message = if excerpt.is_empty() {
        format!("HTTP {status}{from}{redirect}")
    } else {
        format!("HTTP {status}{from}{redirect}: {excerpt}")
    };
    (Err(classes.outcome(status.as_u16(), message)), too_large)
}

/// The outcome of a request that got no response: a timeout is transient
/// (the API may have the records); any other failure before a response
/// (connection refused or reset, a name that does not resolve, a TLS
/// failure) says the API cannot be reached: unavailable. The message
/// names `url`, never a credential.
pub(crate) fn failure(
    error: &reqwest::Error,
    secrets: &Secrets,
    url: &str,
    timeout: Duration,
) -> SinkError {
    let message = describe(error, secrets);
    if error.is_timeout() {
        SinkError::Transient(format!("{message} (limit {timeout:?}) at {url}"))
    } else if error.is_connect() || error.is_request() {
        SinkError::Unavailable(format!("{message}: {url}"))
    } else {
        SinkError::Transient(format!("{message} at {url}"))
    }
}

/// `url` as error messages show it: scheme, host, port and path; no
/// userinfo, query or fragment, which may hold credentials.
pub(crate) fn shown_url(url: &reqwest::Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

/// The wait a response's `Retry-After` asks for, if it parses.
fn retry_after(response: &reqwest::Response, now: SystemTime) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Reads up to [`DRAIN_LIMIT`] bytes of the body, ignoring errors: the
/// outcome is already known from the status.
async fn drain(response: &mut reqwest::Response) {
    let mut read = 0;
    while read < DRAIN_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
}

/// The start of the body, as text: lossy UTF-8, secrets scrubbed, control
/// characters turned into spaces, trimmed, at most [`MAX_BODY_EXCERPT`]
/// bytes, with `…` when cut.
async fn excerpt(
    response: &mut reqwest::Response,
    secrets: &Secrets,
) -> Result<String, reqwest::Error> {
    // Enough to scrub a secret that starts inside the excerpt, and to
    // complete a character cut at its end.
    let wanted = MAX_BODY_EXCERPT + secrets.longest() + 4;
    let mut body = Vec::new();
    let mut more = true;
    while body.len() < wanted {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => {
                more = false;
                break;
            }
        }
    }
    Ok(quote(&body, more, secrets))
}

/// See [`excerpt`]; `more` tells that the body goes on past `body`.
pub(crate) fn quote(body: &[u8], more: bool, secrets: &Secrets) -> String {
    let text = secrets.scrub(&String::from_utf8_lossy(body));
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    let mut end = text.len().min(MAX_BODY_EXCERPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = end < text.len() || more;
    let mut quoted = text[..end].trim_end().to_owned();
    if cut {
        quoted.push('…');
    }
    quoted
}

/// A failed request, described without its URL (which may carry userinfo)
/// and with every secret scrubbed: what kind of failure, then each error
/// of the chain.
pub(crate) fn describe(error: &reqwest::Error, secrets: &Secrets) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "body failed"
    } else {
        "request failed"
    };
    let mut message = String::from(kind);
    // The top error's Display would add the URL: use its kind instead.
    let mut last = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if text != last && !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        last = text;
        source = cause.source();
    }
    secrets.scrub(&message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_on_a_char_boundary() {
        let none = Secrets::default();
        assert_eq!(quote(b"  bad field x\n", false, &none), "bad field x");
        assert_eq!(quote(b"a\r\nb\tc", false, &none), "a  b c");
        assert_eq!(quote(b"short", true, &none), "short…");
        // 511 ASCII bytes then a 3-byte character: the cut falls inside it.
        let mut body = vec![b'x'; MAX_BODY_EXCERPT - 1];
        body.extend_from_slice("€€".as_bytes());
        let quoted = quote(&body, false, &none);
        assert_eq!(quoted, format!("{}…", "x".repeat(MAX_BODY_EXCERPT - 1)));
        assert_eq!(quote(&[0xff, b'o', b'k'], false, &none), "\u{fffd}ok");
    }

    #[test]
    fn quotes_scrub_secrets_even_at_the_cut() {
        let secrets = Secrets::new(vec!["s3cret-token".into()]);
        let mut body = vec![b'x'; MAX_BODY_EXCERPT - 4];
        body.extend_from_slice(b"s3cret-token and more");
        let quoted = quote(&body, false, &secrets);
        assert!(!quoted.contains("s3cr"), "{quoted}");
        assert_eq!(
            quote(b"echo: s3cret-token", false, &secrets),
            "echo: <redacted>"
        );
    }
}
