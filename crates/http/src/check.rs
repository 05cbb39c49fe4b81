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

/// Whether the API answers as up, asked while calls fail with nothing
/// delivered: the health URL, when given, answers 2xx; else a `HEAD` of
/// the API gets an answer below 500 (an API that routes only `POST`
/// answers `405`, which is up; a proxy before a down service answers
/// `502` or `503`). No answer, or none in the client's timeout, is down.
pub(crate) async fn answers_as_up(client: &Client, api: &Url, health: Option<&Url>) -> bool {
    let request = match health {
        Some(health) => client.get(health.clone()),
        None => client.head(api.clone()),
    };
    match request.send().await {
        Ok(answer) if health.is_some() => answer.status().is_success(),
        Ok(answer) => !answer.status().is_server_error(),
        Err(_) => false,
    }
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
