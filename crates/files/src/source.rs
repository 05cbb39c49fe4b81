//! The line source: a file's (or stdin's) lines as a pull-based stream of
//! records, each acknowledged to the path's [`Progress`].

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::stream::BoxStream;
use std::sync::Arc;

use sluice_processor::{Incoming, InputProgress, Origin, RawRecord, StreamName, StreamNameError};
use tokio::io::{AsyncRead, BufReader};

use crate::checkpoint::CheckpointError;
use crate::line::{DEFAULT_MAX_LINE_BYTES, LineReader};
use crate::open::{Bytes, stem};
use crate::progress::Progress;
use crate::reading::{Files, Queued, Reading};
use crate::resume::{Plan, plan};

/// The default read buffer (64 KiB).
pub const DEFAULT_BUFFER_BYTES: usize = 64 * 1024;

/// How often a followed file is looked at when it has nothing new (250 ms).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The stream name of stdin when none is configured.
pub const STDIN_STREAM: &str = "stdin";

/// The origin of stdin's records.
pub const STDIN_ORIGIN: &str = "-";

/// How a line source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// The stream of its lines; default the file's stem without a
    /// compression extension (`orders` for `orders.ndjson.gz`), or
    /// [`STDIN_STREAM`].
    pub stream: Option<StreamName>,
    /// The longest line kept, in bytes, terminator excluded (at least 1):
    /// a longer line is yielded cut, its whole length in
    /// [`RawRecord::cut`]. Default [`DEFAULT_MAX_LINE_BYTES`].
    pub max_line_bytes: usize,
    /// The read buffer, in bytes (at least 1). Default
    /// [`DEFAULT_BUFFER_BYTES`].
    pub buffer_bytes: usize,
    /// Keep reading a file as it grows and is rotated, never ending by
    /// itself (see [`LineSource`]). Not for stdin or compressed files.
    /// Default `false`.
    pub follow: bool,
    /// How often a followed file with nothing new is looked at, on tokio's
    /// clock. Default [`DEFAULT_POLL_INTERVAL`].
    pub poll_interval: Duration,
    /// Where the source says how far it is through its input: bytes read,
    /// and the size when it is known (one uncompressed file, not
    /// followed). Default: a registry of its own, read by nobody.
    pub progress: InputProgress,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            stream: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            follow: false,
            poll_interval: DEFAULT_POLL_INTERVAL,
            progress: InputProgress::default(),
        }
    }
}

/// Why a line source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: io::Error,
    },
    /// No stream is configured and the file's stem is no stream name.
    #[error("{} gives no stream name ({error}); configure one", path.display())]
    StreamName {
        /// The file.
        path: PathBuf,
        /// Why its stem does not do.
        error: StreamNameError,
    },
    /// The file's name says it is compressed, its first bytes do not.
    #[error("{} is named as {format}-compressed but does not start as {format} data: rename it, or compress it", path.display())]
    NotCompressed {
        /// The file.
        path: PathBuf,
        /// The compression its name says.
        format: &'static str,
    },
    /// Following was asked for an input that cannot be followed.
    #[error("{} cannot be followed: {why}; read it without following", input.display())]
    CannotFollow {
        /// The input: a file, or `-`.
        input: PathBuf,
        /// Why not.
        why: &'static str,
    },
    /// The checkpoint cannot be used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// The lines of a file (or of the files a followed path holds over time)
