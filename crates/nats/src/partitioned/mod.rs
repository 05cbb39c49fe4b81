//! Partitions shared by several processes: each partition of a JetStream
//! stream is consumed by one live process at a time, so that order per
//! partition holds across processes.
//!
//! A partition is the last token of a record subject
//! `records.<stream>.<partition>`, across every stream. Each has its own
//! durable pull consumer, `<durable>-<partition>~<lease token>`, filtered to
//! `records.*.<partition>` (or the configured stream's), and a lease in a
//! key-value bucket (see [`crate::leases`]). A coordinator task, every
//! [`PartitionedSource::TICK`]:
//!
//! - renews this process's leases every third of the lease time, and stops
//!   consuming a partition whose lease it lost;
//! - finds the stream's partitions, and while this process holds fewer
//!   than its share (partitions ÷ live members, rounded up) claims free
//!   ones. A claimed partition's consumer is made afresh, starting after
//!   the last message of the partition the previous owner resolved in
//!   order (its ack floor): what it had in flight is delivered again, in
//!   order, never skipped.
//!
//! A process holding more than its share once another joins drains the
//! excess and releases it (see [`handover`]); each record's ack carries
//! its lease's [`Fence`], so nothing of a partition whose lease lapsed is
//! sent (see [`crate::leases`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::stream::Stream as JetStream;
use futures::{Stream, TryStreamExt};
use sluice_processor::{Fence, Incoming, RawRecord, StreamName};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::consumers::partition_filter;
pub(crate) use self::consumers::{is_partition_token, partition_of};
use self::handover::{Draining, Fetcher};
use crate::acker::AckerHandle;
use crate::config::{Connection, JetStreamConfig, NatsError, SUBJECT_PREFIX};
use crate::leases::Leases;
use crate::source::Pulling;
use crate::tenure::Tenure;

mod consumers;
mod handover;

/// Records of the partitions this process holds, as one source for a
/// [`StreamProcessor`](sluice_processor::StreamProcessor). Messages
/// pending acknowledgement, across all partitions held, are at most
/// [`max_ack_pending`](JetStreamConfig::max_ack_pending). Never ends on its
/// own; after the processor stops, call [`PartitionLeases::release`].
pub struct PartitionedSource {
    records: mpsc::Receiver<Incoming<RawRecord>>,
}

impl fmt::Debug for PartitionedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedSource").finish_non_exhaustive()
    }
}

impl Stream for PartitionedSource {
    type Item = Incoming<RawRecord>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.records.poll_recv(cx)
    }
}

/// This process's part in the group: gives its partitions up at a stop.
#[derive(Debug)]
pub struct PartitionLeases {
    member: String,
    stop: CancellationToken,
    coordinator: JoinHandle<()>,
}

impl PartitionLeases {
    /// This process's name in the group (also in its logs).
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Stops consuming, waits (at most 5 s) for every resolution to reach
    /// JetStream, then frees this process's leases so that other processes
    /// take its partitions at once. Call it after the processor stopped,
    /// so that every record it held is resolved.
    pub async fn release(self) {
        self.stop.cancel();
        if let Err(error) = self.coordinator.await {
            tracing::warn!(%error, "the partition coordinator failed");
        }
    }
}

impl PartitionedSource {
    /// How often the coordinator looks for free partitions.
    pub const TICK: Duration = Duration::from_millis(500);

