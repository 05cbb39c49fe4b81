//! Shared fixtures: a sink that keeps what it is sent, a processor that
//! delivers every line, and file helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use sluice_files::{LineSource, Position};
use sluice_processor::{
    BuiltSource, Context, DeliveryOrder, Envelope, Finished, Incoming, ProcessorConfig, RateLimit,
    RawRecord, Rejected, Report, SendError, Sink, SourceContext, StreamProcessor, Transformed,
};

/// Keeps every record it is sent, in order.
pub struct Collect<R>(pub Arc<Mutex<Vec<Envelope<R>>>>);

impl<R> Clone for Collect<R> {
    fn clone(&self) -> Self {
        Collect(Arc::clone(&self.0))
    }
}

impl<R> Default for Collect<R> {
    fn default() -> Self {
        Collect(Arc::default())
    }
}

impl<R: Clone> Collect<R> {
    pub fn records(&self) -> Vec<R> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.record.clone())
            .collect()
    }
}

#[async_trait]
impl<R: Clone + Send + Sync + 'static> Sink<R> for Collect<R> {
    async fn send(&self, batch: &[Envelope<R>]) -> Result<(), SendError> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

/// A processor configuration for tests: no rate limit, a short drain.
pub fn config() -> ProcessorConfig {
    ProcessorConfig {
        rate_limit: RateLimit::Unlimited,
        drain_deadline: Duration::from_millis(200),
        ..ProcessorConfig::default()
    }
}

/// The transform that sends each line as it is, at its position.
#[allow(clippy::result_large_err)]
pub fn keep(
    line: RawRecord,
    _: &mut Context,
) -> Result<Transformed<RawRecord>, Rejected<RawRecord>> {
    Ok(Transformed::new(line.position, line))
}

/// Runs a processor delivering every line of `source`; returns the lines
/// delivered, in order, and the report.
pub async fn deliver(
    source: impl Stream<Item = Incoming<RawRecord>> + Send + 'static,
) -> (Vec<RawRecord>, Report<RawRecord>) {
    let sink = Collect::default();
    let processor = StreamProcessor::new(keep, sink.clone(), config()).unwrap();
    let report = processor.start([source]).finish().await;
    assert!(report.is_conserved(), "{}", report.conservation());
    (sink.records(), report)
}

/// What a pipeline tells the `files` connector: `inputs`, and
/// `checkpoint`.
pub fn context<S: AsRef<str>>(inputs: &[S], checkpoint: Option<&Path>) -> SourceContext {
    SourceContext {
        inputs: inputs
            .iter()
            .map(|input| input.as_ref().to_owned())
            .collect(),
        checkpoint: checkpoint.map(Path::to_owned),
        queue_capacity: 100,
        ordering: DeliveryOrder::Partition,
        progress: sluice_processor::InputProgress::default(),
    }
}

/// Delivers every record of a built `source` and finishes it; returns the
/// records delivered, sorted by stream and line, and what the finish
/// returned.
pub async fn run_built(source: BuiltSource) -> (Vec<RawRecord>, Finished) {
    let sink = Collect::default();
    let processor = StreamProcessor::new(keep, sink.clone(), config()).unwrap();
    let report = processor.start(source.streams).finish().await;
    assert!(report.is_conserved(), "{}", report.conservation());
    let finished = source.finish.finish().await.unwrap();
    let mut records = sink.records();
    records.sort_by_key(|record| record.position);
    (records, finished)
}

/// `(line number, text)` of each line.
pub fn numbered(lines: &[RawRecord]) -> Vec<(u64, String)> {
    lines
        .iter()
        .map(|l| (l.position.sequence, l.text.clone()))
        .collect()
}

/// Pulls every record of a file's `source`, each with the position just
/// past it, as its progress says once the record is yielded: its end and
/// line number.
pub async fn pull_with_ends(mut source: LineSource) -> Vec<(RawRecord, Position)> {
    let progress = source.progress().cloned().unwrap();
    let mut pulled = Vec::new();
    while let Some(incoming) = source.next().await {
        pulled.push((incoming.payload, progress.read()));
    }
    pulled
}

/// `(line number, offset just past the line, text)` of each record pulled.
pub fn ends(pulled: &[(RawRecord, Position)]) -> Vec<(u64, u64, String)> {
    pulled
        .iter()
        .map(|(record, after)| {
            assert_eq!(after.lines, record.position.sequence);
            (record.position.sequence, after.offset, record.text.clone())
        })
        .collect()
}

/// Appends `text` to the file at `path`.
pub fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Waits (real time, at most 5 s) until `done` holds.
pub async fn eventually(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
