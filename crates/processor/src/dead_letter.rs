//! The dead-letter outlet: where records go that will not be delivered.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::stream::RecordId;

/// A record that will not be delivered, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter<R> {
    /// The record's identity.
    pub id: RecordId,
    /// The record as it would have been sent, when one was made.
    pub record: Option<R>,
    /// The input as received, when the transform could make no record of it.
    pub raw: Option<String>,
    /// Why it was not delivered.
    pub reason: DeadLetterReason,
}

/// Why a record was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterReason {
    /// The transform refused it (malformed or failed validation); never sent.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The transform panicked on it; never sent.
    #[error("the transform panicked: {0}")]
    TransformPanicked(String),
    /// Every allowed attempt failed.
    #[error("gave up after {attempts} attempts; last error: {last_error}")]
    RetriesExhausted {
        /// Attempts made, the first included.
        attempts: u32,
        /// The last failure's message.
        last_error: String,
    },
    /// The record kept failing on its own (transient failures while the
    /// API was up) for longer than `retry.max_elapsed`, from its first
    /// such failure. Waiting on the limits or through an outage never
    /// leads here.
    #[error("not delivered within {limit:?}; last error: {last_error}")]
    TimedOut {
        /// The configured bound.
        limit: Duration,
        /// The last failure's message, or what it was waiting for.
        last_error: String,
    },
    /// The downstream refused the record for good.
    #[error("rejected by the downstream: {0}")]
    Rejected(String),
}

impl DeadLetterReason {
    /// A short stable name for the kind of reason, for counting.
    pub fn kind(&self) -> DeadLetterKind {
        match self {
            DeadLetterReason::Invalid(_) => DeadLetterKind::Invalid,
            DeadLetterReason::TransformPanicked(_) => DeadLetterKind::TransformPanicked,
            DeadLetterReason::RetriesExhausted { .. } => DeadLetterKind::RetriesExhausted,
            DeadLetterReason::TimedOut { .. } => DeadLetterKind::TimedOut,
            DeadLetterReason::Rejected(_) => DeadLetterKind::Rejected,
        }
    }
}

/// The kinds of [`DeadLetterReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    /// [`DeadLetterReason::Invalid`]
    Invalid,
    /// [`DeadLetterReason::TransformPanicked`]
    TransformPanicked,
    /// [`DeadLetterReason::RetriesExhausted`]
    RetriesExhausted,
    /// [`DeadLetterReason::TimedOut`]
    TimedOut,
    /// [`DeadLetterReason::Rejected`]
    Rejected,
}

impl DeadLetterKind {
    /// Every kind, in declaration order.
    pub const ALL: [DeadLetterKind; 5] = [
        DeadLetterKind::Invalid,
        DeadLetterKind::TransformPanicked,
        DeadLetterKind::RetriesExhausted,
        DeadLetterKind::TimedOut,
        DeadLetterKind::Rejected,
    ];

    /// The snake_case name, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Invalid => "invalid",
            DeadLetterKind::TransformPanicked => "transform_panicked",
            DeadLetterKind::RetriesExhausted => "retries_exhausted",
            DeadLetterKind::TimedOut => "timed_out",
            DeadLetterKind::Rejected => "rejected",
        }
    }
}

/// Keeps dead letters (a file, a topic, a table).
///
/// The processor counts a letter as dead-lettered, and resolves its
/// acknowledgement so, only once `dead_letter` returns `Ok`.
///
/// # Errors
/// An `Err` (the letter could not be kept) hands the record back, counted
/// as handed back and resolved as not processed, so that it is offered
/// again rather than lost.
///
/// # Panics
/// A panic, while making the future or polling it, is caught and treated
/// as an `Err`; the report names the outlet.
///
/// # Cancel safety
/// At a stop's drain deadline the future is dropped and the record handed
/// back: an outlet that may have kept the letter anyway will see it again.
///
/// ```
/// use async_trait::async_trait;
/// use sluice_processor::{DeadLetter, DeadLetterSink};
///
/// /// Logs each dead letter's identity and reason.
/// struct Log;
///
/// #[async_trait]
/// impl DeadLetterSink<String> for Log {
///     async fn dead_letter(&self, letter: &DeadLetter<String>) -> Result<(), String> {
///         eprintln!("{}: {}", letter.id, letter.reason);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait DeadLetterSink<R>: Send + Sync + 'static {
    /// Keeps one dead letter.
    async fn dead_letter(&self, letter: &DeadLetter<R>) -> Result<(), String>;
}

#[async_trait]
impl<R: Sync + 'static, D: DeadLetterSink<R> + ?Sized> DeadLetterSink<R> for Arc<D> {
    async fn dead_letter(&self, letter: &DeadLetter<R>) -> Result<(), String> {
        (**self).dead_letter(letter).await
    }
}

/// An in-memory dead-letter outlet. Clones share the same letters.
///
/// ```
/// use sluice_processor::DeadLetterQueue;
///
/// let queue: DeadLetterQueue<String> = DeadLetterQueue::default();
/// let handle = queue.clone();
/// // ... give `queue` to a processor, run it ...
/// assert!(handle.take().is_empty());
/// ```
#[derive(Debug)]
pub struct DeadLetterQueue<R> {
    letters: Arc<Mutex<Vec<DeadLetter<R>>>>,
}

impl<R> Default for DeadLetterQueue<R> {
    fn default() -> Self {
        DeadLetterQueue {
            letters: Arc::default(),
        }
    }
}

impl<R> Clone for DeadLetterQueue<R> {
    fn clone(&self) -> Self {
        DeadLetterQueue {
            letters: Arc::clone(&self.letters),
        }
    }
}

impl<R> DeadLetterQueue<R> {
    /// Removes and returns every letter received so far.
    pub fn take(&self) -> Vec<DeadLetter<R>> {
        std::mem::take(&mut *self.letters.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many letters are held.
    pub fn len(&self) -> usize {
        self.letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no letter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl<R: Clone + Send + Sync + 'static> DeadLetterSink<R> for DeadLetterQueue<R> {
    async fn dead_letter(&self, letter: &DeadLetter<R>) -> Result<(), String> {
        self.letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(letter.clone());
        Ok(())
    }
}
