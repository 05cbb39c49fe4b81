//! An NDJSON file through the `seed` profile and the HTTP sink to `sluice
//! mock-api` on loopback (no limit, no failures, no latency), against a
//! bare reqwest loop posting the same bodies with the same concurrency to
//! the same server in the same process run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use sluice_files::{LineSource, SourceOptions};
use sluice_http::{HttpSink, HttpSinkConfig, IDEMPOTENCY_KEY_HEADER, idempotency_key};
use sluice_models::ProcessedRecord;
use sluice_processor::{
    BatchConfig, Context, CountedFrom, DeliveryOrder, EpochClock, Origin, ProcessorConfig,
    RateLimit, RawRecord, RecordId, RecordKey, Report, RetryPolicy, StreamName, StreamProcessor,
    Transform, Transformed,
};
use sluice_profiles::seed::SeedProfile;

use crate::mock_api::MockApi;
use crate::{cpu_time, data, multi_thread_runtime, rss_mib};

/// The shape of an HTTP scenario.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Records in the file.
    records: u64,
    /// The most records per call (`sluice run --batch-max`).
    batch: usize,
    /// The most records inside the pipeline (`--queue-capacity`).
    queue_capacity: usize,
}

/// One record per call, 100 000 records, `sluice run`'s default queue.
pub const SINGLE: Shape = Shape {
    records: 100_000,
    batch: 1,
    queue_capacity: 1_000,
};

/// Up to 500 records per call, 1 000 000 records; `sluice run`'s default
/// queue for them: two full calls per call in flight, 2 × 16 × 500.
pub const BATCH: Shape = Shape {
    records: 1_000_000,
    batch: 500,
    queue_capacity: 16_000,
};

/// How long ready records wait for a full call: `sluice run`'s default
/// `--batch-linger`.
const LINGER: Duration = Duration::from_millis(100);

/// Calls in flight: `sluice run`'s default `--max-in-flight`, and the bare
/// loop's number of tasks.
const MAX_IN_FLIGHT: usize = 16;

/// `sluice run`'s default `--timeout`.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the pipeline and the bare loop against one `sluice mock-api`, the
/// bare loop first on odd `run`s and second on even ones (the server's
/// ledger grows with each call). With `only`, one side alone, for a
/// profiler: `pipeline` or `baseline`.
pub fn http(mut shape: Shape, run: u32, only: Option<&str>) -> Value {
    shape.records = data::records(shape.records);
    let path = data::seed_file(shape.records);
    if let Some(side) = only {
        return one_side(shape, &path, side);
    }
    let calls = Arc::new(bodies(&path, shape.batch));
    let server = MockApi::start();
    let runtime = multi_thread_runtime(2);
    let baseline_first = run % 2 == 1;
    let (baseline, pipeline) = runtime.block_on(async {
        if baseline_first {
            let baseline = measure(&server, || bare_loop(&server.url, &calls)).await;
            let pipeline = measure(&server, || pipeline(&server.url, &path, shape)).await;
            (baseline, pipeline)
        } else {
            let pipeline = measure(&server, || pipeline(&server.url, &path, shape)).await;
            let baseline = measure(&server, || bare_loop(&server.url, &calls)).await;
            (baseline, pipeline)
        }
    });
    let (_, rss_peak) = rss_mib();
    let served = server.stop();
    let records = shape.records as f64;
    let report = &pipeline.outcome;
    assert_eq!(
        report.metrics.delivered,
        shape.records,
        "{}",
        report.conservation()
    );
    assert!(report.is_conserved());
    assert_eq!(report.metrics.failed_calls, 0);
    let rate = |elapsed: Duration| records / elapsed.as_secs_f64();
    json!({
        "records": shape.records,
        "batch_max": shape.batch,
        "queue_capacity": shape.queue_capacity,
        "max_in_flight": MAX_IN_FLIGHT,
        "partitions": 4 * data::PARTITIONS,
        "threads": 2,
        "run": run,
        "first": if baseline_first { "baseline" } else { "pipeline" },
        "records_per_second": rate(pipeline.elapsed),
        "seconds": pipeline.elapsed.as_secs_f64(),
        "calls": report.metrics.attempts,
        "records_per_call": records / report.metrics.attempts.max(1) as f64,
        "cpu_ns_per_record": pipeline.cpu.as_nanos() as f64 / records,
        "server_cpu_ns_per_record": pipeline.server_cpu.as_nanos() as f64 / records,
        "baseline": {
            "records_per_second": rate(baseline.elapsed),
            "seconds": baseline.elapsed.as_secs_f64(),
            "calls": calls.len(),
            "cpu_ns_per_record": baseline.cpu.as_nanos() as f64 / records,
            "server_cpu_ns_per_record": baseline.server_cpu.as_nanos() as f64 / records,
        },
        "ratio_to_baseline": rate(pipeline.elapsed) / rate(baseline.elapsed),
        "rss_peak_mib": rss_peak,
        "server": served,
    })
}

