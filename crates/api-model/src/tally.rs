//! The ledger's counting: what the API was asked and what it accepted.

use std::collections::VecDeque;
use std::hash::Hash;
use std::time::Duration;

use crate::deliveries::DeliverySet;

/// The ledger's counters. Times are durations since the API's start,
/// taken when a call was admitted.
///
/// `calls` = `successes` + `failures` + `rate_limit_hits` + `cancelled` +
/// the calls still in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls made, refused ones included.
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Admitted calls that failed as the behaviour drew.
    pub failures: u64,
    /// Calls refused because the window was full.
    pub rate_limit_hits: u64,
    /// Admitted calls abandoned by the caller before they completed; not
    /// delivered.
    pub cancelled: u64,
    /// Records delivered by successful calls, duplicates and unidentified
    /// records included.
    pub records_delivered: u64,
    /// Records delivered without an identity (not in any partition).
    pub unidentified: u64,
    /// Deliveries of a record delivered before.
    pub duplicates: u64,
    /// Deliveries of a record after a higher sequence of its partition.
    pub order_violations: u64,
    /// The earliest admission time of a success.
    pub first_success: Option<Duration>,
    /// The latest admission time of a success.
    pub last_success: Option<Duration>,
}

impl Counts {
    /// Failed calls per call made: `failures / calls`, where `calls`
    /// includes refused and cancelled calls (0 when there were none).
    ///
    /// This is the original test's API error rate, the figure a client's
    /// `error_rate` (failed calls over all its calls) is checked against;
    /// it is *not* an estimate of the behaviour's `failure_rate`, which
    /// applies to admitted calls only.
    ///
    /// ```
    /// let counts = sluice_api_model::Counts {
    ///     calls: 20,
    ///     successes: 6,
    ///     failures: 2,
    ///     rate_limit_hits: 12,
    ///     ..Default::default()
    /// };
    /// assert_eq!(counts.failures_per_call(), 0.1);
    /// ```
    pub fn failures_per_call(&self) -> f64 {
        failures_per_call(self.failures, self.calls)
    }
}

/// `failures / calls`, 0 when there were no calls: see
/// [`Counts::failures_per_call`]. For ledgers that keep these counts in
/// their own shape.
pub fn failures_per_call(failures: u64, calls: u64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        failures as f64 / calls as f64
    }
}

/// How many of a kind of entry a ledger keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// None: counts only.
    Nothing,
    /// The latest this many.
    Latest(usize),
    /// Every one.
    All,
}

/// What a ledger keeps beyond its counts and its [`DeliverySet`] (which it
/// always keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The admission times of successes, in completion order.
    pub success_times: Keep,
    /// Whether to keep the identity of every delivery in arrival order,
    /// duplicates included.
    pub arrivals: bool,
}

impl Retention {
    /// Everything: every success time and every arrival.
    pub const EVERYTHING: Retention = Retention {
        success_times: Keep::All,
        arrivals: true,
    };

    /// Counts and the delivery set only, for long runs.
    pub const COUNTS: Retention = Retention {
        success_times: Keep::Nothing,
        arrivals: false,
    };
}

/// What the API saw: [`Counts`], success times and deliveries, kept as
/// its [`Retention`] says.
///
/// `P` names a partition; a delivered record is identified by its
/// partition and its sequence in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally<P: Eq + Hash> {
    counts: Counts,
    retention: Retention,
    success_times: VecDeque<Duration>,
    delivered: DeliverySet<P>,
    /// (partition index in `delivered`, sequence) of each delivery.
    arrivals: Vec<(usize, u64)>,
}

impl<P: Eq + Hash> Tally<P> {
    /// An empty tally that keeps what `retention` says.
    pub fn new(retention: Retention) -> Tally<P> {
        Tally {
            counts: Counts::default(),
            retention,
            success_times: VecDeque::new(),
            delivered: DeliverySet::default(),
            arrivals: Vec::new(),
        }
    }

