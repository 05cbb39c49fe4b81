//! Admission: a call waits for the local limiter, then for the shared
//! limit, as long as it takes, until a stop. Waiting on the limits never
//! dead-letters a record: an unreachable shared-limit store is an outage
//! like the API's.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::WindowPermit;
use super::shared::{Reservation, SharedLimit, SharedLimitError, UNAVAILABLE_RETRY};
use crate::fault::{FaultyTask, panic_message};
use crate::shared::Shared;

/// What one call holds of the limits while it is sent: slots of the local
/// window and of the shared one, for the limits the processor has.
/// Dropped unsettled (a call cut off), the local slots come back at once
/// and the shared reservation expires with its window.
pub(crate) struct Admission<'a> {
    pub(super) permit: Option<WindowPermit<'a>>,
    pub(super) reservation: Option<(&'a dyn SharedLimit, Reservation)>,
}

/// A call was not admitted because the processor is stopping. Whatever it
/// held of the limits is given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

/// Admits a call of `records` records: takes its units (one, or one per
/// record when the limits count records) of the local limiter's window,
/// then of the shared window, waiting as long as it takes, and not at all
/// once the processor is stopping.
///
/// # Cancel safety
/// Cancelled, it gives back what it took of the local window; a shared
/// reservation in flight expires with its window.
pub(crate) async fn admit<'a, R: Send + Sync + 'static, S, T>(
    shared: &'a Shared<R, S, T>,
    records: usize,
) -> Result<Admission<'a>, Stopped> {
    if shared.stop.is_raised() {
        return Err(Stopped);
    }
    let units = if shared.settings.count_records {
        records
    } else {
        1
    };
    let permit = match &shared.limiter {
        None => None,
        Some(limiter) => tokio::select! {
            biased;
            () = shared.stop.raised() => return Err(Stopped),
            permit = limiter.acquire(units) => Some(permit),
        },
    };
    let reservation = match &shared.shared_limit {
        None => None,
        Some(limit) => Some((&**limit, reserve(shared, &**limit, units).await?)),
    };
    Ok(Admission {
        permit,
        reservation,
    })
}

/// Waits for `units` slots of the shared window, until a stop. A full window is asked again when it says a slot comes back; an
/// unreachable, hung or panicking store every [`UNAVAILABLE_RETRY`], said
/// once in the log.
async fn reserve<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    limit: &dyn SharedLimit,
    units: usize,
) -> Result<Reservation, Stopped> {
    loop {
        let asked = AssertUnwindSafe(limit.reserve(units)).catch_unwind();
        let answer = tokio::select! {
            biased;
            () = shared.stop.raised() => return Err(Stopped),
            () = tokio::time::sleep(shared.settings.call_timeout) => {
                Err(SharedLimitError::Unavailable("no answer within the call timeout".into()))
            }
            answer = asked => answer.unwrap_or_else(|panic| {
                let message = panic_message(&*panic).to_owned();
                shared.failed(FaultyTask::SharedLimit, message.clone());
                Err(SharedLimitError::Unavailable(format!("it panicked: {message}")))
            }),
        };
        let wait = match answer {
            Ok(reservation) => {
                shared.shared_limit_reached();
                return Ok(reservation);
            }
            Err(SharedLimitError::Full { retry_in }) => retry_in,
            Err(SharedLimitError::Unavailable(why)) => {
                shared.shared_limit_unreachable(&why);
                UNAVAILABLE_RETRY
            }
        };
        tokio::select! {
            biased;
            () = shared.stop.raised() => return Err(Stopped),
            () = tokio::time::sleep(wait) => {}
        }
    }
}