/// One side alone: `pipeline`, or `baseline` (the bare loop).
fn one_side(shape: Shape, path: &Path, side: &str) -> Value {
    let calls = match side {
        "pipeline" => None,
        "baseline" => Some(Arc::new(bodies(path, shape.batch))),
        other => panic!("--only {other:?}: pipeline or baseline"),
    };
    let server = MockApi::start();
    let runtime = multi_thread_runtime(2);
    let (elapsed, cpu, server_cpu, calls) = match &calls {
        None => {
            let m = runtime.block_on(measure(&server, || pipeline(&server.url, path, shape)));
            (m.elapsed, m.cpu, m.server_cpu, m.outcome.metrics.attempts)
        }
        Some(calls) => {
            let m = runtime.block_on(measure(&server, || bare_loop(&server.url, calls)));
            (m.elapsed, m.cpu, m.server_cpu, calls.len() as u64)
        }
    };
    let records = shape.records as f64;
    json!({
        "side": side,
        "records": shape.records,
        "records_per_second": records / elapsed.as_secs_f64(),
        "records_per_call": records / calls.max(1) as f64,
        "cpu_ns_per_record": cpu.as_nanos() as f64 / records,
        "server_cpu_ns_per_record": server_cpu.as_nanos() as f64 / records,
        "server": server.stop(),
    })
}

/// What one side took: wall time, this process's CPU, the server's CPU.
struct Measured<T> {
    elapsed: Duration,
    cpu: Duration,
    server_cpu: Duration,
    outcome: T,
}

async fn measure<T, F: Future<Output = T>>(
    server: &MockApi,
    run: impl FnOnce() -> F,
) -> Measured<T> {
    let (cpu, server_cpu) = (cpu_time(), server.cpu_time());
    let started = Instant::now();
    let outcome = run().await;
    Measured {
        elapsed: started.elapsed(),
        cpu: cpu_time() - cpu,
        server_cpu: server.cpu_time() - server_cpu,
        outcome,
    }
}

/// The pipeline as `sluice run --profile seed --rate-limit none
/// --max-in-flight 16 --batch-max B --queue-capacity Q` (and the default
/// `--batch-linger`) sets it up: a file
/// `LineSource`, `SeedProfile`, the HTTP sink.
async fn pipeline(url: &str, path: &Path, shape: Shape) -> Report<ProcessedRecord> {
    let sink =
        HttpSink::new(HttpSinkConfig::new(format!("{url}/records")).timeout(TIMEOUT)).unwrap();
    let config = ProcessorConfig {
        max_in_flight: MAX_IN_FLIGHT,
        queue_capacity: shape.queue_capacity,
        batch: BatchConfig {
            max_records: shape.batch,
            linger: LINGER,
            ..BatchConfig::default()
        },
        rate_limit: RateLimit::Unlimited,
        counted_from: CountedFrom::CallThenAnswer,
        rate_limit_margin: Duration::from_millis(25),
        retry: RetryPolicy {
            max_attempts: 6,
            ..RetryPolicy::default()
        },
        call_timeout: TIMEOUT + Duration::from_secs(1),
        ordering: DeliveryOrder::Partition,
        ..ProcessorConfig::default()
    };
    let source = LineSource::open(path, SourceOptions::default())
        .await
        .unwrap();
    StreamProcessor::new(SeedProfile::new().unwrap(), sink, config)
        .unwrap()
        .start([source])
        .finish()
        .await
}

