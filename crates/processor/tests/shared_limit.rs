//! A limit shared by several processors: together they keep one quota,
//! send nothing while the shared store is down, resume when it is back,
//! and lose nothing when the store's code panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{End, Harness, Tail, Verdict};
use sluice_processor::{
    Envelope, FaultyTask, ProcessorConfig, Quota, RateLimit, RecordId, Reservation, RetryPolicy,
    SendError, SharedLimit, SharedLimitError, Sink, SinkError, StreamProcessor, WindowStart,
};
use tokio::time::Instant;

const LIMIT: usize = 10;
const WINDOW: Duration = Duration::from_secs(1);

/// An API that refuses a call when `LIMIT` successes are already in the
/// last `WINDOW`, and records when it admitted each success.
#[derive(Default)]
struct QuotaSink {
    admitted: Mutex<Vec<(Instant, RecordId)>>,
    refused: AtomicU64,
}

#[async_trait]
impl Sink<u64> for QuotaSink {
    async fn send(&self, batch: &[Envelope<u64>]) -> Result<(), SendError> {
        let outcome = {
            let now = Instant::now();
            let mut admitted = self.admitted.lock().unwrap();
            let in_window = admitted.iter().filter(|(at, _)| *at + WINDOW > now).count();
            if in_window + batch.len() > LIMIT {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(SinkError::RateLimited { retry_after: None }.into())
            } else {
                admitted.extend(batch.iter().map(|envelope| (now, envelope.id)));
                Ok(())
            }
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        outcome
    }
}

/// A shared window in memory, as a store would keep it: reservations that
/// expire one window after they were made, or after their answer when
/// kept. `down` makes it unavailable; `panics` makes `reserve` panic.
#[derive(Default)]
struct MemoryWindow {
    slots: Mutex<Vec<(u64, Instant)>>,
    next: AtomicU64,
    down: AtomicBool,
    panics: AtomicBool,
    asked_while_down: AtomicU64,
    /// Where each settled reservation's window started, in order.
    starts: Mutex<Vec<WindowStart>>,
}

#[async_trait]
impl SharedLimit for MemoryWindow {
    async fn reserve(&self, units: usize) -> Result<Reservation, SharedLimitError> {
        if self.panics.load(Ordering::Relaxed) {
            panic!("the store's client broke");
        }
        if self.down.load(Ordering::Relaxed) {
            self.asked_while_down.fetch_add(1, Ordering::Relaxed);
            return Err(SharedLimitError::Unavailable("connection refused".into()));
        }
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap();
        slots.retain(|&(_, expires)| expires > now);
        if slots.len() + units > LIMIT {
            let earliest = slots.iter().map(|&(_, at)| at).min().unwrap();
            return Err(SharedLimitError::Full {
                retry_in: earliest - now,
            });
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        slots.extend((0..units).map(|_| (id, now + WINDOW)));
        Ok(Reservation { id, units })
    }

    async fn settle(
        &self,
        reservation: Reservation,
        kept: usize,
        from: WindowStart,
    ) -> Result<(), SharedLimitError> {
        self.starts.lock().unwrap().push(from);
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap();
        let mut keep = kept;
        slots.retain_mut(|(id, expires)| {
            if *id != reservation.id {
                return true;
            }
            if keep == 0 {
                return false;
            }
            keep -= 1;
            if from == WindowStart::Answer {
                *expires = now + WINDOW;
            }
            true
        });
        Ok(())
    }
}

/// Each processor's own limit is the whole quota: only the shared window
/// can keep three of them within it.
fn config() -> ProcessorConfig {
    ProcessorConfig {
        max_in_flight: 4,
        rate_limit: RateLimit::Fixed(Quota {
            limit: NonZeroU32::new(LIMIT as u32).unwrap(),
            window: WINDOW,
        }),
        rate_limit_margin: Duration::ZERO,
        retry: RetryPolicy {
            max_elapsed: Duration::from_secs(3_600),
            ..RetryPolicy::default()
        },
        ..ProcessorConfig::default()
    }
}

/// The most successes in any half-open window of `WINDOW` of `times`.
fn most_in_any_window(times: &mut [Instant]) -> usize {
    times.sort();
    let mut most = 0;
    let mut end = 0;
    for (start, &at) in times.iter().enumerate() {
        while end < times.len() && times[end] < at + WINDOW {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

#[tokio::test(start_paused = true)]
async fn three_processors_keep_one_quota_between_them_and_use_it() {
    let sink = Arc::new(QuotaSink::default());
    let window = Arc::new(MemoryWindow::default());
    let run = Duration::from_secs(30);
    let mut runs = Vec::new();
    for i in 0..3u64 {
        let harness = Harness::default();
        let inputs = common::inputs(i * 1_000 + 1, i * 1_000 + 500);
        let source = harness.source(inputs, Tail::Pending);
        let processor = StreamProcessor::new(
            common::transform(|_| Verdict::Accept),
            Arc::clone(&sink),
            config(),
        )
        .unwrap()
        .with_shared_limit(Arc::clone(&window));
        runs.push((harness, processor.start([source])));
    }
    tokio::time::sleep(run).await;
    let mut accepted_total = 0;
    for (harness, handle) in runs {
        let report = handle.stop().await;
        let accepted: Vec<RecordId> = sink
            .admitted
            .lock()
            .unwrap()
            .iter()
            .map(|&(_, id)| id)
            .filter(|id| harness.offered().contains(&id.sequence))
            .collect();
        accepted_total += accepted.len();
        common::account(&report, &harness, &accepted, &[]);
        assert!(
            report.metrics.delivered > 0,
            "every processor got a share of the quota"
        );
    }
    let mut times: Vec<Instant> = sink
        .admitted
        .lock()
        .unwrap()
        .iter()
        .map(|&(at, _)| at)
        .collect();
    assert_eq!(
        sink.refused.load(Ordering::Relaxed),
        0,
        "the API never refused"
    );
    assert_eq!(most_in_any_window(&mut times), LIMIT);
    let ceiling = LIMIT as f64 * run.as_secs_f64() / WINDOW.as_secs_f64();
    assert!(
        accepted_total as f64 >= 0.95 * ceiling,
        "{accepted_total} successes of a {ceiling} ceiling"
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_is_sent_while_the_shared_store_is_down_and_sending_resumes_after() {
    let sink = Arc::new(QuotaSink::default());
    let window = Arc::new(MemoryWindow::default());
    let harness = Harness::default();
    let source = harness.source(common::inputs(1, 60), Tail::End);
    let processor = StreamProcessor::new(
        common::transform(|_| Verdict::Accept),
        Arc::clone(&sink),
        config(),
    )
    .unwrap()
    .with_shared_limit(Arc::clone(&window));
    let start = Instant::now();
    let handle = processor.start([source]);
    let outage = (Duration::from_secs(2), Duration::from_secs(5));
    tokio::time::sleep(outage.0).await;
    window.down.store(true, Ordering::Relaxed);
    tokio::time::sleep(outage.1 - outage.0).await;
    window.down.store(false, Ordering::Relaxed);
    let report = common::end(handle, End::Finish, Duration::ZERO).await;

    let admitted = sink.admitted.lock().unwrap().clone();
    let accepted: Vec<RecordId> = admitted.iter().map(|&(_, id)| id).collect();
    let accounts = common::account(&report, &harness, &accepted, &[]);
    assert_eq!(
        accounts.delivered.len(),
        60,
        "everything delivered in the end"
    );
    assert!(window.asked_while_down.load(Ordering::Relaxed) > 0);
    // Calls admitted before the outage may answer 10 ms into it; nothing
    // later reaches the API until the store is back.
    let quiet = (start + outage.0 + Duration::from_millis(20))..(start + outage.1);
    let during: Vec<_> = admitted
        .iter()
        .filter(|(at, _)| quiet.contains(at))
        .collect();
    assert!(
        during.is_empty(),
        "sent while the store was down: {during:?}"
    );
    assert!(admitted.iter().any(|(at, _)| *at >= start + outage.1));
}

#[tokio::test(start_paused = true)]
async fn a_store_down_longer_than_max_elapsed_dead_letters_nothing() {
    // The store is down for 10 s, ten times `max_elapsed`: waiting on a
    // limit is not a failure of the records (they were dead-lettered as
    // timed out before), so all are delivered once it is back.
    let sink = Arc::new(QuotaSink::default());
    let window = Arc::new(MemoryWindow::default());
    let harness = Harness::default();
    let source = harness.source(common::inputs(1, 60), Tail::End);
    let mut config = config();
    config.retry.max_elapsed = Duration::from_secs(1);
    let processor = StreamProcessor::new(
        common::transform(|_| Verdict::Accept),
        Arc::clone(&sink),
        config,
    )
    .unwrap()
    .with_shared_limit(Arc::clone(&window));
    let start = Instant::now();
    let handle = processor.start([source]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    window.down.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(10)).await;
    window.down.store(false, Ordering::Relaxed);
    let report = common::end(handle, End::Finish, Duration::ZERO).await;

    let admitted = sink.admitted.lock().unwrap().clone();
    let accepted: Vec<RecordId> = admitted.iter().map(|&(_, id)| id).collect();
    let accounts = common::account(&report, &harness, &accepted, &[]);
    assert!(accounts.dead.is_empty(), "{:?}", accounts.dead);
    assert_eq!(accounts.delivered.len(), 60);
    assert!(window.asked_while_down.load(Ordering::Relaxed) > 0);
    let after = start + Duration::from_secs(12);
    assert!(
        admitted.iter().any(|(at, _)| *at >= after),
        "delivered after the outage"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_shared_limit_is_named_and_its_records_handed_back() {
    let sink = Arc::new(QuotaSink::default());
    let window = Arc::new(MemoryWindow::default());
    window.panics.store(true, Ordering::Relaxed);
    let harness = Harness::default();
    let source = harness.source(common::inputs(1, 20), Tail::End);
    let processor = StreamProcessor::new(
        common::transform(|_| Verdict::Accept),
        Arc::clone(&sink),
        config(),
    )
    .unwrap()
    .with_shared_limit(Arc::clone(&window));
    let handle = processor.start([source]);
    let report = common::end(
        handle,
        End::StopAfter(Duration::from_secs(3)),
        Duration::from_secs(5),
    )
    .await;
    let accounts = common::account(&report, &harness, &[], &[]);
    assert_eq!(accounts.handed_back.len(), 20);
    assert!(common::names(&report, FaultyTask::SharedLimit));
    assert!(sink.admitted.lock().unwrap().is_empty());
}

/// Runs 30 records through a processor with `config` and a shared window;
/// returns where each settled window started.
async fn window_starts(config: ProcessorConfig) -> Vec<WindowStart> {
    let sink = Arc::new(QuotaSink::default());
    let window = Arc::new(MemoryWindow::default());
    let harness = Harness::default();
    let source = harness.source(common::inputs(1, 30), Tail::End);
    let processor = StreamProcessor::new(
        common::transform(|_| Verdict::Accept),
        Arc::clone(&sink),
        config,
    )
    .unwrap()
    .with_shared_limit(Arc::clone(&window));
    let report = common::end(processor.start([source]), End::Finish, Duration::ZERO).await;
    assert_eq!(report.metrics.delivered, 30);
    let starts = window.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 30);
    starts
}

#[tokio::test(start_paused = true)]
async fn windows_count_from_answers_only_while_the_local_limiter_does() {
    use WindowStart::{Answer, Reservation};
    use sluice_processor::CountedFrom;

    // Counted from calls then answers: the first window's ten successes
    // (new connections) from their answers, the rest from reservations.
    let config = ProcessorConfig {
        counted_from: CountedFrom::CallThenAnswer,
        ..self::config()
    };
    let starts = window_starts(config).await;
    assert!(
        starts[..LIMIT].iter().all(|&start| start == Answer),
        "{starts:?}"
    );
    assert!(
        starts[LIMIT..].iter().all(|&start| start == Reservation),
        "{starts:?}"
    );

    // Without a local limiter, as `counted_from` says.
    for (counted_from, expected) in [
        (CountedFrom::Call, Reservation),
        (CountedFrom::Answer, Answer),
    ] {
        let config = ProcessorConfig {
            rate_limit: RateLimit::Unlimited,
            counted_from,
            ..self::config()
        };
        let starts = window_starts(config).await;
        assert!(
            starts.iter().all(|&start| start == expected),
            "{counted_from:?}: {starts:?}"
        );
    }
}
