//! An API that is down or misconfigured is not a bad record: its records
//! wait (using no attempt) and are delivered once it is back, a circuit
//! halts the processor when the API keeps saying the client is
//! misconfigured, and only a record that fails while others get through
//! spends its attempts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Accounts, End, Harness, Tail, Verdict};
use sluice_processor::{
    DeadLetterKind, DeadLetterReason, Envelope, HandBackReason, ProcessorConfig, RateLimit,
    RecordId, Report, RetryPolicy, SendError, Sink, SinkError, StreamProcessor,
};
use tokio::time::Instant;

/// How the scripted API answers a call: by the first record's sequence,
/// its call number (from 1) and the time since the run started; `None`
/// accepts. Each answer comes after
/// `latency(sequence)`.
type Script = fn(u64, u32, Duration) -> Option<SinkError>;

struct ScriptedApi {
    script: Script,
    latency: fn(u64) -> Duration,
    /// What `is_up` says, by the time since the run started.
    up: fn(Duration) -> bool,
    /// How often `is_up` was asked.
    probes: AtomicU32,
    started: Instant,
    accepted: Arc<Mutex<Vec<RecordId>>>,
    /// Calls per first record.
    calls: Mutex<HashMap<u64, u32>>,
}

impl ScriptedApi {
    fn new(script: Script, latency: fn(u64) -> Duration) -> ScriptedApi {
        ScriptedApi {
            script,
            latency,
            up: |_| true,
            probes: AtomicU32::new(0),
            started: Instant::now(),
            accepted: Arc::default(),
            calls: Mutex::default(),
        }
    }

    fn calls(&self) -> u32 {
        self.calls.lock().unwrap().values().sum()
    }
}

#[async_trait]
impl Sink<u64> for ScriptedApi {
    async fn send(&self, batch: &[Envelope<u64>]) -> Result<(), SendError> {
        let first = batch[0].id.sequence;
        let call = {
            let mut calls = self.calls.lock().unwrap();
            let call = calls.entry(first).or_default();
            *call += 1;
            *call
        };
        tokio::time::sleep((self.latency)(first)).await;
        match (self.script)(first, call, self.started.elapsed()) {
            Some(error) => Err(error.into()),
            None => {
                let ids = batch.iter().map(|envelope| envelope.id);
                self.accepted.lock().unwrap().extend(ids);
                Ok(())
            }
        }
    }

    async fn is_up(&self) -> bool {
        self.probes.fetch_add(1, Relaxed);
        (self.up)(self.started.elapsed())
    }
}

fn config() -> ProcessorConfig {
    ProcessorConfig {
        max_in_flight: 2,
        queue_capacity: 200,
        rate_limit: RateLimit::Unlimited,
        retry: RetryPolicy {
            max_attempts: 3,
            // Far: only attempts may dead-letter here.
            max_elapsed: Duration::from_secs(3_600),
            ..RetryPolicy::default()
        },
        ..ProcessorConfig::default()
    }
}

fn ten_ms(_: u64) -> Duration {
    Duration::from_millis(10)
}

/// Runs records 1..=`records` (three partitions) through `api` to their
/// end; returns the report and where each record went.
async fn run_to_end(
    api: &Arc<ScriptedApi>,
    records: u64,
    config: ProcessorConfig,
) -> (Report<u64>, Accounts) {
    let harness = Harness::default();
    let source = harness.source(common::inputs(1, records), Tail::End);
    let transform = common::transform(|_| Verdict::Accept);
    let handle = StreamProcessor::new(transform, Arc::clone(api), config)
        .unwrap()
        .start([source]);
    let report = common::end(handle, End::Finish, Duration::ZERO).await;
    let accepted = api.accepted.lock().unwrap().clone();
    let accounts = common::account(&report, &harness, &accepted, &[]);
    (report, accounts)
}

#[tokio::test(start_paused = true)]
async fn an_outage_of_30_seconds_delays_records_and_dead_letters_none() {
    let harness = Harness::default();
    let source = harness.source(common::inputs(1, 60), Tail::End);
    let api = ScriptedApi::new(
        |_, _, at| (at < Duration::from_secs(30)).then(|| SinkError::Unavailable("refused".into())),
        ten_ms,
    );
    let accepted = Arc::clone(&api.accepted);
    // One attempt: any failure that used one would dead-letter its record.
    let mut config = config();
    config.retry.max_attempts = 1;
    let handle = StreamProcessor::new(common::transform(|_| Verdict::Accept), api, config)
        .unwrap()
        .start([source]);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let during = handle.metrics();
    assert!(during.api_failing, "the status says the API is failing");
    assert_eq!(during.api_outages, 1);
    assert_eq!(during.delivered, 0);
    let calls_during = handle.sink().calls();
    assert_eq!(
        handle.sink().probes.load(Relaxed),
        0,
        "an API that cannot be reached is down: nothing to ask"
    );
    let report = common::end(handle, End::Finish, Duration::ZERO).await;
    let accepted = accepted.lock().unwrap().clone();
    let accounts = common::account(&report, &harness, &accepted, &[]);
    assert_eq!(accounts.delivered.len(), 60, "{:?}", accounts.dead);
    assert!(accounts.dead.is_empty());
    assert!(!report.metrics.api_failing, "recovered");
    assert_eq!(report.metrics.api_outages, 1);
    assert!(report.metrics.elapsed >= Duration::from_secs(30));
    assert!(report.halted.is_none());
    // Backoff grows during the outage: two workers asked a few dozen
    // times in 15 s, not once every 20 ms.
    assert!((4..100).contains(&calls_during), "{calls_during} calls");
    let used: u64 = report
        .metrics
        .by_stream
        .values()
        .map(|s| s.failed_attempts)
        .sum();
    assert_eq!(used, 0, "an outage uses no attempt");
}