/// or of stdin, as a `futures::Stream` of [`RawRecord`]s for a
/// [`StreamProcessor`](sluice_processor::StreamProcessor).
///
/// - **Records**: a line's [`text`](RawRecord::text); its
///   [`position`](RawRecord::position) is its stream, partition 0 and line
///   number (from 1, blank lines counted, continued across the files of a
///   rotated path); its [`origin`](RawRecord::origin) the path, canonical
///   ([`STDIN_ORIGIN`] for stdin).
/// - **Pull-based**: it reads only when polled, through a buffer of
///   [`SourceOptions::buffer_bytes`], so the processor's backpressure
///   reaches the file. A line longer than [`SourceOptions::max_line_bytes`]
///   is read through without being kept whole: it is yielded cut, its
///   whole length (terminator included) in [`RawRecord::cut`], for the
///   profile to refuse.
/// - **Lines**: terminated by `\n` or `\r\n` (the terminator is not part of
///   the text). A last line without terminator is yielded at the end of
///   the file (unless following), but the checkpoint never passes its
///   start: it is recorded as resolved as it stood (its span, in
///   [`Checkpoint::resolved`](crate::Checkpoint::resolved)), so that a
///   restart skips it while it is unchanged, and delivers it once more,
///   whole and under the same line number (the same record identity),
///   once a writer has completed it. Bytes that are not UTF-8 are replaced
///   by U+FFFD.
/// - **Compressed files**: gzip and zstd files, told by their extension
///   (`.gz`, `.zst`) or their first bytes, are decompressed as they are
///   read; offsets (and checkpoints) count decompressed bytes.
/// - **Blank lines** (empty, or only spaces, tabs and carriage returns) are
///   not yielded. They keep their line number, and for a file they count as
///   done at once: the checkpoint passes them.
/// - **Acknowledgements** (files only): each line carries an
///   [`Ack`](sluice_processor::Ack) reporting its fate to the path's
///   [`Progress`] (see [`progress`](Self::progress)), whose watermark a
///   [`Checkpointer`](crate::Checkpointer) saves. stdin and other readers
///   have no acknowledgements and no checkpoint.
/// - **Following** ([`SourceOptions::follow`]): at the end of the file it
///   waits for more, looking again every [`SourceOptions::poll_interval`]
///   on tokio's clock, and never ends by itself; a last line is yielded
///   only once its `\n` is written. When the path is renamed away and a
///   new file created at it (a file of another identity, on Unix), it
///   reads the old file to its end, and on until the old file has had
///   nothing new for a whole poll interval after the new one appeared (a
///   writer may append to the old file until it reopens the path; what it
///   writes there later is not read), its last line included, then the
///   new one from its start; when the file gets shorter than what was read
///   (truncated, as by `copytruncate`), it reads it again from its start,
///   and what it held past what was read is lost. Each file's progress is
///   kept apart, in the checkpoint too.
/// - **Read errors** end the stream; a file's [`Progress::end`] says why.
pub struct LineSource {
    lines: BoxStream<'static, Incoming<RawRecord>>,
    progress: Option<Progress>,
}

