//! Wall-clock timestamps that advance with tokio's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Epoch seconds that advance with tokio's clock.
///
/// Record timestamps are epoch seconds, but everything that waits runs on
/// tokio's clock, which a test (or `--virtual-time`) may pause and advance.
/// An `EpochClock` pins an epoch time to a tokio instant and measures from
/// there, so that timestamps stay consistent with waits in virtual time too.
/// Share one clock between the stream and the processor of a run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
/// use sluice_processor::EpochClock;
///
/// let clock = EpochClock::starting_at(1_000.0);
/// tokio::time::sleep(Duration::from_millis(1_500)).await;
/// assert_eq!(clock.now(), 1_001.5);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EpochClock {
    epoch_at_origin: f64,
    origin: Instant,
}

impl EpochClock {
    /// A clock that reads the system's epoch time now.
    pub fn system() -> EpochClock {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        EpochClock::starting_at(since_epoch.as_secs_f64())
    }

    /// A clock that reads `epoch_seconds` now: for deterministic runs.
    pub fn starting_at(epoch_seconds: f64) -> EpochClock {
        EpochClock {
            epoch_at_origin: epoch_seconds,
            origin: Instant::now(),
        }
    }

    /// The current time, epoch seconds.
    pub fn now(&self) -> f64 {
        self.at(Instant::now())
    }

    /// The epoch time of a tokio instant.
    pub fn at(&self, instant: Instant) -> f64 {
        let offset = if instant >= self.origin {
            instant.duration_since(self.origin).as_secs_f64()
        } else {
            -self.origin.duration_since(instant).as_secs_f64()
        };
        self.epoch_at_origin + offset
    }
}

impl Default for EpochClock {
    fn default() -> Self {
        EpochClock::system()
    }
}
