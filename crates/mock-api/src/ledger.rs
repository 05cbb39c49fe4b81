//! The mock API's own record of what it was asked and what it accepted,
//! as `GET /ledger` serves it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_api_model::{
    Counts, Keep, Quota, Retention, Tally, failures_per_call, max_in_any_window,
};

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
    /// A record's own key → how many times a successful call delivered
    /// it: the record's `idempotency_key` field in an array body, or the
    /// header of a call whose body is one record.
    pub record_keys: BTreeMap<String, u64>,
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
    /// Calls that carried a `Sluice-Lease` header (see [`LEASE_HEADER`](crate::LEASE_HEADER)).
    pub lease_calls: u64,
    /// Of those, calls that arrived carrying, for some partition, a lease
    /// token lower than one an earlier call carried for it: sent by a
    /// writer whose lease another had taken over (a stale writer).
    pub stale_lease_calls: u64,
}

impl LedgerCounts {
    /// The model's counts and the HTTP annex's, times in whole milliseconds
    /// rounded down.
    pub(crate) fn of(counts: Counts, annex: &HttpAnnex) -> LedgerCounts {
        LedgerCounts {
            calls: counts.calls,
            successes: counts.successes,
            failures: counts.failures,
            rate_limit_hits: counts.rate_limit_hits,
            bad_requests: annex.bad_requests,
            cancelled: counts.cancelled,
            records_delivered: counts.records_delivered,
            duplicates: counts.duplicates,
            order_violations: counts.order_violations,
            first_success_ms: counts.first_success.map(millis),
            last_success_ms: counts.last_success.map(millis),
            lease_calls: annex.lease_calls,
            stale_lease_calls: annex.stale_lease_calls,
        }
    }

    /// Failed calls per well-formed call, refused and cancelled ones
    /// included (0 when there were none): the original test's API error
    /// rate, as `sluice_api_model::Counts::failures_per_call` defines it.
    pub fn failures_per_call(&self) -> f64 {
        failures_per_call(self.failures, self.calls)
    }

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
        let times = self
            .success_times_ms
            .iter()
            .map(|&ms| Duration::from_millis(ms));
        max_in_any_window(times, window)
    }

    /// The ledger of the model's `tally` and the HTTP annex: what `GET
    /// /ledger` serves.
    pub(crate) fn of(tally: &Tally<StreamPartition>, annex: &HttpAnnex) -> Ledger {
        let mut streams: BTreeMap<String, BTreeMap<u64, PartitionDeliveries>> = BTreeMap::new();
        for ((stream, partition), delivered) in tally.arrivals_by_partition() {
            let partitions = match streams.get_mut(stream.as_str()) {
                Some(partitions) => partitions,
                None => streams.entry(stream.clone()).or_default(),
            };
            partitions.insert(*partition, PartitionDeliveries { delivered });
        }
        Ledger {
            counts: LedgerCounts::of(tally.counts(), annex),
            success_times_ms: tally.success_times().map(millis).collect(),
            streams,
            idempotency_keys: annex.idempotency_keys.clone(),
            record_keys: annex
                .record_keys
                .iter()
                .map(|(key, count)| (key.clone(), *count))
                .collect(),
        }
    }
}

/// A (stream, partition): the unit the ledger checks for duplicates and
/// order.
pub(crate) type StreamPartition = (String, u64);

/// What the mock API keeps: every success time up to
/// [`SUCCESS_TIMES_CAP`], and every delivery in arrival order.
pub(crate) fn retention() -> Retention {
    Retention {
        success_times: Keep::Latest(SUCCESS_TIMES_CAP),
        arrivals: true,
    }
}

/// What the mock API counts beside the shared model: what only HTTP has.
#[derive(Debug, Default)]
pub(crate) struct HttpAnnex {
    /// Bodies refused with `400`.
    pub(crate) bad_requests: u64,
    /// Calls that carried leases, and those of a stale writer.
    lease_calls: u64,
    stale_lease_calls: u64,
    /// Partition → the highest lease token a call carried for it.
    lease_tokens: HashMap<String, u64>,
    /// `Idempotency-Key` header → how many successful calls carried it.
    idempotency_keys: BTreeMap<String, u64>,
    /// A record's own key → how many times it was delivered (hashed: a
    /// run may deliver millions, and the ledger sorts them only when
    /// asked).
    record_keys: HashMap<String, u64>,
}

impl HttpAnnex {
    /// Notes the `Idempotency-Key` of a successful call, if it had one.
    pub(crate) fn count_key(&mut self, idempotency_key: Option<&str>) {
        let Some(key) = idempotency_key else {
            return;
        };
        match self.idempotency_keys.get_mut(key) {
            Some(count) => *count += 1,
            None => {
                self.idempotency_keys.insert(key.to_owned(), 1);
            }
        }
    }

    /// Notes the leases a call carried, `partition=token` pairs separated
    /// by commas (malformed pairs are ignored): a stale call if a token is
    /// lower than the highest an earlier call carried for its partition.
    /// Returns whether it is stale.
    pub(crate) fn check_leases(&mut self, leases: &str) -> bool {
        self.lease_calls += 1;
        let mut stale = false;
        for pair in leases.split(',') {
            let Some((partition, token)) = pair.trim().split_once('=') else {
                continue;
            };
            let Ok(token) = token.trim().parse::<u64>() else {
                continue;
            };
            let highest = self
                .lease_tokens
                .entry(partition.trim().to_owned())
                .or_insert(token);
            stale |= token < *highest;
            *highest = (*highest).max(token);
        }
        self.stale_lease_calls += u64::from(stale);
        stale
    }

