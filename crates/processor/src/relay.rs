//! The acker pattern: acknowledgements relayed to a task of the source's
//! own, for sources that must do I/O to acknowledge (a broker's ack, a
//! commit), which an [`Ack`] receiver, synchronous and not allowed to
//! block, cannot do itself.

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::ack::{Ack, Resolution};
use crate::dead_letter::DeadLetterKind;

/// A record's fate, owned: what an [`AckRelay`] sends its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Delivered,
    /// Dead-lettered, for a reason of this kind.
    DeadLettered(DeadLetterKind),
    /// Handed back, or its acknowledgement dropped unresolved: to be
    /// offered again.
    NotProcessed,
}

impl From<Resolution<'_>> for Outcome {
    fn from(resolution: Resolution<'_>) -> Outcome {
        match resolution {
            Resolution::Delivered => Outcome::Delivered,
            Resolution::DeadLettered(reason) => Outcome::DeadLettered(reason.kind()),
            Resolution::NotProcessed => Outcome::NotProcessed,
        }
    }
}

/// Makes [`Ack`]s that send `(key, outcome)` to one receiver, where a
/// task of the source's does the I/O each outcome needs, in the order the
/// outcomes happened. Clones send to the same receiver.
///
/// The channel is unbounded: it holds at most one message per record in
/// flight, which the pipeline's queue bounds. Once the receiver is gone,
/// outcomes are dropped; a source whose task ends early should expect its
/// input to redeliver what it did not acknowledge.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sluice_processor::{AckRelay, Incoming, Outcome};
///
/// let (relay, mut outcomes) = AckRelay::new();
/// let record = Incoming::with_ack("payload", relay.ack(41u64));
/// drop(record); // never processed
/// assert_eq!(outcomes.recv().await, Some((41, Outcome::NotProcessed)));
/// # }
/// ```
#[derive(Debug)]
pub struct AckRelay<K> {
    outcomes: UnboundedSender<(K, Outcome)>,
}

impl<K> Clone for AckRelay<K> {
    fn clone(&self) -> Self {
        AckRelay {
            outcomes: self.outcomes.clone(),
        }
    }
}

impl<K: Send + 'static> AckRelay<K> {
    /// A relay and the receiver of its outcomes.
    pub fn new() -> (AckRelay<K>, UnboundedReceiver<(K, Outcome)>) {
        let (outcomes, received) = unbounded_channel();
        (AckRelay { outcomes }, received)
    }

    /// The `Ack` of the record under `key`: its resolution is sent as
    /// `(key, outcome)`.
    pub fn ack(&self, key: K) -> Ack {
        let outcomes = self.outcomes.clone();
        Ack::new(move |resolution: Resolution<'_>| {
            // The receiver gone means the source stopped listening; see
            // the type's docs.
            let _ = outcomes.send((key, resolution.into()));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterReason;

    #[tokio::test]
    async fn each_resolution_arrives_once_with_its_key_in_order() {
        let (relay, mut outcomes) = AckRelay::new();
        let (a, b, c) = (relay.ack("a"), relay.ack("b"), relay.ack("c"));
        b.resolve(Resolution::Delivered).unwrap();
        let reason = DeadLetterReason::Rejected("422".into());
        a.resolve(Resolution::DeadLettered(&reason)).unwrap();
        drop(c);
        drop(relay);
        let mut seen = Vec::new();
        while let Some(outcome) = outcomes.recv().await {
            seen.push(outcome);
        }
        assert_eq!(
            seen,
            [
                ("b", Outcome::Delivered),
                ("a", Outcome::DeadLettered(DeadLetterKind::Rejected)),
                ("c", Outcome::NotProcessed),
            ]
        );
    }

    #[test]
    fn an_ack_whose_receiver_is_gone_resolves_quietly() {
        let (relay, outcomes) = AckRelay::<u8>::new();
        drop(outcomes);
        relay.ack(1).resolve(Resolution::Delivered).unwrap();
    }
}
