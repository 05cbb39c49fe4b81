//! The downstream: where records are delivered, one batch per call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::fence::FenceToken;
use crate::key::RecordKey;
use crate::stream::RecordId;

/// A record and its identity, as a sink receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<R> {
    /// Its identity: its partition and place in it.
    pub id: RecordId,
    /// The record.
    pub record: R,
    /// The key its source or profile named it by; see [`Envelope::key`].
    pub key: Option<RecordKey>,
    /// The token of the lease it was read under, as checked just before
    /// this call (see [`Fence`](crate::Fence)); `None` for records of
    /// sources that hold no leases. A sink may send it, so that the
    /// downstream can refuse a stale writer.
    pub fence: Option<FenceToken>,
}

impl<R> Envelope<R> {
    /// A record named by its `id` alone.
    pub fn new(id: RecordId, record: R) -> Envelope<R> {
        Envelope {
            id,
            record,
            key: None,
            fence: None,
        }
    }

    /// The record's key, for a downstream to deduplicate by: the one its
    /// source or profile named, else [`RecordKey::of_id`] of its `id`.
    /// The same every time this record is sent.
    pub fn key(&self) -> RecordKey {
        self.key.unwrap_or_else(|| RecordKey::of_id(&self.id))
    }
}

/// A downstream API that takes records in batches (of one by default).
///
/// With per-partition ordering, a batch holds the records of one or more
/// partitions, each partition's together and in sequence order, and the
/// processor sends a partition's next records only once every record of
/// it in the previous batch is resolved.
///
/// # Errors
/// [`SendError::Batch`] applies one outcome to the whole batch;
/// [`SendError::PerRecord`] gives one per record, in batch order. What
/// becomes of a record by its outcome:
///
/// | outcome | whose fault | what the processor does | uses an attempt |
/// | --- | --- | --- | --- |
/// | [`SinkError::RateLimited`] | nobody's | waits (the hint, up to `max_retry_after`), retries; the limiter learns | no |
/// | [`SinkError::Unavailable`] | the API's (unreachable) | waits with backoff, retries until delivered or the stop | no |
/// | [`SinkError::Misconfigured`] | the client's configuration | as `Unavailable`; after `circuit_after` such calls in a row the processor halts | no |
/// | [`SinkError::Transient`] | either (ambiguous) | waits with backoff, retries; dead-lettered once its attempts are spent | only while the API is up (see below) |
/// | [`SinkError::Rejected`] | the record's | dead-lettered at once | yes |
///
/// A transient failure uses an attempt when the API is up: some call
/// delivered at least one record since the record's previous failure (for
/// its first failure: since its call started), or else [`Sink::is_up`]
/// says so. During an outage
/// nothing is delivered and `is_up` says `false`, so records wait without
/// spending attempts.
///
/// With per-partition ordering a sink that reports per record must not
/// accept a record after one of the same partition in the same batch that
/// it failed (but for a rejection); otherwise the retried record reaches
/// the API after its successors. A sink that processes a batch in order
/// and stops at the first failure does this; one that stops only the
/// failed record's partition does too.
///
/// # Panics
/// A panic, while making the future or while polling it, is caught: the
/// call counts as a transient failure and the report names the sink.
///
/// # Cancel safety
/// The future may be dropped before it completes (the per-call timeout, or
/// a stop's drain deadline): the records are then retried or handed back,
/// so the downstream may see them again. Idempotency keys built from
/// [`Envelope::id`] let it drop such duplicates.
///
/// ```
/// use async_trait::async_trait;
/// use sluice_processor::{Envelope, SendError, Sink, SinkError};
///
/// /// Accepts batches of up to ten records; refuses larger ones for good.
/// struct Small;
///
/// #[async_trait]
/// impl Sink<String> for Small {
///     async fn send(&self, batch: &[Envelope<String>]) -> Result<(), SendError> {
///         if batch.len() > 10 {
///             return Err(SinkError::Rejected("batch too large".into()).into());
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Sink<R>: Send + Sync + 'static {
    /// Delivers one batch.
    async fn send(&self, batch: &[Envelope<R>]) -> Result<(), SendError>;

    /// Checks, without sending a record, that the downstream can be
    /// reached (for an API: its name resolves, it accepts a connection,
    /// TLS agrees), so that a run can refuse to start before it reads
    /// anything. Returns what it checked, in a few words. By default
    /// checks nothing.
    ///
    /// # Errors
    /// What could not be reached, and why.
    async fn check(&self) -> Result<String, SinkError> {
        Ok("nothing to check".to_owned())
    }

    /// Whether the downstream itself answers as up, asked (at most about
    /// once a second, across workers) when a call failed transiently and
    /// no call delivered anything since it started: then the failures
    /// alone cannot tell an outage from a record that always fails, for
    /// instance the last records of a run, with no other call left to get
    /// through. `true`: the failure uses an attempt of its records (a
    /// poison record is dead-lettered once they are spent); `false`: the
    /// records wait, as in an outage.
    ///
    /// By default `true`: a sink that cannot tell lets an outage spend
    /// attempts rather than keep a poison record waiting forever. A sink
    /// that can ask (a health endpoint, a request that does not send a
    /// record) should. The processor bounds its time by the call timeout;
    /// a panic counts as `false`.
    async fn is_up(&self) -> bool {
        true
    }
}

