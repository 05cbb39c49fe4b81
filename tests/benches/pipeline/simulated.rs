//! The scenarios of records made in memory: raw throughput to an instant
//! sink, a latency-bound simulated API, and an overload of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_models::{DataSource, ProcessedRecord, StreamData};
use sluice_processor::{
    Context, DeliveryOrder, EpochClock, Incoming, ProcessorConfig, RateLimit, Rejected,
    StreamProcessor, Transformed,
};
use sluice_profiles::seed::SeedProfile;
use sluice_sim::simulation::{self, SimulationConfig};
use sluice_sim::{ApiConfig, SimulatedApi, StreamConfig, StreamSimulator};

use crate::{InstantSink, cpu_time, multi_thread_runtime, rss_mib};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    Standard,
    /// Moves the payload through untouched: the pipeline's own cost.
    PassThrough,
}

// The Transform trait's signature: a refused record is the cold path.
#[allow(clippy::result_large_err)]
fn pass_through(
    input: StreamData,
    context: &mut Context,
) -> Result<Transformed<ProcessedRecord>, Rejected<ProcessedRecord>> {
    let now = context.now();
    let id = sluice_processor::RecordId {
        stream: context.stream(input.source.as_str()).unwrap(),
        partition: input.partition,
        sequence: input.sequence_id,
    };
    let mut data = input.data;
    if data.is_empty() {
        data.insert("empty".to_owned(), Value::Bool(true));
    }
    let record = ProcessedRecord {
        source: input.source.as_str().to_owned(),
        timestamp: input.timestamp,
        priority: i64::from(input.priority.value()),
        processed_at: now.max(input.timestamp),
        transformed_data: data,
        processing_time_ms: 0.0,
        partition: input.partition,
        sequence_id: input.sequence_id,
    };
    Ok(Transformed::new(id, record))
}

/// 1 000 000 records from 4 sources x `partitions` partitions, made before
/// the clock starts, through an instant sink with no limit, in real time,
/// on a runtime of `threads` worker threads.
pub fn raw_throughput(
    partitions: u32,
    ordering: DeliveryOrder,
    transform: Transform,
    threads: usize,
) -> Value {
    // 1 000 000 unless $SLUICE_BENCH_RECORDS says otherwise (a profiler's run).
    let records = crate::data::records(1_000_000) as usize;
    let runtime = multi_thread_runtime(threads);
    let clock = runtime.block_on(async { EpochClock::system() });
    let stream = StreamConfig {
        sources: DataSource::ALL.to_vec(),
        partitions,
        ..StreamConfig::default()
    };
    let inputs = StreamSimulator::new(stream, clock)
        .unwrap()
        .generate(records / 4);
    let (rss_inputs, _) = rss_mib();
    let config = ProcessorConfig {
        max_in_flight: 8,
        queue_capacity: 1_000,
        take_size: 64,
        rate_limit: RateLimit::Unlimited,
        ordering,
        ..ProcessorConfig::default()
    };
    let cpu_before = cpu_time();
    let started = Instant::now();
    let report = runtime.block_on(async {
        let sources = inputs
            .into_iter()
            .map(|source| futures::stream::iter(source.into_iter().map(Incoming::new)));
        match transform {
            Transform::Standard => {
                StreamProcessor::new(SeedProfile::new().unwrap(), InstantSink, config)
                    .unwrap()
                    .with_clock(clock)
                    .start(sources)
                    .finish()
                    .await
            }
            Transform::PassThrough => {
                StreamProcessor::new(pass_through, InstantSink, config)
                    .unwrap()
                    .with_clock(clock)
                    .start(sources)
                    .finish()
                    .await
            }
        }
    });
    let elapsed = started.elapsed();
    let cpu = cpu_time() - cpu_before;
    let (_, rss_peak) = rss_mib();
    assert_eq!(
        report.metrics.delivered as usize,
        records,
        "{}",
        report.conservation()
    );
    assert!(report.is_conserved());
    json!({
        "records": records,
        "partitions": partitions * 4,
        "ordering": format!("{ordering:?}").to_lowercase(),
        "transform": format!("{transform:?}").to_lowercase(),
        "threads": threads,
        "seconds": elapsed.as_secs_f64(),
        "records_per_second": records as f64 / elapsed.as_secs_f64(),
        "cpu_ns_per_record": cpu.as_nanos() as f64 / records as f64,
        "rss_with_inputs_mib": rss_inputs,
        "rss_peak_mib": rss_peak,
    })
}