    /// Joins the group of `config.durable` on `config.stream`: leases live
    /// `lease_time` in the bucket `<durable>-leases` (created if missing).
    ///
    /// # Errors
    /// [`NatsError::Config`] for a configuration that makes no sense (the
    /// subject filter must be `<prefix>.>` or `<prefix>.<stream or *>.*`,
    /// the lease time at least a second); [`NatsError::Nats`] when the
    /// server, the stream or the bucket cannot be reached.
    pub async fn connect(
        config: JetStreamConfig,
        lease_time: Duration,
    ) -> Result<(PartitionedSource, PartitionLeases), NatsError> {
        if partition_filter(&config.subject_filter, "0").is_none() {
            return Err(NatsError::Config(format!(
                "with partitions shared by leases the subject filter must be `{SUBJECT_PREFIX}.>` \
                 or `<prefix>.<stream or *>.*`, not `{}`",
                config.subject_filter
            )));
        }
        if lease_time < Duration::from_secs(1) {
            return Err(NatsError::Config(
                "the lease time must be at least 1 s".into(),
            ));
        }
        let Connection {
            client,
            context,
            stream,
            default_stream,
        } = config.open().await?;
        let member = member_name();
        let bucket = format!("{}-leases", config.durable);
        let leases = Leases::open(&context, &bucket, lease_time, member.clone()).await?;
        leases.announce().await?;
        let (acker, acker_task) = AckerHandle::start(client, config.ack_wait, config.nak_delay);
        let (sender, records) = mpsc::channel(config.fetch_batch.max(1));
        let stop = CancellationToken::new();
        let coordinator = Coordinator {
            places: Arc::new(Semaphore::new(config.max_ack_pending)),
            config,
            stream,
            leases,
            lease_time,
            acker: Some(acker),
            sender,
            default_stream,
            fetchers: BTreeMap::new(),
            draining: BTreeMap::new(),
            stop: stop.clone(),
        };
        tracing::info!(%member, "joined the group");
        let coordinator = tokio::spawn(coordinator.run(acker_task));
        Ok((
            PartitionedSource { records },
            PartitionLeases {
                member,
                stop,
                coordinator,
            },
        ))
    }
}

/// Holds the leases and runs a fetcher per partition held.
struct Coordinator {
    config: JetStreamConfig,
    stream: JetStream,
    leases: Leases,
    lease_time: Duration,
    places: Arc<Semaphore>,
    acker: Option<AckerHandle>,
    sender: mpsc::Sender<Incoming<RawRecord>>,
    default_stream: StreamName,
    /// The partitions consumed, by their pull loops.
    fetchers: BTreeMap<String, Fetcher>,
    /// The partitions being handed over (see [`handover`]).
    draining: BTreeMap<String, Draining>,
    stop: CancellationToken,
}

impl Coordinator {
    async fn run(mut self, acker_task: JoinHandle<()>) {
        let renew_every = self.lease_time / 3;
        // Let processes started together see each other before claiming.
        let mut last_renewal = tokio::time::Instant::now();
        let first_claim = last_renewal + renew_every;
        let mut ticker = tokio::time::interval(PartitionedSource::TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if last_renewal.elapsed() >= renew_every {
                last_renewal = tokio::time::Instant::now();
                self.renew().await;
            }
            for partition in self.leases.give_up_lapsed().await {
                tracing::warn!(
                    partition,
                    "the lease of a partition lapsed before it could be renewed: \
                     its records are handed back, not sent"
                );
                self.stop_consuming(&partition);
            }
            if tokio::time::Instant::now() >= first_claim
                && let Err(error) = self.claim_share().await
            {
                tracing::warn!(%error, "cannot look for free partitions; trying again");
            }
            self.hand_over_drained().await;
        }
        self.shut_down(acker_task).await;
    }

    async fn renew(&mut self) {
        if let Err(error) = self.leases.announce().await {
            tracing::warn!(%error, "cannot renew this member's presence");
        }
        let renewal = self.leases.renew().await;
        if let Some(error) = renewal.failure {
            tracing::warn!(%error, "cannot renew a partition lease; trying again");
        }
        for partition in renewal.lost {
            tracing::warn!(
                partition,
                "lost the lease of a partition to another process"
            );
            self.stop_consuming(&partition);
        }
        for partition in renewal.lapsed {
            tracing::warn!(
                partition,
                "the lease of a partition lapsed before its renewal was confirmed \
                 (was this process paused?): its records are handed back, not sent"
            );
            self.stop_consuming(&partition);
        }
    }

    /// Stops pulling `partition`'s records, whether consumed or draining.
    fn stop_consuming(&mut self, partition: &str) {
        if let Some(fetcher) = self.fetchers.remove(partition) {
            fetcher.stop.cancel();
        }
        self.draining.remove(partition);
    }

