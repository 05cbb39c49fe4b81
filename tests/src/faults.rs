//! Faulty user code for the sweep: wrappers around the simulator's source,
//! the seed profile, the simulated API and a dead-letter outlet that panic,
//! hang or answer badly at moments drawn from the scenario's seed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use sluice_models::{DataSource, ProcessedRecord, RecordKey, StreamData};
use sluice_processor::{
    Ack, Context, DeadLetter, DeadLetterSink, Envelope, Incoming, Rejected, Resolution, SendError,
    Sink, SinkError, StreamName, Transform, Transformed,
};
use sluice_profiles::seed::SeedProfile;
use sluice_sim::{IncomingSource, SimulatedApi};

/// Keeps the panic hook from printing the sweep's own injected panics
/// (thousands per sweep); any other panic prints as usual.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("injected ") {
                default(info);
            }
        }));
    });
}

/// Whether the `n`-th event of kind `salt` is faulty, for a fault drawn
/// with probability `rate` (deterministic in the scenario's seed).
fn strikes(seed: u64, salt: u64, n: u64, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let mut z =
        seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z as f64 / u64::MAX as f64) < rate
}

/// The faults of one scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// After how many records a source panics, or hangs, per source (none
    /// when `None`).
    pub source_fails_after: Option<u64>,
    /// Whether a failing source hangs (pending forever) rather than panics.
    pub source_hangs: bool,
    /// Share of records the transform panics on.
    pub transform_panics: f64,
    /// Share of calls whose sink panics before making its future.
    pub sink_panics_early: f64,
    /// Share of calls whose sink panics inside its future.
    pub sink_panics: f64,
    /// Share of calls whose sink never answers.
    pub sink_hangs: f64,
    /// Share of refusals whose Retry-After is made `Duration::MAX`.
    pub huge_retry_after: f64,
    /// Share of dead letters whose outlet panics.
    pub outlet_panics: f64,
    /// Share of dead letters whose outlet never answers.
    pub outlet_hangs: f64,
    /// Share of dead letters whose outlet answers an error.
    pub outlet_errs: f64,
}

impl Faults {
    /// Whether the sink is the bare API (so that call counts match its ledger).
    pub fn sink_is_bare(&self) -> bool {
        self.sink_panics_early == 0.0 && self.sink_panics == 0.0 && self.sink_hangs == 0.0
    }
}

/// Each record's resolutions, as its acknowledgement told them.
#[derive(Debug, Default)]
pub struct AckLog(Mutex<BTreeMap<RecordKey, Vec<&'static str>>>);

impl AckLog {
    /// The resolutions, per record.
    pub fn resolutions(&self) -> BTreeMap<RecordKey, Vec<&'static str>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn ack(self: &Arc<Self>, key: RecordKey) -> Ack {
        let log = Arc::clone(self);
        Ack::new(move |resolution: Resolution<'_>| {
            let name = match resolution {
                Resolution::Delivered => "delivered",
                Resolution::DeadLettered(_) => "dead_lettered",
                Resolution::NotProcessed => "not_processed",
            };
            log.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default()
                .push(name);
        })
    }
}

/// A simulated source whose records carry acknowledgements into `log`,
/// and that panics or hangs after `fails_after` records.
pub struct FaultySource {
    inner: IncomingSource,
    log: Arc<AckLog>,
    fails_after: Option<u64>,
    hangs: bool,
    yielded: u64,
}

impl FaultySource {
    /// Wraps `inner`.
    pub fn new(inner: IncomingSource, log: Arc<AckLog>, faults: &Faults) -> FaultySource {
        FaultySource {
            inner,
            log,
            fails_after: faults.source_fails_after,
            hangs: faults.source_hangs,
            yielded: 0,
        }
    }
}

impl Stream for FaultySource {
    type Item = Incoming<StreamData>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.fails_after.is_some_and(|after| self.yielded >= after) {
            if self.hangs {
                return Poll::Pending;
            }
            panic!("injected source panic after {} records", self.yielded);
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(incoming)) => {
                this.yielded += 1;
                let key = incoming.payload.key();
                Poll::Ready(Some(Incoming::with_ack(
                    incoming.payload,
                    this.log.ack(key),
                )))
            }
            other => other,
        }
    }
}

/// The seed profile under free stream names, panicking on some records.
pub struct FaultyProfile {
    inner: SeedProfile,
    names: [StreamName; 4],
    seed: u64,
    panic_rate: f64,
    /// The keys it panicked on.
    pub panicked: Arc<Mutex<Vec<RecordKey>>>,
}

