//! What the broker still holds for a run: the durable consumers' pending
//! counts (messages not yet delivered to them), polled every few seconds
//! and told to the run's input progress, for the status line, the metrics
//! and the live page.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_trait::async_trait;
use futures::TryStreamExt;
use sluice_processor::{ConnectorError, Finish, Finished, InputGauge};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::partitioned::{is_partition_token, partition_of};

/// How often the pending count is asked for.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Whether `consumer` is the durable `durable` or one of its partitions'.
fn is_ours(consumer: &str, durable: &str) -> bool {
    consumer == durable || partition_of(consumer, durable).is_some()
}

/// What a run's source watches of its consumer group.
pub(crate) struct Watch {
    /// The JetStream stream, on a connection of the watcher's own.
    pub(crate) stream: jetstream::stream::Stream,
    /// The group's durable consumer name.
    pub(crate) durable: String,
    /// With partitions shared by leases: the group's subject filter, each
    /// of whose partitions must have its consumer before the stream can
    /// be drained (one whose owner died has none until another takes it).
    pub(crate) partitioned: Option<String>,
    /// Where the pending count goes.
    pub(crate) gauge: Arc<InputGauge>,
}

/// What the group still has to do, as the server counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Backlog {
    /// Messages not yet delivered to the group's consumers.
    undelivered: u64,
    /// Messages delivered and not yet acknowledged.
    unacknowledged: u64,
    /// Partitions with records and no consumer yet.
    unclaimed: usize,
}

impl Backlog {
    fn is_drained(self) -> bool {
        self == Backlog::default()
    }
}

impl Watch {
    /// The group's backlog now.
    ///
    /// # Errors
    /// The server's, when it cannot list the consumers or the subjects.
    async fn backlog(&self) -> Result<Backlog, async_nats::Error> {
        let mut consumers = self.stream.consumers();
        let mut backlog = Backlog::default();
        let mut consumed = BTreeSet::new();
        while let Some(info) = consumers.try_next().await? {
            if !is_ours(&info.name, &self.durable) {
                continue;
            }
            backlog.undelivered += info.num_pending;
            backlog.unacknowledged += u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX);
            if let Some(partition) = partition_of(&info.name, &self.durable) {
                consumed.insert(partition.to_owned());
            }
        }
        if let Some(filter) = &self.partitioned {
            let subjects: Vec<(String, usize)> = self
                .stream
                .info_with_subjects(filter)
                .await?
                .try_collect()
                .await?;
            backlog.unclaimed = subjects
                .iter()
                .filter_map(|(subject, _)| subject.rsplit('.').next())
                .filter(|partition| is_partition_token(partition))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|partition| !consumed.contains(*partition))
                .count();
        }
        Ok(backlog)
    }
}

/// Polls the group's backlog, telling the messages not yet delivered to
/// `watch.gauge`, until aborted. With `until_drained`, the token returned
/// is cancelled once the group has been drained (nothing undelivered,
/// nothing unacknowledged, every partition consumed) for that long: the
/// source then ends. A failed poll leaves the last figures, is logged at
/// debug level (the source reports the server's failures) and restarts
/// the quiet time.
pub(crate) fn poll(
    watch: Watch,
    until_drained: Option<Duration>,
) -> (JoinHandle<()>, Option<CancellationToken>) {
    let drained = until_drained.map(|_| CancellationToken::new());
    let every = until_drained.map_or(POLL_EVERY, |quiet| {
        (quiet / 4).clamp(Duration::from_millis(250), POLL_EVERY)
    });
    let signal = drained.clone();
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        let mut quiet_since = None;
        loop {
            ticks.tick().await;
            let backlog = match watch.backlog().await {
                Ok(backlog) => backlog,
                Err(error) => {
                    tracing::debug!(%error, "pending count not read");
                    quiet_since = None;
                    continue;
                }
            };
            watch.gauge.set_pending(backlog.undelivered);
            let (Some(quiet), Some(signal)) = (until_drained, &signal) else {
                continue;
            };
            if !backlog.is_drained() {
                quiet_since = None;
                continue;
            }
            let since = *quiet_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= quiet {
                tracing::info!(?quiet, "the stream is drained: ending the run");
                signal.cancel();
            }
        }
    });
    (task, drained)
}

/// A source's finish that stops its pending poller first.
pub(crate) struct StopPolling {
    pub(crate) poller: JoinHandle<()>,
    pub(crate) then: Box<dyn Finish>,
}

#[async_trait]
impl Finish for StopPolling {
    async fn finish(self: Box<Self>) -> Result<Finished, ConnectorError> {
        self.poller.abort();
        self.then.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drained_means_nothing_undelivered_unacknowledged_or_unclaimed() {
        let drained = Backlog::default();
        assert!(drained.is_drained());
        for busy in [
            Backlog {
                undelivered: 1,
                ..drained
            },
            Backlog {
                unacknowledged: 1,
                ..drained
            },
            Backlog {
                unclaimed: 1,
                ..drained
            },
        ] {
            assert!(!busy.is_drained(), "{busy:?}");
        }
        assert_eq!(partition_of("orders-7", "orders"), Some("7"));
        assert_eq!(partition_of("orders", "orders"), None);
    }

    #[test]
    fn the_durable_and_its_partitions_are_ours_and_nothing_else() {
        assert!(is_ours("orders", "orders"));
        assert!(is_ours("orders-0", "orders"));
        assert!(is_ours("orders-17", "orders"));
        assert!(!is_ours("orders-", "orders"));
        assert!(
            is_ours("orders-eu_west", "orders"),
            "partition tokens are words"
        );
        assert!(!is_ours("orders2", "orders"));
        assert!(!is_ours("other", "orders"));
    }
}
