//! How far a file is done: the lines in flight, their acknowledgements,
//! and the watermark a checkpoint may record.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use sluice_processor::{InputGauge, Resolution, Resolutions, Watermark};

use crate::checkpoint::{Checkpoint, FINGERPRINT_BYTES, FileId, FileIdentity};
use crate::lock::CheckpointLock;
use crate::resolved::{Span, Spans};

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

/// The progress of one input path: which of its lines are in flight and
/// how far every line is done. Clones share the same state.
///
/// A [`Watermark`] over [`Position`]s per file read at the path: the
/// source [`track`](Self::track)s each line it yields, in file order, and
/// attaches the returned [`LineTicket`] to the line's acknowledgement.
/// The *watermark* is the position below which every line is resolved for
/// good: delivered or dead-lettered. A line resolved
/// [`NotProcessed`](Resolution::NotProcessed) (handed back, or its
/// acknowledgement dropped) is not done: the watermark never passes it,
/// so a restart from the checkpoint reads it again. Blank lines are
/// resolved as they are read ([`skip`](Self::skip)).
///
/// The lines resolved for good past the watermark are kept too, as spans
/// of lines (adjacent lines merged), and saved in the checkpoint
/// ([`Checkpoint::resolved`]): a restart skips them, so that neither a
/// delivered line nor a dead-lettered one (nor its dead letter) is sent
/// again. A resumed file starts with the spans its checkpoint recorded;
/// the lines it skips for them count as
/// [`skipped`](sluice_processor::Resolutions::skipped).
///
/// A followed path may hold several files over time (it is rotated): each
/// has its own watermark and its own entry in the
/// [`checkpoint`](Self::checkpoint) until all its lines are done. The
/// positions this type reports ([`watermark`](Self::watermark),
/// [`read`](Self::read), ...) are those of the file being read;
/// [`resolutions`](Self::resolutions) and [`in_flight`](Self::in_flight)
/// count every file.
///
/// Memory is bounded by the lines in flight (and the spans between
/// them, as many as the lines in flight or handed back), and each file's first
/// [`FINGERPRINT_BYTES`] bytes kept for its checkpoint's fingerprint.
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
    path: PathBuf,
    state: Mutex<State>,
    /// Told when the checkpoint changes (a line resolved, a file added or
    /// done), for the [`Checkpointer`](crate::Checkpointer).
    changed: tokio::sync::Notify,
    /// The checkpoint's lock, held until the final save
    /// ([`Progress::release`]) or as long as the progress lives.
    lock: Mutex<Option<CheckpointLock>>,
    /// Told of each checkpoint saved, for the metrics.
    gauge: Option<Arc<InputGauge>>,
}

#[derive(Debug)]
struct State {
    /// The files read or to read at the path, oldest first, none done
    /// but the one being read and those after it.
    files: Vec<File>,
    /// The file being read; those before it were read to their end.
    reading: usize,
    /// The key of the next file.
    next_key: u64,
    /// The resolutions of the files done and forgotten.
    retired: Resolutions,
    end: Option<SourceEnd>,
}

/// One file read at the path.
#[derive(Debug)]
struct File {
    /// Names the file for its tickets.
    key: u64,
    marks: Watermark<Position>,
    /// The lines resolved for good past the watermark (and, resumed, those
    /// the checkpoint recorded, not read again).
    done: Spans,
    /// The file's first bytes (at most [`FINGERPRINT_BYTES`]) its
    /// fingerprint covers.
    prefix: Vec<u8>,
    /// Whether `prefix` is final: a file empty when opened gets its bytes
    /// as they are read, until its first line is tracked.
    sealed: bool,
    id: Option<FileId>,
    sequence_base: u64,
    /// The number of the last line read (a last line without terminator
    /// included, which the watermark does not pass).
    numbered: u64,
    /// Its bytes were lost (truncated) before it was read to its end: no
    /// checkpoint can resume it.
    lost: bool,
}

