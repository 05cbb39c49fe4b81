//! Handing partitions over without a duplicate: when a process joins (the
//! holders of more than their share drain the excess) and when this one
//! stops.
//!
//! A partition is drained before its lease is released: its pulls stop
//! (records pulled and not yet handed to the pipeline are naked; they come
//! after every record handed over), the pipeline delivers or dead-letters
//! what it holds of it, under a lease still renewed, JetStream is told
//! every fate, and the consumer's acknowledgement floor reaches the
//! highest sequence acknowledged. Only then is the lease released, and
//! the next holder, which starts after that floor, sends nothing again
//! that this process delivered, in order. A drain takes as long as the
//! partition's records already in the queue take to deliver.
//!
//! Records are not handed back to speed a drain up: a partition's records
//! of several streams travel in lanes of their own, so a record handed
//! back would leave a gap below records of other lanes already
//! acknowledged, and JetStream's floor (the only acknowledgement state a
//! new consumer can start from) stops at the gap: the next holder would
//! send those records again. For the same reason a stop (SIGTERM), which
//! hands back what is queued, may leave records delivered above such a
//! gap, sent again under the same key by the next holder.
//!
//! A drain that does not end within [`HANDOVER_LIMIT`] (the API is down,
//! say) releases the lease anyway: the lease's fence is revoked, so the
//! records still in the pipeline are handed back rather than sent, and
//! records above the first of them may be sent twice.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::Stream as JetStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Coordinator;
use crate::tenure::Tenure;

/// The longest a partition drains before its lease is released anyway.
pub(super) const HANDOVER_LIMIT: Duration = Duration::from_secs(30);

/// How long a stop waits for the acknowledgements to reach the server,
/// and then for the acknowledgement floors to reach them.
const ACK_DRAIN: Duration = Duration::from_secs(5);

/// How often a stop reads the acknowledgement floors while it waits.
const FLOOR_POLL: Duration = Duration::from_millis(50);

/// A partition's pull loop.
#[derive(Debug)]
pub(super) struct Fetcher {
    pub(super) stop: CancellationToken,
    pub(super) task: JoinHandle<()>,
    /// The consumer's name.
    pub(super) consumer: String,
    pub(super) tenure: Arc<Tenure>,
}

/// A partition being handed over: its pulls stopped at `since`.
#[derive(Debug)]
pub(super) struct Draining {
    consumer: String,
    tenure: Arc<Tenure>,
    since: Instant,
}

impl Coordinator {
    /// Starts handing over `count` of the partitions consumed: their pulls
    /// stop now; [`Coordinator::hand_over_drained`] releases each lease
    /// once drained.
    pub(super) fn drain_excess(&mut self, count: usize) {
        for _ in 0..count {
            let Some((partition, fetcher)) = self.fetchers.pop_last() else {
                return;
            };
            tracing::info!(partition, "a process joined: handing a partition over");
            fetcher.stop.cancel();
            let draining = Draining {
                consumer: fetcher.consumer,
                tenure: fetcher.tenure,
                since: Instant::now(),
            };
            self.draining.insert(partition, draining);
        }
    }

    /// Releases the lease of each draining partition that is drained (or
    /// has drained for [`HANDOVER_LIMIT`]).
    pub(super) async fn hand_over_drained(&mut self) {
        let mut handed_over = Vec::new();
        for (partition, draining) in &self.draining {
            let waited = draining.since.elapsed();
            let drained = is_drained(&self.stream, &draining.consumer, &draining.tenure);
            if waited < HANDOVER_LIMIT && !drained.await {
                continue;
            }
            if waited >= HANDOVER_LIMIT {
                tracing::warn!(
                    partition,
                    ?waited,
                    "a partition did not drain in time: releasing it anyway"
                );
            } else {
                tracing::info!(partition, ?waited, "handed a partition over");
            }
            handed_over.push(partition.clone());
        }
        for partition in handed_over {
            self.draining.remove(&partition);
            self.leases.release(&partition).await;
        }
    }

    /// Stops every pull, waits (at most [`ACK_DRAIN`]) for every
    /// resolution to reach JetStream, then (in the time left of it) for
    /// each partition's acknowledgement floor to reach them, and frees
    /// this process's leases.
    pub(super) async fn shut_down(mut self, acker_task: JoinHandle<()>) {
        let deadline = Instant::now() + ACK_DRAIN;
        let mut tenures = Vec::new();
        for (partition, fetcher) in std::mem::take(&mut self.fetchers) {
            fetcher.stop.cancel();
            let _ = fetcher.task.await;
            tenures.push((partition, fetcher.consumer, fetcher.tenure));
        }
        for (partition, draining) in std::mem::take(&mut self.draining) {
            tenures.push((partition, draining.consumer, draining.tenure));
        }
        // The acker ends once its last handle and every Ack are gone.
        self.acker = None;
        drop(self.sender);
        if tokio::time::timeout_at(deadline, acker_task).await.is_err() {
            tracing::warn!("acknowledgements still pending after 5 s; JetStream redelivers them");
        }
        for (partition, consumer, tenure) in &tenures {
            while !is_drained(&self.stream, consumer, tenure).await {
                if Instant::now() + FLOOR_POLL > deadline {
                    tracing::warn!(
                        partition,
                        "the acknowledgement floor did not reach this process's last \
                         acknowledgement: the next holder may send some records again"
                    );
                    break;
                }
                tokio::time::sleep(FLOOR_POLL).await;
            }
        }
        self.leases.release_all().await;
    }
}

/// Whether every record taken under `tenure` is resolved, JetStream told,
/// and its consumer's acknowledgement floor past the highest acknowledged.
async fn is_drained(stream: &JetStream, consumer: &str, tenure: &Tenure) -> bool {
    if !tenure.is_settled() {
        return false;
    }
    match stream.consumer_info(consumer).await {
        Ok(info) => info.ack_floor.stream_sequence >= tenure.acked(),
        Err(error) => {
            tracing::debug!(%error, consumer, "cannot read a consumer's floor");
            false
        }
    }
}