    /// The counters as they stand.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The admission times of successes, in completion order (the latest
    /// ones only, or none, as the retention says).
    pub fn success_times(&self) -> impl ExactSizeIterator<Item = Duration> + '_ {
        self.success_times.iter().copied()
    }

    /// The most successes admitted within any window of length `window`,
    /// from the kept [`success_times`](Self::success_times): an
    /// independent check of the limit.
    pub fn max_successes_in_any(&self, window: Duration) -> usize {
        max_in_any_window(self.success_times(), window)
    }

    /// Every record delivered, once each.
    pub fn delivered(&self) -> &DeliverySet<P> {
        &self.delivered
    }

    /// Every delivery as (partition, sequence) in arrival order,
    /// duplicates included; empty unless the retention keeps arrivals.
    pub fn arrivals(&self) -> impl Iterator<Item = (&P, u64)> + '_ {
        self.arrivals
            .iter()
            .filter_map(|&(index, sequence)| Some((self.delivered.partition(index)?, sequence)))
    }

    /// The sequences delivered to each partition in arrival order,
    /// duplicates included, partitions in the order they were first
    /// delivered to; empty unless the retention keeps arrivals.
    pub fn arrivals_by_partition(&self) -> impl Iterator<Item = (&P, Vec<u64>)> + '_ {
        let mut by_partition = vec![Vec::new(); self.delivered.partitions()];
        for &(index, sequence) in &self.arrivals {
            if let Some(sequences) = by_partition.get_mut(index) {
                sequences.push(sequence);
            }
        }
        by_partition
            .into_iter()
            .enumerate()
            .filter(|(_, sequences)| !sequences.is_empty())
            .filter_map(|(index, sequences)| Some((self.delivered.partition(index)?, sequences)))
    }

    /// Notes a call, before it is admitted or refused.
    pub(crate) fn call(&mut self) {
        self.counts.calls += 1;
    }

    /// Notes a call refused because the window was full.
    pub(crate) fn refused(&mut self) {
        self.counts.rate_limit_hits += 1;
    }

    /// Notes an admitted call that failed.
    pub(crate) fn failed(&mut self) {
        self.counts.failures += 1;
    }

    /// Notes an admitted call abandoned before it completed.
    pub(crate) fn cancelled(&mut self) {
        self.counts.cancelled += 1;
    }

    /// Notes a success admitted `at`, delivering `records`: each a
    /// (partition, sequence), or `None` for a record without an identity.
    pub(crate) fn succeeded(
        &mut self,
        at: Duration,
        records: impl IntoIterator<Item = Option<(P, u64)>>,
    ) {
        let counts = &mut self.counts;
        counts.successes += 1;
        counts.first_success = Some(counts.first_success.map_or(at, |t| t.min(at)));
        counts.last_success = Some(counts.last_success.map_or(at, |t| t.max(at)));
        match self.retention.success_times {
            Keep::Nothing => {}
            Keep::Latest(most) => {
                if self.success_times.len() >= most {
                    self.success_times.pop_front();
                }
                if most > 0 {
                    self.success_times.push_back(at);
                }
            }
            Keep::All => self.success_times.push_back(at),
        }
        for record in records {
            self.counts.records_delivered += 1;
            let Some((partition, sequence)) = record else {
                self.counts.unidentified += 1;
                continue;
            };
            let verdict = self.delivered.insert(partition, sequence);
            self.counts.duplicates += u64::from(verdict.duplicate);
            self.counts.order_violations += u64::from(verdict.out_of_order);
            if self.retention.arrivals {
                self.arrivals.push((verdict.partition, sequence));
            }
        }
    }
}

