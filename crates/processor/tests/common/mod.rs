//! Shared fixtures: sources whose records carry recording acknowledgements,
//! scripted sinks, transforms and outlets, and the accounting every test
//! checks (nothing lost, every acknowledgement resolved once and truly).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use sluice_processor::{
    Ack, Context, DeadLetter, DeadLetterKind, FaultyTask, HandBackReason, Incoming,
    ProcessorConfig, ProcessorHandle, RateLimit, RecordId, Rejected, Report, Resolution,
    RetryPolicy, StreamProcessor, Transformed,
};
use tokio::time::Instant;

mod scripted;

pub use scripted::{Act, Outlet, ScriptedOutlet, ScriptedSink};

/// Bounds `finish()` in virtual time: only a hang reaches it.
pub const FINISH_BOUND: Duration = Duration::from_secs(30 * 86_400);

/// What a source offers: where the record belongs. `sequence` is unique per
/// test run and keys the record's acknowledgement.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    pub stream: &'static str,
    pub partition: u32,
    pub sequence: u64,
}

/// Records `first..=last` of stream "faults", spread over three partitions.
/// With a single source, a record's sequence is also its pull position,
/// which is the sequence the core gives a record the transform panicked on.
pub fn inputs(first: u64, last: u64) -> Vec<Input> {
    (first..=last)
        .map(|sequence| Input {
            stream: "faults",
            partition: (sequence % 3) as u32,
            sequence,
        })
        .collect()
}

/// A record's fate as its acknowledgement heard it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    DeadLettered(DeadLetterKind),
    NotProcessed,
}

/// Every acknowledgement resolution, by sequence, in the order heard.
#[derive(Clone, Default)]
pub struct Acks(Arc<Mutex<BTreeMap<u64, Vec<Fate>>>>);

impl Acks {
    pub fn ack(&self, key: u64) -> Ack {
        let log = Arc::clone(&self.0);
        Ack::new(move |resolution: Resolution<'_>| {
            let fate = match resolution {
                Resolution::Delivered => Fate::Delivered,
                Resolution::DeadLettered(reason) => Fate::DeadLettered(reason.kind()),
                Resolution::NotProcessed => Fate::NotProcessed,
            };
            log.lock().unwrap().entry(key).or_default().push(fate);
        })
    }

    pub fn resolutions(&self) -> BTreeMap<u64, Vec<Fate>> {
        self.0.lock().unwrap().clone()
    }
}

/// How a source behaves once its records are out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// It ends.
    End,
    /// It never yields again, nor ends.
    Pending,
    /// Its `poll_next` panics.
    Panic,
}

/// Makes sources and remembers what they offered.
#[derive(Clone, Default)]
pub struct Harness {
    pub acks: Acks,
    offered: Arc<Mutex<Vec<u64>>>,
}

impl Harness {
    /// A source offering `inputs`, each with an acknowledgement made as it
    /// is pulled, then behaving as `tail` says.
    pub fn source(
        &self,
        inputs: Vec<Input>,
        tail: Tail,
    ) -> Pin<Box<dyn Stream<Item = Incoming<Input>> + Send>> {
        let harness = self.clone();
        let records = stream::iter(inputs).map(move |input| {
            harness.offered.lock().unwrap().push(input.sequence);
            Incoming::with_ack(input, harness.acks.ack(input.sequence))
        });
        match tail {
            Tail::End => records.boxed(),
            Tail::Pending => records.chain(stream::pending()).boxed(),
            Tail::Panic => records
                .chain(stream::poll_fn(|_| -> Poll<Option<Incoming<Input>>> {
                    panic!("the source broke")
                }))
                .boxed(),
        }
    }

    /// The sequences of every record the sources yielded.
    pub fn offered(&self) -> Vec<u64> {
        self.offered.lock().unwrap().clone()
    }
}

/// What the transform does with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
    Panic,
}

