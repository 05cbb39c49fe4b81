//! Fencing: records read under a lease are sent only while it holds,
//! checked before every call, retries included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_processor::{
    Ack, Context, Envelope, Fence, HandBackReason, Incoming, ProcessorConfig, RateLimit, RecordId,
    Rejected, Resolution, RetryPolicy, SendError, Sink, SinkError, StreamProcessor, Transformed,
};
use tokio::time::Instant;

const LATENCY: Duration = Duration::from_millis(100);

/// What the sink saw: per call, when it started, and each record's
/// (partition, sequence, fence token).
type Calls = Arc<Mutex<Vec<(Instant, Vec<(u32, u64, Option<u64>)>)>>>;

/// Answers after [`LATENCY`]; fails the first attempt of the sequences
/// in `fail_once` transiently.
struct Recording {
    calls: Calls,
    fail_once: Mutex<Vec<u64>>,
}

#[async_trait]
impl Sink<u64> for Recording {
    async fn send(&self, batch: &[Envelope<u64>]) -> Result<(), SendError> {
        let seen = batch
            .iter()
            .map(|e| {
                (
                    e.id.partition,
                    e.id.sequence,
                    e.fence.as_ref().map(|f| f.token),
                )
            })
            .collect();
        self.calls.lock().unwrap().push((Instant::now(), seen));
        tokio::time::sleep(LATENCY).await;
        let mut fail_once = self.fail_once.lock().unwrap();
        if let Some(at) = fail_once.iter().position(|s| *s == batch[0].id.sequence) {
            fail_once.remove(at);
            return Err(SinkError::Transient("once".into()).into());
        }
        Ok(())
    }
}

/// The payload is (partition, sequence).
fn named(record: (u32, u64), context: &mut Context) -> Result<Transformed<u64>, Rejected<u64>> {
    let stream = context.stream("fenced").unwrap();
    let (partition, sequence) = record;
    let id = RecordId {
        stream,
        partition,
        sequence,
    };
    Ok(Transformed::new(id, sequence))
}

/// Records 1..=`records` of `partition`, each acknowledged under `fence`;
/// their resolutions go to `fates`.
fn fenced_source(
    partition: u32,
    records: u64,
    fence: &Fence,
    fates: &Arc<Mutex<BTreeMap<(u32, u64), String>>>,
) -> impl futures::Stream<Item = Incoming<(u32, u64)>> + Send + use<> {
    let incoming: Vec<_> = (1..=records)
        .map(|sequence| {
            let fates = Arc::clone(fates);
            let ack = Ack::new(move |resolution: Resolution<'_>| {
                let fate = format!("{resolution:?}");
                fates.lock().unwrap().insert((partition, sequence), fate);
            });
            Incoming::with_ack((partition, sequence), ack.fenced(fence.clone()))
        })
        .collect();
    futures::stream::iter(incoming)
}

