//! Settlement: what a call's answer does to the slots it took of the
//! limits.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use super::admit::Admission;
use super::shared::{Reservation, SharedLimit, WindowStart};
use crate::fault::{FaultyTask, panic_message};
use crate::shared::Shared;

/// The API refused (some of) a call as rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The longest wait it asked for, already cut to `max_retry_after`.
    pub(crate) retry_after: Option<Duration>,
}

impl Admission<'_> {
    /// Settles the slots of a call that delivered `delivered` records and
    /// was or was not refused.
    ///
    /// The units of the delivered records (or the call's one unit, when
    /// the limits count calls and any record was delivered) stay in both
    /// windows until they pass; the rest come back at once. A call refused
    /// with nothing delivered lowers or pauses the local limiter instead
    /// (see `WindowPermit::refused`). The shared window counts the kept
    /// units from the answer when the local limiter does (or, without one,
    /// when the configuration says so), else from the reservation.
    pub(crate) async fn settle<R: Send + Sync + 'static, S, T>(
        self,
        shared: &Shared<R, S, T>,
        delivered: usize,
        refusal: Option<Refusal>,
    ) {
        let kept = if shared.settings.count_records {
            delivered
        } else {
            usize::from(delivered > 0)
        };
        // Read before the permit settles (it may end the warm-up), and only
        // with a shared limit: it takes the limiter's lock.
        let shared_settlement = self
            .reservation
            .map(|(limit, reservation)| (limit, reservation, window_start(shared)));
        match (self.permit, refusal) {
            (Some(permit), Some(refusal)) if delivered == 0 => permit.refused(refusal.retry_after),
            (Some(permit), _) => permit.succeeded(kept),
            (None, _) => {}
        }
        if let Some((limit, reservation, from)) = shared_settlement {
            settle_shared(shared, limit, reservation, kept, from).await;
        }
    }
}

/// Where the shared window of a success starts: where the local limiter
/// counts its own from, or without one, what the configuration says.
fn window_start<R, S, T>(shared: &Shared<R, S, T>) -> WindowStart {
    match &shared.limiter {
        Some(limiter) if limiter.counts_from_answers() => WindowStart::Answer,
        Some(_) => WindowStart::Reservation,
        None if shared.settings.window_from_answer => WindowStart::Answer,
        None => WindowStart::Reservation,
    }
}

/// Settles `reservation` with `kept` delivered units counted `from`,
/// within the call timeout. A settlement that fails leaves the slots to
/// expire with the window: the quota is never exceeded, only used less for
/// a while.
async fn settle_shared<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    limit: &dyn SharedLimit,
    reservation: Reservation,
    kept: usize,
    from: WindowStart,
) {
    let settling = AssertUnwindSafe(limit.settle(reservation, kept, from)).catch_unwind();
    match tokio::time::timeout(shared.settings.call_timeout, settling).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, "cannot settle a shared-limit reservation; it expires with the window");
        }
        Ok(Err(panic)) => shared.failed(FaultyTask::SharedLimit, panic_message(&*panic).to_owned()),
        Err(_) => tracing::warn!(
            "settling a shared-limit reservation took longer than the call timeout; it expires with the window"
        ),
    }
}
