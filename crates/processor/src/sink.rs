//! The downstream: where records are delivered.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_models::ProcessedRecord;

/// A downstream API that accepts records one call at a time.
///
/// The processor calls `send` at most once at a time per (source, partition)
/// when ordering is on, retries on [`SinkError::Transient`], waits on
/// [`SinkError::RateLimited`], and dead-letters on [`SinkError::Rejected`].
///
/// A `send` future may be dropped before it completes (when a stop's drain
/// deadline passes); an implementation should then behave as if the call had
/// not been made, or document otherwise.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Delivers one record.
    async fn send(&self, record: &ProcessedRecord) -> Result<(), SinkError>;
}

#[async_trait]
impl<S: Sink + ?Sized> Sink for Arc<S> {
    async fn send(&self, record: &ProcessedRecord) -> Result<(), SinkError> {
        (**self).send(record).await
    }
}

/// Why a call to the downstream did not deliver the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The API refused the call because its rate limit is reached. The record
    /// was not processed; try again later (after `retry_after` if given).
    #[error("rate limited{}", retry_after_suffix(*.retry_after))]
    RateLimited {
        /// How long the API asks the client to wait, when it says.
        retry_after: Option<Duration>,
    },
    /// The call failed in a way that may succeed if retried.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The API refused this record for good; retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
}

fn retry_after_suffix(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|wait| format!(" (retry after {wait:?})"))
        .unwrap_or_default()
}
