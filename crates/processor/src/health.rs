//! The API's health as the calls see it: whether it is getting records
//! (a count of calls that delivered), whether it is failing (and saying so
//! at a bounded rate), and the circuit that halts the processor when the
//! API keeps answering that the client is misconfigured.

use std::fmt;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Release,
};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// How often, at most, a failing API is said again in the log.
pub(crate) const REMINDER: Duration = Duration::from_secs(10);

/// How long an answer of [`Sink::is_up`](crate::Sink::is_up) is kept:
/// the sink is asked at most about once in this time.
pub(crate) const PROBE_KEPT: Duration = Duration::from_secs(1);

/// Why a processor halted on its own: the circuit opened.
///
/// Records were not dead-lettered for it: those not delivered were handed
/// back (so a source's checkpoint does not move past them). A runner
/// tells it from a stop by [`Report::halted`](crate::Report::halted) being
/// `Some`, and should exit with a code of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Halt {
    /// What the last call was answered, as the sink said it (for the HTTP
    /// sink: `HTTP 404 Not Found from http://host:port/path`, no
    /// credentials, and the start of the body).
    pub cause: String,
    /// How many calls in a row, across workers, were answered so with no
    /// delivery in between: the configured `circuit_after`.
    pub calls: u32,
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "halted: {} calls in a row said the client is misconfigured; last: {}",
            self.calls, self.cause
        )
    }
}

/// What the workers learn of the API, shared by all of them.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Calls that delivered at least one record.
    successes: AtomicU64,
    /// Calls in a row answered `Misconfigured` with nothing delivered.
    misconfigured: AtomicU32,
    /// Whether an outage is on (read without the lock).
    failing: AtomicBool,
    /// Outages begun.
    outages: AtomicU64,
    outage: Mutex<Option<Outage>>,
    halt: Mutex<Option<Halt>>,
    /// The sink's last answer to whether the API is up, and when it came;
    /// an async lock, so that workers asking at once wait for one probe.
    probed: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// An outage in progress.
#[derive(Debug)]
struct Outage {
    since: Instant,
    failed_calls: u64,
    said_at: Instant,
}

impl Health {
    /// Calls that delivered at least one record, so far.
    pub(crate) fn successes(&self) -> u64 {
        self.successes.load(Acquire)
    }

    /// Notes a call that delivered at least one record: the API is up,
    /// which ends an outage (said once in the log).
    pub(crate) fn delivered(&self) {
        self.successes.fetch_add(1, AcqRel);
        self.misconfigured.store(0, Release);
        if !self.failing.load(Acquire) {
            return;
        }
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ended) = outage.take() {
            self.failing.store(false, Release);
            let lasted = ended.since.elapsed();
            tracing::warn!(
                "the API answers again after {}s ({} calls failed meanwhile)",
                lasted.as_secs(),
                ended.failed_calls
            );
        }
    }

    /// Notes a call that delivered nothing because the API is down or
    /// misconfigured (or failed ambiguously with nothing delivered since
    /// it started): said at once when an outage begins, then at most every
    /// [`REMINDER`] with how long it has lasted.
    pub(crate) fn failed(&self, reason: &str) {
        let now = Instant::now();
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *outage {
            None => {
                *outage = Some(Outage {
                    since: now,
                    failed_calls: 1,
                    said_at: now,
                });
                self.failing.store(true, Release);
                self.outages.fetch_add(1, AcqRel);
                tracing::warn!(
                    "the API is failing: {reason}; records wait and are retried, none is dead-lettered while the API as a whole fails"
                );
            }
            Some(outage) => {
                outage.failed_calls += 1;
                if now.duration_since(outage.said_at) >= REMINDER {
                    outage.said_at = now;
                    let lasted = now.duration_since(outage.since);
                    tracing::warn!(
                        "the API has been failing for {}s ({} calls failed): {reason}",
                        lasted.as_secs(),
                        outage.failed_calls
                    );
                }
            }
        }
    }

    /// Whether the API is up, by `probe`'s answer, which is asked only
    /// when the last answer is older than [`PROBE_KEPT`].
    ///
    /// # Cancel safety
    /// Dropped while probing, it keeps no answer.
    pub(crate) async fn is_up<F: Future<Output = bool>>(&self, probe: impl FnOnce() -> F) -> bool {
        let mut probed = self.probed.lock().await;
        if let Some((at, up)) = *probed
            && at.elapsed() < PROBE_KEPT
        {
            return up;
        }
        let up = probe().await;
        *probed = Some((Instant::now(), up));
        up
    }

    /// Notes a call answered `Misconfigured` with nothing delivered;
    /// returns how many such calls came in a row.
    pub(crate) fn misconfigured(&self) -> u32 {
        self.misconfigured.fetch_add(1, AcqRel).saturating_add(1)
    }

    /// Whether an outage is on.
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Acquire)
    }

    /// Outages begun so far.
    pub(crate) fn outages(&self) -> u64 {
        self.outages.load(Acquire)
    }

    /// Records why the processor halts; `false` if it already had.
    pub(crate) fn halt(&self, halt: Halt) -> bool {
        let mut kept = self.halt.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.is_some() {
            return false;
        }
        *kept = Some(halt);
        true
    }

    /// Why the processor halted, if it did.
    pub(crate) fn halted(&self) -> Option<Halt> {
        self.halt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_outage_begins_with_a_failure_and_ends_with_a_delivery() {
        let health = Health::default();
        health.delivered();
        assert!(!health.is_failing());
        health.failed("down");
        health.failed("down");
        assert!(health.is_failing());
        assert_eq!(health.outages(), 1);
        tokio::time::advance(Duration::from_secs(31)).await;
        health.delivered();
        assert!(!health.is_failing());
        assert_eq!(health.successes(), 2);
        health.failed("down again");
        assert_eq!(health.outages(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_is_asked_at_most_once_while_its_answer_is_kept() {
        let health = Health::default();
        let asked = AtomicU32::new(0);
        let probe = |up| {
            asked.fetch_add(1, AcqRel);
            async move { up }
        };
        assert!(!health.is_up(|| probe(false)).await);
        assert!(!health.is_up(|| probe(true)).await, "the kept answer");
        assert_eq!(asked.load(Acquire), 1);
        tokio::time::advance(PROBE_KEPT).await;
        assert!(health.is_up(|| probe(true)).await, "asked again");
        assert_eq!(asked.load(Acquire), 2);
    }

    #[test]
    fn misconfigured_calls_count_in_a_row_until_a_delivery() {
        let health = Health::default();
        assert_eq!(health.misconfigured(), 1);
        assert_eq!(health.misconfigured(), 2);
        health.delivered();
        assert_eq!(health.misconfigured(), 1);
        let halt = |cause: &str| Halt {
            cause: cause.into(),
            calls: 3,
        };
        assert!(health.halt(halt("first")));
        assert!(!health.halt(halt("second")));
        assert_eq!(health.halted(), Some(halt("first")));
    }
}
