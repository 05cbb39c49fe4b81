//! How a worker cuts calls (linger, record and byte bounds) and what a
//! call's answer does next: the slots it keeps, the client's limit, the
//! backoff after refusals, a malformed per-record answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use sluice_processor::{
    BatchConfig, Context, DeadLetterReason, DeliveryOrder, Envelope, Incoming, LimitUnit,
    MetricsReader, ProcessorConfig, Quota, RateLimit, RecordId, Rejected, Report, RetryPolicy,
    SendError, Sink, SinkError, StreamProcessor, Transformed,
};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A call as the sink saw it.
#[derive(Debug, Clone)]
struct Call {
    /// Since the run started.
    at: Duration,
    /// The records' sequences, in batch order.
    records: Vec<u64>,
    /// The client's rate limit when the call reached the sink.
    limit: Option<usize>,
}

/// How the sink answers call number `n` (from 0) of `records` records.
type Answer = fn(usize, usize) -> Result<(), SendError>;

/// A sink that answers at once, as its script says, and records each call.
struct Recording {
    answer: Answer,
    started: Instant,
    calls: Arc<Mutex<Vec<Call>>>,
    reader: OnceLock<MetricsReader>,
}

#[async_trait]
impl Sink<u64> for Recording {
    async fn send(&self, batch: &[Envelope<u64>]) -> Result<(), SendError> {
        let call = Call {
            at: self.started.elapsed(),
            records: batch.iter().map(|envelope| envelope.id.sequence).collect(),
            limit: self
                .reader
                .get()
                .and_then(|reader| reader.metrics().client_rate_limit),
        };
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(call);
            calls.len() - 1
        };
        (self.answer)(n, batch.len())
    }
}

fn accept(_: usize, _: usize) -> Result<(), SendError> {
    Ok(())
}

fn refused() -> SinkError {
    SinkError::RateLimited { retry_after: None }
}

/// Records of one partition, each `bytes(sequence)` bytes long.
fn sized(
    bytes: fn(u64) -> usize,
) -> impl Fn(u64, &mut Context) -> Result<Transformed<u64>, Rejected<u64>> + Send + Sync + 'static {
    move |n: u64, context: &mut Context| {
        let stream = context.stream("batching").unwrap();
        let id = RecordId {
            stream,
            partition: 0,
            sequence: n,
        };
        Ok(Transformed {
            bytes: bytes(n),
            ..Transformed::new(id, n)
        })
    }
}

/// Records 1 to `n`, all ready at once (intake queues them together).
fn at_once(n: u64) -> impl Stream<Item = Incoming<u64>> + Send + 'static {
    futures::stream::iter((1..=n).map(Incoming::new))
}

/// Record 1 at once, then records 2 to 31 together 10 ms later; the
/// source ends a second after that (until then, the queue is not sealed).
fn one_then_thirty() -> impl Stream<Item = Incoming<u64>> + Send + 'static {
    futures::stream::unfold(1, |n: u64| async move {
        match n {
            2 => tokio::time::sleep(ms(10)).await,
            32 => tokio::time::sleep(ms(1_000)).await,
            _ => {}
        }
        (n <= 31).then(|| (Incoming::new(n), n + 1))
    })
}

/// No client-side limit, per-partition order, and `batch`.
fn config(batch: BatchConfig) -> ProcessorConfig {
    ProcessorConfig {
        batch,
        rate_limit: RateLimit::Unlimited,
        ordering: DeliveryOrder::Partition,
        ..ProcessorConfig::default()
    }
}

/// A quota of `limit` per second.
fn quota(limit: u32) -> RateLimit {
    RateLimit::Fixed(Quota {
        limit: NonZeroU32::new(limit).unwrap(),
        window: Duration::from_secs(1),
    })
}

/// Runs `source` to its end against a [`Recording`] sink; the report and
/// every call the sink saw.
async fn run(
    config: ProcessorConfig,
    source: impl Stream<Item = Incoming<u64>> + Send + 'static,
    bytes: fn(u64) -> usize,
    answer: Answer,
) -> (Report<u64>, Vec<Call>) {
    run_until(config, source, bytes, answer, Duration::from_secs(86_400)).await
}

