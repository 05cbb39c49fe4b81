//! Before a run reads anything: can the API be reached at all?

use reqwest::{Client, Url};
use sluice_processor::SinkError;

use crate::headers::Secrets;
use crate::response;

/// A URL to ask, and how it may be shown (without credentials).
pub(crate) struct Target<'a> {
    pub(crate) url: &'a Url,
    pub(crate) shown: &'a str,
}

/// Checks that the API can be reached without sending a record: a `HEAD`
/// request to `api`, which any answer passes (its name resolves, it
/// accepts a connection, TLS agrees; `405` is fine), then, when given, a
/// `GET` of `health`, which must answer 2xx. Returns what it found.
pub(crate) async fn reachable(
    client: &Client,
    api: Target<'_>,
    health: Option<Target<'_>>,
    secrets: &Secrets,
) -> Result<String, SinkError> {
    let failed = |what: &str, error: reqwest::Error| {
        SinkError::Unavailable(format!("{what}: {}", response::describe(&error, secrets)))
    };
    let answer = client
        .head(api.url.clone())
        .send()
        .await
        .map_err(|error| failed(api.shown, error))?;
    let mut found = format!("{} answers (HEAD: {})", api.shown, answer.status());
    if let Some(health) = health {
        let answer = client
            .get(health.url.clone())
            .send()
            .await
            .map_err(|error| failed(&format!("health URL {}", health.shown), error))?;
        let status = answer.status();
        if !status.is_success() {
            return Err(SinkError::Misconfigured(format!(
                "health URL {} answered {status}, not 2xx",
                health.shown
            )));
        }
        found.push_str(&format!("; health URL {}: {status}", health.shown));
    }
    Ok(found)
}
