//! How far the sources are through their inputs: bytes read against each
//! input's size, the offset last checkpointed, what a broker still holds.
//! Sources write it as they read; snapshots read it for the status line,
//! the metrics and the live page.
//!
//! Each input's figures are atomics of its own: a source updates them on
//! its hot path without a lock, and a reader sees each figure whole (the
//! figures of one input may be from instants a few records apart).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Stored in a gauge for "not known".
const UNKNOWN: u64 = u64::MAX;

/// The inputs of a run and how far each is read: a registry the sources
/// add their inputs to ([`input`](Self::input)), shared by cloning.
///
/// ```
/// use sluice_processor::InputProgress;
///
/// let progress = InputProgress::default();
/// let orders = progress.input("orders.ndjson");
/// orders.set_size(Some(1_000));
/// orders.set_read(250);
/// let inputs = progress.snapshot();
/// assert_eq!(inputs[0].bytes_read, 250);
/// assert_eq!(inputs[0].size_bytes, Some(1_000));
/// ```
#[derive(Debug, Clone, Default)]
pub struct InputProgress(Arc<Mutex<Vec<Arc<InputGauge>>>>);

/// The same registry, not equal figures.
impl PartialEq for InputProgress {
    fn eq(&self, other: &InputProgress) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for InputProgress {}

impl InputProgress {
    /// Adds an input named `name` (a path as given, `-`, a stream's name)
    /// and returns its gauge, for its source to update.
    pub fn input(&self, name: impl Into<String>) -> Arc<InputGauge> {
        let gauge = Arc::new(InputGauge {
            name: name.into(),
            bytes_read: AtomicU64::new(0),
            size_bytes: AtomicU64::new(UNKNOWN),
            checkpoint_offset: AtomicU64::new(UNKNOWN),
            checkpoint_written_ms: AtomicU64::new(UNKNOWN),
            pending: AtomicU64::new(UNKNOWN),
        });
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&gauge));
        gauge
    }

    /// Every input's figures now, in the order they were added.
    pub fn snapshot(&self) -> Vec<InputSnapshot> {
        let gauges = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        gauges.iter().map(|gauge| gauge.snapshot()).collect()
    }
}

/// One input's figures, updated by its source.
#[derive(Debug)]
pub struct InputGauge {
    name: String,
    bytes_read: AtomicU64,
    size_bytes: AtomicU64,
    checkpoint_offset: AtomicU64,
    checkpoint_written_ms: AtomicU64,
    pending: AtomicU64,
}

impl InputGauge {
    /// The bytes read so far: the offset just past the last record read.
    pub fn set_read(&self, bytes: u64) {
        self.bytes_read.store(bytes, Relaxed);
    }

    /// The input's size in the same unit as the bytes read, when known
    /// (not for stdin, nor for a compressed file, whose size is of its
    /// compressed bytes).
    pub fn set_size(&self, bytes: Option<u64>) {
        self.size_bytes.store(bytes.unwrap_or(UNKNOWN), Relaxed);
    }

    /// A checkpoint saved at `offset`, now.
    pub fn checkpointed(&self, offset: u64) {
        // The wall clock: a time a user compares with other clocks.
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(0));
        self.checkpoint_offset.store(offset, Relaxed);
        self.checkpoint_written_ms.store(now_ms, Relaxed);
    }

    /// Records the broker still holds for this input (a JetStream
    /// consumer's pending count).
    pub fn set_pending(&self, records: u64) {
        self.pending.store(records, Relaxed);
    }

    fn snapshot(&self) -> InputSnapshot {
        let known = |gauge: &AtomicU64| Some(gauge.load(Relaxed)).filter(|&v| v != UNKNOWN);
        InputSnapshot {
            name: self.name.clone(),
            bytes_read: self.bytes_read.load(Relaxed),
            size_bytes: known(&self.size_bytes),
            checkpoint_offset: known(&self.checkpoint_offset),
            checkpoint_written_unix_seconds: known(&self.checkpoint_written_ms)
                .map(|ms| ms as f64 / 1_000.0),
            pending: known(&self.pending),
        }
    }
}

/// One input's figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSnapshot {
    /// The input, as its source names it.
    pub name: String,
    /// Bytes read so far.
    pub bytes_read: u64,
    /// Its size, when known.
    pub size_bytes: Option<u64>,
    /// The offset of the last checkpoint saved, if any.
    pub checkpoint_offset: Option<u64>,
    /// When that checkpoint was saved, seconds since the Unix epoch.
    pub checkpoint_written_unix_seconds: Option<f64>,
    /// Records the broker still holds, for a broker's input.
    pub pending: Option<u64>,
}

impl InputSnapshot {
    /// The share of the input read, 0 to 1, when its size is known.
    pub fn share_read(&self) -> Option<f64> {
        let size = self.size_bytes?;
        Some(if size == 0 {
            1.0
        } else {
            (self.bytes_read as f64 / size as f64).min(1.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_figures_read_as_none_and_known_ones_as_set() {
        let progress = InputProgress::default();
        let stdin = progress.input("-");
        let file = progress.input("a.ndjson");
        stdin.set_read(7);
        file.set_size(Some(0));
        file.checkpointed(42);
        file.set_pending(3);
        let [stdin_now, file_now] = progress.snapshot().try_into().unwrap();
        assert_eq!(
            stdin_now,
            InputSnapshot {
                name: "-".into(),
                bytes_read: 7,
                size_bytes: None,
                checkpoint_offset: None,
                checkpoint_written_unix_seconds: None,
                pending: None,
            }
        );
        assert_eq!(stdin_now.share_read(), None);
        assert_eq!(file_now.share_read(), Some(1.0), "an empty file is read");
        assert_eq!(file_now.checkpoint_offset, Some(42));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let written = file_now.checkpoint_written_unix_seconds.unwrap();
        assert!((now - written).abs() < 60.0, "{written} is not now ({now})");
        assert_eq!(file_now.pending, Some(3));
        file.set_size(None);
        assert_eq!(progress.snapshot()[1].size_bytes, None);
    }

    #[test]
    fn registries_are_equal_when_they_are_the_same_one() {
        let progress = InputProgress::default();
        assert_eq!(progress, progress.clone());
        assert_ne!(progress, InputProgress::default());
    }

    #[test]
    fn the_share_read_is_capped_at_one() {
        let progress = InputProgress::default();
        let file = progress.input("grew.ndjson");
        file.set_size(Some(200));
        file.set_read(50);
        assert_eq!(progress.snapshot()[0].share_read(), Some(0.25));
        file.set_read(300);
        assert_eq!(progress.snapshot()[0].share_read(), Some(1.0));
    }
}
