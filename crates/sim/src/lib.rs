//! sluice's simulation framework, after the original test's (see
//! SCENARIO.md), on tokio's clock and seeded:
//!
//! - [`SimulatedApi`]: the downstream, rate limited (the corrected sliding
//!   window: the limit holds under any concurrency), slow and unreliable,
//!   with its own [`Ledger`]. The window, the latency and failure draws
//!   and the ledger's [`Counts`] are the shared model of the API
//!   (`sluice-api-model`, the same one `sluice-mock-api` serves over
//!   HTTP); this crate makes it a `Sink` on tokio's clock and keeps the
//!   ledger in the simulation's types (`RecordKey`s);
//! - [`StreamSimulator`]: the sources, one pull-based paced
//!   [`SourceStream`] each, with well-formed and problematic payloads and
//!   optional partitions and bursts;
//! - [`metric_accuracy`]: the original's accuracy checks of a processor's
//!   metrics against the ledger, and [`Audit`]: the fate of every record;
//! - [`simulation`]: one run of the `seed` profile's pipeline against both
//!   (`sluice simulate`, the acceptance check, the sweep), and its
//!   [`report`] against the original's thresholds;
//! - [`ndjson`]: the simulator's records as NDJSON lines (`sluice
//!   generate`), some made undeliverable on purpose.
//!
//! Everything random is drawn from RNGs seeded from one seed (each part of
//! the simulation derives its own, so that one part's draws do not depend
//! on how the others were scheduled); everything that waits uses tokio's
//! clock. Under a paused clock a simulated minute takes milliseconds, and
//! the same seed gives the same run.

mod accuracy;
mod api;
mod audit;
mod generator;
mod ledger;
pub mod ndjson;
pub mod report;
pub mod simulation;
mod stream;

pub use accuracy::{Accuracy, AccuracyCheck, metric_accuracy};
pub use api::{ApiConfig, SimulatedApi, WINDOW};
pub use audit::Audit;
pub use generator::{PayloadKind, payload_of_kind};
pub use ledger::{DeliveryAudit, Ledger};
pub use sluice_api_model::Counts;
pub use stream::{
    Burst, IncomingSource, MAX_RATE_PER_SOURCE, MIN_RATE_PER_SOURCE, Offered, SourceStream,
    StreamConfig, StreamSimulator,
};

/// A simulation setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid simulation setting {field}: {reason}")]
pub struct SimError {
    /// The offending setting, e.g. `api.failure_rate`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl SimError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> SimError {
        SimError {
            field,
            reason: reason.into(),
        }
    }
}

/// The seed of one part of a simulation, from the run's seed and the part's
/// name (SplitMix64 over the seed mixed with an FNV-1a hash of the name).
pub(crate) fn derive_seed(seed: u64, part: &str) -> u64 {
    let name_hash = part.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut z = (seed ^ name_hash).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
