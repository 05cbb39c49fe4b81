//! The simulated API's own record of what it was asked and what it
//! accepted: the shared model's tally, in the simulation's types.

use std::time::Duration;

use sluice_api_model::{Counts, DeliverySet, Tally, max_in_any_window};
use sluice_models::{PartitionKey, RecordKey};

/// What the API saw: counts, success times and every delivered record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// The counts of the shared API model: calls (refused ones included),
    /// successes, failures, refusals (`rate_limit_hits`), cancelled calls,
    /// records delivered, records without a known source
    /// (`unidentified`), duplicates, order violations, and the admission
    /// times (since the API was created) of the first and last success.
    pub counts: Counts,
    /// Admission time of each success, since the API was created, in
    /// completion order. Kept only when the API logs deliveries.
    pub success_times: Vec<Duration>,
    /// The key of each delivered record in arrival order. Kept only when the
    /// API logs deliveries.
    pub deliveries: Vec<RecordKey>,
    /// Which records were delivered, always kept.
    pub audit: DeliveryAudit,
}

impl Ledger {
    /// The ledger of the shared model's `tally`.
    pub(crate) fn of(tally: &Tally<PartitionKey>) -> Ledger {
        Ledger {
            counts: tally.counts(),
            success_times: tally.success_times().collect(),
            deliveries: tally
                .arrivals()
                .map(|(partition, sequence_id)| record_key(partition, sequence_id))
                .collect(),
            audit: DeliveryAudit(tally.delivered().clone()),
        }
    }

    /// The most successes admitted within any window of length `window`,
    /// from [`success_times`](Self::success_times): an independent check
    /// of the API's limit.
    pub fn max_successes_in_any(&self, window: Duration) -> usize {
        max_in_any_window(self.success_times.iter().copied(), window)
    }
}

/// The records delivered, per (source, partition), in memory proportional
/// to the records delivered (about one bit each). Duplicates and order
/// violations are counted in [`Ledger::counts`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryAudit(DeliverySet<PartitionKey>);

impl DeliveryAudit {
    /// Whether `key` was delivered.
    pub fn is_delivered(&self, key: RecordKey) -> bool {
        self.0.contains(&key.partition_key(), key.sequence_id)
    }

    /// Every delivered key, once each.
    pub(crate) fn delivered_keys(&self) -> impl Iterator<Item = RecordKey> + '_ {
        self.0
            .iter()
            .map(|(partition, sequence_id)| record_key(partition, sequence_id))
    }
}

fn record_key(partition: &PartitionKey, sequence_id: u64) -> RecordKey {
    RecordKey {
        source: partition.source,
        partition: partition.partition,
        sequence_id,
    }
}

#[cfg(test)]
mod tests {
    use sluice_models::DataSource;

    use super::*;

    #[test]
    fn the_busiest_window_is_counted_from_success_times() {
        let ledger = Ledger {
            success_times: [0, 100, 999, 1000, 1500, 1999]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            ..Ledger::default()
        };
        // [0, 1000), [999, 1999) and [1000, 2000) hold 3 each: a success
        // exactly one window after another is outside that one's window.
        assert_eq!(ledger.max_successes_in_any(Duration::from_secs(1)), 3);
        assert!(!ledger.audit.is_delivered(RecordKey {
            source: DataSource::SystemMetrics,
            partition: 0,
            sequence_id: 1,
        }));
    }
}
