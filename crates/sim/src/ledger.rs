//! The simulated API's own record of what it was asked and what it accepted.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sluice_models::{PartitionKey, RecordKey};

/// What the API saw: counts, success times and every delivered record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// Calls made, refused ones included.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Records delivered by successful calls (as many as successes when
    /// every call carries one record).
    pub records: u64,
    /// Calls that failed with a transient error.
    pub failures: u64,
    /// Calls refused as rate limited.
    pub rate_limit_hits: u64,
    /// Calls admitted but abandoned by the caller before they completed
    /// (the future was dropped); not delivered.
    pub cancelled: u64,
    /// Admission time of the last success, since the API was created.
    pub last_success: Option<Duration>,
    /// Admission time of each success, since the API was created, in
    /// completion order. Kept only when the API logs deliveries.
    pub success_times: Vec<Duration>,
    /// The key of each delivered record in arrival order. Kept only when the
    /// API logs deliveries.
    pub deliveries: Vec<RecordKey>,
    /// Per-partition delivery checks, always kept.
    pub audit: DeliveryAudit,
}

impl Ledger {
    /// Failed calls as a fraction of all calls (0 when there were none).
    pub fn failure_fraction(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.failures as f64 / self.calls as f64
        }
    }

    /// The most successes admitted within any window of length `window`,
    /// from [`success_times`](Self::success_times): an independent check
    /// of the API's limit.
    pub fn max_successes_in_any(&self, window: Duration) -> usize {
        let mut times = self.success_times.clone();
        times.sort_unstable();
        let mut most = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= window {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }
}

/// Duplicate and order checks of deliveries, per (source, partition),
/// kept as the records arrive, in memory proportional to the records
/// delivered (one bit each).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryAudit {
    partitions: HashMap<PartitionKey, PartitionDeliveries>,
    duplicates: u64,
    order_violations: u64,
    unidentified: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct PartitionDeliveries {
    delivered: SequenceSet,
    highest: u64,
}

impl DeliveryAudit {
    /// Notes the delivery of `key`.
    pub fn record(&mut self, key: RecordKey) {
        let partition = self.partitions.entry(key.partition_key()).or_default();
        if !partition.delivered.insert(key.sequence_id) {
            self.duplicates += 1;
        }
        if key.sequence_id < partition.highest {
            self.order_violations += 1;
        }
        partition.highest = partition.highest.max(key.sequence_id);
    }

    /// Notes the delivery of a record whose source is not a known name.
    pub fn record_unidentified(&mut self) {
        self.unidentified += 1;
    }

    /// Whether `key` was delivered.
    pub fn is_delivered(&self, key: RecordKey) -> bool {
        self.partitions
            .get(&key.partition_key())
            .is_some_and(|p| p.delivered.contains(key.sequence_id))
    }

    /// Deliveries of a record already delivered.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Deliveries of a record after a later record of its partition.
    pub fn order_violations(&self) -> u64 {
        self.order_violations
    }

    /// Deliveries of records without a known source.
    pub fn unidentified(&self) -> u64 {
        self.unidentified
    }

    /// Every delivered key, for audits: (partition, sequence ids).
    pub(crate) fn delivered_keys(&self) -> impl Iterator<Item = RecordKey> + '_ {
        self.partitions.iter().flat_map(|(partition, deliveries)| {
            deliveries.delivered.iter().map(|sequence_id| RecordKey {
                source: partition.source,
                partition: partition.partition,
                sequence_id,
            })
        })
    }
}

/// A set of sequence ids: a bitmap for the dense ids sources produce, a
/// hash set for any far beyond them.
#[derive(Debug, Clone, Default, PartialEq)]
struct SequenceSet {
    words: Vec<u64>,
    sparse: HashSet<u64>,
}

/// Ids below this are kept in the bitmap (at most 8 MiB per partition).
const DENSE_LIMIT: u64 = 1 << 26;

impl SequenceSet {
    /// Adds `id`; false if it was already there.
    fn insert(&mut self, id: u64) -> bool {
        if id >= DENSE_LIMIT {
            return self.sparse.insert(id);
        }
        let (word, bit) = ((id / 64) as usize, id % 64);
        if word >= self.words.len() {
            self.words.resize((word + 1).next_power_of_two(), 0);
        }
        let was_set = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        !was_set
    }

    fn contains(&self, id: u64) -> bool {
        if id >= DENSE_LIMIT {
            return self.sparse.contains(&id);
        }
        self.words
            .get((id / 64) as usize)
            .is_some_and(|word| word & (1 << (id % 64)) != 0)
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let dense = self.words.iter().enumerate().flat_map(|(i, &word)| {
            (0..64u64)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| i as u64 * 64 + bit)
        });
        dense.chain(self.sparse.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use sluice_models::DataSource;

    use super::*;

    fn key(partition: u32, sequence_id: u64) -> RecordKey {
        RecordKey {
            source: DataSource::SystemMetrics,
            partition,
            sequence_id,
        }
    }

    #[test]
    fn the_audit_finds_duplicates_and_reordering_per_partition() {
        let mut audit = DeliveryAudit::default();
        for (partition, sequence_id) in [(0, 1), (1, 5), (0, 2), (1, 6), (0, 2), (0, 1), (1, 7)] {
            audit.record(key(partition, sequence_id));
        }
        assert_eq!(audit.duplicates(), 2);
        // (0, 2) again is not earlier than the highest; (0, 1) is.
        assert_eq!(audit.order_violations(), 1);
        assert!(audit.is_delivered(key(1, 6)));
        assert!(!audit.is_delivered(key(1, 4)));
        assert!(!audit.is_delivered(key(2, 1)));
    }

    #[test]
    fn sequence_sets_hold_dense_and_far_ids() {
        let mut set = SequenceSet::default();
        for id in [1, 63, 64, 1000, DENSE_LIMIT + 5, u64::MAX] {
            assert!(set.insert(id));
            assert!(!set.insert(id));
            assert!(set.contains(id));
        }
        assert!(!set.contains(2));
        let mut ids: Vec<u64> = set.iter().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 63, 64, 1000, DENSE_LIMIT + 5, u64::MAX]);
    }

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
    }
}