/// [`run`], stopped after `stop_after` if it has not finished by then.
async fn run_until(
    config: ProcessorConfig,
    source: impl Stream<Item = Incoming<u64>> + Send + 'static,
    bytes: fn(u64) -> usize,
    answer: Answer,
    stop_after: Duration,
) -> (Report<u64>, Vec<Call>) {
    let calls = Arc::default();
    let sink = Recording {
        answer,
        started: Instant::now(),
        calls: Arc::clone(&calls),
        reader: OnceLock::new(),
    };
    let handle = StreamProcessor::new(sized(bytes), sink, config)
        .unwrap()
        .start([source]);
    handle.sink().reader.set(handle.metrics_reader()).unwrap();
    let (report, _stopped) = handle.finish_unless(tokio::time::sleep(stop_after)).await;
    assert!(report.is_conserved(), "{}", report.conservation());
    let calls = calls.lock().unwrap().clone();
    (report, calls)
}

/// Each call's time and size.
fn shape(calls: &[Call]) -> Vec<(Duration, usize)> {
    calls.iter().map(|c| (c.at, c.records.len())).collect()
}

#[tokio::test(start_paused = true)]
async fn a_lone_record_lingers_to_fill_one_call_and_a_full_batch_goes_at_once() {
    let batch = BatchConfig {
        max_records: 10,
        linger: ms(100),
        ..BatchConfig::default()
    };
    let lingering = ProcessorConfig {
        take_size: 10,
        ..config(batch)
    };
    let (report, calls) = run(lingering, one_then_thirty(), |_| 0, accept).await;
    // Record 1 waits for a call's worth, which comes 10 ms later with the
    // next thirty: full calls go at once; the last record, ready once its
    // partition's previous call ended (at 10 ms), waits the linger and
    // goes alone.
    let expected = [(ms(10), 10), (ms(10), 10), (ms(10), 10), (ms(110), 1)];
    assert_eq!(shape(&calls), expected);
    let sent: Vec<u64> = calls.iter().flat_map(|c| c.records.clone()).collect();
    assert_eq!(sent, (1..=31).collect::<Vec<_>>());
    assert_eq!(report.metrics.delivered, 31);

    // Without linger, record 1 goes alone and at once.
    let eager = ProcessorConfig {
        take_size: 10,
        ..config(BatchConfig {
            linger: Duration::ZERO,
            ..batch
        })
    };
    let (_, calls) = run(eager, one_then_thirty(), |_| 0, accept).await;
    let expected = [(ms(0), 1), (ms(10), 10), (ms(10), 10), (ms(10), 10)];
    assert_eq!(shape(&calls), expected);
}

#[tokio::test(start_paused = true)]
async fn calls_stop_short_of_max_bytes_and_a_larger_record_goes_alone() {
    let batch = BatchConfig {
        max_records: 10,
        max_bytes: 100,
        ..BatchConfig::default()
    };
    let bytes = |n| match n {
        1..=3 | 5 => 40,
        4 => 500,
        _ => 50,
    };
    let (report, calls) = run(config(batch), at_once(9), bytes, accept).await;
    let records: Vec<Vec<u64>> = calls.iter().map(|c| c.records.clone()).collect();
    // 40 + 40 fit, a third would make 120; 500 goes alone, neither joined
    // nor stuck; 40 + 50 fit; 50 + 50 is exactly the bound, which fits.
    let expected: [&[u64]; 6] = [&[1, 2], &[3], &[4], &[5, 6], &[7, 8], &[9]];
    assert_eq!(records, expected);
    assert_eq!(report.metrics.delivered, 9);
    // A sink that always accepts: no call counted as failed.
    assert_eq!(report.metrics.attempts, calls.len() as u64);
    assert_eq!(report.metrics.failed_calls, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_gives_its_slot_back_at_once_and_a_success_keeps_it_a_window() {
    let config = ProcessorConfig {
        rate_limit: quota(1),
        limit_unit: LimitUnit::Calls,
        ..config(BatchConfig::default())
    };
    let answer: Answer = |n, _| match n {
        0 => Err(SinkError::Transient("flaky".into()).into()),
        _ => Ok(()),
    };
    let (report, calls) = run(config, at_once(2), |_| 0, answer).await;
    let records: Vec<Vec<u64>> = calls.iter().map(|c| c.records.clone()).collect();
    assert_eq!(records, [[1], [1], [2]]);
    // The retry waits only for its backoff (at most 20 ms), not for the slot.
    assert!(calls[1].at <= ms(21), "retried after {:?}", calls[1].at);
    // The success holds the only slot for a window from its answer: the
    // sink answers at once, so the margin after the call ends early.
    assert_eq!(calls[2].at - calls[1].at, ms(1_000));
    assert_eq!(report.metrics.delivered, 2);
}

#[tokio::test(start_paused = true)]
async fn a_quota_of_records_is_kept_by_calls_of_several_records() {
    let config = ProcessorConfig {
        // One batch of all 30, so that every call is full.
        take_size: 30,
        rate_limit: quota(6),
        limit_unit: LimitUnit::Records,
        ..config(BatchConfig {
            max_records: 3,
            ..BatchConfig::default()
        })
    };
    let (report, calls) = run(config, at_once(30), |_| 0, accept).await;
    assert_eq!(report.metrics.delivered, 30);
    let mut times: Vec<Duration> = calls
        .iter()
        .flat_map(|c| c.records.iter().map(|_| c.at))
        .collect();
    times.sort();
    // At most 6 records admitted in any 1 s window, over 5 windows; as the
    // APIs count it, a call exactly a window after another is outside that
    // one's window (the sink answers at once, so the next come then).
    for (i, &start) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|&&at| at < start + Duration::from_secs(1))
            .count();
        assert!(within <= 6, "{within} records from {start:?}: {times:?}");
    }
    // And the quota used: two calls of three records per window (a
    // window from each instant answer).
    assert_eq!(calls.len(), 10);
    assert_eq!(calls[9].at, ms(4 * 1_000));
}

