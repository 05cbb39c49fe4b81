//! The dead-letter outlet: where records go that cannot be delivered.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::Serialize;
use sluice_models::{ModelError, ProcessedRecord, RecordKey};

/// A record that will not be delivered, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The record's identity.
    pub key: RecordKey,
    /// The record as it would have been sent.
    pub record: ProcessedRecord,
    /// Why it was not delivered.
    pub reason: DeadLetterReason,
}

/// Why a record was dead-lettered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeadLetterReason {
    /// The transformed record failed validation; it was never sent.
    #[error("failed validation: {0}")]
    Invalid(ModelError),
    /// Every allowed attempt failed.
    #[error("gave up after {attempts} attempts; last error: {last_error}")]
    RetriesExhausted {
        /// Attempts made, the first included.
        attempts: u32,
        /// The last failure's message.
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
            DeadLetterReason::RetriesExhausted { .. } => DeadLetterKind::RetriesExhausted,
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
    /// [`DeadLetterReason::RetriesExhausted`]
    RetriesExhausted,
    /// [`DeadLetterReason::Rejected`]
    Rejected,
}

/// Receives dead letters. The processor counts each letter before handing
/// it over; the outlet is responsible for keeping it.
#[async_trait]
pub trait DeadLetterSink: Send + Sync + 'static {
    /// Takes one dead letter.
    async fn dead_letter(&self, letter: DeadLetter);
}

/// An in-memory dead-letter outlet. Clones share the same letters.
///
/// ```
/// use sluice_processor::DeadLetterQueue;
///
/// let queue = DeadLetterQueue::default();
/// let handle = queue.clone();
/// // ... give `queue` to a processor, run it ...
/// assert!(handle.take().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQueue {
    letters: Arc<Mutex<Vec<DeadLetter>>>,
}

impl DeadLetterQueue {
    /// Removes and returns every letter received so far.
    pub fn take(&self) -> Vec<DeadLetter> {
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
impl DeadLetterSink for DeadLetterQueue {
    async fn dead_letter(&self, letter: DeadLetter) {
        self.letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(letter);
    }
}

#[async_trait]
impl<D: DeadLetterSink + ?Sized> DeadLetterSink for Arc<D> {
    async fn dead_letter(&self, letter: DeadLetter) {
        (**self).dead_letter(letter).await
    }
}
