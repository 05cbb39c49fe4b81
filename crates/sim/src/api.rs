//! The simulated downstream API: rate limited, slow and unreliable.

use std::time::Duration;

use async_trait::async_trait;
use sluice_api_model::{ApiModel, Behaviour, CallFailed, ConfigError, Quota, Refused, Retention};
use sluice_models::{PartitionKey, ProcessedRecord};
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
    /// counts and the per-partition audit are kept regardless). Off for
    /// long benchmarks.
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
    ///
    /// # Errors
    ///
    /// A [`SimError`] naming the first unusable setting, e.g.
    /// `api.failure_rate`.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.window.is_zero() {
            return Err(SimError::new("api.window", "must be above 0"));
        }
        self.behaviour().validate().map_err(setting_error)
    }

    /// The behaviour of the shared API model these settings describe, its
    /// seed derived from the simulation's.
    fn behaviour(&self) -> Behaviour {
        Behaviour {
            rate_limit: self.rate_limit.map(|limit| Quota {
                limit,
                window: self.window,
            }),
            failure_rate: self.failure_rate,
            latency_min: self.latency_min,
            latency_max: self.latency_max,
            seed: derive_seed(self.seed, "api"),
        }
    }
}

/// The model's complaint, under the name of our setting.
fn setting_error(error: ConfigError) -> SimError {
    let field = match &error {
        ConfigError::ZeroLimit => "api.rate_limit",
        ConfigError::ZeroWindow => "api.window",
        ConfigError::FailureRate(_) => "api.failure_rate",
        ConfigError::LatencyRange { .. } => "api.latency_min",
        _ => "api",
    };
    SimError::new(field, error.reason())
}

/// A downstream API that behaves as SCENARIO.md describes, with the
/// correction: a call reserves its slot in the window at admission and
/// gives it back if it fails, so the limit holds under any concurrency.
///
/// One call:
/// 1. If the successes (and reservations) admitted in the last window are
///    already at the limit, the call is refused at once as rate limited.
/// 2. Otherwise it reserves a slot and waits a latency drawn uniformly from
///    `[latency_min, latency_max]`.
/// 3. It then fails with probability `failure_rate` (the slot is given
///    back), or succeeds (the slot stays for one window from admission).
///
/// The window, the draws and the ledger's counts are the shared model of
/// the API (`sluice-api-model`), the same as `sluice-mock-api`'s; this
/// type makes it a [`Sink`] on tokio's clock: waits use tokio's clock,
/// draws come from the model's RNG, seeded from the simulation's seed.
#[derive(Debug)]
pub struct SimulatedApi {
    config: ApiConfig,
    started_at: Instant,
    model: ApiModel<PartitionKey>,
}

impl SimulatedApi {
    /// An API that starts counting now.
    ///
    /// # Errors
    ///
    /// A [`SimError`] if `config` is not usable.
    pub fn new(config: ApiConfig) -> Result<SimulatedApi, SimError> {
        config.validate()?;
        let retention = if config.keep_log {
            Retention::EVERYTHING
        } else {
            Retention::COUNTS
        };
        let model = ApiModel::new(config.behaviour(), retention, ()).map_err(setting_error)?;
        Ok(SimulatedApi {
            config,
            started_at: Instant::now(),
            model,
        })
    }

    /// How the API was configured.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// A copy of the ledger as it stands.
    pub fn ledger(&self) -> Ledger {
        self.model.read(|tally, ()| Ledger::of(tally))
    }
}

#[async_trait]
impl Sink<ProcessedRecord> for SimulatedApi {
    /// One call for the whole batch: admitted, refused, failed or
    /// successful as one. The limit counts calls.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while the call is in flight frees its slot and
    /// counts the call as cancelled; nothing is delivered.
    async fn send(&self, batch: &[Envelope<ProcessedRecord>]) -> Result<(), SendError> {
        let call =
            self.model
                .admit(self.started_at.elapsed())
                .map_err(|Refused { retry_after }| SinkError::RateLimited {
                    retry_after: self.config.retry_after_hint.then_some(retry_after),
                })?;
        if !call.latency().is_zero() {
            tokio::time::sleep(call.latency()).await;
        }
        let deliveries = batch.iter().map(|envelope| {
            let key = envelope.record.key()?;
            Some((key.partition_key(), key.sequence_id))
        });
        call.complete(deliveries, |()| ())
            .map_err(|CallFailed| SinkError::Transient("simulated processing error".to_owned()))?;
        Ok(())
    }
}