/// One call of the bare loop: the body and `Idempotency-Key` the HTTP sink
/// would send.
struct Call {
    body: Vec<u8>,
    key: HeaderValue,
}

/// The file's records through the seed profile, grouped as the pipeline
/// groups them (per stream and partition, in order, `batch` at a time),
/// encoded as the HTTP sink encodes them (a record alone, or an array),
/// the lanes' calls taken in turn.
fn bodies(path: &Path, batch: usize) -> Vec<Call> {
    let profile = SeedProfile::new().unwrap();
    let stream = StreamName::new("bench").unwrap();
    let origin = Origin::new(path.to_string_lossy());
    let mut context = Context::new(EpochClock::system().now());
    // Per lane: its identity, the records not yet in a call, its calls.
    let mut lanes: Vec<Lane> = Vec::new();
    let file = BufReader::new(std::fs::File::open(path).unwrap());
    for (i, line) in file.lines().enumerate() {
        let position = RecordId {
            stream,
            partition: 0,
            sequence: i as u64 + 1,
        };
        let input = RawRecord::new(origin.clone(), position, line.unwrap());
        let Ok(record) = profile.transform(input, &mut context) else {
            panic!("line {} is not a deliverable seed record", i + 1);
        };
        let lane = match lanes.iter().position(|lane| lane.holds(&record.id)) {
            Some(lane) => &mut lanes[lane],
            None => {
                lanes.push(Lane {
                    id: record.id,
                    pending: Vec::new(),
                    calls: Vec::new(),
                });
                lanes.last_mut().unwrap()
            }
        };
        lane.pending.push(record);
        if lane.pending.len() == batch {
            lane.seal();
        }
    }
    let mut lanes: Vec<_> = lanes
        .into_iter()
        .map(|mut lane| {
            lane.seal();
            lane.calls.into_iter()
        })
        .collect();
    let mut calls = Vec::new();
    loop {
        let before = calls.len();
        for lane in &mut lanes {
            calls.extend(lane.next());
        }
        if calls.len() == before {
            return calls;
        }
    }
}

/// One (stream, partition) of [`bodies`].
struct Lane {
    id: RecordId,
    pending: Vec<Transformed<ProcessedRecord>>,
    calls: Vec<Call>,
}

impl Lane {
    fn holds(&self, id: &RecordId) -> bool {
        self.id.stream == id.stream && self.id.partition == id.partition
    }

    /// The pending records as one call.
    fn seal(&mut self) {
        let body = match self.pending.as_slice() {
            [] => return,
            [one] => serde_json::to_vec(&one.record),
            many => serde_json::to_vec(&many.iter().map(|t| &t.record).collect::<Vec<_>>()),
        }
        .unwrap();
        let key = idempotency_key(
            self.pending
                .iter()
                .map(|t| t.key.unwrap_or_else(|| RecordKey::of_id(&t.id))),
        );
        self.calls.push(Call {
            body,
            key: HeaderValue::from_str(&key).unwrap(),
        });
        self.pending.clear();
    }
}

/// `calls` posted by `MAX_IN_FLIGHT` tasks sharing one client (configured
/// as the HTTP sink configures its own), each taking the next call.
async fn bare_loop(url: &str, calls: &Arc<Vec<Call>>) {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = reqwest::Url::parse(&format!("{url}/records")).unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..MAX_IN_FLIGHT)
        .map(|_| {
            let (client, url, next, calls) = (
                client.clone(),
                url.clone(),
                Arc::clone(&next),
                Arc::clone(calls),
            );
            tokio::spawn(async move {
                while let Some(call) = calls.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let reply = client
                        .post(url.clone())
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .header(IDEMPOTENCY_KEY_HEADER, call.key.clone())
                        .body(call.body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert!(reply.status().is_success(), "{}", reply.status());
                    reply.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
