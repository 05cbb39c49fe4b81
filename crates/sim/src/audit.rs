//! Where every offered record went: delivered, dead-lettered, handed back,
//! or lost.

use std::collections::HashMap;

use serde::Serialize;
use sluice_models::RecordKey;

use crate::ledger::Ledger;
use crate::stream::Offered;

/// The fate of every offered record, checked key by key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Records the sources offered.
    pub offered: u64,
    /// Offered records neither delivered, dead-lettered nor handed back.
    pub lost: u64,
    /// Extra outcomes: a record delivered twice, or delivered and also
    /// dead-lettered or handed back.
    pub duplicates: u64,
    /// Deliveries of a record after a later record of its partition.
    pub order_violations: u64,
    /// Outcomes for records that were never offered.
    pub unexpected: u64,
}

impl Audit {
    /// Every offered record, and nothing else, has exactly one outcome, in
    /// order.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.order_violations == 0 && self.unexpected == 0
    }

    /// Checks each offered key against the API's deliveries and the
    /// processor's dead letters and handed-back records.
    pub fn of(
        offered: &Offered,
        ledger: &Ledger,
        dead_lettered: &[RecordKey],
        handed_back: &[RecordKey],
    ) -> Audit {
        let mut elsewhere: HashMap<RecordKey, u64> = HashMap::new();
        for key in dead_lettered.iter().chain(handed_back) {
            *elsewhere.entry(*key).or_default() += 1;
        }
        let per_partition = offered.per_partition();
        let was_offered = |key: &RecordKey| {
            per_partition
                .get(&key.partition_key())
                .is_some_and(|&count| (1..=count).contains(&key.sequence_id))
        };

        let mut audit = Audit {
            duplicates: ledger.counts.duplicates,
            order_violations: ledger.counts.order_violations,
            unexpected: ledger.counts.unidentified,
            ..Audit::default()
        };
        for key in offered.keys() {
            audit.offered += 1;
            let outcomes = u64::from(ledger.audit.is_delivered(key))
                + elsewhere.get(&key).copied().unwrap_or(0);
            match outcomes {
                0 => audit.lost += 1,
                n => audit.duplicates += n - 1,
            }
        }
        audit.unexpected += elsewhere.keys().filter(|key| !was_offered(key)).count() as u64;
        audit.unexpected += ledger
            .audit
            .delivered_keys()
            .filter(|key| !was_offered(key))
            .count() as u64;
        audit
    }
}
