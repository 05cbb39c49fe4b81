//! The simulated downstream API: rate limited, slow and unreliable.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use sluice_models::ProcessedRecord;
use sluice_processor::{Envelope, SendError, Sink, SinkError};
use tokio::time::Instant;

use crate::ledger::Ledger;
use crate::{SimError, derive_seed};

/// The window the original API's limit applies to.
pub const WINDOW: Duration = Duration::from_secs(1);

/// How the simulated API behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Successful calls admitted per sliding window; `None` for no limit.
    pub rate_limit: Option<u32>,
    /// The window the limit counts in: one second in the original.
    pub window: Duration,
    /// The probability that an admitted call fails (0 to 1).
    pub failure_rate: f64,
    /// The shortest network delay of an admitted call.
    pub latency_min: Duration,
    /// The longest network delay of an admitted call.
    pub latency_max: Duration,
    /// Whether a refusal says when a slot frees (a `Retry-After` header).
    /// The original API does not.
    pub retry_after_hint: bool,
    /// Whether the ledger keeps every success time and delivered key (the
    /// per-partition audit is kept regardless). Off for long benchmarks.
    pub keep_log: bool,
    /// Seed of the API's RNG (latency and failure draws).
    pub seed: u64,
}

impl Default for ApiConfig {
    /// The original 10-second check: 15 successes per second, 15 % failures,
    /// 10-50 ms latency, no retry-after hint.
    fn default() -> Self {
        ApiConfig {
            rate_limit: Some(15),
            window: WINDOW,
            failure_rate: 0.15,
            latency_min: Duration::from_millis(10),
            latency_max: Duration::from_millis(50),
            retry_after_hint: false,
            keep_log: true,
            seed: 0,
        }
    }
}

impl ApiConfig {
    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(SimError::new(
                "api.failure_rate",
                format!("must be between 0 and 1, got {}", self.failure_rate),
            ));
        }
        if self.window.is_zero() {
            return Err(SimError::new("api.window", "must be above 0"));
        }
        if self.rate_limit == Some(0) {
            return Err(SimError::new(
                "api.rate_limit",
                "must be at least 1 when set",
            ));
        }
        if self.latency_min > self.latency_max {
            return Err(SimError::new(
                "api.latency_min",
                format!(
                    "{:?} is above latency_max {:?}",
                    self.latency_min, self.latency_max
                ),
            ));
        }
        Ok(())
    }
}

/// A downstream API that behaves as SCENARIO.md describes, with the
/// correction: a call reserves its slot in the window at admission and
/// gives it back if it fails, so the limit holds under any concurrency.
///
/// One call:
/// 1. If the successes (and reservations) admitted in the last second are
///    already at the limit, the call is refused at once as rate limited.
/// 2. Otherwise it reserves a slot and waits a latency drawn uniformly from
///    `[latency_min, latency_max]`.
/// 3. It then fails with probability `failure_rate` (the slot is given
///    back), or succeeds (the slot stays for one second from admission).
///
/// The API keeps its own [`Ledger`]. Waits use tokio's clock; draws come
/// from its own seeded RNG.
#[derive(Debug)]
pub struct SimulatedApi {
    config: ApiConfig,
    started_at: Instant,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rng: ChaCha8Rng,
    /// Admitted calls of the last window, oldest first: successes and
    /// calls still in flight (`live`), or failed ones (not live).
    window: VecDeque<Admission>,
    live: usize,
    next_id: u64,
    ledger: Ledger,
}

#[derive(Debug, Clone, Copy)]
struct Admission {
    id: u64,
    at: Instant,
    live: bool,
}