/// A transform that identifies records from their input and acts as
/// `script` says on each sequence.
pub fn transform(
    script: fn(u64) -> Verdict,
) -> impl Fn(Input, &mut Context) -> Result<Transformed<u64>, Rejected<u64>> + Send + Sync + 'static
{
    move |input: Input, context: &mut Context| {
        let stream = context.stream(input.stream).unwrap();
        let id = RecordId {
            stream,
            partition: input.partition,
            sequence: input.sequence,
        };
        match script(input.sequence) {
            Verdict::Accept => Ok(Transformed::new(id, input.sequence)),
            Verdict::Reject => Err(Rejected::new(id, "refused by the test")),
            Verdict::Panic => panic!("the transform broke on {}", input.sequence),
        }
    }
}

/// Where every offered record went, by sequence.
#[derive(Debug, Default)]
pub struct Accounts {
    pub delivered: BTreeSet<u64>,
    pub dead: BTreeMap<u64, DeadLetterKind>,
    pub handed_back: BTreeMap<u64, HandBackReason>,
}

/// Checks that nothing was lost: the report is conserved; each offered
/// record was accepted by the sink, dead-lettered or handed back, exactly
/// once and in exactly one of these; the metrics agree; and each record's
/// acknowledgement was resolved exactly once, as where the report says it
/// went. `accepted` is what the sink accepted, `kept` what an outlet kept
/// (the report's own dead letters are added).
pub fn account(
    report: &Report<u64>,
    harness: &Harness,
    accepted: &[RecordId],
    kept: &[DeadLetter<u64>],
) -> Accounts {
    assert!(report.is_conserved(), "{}", report.conservation());
    let offered = harness.offered();
    let offered_set: BTreeSet<u64> = offered.iter().copied().collect();
    assert_eq!(offered_set.len(), offered.len(), "sequences are unique");
    let mut accounts = Accounts::default();
    for id in accepted {
        assert!(
            accounts.delivered.insert(id.sequence),
            "{id} accepted twice"
        );
    }
    for letter in report.dead_letters.iter().chain(kept) {
        let kind = letter.reason.kind();
        let again = accounts.dead.insert(letter.id.sequence, kind);
        assert!(again.is_none(), "{} dead-lettered twice", letter.id);
    }
    for record in &report.handed_back {
        let again = accounts
            .handed_back
            .insert(record.id.sequence, record.reason);
        assert!(again.is_none(), "{} handed back twice", record.id);
    }
    let mut accounted = BTreeSet::new();
    let places = accounts.delivered.iter().chain(accounts.dead.keys());
    for &key in places.chain(accounts.handed_back.keys()) {
        assert!(accounted.insert(key), "record {key} is in two places");
    }
    assert_eq!(accounted, offered_set, "accounted for = offered");
    let m = &report.metrics;
    assert_eq!(m.ingested, offered.len() as u64);
    assert_eq!(m.delivered, accounts.delivered.len() as u64);
    assert_eq!(m.dead_lettered, accounts.dead.len() as u64);
    assert_eq!(m.handed_back, accounts.handed_back.len() as u64);
    assert_eq!(report.abandoned, 0);

    let resolutions = harness.acks.resolutions();
    let resolved: BTreeSet<u64> = resolutions.keys().copied().collect();
    assert_eq!(resolved, offered_set, "every offered record's ack resolved");
    for (key, fates) in &resolutions {
        let expected = if accounts.delivered.contains(key) {
            Fate::Delivered
        } else if let Some(&kind) = accounts.dead.get(key) {
            Fate::DeadLettered(kind)
        } else {
            Fate::NotProcessed
        };
        assert_eq!(fates, &[expected], "the ack of record {key}");
    }
    accounts
}

/// Whether the report names `task` among its failures.
pub fn names(report: &Report<u64>, task: FaultyTask) -> bool {
    report.failures.iter().any(|failure| failure.task == task)
}

