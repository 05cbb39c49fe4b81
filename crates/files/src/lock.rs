//! The lock that keeps a checkpoint to one run: an OS advisory lock on a
//! file beside it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointError;

/// An exclusive hold on a checkpoint: an advisory lock (`flock` on Unix,
/// `LockFileEx` on Windows) on `<checkpoint>.lock`, taken before the
/// checkpoint is read and held until this is dropped.
///
/// The lock file holds the process id of the run holding it, for the
/// error another run gets. It is left in place when the lock is released
/// (removing it would let two runs lock two different files of the same
/// name); the operating system releases the lock when the process ends,
/// however it ends (`kill -9` included).
#[derive(Debug)]
pub struct CheckpointLock {
    path: PathBuf,
    _file: File,
}

impl CheckpointLock {
    /// The lock file of the checkpoint at `checkpoint`: its name with
    /// `.lock` appended, in the same directory.
    pub fn path_of(checkpoint: &Path) -> PathBuf {
        let mut name = checkpoint.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the checkpoint at `checkpoint`, at once, or fails.
    ///
    /// Blocking (a few small file operations).
    ///
    /// # Errors
    /// [`CheckpointError::InUse`] when another run (or another source of
    /// this one) holds it; [`CheckpointError::Lock`] when the lock file
    /// cannot be created or locked.
    pub fn acquire(checkpoint: &Path) -> Result<CheckpointLock, CheckpointError> {
        let path = CheckpointLock::path_of(checkpoint);
        let failed = |error| CheckpointError::Lock {
            checkpoint: checkpoint.to_owned(),
            lock: path.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder's pid, if it could be read: the message is
                // the same without it.
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(CheckpointError::InUse {
                    checkpoint: checkpoint.to_owned(),
                    pid,
                });
            }
            Err(TryLockError::Error(error)) => return Err(failed(error)),
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        // The pid only serves the message of another run.
        if let Err(error) = written {
            tracing::debug!(lock = %path.display(), %error, "cannot write the pid");
        }
        Ok(CheckpointLock { path, _file: file })
    }

    /// Takes the lock of the checkpoint at `checkpoint` on a blocking
    /// thread: see [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub async fn acquire_async(checkpoint: &Path) -> Result<CheckpointLock, CheckpointError> {
        let owned = checkpoint.to_owned();
        tokio::task::spawn_blocking(move || CheckpointLock::acquire(&owned))
            .await
            .unwrap_or_else(|error| {
                Err(CheckpointError::Lock {
                    checkpoint: checkpoint.to_owned(),
                    lock: CheckpointLock::path_of(checkpoint),
                    error: io::Error::other(format!("the locking task failed: {error}")),
                })
            })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