#[async_trait]
impl<R: Sync + 'static, S: Sink<R> + ?Sized> Sink<R> for Arc<S> {
    async fn send(&self, batch: &[Envelope<R>]) -> Result<(), SendError> {
        (**self).send(batch).await
    }

    async fn check(&self) -> Result<String, SinkError> {
        (**self).check().await
    }

    async fn is_up(&self) -> bool {
        (**self).is_up().await
    }
}

#[async_trait]
impl<R: Sync + 'static, S: Sink<R> + ?Sized> Sink<R> for Box<S> {
    async fn send(&self, batch: &[Envelope<R>]) -> Result<(), SendError> {
        (**self).send(batch).await
    }

    async fn check(&self) -> Result<String, SinkError> {
        (**self).check().await
    }

    async fn is_up(&self) -> bool {
        (**self).is_up().await
    }
}

/// Why a call to the downstream did not deliver (all of) its batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The whole batch failed so.
    #[error(transparent)]
    Batch(#[from] SinkError),
    /// One outcome per record of the batch, in order. A list of the wrong
    /// length fails the whole batch transiently.
    #[error("per-record outcomes")]
    PerRecord(Vec<Result<(), SinkError>>),
}

/// Why a call, or one record of it, was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The API refused the call because its rate limit is reached. The
    /// records were not processed; try again later (after `retry_after` if
    /// given, up to the configured `max_retry_after`).
    #[error("rate limited{}", retry_after_suffix(*.retry_after))]
    RateLimited {
        /// How long the API asks the client to wait, when it says.
        retry_after: Option<Duration>,
    },
    /// The call failed in a way that may succeed if retried, and that may
    /// be the record's fault or the API's (a 5xx, a 408, a timeout). It
    /// uses an attempt of the record only while other calls get through
    /// (see [`Sink`]).
    #[error("transient failure: {0}")]
    Transient(String),
    /// The API refused the record for good; retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The API could not be reached at all (connection refused, a name
    /// that does not resolve, a TLS failure, a connection reset before any
    /// response): never the record's fault. The record waits and is
    /// retried, however long it takes, without using an attempt.
    #[error("API unavailable: {0}")]
    Unavailable(String),
    /// The API answered that the client's configuration is wrong (a wrong
    /// URL or credentials: 401, 403, 404, 405, a redirect): never the
    /// record's fault. Retried as [`Unavailable`](Self::Unavailable);
    /// after `circuit_after` calls in a row answered so, with no delivery
    /// in between, the processor halts (see
    /// [`Report::halted`](crate::Report::halted)).
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

fn retry_after_suffix(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|wait| format!(" (retry after {wait:?})"))
        .unwrap_or_default()
}