    /// Claims free partitions while this process holds fewer than its
    /// share; drains those it holds beyond its share (a process joined).
    async fn claim_share(&mut self) -> Result<(), NatsError> {
        // Listings may take long on a busy server (a key-value listing
        // follows the keys put while it runs): bounded, so that the
        // renewals that follow are never held up past the leases.
        let bound = self.lease_time / 3;
        let listed = tokio::time::timeout(bound, async {
            Ok::<_, NatsError>((self.partitions().await?, self.leases.members().await?))
        })
        .await
        .map_err(|elapsed| {
            NatsError::nats(
                format!("list the partitions and members within {bound:?}"),
                elapsed,
            )
        })?;
        let (partitions, members) = listed?;
        if partitions.is_empty() {
            return Ok(());
        }
        let share = partitions.len().div_ceil(members);
        if self.fetchers.len() > share {
            self.drain_excess(self.fetchers.len() - share);
            return Ok(());
        }
        // Draining partitions still count: they are held until handed over.
        if self.leases.count() >= share {
            return Ok(());
        }
        // Start at a place of this member's own, so that processes
        // claiming together mostly try different partitions first.
        let offset = fxhash(self.leases.member()) % partitions.len();
        let order = partitions
            .iter()
            .cycle()
            .skip(offset)
            .take(partitions.len());
        for partition in order {
            if self.leases.count() >= share {
                break;
            }
            if self.leases.holds(partition) {
                continue;
            }
            let Some(fence) = self.leases.claim(partition).await? else {
                continue;
            };
            let token = fence.check().map_or(0, |held| held.token);
            match self.fresh_consumer(partition, token).await {
                Ok((consumer, start, skip)) => {
                    let skipped = skip.len();
                    tracing::info!(partition, start, skipped, lease = token, "took partition");
                    let Some(pulling) = self.pulling(consumer) else {
                        return Ok(());
                    };
                    let tenure = Tenure::starting_at(start, &skip);
                    let pulling = pulling.under_lease(fence.clone(), Arc::clone(&tenure), skip);
                    self.start_fetcher(partition.clone(), pulling, fence, tenure);
                }
                Err(error) => {
                    tracing::warn!(%error, partition, "cannot consume a claimed partition");
                    self.leases.release(partition).await;
                }
            }
        }
        Ok(())
    }

    /// The partitions with records in the stream, by the subjects' last
    /// token.
    async fn partitions(&self) -> Result<BTreeSet<String>, NatsError> {
        let subjects: Vec<(String, usize)> = self
            .stream
            .info_with_subjects(&self.config.subject_filter)
            .await
            .map_err(|e| NatsError::nats("list the stream's subjects", e))?
            .try_collect()
            .await
            .map_err(|e| NatsError::nats("list the stream's subjects", e))?;
        Ok(subjects
            .iter()
            .filter_map(|(subject, _)| subject.rsplit('.').next())
            .filter(|token| is_partition_token(token))
            .map(str::to_owned)
            .collect())
    }

    /// A pull loop over `consumer`, within the process's bound of
    /// messages pending; `None` once the coordinator is stopping.
    fn pulling(&self, consumer: PullConsumer) -> Option<Pulling> {
        let acker = self.acker.clone()?;
        Some(Pulling::new(
            consumer,
            &self.config,
            self.default_stream,
            acker,
            Some(Arc::clone(&self.places)),
        ))
    }

    fn start_fetcher(
        &mut self,
        partition: String,
        mut pulling: Pulling,
        fence: Fence,
        tenure: Arc<Tenure>,
    ) {
        let stop = self.stop.child_token();
        let sender = self.sender.clone();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let record = tokio::select! {
                    () = stopped.cancelled() => break,
                    record = pulling.next() => record,
                };
                // A record not handed over is dropped, which naks it; so
                // are those read once the lease lapsed.
                if !fence.holds() {
                    break;
                }
                tokio::select! {
                    () = stopped.cancelled() => break,
                    sent = sender.send(record) => if sent.is_err() { break },
                }
            }
        });
        let fetcher = Fetcher { stop, task, tenure };
        self.fetchers.insert(partition, fetcher);
    }
}

/// A name for this process, unique among live members: its process id and
/// the time it started, in nanoseconds.
fn member_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("{}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// A small stable hash (FNV-1a) of a member's name, to spread claims.
fn fxhash(text: &str) -> usize {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(hash % (1 << 31)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_differ_and_hash_stably() {
        let name = member_name();
        assert!(name.starts_with(&format!("{}-", std::process::id())));
        assert_eq!(fxhash("a"), fxhash("a"));
        assert_ne!(fxhash("a"), fxhash("b"));
    }
}
