//! How far a file is done: the lines in flight, their acknowledgements,
//! and the watermark a checkpoint may record.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use sluice_processor::{Acknowledge, Resolution, Resolutions, Watermark};

use crate::checkpoint::{Checkpoint, FINGERPRINT_BYTES, fingerprint};

/// A place in a file: a byte offset at a line start, and how many lines
/// come before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// The byte offset.
    pub offset: u64,
    /// How many lines (blank ones included) end at or before `offset`: the
    /// line starting there is line `lines + 1`.
    pub lines: u64,
}

/// How a file source stopped reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEnd {
    /// It read the file to its end.
    Finished,
    /// Reading failed with this error; the lines before it were yielded.
    Failed(String),
}

/// The progress of one file: which lines are in flight and how far every
/// line is done. Clones share the same state.
///
/// A [`Watermark`] over [`Position`]s: the source [`track`](Self::track)s
/// each line it yields, in file order, and attaches the returned
/// [`LineTicket`] to the line's acknowledgement. The *watermark* is the
/// position below which every line is resolved for good: delivered or
/// dead-lettered. A line resolved
/// [`NotProcessed`](sluice_processor::Resolution::NotProcessed) (handed
/// back, or its acknowledgement dropped) is not done: the watermark never
/// passes it, so a restart from the checkpoint reads it again. Blank lines
/// are resolved as they are read ([`skip`](Self::skip)).
///
/// Memory is bounded by the lines in flight, and the file's first
/// [`FINGERPRINT_BYTES`] bytes kept for the checkpoint's fingerprint.
///
/// ```
/// use sluice_files::{Position, Progress};
/// use sluice_processor::{Acknowledge, Resolution};
///
/// let progress = Progress::new("/data/orders.jsonl", Position::default());
/// let first = progress.track(0, 10, 1);
/// let second = progress.track(10, 20, 2);
/// Box::new(second).acknowledge(Resolution::Delivered);
/// assert_eq!(progress.watermark().offset, 0); // line 1 is still in flight
/// Box::new(first).acknowledge(Resolution::Delivered);
/// assert_eq!(progress.watermark(), Position { offset: 20, lines: 2 });
/// ```
#[derive(Debug, Clone)]
pub struct Progress(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    file: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    marks: Watermark<Position>,
    /// The file's first bytes (at most [`FINGERPRINT_BYTES`]), as read.
    prefix: Vec<u8>,
    end: Option<SourceEnd>,
}

impl Progress {
    /// The progress of `file` (its canonical path, recorded in checkpoints),
    /// read from `start` on.
    ///
    /// Checkpoints of a `Progress` made here fingerprint no bytes of the
    /// file (it has none of them); those of a
    /// [`LineSource`](crate::LineSource) fingerprint its first bytes.
    pub fn new(file: impl Into<PathBuf>, start: Position) -> Progress {
        Progress::with_prefix(file.into(), start, Vec::new())
    }

    /// As [`new`](Self::new), knowing the file's first bytes.
    pub(crate) fn with_prefix(file: PathBuf, start: Position, prefix: Vec<u8>) -> Progress {
        Progress(Arc::new(Inner {
            file,
            state: Mutex::new(State {
                marks: Watermark::new(start),
                prefix,
                end: None,
            }),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every method leaves the state consistent: a panic elsewhere
        // while the lock was held left nothing half done.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file, as checkpoints name it.
    pub fn file(&self) -> &Path {
        &self.0.file
    }

    /// Where reading started.
    pub fn start(&self) -> Position {
        self.state().marks.start()
    }

    /// Just past the last line read so far.
    pub fn read(&self) -> Position {
        self.state().marks.read()
    }

    /// Line `line_number`, at `offset..end`, is in flight. Lines must be
    /// tracked (or [skipped](Self::skip)) in file order. Its fate must be
    /// told to the returned ticket, typically through `Ack::new(ticket)`.
    pub fn track(&self, offset: u64, end: u64, line_number: u64) -> LineTicket {
        let at = Position {
            offset,
            lines: line_number.saturating_sub(1),
        };
        let next = Position {
            offset: end,
            lines: line_number,
        };
        self.state().marks.track(at, next);
        LineTicket {
            progress: Some(self.clone()),
            at,
        }
    }

    /// Line `line_number`, ending at `end`, was read and needs no
    /// delivery (a blank line): it is done at once.
    pub fn skip(&self, end: u64, line_number: u64) {
        self.state().marks.skip(Position {
            offset: end,
            lines: line_number,
        });
    }

    /// The position below which every line is done (delivered,
    /// dead-lettered or skipped). Never decreases.
    pub fn watermark(&self) -> Position {
        self.state().marks.mark()
    }

    /// The first line resolved not processed, if any: the watermark will
    /// not pass it in this run.
    pub fn blocked_at(&self) -> Option<Position> {
        self.state().marks.blocked()
    }

    /// How many lines are tracked and not yet resolved.
    pub fn in_flight(&self) -> usize {
        self.state().marks.in_flight()
    }

    /// How many lines were resolved, and how (blank lines count as
    /// skipped).
    pub fn resolutions(&self) -> Resolutions {
        self.state().marks.resolutions()
    }

    /// How the source stopped reading; `None` while it reads (or if it was
    /// dropped before the end of the file).
    pub fn end(&self) -> Option<SourceEnd> {
        self.state().end.clone()
    }

    pub(crate) fn ended(&self, end: SourceEnd) {
        self.state().end = Some(end);
    }

    /// Keeps the file's first bytes for the fingerprint: `bytes` were read
    /// at `at`.
    pub(crate) fn observe(&self, at: u64, bytes: &[u8]) {
        if at >= FINGERPRINT_BYTES as u64 {
            return;
        }
        let mut state = self.state();
        if state.prefix.len() as u64 != at {
            return;
        }
        let want = FINGERPRINT_BYTES.saturating_sub(state.prefix.len());
        state
            .prefix
            .extend_from_slice(&bytes[..bytes.len().min(want)]);
    }

    /// The checkpoint at the watermark.
    pub fn checkpoint(&self) -> Checkpoint {
        let (mark, prefix) = {
            let state = self.state();
            let mark = state.marks.mark();
            let covered = usize::try_from(mark.offset)
                .unwrap_or(usize::MAX)
                .min(state.prefix.len());
            (mark, state.prefix[..covered].to_vec())
        };
        Checkpoint::new(
            self.0.file.clone(),
            mark,
            fingerprint(&prefix),
            prefix.len() as u64,
        )
    }

    fn resolve(&self, at: Position, resolution: Resolution<'_>) {
        self.state().marks.resolve(at, resolution);
    }
}

/// The acknowledgement receiver of one tracked line: tells its
/// [`Progress`] the line's fate. Dropped untold, it tells
/// [`NotProcessed`](Resolution::NotProcessed).
#[derive(Debug)]
pub struct LineTicket {
    progress: Option<Progress>,
    at: Position,
}

impl LineTicket {
    /// The offset of the line.
    pub fn offset(&self) -> u64 {
        self.at.offset
    }
}

impl Acknowledge for LineTicket {
    fn acknowledge(mut self: Box<Self>, resolution: Resolution<'_>) {
        if let Some(progress) = self.progress.take() {
            progress.resolve(self.at, resolution);
        }
    }
}

impl Drop for LineTicket {
    fn drop(&mut self) {
        if let Some(progress) = self.progress.take() {
            progress.resolve(self.at, Resolution::NotProcessed);
        }
    }
}
