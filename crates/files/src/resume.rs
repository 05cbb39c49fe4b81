//! Resuming a path from its checkpoint: finding each file the checkpoint
//! records, checking it is that file, and positioning it where its lines
//! stopped being done.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt};

use crate::checkpoint::{Checkpoint, CheckpointError, FINGERPRINT_BYTES, FileId};
use crate::lock::CheckpointLock;
use crate::open::{Bytes, OpenFile, find_in};
use crate::progress::FileStart;
use crate::source::{SourceError, SourceOptions};

/// A file ready to be read from where its checkpoint stands.
pub(crate) struct Planned {
    pub(crate) bytes: Bytes,
    pub(crate) start: FileStart,
}

/// What to read at a path: the files its checkpoint records, oldest first,
/// then the file at the path when it is a new one.
pub(crate) struct Plan {
    /// The path, canonical.
    pub(crate) path: PathBuf,
    pub(crate) first: Planned,
    pub(crate) then: Vec<Planned>,
    pub(crate) fresh: Option<OpenFile>,
    /// The checkpoint's lock, held while the path is read.
    pub(crate) lock: Option<CheckpointLock>,
}

/// What to read at `path`, from the checkpoint saved at `checkpoint_file`
/// when there is one (else the file at the path from its start).
///
/// # Errors
/// [`SourceError`] when the file at `path` cannot be opened (or followed),
/// the checkpoint cannot be read, or a file it records cannot be found or
/// is not as it recorded.
pub(crate) async fn plan(
    path: &Path,
    checkpoint_file: Option<&Path>,
    options: &SourceOptions,
) -> Result<Plan, SourceError> {
    let buffer = options.buffer_bytes;
    // Before the checkpoint is read: another run may be about to save it.
    let lock = match checkpoint_file {
        Some(file) => Some(CheckpointLock::acquire_async(file).await?),
        None => None,
    };
    let at_path = OpenFile::open(path).await?;
    if options.follow && at_path.compression.is_some() {
        return Err(SourceError::CannotFollow {
            input: path.to_owned(),
            why: "it is compressed (a compressed file is read once, to its end)",
        });
    }
    let checkpoint = match checkpoint_file {
        Some(file) => Checkpoint::load(file).await?.map(|loaded| (file, loaded)),
        None => None,
    };
    let Some((checkpoint_file, mut checkpoint)) = checkpoint else {
        let start = FileStart {
            id: at_path.id,
            ..FileStart::default()
        };
        return Ok(Plan {
            path: at_path.canonical.clone(),
            first: Planned {
                bytes: at_path.bytes(buffer),
                start,
            },
            then: Vec::new(),
            fresh: None,
            lock,
        });
    };
    let canonical = at_path.canonical.clone();
    if checkpoint.path != canonical {
        return Err(CheckpointError::OtherFile {
            checkpoint: checkpoint_file.to_owned(),
            recorded: checkpoint.path,
            file: canonical,
        }
        .into());
    }
    let mut entries = std::mem::take(&mut checkpoint.rotated);
    entries.push(checkpoint);
    let mut at_path = Some(at_path);
    let mut planned = Vec::with_capacity(entries.len());
    for entry in &entries {
        let here = match (entry.file_id, &at_path) {
            (None, Some(_)) => true,
            (Some(id), Some(file)) => file.id == Some(id),
            (_, None) => false,
        };
        let file = match at_path.take_if(|_| here) {
            Some(file) => file,
            None => find_rotated(&canonical, entry.file_id, checkpoint_file).await?,
        };
        // The file's own identity: a checkpoint written without one (by
        // an earlier version) gets it from now on.
        let (found, id) = (file.canonical.clone(), file.id);
        let (bytes, prefix) = position(file, entry, checkpoint_file, &found, buffer).await?;
        planned.push(Planned {
            bytes,
            start: FileStart {
                start: entry.position(),
                prefix,
                id,
                sequence_base: entry.sequence_base,
                resolved: entry.resolved.clone(),
            },
        });
    }
    let mut planned = planned.into_iter();
    // Never: a checkpoint records at least its own file.
    let Some(first) = planned.next() else {
        return Err(CheckpointError::Gone {
            checkpoint: checkpoint_file.to_owned(),
            file: canonical,
            file_id: None,
        }
        .into());
    };
    Ok(Plan {
        path: canonical,
        first,
        then: planned.collect(),
        fresh: at_path,
        lock,
    })
}