/// How a run ends.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// `stop()` after this long; it must return within the drain deadline
    /// plus one second.
    StopAfter(Duration),
    /// `finish()`, which must return.
    Finish,
}

/// Ends a run as `end` says, checking that it returns in time.
pub async fn end<S, T>(
    handle: ProcessorHandle<u64, S, T>,
    end: End,
    drain: Duration,
) -> Report<u64> {
    match end {
        End::StopAfter(after) => {
            tokio::time::sleep(after).await;
            let started = Instant::now();
            let report = handle.stop().await;
            let elapsed = started.elapsed();
            assert!(
                elapsed <= drain + Duration::from_secs(1),
                "stop() took {elapsed:?}, drain deadline {drain:?}"
            );
            report
        }
        End::Finish => tokio::time::timeout(FINISH_BOUND, handle.finish())
            .await
            .expect("finish() returns"),
    }
}

/// A small pipeline for fault tests: two calls in flight, little room, no
/// client-side limit, three attempts, a 2 s drain deadline.
pub fn config() -> ProcessorConfig {
    ProcessorConfig {
        max_in_flight: 2,
        queue_capacity: 8,
        rate_limit: RateLimit::Unlimited,
        call_timeout: Duration::from_secs(3),
        drain_deadline: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        },
        ..ProcessorConfig::default()
    }
}

/// One fault scenario.
pub struct Setup {
    pub config: ProcessorConfig,
    pub sources: Vec<(Vec<Input>, Tail)>,
    pub transform: fn(u64) -> Verdict,
    pub sink: fn(u64, u32) -> Act,
    pub latency: Duration,
    /// A scripted outlet; without one, dead letters come in the report.
    pub outlet: Option<fn(u64) -> Outlet>,
}

impl Setup {
    /// Records 1 to `records` from one source that then ends (finish) or
    /// waits (stop), all accepted by a sink answering in 50 ms.
    pub fn new(records: u64, end: End) -> Setup {
        let tail = match end {
            End::Finish => Tail::End,
            End::StopAfter(_) => Tail::Pending,
        };
        Setup {
            config: config(),
            sources: vec![(inputs(1, records), tail)],
            transform: |_| Verdict::Accept,
            sink: |_, _| Act::Accept,
            latency: Duration::from_millis(50),
            outlet: None,
        }
    }
}

/// What a scenario did.
pub struct Outcome {
    pub report: Report<u64>,
    /// The sequences the sources yielded.
    pub offered: BTreeSet<u64>,
    pub accounts: Accounts,
    /// How long the run took, start to report.
    pub elapsed: Duration,
}

/// Runs `setup`, ends it as `how` says, and checks the accounts.
pub async fn run(setup: Setup, how: End) -> Outcome {
    let harness = Harness::default();
    let sink = ScriptedSink::new(setup.sink, setup.latency);
    let accepted = Arc::clone(&sink.accepted);
    let kept: Arc<Mutex<Vec<DeadLetter<u64>>>> = Arc::default();
    let drain = setup.config.drain_deadline;
    let mut processor =
        StreamProcessor::new(transform(setup.transform), sink, setup.config).unwrap();
    if let Some(script) = setup.outlet {
        let kept = Arc::clone(&kept);
        processor = processor.with_dead_letters(ScriptedOutlet { script, kept });
    }
    let sources: Vec<_> = setup
        .sources
        .into_iter()
        .map(|(inputs, tail)| harness.source(inputs, tail))
        .collect();
    let started = Instant::now();
    let report = end(processor.start(sources), how, drain).await;
    let elapsed = started.elapsed();
    let accepted = accepted.lock().unwrap().clone();
    let kept = kept.lock().unwrap().clone();
    let accounts = account(&report, &harness, &accepted, &kept);
    Outcome {
        report,
        offered: harness.offered().into_iter().collect(),
        accounts,
        elapsed,
    }
}
