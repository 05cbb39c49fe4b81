//! Reading a source's lines between two pulls: one file after another,
//! following the file at the path as it grows and is rotated.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::Stream;
use sluice_processor::{Ack, Incoming, Origin, RawRecord, RecordId, StreamName};

use crate::checkpoint::FileId;
use crate::line::{LineReader, ReadLine};
use crate::open::{Bytes, OpenFile};
use crate::progress::{Progress, SourceEnd};
use crate::resume::Planned;

/// The state of a source between two pulls.
pub(crate) struct Reading {
    pub(crate) lines: LineReader<Bytes>,
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
    /// Whether the file being read is the one at the path, as last seen.
    pub(crate) at_path: bool,
    /// The files to read after it.
    pub(crate) queued: VecDeque<Queued>,
    /// How often to look at a followed file; `None` when not following.
    pub(crate) follow: Option<Duration>,
    pub(crate) max_line_bytes: usize,
    pub(crate) buffer_bytes: usize,
}

/// A file to read after the one being read.
pub(crate) enum Queued {
    /// Recorded by the checkpoint, positioned, in the progress already.
    Planned(Planned),
    /// New at the path, from its start.
    Fresh(OpenFile),
}

/// What to do at the end of what the file being read holds now.
enum AtEnd {
    /// The file is complete: its last line, then the next file.
    Complete,
    /// A followed file that may grow: look again later.
    Wait,
    /// The followed file was rotated away: read it to its end.
    Rotated,
    /// The followed file was truncated: read it again from its start.
    Truncated,
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
            let at_end = if files.complete() {
                AtEnd::Complete
            } else {
                match look(&files.path, files.id, self.lines.offset()).await {
                    Ok(at_end) => at_end,
                    Err(error) => return self.fail(&error),
                }
            };
            match at_end {
                AtEnd::Wait => {
                    if let Some(poll) = files.follow {
                        tokio::time::sleep(poll).await;
                    }
                }
                AtEnd::Rotated => files.at_path = false,
                AtEnd::Truncated => {
                    tracing::warn!(
                        file = %files.path.display(),
                        "the file was truncated: reading it again from its start"
                    );
                    match OpenFile::open(&files.path).await {
                        Ok(file) => self.follow(file, true)?,
                        Err(error) => return self.fail(&error),
                    }
                }
                AtEnd::Complete => {
                    if let Some(line) = self.lines.take_partial() {
                        match self.record(line) {
                            Some(record) => return Some(record),
                            None => continue,
                        }
                    }
                    if !self.next_file().await? {
                        if let Some(files) = &self.files {
                            files.progress.ended(SourceEnd::Finished);
                        }
                        return None;
                    }
                }
            }
        }
    }

    /// Goes on with the next file: `false` when there is none, `None` when
    /// reading failed (and was reported).
    async fn next_file(&mut self) -> Option<bool> {
        let files = self.files.as_mut()?;
        match files.queued.pop_front() {
            Some(Queued::Planned(planned)) => {
                files.progress.next_file();
                files.id = planned.start.id;
                files.at_path = planned.at_path;
                let start = planned.start.start;
                self.sequence_base = planned.start.sequence_base;
                self.lines = LineReader::new(
                    planned.bytes,
                    files.max_line_bytes,
                    start.offset,
                    start.lines,
                );
            }
            Some(Queued::Fresh(file)) => self.begin(file, false),
            // The file read was rotated away: the new one at the path.
            None if files.follow.is_some() => match OpenFile::open(&files.path).await {
                Ok(file) if file.id == files.id => files.at_path = true,
                Ok(file) => self.follow(file, false)?,
                Err(error) if error.is_not_found() => {
                    if let Some(poll) = files.follow {
                        tokio::time::sleep(poll).await;
                    }
                }
                Err(error) => return self.fail(&error),
            },
            None => return Some(false),
        }
        Some(true)
    }

    /// Follows `file`, new at the path, from its start: `None` (reported)
    /// when it cannot be followed.
    fn follow(&mut self, file: OpenFile, lost: bool) -> Option<()> {
        if let Some(compression) = file.compression {
            let error = io::Error::other(format!(
                "the new file at the path is {}-compressed: a compressed file cannot be followed",
                compression.name()
            ));
            return self.fail(&error);
        }
        self.begin(file, lost);
        Some(())
    }

    /// Reads `file` from its start, after the file being read (which lost
    /// bytes it had not read, when `lost`).
    fn begin(&mut self, file: OpenFile, lost: bool) {
        let Some(files) = &mut self.files else {
            return;
        };
        files.progress.new_file(file.id, lost);
        files.id = file.id;
        files.at_path = true;
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
    fn record(&self, line: ReadLine) -> Option<Incoming<RawRecord>> {
        let progress = self.files.as_ref().map(|files| &files.progress);
        if line.blank {
            if let Some(progress) = progress {
                progress.skip(line.end, line.line_number);
            }
            return None;
        }
        let ack = progress
            .map(|progress| Ack::new(progress.track(line.offset, line.end, line.line_number)));
        let payload = RawRecord {
            position: RecordId {
                stream: self.stream,
                partition: 0,
                sequence: self.sequence_base + line.line_number,
            },
            origin: self.origin.clone(),
            cut: line.truncated.then_some(line.end - line.offset),
            text: line.text,
        };
        Some(Incoming { payload, ack })
    }
}

impl Files {
    /// Whether the file being read is complete at its end: it is not
    /// followed, or not the one at the path, or not the last to read.
    fn complete(&self) -> bool {
        self.follow.is_none() || !self.at_path || !self.queued.is_empty()
    }
}

/// What to do at `offset`, the end of what the followed file `id` at
/// `path` holds now.
async fn look(path: &Path, id: Option<FileId>, offset: u64) -> io::Result<AtEnd> {
    match tokio::fs::metadata(path).await {
        Ok(now) if FileId::of(&now) != id => Ok(AtEnd::Rotated),
        Ok(now) if now.len() < offset => Ok(AtEnd::Truncated),
        Ok(_) => Ok(AtEnd::Wait),
        // Renamed away, the new file not yet created: the old one may
        // still grow.
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(AtEnd::Wait),
        Err(error) => Err(error),
    }
}
