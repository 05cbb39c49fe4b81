//! A rate limit shared with other processes: the trait a store implements
//! and the types it speaks in.
//!
//! The processor's own [`RateLimit`](crate::RateLimit) paces this process;
//! a [`SharedLimit`] makes several processes together respect one quota.
//! A call is admitted by the local limiter first, then reserves its units
//! of the shared window (`admit.rs`); the reservation is settled when the
//! call ends (`settle.rs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// How long a worker waits before asking an unreachable shared limit again.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_millis(500);

/// A window of successes shared by several processes (e.g. in Redis).
///
/// Each call reserves its units (one per call, or one per record when the
/// limit counts records) before it is sent, and settles the reservation
/// when its answer comes: the delivered units stay in the window until it
/// passes, counted from the reservation (with the processor's margin, but
/// never past a window from the answer) or (once the API has shown that it
/// counts calls later than they start, see
/// [`CountedFrom`](crate::CountedFrom)) from the answer; the rest are given
/// back. A reservation never settled (the
/// process died, or a stop cut the call off) must expire with the window
/// by itself, so that a crash cannot leak the quota.
///
/// # Errors
/// [`SharedLimitError::Full`] when the window has no room: the worker waits
/// `retry_in` (but no longer than the record may wait) and asks again.
/// [`SharedLimitError::Unavailable`] when the store cannot be asked: the
/// worker sends nothing, logs it, and asks again every
/// [`UNAVAILABLE_RETRY`], so that an outage never lets more than the quota
/// through. Waiting counts against the records' `retry.max_elapsed`.
///
/// # Panics
/// A panic is caught: the report names
/// [`FaultyTask::SharedLimit`](crate::FaultyTask::SharedLimit) and the
/// store counts as unavailable.
///
/// # Cancel safety
/// `reserve` may be dropped (a stop): implementations should make an
/// interrupted reservation expire with the window, not leak it.
///
/// ```
/// use std::sync::Mutex;
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use sluice_processor::{Reservation, SharedLimit, SharedLimitError, WindowStart};
///
/// /// Ten calls in all, ever: a toy with no window.
/// struct TenCalls(Mutex<usize>);
///
/// #[async_trait]
/// impl SharedLimit for TenCalls {
///     async fn reserve(&self, units: usize) -> Result<Reservation, SharedLimitError> {
///         let mut used = self.0.lock().unwrap();
///         if *used + units > 10 {
///             return Err(SharedLimitError::Full { retry_in: Duration::from_secs(1) });
///         }
///         *used += units;
///         Ok(Reservation { id: *used as u64, units })
///     }
///     async fn settle(
///         &self,
///         reservation: Reservation,
///         kept: usize,
///         _from: WindowStart,
///     ) -> Result<(), SharedLimitError> {
///         *self.0.lock().unwrap() -= reservation.units - kept;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SharedLimit: Send + Sync + 'static {
    /// Reserves `units` slots of the shared window for one call.
    async fn reserve(&self, units: usize) -> Result<Reservation, SharedLimitError>;

    /// The call of `reservation` has ended: `kept` of its units were
    /// delivered and stay in the window until it passes, counted from
    /// `from`; the rest are given back at once.
    async fn settle(
        &self,
        reservation: Reservation,
        kept: usize,
        from: WindowStart,
    ) -> Result<(), SharedLimitError>;
}

/// Where a kept unit's window starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStart {
    /// When it was reserved, just before its call was sent, plus the
    /// margin; or a window from the answer, when that ends sooner (the API
    /// counted the call before it answered).
    Reservation,
    /// When its call's answer came.
    Answer,
}

#[async_trait]
impl<L: SharedLimit + ?Sized> SharedLimit for Arc<L> {
    async fn reserve(&self, units: usize) -> Result<Reservation, SharedLimitError> {
        (**self).reserve(units).await
    }

    async fn settle(
        &self,
        reservation: Reservation,
        kept: usize,
        from: WindowStart,
    ) -> Result<(), SharedLimitError> {
        (**self).settle(reservation, kept, from).await
    }
}

/// Slots of a shared window reserved for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The store's name for it, unique across processes.
    pub id: u64,
    /// How many slots it holds.
    pub units: usize,
}

/// Why a shared window did not admit a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedLimitError {
    /// The window is full; the earliest slot comes back in `retry_in`.
    #[error("the shared window is full for another {retry_in:?}")]
    Full {
        /// When to ask again.
        retry_in: Duration,
    },
    /// The store cannot be reached or failed.
    #[error("the shared limit is unavailable: {0}")]
    Unavailable(String),
}