    /// Notes the records' own keys of a successful call.
    pub(crate) fn count_record_keys(&mut self, keys: Vec<String>) {
        for key in keys {
            *self.record_keys.entry(key).or_insert(0) += 1;
        }
    }
}

/// `time` in whole milliseconds, rounded down.
fn millis(time: Duration) -> u64 {
    u64::try_from(time.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sluice_api_model::ApiModel;

    use super::*;
    use crate::MockApiConfig;

    fn id(stream: &str, partition: u64, sequence: u64) -> RecordIdentity {
        RecordIdentity {
            stream: stream.to_owned(),
            partition,
            sequence,
        }
    }

    /// The ledger after successful calls, each admitted at `at_ms` with
    /// its records and key, on an API with no limit, failures or latency.
    fn ledger_after<'k>(
        calls: impl IntoIterator<Item = (u64, Vec<RecordIdentity>, Option<&'k str>)>,
    ) -> Ledger {
        let config = MockApiConfig {
            rate_limit: None,
            failure_rate: 0.0,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            seed: 0,
        };
        let api = ApiModel::new(config, retention(), HttpAnnex::default()).unwrap();
        for (at_ms, records, key) in calls {
            let call = api.admit(Duration::from_millis(at_ms)).unwrap();
            let deliveries = records.into_iter().map(|r| Some(r.into_delivery()));
            call.complete(deliveries, |annex| annex.count_key(key))
                .unwrap();
        }
        api.read(Ledger::of)
    }

    #[test]
    fn duplicates_and_reordering_are_found_per_partition() {
        let ledger = ledger_after([
            (0, vec![id("a", 0, 1), id("a", 1, 5)], Some("k")),
            (
                10,
                vec![id("a", 0, 2), id("a", 1, 6), id("b", 0, 1)],
                Some("k"),
            ),
            // (a, 0, 2) again is not below the highest; (a, 0, 1) is.
            (
                20,
                vec![id("a", 0, 2), id("a", 0, 1), id("a", 1, 7)],
                Some("k"),
            ),
            (30, vec![], None),
        ]);
        assert_eq!(ledger.counts.successes, 4);
        assert_eq!(ledger.counts.records_delivered, 8);
        assert_eq!(ledger.counts.duplicates, 2);
        assert_eq!(ledger.counts.order_violations, 1);
        assert_eq!(ledger.delivered("a", 0), [1, 2, 2, 1]);
        assert_eq!(ledger.delivered("a", 1), [5, 6, 7]);
        assert_eq!(ledger.delivered("c", 0), [] as [u64; 0]);
        assert_eq!(ledger.idempotency_keys.get("k"), Some(&3));
        assert_eq!(ledger.success_times_ms, [0, 10, 20, 30]);
        assert_eq!(
            (
                ledger.counts.first_success_ms,
                ledger.counts.last_success_ms
            ),
            (Some(0), Some(30))
        );
        assert_eq!(ledger.deliveries().count(), 8);
        let lost = ledger.lost_from([("a", 0, 1), ("a", 0, 3), ("b", 0, 1), ("b", 2, 1)]);
        assert_eq!(lost, [("a", 0, 3), ("b", 2, 1)]);
    }

    #[test]
    fn a_lease_token_below_the_highest_seen_for_its_partition_is_a_stale_call() {
        let mut annex = HttpAnnex::default();
        for leases in [
            "3=10",
            "3=12, 7=4",
            "3=12",      // the same holder again: not stale
            "7=4, 3=11", // an older holder of 3
            "7=5",
            "nonsense, 9=x",
        ] {
            annex.check_leases(leases);
        }
        let counts = LedgerCounts::of(Counts::default(), &annex);
        assert_eq!((counts.lease_calls, counts.stale_lease_calls), (6, 1));
        assert_eq!(annex.lease_tokens["3"], 12);
        assert_eq!(annex.lease_tokens["7"], 5);
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
        let ledger = ledger_after((0..SUCCESS_TIMES_CAP as u64 + 3).map(|t| (t, vec![], None)));
        assert_eq!(ledger.success_times_ms.len(), SUCCESS_TIMES_CAP);
        assert_eq!(ledger.success_times_ms.first(), Some(&3));
        assert_eq!(ledger.counts.first_success_ms, Some(0));

        let ledger = ledger_after([(5, vec![id("s", 3, 9)], Some("key-1"))]);
        let json = serde_json::to_value(&ledger).unwrap();
        assert_eq!(
            json["streams"]["s"]["3"]["delivered"],
            serde_json::json!([9])
        );
        assert_eq!(json["first_success_ms"], 5);
        assert_eq!(json["idempotency_keys"]["key-1"], 1);
        let back: Ledger = serde_json::from_value(json).unwrap();
        assert_eq!(back, ledger);
    }

    #[test]
    fn failures_per_call_count_every_well_formed_call() {
        let mut counts = LedgerCounts::default();
        assert_eq!(counts.failures_per_call(), 0.0, "no call made");
        counts.calls = 16;
        counts.successes = 3;
        counts.failures = 1;
        // Refused and cancelled calls are calls; malformed bodies are not.
        counts.rate_limit_hits = 10;
        counts.cancelled = 2;
        counts.bad_requests = 100;
        assert_eq!(counts.failures_per_call(), 0.0625);
    }
}
