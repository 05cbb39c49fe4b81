//! End-to-end acknowledgements: a source learns what became of each record.
//!
//! Modelled on Vector's finalizers: a record carries an [`Ack`], the
//! processor resolves it exactly once with the record's fate, and an `Ack`
//! dropped unresolved (a panic, an abandoned task) resolves itself as
//! [`Resolution::NotProcessed`]. A source without acknowledgements gives
//! none and pays nothing.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::dead_letter::DeadLetterReason;
use crate::fault::panic_message;
use crate::fence::Fence;

/// What became of a record, told to its source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolution<'a> {
    /// The downstream accepted it: a file source may checkpoint past it,
    /// a broker source acknowledges it.
    Delivered,
    /// It will never be delivered; the dead-letter outlet kept it with this
    /// reason. A broker source terminates it.
    DeadLettered(&'a DeadLetterReason),
    /// The processor stopped (or failed) before finishing it. It was handed
    /// back and should be offered again later: a broker source
    /// redelivers it, a file source does not checkpoint past it.
    NotProcessed,
}

/// Receives the resolution of one record. Implemented for closures.
///
/// Called once, on a processor task: it should be quick and must not
/// block. A panic inside it is caught and reported, not propagated.
pub trait Acknowledge: Send + 'static {
    /// Takes the record's fate.
    fn acknowledge(self: Box<Self>, resolution: Resolution<'_>);
}

impl<F> Acknowledge for F
where
    F: FnOnce(Resolution<'_>) + Send + 'static,
{
    fn acknowledge(self: Box<Self>, resolution: Resolution<'_>) {
        (*self)(resolution)
    }
}

/// A record's acknowledgement: resolved exactly once.
///
/// Resolving consumes it, so it cannot be resolved twice; dropping it
/// unresolved resolves it as [`Resolution::NotProcessed`], so it cannot be
/// forgotten.
///
/// ```
/// use std::sync::mpsc;
/// use sluice_processor::{Ack, Resolution};
///
/// let (tell, told) = mpsc::channel();
/// let ack = Ack::new(move |resolution: Resolution<'_>| {
///     let _ = tell.send(resolution == Resolution::Delivered);
/// });
/// drop(ack); // never resolved: the source hears "not processed"
/// assert_eq!(told.recv().unwrap(), false);
/// ```
pub struct Ack {
    receiver: Option<Box<dyn Acknowledge>>,
    fence: Option<Fence>,
}

impl Ack {
    /// An acknowledgement that tells `receiver` the record's fate.
    pub fn new(receiver: impl Acknowledge) -> Ack {
        Ack {
            receiver: Some(Box::new(receiver)),
            fence: None,
        }
    }

    /// The same acknowledgement, for a record read under the lease
    /// `fence`: the processor sends the record only while the fence holds,
    /// and hands it back once it has lapsed (see [`Fence`]).
    #[must_use]
    pub fn fenced(mut self, fence: Fence) -> Ack {
        self.fence = Some(fence);
        self
    }

    /// The lease the record was read under, if its source shares its
    /// input under leases.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// Resolves the record. Returns the panic message if the receiver
    /// panicked.
    pub(crate) fn resolve(mut self, resolution: Resolution<'_>) -> Result<(), String> {
        match self.receiver.take() {
            Some(receiver) => tell(receiver, resolution),
            None => Ok(()),
        }
    }
}

fn tell(receiver: Box<dyn Acknowledge>, resolution: Resolution<'_>) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| receiver.acknowledge(resolution)))
        .map_err(|panic| panic_message(&*panic).to_owned())
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take()
            && let Err(message) = tell(receiver, Resolution::NotProcessed)
        {
            tracing::error!(%message, "an acknowledgement receiver panicked");
        }
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.receiver.is_some() {
            "pending"
        } else {
            "resolved"
        };
        match &self.fence {
            Some(fence) => write!(f, "Ack({state}, fenced by {})", fence.name()),
            None => write!(f, "Ack({state})"),
        }
    }
}

