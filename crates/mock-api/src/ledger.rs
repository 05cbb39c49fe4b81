//! The mock API's own record of what it was asked and what it accepted,
//! as `GET /ledger` serves it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Quota;
use crate::record::RecordIdentity;

/// How many success times the ledger keeps: the latest ones.
pub const SUCCESS_TIMES_CAP: usize = 1_000_000;

/// What the API saw: counts, success times and every delivered record.
///
/// Times are whole milliseconds since the server started, rounded down,
/// taken when a call was admitted. `calls` counts every well-formed call,
/// refused ones included: `calls` = `successes` + `failures` +
/// `rate_limit_hits` + `cancelled` + the calls still in flight. Malformed
/// bodies are counted apart, in `bad_requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ledger {
    /// Its counters; in JSON, at the top level beside the lists.
    #[serde(flatten)]
    pub counts: LedgerCounts,
    /// The admission time of each success, in completion order; the last
    /// [`SUCCESS_TIMES_CAP`] only.
    pub success_times_ms: Vec<u64>,
    /// Stream name → partition → the sequences delivered, in arrival order.
    pub streams: BTreeMap<String, BTreeMap<u64, PartitionDeliveries>>,
    /// `Idempotency-Key` header → how many successful calls carried it.
    pub idempotency_keys: BTreeMap<String, u64>,
}

/// The ledger's counters without its lists, as `GET /ledger/counts`
/// serves them: cheap to ask for while a run goes on, whatever its length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LedgerCounts {
    /// Well-formed calls, refused ones included.
    pub calls: u64,
    /// Calls that succeeded (`200`).
    pub successes: u64,
    /// Calls that failed as the configuration asked (`503`).
    pub failures: u64,
    /// Calls refused because the window was full (`429`).
    pub rate_limit_hits: u64,
    /// Bodies that were not one record or an array of records (`400`).
    pub bad_requests: u64,
    /// Admitted calls whose client went away before they completed.
    pub cancelled: u64,
    /// Records delivered by successful calls, duplicates included.
    pub records_delivered: u64,
    /// Deliveries of a record delivered before.
    pub duplicates: u64,
    /// Deliveries of a record after a higher sequence of its partition.
    pub order_violations: u64,
    /// The earliest admission time of a success.
    pub first_success_ms: Option<u64>,
    /// The latest admission time of a success.
    pub last_success_ms: Option<u64>,
}

impl LedgerCounts {
    /// Distinct records delivered: deliveries less the repeated ones.
    ///
    /// ```
    /// let counts = sluice_mock_api::LedgerCounts {
    ///     records_delivered: 10,
    ///     duplicates: 3,
    ///     ..Default::default()
    /// };
    /// assert_eq!(counts.distinct_records_delivered(), 7);
    /// ```
    pub fn distinct_records_delivered(&self) -> u64 {
        self.records_delivered.saturating_sub(self.duplicates)
    }

    /// The share of the quota's ceiling its successes used, from the first
    /// success to the last: successes ÷ the most `quota` admits in that
    /// span, `limit × (⌊span ÷ window⌋ + 1)` (a sliding window admits
    /// `limit` calls in each of those windows, and no more). `None` before
    /// the first success. Times are whole milliseconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice_mock_api::{LedgerCounts, Quota};
    ///
    /// let quota = Quota { limit: 100, window: Duration::from_secs(1) };
    /// // 100 successes at once, 100 more at 1 s and at 2 s: all it admits.
    /// let full = LedgerCounts {
    ///     successes: 300,
    ///     first_success_ms: Some(0),
    ///     last_success_ms: Some(2_000),
    ///     ..Default::default()
    /// };
    /// assert_eq!(full.ceiling_used(quota), Some(1.0));
    /// // One success every 10 ms from 0 to 2 990 ms: as full.
    /// let even = LedgerCounts { successes: 300, last_success_ms: Some(2_990), ..full };
    /// assert_eq!(even.ceiling_used(quota), Some(1.0));
    /// assert_eq!(LedgerCounts::default().ceiling_used(quota), None);
    /// ```
    pub fn ceiling_used(&self, quota: Quota) -> Option<f64> {
        let span_ms = self.last_success_ms?.saturating_sub(self.first_success_ms?);
        let window_ms = u64::try_from(quota.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let windows = span_ms / window_ms + 1;
        let ceiling = u64::from(quota.limit).saturating_mul(windows);
        Some(self.successes as f64 / ceiling.max(1) as f64)
    }
}

/// The deliveries to one (stream, partition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartitionDeliveries {
    /// The sequences delivered, in arrival order, duplicates included.
    pub delivered: Vec<u64>,
}

