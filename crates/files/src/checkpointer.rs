//! The checkpointer: saves a path's checkpoint soon after it changes
//! (coalesced), and on demand.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::progress::{Position, Progress};

/// The default shortest interval between two checkpoint writes (200 ms):
/// the changes within it are coalesced into one write.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// The shortest interval between checkpoints; shorter ones are raised to it.
pub const MIN_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(1);

/// Saves the [checkpoint](Progress::checkpoint) of a path's [`Progress`]
/// (the watermark of each of its files, and the lines resolved past it) to
/// a checkpoint file: soon after it changes, and on [`flush`](Self::flush).
///
/// A background task (on the tokio runtime it was started in) waits for
/// the progress to change (a line resolved, a file rotated or done). The
/// first change is saved at once, so that a run killed in its first
/// second keeps what it resolved; after each write it waits `interval`
/// (on tokio's clock) before the next, so that the changes made meanwhile
/// are coalesced into one write: at most one write per interval, and a
/// crash loses at most the resolutions of the last interval (their lines
/// are sent again). It saves
/// ([`Checkpoint::save`](crate::Checkpoint::save): atomic, synced) on a
/// blocking thread, only when the checkpoint differs from the one saved
/// last. A failed save is logged, kept for
/// [`last_error`](Self::last_error), and tried again after the interval.
/// Saves never overlap, even when a `flush` is cancelled halfway, and the
/// saved watermark never goes back.
///
/// Call [`finish`](Self::finish) once the processor is done (after
/// `finish()` or `stop()`, when every line is resolved) to save the final
/// checkpoint. Dropped, it stops its task without a last save.
///
/// One checkpointer per checkpoint file: a [`LineSource`](crate::LineSource)
/// resumed from a checkpoint holds its [`CheckpointLock`](crate::CheckpointLock),
/// so that no other run (or other source of this one) reads or saves it
/// meanwhile; [`finish`](Self::finish) releases it.
#[derive(Debug)]
pub struct Checkpointer {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    file: PathBuf,
    progress: Progress,
    /// The checkpoint saved last (or read from, before any save). Held for
    /// the whole of a save, on the blocking thread.
    saved: Mutex<Checkpoint>,
    last_error: Mutex<Option<String>>,
    /// How many checkpoint files it wrote.
    writes: AtomicU64,
}

impl Checkpointer {
    /// Saves `progress` to `checkpoint` when it changes, at most once per
    /// `interval` (at least [`MIN_CHECKPOINT_INTERVAL`]; typically
    /// [`DEFAULT_CHECKPOINT_INTERVAL`]), the first change at once. Must be
    /// called within a tokio runtime.
    pub fn start(
        checkpoint: impl Into<PathBuf>,
        progress: Progress,
        interval: Duration,
    ) -> Checkpointer {
        let interval = interval.max(MIN_CHECKPOINT_INTERVAL);
        let shared = Arc::new(Shared {
            file: checkpoint.into(),
            saved: Mutex::new(progress.checkpoint()),
            progress,
            last_error: Mutex::new(None),
            writes: AtomicU64::new(0),
        });
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                let mut failed = false;
                loop {
                    // A failed save is tried again after the interval,
                    // changed or not.
                    if !failed {
                        tokio::select! {
                            biased;
                            _ = &mut stopped => return,
                            () = shared.progress.changed() => {}
                        }
                    }
                    // Errors are kept and logged by `save`.
                    failed = save(&shared).await.is_err();
                    tokio::select! {
                        biased;
                        _ = &mut stopped => return,
                        () = tokio::time::sleep(interval) => {}
                    }
                }
            }
        });
        Checkpointer {
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The checkpoint file.
    pub fn file(&self) -> &Path {
        &self.shared.file
    }

    /// The progress it saves.
    pub fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    /// The position last saved (or resumed from, before any save).
    pub fn saved(&self) -> Position {
        lock(&self.shared.saved).position()
    }

    /// How many times it wrote the checkpoint file (a save of an unchanged
    /// checkpoint writes nothing).
    pub fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }

    /// The error of the last save, if it failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.last_error).clone()
    }

    /// Saves the watermark now if it moved since the last save, and
    /// returns the position saved last (before any save: the one reading
    /// started from, which a fresh start has not written).
    ///
    /// # Errors
    /// [`CheckpointError::Write`]; the checkpoint file is then left as it
    /// was.
    pub async fn flush(&self) -> Result<Position, CheckpointError> {
        save(&self.shared).await
    }

    /// Stops the periodic saves (waiting for one under way), saves the
    /// final watermark, and releases the checkpoint's lock (that of the
    /// [`LineSource`](crate::LineSource) the progress is of), even when the
    /// save failed.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn finish(mut self) -> Result<Position, CheckpointError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(%error, "the checkpointer task failed");
        }
        let saved = self.flush().await;
        self.shared.progress.release();
        saved
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // A save under way on its blocking thread completes regardless.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Saves the watermark if it moved, on a blocking thread.
async fn save(shared: &Arc<Shared>) -> Result<Position, CheckpointError> {
    let worker = Arc::clone(shared);
    let saved = tokio::task::spawn_blocking(move || save_blocking(&worker))
        .await
        .unwrap_or_else(|error| {
            Err(CheckpointError::Write {
                checkpoint: shared.file.clone(),
                error: std::io::Error::other(format!(
                    "the save panicked or was cancelled: {error}"
                )),
            })
        });
    match &saved {
        Ok(_) => *lock(&shared.last_error) = None,
        Err(error) => {
            tracing::warn!(%error, "checkpoint not saved");
            *lock(&shared.last_error) = Some(error.to_string());
        }
    }
    saved
}

fn save_blocking(shared: &Shared) -> Result<Position, CheckpointError> {
    let mut saved = lock(&shared.saved);
    let checkpoint = shared.progress.checkpoint();
    let at = checkpoint.position();
    if checkpoint == *saved {
        return Ok(at);
    }
    checkpoint.save(&shared.file)?;
    shared.progress.checkpointed(at.offset);
    shared.writes.fetch_add(1, Ordering::Relaxed);
    *saved = checkpoint;
    Ok(at)
}
