//! The HTTP server: `/metrics`, `/status.json`, `/` and `/health`.

use std::future::{Future, IntoFuture};
use std::io;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::encoding;

use crate::{Exporter, Format, Scrape, render};

/// How long [`Exporter::serve`] waits, once `shutdown` has completed, for
/// the connections still open to finish their request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How often the status's history is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The content type of the OpenMetrics text format as `prometheus-client`
/// writes it.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The live page: one self-contained file, drawn from `/status.json`.
const PAGE: &str = include_str!("page/index.html");

impl Exporter {
    /// Serves `/metrics`, `/status.json`, `/` and `/health` at `listener`
    /// until `shutdown` completes, sampling the status's history once a
    /// second meanwhile; any other path answers 404.
    ///
    /// Once `shutdown` completes, no connection is accepted; requests
    /// under way get up to a second to finish, after which this returns
    /// whatever the connections still open are doing.
    ///
    /// # Errors
    /// An error of the listener that ends serving.
    ///
    /// # Cancel safety
    /// Dropping the future stops serving at once, connections included.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/status.json", get(status))
            .route("/health", get(health))
            .route("/", get(page))
            .with_state(self.clone());
        let sampled = self;
        let (stopped, stopping) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopped.send(());
        };
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .into_future();
        // Graceful shutdown waits for every open connection, and one that
        // never completes its request would hold it forever: bound the
        // wait.
        let grace_spent = async move {
            match stopping.await {
                Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
                // The signal was dropped unsent: the server ended on its own.
                Err(_) => std::future::pending().await,
            }
        };
        let sampler = async {
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                sampled.sample();
            }
        };
        tokio::select! {
            served = server => served,
            () = grace_spent => Ok(()),
            () = sampler => Ok(()),
        }
    }
}

/// Answers one scrape in the format the scraper asked for.
async fn metrics(State(exporter): State<Exporter>, headers: HeaderMap) -> Response {
    let format = Format::accepted(&headers);
    let body = render(&Scrape(exporter), format);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::VARY, HeaderValue::from_static("accept")),
        ],
        body,
    )
        .into_response()
}

/// The status, as JSON.
async fn status(State(exporter): State<Exporter>) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(exporter.status()),
    )
        .into_response()
}

/// 200 while running, 503 once stopping.
async fn health(State(exporter): State<Exporter>) -> Response {
    if exporter.is_stopping() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

/// The live page.
async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
                ),
            ),
        ],
        PAGE,
    )
        .into_response()
}

impl Format {
    /// OpenMetrics when `Accept` names it (with a non-zero weight), as
    /// Prometheus's scrapes do; the older text format otherwise.
    pub(crate) fn accepted(headers: &HeaderMap) -> Format {
        let asks_for_openmetrics = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media_type = parts.next().unwrap_or_default();
                let refused = parts.any(|parameter| {
                    parameter
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media_type.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            });
        if asks_for_openmetrics {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::PrometheusText => encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}