impl Ledger {
    /// The sequences delivered to `stream`'s `partition`, in arrival order
    /// (empty if none).
    pub fn delivered(&self, stream: &str, partition: u64) -> &[u64] {
        self.streams
            .get(stream)
            .and_then(|partitions| partitions.get(&partition))
            .map_or(&[], |p| p.delivered.as_slice())
    }

    /// The identities of `expected`, `(stream, partition, sequence)`, that
    /// were never delivered, in the order given.
    pub fn lost_from<S: AsRef<str>>(
        &self,
        expected: impl IntoIterator<Item = (S, u64, u64)>,
    ) -> Vec<(S, u64, u64)> {
        let mut sets: HashMap<(String, u64), HashSet<u64>> = HashMap::new();
        expected
            .into_iter()
            .filter(|(stream, partition, sequence)| {
                let stream = stream.as_ref();
                let set = sets
                    .entry((stream.to_owned(), *partition))
                    .or_insert_with(|| {
                        self.delivered(stream, *partition).iter().copied().collect()
                    });
                !set.contains(sequence)
            })
            .collect()
    }

    /// Every delivery's identity, stream by stream, partition by partition,
    /// in arrival order within a partition.
    pub fn deliveries(&self) -> impl Iterator<Item = RecordIdentity> + '_ {
        self.streams.iter().flat_map(|(stream, partitions)| {
            partitions.iter().flat_map(move |(&partition, deliveries)| {
                deliveries
                    .delivered
                    .iter()
                    .map(move |&sequence| RecordIdentity {
                        stream: stream.clone(),
                        partition,
                        sequence,
                    })
            })
        })
    }

    /// The most successes admitted within any window of length `window`
    /// (a success exactly one window after another is outside that one's
    /// window), from [`success_times_ms`](Self::success_times_ms): an
    /// independent check of the limit. Exact for windows of whole
    /// milliseconds.
    pub fn max_successes_in_any(&self, window: Duration) -> usize {
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        if window == 0 {
            return 0;
        }
        let mut times = self.success_times_ms.clone();
        times.sort_unstable();
        let mut most = 0;
        let mut start = 0;
        for end in 0..times.len() {
            // Stops at `start == end` at the latest, as the window is above 0.
            while times[end] - times[start] >= window {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }

    /// Failed calls as a fraction of admitted calls that completed
    /// (successes and failures; 0 when there were none).
    pub fn failure_fraction(&self) -> f64 {
        let completed = self.counts.successes + self.counts.failures;
        if completed == 0 {
            0.0
        } else {
            self.counts.failures as f64 / completed as f64
        }
    }
}

/// The ledger as the server keeps it, with what it needs to find
/// duplicates and order violations.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// Everything but `success_times_ms`.
    pub(crate) ledger: Ledger,
    success_times: VecDeque<u64>,
    partitions: HashMap<String, HashMap<u64, Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    sequences: HashSet<u64>,
    highest: u64,
}

impl Recorder {
    /// Notes a successful call admitted `at_ms` after the start.
    pub(crate) fn success(
        &mut self,
        at_ms: u64,
        records: &[RecordIdentity],
        idempotency_key: Option<&str>,
    ) {
        let ledger = &mut self.ledger;
        ledger.counts.successes += 1;
        ledger.counts.records_delivered += records.len() as u64;
        ledger.counts.first_success_ms = Some(
            ledger
                .counts
                .first_success_ms
                .map_or(at_ms, |t| t.min(at_ms)),
        );
        ledger.counts.last_success_ms = Some(
            ledger
                .counts
                .last_success_ms
                .map_or(at_ms, |t| t.max(at_ms)),
        );
        if self.success_times.len() >= SUCCESS_TIMES_CAP {
            self.success_times.pop_front();
        }
        self.success_times.push_back(at_ms);
        if let Some(key) = idempotency_key {
            match ledger.idempotency_keys.get_mut(key) {
                Some(count) => *count += 1,
                None => {
                    ledger.idempotency_keys.insert(key.to_owned(), 1);
                }
            }
        }
        for record in records {
            self.deliver(record);
        }
    }

    fn deliver(&mut self, record: &RecordIdentity) {
        let RecordIdentity {
            stream,
            partition,
            sequence,
        } = record;
        let partitions = match self.ledger.streams.get_mut(stream.as_str()) {
            Some(partitions) => partitions,
            None => self.ledger.streams.entry(stream.clone()).or_default(),
        };
        partitions
            .entry(*partition)
            .or_default()
            .delivered
            .push(*sequence);
        let seen = match self.partitions.get_mut(stream.as_str()) {
            Some(seen) => seen,
            None => self.partitions.entry(stream.clone()).or_default(),
        };
        let seen = seen.entry(*partition).or_default();
        if !seen.sequences.insert(*sequence) {
            self.ledger.counts.duplicates += 1;
        }
        if *sequence < seen.highest {
            self.ledger.counts.order_violations += 1;
        }
        seen.highest = seen.highest.max(*sequence);
    }

