//! Reading a source's lines between two pulls: one file after another,
//! following the file at the path as it grows and is rotated.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::Stream;
use std::sync::Arc;

use sluice_processor::{
    Ack, Incoming, InputGauge, Origin, RawRecord, RecordId, RecordKey, StreamName,
};

use crate::checkpoint::{FileId, FileIdentity};
use crate::line::{LineReader, ReadLine};
use crate::open::{Bytes, OpenFile};
use crate::progress::{Position, Progress, SourceEnd};
use crate::resume::Planned;
use crate::source::SourceError;

/// The state of a source between two pulls.
pub(crate) struct Reading {
    pub(crate) lines: LineReader<Bytes>,
    /// Told the offset past each line read.
    pub(crate) gauge: Arc<InputGauge>,
    pub(crate) origin: Origin,
    pub(crate) stream: StreamName,
    /// Added to line numbers to give sequences.
    pub(crate) sequence_base: u64,
    /// The files of a path; `None` for a reader (stdin), whose end is
    /// final.
    pub(crate) files: Option<Files>,
}

/// What a source reading a path knows of it.
pub(crate) struct Files {
    pub(crate) progress: Progress,
    /// The path, canonical.
    pub(crate) path: PathBuf,
    /// The file being read.
    pub(crate) id: Option<FileId>,
    /// The files to read after it. When following, the file being read is
    /// the one at the path, as last seen, while none is queued.
    pub(crate) queued: VecDeque<Queued>,
    /// How often to look at a followed file; `None` when not following.
    pub(crate) follow: Option<Duration>,
    pub(crate) max_line_bytes: usize,
    pub(crate) buffer_bytes: usize,
    /// A followed file rotated away, read to its end: since when, and at
    /// which offset, it has had nothing new.
    pub(crate) quiet: Option<(tokio::time::Instant, u64)>,
    /// The file's identity (canonical path, fingerprint) as its records'
    /// keys start, known from its first record on.
    pub(crate) identity: Option<FileIdentity>,
}

/// A file to read after the one being read.
pub(crate) enum Queued {
    /// Recorded by the checkpoint, positioned, in the progress already.
    Planned(Planned),
    /// New at the path, from its start.
    Fresh(OpenFile),
}

/// What a followed file at its end has become.
enum Followed {
    /// The same file (or none at the path): it may grow, look again later.
    Same,
    /// Another file is at the path: read this one to its end, then that
    /// one.
    Rotated(OpenFile),
    /// The same file, shorter than what was read: read it again from its
    /// start.
    Truncated(OpenFile),
}

