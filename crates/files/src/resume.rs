//! Resuming a path from its checkpoint: finding each file the checkpoint
//! records, checking it is that file, and positioning it where its lines
//! stopped being done.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use tokio::io::AsyncBufReadExt;

use crate::checkpoint::{
    Checkpoint, CheckpointError, FINGERPRINT_BYTES, FINGERPRINT_BYTES_V1, FileId,
};
use crate::lock::CheckpointLock;
use crate::open::{Bytes, OpenFile, find_in};
use crate::progress::FileStart;
use crate::source::{SourceError, SourceOptions};

/// A file ready to be read from where its checkpoint stands.
pub(crate) struct Planned {
    pub(crate) bytes: Bytes,
    pub(crate) start: FileStart,
    /// The file's size in the bytes its offsets count, when known (not
    /// for a compressed file, whose offsets count decompressed bytes).
    pub(crate) size: Option<u64>,
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
            prefix: at_path.head.clone(),
            ..FileStart::default()
        };
        let size = at_path.size();
        return Ok(Plan {
            path: at_path.canonical.clone(),
            first: Planned {
                bytes: at_path.bytes(buffer),
                start,
                size,
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
        let (found, id, size) = (file.canonical.clone(), file.id, file.size());
        let (bytes, prefix) = position(file, entry, checkpoint_file, &found, buffer).await?;
        planned.push(Planned {
            bytes,
            size,
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

/// Checks that `file` is the one `checkpoint` records (its fingerprint,
/// its length, the lines before the offset, a line start at the offset),
/// and positions it at the offset. Returns its bytes from there, and the
/// first bytes its fingerprint covers from now on.
async fn position(
    mut file: OpenFile,
    checkpoint: &Checkpoint,
    checkpoint_file: &Path,
    path: &Path,
    buffer: usize,
) -> Result<(Bytes, Vec<u8>), SourceError> {
    let offset = checkpoint.offset;
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
    let head = std::mem::take(&mut file.head);
    let prefix = check_fingerprint(checkpoint, checkpoint_file, path, head)?;
    let (bytes, scan) = if file.compression.is_none() {
        let len = file.len;
        if len < offset {
            return Err(shorter(len).into());
        }
        let plain = file.file.into_std().await;
        let (plain, mut scan) = tokio::task::spawn_blocking(move || scan_plain(plain, offset))
            .await
            .map_err(|error| io(std::io::Error::other(error)))?
            .map_err(io)?;
        scan.more = offset < len;
        let file = OpenFile {
            file: tokio::fs::File::from_std(plain),
            ..file
        };
        (file.bytes(buffer), scan)
    } else {
        // Compressed: decompress from the start, counting to the offset.
        let mut bytes = file.bytes(buffer);
        let mut scan = Scan::default();
        while scan.read < offset {
            let chunk = bytes.fill_buf().await.map_err(io)?;
            if chunk.is_empty() {
                break;
            }
            let take = chunk
                .len()
                .min(usize::try_from(offset - scan.read).unwrap_or(usize::MAX));
            scan.count(&chunk[..take]);
            bytes.consume(take);
        }
        if scan.read < offset {
            return Err(shorter(scan.read).into());
        }
        scan.more = !bytes.fill_buf().await.map_err(io)?.is_empty();
        (bytes, scan)
    };
    // A line ends just before the offset, unless the file ends there (a
    // last line without terminator, done, in a version 1 checkpoint).
    let line_start = offset == 0 || scan.last == Some(b'\n');
    if !line_start && scan.more {
        return Err(CheckpointError::MidLine {
            checkpoint: checkpoint_file.to_owned(),
            file: path.to_owned(),
            offset,
        }
        .into());
    }
    let found = scan.newlines + u64::from(!line_start);
    if found != checkpoint.lines {
        return Err(CheckpointError::LineCount {
            checkpoint: checkpoint_file.to_owned(),
            file: path.to_owned(),
            offset,
            lines: checkpoint.lines,
            found,
        }
        .into());
    }
    Ok((bytes, prefix))
}

/// What a file holds before an offset.
#[derive(Debug, Default)]
struct Scan {
    /// Bytes read.
    read: u64,
    newlines: u64,
    /// The last byte read.
    last: Option<u8>,
    /// Whether the file goes on past the offset.
    more: bool,
}

impl Scan {
    fn count(&mut self, bytes: &[u8]) {
        self.read += bytes.len() as u64;
        self.newlines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        if let Some(&last) = bytes.last() {
            self.last = Some(last);
        }
    }
}

/// Counts the lines of the plain file `file` before `offset` (it has at
/// least `offset` bytes) and leaves it at `offset`. Blocking.
fn scan_plain(mut file: std::fs::File, offset: u64) -> std::io::Result<(std::fs::File, Scan)> {
    use std::io::{Read as _, Seek as _};
    file.seek(SeekFrom::Start(0))?;
    let mut scan = Scan::default();
    let mut buffer = vec![0u8; 256 * 1024];
    while scan.read < offset {
        let want = buffer
            .len()
            .min(usize::try_from(offset - scan.read).unwrap_or(usize::MAX));
        let got = file.read(&mut buffer[..want])?;
        if got == 0 {
            break;
        }
        scan.count(&buffer[..got]);
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok((file, scan))
}

/// Checks the file's first bytes as opened, `head`, against
/// `checkpoint`'s fingerprint; returns the first bytes the fingerprint
/// covers from now on: those it covered (version 2), or `head` (version 1,
/// whose fingerprint covered at most 4 KiB before the offset; and a
/// checkpoint that covered none).
fn check_fingerprint(
    checkpoint: &Checkpoint,
    checkpoint_file: &Path,
    path: &Path,
    mut head: Vec<u8>,
) -> Result<Vec<u8>, CheckpointError> {
    let covered = checkpoint.fingerprint_bytes;
    let within = if checkpoint.version == 1 {
        covered
            == covered
                .min(checkpoint.offset)
                .min(FINGERPRINT_BYTES_V1 as u64)
    } else {
        covered <= FINGERPRINT_BYTES as u64
    };
    let bytes = usize::try_from(covered).ok().and_then(|n| head.get(..n));
    if !within || !bytes.is_some_and(|bytes| checkpoint.matches(bytes)) {
        return Err(CheckpointError::Fingerprint {
            checkpoint: checkpoint_file.to_owned(),
            file: path.to_owned(),
            bytes: covered,
        });
    }
    if checkpoint.version > 1 && covered > 0 {
        head.truncate(usize::try_from(covered).unwrap_or(usize::MAX));
    }
    Ok(head)
}
