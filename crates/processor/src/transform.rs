//! The transform: what a pipeline's profile does to each record on intake.

use tokio::time::Instant;

use crate::key::RecordKey;
use crate::stream::{RecordId, StreamName, StreamNameError};

/// Turns what a source hands over into the record to deliver, or rejects
/// it. A *profile* of the pipeline (the original test's `seed` profile, the
/// open `json` profile) is a `Transform`.
///
/// It runs once per record on an intake task, synchronously: it should be
/// cheap and must not block. It decides the record's identity
/// ([`RecordId`]): from the payload, or from the source's position that
/// the input type carries.
///
/// # Errors
/// A [`Rejected`] record is dead-lettered with its reason and never sent.
///
/// # Panics
/// A panic is caught: the record is dead-lettered (reason
/// [`TransformPanicked`](crate::DeadLetterReason::TransformPanicked)),
/// the report names the transform, and the pipeline goes on.
///
/// ```
/// use sluice_processor::{Context, RecordId, Rejected, StreamName, Transform, Transformed};
///
/// /// Upper-cases lines; refuses empty ones.
/// struct Shout;
///
/// impl Transform<(u64, String)> for Shout {
///     type Output = String;
///     fn transform(
///         &self,
///         (line, text): (u64, String),
///         context: &mut Context,
///     ) -> Result<Transformed<String>, Rejected<String>> {
///         let stream = context.stream("lines").expect("a valid name");
///         let id = RecordId { stream, partition: 0, sequence: line };
///         if text.is_empty() {
///             return Err(Rejected::new(id, "empty line"));
///         }
///         Ok(Transformed::new(id, text.to_uppercase()))
///     }
/// }
///
/// let mut context = Context::new(0.0);
/// let done = Shout.transform((1, "hi".into()), &mut context).unwrap();
/// assert_eq!(done.record, "HI");
/// assert_eq!(done.id.to_string(), "lines/0#1");
/// ```
pub trait Transform<In>: Send + Sync + 'static {
    /// The record the sink receives.
    type Output: Send + Sync + 'static;

    /// Transforms and validates `input`.
    fn transform(
        &self,
        input: In,
        context: &mut Context,
    ) -> Result<Transformed<Self::Output>, Rejected<Self::Output>>;
}

/// What a transform is told, and a cache of stream names, per intake task.
#[derive(Debug)]
pub struct Context {
    now: f64,
    taken_at: Instant,
    recent: Vec<StreamName>,
}

/// Stream names a context remembers, most recent first.
const RECENT_NAMES: usize = 8;

impl Context {
    /// A context whose clock reads `now` (epoch seconds).
    pub fn new(now: f64) -> Context {
        Context {
            now,
            taken_at: Instant::now(),
            recent: Vec::with_capacity(RECENT_NAMES),
        }
    }

    /// The processor's clock when intake took the record, epoch seconds.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// When intake took the record, on tokio's clock: to measure how long
    /// the transform takes without reading the clock twice.
    pub fn taken_at(&self) -> Instant {
        self.taken_at
    }

    pub(crate) fn set_now(&mut self, now: f64, taken_at: Instant) {
        self.now = now;
        self.taken_at = taken_at;
    }

    /// The stream named `name`, from a small per-task cache before the
    /// process-wide table.
    ///
    /// # Errors
    /// As [`StreamName::new`].
    pub fn stream(&mut self, name: &str) -> Result<StreamName, StreamNameError> {
        if let Some(&known) = self.recent.iter().find(|known| known.as_str() == name) {
            return Ok(known);
        }
        let interned = StreamName::new(name)?;
        if self.recent.len() == RECENT_NAMES {
            self.recent.pop();
        }
        self.recent.insert(0, interned);
        Ok(interned)
    }
}

/// A record ready for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformed<R> {
    /// Its identity.
    pub id: RecordId,
    /// The record to send.
    pub record: R,
    /// Its priority, for metrics (higher is more urgent; 0 when unknown).
    pub priority: u8,
    /// Its encoded size in bytes as far as the transform knows it (0 when
    /// unknown), for `max_batch_bytes`.
    pub bytes: usize,
    /// Its key, when the source or the profile names one; `None`: the key
    /// derives from `id` ([`RecordKey::of_id`]). See [`Envelope::key`].
    ///
    /// [`Envelope::key`]: crate::Envelope::key
    pub key: Option<RecordKey>,
}

impl<R> Transformed<R> {
    /// A record of priority 0 and unknown size.
    pub fn new(id: RecordId, record: R) -> Transformed<R> {
        Transformed {
            id,
            record,
            priority: 0,
            bytes: 0,
            key: None,
        }
    }

    /// The same record, named by `key` (`None`: by its `id`).
    #[must_use]
    pub fn with_key(mut self, key: Option<RecordKey>) -> Transformed<R> {
        self.key = key;
        self
    }

    /// The same record, made another type by `f` (e.g. wrapped in an enum
    /// of several profiles' records).
    pub fn map<U>(self, f: impl FnOnce(R) -> U) -> Transformed<U> {
        Transformed {
            id: self.id,
            record: f(self.record),
            priority: self.priority,
            bytes: self.bytes,
            key: self.key,
        }
    }
}

/// A record the transform refused, for the dead-letter outlet.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected<R> {
    /// Its identity, as far as the transform could tell.
    pub id: RecordId,
    /// The record, when the transform got as far as making one.
    pub record: Option<R>,
    /// The input as received, cut to a length the profile documents, when
    /// no record could be made of it.
    pub raw: Option<String>,
    /// Why it was refused.
    pub reason: String,
}

impl<R> Rejected<R> {
    /// A refusal with only a reason.
    pub fn new(id: RecordId, reason: impl Into<String>) -> Rejected<R> {
        Rejected {
            id,
            record: None,
            raw: None,
            reason: reason.into(),
        }
    }

    /// The same refusal, its record (if any) made another type by `f`.
    pub fn map<U>(self, f: impl FnOnce(R) -> U) -> Rejected<U> {
        Rejected {
            id: self.id,
            record: self.record.map(f),
            raw: self.raw,
            reason: self.reason,
        }
    }
}

/// Any `Fn(In, &mut Context) -> Result<..>` is a transform.
impl<In, R, F> Transform<In> for F
where
    F: Fn(In, &mut Context) -> Result<Transformed<R>, Rejected<R>> + Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    type Output = R;

    fn transform(&self, input: In, context: &mut Context) -> Result<Transformed<R>, Rejected<R>> {
        self(input, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_caches_names_and_refuses_bad_ones() {
        let mut context = Context::new(5.0);
        let a = context.stream("ctx-a").unwrap();
        assert_eq!(context.stream("ctx-a").unwrap(), a);
        for i in 0..20 {
            context.stream(&format!("ctx-{i}")).unwrap();
        }
        assert_eq!(context.recent.len(), RECENT_NAMES);
        assert_eq!(context.stream("ctx-a").unwrap(), a);
        assert!(context.stream("").is_err());
        assert_eq!(context.now(), 5.0);
    }
}