/// Where reading a file starts: what a [`Progress`] is made of.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileStart {
    pub(crate) start: Position,
    /// Its first bytes its fingerprint covers (at most
    /// [`FINGERPRINT_BYTES`]); when empty, those read until its first line.
    pub(crate) prefix: Vec<u8>,
    pub(crate) id: Option<FileId>,
    pub(crate) sequence_base: u64,
    /// The lines past `start` resolved in an earlier run.
    pub(crate) resolved: Vec<Span>,
}

impl State {
    fn reading(&self) -> &File {
        &self.files[self.reading]
    }

    fn reading_mut(&mut self) -> &mut File {
        &mut self.files[self.reading]
    }

    fn push(&mut self, start: FileStart) {
        self.files.push(File {
            key: self.next_key,
            marks: Watermark::new(start.start),
            done: Spans::of(&start.resolved),
            sealed: !start.prefix.is_empty(),
            prefix: start.prefix,
            id: start.id,
            sequence_base: start.sequence_base,
            numbered: start.start.lines,
            lost: false,
        });
        self.next_key += 1;
    }

    /// Forgets the files read to their end whose lines are all done (or
    /// resolved, for a file whose bytes were lost).
    fn retire(&mut self) {
        let reading = self.reading;
        let mut kept = Vec::with_capacity(self.files.len());
        for (index, file) in std::mem::take(&mut self.files).into_iter().enumerate() {
            let done = if file.lost {
                file.marks.in_flight() == 0
            } else {
                file.marks.mark() == file.marks.read()
            };
            if index < reading && done {
                add(&mut self.retired, file.marks.resolutions());
                self.reading -= 1;
            } else {
                kept.push(file);
            }
        }
        self.files = kept;
    }
}

fn add(total: &mut Resolutions, more: Resolutions) {
    total.delivered += more.delivered;
    total.dead_lettered += more.dead_lettered;
    total.not_processed += more.not_processed;
    total.skipped += more.skipped;
}

impl Progress {
    /// The progress of the file at `path` (its canonical path, recorded in
    /// checkpoints), read from `start` on.
    ///
    /// Checkpoints of a `Progress` made here fingerprint no bytes of the
    /// file (it has none of them) and record no file identity; those of a
    /// [`LineSource`](crate::LineSource) do.
    pub fn new(path: impl Into<PathBuf>, start: Position) -> Progress {
        Progress::of_files(
            path.into(),
            vec![FileStart {
                start,
                ..FileStart::default()
            }],
            None,
            None,
        )
    }

    /// The progress of the files at `path`, oldest first (at least one),
    /// reading the first; holding `lock` (the checkpoint's) as long as a
    /// clone of it lives.
    pub(crate) fn of_files(
        path: PathBuf,
        files: Vec<FileStart>,
        lock: Option<CheckpointLock>,
        gauge: Option<Arc<InputGauge>>,
    ) -> Progress {
        let mut state = State {
            files: Vec::with_capacity(files.len()),
            reading: 0,
            next_key: 0,
            retired: Resolutions::default(),
            end: None,
        };
        for file in files {
            state.push(file);
        }
        if state.files.is_empty() {
            state.push(FileStart::default());
        }
        Progress(Arc::new(Inner {
            path,
            state: Mutex::new(state),
            changed: tokio::sync::Notify::new(),
            lock: Mutex::new(lock),
            gauge,
        }))
    }

