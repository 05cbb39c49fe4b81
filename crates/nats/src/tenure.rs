//! What one process took of a partition under one lease, so that it can
//! hand the partition over without a duplicate: the records handed to the
//! pipeline whose fate JetStream has not been told yet, and the highest
//! stream sequence acknowledged or terminated.
//!
//! A partition is handed over once its pulls have stopped, every record
//! taken is told (`is_settled`), and the consumer's acknowledgement floor
//! has reached `acked`: the next holder starts after that floor, so it
//! sends again nothing this process delivered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use async_nats::jetstream::AckKind;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Records out at once, at most: far above any `max_ack_pending`.
const OUT_AT_MOST: u32 = u32::MAX;

/// One lease's worth of a partition, as this process consumes it.
#[derive(Debug)]
pub(crate) struct Tenure {
    /// A permit out per record taken and not yet told.
    out: Arc<Semaphore>,
    /// The highest stream sequence acknowledged or terminated.
    acked: AtomicU64,
}

/// A record taken under a [`Tenure`]: tell it what JetStream was told.
#[derive(Debug)]
pub(crate) struct Taken {
    tenure: Arc<Tenure>,
    sequence: u64,
    _out: Option<OwnedSemaphorePermit>,
}

impl Tenure {
    pub(crate) fn new() -> Arc<Tenure> {
        Arc::new(Tenure {
            out: Arc::new(Semaphore::new(OUT_AT_MOST as usize)),
            acked: AtomicU64::new(0),
        })
    }

    /// Takes the record of stream sequence `sequence`.
    pub(crate) fn take(self: &Arc<Self>, sequence: u64) -> Taken {
        Taken {
            tenure: Arc::clone(self),
            sequence,
            // Never fails: the semaphore is never closed, and its permits
            // outnumber the messages a consumer may have pending.
            _out: Arc::clone(&self.out).try_acquire_owned().ok(),
        }
    }

    /// Whether every record taken has been told to JetStream.
    pub(crate) fn is_settled(&self) -> bool {
        self.out.available_permits() == OUT_AT_MOST as usize
    }

    /// The highest stream sequence acknowledged or terminated (0 if none).
    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Relaxed)
    }
}

impl Taken {
    /// JetStream was told `kind` for this record.
    pub(crate) fn told(self, kind: AckKind) {
        if matches!(kind, AckKind::Ack | AckKind::Term) {
            self.tenure.acked.fetch_max(self.sequence, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenure_is_settled_once_every_record_is_told_and_counts_only_acks() {
        let tenure = Tenure::new();
        assert!(tenure.is_settled());
        let (first, second, third) = (tenure.take(4), tenure.take(5), tenure.take(6));
        assert!(!tenure.is_settled());
        first.told(AckKind::Ack);
        second.told(AckKind::Term);
        assert!(!tenure.is_settled());
        assert_eq!(tenure.acked(), 5);
        third.told(AckKind::Nak(None));
        assert!(tenure.is_settled());
        assert_eq!(tenure.acked(), 5, "a nak acknowledges nothing");
    }

    #[test]
    fn a_record_dropped_untold_still_settles() {
        let tenure = Tenure::new();
        drop(tenure.take(9));
        assert!(tenure.is_settled());
        assert_eq!(tenure.acked(), 0);
    }
}
