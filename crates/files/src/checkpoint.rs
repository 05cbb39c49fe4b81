//! The checkpoint file: how far a file is done, and which file it is.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::progress::Position;
use crate::resolved::Span;

mod error;

pub use error::CheckpointError;

/// The most bytes of a file's start its fingerprint covers (64 KiB).
pub const FINGERPRINT_BYTES: usize = 64 * 1024;

/// The most bytes of a file's start the fingerprint of a version 1
/// checkpoint covers (4 KiB).
pub const FINGERPRINT_BYTES_V1: usize = 4096;

/// The checkpoint format this crate writes. It reads it and version 1
/// (without `resolved`).
pub const CHECKPOINT_VERSION: u32 = 2;

/// The oldest checkpoint format this crate reads.
pub const OLDEST_CHECKPOINT_VERSION: u32 = 1;

/// How far a file is done, saved as JSON:
///
/// ```json
/// {"version":2,"path":"/data/orders.jsonl","offset":5120,"lines":40,
///  "fingerprint":"9f86d0…","fingerprint_bytes":65536,
///  "file_id":{"device":2049,"inode":1835123},
///  "resolved":[[5200,41,5610,45],[5702,46,6004,49]]}
/// ```
///
/// Every line before `offset` is delivered, dead-lettered or blank; a
/// restart reads on from `offset`, numbering lines from `lines + 1`, and
/// skips the lines of `resolved` (spans `[offset, lines, end offset, end
/// lines]` of whole lines resolved past the watermark: delivered,
/// dead-lettered or blank). For a compressed file, offsets count bytes of
/// the decompressed stream. The watermark never passes a last line without
/// newline (its span may be in `resolved`, as it stood).
///
/// The fingerprint is the BLAKE3 hash (hex) of the file's first
/// `fingerprint_bytes` bytes (decompressed): [`FINGERPRINT_BYTES`] (64
/// KiB), or the whole file when it was shorter when first opened (for a
/// file empty then, its start up to its first line read). It is fixed
/// for the file's life, so that it identifies the file across restarts
/// and while it grows ([`FileIdentity`](crate::FileIdentity)). On resume
/// the file must match it, and hold exactly `lines` newlines before
/// `offset`: otherwise the file was replaced or rewritten, an error. (A
/// version 1 checkpoint's fingerprint covers `min(4096, offset)` bytes;
/// it is checked so, and the next checkpoint saved is of version 2.)
///
/// On Unix, `file_id` records which file it is (device and inode): the
/// checkpoint is applied only to that file, found at `path` or, when it
/// was rotated away (renamed), in the same directory; a new file at
/// `path` is read from its start after it. A followed path's checkpoint
/// also holds the files rotated away from it whose lines are not all done
/// (`rotated`, oldest first), and numbers the records of each file after
/// those of the files before it (`sequence_base`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The format: [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// The input file's canonical path.
    pub path: PathBuf,
    /// The watermark: every line before it is done.
    pub offset: u64,
    /// How many lines come before `offset`.
    pub lines: u64,
    /// BLAKE3 (hex) of the file's first `fingerprint_bytes` bytes: the
    /// file's identity.
    pub fingerprint: String,
    /// How many bytes the fingerprint covers.
    pub fingerprint_bytes: u64,
    /// Which file it is, where the system says (Unix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<FileId>,
    /// Added to the file's line numbers to give its records' sequences:
    /// the lines of the files read at `path` before it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sequence_base: u64,
    /// The files that were at `path` before this one and were rotated
    /// away with lines not yet done, oldest first (their own `rotated` is
    /// empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotated: Vec<Checkpoint>,
    /// The lines past `offset` already resolved for good (delivered,
    /// dead-lettered or blank), as spans of whole lines, in file order: a
    /// restart does not read them again. Bounded by the lines that were in
    /// flight or handed back, not by the lines read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<Span>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A file's stable content identity: its canonical path and the
/// fingerprint of its first bytes (see [`Checkpoint`]: the first
/// [`FINGERPRINT_BYTES`], or the whole file when it was shorter when first
/// opened). It is the same across restarts (a checkpoint keeps how many
/// bytes it covers) and while the file grows by appending, and differs
/// for another file at the same path (rotated, replaced) unless that one
/// starts with the same bytes.
///
/// A record's key can be derived from `(path, fingerprint, line)`: get it
/// per record with [`Progress::identity_of`](crate::Progress::identity_of)
/// (the record's [`position`](sluice_processor::RawRecord::position)
/// sequence), from the [`LineSource::progress`](crate::LineSource::progress)
/// of the source that yielded it. A last line without newline keeps its
/// line number when a writer completes it, so it keeps its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileIdentity {
    /// The file's canonical path (the path followed, for a rotated file).
    pub path: PathBuf,
    /// BLAKE3 (hex) of the file's first `fingerprint_bytes` bytes.
    pub fingerprint: String,
    /// How many bytes the fingerprint covers.
    pub fingerprint_bytes: u64,
}