    /// The counters as they stand, without copying any list.
    pub(crate) fn counts(&self) -> LedgerCounts {
        self.ledger.counts
    }

    /// A copy of the ledger as it stands.
    pub(crate) fn snapshot(&self) -> Ledger {
        Ledger {
            success_times_ms: self.success_times.iter().copied().collect(),
            ..self.ledger.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn id(stream: &str, partition: u64, sequence: u64) -> RecordIdentity {
        RecordIdentity {
            stream: stream.to_owned(),
            partition,
            sequence,
        }
    }

    #[test]
    fn duplicates_and_reordering_are_found_per_partition() {
        let mut recorder = Recorder::default();
        let calls = [
            vec![id("a", 0, 1), id("a", 1, 5)],
            vec![id("a", 0, 2), id("a", 1, 6), id("b", 0, 1)],
            // (a, 0, 2) again is not below the highest; (a, 0, 1) is.
            vec![id("a", 0, 2), id("a", 0, 1), id("a", 1, 7)],
        ];
        for (i, records) in calls.iter().enumerate() {
            recorder.success(i as u64 * 10, records, Some("k"));
        }
        let ledger = recorder.snapshot();
        assert_eq!(ledger.counts.successes, 3);
        assert_eq!(ledger.counts.records_delivered, 8);
        assert_eq!(ledger.counts.duplicates, 2);
        assert_eq!(ledger.counts.order_violations, 1);
        assert_eq!(ledger.delivered("a", 0), [1, 2, 2, 1]);
        assert_eq!(ledger.delivered("a", 1), [5, 6, 7]);
        assert_eq!(ledger.delivered("c", 0), [] as [u64; 0]);
        assert_eq!(ledger.idempotency_keys.get("k"), Some(&3));
        assert_eq!(ledger.success_times_ms, [0, 10, 20]);
        assert_eq!(
            (
                ledger.counts.first_success_ms,
                ledger.counts.last_success_ms
            ),
            (Some(0), Some(20))
        );
        assert_eq!(ledger.deliveries().count(), 8);
        let lost = ledger.lost_from([("a", 0, 1), ("a", 0, 3), ("b", 0, 1), ("b", 2, 1)]);
        assert_eq!(lost, [("a", 0, 3), ("b", 2, 1)]);
    }

    #[test]
    fn the_busiest_window_is_counted_from_success_times() {
        let ledger = Ledger {
            success_times_ms: vec![1999, 0, 100, 999, 1000, 1500],
            ..Ledger::default()
        };
        // [0, 1000), [999, 1999) and [1000, 2000) hold 3 each.
        assert_eq!(ledger.max_successes_in_any(Duration::from_secs(1)), 3);
        assert_eq!(ledger.max_successes_in_any(Duration::MAX), 6);
        assert_eq!(ledger.max_successes_in_any(Duration::ZERO), 0);
        assert_eq!(
            Ledger::default().max_successes_in_any(Duration::from_secs(1)),
            0
        );
    }

    #[test]
    fn success_times_keep_the_latest_and_the_json_round_trips() {
        let mut recorder = Recorder::default();
        for t in 0..SUCCESS_TIMES_CAP as u64 + 3 {
            recorder.success(t, &[], None);
        }
        let ledger = recorder.snapshot();
        assert_eq!(ledger.success_times_ms.len(), SUCCESS_TIMES_CAP);
        assert_eq!(ledger.success_times_ms.first(), Some(&3));
        assert_eq!(ledger.counts.first_success_ms, Some(0));

        let mut recorder = Recorder::default();
        recorder.success(5, &[id("s", 3, 9)], Some("key-1"));
        let ledger = recorder.snapshot();
        let json = serde_json::to_value(&ledger).unwrap();
        assert_eq!(
            json["streams"]["s"]["3"]["delivered"],
            serde_json::json!([9])
        );
        assert_eq!(json["first_success_ms"], 5);
        let back: Ledger = serde_json::from_value(json).unwrap();
        assert_eq!(back, ledger);
    }

    #[test]
    fn the_failure_fraction_counts_completed_calls_only() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.failure_fraction(), 0.0, "no call completed");
        ledger.counts.successes = 3;
        ledger.counts.failures = 1;
        // Refused and cancelled calls did not complete: not counted.
        ledger.counts.rate_limit_hits = 10;
        ledger.counts.cancelled = 10;
        assert_eq!(ledger.failure_fraction(), 0.25);
    }
}
