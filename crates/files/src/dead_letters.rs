//! The dead-letter file: one JSON object per letter, appended.

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Serialize;
use sluice_processor::{DeadLetter, DeadLetterKind, DeadLetterSink};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// A dead-letter file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the dead-letter file {}: {error}", path.display())]
pub struct DeadLetterFileError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub error: io::Error,
}

/// A dead-letter outlet appending each letter to a file as one line of
/// JSON (NDJSON):
///
/// ```json
/// {"stream":"orders","partition":0,"sequence":7,"reason":"invalid: not JSON: …","kind":"invalid","raw":"{oops"}
/// ```
///
/// `reason` is the [`DeadLetterReason`](sluice_processor::DeadLetterReason)
/// as text, `kind` its [`DeadLetterKind`]; `record` (the record as it would
/// have been sent) and `raw` (the input as received) appear when the letter
/// has them. For a line source with the default `json` profile, `sequence`
/// is the line number.
///
/// **Durability**: a letter is written, flushed to the operating system,
/// and (by default) synced to disk with `fdatasync` *before*
/// [`dead_letter`](DeadLetterSink::dead_letter) returns `Ok`. The processor
/// resolves the line's acknowledgement only after that, and the checkpoint
/// passes a line only after its acknowledgement, so a checkpoint never
/// passes a letter that is not in the file, even across a power loss.
/// [`with_sync(false)`](Self::with_sync) skips the sync: letters then
/// survive a crash of the process but not of the machine.
///
/// A letter that cannot be encoded or written is refused (`Err`): the
/// processor hands the record back. A failed write is rolled back
/// (the file truncated to its length before it), so a partial line does
/// not corrupt the next letter. Letters are written one at a time, under
/// a lock; the file is opened in append mode and created if missing.
#[derive(Debug)]
pub struct NdjsonDeadLetters {
    path: PathBuf,
    sync: bool,
    writer: Mutex<Writer>,
}

#[derive(Debug)]
struct Writer {
    file: tokio::fs::File,
    /// The file's length after the last letter written.
    len: u64,
    /// A write was cut off (its future dropped) or failed without being
    /// rolled back: `len` must be read again.
    unsure: bool,
}

/// One letter, as written.
#[derive(Serialize)]
struct Entry<'a, R> {
    stream: &'a str,
    partition: u32,
    sequence: u64,
    reason: String,
    kind: DeadLetterKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a R>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
}

impl NdjsonDeadLetters {
    /// Appends letters to the file at `path`, created if missing.
    ///
    /// # Errors
    /// A [`DeadLetterFileError`] when it cannot be opened.
    pub async fn open(path: impl Into<PathBuf>) -> Result<NdjsonDeadLetters, DeadLetterFileError> {
        let path = path.into();
        let opened = async {
            let file = tokio::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .await?;
            let len = file.metadata().await?.len();
            Ok::<_, io::Error>(Writer {
                file,
                len,
                unsure: false,
            })
        };
        match opened.await {
            Ok(writer) => Ok(NdjsonDeadLetters {
                path,
                sync: true,
                writer: Mutex::new(writer),
            }),
            Err(error) => Err(DeadLetterFileError { path, error }),
        }
    }

    /// Whether each letter is synced to disk before it counts as kept
    /// (default `true`).
    pub fn with_sync(mut self, sync: bool) -> NdjsonDeadLetters {
        self.sync = sync;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one encoded letter, rolling back on failure.
    async fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut writer = self.writer.lock().await;
        if writer.unsure {
            // Let a cut-off write land before measuring.
            writer.file.flush().await?;
            writer.len = writer.file.metadata().await?.len();
            writer.unsure = false;
        }
        writer.unsure = true;
        let written = async {
            writer.file.write_all(line).await?;
            writer.file.flush().await?;
            if self.sync {
                writer.file.sync_data().await?;
            }
            Ok::<_, io::Error>(())
        }
        .await;
        match written {
            Ok(()) => {
                writer.len += line.len() as u64;
                writer.unsure = false;
                Ok(())
            }
            Err(error) => {
                let len = writer.len;
                if writer.file.set_len(len).await.is_ok() {
                    writer.unsure = false;
                }
                Err(error)
            }
        }
    }
}

#[async_trait]
impl<R: Serialize + Send + Sync + 'static> DeadLetterSink<R> for NdjsonDeadLetters {
    async fn dead_letter(&self, letter: &DeadLetter<R>) -> Result<(), String> {
        let entry = Entry {
            stream: letter.id.stream.as_str(),
            partition: letter.id.partition,
            sequence: letter.id.sequence,
            reason: letter.reason.to_string(),
            kind: letter.reason.kind(),
            record: letter.record.as_ref(),
            raw: letter.raw.as_deref(),
        };
        let mut line = serde_json::to_vec(&entry)
            .map_err(|error| format!("cannot encode the dead letter {}: {error}", letter.id))?;
        line.push(b'\n');
        self.append(&line).await.map_err(|error| {
            format!(
                "cannot write the dead letter {} to {}: {error}",
                letter.id,
                self.path.display()
            )
        })
    }
}
