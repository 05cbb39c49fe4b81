//! What the broker still holds for a run: the durable consumers' pending
//! counts (messages not yet delivered to them), polled every few seconds
//! and told to the run's input progress, for the status line, the metrics
//! and the live page.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_trait::async_trait;
use futures::TryStreamExt;
use sluice_processor::{ConnectorError, Finish, Finished, InputGauge};
use tokio::task::JoinHandle;

/// How often the pending count is asked for.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Whether `consumer` is the durable `durable` or one of its partitions'
/// (`<durable>-<partition>`).
fn is_ours(consumer: &str, durable: &str) -> bool {
    consumer == durable
        || consumer
            .strip_prefix(durable)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|partition| {
                !partition.is_empty() && partition.bytes().all(|b| b.is_ascii_digit())
            })
}

/// The messages of `stream` not yet delivered to the consumers of
/// `durable`.
///
/// # Errors
/// The server's, when it cannot list the consumers.
async fn pending(
    stream: &jetstream::stream::Stream,
    durable: &str,
) -> Result<u64, async_nats::Error> {
    let mut consumers = stream.consumers();
    let mut pending = 0;
    while let Some(info) = consumers.try_next().await? {
        if is_ours(&info.name, durable) {
            pending += info.num_pending;
        }
    }
    Ok(pending)
}

/// Polls the pending count of `durable`'s consumers of `stream` into
/// `gauge` until aborted; a failed poll leaves the last count and is
/// logged at debug level (the source reports the server's failures).
pub(crate) fn poll(
    stream: jetstream::stream::Stream,
    durable: String,
    gauge: Arc<InputGauge>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(POLL_EVERY);
        loop {
            every.tick().await;
            match pending(&stream, &durable).await {
                Ok(count) => gauge.set_pending(count),
                Err(error) => tracing::debug!(%error, "pending count not read"),
            }
        }
    })
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
    fn the_durable_and_its_partitions_are_ours_and_nothing_else() {
        assert!(is_ours("orders", "orders"));
        assert!(is_ours("orders-0", "orders"));
        assert!(is_ours("orders-17", "orders"));
        assert!(!is_ours("orders-", "orders"));
        assert!(!is_ours("orders-leases", "orders"));
        assert!(!is_ours("orders2", "orders"));
        assert!(!is_ours("other", "orders"));
    }
}