impl FileIdentity {
    /// The identity of the file at `path` (canonical) whose fingerprinted
    /// first bytes are `prefix`.
    pub(crate) fn of(path: PathBuf, prefix: &[u8]) -> FileIdentity {
        FileIdentity {
            path,
            fingerprint: fingerprint(prefix),
            fingerprint_bytes: prefix.len() as u64,
        }
    }
}

/// Which file a path names, as the file system tells files apart: its
/// device and inode. A file keeps it when renamed within its file system,
/// and a new file created at a path gets another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// The device holding the file.
    pub device: u64,
    /// The file's inode on it.
    pub inode: u64,
}

impl FileId {
    /// The identity of the file `metadata` describes; `None` where the
    /// system has no inodes (not Unix).
    pub fn of(metadata: &std::fs::Metadata) -> Option<FileId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            Some(FileId {
                device: metadata.dev(),
                inode: metadata.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            None
        }
    }
}

/// The fingerprint of a file starting with `prefix`: BLAKE3, in hex.
fn fingerprint(prefix: &[u8]) -> String {
    blake3::hash(prefix).to_hex().to_string()
}

impl Checkpoint {
    /// A checkpoint of the file at `path` whose first bytes are `prefix`
    /// (all of which the fingerprint covers), at `at`.
    pub(crate) fn new(
        path: PathBuf,
        at: Position,
        prefix: &[u8],
        file_id: Option<FileId>,
        sequence_base: u64,
    ) -> Checkpoint {
        let covered = prefix;
        Checkpoint {
            version: CHECKPOINT_VERSION,
            path,
            offset: at.offset,
            lines: at.lines,
            fingerprint: fingerprint(covered),
            fingerprint_bytes: covered.len() as u64,
            file_id,
            sequence_base,
            rotated: Vec::new(),
            resolved: Vec::new(),
        }
    }

    /// The position it records.
    pub fn position(&self) -> Position {
        Position {
            offset: self.offset,
            lines: self.lines,
        }
    }

    /// Whether `prefix` (the file's first [`fingerprint_bytes`](Self::fingerprint_bytes))
    /// matches the fingerprint.
    pub fn matches(&self, prefix: &[u8]) -> bool {
        prefix.len() as u64 == self.fingerprint_bytes && fingerprint(prefix) == self.fingerprint
    }

    /// The checkpoint saved at `checkpoint`; `None` when there is no such
    /// file (nothing was checkpointed yet).
    ///
    /// # Errors
    /// [`CheckpointError::Read`], [`Parse`](CheckpointError::Parse) or
    /// [`Version`](CheckpointError::Version).
    pub async fn load(checkpoint: impl AsRef<Path>) -> Result<Option<Checkpoint>, CheckpointError> {
        let checkpoint = checkpoint.as_ref();
        let text = match tokio::fs::read(checkpoint).await {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(CheckpointError::Read {
                    checkpoint: checkpoint.to_owned(),
                    error,
                });
            }
        };
        let loaded: Checkpoint =
            serde_json::from_slice(&text).map_err(|error| CheckpointError::Parse {
                checkpoint: checkpoint.to_owned(),
                error,
            })?;
        if !(OLDEST_CHECKPOINT_VERSION..=CHECKPOINT_VERSION).contains(&loaded.version) {
            return Err(CheckpointError::Version {
                checkpoint: checkpoint.to_owned(),
                version: loaded.version,
            });
        }
        Ok(Some(loaded))
    }

    /// Saves the checkpoint at `checkpoint`, atomically: written to a
    /// temporary file in the same directory, synced, renamed over
    /// `checkpoint`, and the directory synced (on Unix), so that a crash
    /// leaves either the old checkpoint or the new one, never a mix.
    ///
    /// Blocking: call it from `spawn_blocking` in async code (the
    /// [`Checkpointer`](crate::Checkpointer) does).
    ///
    /// # Errors
    /// [`CheckpointError::Write`]; the old checkpoint is then left as it
    /// was and no temporary file remains.
    pub fn save(&self, checkpoint: impl AsRef<Path>) -> Result<(), CheckpointError> {
        let checkpoint = checkpoint.as_ref();
        let failed = |error| CheckpointError::Write {
            checkpoint: checkpoint.to_owned(),
            error,
        };
        let text = serde_json::to_vec(self).map_err(|error| failed(io::Error::other(error)))?;
        let name = checkpoint
            .file_name()
            .ok_or_else(|| failed(io::Error::other("the checkpoint path names no file")))?;
        let dir = match checkpoint.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        // Unique per process and write, so that no two writes share one.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let mut temporary = std::ffi::OsString::from(".");
        temporary.push(name);
        temporary.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        let temporary = dir.join(temporary);
        let written =
            write_synced(&temporary, &text).and_then(|()| fs::rename(&temporary, checkpoint));
        if let Err(error) = written {
            let _ = fs::remove_file(&temporary);
            return Err(failed(error));
        }
        sync_dir(dir).map_err(failed)
    }
}

/// Writes `text` to a new file at `path` and syncs it.
fn write_synced(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(text)?;
    file.sync_all()
}

/// Syncs a directory, so that a rename in it is durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing here; the rename is left to
/// the file system.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