/// The file with identity `id` rotated away from `path`, in its directory.
async fn find_rotated(
    path: &Path,
    id: Option<FileId>,
    checkpoint_file: &Path,
) -> Result<OpenFile, SourceError> {
    let gone = || {
        SourceError::from(CheckpointError::Gone {
            checkpoint: checkpoint_file.to_owned(),
            file: path.to_owned(),
            file_id: id,
        })
    };
    let (Some(id), Some(dir)) = (id, path.parent()) else {
        return Err(gone());
    };
    let found = find_in(dir, id).await.map_err(|error| SourceError::Io {
        path: dir.to_owned(),
        error,
    })?;
    let Some(found) = found else {
        return Err(gone());
    };
    let file = OpenFile::open(&found).await?;
    // Replaced between the listing and the opening.
    if file.id != Some(id) {
        return Err(gone());
    }
    Ok(file)
}

/// Checks that `file` is the one `checkpoint` records (its first bytes,
/// its length, a line start at the offset), and positions it at the
/// offset. Returns its bytes from there, and its first bytes up to the
/// offset (at most [`FINGERPRINT_BYTES`]).
async fn position(
    file: OpenFile,
    checkpoint: &Checkpoint,
    checkpoint_file: &Path,
    path: &Path,
    buffer: usize,
) -> Result<(Bytes, Vec<u8>), SourceError> {
    let offset = checkpoint.offset;
    let keep = offset.min(FINGERPRINT_BYTES as u64);
    let io = |error| SourceError::Io {
        path: path.to_owned(),
        error,
    };
    let shorter = |len| CheckpointError::Shorter {
        checkpoint: checkpoint_file.to_owned(),
        file: path.to_owned(),
        offset,
        len,
    };
    let mid_line = || CheckpointError::MidLine {
        checkpoint: checkpoint_file.to_owned(),
        file: path.to_owned(),
        offset,
    };
    let mut prefix = Vec::new();
    if file.compression.is_none() {
        let len = file.len;
        if len < offset {
            return Err(shorter(len).into());
        }
        let mut plain = file.file;
        (&mut plain)
            .take(keep)
            .read_to_end(&mut prefix)
            .await
            .map_err(io)?;
        check_fingerprint(checkpoint, checkpoint_file, path, &prefix)?;
        // A line ends just before the offset, unless the file ends there
        // (a last line without terminator, already done).
        if offset > 0 && offset < len {
            let mut before = [0u8; 1];
            plain.seek(SeekFrom::Start(offset - 1)).await.map_err(io)?;
            plain.read_exact(&mut before).await.map_err(io)?;
            if before[0] != b'\n' {
                return Err(mid_line().into());
            }
        }
        plain.seek(SeekFrom::Start(offset)).await.map_err(io)?;
        let file = OpenFile {
            file: plain,
            ..file
        };
        return Ok((file.bytes(buffer), prefix));
    }
    // Compressed: decompress from the start, and skip to the offset.
    let mut bytes = file.bytes(buffer);
    (&mut bytes)
        .take(keep)
        .read_to_end(&mut prefix)
        .await
        .map_err(io)?;
    if (prefix.len() as u64) < keep {
        return Err(shorter(prefix.len() as u64).into());
    }
    check_fingerprint(checkpoint, checkpoint_file, path, &prefix)?;
    let mut last = prefix.last().copied();
    if offset > keep {
        // Skip to the byte before the offset, and read it.
        let skip = offset - keep - 1;
        let skipped = tokio::io::copy(&mut (&mut bytes).take(skip), &mut tokio::io::sink())
            .await
            .map_err(io)?;
        let mut before = [0u8; 1];
        match bytes.read(&mut before).await.map_err(io)? {
            1 => last = Some(before[0]),
            _ => return Err(shorter(keep + skipped).into()),
        }
    }
    let more = !bytes.fill_buf().await.map_err(io)?.is_empty();
    if offset > 0 && more && last != Some(b'\n') {
        return Err(mid_line().into());
    }
    Ok((bytes, prefix))
}

/// Checks the file's first bytes, `prefix` (at least as many as the
/// fingerprint covers), against `checkpoint`'s fingerprint.
fn check_fingerprint(
    checkpoint: &Checkpoint,
    checkpoint_file: &Path,
    path: &Path,
    prefix: &[u8],
) -> Result<(), CheckpointError> {
    let covered = checkpoint
        .fingerprint_bytes
        .min(checkpoint.offset)
        .min(FINGERPRINT_BYTES as u64);
    let bytes = &prefix[..usize::try_from(covered)
        .unwrap_or(usize::MAX)
        .min(prefix.len())];
    if covered != checkpoint.fingerprint_bytes || !checkpoint.matches(bytes) {
        return Err(CheckpointError::Fingerprint {
            checkpoint: checkpoint_file.to_owned(),
            file: path.to_owned(),
            bytes: checkpoint.fingerprint_bytes,
        });
    }
    Ok(())
}