impl fmt::Debug for LineSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineSource")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl LineSource {
    /// The lines of the file at `path`, from its start, whatever any
    /// checkpoint says (a [`Checkpointer`](crate::Checkpointer) on its
    /// progress overwrites it). See [`resume`](Self::resume).
    ///
    /// # Errors
    /// [`SourceError::Io`] when it cannot be opened,
    /// [`SourceError::StreamName`] when no stream is configured and its
    /// stem is no stream name, [`SourceError::NotCompressed`] when its
    /// name says it is compressed and its bytes do not,
    /// [`SourceError::CannotFollow`] when it is compressed and following
    /// is asked for.
    pub async fn open(
        path: impl AsRef<Path>,
        options: SourceOptions,
    ) -> Result<LineSource, SourceError> {
        let plan = plan(path.as_ref(), None, &options).await?;
        LineSource::file(plan, options)
    }

    /// The lines of the file at `path`, from the checkpoint saved at
    /// `checkpoint` when there is one (else from its start).
    ///
    /// The checkpoint must be of this path (same canonical path), and of
    /// the files it records: each found by its identity (at the path, or
    /// in its directory when it was rotated away), matching its
    /// fingerprint, with a line start at its offset. Otherwise this is an
    /// error, never a silent restart from the start. The file may have
    /// grown since. The files it records are read from their offsets,
    /// oldest first, then a new file at the path from its start.
    ///
    /// The checkpoint is locked first ([`CheckpointLock`](crate::CheckpointLock)
    /// on `<checkpoint>.lock`), and held until a
    /// [`Checkpointer`](crate::Checkpointer) on its progress finishes (or
    /// the progress and every clone of it is dropped): another run on the
    /// same checkpoint is refused meanwhile.
    ///
    /// # Errors
    /// As [`open`](Self::open), and [`SourceError::Checkpoint`] when the
    /// checkpoint is held by another run
    /// ([`CheckpointError::InUse`](crate::CheckpointError::InUse)), cannot be
    /// read, or a file it records is not found or not as it recorded.
    pub async fn resume(
        path: impl AsRef<Path>,
        checkpoint: impl AsRef<Path>,
        options: SourceOptions,
    ) -> Result<LineSource, SourceError> {
        let plan = plan(path.as_ref(), Some(checkpoint.as_ref()), &options).await?;
        LineSource::file(plan, options)
    }

    /// The lines of stdin, without acknowledgements or checkpoint. The
    /// stream is [`SourceOptions::stream`], else [`STDIN_STREAM`].
    ///
    /// tokio reads stdin on a blocking thread: a runtime shut down while
    /// a read waits for input may wait for that read (see
    /// `tokio::io::stdin`).
    ///
    /// # Errors
    /// [`SourceError::CannotFollow`] when following is asked for (stdin is
    /// read to its end); [`SourceError::StreamName`] if [`STDIN_STREAM`]
    /// could not be interned.
    pub fn stdin(options: SourceOptions) -> Result<LineSource, SourceError> {
        if options.follow {
            return Err(SourceError::CannotFollow {
                input: PathBuf::from(STDIN_ORIGIN),
                why: "stdin is read to its end",
            });
        }
        let stream = match options.stream {
            Some(stream) => stream,
            None => StreamName::new(STDIN_STREAM).map_err(|error| SourceError::StreamName {
                path: PathBuf::from(STDIN_ORIGIN),
                error,
            })?,
        };
        let origin = Origin::new(STDIN_ORIGIN);
        Ok(LineSource::reader(
            tokio::io::stdin(),
            origin,
            stream,
            options,
        ))
    }

    /// The lines of any reader, without acknowledgements or checkpoint,
    /// numbered from 1; their records come from `origin`, in `stream`
    /// ([`SourceOptions::stream`] and [`SourceOptions::follow`] are
    /// ignored).
    pub fn reader<R>(
        reader: R,
        origin: Origin,
        stream: StreamName,
        options: SourceOptions,
    ) -> LineSource
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let bytes: Bytes = BufReader::with_capacity(options.buffer_bytes.max(1), Box::new(reader));
        let gauge = options.progress.input(origin.as_str());
        let reading = Reading {
            lines: LineReader::new(bytes, options.max_line_bytes, 0, 0),
            gauge,
            origin,
            stream,
            sequence_base: 0,
            files: None,
        };
        LineSource {
            lines: Box::pin(reading.into_stream()),
            progress: None,
        }
    }

    /// The lines of the files `plan` lays out.
    fn file(plan: Plan, options: SourceOptions) -> Result<LineSource, SourceError> {
        let Plan {
            path,
            first,
            then,
            fresh,
            lock,
        } = plan;
        let stream = match options.stream {
            Some(stream) => stream,
            None => StreamName::new(&stem(&path)).map_err(|error| SourceError::StreamName {
                path: path.clone(),
                error,
            })?,
        };
        let starts = std::iter::once(&first)
            .chain(&then)
            .map(|planned| planned.start.clone())
            .collect();
        let gauge = options.progress.input(path.to_string_lossy());
        let progress = Progress::of_files(path.clone(), starts, lock, Some(Arc::clone(&gauge)));
        // One file's offsets measure it; several files' (rotated ones, a
        // new one at the path) or a followed one's have no end to reach.
        let single = then.is_empty() && fresh.is_none() && !options.follow;
        gauge.set_size(first.size.filter(|_| single));
        gauge.set_read(first.start.start.offset);
        let mut queued: VecDeque<_> = then.into_iter().map(Queued::Planned).collect();
        queued.extend(fresh.map(Queued::Fresh));
        let start = first.start.start;
        let reading = Reading {
            lines: LineReader::new(
                first.bytes,
                options.max_line_bytes,
                start.offset,
                start.lines,
            ),
            gauge,
            origin: Origin::new(path.to_string_lossy()),
            stream,
            sequence_base: first.start.sequence_base,
            files: Some(Files {
                progress: progress.clone(),
                path,
                id: first.start.id,
                queued,
                follow: options.follow.then_some(options.poll_interval),
                max_line_bytes: options.max_line_bytes,
                buffer_bytes: options.buffer_bytes,
                quiet: None,
                identity: None,
            }),
        };
        Ok(LineSource {
            lines: Box::pin(reading.into_stream()),
            progress: Some(progress),
        })
    }

    /// The path's progress, for a [`Checkpointer`](crate::Checkpointer),
    /// and the identity of the file each record came from
    /// ([`Progress::identity_of`]); `None` for stdin and other readers.
    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }
}

impl Stream for LineSource {
    type Item = Incoming<RawRecord>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.lines.as_mut().poll_next(cx)
    }
}
