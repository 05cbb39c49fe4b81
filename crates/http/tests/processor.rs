//! `HttpSink` driven by a `StreamProcessor`: accepted records are
//! delivered, a rejected one is dead-lettered with the status and the
//! server's explanation, and no secret reaches the dead-letter reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HANG_GUARD, Reply, Server};
use serde_json::{Value, json};
use sluice_http::{HttpSink, HttpSinkConfig};
use sluice_processor::{
    Context, DeadLetterReason, Incoming, ProcessorConfig, RecordId, Rejected, StreamProcessor,
    Transformed,
};

const KEY: &str = "key-literal-77e1c2";

#[tokio::test]
async fn the_processor_delivers_and_dead_letters_through_http() {
    // Refuses record 2, quoting the API key it was sent, as a careless
    // API might.
    let server = Server::start(|request| {
        if request.json() == json!({"n": 2}) {
            let key = request.header("x-api-key").unwrap_or("").to_owned();
            Reply::status(400).with_body(format!("bad field x (key {key})"))
        } else {
            Reply::status(200)
        }
    })
    .await;
    let sink = HttpSink::new(HttpSinkConfig::new(server.url()).header("X-Api-Key", KEY)).unwrap();
    let numbered = |n: u64, context: &mut Context| -> Result<Transformed<Value>, Rejected<Value>> {
        let stream = context.stream("http-e2e").unwrap();
        let id = RecordId {
            stream,
            partition: 0,
            sequence: n,
        };
        Ok(Transformed::new(id, json!({"n": n})))
    };
    let records = futures::stream::iter((1..=4).map(Incoming::new));
    let processor = StreamProcessor::new(numbered, sink, ProcessorConfig::default()).unwrap();
    let report = tokio::time::timeout(HANG_GUARD, processor.start([records]).finish())
        .await
        .expect("the run hung");

    assert!(report.is_conserved(), "{}", report.conservation());
    assert_eq!(report.metrics.delivered, 3);
    assert_eq!(report.dead_letters.len(), 1);
    let dead = &report.dead_letters[0];
    assert_eq!(dead.id.sequence, 2);
    let DeadLetterReason::Rejected(reason) = &dead.reason else {
        panic!("expected a rejection, got {:?}", dead.reason);
    };
    assert!(
        reason.contains("400") && reason.contains("bad field x"),
        "{reason}"
    );
    assert!(!reason.contains(KEY), "{reason}");
    assert!(!dead.reason.to_string().contains(KEY));

    // One partition, batches of one: every record reached the API once,
    // in sequence.
    let sent: Vec<u64> = server
        .requests()
        .iter()
        .map(|r| r.json()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(sent, [1, 2, 3, 4]);
}
