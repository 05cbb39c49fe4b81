//! The API over HTTP: routes, serving, graceful shutdown.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::json;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{Api, Outcome};
use crate::ledger::{Ledger, LedgerCounts};
use crate::record::{BadBody, parse_body};
use crate::{ConfigError, MockApiConfig};

/// Where our servers listen unless told otherwise: the loopback interface
/// only (`127.0.0.1:8080`). Binding is the caller's: [`serve`] takes a
/// bound listener, [`run_until`] an address.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The request header whose value the ledger counts per successful call.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request header whose leases the ledger checks for stale writers
/// (`partition=token` pairs, as `sluice run --http-lease-header
/// Sluice-Lease` sends them): see
/// [`LedgerCounts::stale_lease_calls`](crate::LedgerCounts::stale_lease_calls).
pub const LEASE_HEADER: &str = "sluice-lease";

/// What the API does with a call that carries a stale lease (see
/// [`LEASE_HEADER`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StaleLeases {
    /// Counts it and serves it as any other call.
    #[default]
    Count,
    /// Counts it and refuses it with `409 Conflict`, delivering nothing:
    /// an API that fences stale writers.
    Refuse,
}

/// The largest `POST /records` body accepted; a larger one gets `413`
/// (and is not counted in the ledger).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long [`MockApiHandle::shutdown`] waits, beyond the longest latency,
/// for the calls in flight to finish before it drops the server.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockApiError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The listener failed (e.g. its local address is unknown).
    #[error("mock API listener: {0}")]
    Io(#[from] io::Error),
    /// The server task panicked or was cancelled.
    #[error("mock API server stopped abnormally: {0}")]
    Server(String),
}

/// A running mock API. Dropping the handle shuts the server down
/// gracefully in the background; [`shutdown`](Self::shutdown) does so and
/// waits.
pub struct MockApiHandle {
    local_addr: SocketAddr,
    api: Arc<Api>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

/// Serves the mock API on `listener` until the returned handle is shut
/// down or dropped.
///
/// Routes: `POST /records` (a call), `GET /ledger` (the [`Ledger`] as
/// JSON). The listener is the caller's: bind it to `127.0.0.1` (see
/// [`DEFAULT_ADDR`]) unless the API must be reachable from elsewhere.
pub async fn serve(
    config: MockApiConfig,
    listener: TcpListener,
) -> Result<MockApiHandle, MockApiError> {
    serve_with(config, StaleLeases::Count, listener).await
}

/// [`serve`], doing `stale` with calls of stale writers.
pub async fn serve_with(
    config: MockApiConfig,
    stale: StaleLeases,
    listener: TcpListener,
) -> Result<MockApiHandle, MockApiError> {
    let api = Arc::new(Api::new(config)?.with_stale_leases(stale));
    let local_addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::trace!("cannot set TCP_NODELAY: {error}");
        }
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = axum::serve(listener, router(Arc::clone(&api))).with_graceful_shutdown(async {
        // A send or a dropped handle alike.
        let _ = stopped.await;
    });
    let task = tokio::spawn(async move { server.await });
    tracing::info!(%local_addr, config = ?api.config(), "mock API listening");
    Ok(MockApiHandle {
        local_addr,
        api,
        stop: Some(stop),
        task,
    })
}

/// Binds `addr`, serves the mock API until `shutdown` completes, then
/// shuts it down gracefully and returns the final ledger: the `sluice
/// mock-api` command in one call. Bind `127.0.0.1` unless the API must be
/// reachable from elsewhere.
pub async fn run_until(
    config: MockApiConfig,
    addr: impl ToSocketAddrs + std::fmt::Display,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Ledger, MockApiError> {
    config.validate()?;
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| MockApiError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let mut handle = serve(config, listener).await?;
    let ended = tokio::select! {
        () = shutdown => None,
        ended = &mut handle.task => Some(ended),
    };
    match ended {
        None => handle.shutdown().await,
        // The server ended on its own: only a failure does that.
        Some(Ok(Ok(()))) => Ok(handle.ledger()),
        Some(Ok(Err(error))) => Err(MockApiError::Io(error)),
        Some(Err(join)) => Err(MockApiError::Server(join.to_string())),
    }
}

impl std::fmt::Debug for MockApiHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockApiHandle")
            .field("local_addr", &self.local_addr)
            .field("config", self.api.config())
            .finish_non_exhaustive()
    }
}

impl MockApiHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's base URL, `http://ADDR` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// A copy of the ledger as it stands.
    pub fn ledger(&self) -> Ledger {
        self.api.ledger()
    }

    /// Stops accepting connections, lets the calls in flight finish (for at
    /// most the longest latency plus [`SHUTDOWN_GRACE`], after which the
    /// server is dropped) and returns the final ledger.
    pub async fn shutdown(mut self) -> Result<Ledger, MockApiError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let grace = self.api.config().latency_max.saturating_add(SHUTDOWN_GRACE);
        let ended = match tokio::time::timeout(grace, &mut self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(MockApiError::Io(error)),
            Ok(Err(join)) => Err(MockApiError::Server(join.to_string())),
            Err(_) => {
                tracing::warn!(
                    "mock API: connections still open after {grace:?}; dropping the server"
                );
                self.task.abort();
                Ok(())
            }
        };
        tracing::info!(local_addr = %self.local_addr, "mock API stopped");
        ended.map(|()| self.api.ledger())
    }
}

fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/records", post(records))
        .route("/ledger", get(ledger))
        .route("/ledger/counts", get(counts))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

async fn records(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(BadBody(reason)) => {
            api.bad_request();
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": reason })),
            )
                .into_response();
        }
    };
    if let Some(leases) = headers.get(LEASE_HEADER)
        && api.leases(&String::from_utf8_lossy(leases.as_bytes()))
        && api.stale_leases() == StaleLeases::Refuse
    {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({ "error": "stale lease: another writer holds a later one" })),
        )
            .into_response();
    }
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .map(|value| String::from_utf8_lossy(value.as_bytes()));
    // A one-record call's header key is its record's own.
    let mut record_keys = body.record_keys;
    if let (true, Some(key)) = (body.single, &key) {
        record_keys.push(key.clone().into_owned());
    }
    match api.call(body.records, key.as_deref(), record_keys).await {
        Outcome::Accepted(n) => {
            (StatusCode::OK, axum::Json(json!({ "accepted": n }))).into_response()
        }
        Outcome::Failed => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": "simulated failure" })),
        )
            .into_response(),
        Outcome::RateLimited(wait) => {
            let seconds = retry_after_seconds(wait);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(RETRY_AFTER, HeaderValue::from(seconds))],
                axum::Json(json!({
                    "error": "rate limited",
                    "retry_after_ms": u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                })),
            )
                .into_response()
        }
    }
}

async fn ledger(State(api): State<Arc<Api>>) -> axum::Json<Ledger> {
    axum::Json(api.ledger())
}

async fn counts(State(api): State<Arc<Api>>) -> axum::Json<LedgerCounts> {
    axum::Json(api.counts())
}

/// `Retry-After` in whole seconds: rounded up, at least 1.
fn retry_after_seconds(wait: Duration) -> u64 {
    let up = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    up.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_of_at_least_one() {
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(59), 59),
            (Duration::MAX, u64::MAX),
        ];
        for (wait, seconds) in cases {
            assert_eq!(retry_after_seconds(wait), seconds, "{wait:?}");
        }
    }
}
