//! The JetStream source and publisher against the server at
//! 127.0.0.1:4222 (skipped when it is missing, failed under `CI`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use sluice_nats::{JetStreamConfig, JetStreamSource};
use sluice_processor::{ProcessorConfig, RateLimit, StreamProcessor};
use sluice_profiles::json::JsonProfile;

use common::{TestSink, TestStream, URL, eventually, publish, server};

fn processor_config(queue_capacity: usize, max_in_flight: usize) -> ProcessorConfig {
    ProcessorConfig {
        queue_capacity,
        max_in_flight,
        rate_limit: RateLimit::Unlimited,
        drain_deadline: Duration::from_secs(1),
        ..ProcessorConfig::default()
    }
}

fn source_config(
    stream: &TestStream,
    durable: &str,
    queue: usize,
    ack_wait: Duration,
) -> JetStreamConfig {
    JetStreamConfig {
        subject_filter: stream.subjects(),
        ack_wait,
        max_ack_pending: queue,
        fetch_batch: 16,
        fetch_wait: Duration::from_millis(300),
        nak_delay: Duration::from_millis(100),
        ..JetStreamConfig::new(URL, stream.name.clone(), durable)
    }
}

/// Waits until the consumer has nothing pending acknowledgement nor
/// delivery.
async fn settled(consumer: &PullConsumer) -> async_nats::jetstream::consumer::Info {
    let mut consumer = consumer.clone();
    let mut last = None;
    let done = eventually(Duration::from_secs(10), async || {
        let info = consumer.info().await.unwrap().clone();
        let done = info.num_ack_pending == 0 && info.num_pending == 0;
        last = Some(info);
        done
    })
    .await;
    let info = last.unwrap();
    assert!(done, "consumer never settled: {info:?}");
    info
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_delivered_and_acked() {
    let Some(publisher) = server().await else {
        return;
    };
    let stream = TestStream::create(&publisher).await;
    publish(&publisher, &stream, 100).await;

    let config = source_config(&stream, "all", 50, Duration::from_secs(30));
    let source = JetStreamSource::connect(config).await.unwrap();
    let consumer = source.consumer().clone();
    let sink = Arc::new(TestSink::default());
    let profile = JsonProfile::new(Default::default()).unwrap();
    let handle = StreamProcessor::new(profile, Arc::clone(&sink), processor_config(50, 4))
        .unwrap()
        .start([source]);
    assert!(
        eventually(Duration::from_secs(20), async || handle.metrics().delivered
            >= 100)
        .await
    );
    let report = handle.stop().await;
    assert!(report.is_conserved(), "{}", report.conservation());
    assert_eq!(report.metrics.delivered, 100);
    assert_eq!(report.metrics.handed_back, 0);

    // Identities from the subjects and the stream sequences.
    let accepted = sink.accepted.lock().unwrap().clone();
    let sequences: BTreeSet<u64> = accepted.iter().map(|(id, _)| id.sequence).collect();
    assert_eq!(sequences, (1..=100).collect());
    for (id, n) in &accepted {
        assert_eq!(id.stream.as_str(), stream.tag);
        assert_eq!(u64::from(id.partition), n % 3);
        assert_eq!(id.sequence, n + 1);
    }
    let info = settled(&consumer).await;
    assert_eq!(info.num_redelivered, 0, "{info:?}");
    assert_eq!(info.ack_floor.stream_sequence, 100, "{info:?}");
    // Each message was delivered once.
    assert_eq!(info.delivered.consumer_sequence, 100, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_records_are_terminated_not_redelivered() {
    let Some(publisher) = server().await else {
        return;
    };
    let stream = TestStream::create(&publisher).await;
    publish(&publisher, &stream, 100).await;

    let ack_wait = Duration::from_secs(2);
    let source = JetStreamSource::connect(source_config(&stream, "reject", 50, ack_wait))
        .await
        .unwrap();
    let consumer = source.consumer().clone();
    let sink = Arc::new(TestSink {
        reject_every: Some(10),
        ..TestSink::default()
    });
    let profile = JsonProfile::new(Default::default()).unwrap();
    let handle = StreamProcessor::new(profile, Arc::clone(&sink), processor_config(50, 4))
        .unwrap()
        .start([source]);
    let all = async || {
        let metrics = handle.metrics();
        metrics.delivered + metrics.dead_lettered >= 100
    };
    assert!(eventually(Duration::from_secs(20), all).await);
    let report = handle.stop().await;
    assert!(report.is_conserved(), "{}", report.conservation());
    assert_eq!(report.metrics.delivered, 90);
    assert_eq!(report.metrics.dead_lettered, 10);
    assert_eq!(report.dead_letters.len(), 10);
    settled(&consumer).await;

    // Past the ack wait, nothing comes back.
    tokio::time::sleep(ack_wait + Duration::from_millis(500)).await;
    let mut again = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .unwrap();
    let mut redelivered = 0;
    while let Some(message) = again.next().await {
        message.unwrap();
        redelivered += 1;
    }
    assert_eq!(redelivered, 0);
    let info = settled(&consumer).await;
    assert_eq!(info.num_redelivered, 0, "{info:?}");
    assert_eq!(info.delivered.consumer_sequence, 100, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_handed_back_at_a_stop_are_redelivered() {
    let Some(publisher) = server().await else {
        return;
    };
    let stream = TestStream::create(&publisher).await;
    publish(&publisher, &stream, 100).await;
    let ack_wait = Duration::from_secs(3);
    let profile = || JsonProfile::new(Default::default()).unwrap();

    // First run: a slow sink, stopped after some records.
    let source = JetStreamSource::connect(source_config(&stream, "resume", 20, ack_wait))
        .await
        .unwrap();
    let first_sink = Arc::new(TestSink {
        delay: Duration::from_millis(20),
        ..TestSink::default()
    });
    let handle = StreamProcessor::new(profile(), Arc::clone(&first_sink), processor_config(20, 1))
        .unwrap()
        .start([source]);
    assert!(
        eventually(Duration::from_secs(20), async || handle.metrics().delivered
            >= 30)
        .await
    );
    let first = handle.stop().await;
    assert!(first.is_conserved(), "{}", first.conservation());
    assert!(
        first.metrics.delivered < 100,
        "stopped too late: {:?}",
        first.metrics
    );
    assert!(
        first.metrics.handed_back > 0,
        "nothing handed back: {:?}",
        first.metrics
    );

    // Second run of the same durable consumer: the rest, and the handed back.
    let source = JetStreamSource::connect(source_config(&stream, "resume", 20, ack_wait))
        .await
        .unwrap();
    let consumer = source.consumer().clone();
    let second_sink = Arc::new(TestSink::default());
    let handle = StreamProcessor::new(profile(), Arc::clone(&second_sink), processor_config(20, 4))
        .unwrap()
        .start([source]);
    let covered = async || {
        let mut numbers = first_sink.numbers();
        numbers.extend(second_sink.numbers());
        numbers.len() == 100
    };
    assert!(
        eventually(Duration::from_secs(30), covered).await,
        "records lost"
    );
    let second = handle.stop().await;
    assert!(second.is_conserved(), "{}", second.conservation());
    let mut numbers = first_sink.numbers();
    numbers.extend(second_sink.numbers());
    assert_eq!(numbers, (0..100).collect());
    // Delivered more often than there are messages: the handed back ones
    // came again.
    let info = settled(&consumer).await;
    assert_eq!(info.delivered.stream_sequence, 100, "{info:?}");
    assert!(info.delivered.consumer_sequence > 100, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_held_past_the_ack_wait_are_kept_in_progress() {
    let Some(publisher) = server().await else {
        return;
    };
    let stream = TestStream::create(&publisher).await;
    publish(&publisher, &stream, 4).await;

    // Each call takes longer than the ack wait: without progress marks
    // JetStream would redeliver the records waiting in the queue.
    let ack_wait = Duration::from_secs(1);
    let source = JetStreamSource::connect(source_config(&stream, "slow", 4, ack_wait))
        .await
        .unwrap();
    let consumer = source.consumer().clone();
    let sink = Arc::new(TestSink {
        delay: Duration::from_millis(1500),
        ..TestSink::default()
    });
    let profile = JsonProfile::new(Default::default()).unwrap();
    let handle = StreamProcessor::new(profile, Arc::clone(&sink), processor_config(4, 1))
        .unwrap()
        .start([source]);
    assert!(
        eventually(Duration::from_secs(20), async || handle.metrics().delivered
            >= 4)
        .await
    );
    let report = handle.stop().await;
    assert_eq!(report.metrics.delivered, 4);
    assert_eq!(
        sink.accepted.lock().unwrap().len(),
        4,
        "a record came twice"
    );
    let info = settled(&consumer).await;
    assert_eq!(info.delivered.consumer_sequence, 4, "redelivered: {info:?}");
}