fn config() -> ProcessorConfig {
    ProcessorConfig {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        rate_limit: RateLimit::Unlimited,
        max_in_flight: 2,
        call_timeout: Duration::from_secs(5),
        ..ProcessorConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_lapsed_lease_stops_its_records_at_the_next_call_and_hands_them_back() {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(450);
    // Partition 0's lease is never renewed; partition 1's is, every 200 ms.
    let lapsing = Fence::new("0", 7, deadline);
    let renewed = Fence::new("1", 8, start + Duration::from_millis(300));
    let renewer = {
        let fence = renewed.clone();
        tokio::spawn(async move {
            for token in 9.. {
                tokio::time::sleep(Duration::from_millis(200)).await;
                assert!(fence.renew(token, Instant::now() + Duration::from_millis(300)));
            }
        })
    };
    let calls = Calls::default();
    let fates = Arc::default();
    let sink = Recording {
        calls: Arc::clone(&calls),
        fail_once: Mutex::new(Vec::new()),
    };
    let report = StreamProcessor::new(named, sink, config())
        .unwrap()
        .start([
            fenced_source(0, 10, &lapsing, &fates),
            fenced_source(1, 10, &renewed, &fates),
        ])
        .finish()
        .await;
    renewer.abort();

    let calls = calls.lock().unwrap().clone();
    let sent = |partition| -> Vec<(Instant, u64, Option<u64>)> {
        calls
            .iter()
            .flat_map(|(at, records)| records.iter().map(move |r| (*at, r.0, r.1, r.2)))
            .filter(|r| r.1 == partition)
            .map(|(at, _, sequence, token)| (at, sequence, token))
            .collect()
    };
    // Partition 0: one call of one record every 100 ms while the lease
    // held (at 0, 100, 200, 300, 400 ms), nothing after its deadline.
    let lapsed = sent(0);
    assert_eq!(
        lapsed.iter().map(|r| r.1).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(
        lapsed
            .iter()
            .all(|(at, _, token)| *at < deadline && *token == Some(7))
    );
    // Partition 1: everything, each call with the token of its time.
    let held = sent(1);
    assert_eq!(
        held.iter().map(|r| r.1).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let tokens: Vec<u64> = held.iter().map(|r| r.2.unwrap()).collect();
    assert!(tokens.is_sorted(), "{tokens:?}");
    assert!(
        tokens[0] == 8 && tokens[9] > 10,
        "renewals carried: {tokens:?}"
    );

    assert_eq!(report.metrics.delivered, 15);
    assert_eq!(report.metrics.handed_back, 5);
    assert!(report.is_conserved());
    let handed_back: Vec<_> = report
        .handed_back
        .iter()
        .map(|r| (r.id.partition, r.id.sequence, r.reason))
        .collect();
    let expected: Vec<_> = (6..=10)
        .map(|s| (0, s, HandBackReason::LeaseEnded))
        .collect();
    assert_eq!(handed_back, expected);
    let fates = fates.lock().unwrap();
    assert!((6..=10).all(|s| fates[&(0, s)] == "NotProcessed"));
    assert!((1..=5).all(|s| fates[&(0, s)] == "Delivered"));
}

#[tokio::test(start_paused = true)]
async fn a_retry_checks_the_lease_again() {
    // The first call fails at 100 ms; its retry comes after a backoff of
    // at least 20 ms, by when the lease has lapsed: the record is handed
    // back, not sent again.
    let fence = Fence::new("0", 3, Instant::now() + Duration::from_millis(110));
    let calls = Calls::default();
    let fates = Arc::default();
    let sink = Recording {
        calls: Arc::clone(&calls),
        fail_once: Mutex::new(vec![1]),
    };
    let report = StreamProcessor::new(named, sink, config())
        .unwrap()
        .start([fenced_source(0, 1, &fence, &fates)])
        .finish()
        .await;
    assert_eq!(calls.lock().unwrap().len(), 1, "sent once, never retried");
    assert_eq!(report.metrics.handed_back, 1);
    assert_eq!(report.handed_back[0].reason, HandBackReason::LeaseEnded);
    assert_eq!(fates.lock().unwrap()[&(0, 1)], "NotProcessed");
}

#[tokio::test(start_paused = true)]
async fn records_whose_lease_ended_go_back_without_waiting_for_the_limit() {
    use futures::StreamExt;
    // One success an hour: the first record (no lease) takes the window's
    // only slot; the records of a lease already ended must not wait an
    // hour for the next before they are handed back.
    let config = ProcessorConfig {
        rate_limit: RateLimit::Fixed(sluice_processor::Quota {
            limit: std::num::NonZeroU32::MIN,
            window: Duration::from_secs(3_600),
        }),
        max_in_flight: 1,
        ..config()
    };
    let ended = Fence::new("0", 1, Instant::now());
    let fates = Arc::default();
    let first = futures::stream::iter([Incoming::new((1, 1))]);
    let later = futures::stream::once(tokio::time::sleep(Duration::from_millis(10)))
        .flat_map(move |()| fenced_source(0, 3, &ended, &fates));
    let sink = Recording {
        calls: Calls::default(),
        fail_once: Mutex::new(Vec::new()),
    };
    let started = Instant::now();
    let report = StreamProcessor::new(named, sink, config)
        .unwrap()
        .start([first.boxed(), later.boxed()])
        .finish()
        .await;
    assert_eq!(report.metrics.delivered, 1);
    assert_eq!(report.metrics.handed_back, 3);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn only_the_records_of_an_ended_lease_leave_a_call_the_others_go_in_order() {
    use futures::StreamExt;
    // One partition's records under two leases (a record read before a
    // handover and one after, say), batched into one call: the ended
    // lease's records go back, the others are sent together, in order.
    let ended = Fence::new("0", 1, Instant::now());
    let held = Fence::new("0", 2, Instant::now() + Duration::from_secs(60));
    let fates = Arc::default();
    let odd =
        fenced_source(0, 6, &ended, &fates).filter(|r| std::future::ready(r.payload.1 % 2 == 1));
    let even =
        fenced_source(0, 6, &held, &fates).filter(|r| std::future::ready(r.payload.1 % 2 == 0));
    let mixed: Vec<_> = odd
        .zip(even)
        .flat_map(|(o, e)| futures::stream::iter([o, e]))
        .collect()
        .await;
    let calls = Calls::default();
    let sink = Recording {
        calls: Arc::clone(&calls),
        fail_once: Mutex::new(Vec::new()),
    };
    let config = ProcessorConfig {
        batch: sluice_processor::BatchConfig {
            max_records: 6,
            linger: Duration::from_millis(50),
            ..sluice_processor::BatchConfig::default()
        },
        ..config()
    };
    let report = StreamProcessor::new(named, sink, config)
        .unwrap()
        .start([futures::stream::iter(mixed)])
        .finish()
        .await;
    let calls = calls.lock().unwrap().clone();
    let sent: Vec<Vec<(u64, Option<u64>)>> = calls
        .iter()
        .map(|(_, records)| records.iter().map(|r| (r.1, r.2)).collect())
        .collect();
    assert_eq!(sent, [vec![(2, Some(2)), (4, Some(2)), (6, Some(2))]]);
    let handed_back: Vec<_> = report
        .handed_back
        .iter()
        .map(|r| (r.id.sequence, r.reason))
        .collect();
    assert_eq!(
        handed_back,
        [1, 3, 5].map(|s| (s, HandBackReason::LeaseEnded))
    );
    assert_eq!(report.metrics.delivered, 3);
    assert!(report.is_conserved());
}
