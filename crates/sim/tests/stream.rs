//! The stream simulator, under tokio's paused clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use sluice_models::{DataSource, StreamData};
use sluice_processor::EpochClock;
use sluice_sim::{Burst, PayloadKind, SourceStream, StreamConfig, StreamSimulator};
use tokio::time::Instant;

/// Pulls from every stream as fast as it offers, for `duration`.
async fn drain_for(streams: Vec<SourceStream>, duration: Duration) -> Vec<StreamData> {
    let deadline = Instant::now() + duration;
    let merged = futures::stream::select_all(streams);
    merged
        .take_until(tokio::time::sleep_until(deadline))
        .collect()
        .await
}

fn simulator(config: StreamConfig) -> StreamSimulator {
    StreamSimulator::new(config, EpochClock::starting_at(1_764_400_000.0))
        .expect("valid stream settings")
}

#[tokio::test(start_paused = true)]
async fn the_ten_second_check_offers_about_21_6_records_a_second() {
    let config = StreamConfig::default();
    assert!((config.offered_rate() - 21.6).abs() < 1e-9);
    let simulator = simulator(config);
    let seconds = 1_000.0;
    let records = drain_for(simulator.streams(), Duration::from_secs_f64(seconds)).await;
    // 27 000 ticks, each a Bernoulli(0.8): four standard deviations is
    // about 0.26 records a second.
    let rate = records.len() as f64 / seconds;
    assert!((rate - 21.6).abs() < 0.26, "{rate}");
    assert_eq!(simulator.offered().total(), records.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn every_problematic_kind_appears_at_about_the_bad_data_rate() {
    let simulator = simulator(StreamConfig::default());
    let records = drain_for(simulator.streams(), Duration::from_secs(200)).await;
    let mut kinds: BTreeMap<PayloadKind, usize> = BTreeMap::new();
    for record in &records {
        *kinds
            .entry(PayloadKind::classify(record.source, &record.data))
            .or_default() += 1;
    }
    for kind in PayloadKind::PROBLEMATIC {
        assert!(
            kinds.get(&kind).copied().unwrap_or(0) > 20,
            "{kind:?}: {kinds:?}"
        );
    }
    let bad = records.len() - kinds[&PayloadKind::WellFormed];
    let fraction = bad as f64 / records.len() as f64;
    let sigma = (0.15f64 * 0.85 / records.len() as f64).sqrt();
    assert!((fraction - 0.15).abs() < 4.0 * sigma, "{fraction}");
}

#[tokio::test(start_paused = true)]
async fn records_carry_dense_per_partition_sequences_and_clock_timestamps() {
    let config = StreamConfig {
        partitions: 4,
        ..StreamConfig::default()
    };
    let one_partition = StreamConfig::default();
    let simulator = simulator(config);
    let start = Instant::now();
    let records = drain_for(simulator.streams(), Duration::from_secs(100)).await;

    let mut sequences: BTreeMap<(DataSource, u32), Vec<u64>> = BTreeMap::new();
    for record in &records {
        sequences
            .entry((record.source, record.partition))
            .or_default()
            .push(record.sequence_id);
        let offset = record.timestamp - 1_764_400_000.0;
        assert!((0.0..=100.0).contains(&offset));
    }
    assert_eq!(sequences.len(), 3 * 4);
    for ids in sequences.values() {
        assert_eq!(*ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    }
    // Partitioning does not change what is offered in total.
    let expected = one_partition.offered_rate() * 100.0;
    assert!(
        (records.len() as f64 - expected).abs() < 100.0,
        "{}",
        records.len()
    );
    assert_eq!(start.elapsed(), Duration::from_secs(100));
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_slows_the_source() {
    let simulator = simulator(StreamConfig::default());
    let mut streams = simulator.streams();
    let mut source = streams.remove(0);
    let mut pulled = 0;
    for _ in 0..20 {
        source.next().await.unwrap();
        pulled += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Nothing was made ahead of the consumer.
    assert_eq!(simulator.offered().total(), pulled);
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_identical_sequence() {
    async fn run(seed: u64) -> Vec<StreamData> {
        let simulator = simulator(StreamConfig {
            seed,
            partitions: 3,
            burst: Some(Burst {
                probability: 0.05,
                size: 10,
            }),
            ..StreamConfig::default()
        });
        drain_for(simulator.streams(), Duration::from_secs(30)).await
    }
    let first = run(42).await;
    assert!(first.len() > 500);
    assert_eq!(first, run(42).await);
    assert_ne!(first, run(43).await);
}

#[tokio::test(start_paused = true)]
async fn bursts_add_records_back_to_back() {
    let bursty = StreamConfig {
        burst: Some(Burst {
            probability: 0.1,
            size: 20,
        }),
        ..StreamConfig::default()
    };
    let expected = bursty.offered_rate() * 100.0;
    let simulator = simulator(bursty);
    let records = drain_for(simulator.streams(), Duration::from_secs(100)).await;
    let timestamps: BTreeSet<u64> = records.iter().map(|r| r.timestamp.to_bits()).collect();
    assert!(
        timestamps.len() < records.len() / 2,
        "bursts share their tick's timestamp"
    );
    assert!(
        (records.len() as f64 - expected).abs() < expected * 0.1,
        "{} vs {expected}",
        records.len()
    );
}

#[test]
fn unusable_settings_are_refused_naming_the_setting() {
    for (config, field) in [
        (
            StreamConfig {
                sources: vec![],
                ..StreamConfig::default()
            },
            "stream.sources",
        ),
        (
            StreamConfig {
                sources: vec![DataSource::UserEvents; 2],
                ..StreamConfig::default()
            },
            "stream.sources",
        ),
        (
            StreamConfig {
                rate_per_source: 0.0,
                ..StreamConfig::default()
            },
            "stream.rate_per_source",
        ),
        (
            StreamConfig {
                partitions: 0,
                ..StreamConfig::default()
            },
            "stream.partitions",
        ),
        (
            StreamConfig {
                bad_data_rate: -0.1,
                ..StreamConfig::default()
            },
            "stream.bad_data_rate",
        ),
    ] {
        let error = StreamSimulator::new(config, EpochClock::starting_at(1.0)).unwrap_err();
        assert_eq!(error.field, field);
    }
}

#[test]
fn records_for_a_data_set_take_turns_by_source_and_count_per_partition() {
    let config = StreamConfig {
        sources: vec![DataSource::UserEvents, DataSource::SecurityLogs],
        partitions: 3,
        seed: 11,
        ..StreamConfig::default()
    };
    let simulator = StreamSimulator::new(config.clone(), EpochClock::starting_at(1.0)).unwrap();
    let records: Vec<_> = simulator.records().take(12).collect();
    let sources: Vec<_> = records.iter().map(|r| r.source).collect();
    assert_eq!(
        sources[..4],
        [
            DataSource::UserEvents,
            DataSource::SecurityLogs,
            DataSource::UserEvents,
            DataSource::SecurityLogs
        ]
    );
    let user: Vec<_> = records
        .iter()
        .filter(|r| r.source == DataSource::UserEvents)
        .map(|r| (r.partition, r.sequence_id))
        .collect();
    assert_eq!(user, [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (2, 2)]);
    assert_eq!(simulator.offered().total(), 12);
    // The same seed draws the same payloads.
    let again = StreamSimulator::new(config, EpochClock::starting_at(1.0)).unwrap();
    let first: Vec<_> = again.records().take(12).map(|r| r.data).collect();
    assert_eq!(
        first,
        records.iter().map(|r| r.data.clone()).collect::<Vec<_>>()
    );
}
