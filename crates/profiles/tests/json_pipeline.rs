//! End to end: a real `StreamProcessor` running the `json` profile, records
//! of freely named streams delivered unchanged under their own identity,
//! and the ones a JSON Schema refuses dead-lettered with its message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use sluice_processor::{
    DeadLetterReason, Envelope, Incoming, Origin, ProcessorConfig, RawRecord, RecordId, SendError,
    Sink, StreamName, StreamProcessor,
};
use sluice_profiles::json::{JsonProfile, JsonProfileConfig, JsonRecord};

/// Keeps every record it is sent.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Envelope<JsonRecord>>>>);

#[async_trait]
impl Sink<JsonRecord> for Collect {
    async fn send(&self, batch: &[Envelope<JsonRecord>]) -> Result<(), SendError> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

fn id(stream: &str, partition: u32, sequence: u64) -> RecordId {
    RecordId {
        stream: StreamName::new(stream).unwrap(),
        partition,
        sequence,
    }
}

/// A file source: its lines as raw records at their line numbers.
fn file(
    name: &str,
    lines: &[String],
) -> futures::stream::Iter<std::vec::IntoIter<Incoming<RawRecord>>> {
    let stream = StreamName::new(name).unwrap();
    let records: Vec<_> = (1..)
        .zip(lines)
        .map(|(line, text)| {
            let position = RecordId {
                stream,
                partition: 0,
                sequence: line,
            };
            Incoming::new(RawRecord::new(Origin::new(name), position, text.clone()))
        })
        .collect();
    futures::stream::iter(records)
}

/// Record `n` of `stream`'s `partition`, with a JSON layout of its own.
fn line(stream: &str, partition: u32, n: u64, amount: &str) -> String {
    format!(
        "  {{\"stream\": \"{stream}\", \"meta\": {{\"partition\": {partition}, \"seq\": {n}}}, \
         \"amount\" : {amount}, \"note\": \"n°{n} \\u00e9\"}}\n"
    )
}

fn config(schema: Option<serde_json::Value>) -> JsonProfileConfig {
    JsonProfileConfig {
        stream_field: Some("stream".into()),
        partition_field: Some("/meta/partition".into()),
        sequence_field: Some("/meta/seq".into()),
        priority_field: None,
        schema,
    }
}

/// Two files: one mixing `orders-eu` and `clicks`, one of `clicks`'
/// partition 1. Returns them and every record's identity and text.
fn sources(amount: impl Fn(&str, u64) -> String) -> (Vec<Vec<String>>, BTreeMap<RecordId, String>) {
    let mut mixed = Vec::new();
    for n in 1..=20 {
        mixed.push(line("orders-eu", 0, n, &amount("orders-eu", n)));
        mixed.push(line("clicks", 0, n, &amount("clicks", n)));
    }
    let other: Vec<String> = (1..=15)
        .map(|n| line("clicks", 1, n, &amount("clicks", n)))
        .collect();
    let mut expected = BTreeMap::new();
    for text in mixed.iter().chain(&other) {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let record_id = id(
            value["stream"].as_str().unwrap(),
            u32::try_from(value["meta"]["partition"].as_u64().unwrap()).unwrap(),
            value["meta"]["seq"].as_u64().unwrap(),
        );
        expected.insert(record_id, text.trim().to_owned());
    }
    (vec![mixed, other], expected)
}

/// What the sink received, by identity, after checking each partition
/// came in sequence.
fn delivered(sink: &Collect) -> BTreeMap<RecordId, String> {
    let envelopes = sink.0.lock().unwrap();
    let mut last: BTreeMap<(StreamName, u32), u64> = BTreeMap::new();
    let mut received = BTreeMap::new();
    for envelope in envelopes.iter() {
        let key = (envelope.id.stream, envelope.id.partition);
        let previous = last.insert(key, envelope.id.sequence).unwrap_or(0);
        assert!(
            previous < envelope.id.sequence,
            "{} out of order",
            envelope.id
        );
        let text = envelope.record.as_str().to_owned();
        assert!(
            received.insert(envelope.id, text).is_none(),
            "{} twice",
            envelope.id
        );
    }
    received
}

#[tokio::test(start_paused = true)]
async fn every_record_is_delivered_unchanged_under_its_own_identity() {
    let (files, expected) = sources(|_, n| format!("{n}.5"));
    assert_eq!(expected.len(), 55);
    let sink = Collect::default();
    let profile = JsonProfile::new(config(None)).unwrap();
    let processor =
        StreamProcessor::new(profile, sink.clone(), ProcessorConfig::default()).unwrap();
    let report = processor
        .start([
            file("mixed.jsonl", &files[0]),
            file("clicks-1.jsonl", &files[1]),
        ])
        .finish()
        .await;

    assert!(report.is_conserved(), "{}", report.conservation());
    assert!(report.dead_letters.is_empty(), "{:?}", report.dead_letters);
    assert_eq!(report.metrics.ingested, 55);
    assert_eq!(report.metrics.delivered, 55);
    assert_eq!(delivered(&sink), expected);
    let streams: Vec<&str> = expected.keys().map(|id| id.stream.as_str()).collect();
    assert!(streams.contains(&"orders-eu") && streams.contains(&"clicks"));
}

#[tokio::test(start_paused = true)]
async fn records_the_schema_refuses_are_dead_lettered_with_its_message() {
    // Every fifth order has a negative amount, every seventh click a
    // string one.
    let (files, mut expected) = sources(|stream, n| match stream {
        "orders-eu" if n % 5 == 0 => format!("-{n}"),
        "clicks" if n % 7 == 0 => format!("\"{n}\""),
        _ => n.to_string(),
    });
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["stream", "amount"],
        "properties": { "amount": { "type": "number", "minimum": 0 } },
    });
    let sink = Collect::default();
    let profile = JsonProfile::new(config(Some(schema))).unwrap();
    let processor =
        StreamProcessor::new(profile, sink.clone(), ProcessorConfig::default()).unwrap();
    let report = processor
        .start([
            file("mixed.jsonl", &files[0]),
            file("clicks-1.jsonl", &files[1]),
        ])
        .finish()
        .await;

    let mut refused = BTreeMap::new();
    for n in [5, 10, 15, 20] {
        let record_id = id("orders-eu", 0, n);
        let message = format!("schema: /amount: -{n} is less than the minimum of 0");
        refused.insert(record_id, (expected.remove(&record_id).unwrap(), message));
    }
    for (partition, n) in [(0, 7), (0, 14), (1, 7), (1, 14)] {
        let record_id = id("clicks", partition, n);
        let message = format!(r#"schema: /amount: "{n}" is not of type "number""#);
        refused.insert(record_id, (expected.remove(&record_id).unwrap(), message));
    }

    assert!(report.is_conserved(), "{}", report.conservation());
    assert_eq!(report.metrics.ingested, 55);
    assert_eq!(report.metrics.delivered, 47);
    assert_eq!(report.metrics.dead_lettered, 8);
    assert_eq!(delivered(&sink), expected);
    assert_eq!(report.dead_letters.len(), refused.len());
    for letter in &report.dead_letters {
        let (text, message) = &refused[&letter.id];
        match &letter.reason {
            DeadLetterReason::Invalid(reason) => assert_eq!(reason, message),
            other => panic!("{}: unexpected reason {other}", letter.id),
        }
        assert_eq!(letter.raw.as_ref(), Some(text));
        assert_eq!(letter.record, None);
    }
}
