//! Secret header values reach the server and nothing else: not `Debug`,
//! not error messages, not log events.
//!
//! The secret comes from an environment variable with a name of its own.
//! Setting a variable in a running test needs `unsafe` (which the
//! workspace forbids) and would race other tests, so the test runs itself
//! again in a child process with the variable set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Reply, Server, batch, failure, refused_url};
use serde_json::json;
use sluice_http::{HttpSink, HttpSinkConfig};
use sluice_processor::{SendError, SinkError};

const VARIABLE: &str = "SLUICE_HTTP_TEST_SECRET_5F2C9A";
const TEST: &str = "secret_headers_are_sent_but_never_shown";
/// A literal secret, secret because the header is marked so.
const SIGNATURE: &str = "sig-literal-8d1f30";

#[test]
fn secret_headers_are_sent_but_never_shown() {
    let Ok(secret) = std::env::var(VARIABLE) else {
        return run_in_child();
    };
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .finish();
    // The child runs this test alone, so a global subscriber sees only it.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(check(&secret));
    let logged = log.text();
    assert!(
        logged.contains("http sink call"),
        "nothing logged: {logged}"
    );
    for hidden in [secret.as_str(), SIGNATURE] {
        assert!(!logged.contains(hidden), "a secret was logged: {logged}");
    }
}

fn config(url: &str) -> HttpSinkConfig {
    HttpSinkConfig::new(url)
        .header("Authorization", format!("Bearer ${{{VARIABLE}}}"))
        .header("X-Token", format!("${{{VARIABLE}}}"))
        .secret_header("X-Signature", SIGNATURE)
        .header("X-Plain", "visible-value")
}

async fn check(secret: &str) {
    // Every answer echoes what it received, as a careless API might.
    let echo = |status: u16| {
        move |request: &common::Recorded| {
            let echoed: Vec<String> = ["authorization", "x-token", "x-signature", "x-plain"]
                .iter()
                .map(|name| format!("{name}={}", request.header(name).unwrap_or("")))
                .collect();
            Reply::status(status).with_body(echoed.join(", "))
        }
    };
    let accepting = Server::start(echo(200)).await;
    let rejecting = Server::start(echo(400)).await;
    let failing = Server::start(echo(503)).await;

    let sink = HttpSink::new(config(&accepting.url())).unwrap();
    call(&sink).await.unwrap();
    let received = &accepting.requests()[0];
    assert_eq!(
        received.header("authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
    assert_eq!(received.header("x-token"), Some(secret));
    assert_eq!(received.header("x-signature"), Some(SIGNATURE));
    assert_eq!(received.header("x-plain"), Some("visible-value"));

    let mut shown = vec![
        format!("{sink:?}"),
        format!("{:?}", config(&accepting.url())),
    ];
    assert!(
        shown.iter().all(|text| text.contains("visible-value")),
        "{shown:?}"
    );
    let rejected = failure(call(&HttpSink::new(config(&rejecting.url())).unwrap()).await);
    assert!(matches!(&rejected, SinkError::Rejected(m) if m.contains("400")));
    let transient = failure(call(&HttpSink::new(config(&failing.url())).unwrap()).await);
    assert!(matches!(&transient, SinkError::Transient(m) if m.contains("503")));
    let refused = failure(call(&HttpSink::new(config(&refused_url())).unwrap()).await);
    for error in [&rejected, &transient, &refused] {
        shown.push(error.to_string());
        shown.push(format!("{error:?}"));
    }
    // The echoes did quote the headers, with the secrets scrubbed out.
    assert!(shown[2].contains("visible-value") && shown[2].contains("<redacted>"));
    for text in &shown {
        assert!(!text.contains(secret), "secret shown: {text}");
        assert!(!text.contains(SIGNATURE), "signature shown: {text}");
    }
}

async fn call(sink: &HttpSink) -> Result<(), SendError> {
    let records = batch("secrets", 0, vec![json!({"n": 1})]);
    common::send(sink, &records).await
}

/// Runs this test in a child process with the variable set to a value
/// unique to this run, and checks that it ran and passed there.
fn run_in_child() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let value = format!("tok-{}-{nanos}", std::process::id());
    let output = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(VARIABLE, &value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child run failed:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains(&value) && !stderr.contains(&value));
}

/// Log output, kept in memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
