//! What can go wrong with a checkpoint.

use std::io;
use std::path::PathBuf;

use super::{CHECKPOINT_VERSION, FileId, OLDEST_CHECKPOINT_VERSION};

/// What went wrong with a checkpoint: each names the checkpoint file and,
/// where it concerns it, the input file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint file could not be read.
    #[error("cannot read the checkpoint {}: {error}", checkpoint.display())]
    Read {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// What failed.
        error: io::Error,
    },
    /// The checkpoint file holds no checkpoint.
    #[error("the checkpoint {} is not a valid checkpoint: {error}", checkpoint.display())]
    Parse {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// Where and why parsing failed.
        error: serde_json::Error,
    },
    /// The checkpoint is of a format this version does not read.
    #[error("the checkpoint {} is of version {version}; this reads versions {OLDEST_CHECKPOINT_VERSION} to {CHECKPOINT_VERSION}: use the sluice that wrote it, or remove it to read the file from its start", checkpoint.display())]
    Version {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The checkpoint could not be written (it may be left as it was).
    #[error("cannot write the checkpoint {}: {error}", checkpoint.display())]
    Write {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// What failed.
        error: io::Error,
    },
    /// The checkpoint is of another file.
    #[error(
        "the checkpoint {} is of {}, not of {}: name that checkpoint's file, or another checkpoint",
        checkpoint.display(), recorded.display(), file.display()
    )]
    OtherFile {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The file it records.
        recorded: PathBuf,
        /// The file being read.
        file: PathBuf,
    },
    /// The file's first bytes differ from those the checkpoint recorded:
    /// it is not the file the checkpoint was written for.
    #[error(
        "the checkpoint {} does not match {}: its first {bytes} bytes changed (replaced or rewritten?); {RESTART}",
        checkpoint.display(), file.display()
    )]
    Fingerprint {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The file being read.
        file: PathBuf,
        /// How many bytes the fingerprint covers.
        bytes: u64,
    },
    /// The file does not hold as many lines before the checkpoint's offset
    /// as the checkpoint counted: it is not the file the checkpoint was
    /// written for (rewritten with the same start?).
    #[error(
        "the checkpoint {} does not match {}: it counted {lines} lines before byte {offset}, the file has {found} (replaced or rewritten?); {RESTART}",
        checkpoint.display(), file.display()
    )]
    LineCount {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The file being read.
        file: PathBuf,
        /// The checkpoint's offset.
        offset: u64,
        /// The lines the checkpoint counted before it.
        lines: u64,
        /// The lines the file holds before it.
        found: u64,
    },
    /// The file is shorter than the checkpoint's offset: truncated or
    /// replaced.
    #[error(
        "the checkpoint {} is at byte {offset} of {}, which has only {len} bytes (truncated or replaced?); {RESTART}",
        checkpoint.display(), file.display()
    )]
    Shorter {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The file being read.
        file: PathBuf,
        /// The checkpoint's offset.
        offset: u64,
        /// The file's length.
        len: u64,
    },
    /// The checkpoint's offset is inside a line: the file grew at the end
    /// of a last line that had no terminator and was already processed.
    #[error(
        "the checkpoint {} is at byte {offset} of {}, which is not a line start (was a line without terminator continued?); {RESTART}",
        checkpoint.display(), file.display()
    )]
    MidLine {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The file being read.
        file: PathBuf,
        /// The checkpoint's offset.
        offset: u64,
    },
    /// The file the checkpoint records is neither at its path nor in the
    /// path's directory: rotated away elsewhere, compressed, or deleted.
    #[error(
        "the checkpoint {} is of a file once at {} that is no longer there nor in its directory (rotated away, compressed or deleted?); {RESTART}",
        checkpoint.display(), file.display()
    )]
    Gone {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The path being read.
        file: PathBuf,
        /// The file the checkpoint records, if it recorded which.
        file_id: Option<FileId>,
    },
    /// Another run (or another input of this one) holds the checkpoint:
    /// two runs on one checkpoint would send every record twice.
    #[error(
        "checkpoint {} is in use by another sluice run ({}); wait for it to finish or use another --checkpoint",
        checkpoint.display(), holder(pid)
    )]
    InUse {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// The process holding it, as its lock file says.
        pid: Option<u32>,
    },
    /// The checkpoint's lock file cannot be created or locked.
    #[error(
        "cannot lock the checkpoint {} (lock file {}): {error}; check that its directory is writable",
        checkpoint.display(), lock.display()
    )]
    Lock {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// What failed.
        error: io::Error,
    },
}

/// Renders the pid of a lock's holder, if known.
fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}

/// What to do when a checkpoint cannot be applied.
const RESTART: &str = "remove the checkpoint to read the file from its start";
