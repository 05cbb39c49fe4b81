//! Which records were delivered, per partition: the duplicate and order
//! checks of the ledger.

use std::hash::Hash;

use indexmap::IndexMap;
use roaring::RoaringTreemap;

/// The sequences delivered to each partition, for duplicate and order
/// checks, in memory proportional to the records delivered.
///
/// `P` names a partition (e.g. a stream and a partition number); records
/// of one partition are expected in rising sequence order. The sequences
/// of a partition are a compressed bitmap ([`roaring`], made for the job):
/// about one bit a record for the dense sequences sources produce, a few
/// bytes a record for sparse ones, whatever their values.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySet<P: Eq + Hash> {
    partitions: IndexMap<P, Partition>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Partition {
    sequences: RoaringTreemap,
    highest: u64,
}

/// What one delivery was, besides a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The index of the delivery's partition, in the order partitions were
    /// first delivered to.
    pub(crate) partition: usize,
    /// The record was delivered before.
    pub(crate) duplicate: bool,
    /// A higher sequence of its partition was delivered before.
    pub(crate) out_of_order: bool,
}

impl<P: Eq + Hash> Default for DeliverySet<P> {
    fn default() -> Self {
        DeliverySet {
            partitions: IndexMap::new(),
        }
    }
}

impl<P: Eq + Hash> DeliverySet<P> {
    /// Notes the delivery of `sequence` to `partition`.
    pub(crate) fn insert(&mut self, partition: P, sequence: u64) -> Verdict {
        let entry = self.partitions.entry(partition);
        let index = entry.index();
        let seen = entry.or_default();
        let verdict = Verdict {
            partition: index,
            duplicate: !seen.sequences.insert(sequence),
            out_of_order: sequence < seen.highest,
        };
        seen.highest = seen.highest.max(sequence);
        verdict
    }

    /// Whether `sequence` was delivered to `partition`.
    pub fn contains(&self, partition: &P, sequence: u64) -> bool {
        self.partitions
            .get(partition)
            .is_some_and(|seen| seen.sequences.contains(sequence))
    }

    /// Every delivered (partition, sequence), once each: partitions in the
    /// order they were first delivered to, sequences rising.
    pub fn iter(&self) -> impl Iterator<Item = (&P, u64)> + '_ {
        self.partitions
            .iter()
            .flat_map(|(partition, seen)| seen.sequences.iter().map(move |s| (partition, s)))
    }

    /// The partition of index `index` (see [`Verdict::partition`]).
    pub(crate) fn partition(&self, index: usize) -> Option<&P> {
        self.partitions
            .get_index(index)
            .map(|(partition, _)| partition)
    }

    /// How many partitions were delivered to.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_reordering_are_found_per_partition() {
        let mut set = DeliverySet::default();
        let verdicts: Vec<(bool, bool)> = [(0, 1), (1, 5), (0, 2), (1, 6), (0, 2), (0, 1), (1, 7)]
            .into_iter()
            .map(|(partition, sequence)| {
                let verdict = set.insert(partition, sequence);
                (verdict.duplicate, verdict.out_of_order)
            })
            .collect();
        // (0, 2) again is a duplicate not below the highest; (0, 1) again is
        // both.
        let expected = [
            (false, false),
            (false, false),
            (false, false),
            (false, false),
            (true, false),
            (true, true),
            (false, false),
        ];
        assert_eq!(verdicts, expected);
        assert!(set.contains(&1, 6));
        assert!(!set.contains(&1, 4));
        assert!(!set.contains(&2, 1));
        assert_eq!(set.partitions(), 2);
        assert_eq!(set.partition(1), Some(&1));
    }

    #[test]
    fn far_and_dense_sequences_alike_are_kept_once() {
        let mut set = DeliverySet::default();
        let sequences = [1, 63, 64, 1000, 1 << 40, u64::MAX];
        for sequence in sequences {
            assert!(!set.insert("p", sequence).duplicate);
            assert!(set.insert("p", sequence).duplicate);
        }
        let listed: Vec<u64> = set.iter().map(|(_, sequence)| sequence).collect();
        assert_eq!(listed, sequences);
        assert!(!set.contains(&"p", 2));
    }
}