/// What a source hands the processor: a payload and, for sources that
/// must learn each record's fate, its acknowledgement.
///
/// A source is any `futures::Stream<Item = Incoming<T>> + Send`; the
/// processor runs one intake task per source.
///
/// # Errors
/// A source has no error channel: a record it cannot read is still a
/// record (hand the raw input to the profile, which dead-letters it with a
/// reason), and a source that cannot go on ends its stream.
///
/// # Panics
/// A panic in `poll_next` is caught: that source ends, the records it
/// handed over are unaffected, and the report names it
/// ([`FaultyTask::Source`](crate::FaultyTask::Source)).
///
/// # Cancel safety
/// The processor pulls only when it has a queue place for the record, and
/// drops a pending `next()` when it stops: `poll_next` must not lose a
/// record it has not returned (keep it for the next poll).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::sync::{Arc, Mutex};
/// use async_trait::async_trait;
/// use sluice_processor::{
///     Ack, Context, Envelope, Incoming, ProcessorConfig, RecordId, Rejected, Resolution,
///     SendError, Sink, StreamProcessor, Transformed,
/// };
///
/// // A source whose records report their fate, as a file source would to
/// // advance its checkpoint.
/// let done = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&done);
/// let source = futures::stream::iter((1..=3u64).map(move |line| {
///     let done = Arc::clone(&log);
///     let ack = Ack::new(move |resolution: Resolution<'_>| {
///         done.lock().unwrap().push((line, resolution == Resolution::Delivered));
///     });
///     Incoming::with_ack(line, ack)
/// }));
///
/// struct Accept;
/// #[async_trait]
/// impl Sink<u64> for Accept {
///     async fn send(&self, _: &[Envelope<u64>]) -> Result<(), SendError> { Ok(()) }
/// }
/// let lines = |line: u64, context: &mut Context| -> Result<Transformed<u64>, Rejected<u64>> {
///     let stream = context.stream("lines").expect("a valid name");
///     Ok(Transformed::new(RecordId { stream, partition: 0, sequence: line }, line))
/// };
/// let report = StreamProcessor::new(lines, Accept, ProcessorConfig::default())
///     .unwrap()
///     .start([source])
///     .finish()
///     .await;
/// assert_eq!(report.metrics.delivered, 3);
/// let mut done = done.lock().unwrap().clone();
/// done.sort();
/// assert_eq!(done, [(1, true), (2, true), (3, true)]);
/// # }
/// ```
#[derive(Debug)]
pub struct Incoming<T> {
    /// The payload, for the pipeline's transform.
    pub payload: T,
    /// Resolved exactly once with the record's fate; `None` for sources
    /// that need no acknowledgement.
    pub ack: Option<Ack>,
}

impl<T> Incoming<T> {
    /// A payload without acknowledgement.
    pub fn new(payload: T) -> Incoming<T> {
        Incoming { payload, ack: None }
    }

    /// A payload whose fate is told to `ack`.
    pub fn with_ack(payload: T, ack: Ack) -> Incoming<T> {
        Incoming {
            payload,
            ack: Some(ack),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn recording() -> (Ack, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let ack = Ack::new(move |resolution: Resolution<'_>| {
            log.lock().unwrap().push(format!("{resolution:?}"));
        });
        (ack, seen)
    }

    #[test]
    fn resolving_tells_once_and_dropping_after_does_nothing() {
        let (ack, seen) = recording();
        assert_eq!(format!("{ack:?}"), "Ack(pending)");
        ack.resolve(Resolution::Delivered).unwrap();
        assert_eq!(*seen.lock().unwrap(), ["Delivered"]);
    }

    #[test]
    fn an_ack_dropped_unresolved_says_not_processed() {
        let (ack, seen) = recording();
        drop(ack);
        assert_eq!(*seen.lock().unwrap(), ["NotProcessed"]);
    }

    #[test]
    fn a_panicking_receiver_is_caught_and_reported() {
        let ack = Ack::new(|_: Resolution<'_>| panic!("receiver broke"));
        assert_eq!(
            ack.resolve(Resolution::Delivered),
            Err("receiver broke".to_owned())
        );
        // Dropped unresolved, a panicking receiver does not unwind either.
        drop(Ack::new(|_: Resolution<'_>| panic!("again")));
    }
}