#[tokio::test(start_paused = true)]
async fn only_a_call_that_delivered_nothing_lowers_the_clients_limit() {
    let config = ProcessorConfig {
        rate_limit: quota(6),
        limit_unit: LimitUnit::Records,
        ..config(BatchConfig {
            max_records: 3,
            ..BatchConfig::default()
        })
    };
    let answer: Answer = |n, _| match n {
        0 => Err(SendError::PerRecord(vec![Ok(()), Ok(()), Err(refused())])),
        1 => Err(refused().into()),
        _ => Ok(()),
    };
    let (report, calls) = run(config, at_once(3), |_| 0, answer).await;
    let records: Vec<Vec<u64>> = calls.iter().map(|c| c.records.clone()).collect();
    assert_eq!(records, [&[1, 2, 3][..], &[3], &[3]]);
    // Partly refused, the first call keeps the limit (and its two slots);
    // the second, refused whole, lowers it to the two the window holds,
    // and the third waits for those to leave the window.
    let limits: Vec<Option<usize>> = calls.iter().map(|c| c.limit).collect();
    assert_eq!(limits, [Some(6), Some(6), Some(2)]);
    assert_eq!(calls[2].at, ms(1_000));
    assert_eq!(report.metrics.delivered, 3);
    assert_eq!(report.metrics.rate_limit_hits, 2);
}

#[tokio::test(start_paused = true)]
async fn refused_calls_back_off_exponentially_and_are_never_retried_at_once() {
    let config = ProcessorConfig {
        retry: RetryPolicy {
            initial_backoff: ms(10),
            ..RetryPolicy::default()
        },
        ..config(BatchConfig::default())
    };
    let answer: Answer = |n, _| match n {
        0..5 => Err(refused().into()),
        _ => Ok(()),
    };
    let (report, calls) = run(config, at_once(1), |_| 0, answer).await;
    assert_eq!(calls.len(), 6);
    // After the n-th refusal: half of 10 ms × 2^(n-1), plus jitter over
    // the other half (rounded up to the timer's millisecond).
    for (n, pair) in (0..).zip(calls.windows(2)) {
        let gap = pair[1].at - pair[0].at;
        let cap = ms(10 << n);
        assert!(gap >= cap / 2 && gap <= cap + ms(1), "gap {n}: {gap:?}");
    }
    assert_eq!(report.metrics.delivered, 1);
    assert_eq!(report.metrics.rate_limit_hits, 5);
    assert_eq!(report.metrics.failed_calls, 0);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_number_of_outcomes_fails_the_batch_transiently() {
    // Nothing is ever delivered, but the sink says it is up (the default
    // `Sink::is_up`): the failures are the records', which have two
    // attempts each.
    let config = ProcessorConfig {
        retry: RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        },
        ..config(BatchConfig {
            max_records: 2,
            ..BatchConfig::default()
        })
    };
    let answer: Answer = |_, _| Err(SendError::PerRecord(vec![]));
    let (report, calls) = run(config, at_once(2), |_| 0, answer).await;
    let records: Vec<Vec<u64>> = calls.iter().map(|c| c.records.clone()).collect();
    assert_eq!(records, [[1, 2], [1, 2]]);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.metrics.failed_calls, 2);
    assert_eq!(report.dead_letters.len(), 2);
    for letter in &report.dead_letters {
        match &letter.reason {
            DeadLetterReason::RetriesExhausted {
                attempts: 2,
                last_error,
            } => assert!(
                last_error.contains("0 outcomes for 2 records"),
                "{last_error}"
            ),
            other => panic!("{}: {other:?}", letter.id),
        }
    }
}