    /// Tells the metrics a checkpoint of this path was saved at `offset`.
    pub(crate) fn checkpointed(&self, offset: u64) {
        if let Some(gauge) = &self.0.gauge {
            gauge.checkpointed(offset);
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every method leaves the state consistent: a panic elsewhere
        // while the lock was held left nothing half done.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Releases the checkpoint's lock (if it holds one): its final
    /// checkpoint is saved, another run may take it.
    pub(crate) fn release(&self) {
        let lock = self
            .0
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(lock);
    }

    /// The path, as checkpoints name it.
    pub fn file(&self) -> &Path {
        &self.0.path
    }

    /// Where reading the file being read started.
    pub fn start(&self) -> Position {
        self.state().reading().marks.start()
    }

    /// Just past the last line read so far in the file being read.
    pub fn read(&self) -> Position {
        self.state().reading().marks.read()
    }

    /// Line `line_number` of the file being read, at `offset..end`, is in
    /// flight. Lines must be tracked (or [skipped](Self::skip)) in file
    /// order. Its fate must be told to the returned ticket, typically
    /// through `Ack::new(ticket)`.
    pub fn track(&self, offset: u64, end: u64, line_number: u64) -> LineTicket {
        let at = Position {
            offset,
            lines: line_number.saturating_sub(1),
        };
        let next = Position {
            offset: end,
            lines: line_number,
        };
        self.track_line(at, next, next)
    }

    /// The line `at..end` of the file being read is in flight; the
    /// watermark may pass it up to `next` once it is done (`at` for a
    /// last line without terminator, `end` otherwise).
    pub(crate) fn track_line(&self, at: Position, next: Position, end: Position) -> LineTicket {
        let mut state = self.state();
        let file = state.reading_mut();
        file.marks.track(at, next);
        file.numbered = file.numbered.max(end.lines);
        file.sealed = true;
        LineTicket::new(self.clone(), file.key, at, end)
    }

    /// Line `line_number` of the file being read, ending at `end`, was
    /// read and needs no delivery (a blank line): it is done at once.
    pub fn skip(&self, end: u64, line_number: u64) {
        let next = Position {
            offset: end,
            lines: line_number,
        };
        let mut state = self.state();
        let file = state.reading_mut();
        let at = file.marks.read();
        file.marks.skip(next);
        file.numbered = file.numbered.max(next.lines);
        file.done.insert(at, next);
        drop(state);
        self.0.changed.notify_one();
    }

    /// Whether the line `at..end` of the file being read was resolved in
    /// an earlier run (its checkpoint recorded it): it is then done at
    /// once (counted as skipped), up to `next`, and is not to be yielded.
    pub(crate) fn resolved_before(&self, at: Position, next: Position, end: Position) -> bool {
        let mut state = self.state();
        let file = state.reading_mut();
        if !file.done.covers(at, end) {
            return false;
        }
        file.marks.skip(next);
        file.numbered = file.numbered.max(end.lines);
        true
    }

    /// Waits until the checkpoint may have changed since the last call
    /// (at once if it did meanwhile).
    ///
    /// # Cancel safety
    /// Cancel safe: a change not waited for is kept for the next call.
    pub(crate) async fn changed(&self) {
        self.0.changed.notified().await;
    }

    /// The position of the file being read below which every line is done
    /// (delivered, dead-lettered or skipped). Never decreases.
    pub fn watermark(&self) -> Position {
        self.state().reading().marks.mark()
    }

    /// The first line of the file being read resolved not processed, if
    /// any: the watermark will not pass it in this run.
    pub fn blocked_at(&self) -> Option<Position> {
        self.state().reading().marks.blocked()
    }

    /// How many lines are tracked and not yet resolved, in every file.
    pub fn in_flight(&self) -> usize {
        let state = self.state();
        state.files.iter().map(|file| file.marks.in_flight()).sum()
    }

    /// How many lines were resolved, and how (blank lines count as
    /// skipped), in every file.
    pub fn resolutions(&self) -> Resolutions {
        let state = self.state();
        let mut total = state.retired;
        for file in &state.files {
            add(&mut total, file.marks.resolutions());
        }
        total
    }

    /// How the source stopped reading; `None` while it reads (or if it was
    /// dropped before the end of its input).
    pub fn end(&self) -> Option<SourceEnd> {
        self.state().end.clone()
    }

    pub(crate) fn ended(&self, end: SourceEnd) {
        self.state().end = Some(end);
    }

    /// Added to the line numbers of the file being read to give its
    /// records' sequences.
    pub(crate) fn sequence_base(&self) -> u64 {
        self.state().reading().sequence_base
    }

    /// Reading goes on with the next file this progress was made of.
    pub(crate) fn next_file(&self) {
        let mut state = self.state();
        state.reading = (state.reading + 1).min(state.files.len() - 1);
        state.retire();
        drop(state);
        self.0.changed.notify_one();
    }

    /// Reading goes on with a new file at the path, from its start; its
    /// records are numbered after those of the file being read. When
    /// `lost`, the file being read lost bytes it had not been read to
    /// (truncated): its checkpoint is dropped.
    pub(crate) fn new_file(&self, id: Option<FileId>, head: Vec<u8>, lost: bool) {
        let mut state = self.state();
        let before = state.reading_mut();
        before.lost = lost;
        let sequence_base = before.sequence_base + before.numbered;
        state.push(FileStart {
            id,
            sequence_base,
            prefix: head,
            ..FileStart::default()
        });
        state.reading = state.files.len() - 1;
        state.retire();
        drop(state);
        self.0.changed.notify_one();
    }

    /// Keeps the first bytes of the file being read for its fingerprint:
    /// `bytes` were read at `at`.
    pub(crate) fn observe(&self, at: u64, bytes: &[u8]) {
        if at >= FINGERPRINT_BYTES as u64 {
            return;
        }
        let mut state = self.state();
        let file = state.reading_mut();
        if file.sealed {
            return;
        }
        let prefix = &mut file.prefix;
        if prefix.len() as u64 != at {
            return;
        }
        let want = FINGERPRINT_BYTES.saturating_sub(prefix.len());
        prefix.extend_from_slice(&bytes[..bytes.len().min(want)]);
    }

    /// The identity of the file being read (its fingerprint may still
    /// grow while the file, empty when opened, has no line tracked).
    pub fn identity(&self) -> FileIdentity {
        let state = self.state();
        FileIdentity::of(self.0.path.clone(), &state.reading().prefix)
    }

    /// The identity of the file whose line gave the record of sequence
    /// `sequence` (its [`RecordId::sequence`](sluice_processor::RecordId::sequence)),
    /// among the files of the path not yet done: always, for a record in
    /// flight. The line within it is `sequence` minus the file's sequence
    /// base; the pair (identity, sequence) is stable across restarts.
    pub fn identity_of(&self, sequence: u64) -> Option<FileIdentity> {
        let state = self.state();
        let file = state
            .files
            .iter()
            .rev()
            .find(|file| file.sequence_base < sequence)?;
        Some(FileIdentity::of(self.0.path.clone(), &file.prefix))
    }

    /// The checkpoint at the watermark of the newest file, holding those of
    /// the older files whose lines are not all done.
    pub fn checkpoint(&self) -> Checkpoint {
        let mut state = self.state();
        state.retire();
        let checkpoint = |file: &mut File| {
            let mark = file.marks.mark();
            file.done.prune(mark);
            let mut saved = Checkpoint::new(
                self.0.path.clone(),
                mark,
                &file.prefix,
                file.id,
                file.sequence_base,
            );
            saved.resolved = file.done.past(mark);
            saved
        };
        // Never empty; the newest file is never lost (a file is lost only
        // when a newer one is added).
        let newest = state.files.len() - 1;
        let mut saved = checkpoint(&mut state.files[newest]);
        saved.rotated = state.files[..newest]
            .iter_mut()
            .filter(|file| !file.lost)
            .map(checkpoint)
            .collect();
        saved
    }

    pub(crate) fn resolve(
        &self,
        file: u64,
        at: Position,
        end: Position,
        resolution: Resolution<'_>,
    ) {
        let mut state = self.state();
        let Some(file) = state.files.iter_mut().find(|f| f.key == file) else {
            return;
        };
        let done = !matches!(resolution, Resolution::NotProcessed);
        if file.marks.resolve(at, resolution) && done {
            file.done.insert(at, end);
            drop(state);
            self.0.changed.notify_one();
        }
    }
}

mod ticket;

pub use ticket::LineTicket;

#[cfg(test)]
mod tests;
