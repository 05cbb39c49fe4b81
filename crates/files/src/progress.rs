//! How far a file is done: the lines in flight, their acknowledgements,
//! and the watermark a checkpoint may record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use sluice_processor::{Acknowledge, Resolution};

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

/// How many lines were resolved, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Resolutions {
    /// Delivered.
    pub delivered: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Handed back (or their acknowledgement dropped unresolved).
    pub not_processed: u64,
    /// Blank lines, skipped and so resolved as they were read.
    pub skipped: u64,
}

/// The progress of one file: which lines are in flight and how far every
/// line is done. Clones share the same state.
///
/// The source [`track`](Self::track)s each line it yields, in file order,
/// and attaches the returned [`LineTicket`] to the line's acknowledgement.
/// The *watermark* is the offset below which every line is resolved for
/// good: delivered or dead-lettered. A line resolved
/// [`NotProcessed`](Resolution::NotProcessed) (handed back, or its
/// acknowledgement dropped) is not done: the watermark never passes it,
/// so a restart from the checkpoint reads it again. Blank lines are
/// resolved as they are read ([`skip`](Self::skip)).
///
/// Memory is bounded by the lines in flight: one map entry per line
/// tracked and not yet resolved.
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
    start: Position,
    /// Just past the last line read.
    read: Position,
    /// Lines in flight: offset → line number.
    pending: BTreeMap<u64, u64>,
    /// The first line resolved not processed: the watermark stops there.
    blocked: Option<Position>,
    /// The file's first bytes (at most [`FINGERPRINT_BYTES`]), as read.
    prefix: Vec<u8>,
    resolutions: Resolutions,
    end: Option<SourceEnd>,
}

impl State {
    fn watermark(&self) -> Position {
        let mut mark = self.read;
        if let Some((&offset, &line_number)) = self.pending.first_key_value() {
            mark = mark.min(Position {
                offset,
                lines: line_number.saturating_sub(1),
            });
        }
        if let Some(blocked) = self.blocked {
            mark = mark.min(blocked);
        }
        mark
    }
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
                start,
                read: start,
                pending: BTreeMap::new(),
                blocked: None,
                prefix,
                resolutions: Resolutions::default(),
                end: None,
            }),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file, as checkpoints name it.
    pub fn file(&self) -> &Path {
        &self.0.file
    }

    /// Where reading started.
    pub fn start(&self) -> Position {
        self.state().start
    }

    /// Just past the last line read so far.
    pub fn read(&self) -> Position {
        self.state().read
    }

    /// Line `line_number`, at `offset..end`, is in flight. Lines must be
    /// tracked (or [skipped](Self::skip)) in file order. Its fate must be
    /// told to the returned ticket, typically through
    /// `Ack::new(ticket)`.
    pub fn track(&self, offset: u64, end: u64, line_number: u64) -> LineTicket {
        let mut state = self.state();
        state.pending.insert(offset, line_number);
        state.read = Position {
            offset: end,
            lines: line_number,
        };
        LineTicket {
            progress: Some(self.clone()),
            offset,
        }
    }

    /// Line `line_number`, ending at `end`, was read and needs no
    /// delivery (a blank line): it is done at once.
    pub fn skip(&self, end: u64, line_number: u64) {
        let mut state = self.state();
        state.read = Position {
            offset: end,
            lines: line_number,
        };
        state.resolutions.skipped += 1;
    }

    /// The offset below which every line is done (delivered, dead-lettered
    /// or skipped), with the number of lines before it. Never decreases.
    pub fn watermark(&self) -> Position {
        self.state().watermark()
    }

    /// The first line resolved not processed, if any: the watermark will
    /// not pass it in this run.
    pub fn blocked_at(&self) -> Option<Position> {
        self.state().blocked
    }

    /// How many lines are tracked and not yet resolved.
    pub fn in_flight(&self) -> usize {
        self.state().pending.len()
    }

    /// How many lines were resolved, and how.
    pub fn resolutions(&self) -> Resolutions {
        self.state().resolutions
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
            let mark = state.watermark();
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

    fn resolve(&self, offset: u64, resolution: Resolution<'_>) {
        let mut state = self.state();
        let Some(line_number) = state.pending.remove(&offset) else {
            return;
        };
        match resolution {
            Resolution::Delivered => state.resolutions.delivered += 1,
            Resolution::DeadLettered(_) => state.resolutions.dead_lettered += 1,
            Resolution::NotProcessed => {
                state.resolutions.not_processed += 1;
                let here = Position {
                    offset,
                    lines: line_number.saturating_sub(1),
                };
                state.blocked = Some(state.blocked.map_or(here, |blocked| blocked.min(here)));
            }
        }
    }
}

/// The acknowledgement receiver of one tracked line: tells its
/// [`Progress`] the line's fate. Dropped untold, it tells
/// [`NotProcessed`](Resolution::NotProcessed).
#[derive(Debug)]
pub struct LineTicket {
    progress: Option<Progress>,
    offset: u64,
}

impl LineTicket {
    /// The offset of the line.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl Acknowledge for LineTicket {
    fn acknowledge(mut self: Box<Self>, resolution: Resolution<'_>) {
        if let Some(progress) = self.progress.take() {
            progress.resolve(self.offset, resolution);
        }
    }
}

impl Drop for LineTicket {
    fn drop(&mut self) {
        if let Some(progress) = self.progress.take() {
            progress.resolve(self.offset, Resolution::NotProcessed);
        }
    }
}