/// The most of `times` within any window of length `window`: `b` is in
/// the window of `a` if `a <= b < a + window`, so a time exactly one window
/// after another is outside that one's window. 0 for a zero window.
pub fn max_in_any_window(times: impl IntoIterator<Item = Duration>, window: Duration) -> usize {
    if window.is_zero() {
        return 0;
    }
    let mut times: Vec<Duration> = times.into_iter().collect();
    times.sort_unstable();
    let mut most = 0;
    let mut start = 0;
    for (end, &last) in times.iter().enumerate() {
        // Stops at `start == end` at the latest, as the window is above 0.
        while times
            .get(start)
            .is_some_and(|&first| last - first >= window)
        {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_busiest_window_is_counted_from_times() {
        let times = [1999, 0, 100, 999, 1000, 1500].map(ms);
        // [0, 1000), [999, 1999) and [1000, 2000) hold 3 each.
        assert_eq!(max_in_any_window(times, Duration::from_secs(1)), 3);
        assert_eq!(max_in_any_window(times, Duration::MAX), 6);
        assert_eq!(max_in_any_window(times, Duration::ZERO), 0);
        assert_eq!(max_in_any_window([], Duration::from_secs(1)), 0);
    }

    #[test]
    fn successes_count_records_duplicates_and_reordering() {
        let mut tally = Tally::new(Retention::EVERYTHING);
        tally.call();
        tally.succeeded(ms(20), [Some(("a", 1)), Some(("b", 5)), None]);
        tally.call();
        tally.succeeded(ms(10), [Some(("a", 2)), Some(("a", 1))]);
        let counts = tally.counts();
        assert_eq!(
            (counts.calls, counts.successes, counts.records_delivered),
            (2, 2, 5)
        );
        assert_eq!(
            (
                counts.unidentified,
                counts.duplicates,
                counts.order_violations
            ),
            (1, 1, 1)
        );
        // Completed later but admitted earlier: the first success.
        assert_eq!(
            (counts.first_success, counts.last_success),
            (Some(ms(10)), Some(ms(20)))
        );
        assert_eq!(tally.success_times().collect::<Vec<_>>(), [ms(20), ms(10)]);
        let arrivals: Vec<_> = tally.arrivals().map(|(p, s)| (*p, s)).collect();
        assert_eq!(arrivals, [("a", 1), ("b", 5), ("a", 2), ("a", 1)]);
        let by_partition: Vec<_> = tally
            .arrivals_by_partition()
            .map(|(p, s)| (*p, s))
            .collect();
        assert_eq!(by_partition, [("a", vec![1, 2, 1]), ("b", vec![5])]);
        assert!(tally.delivered().contains(&"b", 5));
    }

    #[test]
    fn retention_keeps_the_latest_times_or_none() {
        let mut latest = Tally::new(Retention {
            success_times: Keep::Latest(2),
            arrivals: false,
        });
        let mut none = Tally::new(Retention::COUNTS);
        for t in 0..5 {
            latest.succeeded(ms(t), [Some(("p", t))]);
            none.succeeded(ms(t), [Some(("p", t))]);
        }
        assert_eq!(latest.success_times().collect::<Vec<_>>(), [ms(3), ms(4)]);
        assert_eq!(latest.arrivals().count(), 0);
        assert_eq!(none.success_times().len(), 0);
        // The delivery set and the counts are kept regardless.
        assert!(none.delivered().contains(&"p", 4));
        assert_eq!(none.counts().first_success, Some(ms(0)));
        let mut zero = Tally::new(Retention {
            success_times: Keep::Latest(0),
            arrivals: false,
        });
        zero.succeeded(ms(1), [None::<(&str, u64)>]);
        assert_eq!(zero.success_times().len(), 0);
    }

    #[test]
    fn failures_per_call_count_refused_and_cancelled_calls() {
        let mut counts = Counts::default();
        assert_eq!(counts.failures_per_call(), 0.0, "no call made");
        counts.calls = 8;
        counts.successes = 3;
        counts.failures = 1;
        // Refused and cancelled calls are calls: in the denominator.
        counts.rate_limit_hits = 2;
        counts.cancelled = 2;
        assert_eq!(counts.failures_per_call(), 0.125);
    }
}