/// An API with 100 ms latency and a limit of 5 000/s, 10 % failures, fed by
/// 4 sources x 250 partitions offering 6 400 records/s, for 10 s.
pub fn latency_bound(virtual_time: bool) -> Value {
    let config = SimulationConfig {
        duration: Duration::from_secs(10),
        api: ApiConfig {
            rate_limit: Some(5_000),
            failure_rate: 0.10,
            latency_min: Duration::from_millis(100),
            latency_max: Duration::from_millis(100),
            keep_log: false,
            ..ApiConfig::default()
        },
        stream: StreamConfig {
            sources: DataSource::ALL.to_vec(),
            rate_per_source: 500.0,
            partitions: 250,
            ..StreamConfig::default()
        },
        processor: ProcessorConfig {
            max_in_flight: 1_000,
            queue_capacity: 10_000,
            rate_limit: RateLimit::per_second(5_000.try_into().unwrap()),
            ..ProcessorConfig::default()
        },
        virtual_time,
        seed: 1,
    }
    .seeded();
    let started = Instant::now();
    let run = simulation::run_blocking(&config, |_| {}, std::future::pending).unwrap();
    json!({
        "virtual_time": virtual_time,
        "wall_seconds": started.elapsed().as_secs_f64(),
        "delivered": run.delivered,
        "ceiling": 50_000,
        "ceiling_utilization": run.ceiling_utilization,
        "attempts": run.attempts,
        "rate_limit_hits": run.rate_limit_hits,
        "p50_latency_ms": run.p50_latency_ms,
        "p99_latency_ms": run.p99_latency_ms,
        "lost": run.lost,
    })
}

/// Sources at 10x the API's ceiling for `duration` of real time; memory and
/// backlog sampled every second.
pub fn overload(duration: Duration) -> Value {
    let runtime = multi_thread_runtime(2);
    let api_limit = 1_000;
    let capacity = 10_000;
    let stream = StreamConfig {
        sources: DataSource::ALL.to_vec(),
        partitions: 8,
        // 0.8 x 782 x 4 x 4 = 10 010 records/s offered.
        rate_per_source: 782.0,
        ..StreamConfig::default()
    };
    let offered_rate = stream.offered_rate();
    let samples = runtime.block_on(async {
        let clock = EpochClock::system();
        let api = Arc::new(
            SimulatedApi::new(ApiConfig {
                rate_limit: Some(api_limit),
                keep_log: false,
                ..ApiConfig::default()
            })
            .unwrap(),
        );
        let simulator = StreamSimulator::new(stream, clock).unwrap();
        let handle = StreamProcessor::new(
            SeedProfile::new().unwrap(),
            Arc::clone(&api),
            ProcessorConfig {
                max_in_flight: 64,
                queue_capacity: capacity,
                rate_limit: RateLimit::per_second(api_limit.try_into().unwrap()),
                ..ProcessorConfig::default()
            },
        )
        .unwrap()
        .with_clock(clock)
        .start(simulator.sources());
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        for second in 1..=duration.as_secs() {
            tick.tick().await;
            let metrics = handle.metrics();
            let (rss, _) = rss_mib();
            samples.push(json!({
                "second": second,
                "rss_mib": rss,
                "backlog": metrics.backlog,
                "delivered": metrics.delivered,
                "offered": simulator.offered().total(),
            }));
        }
        let report = handle.stop().await;
        assert!(report.is_conserved(), "{}", report.conservation());
        samples
    });
    let rss: Vec<f64> = samples
        .iter()
        .map(|s| s["rss_mib"].as_f64().unwrap_or(0.0))
        .collect();
    let max = |values: &[f64]| values.iter().cloned().fold(0.0, f64::max);
    let min = |values: &[f64]| values.iter().cloned().fold(f64::MAX, f64::min);
    let peak = max(&rss);
    // Flat: over the last half of the run, RSS varies by less than 5 % of
    // its maximum there (no growth), whatever the start-up peak was.
    let last_half = &rss[rss.len() / 2..];
    let (last_max, last_min) = (max(last_half), min(last_half));
    let max_backlog = samples
        .iter()
        .filter_map(|s| s["backlog"].as_u64())
        .max()
        .unwrap_or(0);
    let delivered = samples
        .last()
        .and_then(|s| s["delivered"].as_u64())
        .unwrap_or(0);
    json!({
        "seconds": duration.as_secs(),
        "api_limit": api_limit,
        "offered_rate": offered_rate,
        "queue_capacity": capacity,
        "delivered": delivered,
        "peak_rss_mib": peak,
        "last_half_max_rss_mib": last_max,
        "last_half_min_rss_mib": last_min,
        "last_half_spread_pct": 100.0 * (last_max - last_min) / last_max,
        "max_backlog": max_backlog,
        "samples": samples,
    })
}
