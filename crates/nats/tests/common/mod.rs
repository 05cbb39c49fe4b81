//! What the JetStream tests share: reaching the server, unique names, the
//! drop guard that deletes a test's stream, sinks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sluice_nats::JetStreamPublisher;
use sluice_processor::{Envelope, RecordId, SendError, Sink, SinkError};
use sluice_profiles::json::JsonRecord;

pub const URL: &str = "nats://127.0.0.1:4222";

/// The publisher, or `None` (after saying why) when the server is not
/// there; under `CI` a missing server fails the test.
pub async fn server() -> Option<JetStreamPublisher> {
    let reached = tokio::time::timeout(Duration::from_secs(3), JetStreamPublisher::connect(URL))
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|connected| connected.map_err(|error| error.to_string()));
    let publisher = match reached {
        Ok(publisher) => publisher,
        Err(error) => return missing(&error),
    };
    // JetStream itself must be enabled.
    let info = publisher
        .client()
        .request("$JS.API.INFO", "".into())
        .await
        .map(|reply| String::from_utf8_lossy(&reply.payload).into_owned());
    match info {
        Ok(info) if !info.contains("\"error\"") => Some(publisher),
        Ok(info) => missing(&info),
        Err(error) => missing(&error.to_string()),
    }
}

fn missing(error: &str) -> Option<JetStreamPublisher> {
    let message = format!("NATS JetStream at 127.0.0.1:4222 is missing ({error})");
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{nanos:x}x{count}", std::process::id())
}

/// A test's JetStream stream (with its consumers), deleted when dropped,
/// also when the test fails.
pub struct TestStream {
    /// The JetStream stream's name.
    pub name: String,
    /// The records' stream: `<prefix>.<tag>.<partition>`.
    pub tag: String,
    /// The subjects' first token, of this test's own: no other stream
    /// (another test's, or a user's over `records.>`) overlaps.
    pub prefix: String,
}

impl TestStream {
    pub async fn create(publisher: &JetStreamPublisher) -> TestStream {
        let name = unique("SLUICE_TEST_");
        let tag = unique("t");
        let prefix = unique("p");
        let stream = TestStream { name, tag, prefix };
        publisher
            .create_stream_if_missing(&stream.name, vec![stream.subjects()])
            .await
            .unwrap();
        stream
    }

    pub fn subjects(&self) -> String {
        format!("{}.{}.>", self.prefix, self.tag)
    }

    /// A publisher to this stream's subjects.
    pub fn publisher(&self, publisher: &JetStreamPublisher) -> JetStreamPublisher {
        publisher.clone().with_prefix(&self.prefix)
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        delete_stream(&self.name);
    }
}

/// The lease bucket of a group of partitioned sources, deleted when
/// dropped.
pub struct TestBucket(pub String);

impl TestBucket {
    /// The bucket of the group `durable`.
    pub fn of(durable: &str) -> TestBucket {
        TestBucket(format!("KV_{durable}-leases"))
    }
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        delete_stream(&self.0);
    }
}

/// Deletes the JetStream stream `name` on a runtime and connection of its
/// own: the test's may be gone.
fn delete_stream(name: &str) {
    let owned = name.to_owned();
    let deleting = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = async_nats::connect(URL).await.ok()?;
            let context = async_nats::jetstream::new(client);
            context.delete_stream(&owned).await.ok()
        })
    });
    if deleting.join().ok().flatten().is_none() {
        eprintln!("could not delete test stream {name}");
    }
}

/// Publishes `{"n": i}` for i in 0..count to partitions i % 3.
pub async fn publish(publisher: &JetStreamPublisher, stream: &TestStream, count: u32) {
    let records = (0..count).map(|n| (stream.tag.as_str(), n % 3, format!("{{\"n\":{n}}}")));
    assert_eq!(
        stream
            .publisher(publisher)
            .publish_all(records)
            .await
            .unwrap(),
        u64::from(count)
    );
}

/// The record's `n`.
pub fn number(record: &JsonRecord) -> u64 {
    let text = record.as_str();
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// A sink that accepts every record but those whose `n` is a multiple of
/// `reject_every` (when set), which it rejects for good; it may take
/// `delay` per call.
#[derive(Default)]
pub struct TestSink {
    pub reject_every: Option<u64>,
    pub delay: Duration,
    pub accepted: Mutex<Vec<(RecordId, u64)>>,
}

impl TestSink {
    pub fn numbers(&self) -> BTreeSet<u64> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| *n)
            .collect()
    }
}

#[async_trait]
impl Sink<JsonRecord> for TestSink {
    async fn send(&self, batch: &[Envelope<JsonRecord>]) -> Result<(), SendError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted = self.accepted.lock().unwrap();
        for envelope in batch {
            let n = number(&envelope.record);
            if self
                .reject_every
                .is_some_and(|every| n.is_multiple_of(every))
            {
                outcomes.push(Err(SinkError::Rejected(format!("{n} is refused"))));
            } else {
                accepted.push((envelope.id, n));
                outcomes.push(Ok(()));
            }
        }
        Err(SendError::PerRecord(outcomes))
    }
}

/// Waits until `done` holds, checking every 50 ms, for at most `limit`.
pub async fn eventually(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < until {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