impl Reading {
    pub(crate) fn into_stream(self) -> impl Stream<Item = Incoming<RawRecord>> + Send + 'static {
        futures::stream::unfold(Some(self), |reading| async move {
            let mut reading = reading?;
            let line = reading.next().await?;
            Some((line, Some(reading)))
        })
    }

    /// The next line to yield; `None` at the end of the input or on an
    /// error.
    async fn next(&mut self) -> Option<Incoming<RawRecord>> {
        loop {
            let progress = self.files.as_ref().map(|files| &files.progress);
            let read = self
                .lines
                .next(|at, bytes| {
                    if let Some(progress) = progress {
                        progress.observe(at, bytes);
                    }
                })
                .await;
            self.gauge.set_read(self.lines.offset());
            match read {
                Ok(Some(line)) => match self.record(line) {
                    Some(record) => return Some(record),
                    None => continue,
                },
                Ok(None) => {}
                Err(error) => return self.fail(&error),
            }
            let Some(files) = &mut self.files else {
                // A reader's end is final.
                let line = self.lines.take_partial()?;
                match self.record(line) {
                    Some(record) => return Some(record),
                    None => continue,
                }
            };
            if files.complete() {
                if files.draining(self.lines.offset()) {
                    tokio::time::sleep(files.poll()).await;
                    continue;
                }
                if let Some(line) = self.lines.take_partial() {
                    match self.record(line) {
                        Some(record) => return Some(record),
                        None => continue,
                    }
                }
                if !self.next_file() {
                    if let Some(files) = &self.files {
                        files.progress.ended(SourceEnd::Finished);
                    }
                    return None;
                }
                continue;
            }
            let followed = match look(&files.path, files.id, self.lines.offset()).await {
                Ok(followed) => followed,
                Err(error) => return self.fail(&error),
            };
            match followed {
                Followed::Same => tokio::time::sleep(files.poll()).await,
                // Read the old file to its end (its last line included),
                // then this one.
                Followed::Rotated(file) => files.queued.push_back(Queued::Fresh(file)),
                Followed::Truncated(file) => {
                    tracing::warn!(
                        file = %files.path.display(),
                        "the file was truncated: reading it again from its start"
                    );
                    self.begin(file, true);
                }
            }
        }
    }

    /// Goes on with the next file: `false` when there is none.
    fn next_file(&mut self) -> bool {
        let Some(files) = self.files.as_mut() else {
            return false;
        };
        files.quiet = None;
        match files.queued.pop_front() {
            Some(Queued::Planned(planned)) => {
                files.progress.next_file();
                files.id = planned.start.id;
                let start = planned.start.start;
                self.sequence_base = planned.start.sequence_base;
                self.lines = LineReader::new(
                    planned.bytes,
                    files.max_line_bytes,
                    start.offset,
                    start.lines,
                );
                true
            }
            Some(Queued::Fresh(file)) => {
                self.begin(file, false);
                true
            }
            None => false,
        }
    }

    /// Reads `file` from its start, after the file being read (which lost
    /// bytes it had not read, when `lost`).
    fn begin(&mut self, mut file: OpenFile, lost: bool) {
        let Some(files) = &mut self.files else {
            return;
        };
        files
            .progress
            .new_file(file.id, std::mem::take(&mut file.head), lost);
        files.id = file.id;
        files.identity = None;
        self.sequence_base = files.progress.sequence_base();
        let bytes = file.bytes(files.buffer_bytes);
        self.lines = LineReader::new(bytes, files.max_line_bytes, 0, 0);
    }

    /// Reports `error`, which ends the stream: returns `None`.
    fn fail<T>(&self, error: &dyn std::fmt::Display) -> Option<T> {
        match &self.files {
            Some(files) => {
                tracing::error!(file = %files.path.display(), %error, "reading failed");
                files.progress.ended(SourceEnd::Failed(error.to_string()));
            }
            None => tracing::error!(stream = %self.stream, %error, "reading failed"),
        }
        None
    }

    /// The record of `line`, tracked in the progress; `None` for a blank
    /// line (done at once).
    fn record(&mut self, line: ReadLine) -> Option<Incoming<RawRecord>> {
        let progress = self.files.as_ref().map(|files| &files.progress);
        if line.blank && line.unterminated {
            // Nothing to deliver, and nothing the checkpoint may pass: a
            // writer may still complete it.
            return None;
        }
        if line.blank {
            if let Some(progress) = progress {
                progress.skip(line.end, line.line_number);
            }
            return None;
        }
        let at = Position {
            offset: line.offset,
            lines: line.line_number.saturating_sub(1),
        };
        let end = Position {
            offset: line.end,
            lines: line.line_number,
        };
        // A line without its newline is delivered (it is the input's last,
        // as it stands), but the watermark does not pass its start: a
        // writer that completes it later has it read again, whole. Its
        // span is kept as resolved past the watermark, so that, still
        // incomplete, it is not read again.
        let next = if line.unterminated { at } else { end };
        if let Some(progress) = progress
            && progress.resolved_before(at, next, end)
        {
            // Delivered or dead-lettered by an earlier run: not again.
            return None;
        }
        let ack = progress.map(|progress| Ack::new(progress.track_line(at, next, end)));
        let key = self.key(&line);
        let payload = RawRecord {
            position: RecordId {
                stream: self.stream,
                partition: 0,
                sequence: self.sequence_base + line.line_number,
            },
            origin: self.origin.clone(),
            cut: line.truncated.then_some(line.end - line.offset),
            text: line.text,
            key: Some(key),
        };
        Some(Incoming { payload, ack })
    }

    /// The key of `line`: unique to it and the same on every run.
    ///
    /// A file's line is named by the file's identity (canonical path and
    /// the fingerprint of its first bytes, fixed once its first line is
    /// tracked) and its line number: two files of one name in two
    /// folders, or a file rewritten with other content, give other keys.
    /// A line of stdin, which has no identity across runs, is named by its
    /// number and its content: the same input piped again gives the same
    /// keys, other input other keys.
    fn key(&mut self, line: &ReadLine) -> RecordKey {
        let number = line.line_number.to_le_bytes();
        match &mut self.files {
            Some(files) => {
                let identity = files
                    .identity
                    .get_or_insert_with(|| files.progress.identity());
                RecordKey::derive(&[
                    b"file",
                    identity.path.as_os_str().as_encoded_bytes(),
                    identity.fingerprint.as_bytes(),
                    &number,
                ])
            }
            None => RecordKey::derive(&[b"stdin", &number, line.text.as_bytes()]),
        }
    }
}

impl Files {
    /// Whether the file being read is complete at its end: it is not
    /// followed, or another file is to be read after it.
    fn complete(&self) -> bool {
        self.follow.is_none() || !self.queued.is_empty()
    }

    /// Whether the followed file being read, rotated away and read to
    /// `offset`, its end, is to be read on rather than left for the new
    /// file at the path: until it has had nothing new for a whole poll
    /// interval after the new file appeared, as its writer may not have
    /// reopened the path yet.
    fn draining(&mut self, offset: u64) -> bool {
        let (Some(poll), Some(Queued::Fresh(_))) = (self.follow, self.queued.front()) else {
            return false;
        };
        let now = tokio::time::Instant::now();
        match self.quiet {
            Some((since, at)) if at == offset => now.duration_since(since) < poll,
            _ => {
                self.quiet = Some((now, offset));
                true
            }
        }
    }

    /// How long to wait before looking at a followed file again.
    fn poll(&self) -> Duration {
        self.follow.unwrap_or_default()
    }
}

/// What the followed file `id` at `path`, read to `offset`, has become.
///
/// The file at the path is opened, so that what is told of it (its
/// identity, its length) is of the file then read.
async fn look(path: &Path, id: Option<FileId>, offset: u64) -> Result<Followed, SourceError> {
    let failed = |error| SourceError::Io {
        path: path.to_owned(),
        error,
    };
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        // Renamed away, the new file not yet created: the old one may
        // still grow.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Followed::Same),
        Err(error) => return Err(failed(error)),
    };
    let metadata = file.metadata().await.map_err(failed)?;
    let rotated = FileId::of(&metadata) != id;
    if !rotated && metadata.len() >= offset {
        return Ok(Followed::Same);
    }
    let file = OpenFile::of(path, path.to_owned(), file, &metadata).await?;
    if file.compression.is_some() {
        return Err(SourceError::CannotFollow {
            input: path.to_owned(),
            why: "the file now at the path is compressed (a compressed file is read once, to its end)",
        });
    }
    Ok(if rotated {
        Followed::Rotated(file)
    } else {
        Followed::Truncated(file)
    })
}
