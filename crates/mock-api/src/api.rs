//! One call to the mock API, apart from HTTP: the shared model of the API
//! (`sluice-api-model`) on tokio's clock, and the ledger it serves.

use std::time::Duration;

use sluice_api_model::{ApiModel, CallFailed, Refused};
use tokio::time::Instant;

use crate::ledger::{HttpAnnex, Ledger, LedgerCounts, StreamPartition, retention};
use crate::record::RecordIdentity;
use crate::server::StaleLeases;
use crate::{ConfigError, MockApiConfig};

/// What became of a well-formed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Succeeded: this many records delivered.
    Accepted(usize),
    /// Refused at once: the window is full; its oldest live slot frees
    /// after this long.
    RateLimited(Duration),
    /// Admitted, then failed as the configuration asked.
    Failed,
}

/// The API's state, shared by every connection.
#[derive(Debug)]
pub(crate) struct Api {
    started_at: Instant,
    model: ApiModel<StreamPartition, HttpAnnex>,
    stale_leases: StaleLeases,
}

impl Api {
    /// An API that starts counting now.
    pub(crate) fn new(config: MockApiConfig) -> Result<Api, ConfigError> {
        Ok(Api {
            started_at: Instant::now(),
            model: ApiModel::new(config, retention(), HttpAnnex::default())?,
            stale_leases: StaleLeases::default(),
        })
    }

    /// The same API, doing `stale` with calls of stale writers.
    pub(crate) fn with_stale_leases(mut self, stale: StaleLeases) -> Api {
        self.stale_leases = stale;
        self
    }

    /// What it does with calls of stale writers.
    pub(crate) fn stale_leases(&self) -> StaleLeases {
        self.stale_leases
    }

    /// How the API was configured.
    pub(crate) fn config(&self) -> &MockApiConfig {
        self.model.behaviour()
    }

    /// A copy of the ledger as it stands.
    pub(crate) fn ledger(&self) -> Ledger {
        self.model.read(Ledger::of)
    }

    /// The ledger's counters as they stand: no list is copied, so the
    /// calls in flight wait for the lock no longer than a few loads.
    pub(crate) fn counts(&self) -> LedgerCounts {
        self.model
            .read(|tally, annex| LedgerCounts::of(tally.counts(), annex))
    }

    /// Notes a body that was refused with `400`.
    pub(crate) fn bad_request(&self) {
        self.model.update_annex(|annex| annex.bad_requests += 1);
    }

    /// Notes the leases a call carried (the `Sluice-Lease` header);
    /// returns whether the call is a stale writer's.
    pub(crate) fn leases(&self, leases: &str) -> bool {
        let mut stale = false;
        self.model
            .update_annex(|annex| stale = annex.check_leases(leases));
        stale
    }

    /// One call carrying `records`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while the call is in flight (the client went
    /// away) frees its slot and counts it as cancelled; nothing is
    /// delivered.
    pub(crate) async fn call(
        &self,
        records: Vec<RecordIdentity>,
        idempotency_key: Option<&str>,
        record_keys: Vec<String>,
    ) -> Outcome {
        let now = self.started_at.elapsed();
        let call = match self.model.admit(now) {
            Ok(call) => call,
            Err(Refused { retry_after }) => return Outcome::RateLimited(retry_after),
        };
        if !call.latency().is_zero() {
            tokio::time::sleep(call.latency()).await;
        }
        let accepted = records.len();
        let deliveries = records.into_iter().map(|r| Some(r.into_delivery()));
        match call.complete(deliveries, |annex| {
            annex.count_key(idempotency_key);
            annex.count_record_keys(record_keys);
        }) {
            Ok(()) => Outcome::Accepted(accepted),
            Err(CallFailed) => Outcome::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;
    use crate::Quota;

    fn config(limit: u32, failure_rate: f64) -> MockApiConfig {
        MockApiConfig {
            rate_limit: Some(Quota::per_second(limit)),
            failure_rate,
            latency_min: Duration::from_millis(10),
            latency_max: Duration::from_millis(50),
            seed: 7,
        }
    }

    fn one(sequence: u64) -> Vec<RecordIdentity> {
        vec![RecordIdentity {
            stream: "s".to_owned(),
            partition: 0,
            sequence,
        }]
    }

    /// Many concurrent callers retrying at once for ten virtual seconds
    /// never get more than the limit admitted in any window.
    #[tokio::test(start_paused = true)]
    async fn the_limit_holds_under_any_concurrency() {
        let api = Arc::new(Api::new(config(5, 0.3)).unwrap());
        let until = Instant::now() + Duration::from_secs(10);
        let callers: Vec<_> = (0..50)
            .map(|caller| {
                let api = Arc::clone(&api);
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while Instant::now() < until {
                        outcomes.push(api.call(one(caller), None, vec![]).await);
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    outcomes
                })
            })
            .collect();
        let mut accepted = 0;
        for caller in callers {
            for outcome in caller.await.unwrap() {
                if let Outcome::RateLimited(wait) = outcome {
                    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
                }
                accepted += u64::from(outcome == Outcome::Accepted(1));
            }
        }
        let ledger = api.ledger();
        assert_eq!(ledger.counts.successes, accepted);
        assert!(ledger.max_successes_in_any(Duration::from_secs(1)) <= 5);
        // Failures free their slot, so the limit is reached: about 5 a
        // second for 10 seconds.
        assert!(ledger.counts.successes >= 45, "{ledger:?}");
        assert!(ledger.counts.failures > 0 && ledger.counts.rate_limit_hits > 0);
        assert_eq!(
            ledger.counts.calls,
            ledger.counts.successes + ledger.counts.failures + ledger.counts.rate_limit_hits
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_call_frees_its_slot() {
        let api = Api::new(MockApiConfig {
            rate_limit: Some(Quota {
                limit: 1,
                window: Duration::from_secs(60),
            }),
            ..config(1, 0.0)
        })
        .unwrap();
        let cut_short =
            tokio::time::timeout(Duration::from_millis(5), api.call(one(1), None, vec![])).await;
        assert!(cut_short.is_err());
        assert_eq!(
            api.call(one(2), Some("k"), vec!["k".into()]).await,
            Outcome::Accepted(1)
        );
        assert!(matches!(
            api.call(one(3), None, vec![]).await,
            Outcome::RateLimited(_)
        ));
        let ledger = api.ledger();
        assert_eq!(
            (
                ledger.counts.calls,
                ledger.counts.cancelled,
                ledger.counts.successes,
                ledger.counts.rate_limit_hits
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(ledger.delivered("s", 0), [2]);
        // Only the call that went through counts its keys.
        assert_eq!(ledger.record_keys.get("k"), Some(&1));
        assert_eq!(ledger.record_keys.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn latencies_are_drawn_in_bounds_and_the_seed_decides_the_fates() {
        async fn fates(seed: u64) -> Vec<Outcome> {
            let api = Api::new(MockApiConfig {
                rate_limit: None,
                seed,
                ..config(1, 0.5)
            })
            .unwrap();
            let mut fates = Vec::new();
            for i in 0..40 {
                let start = Instant::now();
                fates.push(api.call(one(i), None, vec![]).await);
                let took = start.elapsed();
                assert!(took >= Duration::from_millis(10) && took <= Duration::from_millis(51));
            }
            fates
        }
        assert_eq!(fates(1).await, fates(1).await);
        assert_ne!(fates(1).await, fates(2).await);
    }
}
