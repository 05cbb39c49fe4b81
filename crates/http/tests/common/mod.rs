//! A loopback HTTP server for the sink's tests: it records every request
//! and answers as each test tells it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_http::HttpSink;
use sluice_processor::{Envelope, RecordId, SendError, Sink, SinkError, StreamName};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The longest any test waits for one call: a guard against hangs, never
/// an assertion on how long something took.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the server answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_body(mut self, body: impl Into<String>) -> Reply {
        self.body = body.into();
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

type Answer = dyn Fn(&Recorded) -> Reply + Send + Sync;

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    answer: Arc<Answer>,
}

/// A server on 127.0.0.1, on a port of its own, stopped when dropped.
pub struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Answers every request with what `answer` makes of it.
    pub async fn start(answer: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Server {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            requests: Arc::clone(&requests),
            answer: Arc::new(answer),
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server {
            addr,
            requests,
            task,
        }
    }

    /// Answers every request with `status` and an empty body.
    pub async fn replying(status: u16) -> Server {
        Server::start(move |_| Reply::status(status)).await
    }

    /// The URL to post to.
    pub fn url(&self) -> String {
        format!("http://{}/records", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    };
    let reply = (shared.answer)(&recorded);
    shared.requests.lock().unwrap().push(recorded);
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A server that accepts connections and never answers.
pub struct Silent {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Silent { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/records", self.addr)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback URL where nothing listens: a port bound, read, then freed.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/records")
}

/// A batch of `records` in `stream`'s partition 0, from `first` on.
pub fn batch<R>(stream: &str, first: u64, records: Vec<R>) -> Vec<Envelope<R>> {
    let stream = StreamName::new(stream).unwrap();
    records
        .into_iter()
        .zip(first..)
        .map(|(record, sequence)| {
            Envelope::new(
                RecordId {
                    stream,
                    partition: 0,
                    sequence,
                },
                record,
            )
        })
        .collect()
}

/// One call, guarded against hanging.
pub async fn send<R>(sink: &HttpSink, batch: &[Envelope<R>]) -> Result<(), SendError>
where
    R: Serialize + Send + Sync + 'static,
{
    tokio::time::timeout(HANG_GUARD, Sink::send(sink, batch))
        .await
        .expect("the call hung")
}

/// The whole-batch error of a failed call.
pub fn failure(result: Result<(), SendError>) -> SinkError {
    match result {
        Err(SendError::Batch(error)) => error,
        other => panic!("expected a whole-batch failure, got {other:?}"),
    }
}