impl FaultyProfile {
    /// Streams named `names` (by source index) instead of the source names.
    pub fn new(names: [StreamName; 4], seed: u64, faults: &Faults) -> FaultyProfile {
        FaultyProfile {
            inner: SeedProfile::new().unwrap_or_else(|e| panic!("{e}")),
            names,
            seed,
            panic_rate: faults.transform_panics,
            panicked: Arc::default(),
        }
    }

    /// The source of a stream name of this profile.
    pub fn source_of(&self, stream: StreamName) -> Option<DataSource> {
        let index = self.names.iter().position(|&name| name == stream)?;
        DataSource::ALL.get(index).copied()
    }
}

impl Transform<StreamData> for FaultyProfile {
    type Output = ProcessedRecord;

    fn transform(
        &self,
        input: StreamData,
        context: &mut Context,
    ) -> Result<Transformed<ProcessedRecord>, Rejected<ProcessedRecord>> {
        let key = input.key();
        let n = key.sequence_id
            ^ (u64::from(key.partition) << 40)
            ^ ((key.source.index() as u64) << 60);
        if strikes(self.seed, 1, n, self.panic_rate) {
            self.panicked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(key);
            panic!("injected transform panic on {key}");
        }
        let stream = self.names[key.source.index()];
        match self.inner.transform(input, context) {
            Ok(mut done) => {
                done.id.stream = stream;
                Ok(done)
            }
            Err(mut rejected) => {
                rejected.id.stream = stream;
                Err(rejected)
            }
        }
    }
}

/// The simulated API behind a sink that sometimes panics, hangs, or turns
/// a Retry-After into `Duration::MAX`.
pub struct FaultySink {
    api: Arc<SimulatedApi>,
    faults: Faults,
    seed: u64,
    calls: AtomicU64,
}

impl FaultySink {
    /// Wraps `api`.
    pub fn new(api: Arc<SimulatedApi>, faults: Faults, seed: u64) -> FaultySink {
        FaultySink {
            api,
            faults,
            seed,
            calls: AtomicU64::new(0),
        }
    }
}

impl Sink<ProcessedRecord> for FaultySink {
    fn send<'a, 'b, 'c>(
        &'a self,
        batch: &'b [Envelope<ProcessedRecord>],
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'c>>
    where
        'a: 'c,
        'b: 'c,
    {
        let n = self.calls.fetch_add(1, Relaxed);
        let faults = self.faults;
        if strikes(self.seed, 2, n, faults.sink_panics_early) {
            panic!("injected sink panic before its future, call {n}");
        }
        Box::pin(async move {
            if strikes(self.seed, 3, n, faults.sink_panics) {
                panic!("injected sink panic in its future, call {n}");
            }
            if strikes(self.seed, 4, n, faults.sink_hangs) {
                std::future::pending::<()>().await;
            }
            match self.api.send(batch).await {
                Err(SendError::Batch(SinkError::RateLimited {
                    retry_after: Some(_),
                })) if strikes(self.seed, 5, n, faults.huge_retry_after) => {
                    Err(SinkError::RateLimited {
                        retry_after: Some(Duration::MAX),
                    }
                    .into())
                }
                other => other,
            }
        })
    }
}

/// A dead-letter outlet that keeps letters, but sometimes panics, hangs or
/// fails.
pub struct FaultyOutlet {
    faults: Faults,
    seed: u64,
    letters: AtomicU64,
    /// The letters kept: the record's key and the reason's kind.
    pub kept: Mutex<Vec<(Option<RecordKey>, sluice_processor::DeadLetterReason)>>,
}

impl FaultyOutlet {
    /// An outlet with these faults.
    pub fn new(faults: Faults, seed: u64) -> FaultyOutlet {
        FaultyOutlet {
            faults,
            seed,
            letters: AtomicU64::new(0),
            kept: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl DeadLetterSink<ProcessedRecord> for FaultyOutlet {
    async fn dead_letter(&self, letter: &DeadLetter<ProcessedRecord>) -> Result<(), String> {
        let n = self.letters.fetch_add(1, Relaxed);
        if strikes(self.seed, 6, n, self.faults.outlet_panics) {
            panic!("injected outlet panic, letter {n}");
        }
        if strikes(self.seed, 7, n, self.faults.outlet_hangs) {
            std::future::pending::<()>().await;
        }
        if strikes(self.seed, 8, n, self.faults.outlet_errs) {
            return Err(format!("injected outlet error, letter {n}"));
        }
        let key = letter.record.as_ref().and_then(ProcessedRecord::key);
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key, letter.reason.clone()));
        Ok(())
    }
}