/// Every call fails with a 503 for the first 30 s.
fn unavailable_for_30_s(_: u64, _: u32, at: Duration) -> Option<SinkError> {
    (at < Duration::from_secs(30)).then(|| SinkError::Transient("HTTP 503".into()))
}

#[tokio::test(start_paused = true)]
async fn a_5xx_outage_the_api_owns_to_dead_letters_none_and_probes_about_once_a_second() {
    let mut api = ScriptedApi::new(unavailable_for_30_s, ten_ms);
    api.up = |at| at >= Duration::from_secs(30);
    let api = Arc::new(api);
    let mut config = config();
    config.retry.max_attempts = 1;
    let (_, accounts) = run_to_end(&api, 60, config).await;
    assert_eq!(accounts.delivered.len(), 60, "{:?}", accounts.dead);
    let probes = api.probes.load(Relaxed);
    assert!(
        (1..=35).contains(&probes),
        "asked at most about once a second over 30 s: {probes}"
    );
    assert!(api.calls() > probes, "calls went on between the probes");
}

#[tokio::test(start_paused = true)]
async fn the_last_record_of_a_run_failing_alone_is_dead_lettered_when_the_api_says_it_is_up() {
    // Record 60 fails from its first call, after every other record was
    // delivered: no call can get through meanwhile, so only the probe
    // tells it from an outage.
    let api = Arc::new(ScriptedApi::new(
        |sequence, _, _| (sequence == 60).then(|| SinkError::Transient("HTTP 500".into())),
        ten_ms,
    ));
    let (_, accounts) = run_to_end(&api, 60, config()).await;
    assert_eq!(accounts.dead.keys().copied().collect::<Vec<_>>(), [60]);
    assert_eq!(accounts.delivered.len(), 59);
    assert_eq!(api.calls.lock().unwrap()[&60], 3, "max_attempts calls");
    assert!(api.probes.load(Relaxed) >= 1, "the probe was asked");
}

/// Record 7's first call fails after 900 ms; from 1 s to 30 s every
/// call fails with a 503.
fn seven_then_an_outage(sequence: u64, call: u32, at: Duration) -> Option<SinkError> {
    let outage = Duration::from_secs(1)..Duration::from_secs(30);
    if outage.contains(&at) {
        return Some(SinkError::Transient("HTTP 503".into()));
    }
    (sequence == 7 && call == 1).then(|| SinkError::Transient("HTTP 500".into()))
}

fn seven_takes_900_ms(sequence: u64) -> Duration {
    if sequence == 7 {
        Duration::from_millis(900)
    } else {
        Duration::from_millis(10)
    }
}

#[tokio::test(start_paused = true)]
async fn a_record_that_failed_while_others_got_through_still_waits_out_an_outage() {
    // Its first failure used an attempt (calls got through meanwhile);
    // its next ones come in an outage the API owns to, and use none.
    let mut api = ScriptedApi::new(seven_then_an_outage, seven_takes_900_ms);
    api.up = |at| !(Duration::from_secs(1)..Duration::from_secs(30)).contains(&at);
    let api = Arc::new(api);
    let mut config = config();
    config.retry.max_attempts = 2;
    let (report, accounts) = run_to_end(&api, 60, config).await;
    assert!(accounts.dead.is_empty(), "{:?}", report.dead_letters);
    assert_eq!(accounts.delivered.len(), 60);
    assert!(
        api.calls.lock().unwrap()[&7] > 2,
        "retried in the outage past max_attempts"
    );
}

/// Record 7 fails transiently on every call, slowly; the rest are
/// accepted in 10 ms.
fn poison_seven(sequence: u64, _: u32, _: Duration) -> Option<SinkError> {
    (sequence == 7).then(|| SinkError::Transient("HTTP 500: poison".into()))
}

fn seven_is_slow(sequence: u64) -> Duration {
    if sequence == 7 {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(10)
    }
}

