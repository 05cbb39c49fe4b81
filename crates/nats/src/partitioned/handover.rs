//! Handing partitions over without a duplicate: when a process joins (the
//! holders of more than their share drain the excess) and when this one
//! stops.
//!
//! A partition is drained before its lease is released: its pulls stop
//! (records pulled and not yet handed to the pipeline are naked) and its
//! fence is revoked, so the pipeline sends none of its records that wait
//! in the queue (handed back: [`HandBackReason::LeaseEnded`]) and only
//! finishes the calls already under way, under a lease still renewed.
//! Once JetStream is told every fate, the holder leaves a
//! [`Note`](crate::tenure::Note) of what it resolved (every record through
//! a sequence, and those acknowledged above it) and releases the lease.
//! The next holder starts after the note's sequence (or the consumer's
//! acknowledgement floor, if later) and acknowledges the noted records
//! without sending them: it sends nothing again that this process
//! delivered, in order. JetStream's floor alone would not do: a
//! partition's records of several streams travel in lanes of their own,
//! so records of one lane may be acknowledged above a record of another
//! that was handed back, and the floor stops at that record.
//!
//! A drain that does not end within [`HANDOVER_LIMIT`] (a call that
//! hangs, say) releases the lease anyway: only such a call may then be
//! sent twice, under the same key. A process that dies leaves no note:
//! what it had in flight is sent again.
//!
//! [`HandBackReason::LeaseEnded`]: sluice_processor::HandBackReason::LeaseEnded

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Coordinator;
use crate::tenure::Tenure;

/// The longest a partition drains before its lease is released anyway.
pub(super) const HANDOVER_LIMIT: Duration = Duration::from_secs(10);

/// How long a stop waits for the acknowledgements to reach the server.
const ACK_DRAIN: Duration = Duration::from_secs(5);

/// A partition's pull loop.
#[derive(Debug)]
pub(super) struct Fetcher {
    pub(super) stop: CancellationToken,
    pub(super) task: JoinHandle<()>,
    pub(super) tenure: Arc<Tenure>,
}

/// A partition being handed over: its pulls stopped at `since`.
#[derive(Debug)]
pub(super) struct Draining {
    tenure: Arc<Tenure>,
    since: Instant,
}

impl Coordinator {
    /// Starts handing over `count` of the partitions consumed: their pulls
    /// stop and their fences are revoked now;
    /// [`Coordinator::hand_over_drained`] releases each lease once
    /// drained.
    pub(super) fn drain_excess(&mut self, count: usize) {
        for _ in 0..count {
            let Some((partition, fetcher)) = self.fetchers.pop_last() else {
                return;
            };
            tracing::info!(partition, "a process joined: handing a partition over");
            fetcher.stop.cancel();
            self.leases.hand_over(&partition);
            let draining = Draining {
                tenure: fetcher.tenure,
                since: Instant::now(),
            };
            self.draining.insert(partition, draining);
        }
    }

    /// Leaves a note and releases the lease of each draining partition
    /// whose records are all told to JetStream (or that has drained for
    /// [`HANDOVER_LIMIT`]).
    pub(super) async fn hand_over_drained(&mut self) {
        let mut handed_over = Vec::new();
        for (partition, draining) in &self.draining {
            let waited = draining.since.elapsed();
            if draining.tenure.is_settled() {
                tracing::info!(partition, ?waited, "handed a partition over");
            } else if waited >= HANDOVER_LIMIT {
                tracing::warn!(
                    partition,
                    ?waited,
                    "a partition did not drain in time: releasing it anyway"
                );
            } else {
                continue;
            }
            handed_over.push((partition.clone(), draining.tenure.note()));
        }
        for (partition, note) in handed_over {
            self.draining.remove(&partition);
            self.leases.leave_note(&partition, &note).await;
            self.leases.release(&partition).await;
        }
    }

    /// Stops every pull, waits (at most [`ACK_DRAIN`]) for every
    /// resolution to reach JetStream, leaves a note for each partition
    /// held, and frees this process's leases.
    pub(super) async fn shut_down(mut self, acker_task: JoinHandle<()>) {
        let mut tenures = Vec::new();
        for (partition, fetcher) in std::mem::take(&mut self.fetchers) {
            fetcher.stop.cancel();
            let _ = fetcher.task.await;
            tenures.push((partition, fetcher.tenure));
        }
        for (partition, draining) in std::mem::take(&mut self.draining) {
            tenures.push((partition, draining.tenure));
        }
        // The acker ends once its last handle and every Ack are gone.
        self.acker = None;
        drop(self.sender);
        if tokio::time::timeout(ACK_DRAIN, acker_task).await.is_err() {
            tracing::warn!("acknowledgements still pending after 5 s; JetStream redelivers them");
        }
        for (partition, tenure) in &tenures {
            self.leases.leave_note(partition, &tenure.note()).await;
        }
        self.leases.release_all().await;
    }
}
