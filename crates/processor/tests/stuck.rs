//! A transform that blocks its thread cannot hold up `stop()`: the stop
//! gives up on it after the drain deadline, names it stuck, and tells the
//! source its record was not processed. Real time, on a multi-thread
//! runtime: a blocked thread cannot be simulated in virtual time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Act, Fate, Harness, Input, ScriptedSink, Tail, inputs};
use futures::StreamExt;
use sluice_processor::{
    Context, FaultyTask, HandBackReason, ProcessorConfig, RateLimit, RecordId, Rejected, Report,
    StreamProcessor, Transformed,
};

/// The record the transform blocks on: the last one offered.
const STUCK: u64 = 6;

/// Releases the blocked transform when dropped, even if an assertion
/// failed first, so that the runtime's thread ends.
struct Release(Sender<()>);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// A transform that blocks its thread on record `STUCK` until released.
fn blocking_transform(
    release: Receiver<()>,
    entered: Arc<AtomicBool>,
) -> impl Fn(Input, &mut Context) -> Result<Transformed<u64>, Rejected<u64>> + Send + Sync + 'static
{
    let release = Mutex::new(release);
    move |input: Input, context: &mut Context| {
        if input.sequence == STUCK {
            entered.store(true, Ordering::SeqCst);
            let _ = release.lock().unwrap().recv();
        }
        let stream = context.stream(input.stream).unwrap();
        let id = RecordId {
            stream,
            partition: input.partition,
            sequence: input.sequence,
        };
        Ok(Transformed::new(id, input.sequence))
    }
}

/// A hang guard: fails the test if `future` takes longer than `limit` of
/// real time. Not `tokio::time::timeout`: tokio's timer is driven by idle
/// worker threads, and a blocked worker can leave none to drive it.
async fn within<F: Future>(limit: Duration, future: F) -> F::Output {
    let (alarm, rung) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        let _ = alarm.send(());
    });
    tokio::select! {
        output = future => output,
        _ = rung => panic!("not done within {limit:?}"),
    }
}

/// Records 1 to 5, a pause (intake queues what it holds before it waits),
/// then record 6, on which the transform blocks its thread; the stop comes
/// once it is blocked and `delivered` records reached the sink. Returns
/// the report and the harness, with the transform released.
async fn stop_a_blocked_transform(
    sink: fn(u64, u32) -> Act,
    max_in_flight: usize,
    delivered: usize,
) -> (Report<u64>, Harness, Vec<u64>) {
    let (release_tx, release_rx) = channel();
    let release = Release(release_tx);
    let entered = Arc::new(AtomicBool::new(false));
    let harness = Harness::default();
    let sink = ScriptedSink::new(sink, Duration::from_millis(1));
    let accepted = Arc::clone(&sink.accepted);
    let config = ProcessorConfig {
        max_in_flight,
        rate_limit: RateLimit::Unlimited,
        drain_deadline: Duration::from_millis(200),
        ..ProcessorConfig::default()
    };
    let transform = blocking_transform(release_rx, Arc::clone(&entered));
    let processor = StreamProcessor::new(transform, sink, config).unwrap();
    let first = harness.source(inputs(1, STUCK - 1), Tail::End);
    let pause = futures::stream::once(tokio::time::sleep(Duration::from_millis(50)))
        .filter_map(|()| async { None });
    let last = harness.source(inputs(STUCK, STUCK), Tail::End);
    let handle = processor.start([first.chain(pause).chain(last)]);

    // Wait until the transform is blocked and the sink has what it will
    // get. This thread is not one of the runtime's workers, so it may
    // sleep; tokio's timer may not be driven meanwhile.
    let waiting_since = std::time::Instant::now();
    while !entered.load(Ordering::SeqCst) || accepted.lock().unwrap().len() < delivered {
        assert!(
            waiting_since.elapsed() < Duration::from_secs(10),
            "never blocked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // A hang guard only: outcomes are checked, not durations.
    let report = within(Duration::from_secs(30), handle.stop()).await;

    // The stop resolved the stuck record's ack; released, the transform
    // returns into a stopped processor and does not resolve it again.
    drop(release);
    std::thread::sleep(Duration::from_millis(100));
    let accepted = accepted
        .lock()
        .unwrap()
        .iter()
        .map(|id| id.sequence)
        .collect();
    (report, harness, accepted)
}

fn checks(report: &Report<u64>, harness: &Harness) {
    assert!(
        common::names(report, FaultyTask::Stuck),
        "{:?}",
        report.failures
    );
    // The stuck record was never counted (its transform never returned);
    // everything counted is accounted for, nothing abandoned.
    assert!(report.is_conserved(), "{}", report.conservation());
    assert_eq!(report.metrics.ingested, STUCK - 1);
    assert_eq!(report.abandoned, 0);
    assert_eq!(harness.offered(), (1..=STUCK).collect::<Vec<_>>());
    let resolutions = harness.acks.resolutions();
    assert_eq!(resolutions.get(&STUCK), Some(&vec![Fate::NotProcessed]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_blocking_its_thread_cannot_hold_up_stop() {
    let (report, harness, mut accepted) = stop_a_blocked_transform(|_, _| Act::Accept, 4, 5).await;
    checks(&report, &harness);
    accepted.sort();
    assert_eq!(accepted, [1, 2, 3, 4, 5]);
    assert_eq!(report.metrics.delivered, STUCK - 1);
    let resolutions = harness.acks.resolutions();
    for sequence in 1..STUCK {
        assert_eq!(resolutions.get(&sequence), Some(&vec![Fate::Delivered]));
    }
}

/// Records 4 and 5 hang the sink: with both calls in flight when the stop
/// comes, nothing but the stop's own deadline can wake the runtime.
fn fourth_and_fifth_hang(sequence: u64, _attempt: u32) -> Act {
    if sequence >= 4 {
        Act::Hang
    } else {
        Act::Accept
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_blocking_its_thread_cannot_hold_up_stop_while_every_call_hangs() {
    let (report, harness, mut accepted) =
        stop_a_blocked_transform(fourth_and_fifth_hang, 2, 2).await;
    checks(&report, &harness);
    // Two workers, three partitions: 1 and 2 delivered, 4 and 5 hang in
    // their calls, 3 waits in the queue.
    accepted.sort();
    assert_eq!(accepted, [1, 2]);
    let handed_back: Vec<(u64, HandBackReason)> = report
        .handed_back
        .iter()
        .map(|record| (record.id.sequence, record.reason))
        .collect();
    assert_eq!(
        handed_back,
        [
            (3, HandBackReason::Queued),
            (4, HandBackReason::CallCancelled),
            (5, HandBackReason::CallCancelled),
        ]
    );
    let resolutions = harness.acks.resolutions();
    assert_eq!(resolutions.get(&1), Some(&vec![Fate::Delivered]));
    assert_eq!(resolutions.get(&2), Some(&vec![Fate::Delivered]));
    for sequence in 3..STUCK {
        assert_eq!(resolutions.get(&sequence), Some(&vec![Fate::NotProcessed]));
    }
}