impl SimulatedApi {
    /// An API that starts counting now.
    pub fn new(config: ApiConfig) -> Result<SimulatedApi, SimError> {
        config.validate()?;
        Ok(SimulatedApi {
            started_at: Instant::now(),
            state: Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(derive_seed(config.seed, "api")),
                window: VecDeque::new(),
                live: 0,
                next_id: 0,
                ledger: Ledger::default(),
            }),
            config,
        })
    }

    /// How the API was configured.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// A copy of the ledger as it stands.
    pub fn ledger(&self) -> Ledger {
        self.lock().ledger.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits or refuses a call; on admission, reserves a slot and draws the
    /// call's latency and fate.
    fn admit(&self, now: Instant) -> Result<(u64, Duration, bool), SinkError> {
        let mut state = self.lock();
        state.ledger.calls += 1;
        while let Some(oldest) = state.window.front() {
            if oldest.at + self.config.window > now {
                break;
            }
            if oldest.live {
                state.live -= 1;
            }
            state.window.pop_front();
        }
        if let Some(limit) = self.config.rate_limit
            && state.live >= limit as usize
        {
            state.ledger.rate_limit_hits += 1;
            let retry_after = self.config.retry_after_hint.then(|| {
                let oldest_live = state.window.iter().find(|a| a.live).map_or(now, |a| a.at);
                (oldest_live + self.config.window).saturating_duration_since(now)
            });
            return Err(SinkError::RateLimited { retry_after });
        }
        let id = state.next_id;
        state.next_id += 1;
        if self.config.rate_limit.is_some() {
            state.window.push_back(Admission {
                id,
                at: now,
                live: true,
            });
            state.live += 1;
        }
        let latency = if self.config.latency_max.is_zero() {
            Duration::ZERO
        } else {
            state
                .rng
                .random_range(self.config.latency_min..=self.config.latency_max)
        };
        let fails =
            self.config.failure_rate > 0.0 && state.rng.random_bool(self.config.failure_rate);
        Ok((id, latency, fails))
    }

    /// Frees the slot of admission `id`, if it is still in the window.
    fn release(state: &mut State, id: u64) {
        if let Ok(i) = state.window.binary_search_by_key(&id, |a| a.id)
            && state.window[i].live
        {
            state.window[i].live = false;
            state.live -= 1;
        }
    }
}

/// An admitted call in flight: dropping it (a cancelled call) frees its slot.
struct Reservation<'a> {
    api: &'a SimulatedApi,
    id: u64,
    settled: bool,
}

impl Reservation<'_> {
    fn settle(
        mut self,
        fails: bool,
        admitted_at: Instant,
        batch: &[Envelope<ProcessedRecord>],
    ) -> Result<(), SinkError> {
        self.settled = true;
        let api = self.api;
        let mut state = api.lock();
        if fails {
            SimulatedApi::release(&mut state, self.id);
            state.ledger.failures += 1;
            return Err(SinkError::Transient(
                "simulated processing error".to_owned(),
            ));
        }
        let ledger = &mut state.ledger;
        let since_start = admitted_at.saturating_duration_since(api.started_at);
        ledger.successes += 1;
        ledger.records += batch.len() as u64;
        ledger.last_success = Some(since_start);
        for envelope in batch {
            match envelope.record.key() {
                Some(key) => {
                    ledger.audit.record(key);
                    if api.config.keep_log {
                        ledger.deliveries.push(key);
                    }
                }
                None => ledger.audit.record_unidentified(),
            }
        }
        if api.config.keep_log {
            ledger.success_times.push(since_start);
        }
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let mut state = self.api.lock();
            SimulatedApi::release(&mut state, self.id);
            state.ledger.cancelled += 1;
        }
    }
}

#[async_trait]
impl Sink<ProcessedRecord> for SimulatedApi {
    /// One call for the whole batch: admitted, refused, failed or
    /// successful as one. The limit counts calls.
    async fn send(&self, batch: &[Envelope<ProcessedRecord>]) -> Result<(), SendError> {
        let admitted_at = Instant::now();
        let (id, latency, fails) = self.admit(admitted_at)?;
        let reservation = Reservation {
            api: self,
            id,
            settled: false,
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        Ok(reservation.settle(fails, admitted_at, batch)?)
    }
}
