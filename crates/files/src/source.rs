//! The line source: a file's (or stdin's) lines as a pull-based stream of
//! records, each acknowledged to the file's [`Progress`].

use std::fmt;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use sluice_processor::{Ack, Incoming, Origin, RawRecord, RecordId, StreamName, StreamNameError};
use tokio::io::{AsyncRead, AsyncSeekExt, BufReader};

use crate::checkpoint::{Checkpoint, CheckpointError, verify};
use crate::line::{DEFAULT_MAX_LINE_BYTES, LineReader};
use crate::progress::{Position, Progress, SourceEnd};

/// The default read buffer (64 KiB).
pub const DEFAULT_BUFFER_BYTES: usize = 64 * 1024;

/// The stream name of stdin when none is configured.
pub const STDIN_STREAM: &str = "stdin";

/// The origin of stdin's records.
pub const STDIN_ORIGIN: &str = "-";

/// How a line source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// The stream of its lines; default the file's stem, or
    /// [`STDIN_STREAM`].
    pub stream: Option<StreamName>,
    /// The longest line kept, in bytes, terminator excluded (at least 1):
    /// a longer line is yielded cut, its whole length in
    /// [`RawRecord::cut`]. Default [`DEFAULT_MAX_LINE_BYTES`].
    pub max_line_bytes: usize,
    /// The read buffer, in bytes (at least 1). Default
    /// [`DEFAULT_BUFFER_BYTES`].
    pub buffer_bytes: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            stream: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
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
    /// The checkpoint cannot be used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// The lines of a file or of stdin, as a `futures::Stream` of