#[tokio::test(start_paused = true)]
async fn a_poison_record_spends_its_attempts_while_the_others_get_through() {
    // Three partitions of 40 records: the others keep the API busy.
    let api = Arc::new(ScriptedApi::new(poison_seven, seven_is_slow));
    let (report, accounts) = run_to_end(&api, 120, config()).await;
    let accepted = api.accepted.lock().unwrap().clone();
    assert_eq!(
        accounts.dead.keys().copied().collect::<Vec<_>>(),
        [7],
        "only the poison record"
    );
    assert_eq!(accounts.dead[&7], DeadLetterKind::RetriesExhausted);
    let letter = &report.dead_letters[0];
    let DeadLetterReason::RetriesExhausted {
        attempts,
        last_error,
    } = &letter.reason
    else {
        panic!("{:?}", letter.reason);
    };
    assert_eq!(*attempts, 3);
    assert!(last_error.contains("poison"), "{last_error}");
    assert_eq!(
        api.calls.lock().unwrap()[&7],
        3,
        "exactly max_attempts calls"
    );
    assert_eq!(accounts.delivered.len(), 119);
    // Its partition went on after it, in order.
    let partition: Vec<u64> = accepted
        .iter()
        .filter(|id| id.partition == 1)
        .map(|id| id.sequence)
        .collect();
    let expected: Vec<u64> = (1..=120).filter(|s| s % 3 == 1 && *s != 7).collect();
    assert_eq!(partition, expected);
    assert!(report.halted.is_none());
    assert_eq!(
        report.metrics.api_outages, 0,
        "a poison record is no outage"
    );
}

fn not_found(_: u64, _: u32, _: Duration) -> Option<SinkError> {
    Some(SinkError::Misconfigured(
        "HTTP 404 Not Found from http://127.0.0.1:9/records".into(),
    ))
}

#[tokio::test(start_paused = true)]
async fn a_misconfigured_api_opens_the_circuit_and_hands_everything_back() {
    let harness = Harness::default();
    let source = harness.source(common::inputs(1, 30), Tail::End);
    let api = Arc::new(ScriptedApi::new(not_found, ten_ms));
    let handle = StreamProcessor::new(
        common::transform(|_| Verdict::Accept),
        Arc::clone(&api),
        config(),
    )
    .unwrap()
    .start([source]);
    // No stop: the circuit ends the run by itself.
    let report = common::end(handle, End::Finish, Duration::ZERO).await;
    let accounts = common::account(&report, &harness, &[], &[]);
    assert!(accounts.dead.is_empty(), "{:?}", accounts.dead);
    assert!(accounts.delivered.is_empty());
    assert_eq!(accounts.handed_back.len(), 30, "every record handed back");
    assert!(accounts.handed_back.values().all(|&reason| matches!(
        reason,
        HandBackReason::Queued | HandBackReason::AwaitingRetry
    )));
    let halt = report.halted.as_ref().expect("the report says it halted");
    assert_eq!(halt.calls, 3);
    assert!(
        halt.cause.contains("404") && halt.cause.contains("http://127.0.0.1:9/records"),
        "{halt}"
    );
    assert!(halt.to_string().contains("misconfigured"), "{halt}");
    // The third call opened it; the other worker's call in flight then
    // finished; nothing was sent after.
    let calls = api.calls();
    assert!((3..=4).contains(&calls), "{calls} calls");
}

/// Each record's first call is answered 404, its second accepted: never
/// three misconfigured answers in a row.
fn first_calls_not_found(_: u64, call: u32, _: Duration) -> Option<SinkError> {
    (call == 1).then(|| {
        SinkError::Misconfigured("HTTP 404 Not Found from http://127.0.0.1:9/records".into())
    })
}

#[tokio::test(start_paused = true)]
async fn deliveries_in_between_keep_the_circuit_closed() {
    let harness = Harness::default();
    let source = harness.source(common::inputs(1, 30), Tail::End);
    let mut config = config();
    config.max_in_flight = 1;
    // One attempt: a misconfigured answer that used one would dead-letter.
    config.retry.max_attempts = 1;
    let api = ScriptedApi::new(first_calls_not_found, ten_ms);
    let accepted = Arc::clone(&api.accepted);
    let handle = StreamProcessor::new(common::transform(|_| Verdict::Accept), api, config)
        .unwrap()
        .start([source]);
    let report = common::end(handle, End::Finish, Duration::ZERO).await;
    let accepted = accepted.lock().unwrap().clone();
    let accounts = common::account(&report, &harness, &accepted, &[]);
    assert!(report.halted.is_none(), "{:?}", report.halted);
    assert!(accounts.dead.is_empty(), "{:?}", accounts.dead);
    assert_eq!(accounts.delivered.len(), 30);
    assert_eq!(report.metrics.failed_calls, 30);
}