/// [`RawRecord`]s for a [`StreamProcessor`](sluice_processor::StreamProcessor).
///
/// - **Records**: a line's [`text`](RawRecord::text); its
///   [`position`](RawRecord::position) is its stream, partition 0 and line
///   number (from 1, blank lines counted); its [`origin`](RawRecord::origin)
///   the file's canonical path ([`STDIN_ORIGIN`] for stdin).
/// - **Pull-based**: it reads only when polled, through a buffer of
///   [`SourceOptions::buffer_bytes`], so the processor's backpressure
///   reaches the file. A line longer than [`SourceOptions::max_line_bytes`]
///   is read through without being kept whole: it is yielded cut, its
///   whole length (terminator included) in [`RawRecord::cut`], for the
///   profile to refuse.
/// - **Lines**: terminated by `\n` or `\r\n` (the terminator is not part of
///   the text); a last line without terminator is read at the end of the
///   file (the file is taken as complete). Bytes that are not UTF-8 are
///   replaced by U+FFFD.
/// - **Blank lines** (empty, or only spaces, tabs and carriage returns) are
///   not yielded. They keep their line number, and for a file they count as
///   done at once: the checkpoint passes them.
/// - **Acknowledgements** (files only): each line carries an
///   [`Ack`] reporting its fate to the file's [`Progress`] (see
///   [`progress`](Self::progress)), whose watermark a
///   [`Checkpointer`](crate::Checkpointer) saves. stdin and other readers
///   have no acknowledgements and no checkpoint.
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
    /// stem is no stream name.
    pub async fn open(
        path: impl AsRef<Path>,
        options: SourceOptions,
    ) -> Result<LineSource, SourceError> {
        let (file, canonical, stream) = open(path.as_ref(), &options).await?;
        let progress = Progress::with_prefix(canonical, Position::default(), Vec::new());
        Ok(LineSource::file(file, stream, progress, &options))
    }

    /// The lines of the file at `path`, from the checkpoint saved at
    /// `checkpoint` when there is one (else from its start).
    ///
    /// The checkpoint must be of this file (same canonical path), match
    /// its fingerprint, and fall at a line start within it: otherwise
    /// this is an error, never a silent restart from the start. The file
    /// may have grown since.
    ///
    /// # Errors
    /// As [`open`](Self::open), and [`SourceError::Checkpoint`] when the
    /// checkpoint cannot be read or is not of this file as it is now.
    pub async fn resume(
        path: impl AsRef<Path>,
        checkpoint: impl AsRef<Path>,
        options: SourceOptions,
    ) -> Result<LineSource, SourceError> {
        let path = path.as_ref();
        let checkpoint_file = checkpoint.as_ref();
        let Some(checkpoint) = Checkpoint::load(checkpoint_file).await? else {
            return LineSource::open(path, options).await;
        };
        let (mut file, canonical, stream) = open(path, &options).await?;
        let prefix = verify(&checkpoint, checkpoint_file, &mut file, &canonical).await?;
        file.seek(SeekFrom::Start(checkpoint.offset))
            .await
            .map_err(|error| SourceError::Io {
                path: canonical.clone(),
                error,
            })?;
        let progress = Progress::with_prefix(canonical, checkpoint.position(), prefix);
        Ok(LineSource::file(file, stream, progress, &options))
    }

    /// The lines of stdin, without acknowledgements or checkpoint. The
    /// stream is [`SourceOptions::stream`], else [`STDIN_STREAM`].
    ///
    /// tokio reads stdin on a blocking thread: a runtime shut down while
    /// a read waits for input may wait for that read (see
    /// `tokio::io::stdin`).
    ///
    /// # Errors
    /// Never in practice: [`SourceError::StreamName`] if [`STDIN_STREAM`]
    /// could not be interned.
    pub fn stdin(options: SourceOptions) -> Result<LineSource, SourceError> {
        let stream = match options.stream {
            Some(stream) => stream,
            None => StreamName::new(STDIN_STREAM).map_err(|error| SourceError::StreamName {
                path: PathBuf::from("-"),
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
    /// ([`SourceOptions::stream`] is ignored).
    pub fn reader<R>(
        reader: R,
        origin: Origin,
        stream: StreamName,
        options: SourceOptions,
    ) -> LineSource
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let reader = BufReader::with_capacity(options.buffer_bytes.max(1), reader);
        let reading = Reading {
            lines: LineReader::new(reader, options.max_line_bytes, 0, 0),
            origin,
            stream,
            progress: None,
        };
        LineSource {
            lines: Box::pin(reading.into_stream()),
            progress: None,
        }
    }

    fn file(
        file: tokio::fs::File,
        stream: StreamName,
        progress: Progress,
        options: &SourceOptions,
    ) -> LineSource {
        let start = progress.start();
        let reader = BufReader::with_capacity(options.buffer_bytes.max(1), file);
        let reading = Reading {
            lines: LineReader::new(reader, options.max_line_bytes, start.offset, start.lines),
            origin: Origin::new(progress.file().to_string_lossy()),
            stream,
            progress: Some(progress.clone()),
        };
        LineSource {
            lines: Box::pin(reading.into_stream()),
            progress: Some(progress),
        }
    }

    /// The file's progress, for a [`Checkpointer`](crate::Checkpointer);
    /// `None` for stdin and other readers.
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

/// Opens `path`: the file, its canonical path, its stream.
async fn open(
    path: &Path,
    options: &SourceOptions,
) -> Result<(tokio::fs::File, PathBuf, StreamName), SourceError> {
    let failed = |error| SourceError::Io {
        path: path.to_owned(),
        error,
    };
    let canonical = tokio::fs::canonicalize(path).await.map_err(failed)?;
    let file = tokio::fs::File::open(&canonical).await.map_err(failed)?;
    let stream = match options.stream {
        Some(stream) => stream,
        None => {
            let stem = canonical
                .file_stem()
                .map(|stem| stem.to_string_lossy())
                .unwrap_or_default();
            StreamName::new(&stem).map_err(|error| SourceError::StreamName {
                path: path.to_owned(),
                error,
            })?
        }
    };
    Ok((file, canonical, stream))
}

/// The state of a source between two pulls.
struct Reading<R> {
    lines: LineReader<BufReader<R>>,
    origin: Origin,
    stream: StreamName,
    progress: Option<Progress>,
}

impl<R: AsyncRead + Send + Unpin + 'static> Reading<R> {
    fn into_stream(self) -> impl Stream<Item = Incoming<RawRecord>> + Send + 'static {
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
            let progress = self.progress.as_ref();
            let read = self
                .lines
                .next(|at, bytes| {
                    if let Some(progress) = progress {
                        progress.observe(at, bytes);
                    }
                })
                .await;
            let line = match read {
                Ok(Some(line)) => line,
                Ok(None) => {
                    if let Some(progress) = progress {
                        progress.ended(SourceEnd::Finished);
                    }
                    return None;
                }
                Err(error) => {
                    match progress {
                        Some(progress) => {
                            tracing::error!(file = %progress.file().display(), %error, "reading failed");
                            progress.ended(SourceEnd::Failed(error.to_string()));
                        }
                        None => tracing::error!(stream = %self.stream, %error, "reading failed"),
                    }
                    return None;
                }
            };
            if line.blank {
                if let Some(progress) = progress {
                    progress.skip(line.end, line.line_number);
                }
                continue;
            }
            let ack = progress
                .map(|progress| Ack::new(progress.track(line.offset, line.end, line.line_number)));
            let payload = RawRecord {
                text: line.text,
                position: RecordId {
                    stream: self.stream,
                    partition: 0,
                    sequence: line.line_number,
                },
                origin: self.origin.clone(),
                cut: line.truncated.then_some(line.end - line.offset),
            };
            return Some(Incoming { payload, ack });
        }
    }
}
