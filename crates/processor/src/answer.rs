//! What a sink says of a call's answer beyond its outcome: its status (an
//! HTTP status code), noted while the call runs and counted with it in
//! the metrics ([`MetricsSnapshot::calls`](crate::MetricsSnapshot::calls)).
//!
//! A task-local cell, set around each call the processor makes, so that
//! the [`Sink`](crate::Sink) trait's signature need not carry it: a sink
//! notes what it saw; outside a processor's call (a sink's own tests, its
//! health checks) the note goes nowhere.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The cell's value while no status was noted.
const NONE: u32 = u32::MAX;

tokio::task_local! {
    static STATUS: Arc<AtomicU32>;
}

/// Notes the status the downstream answered the current call with (for
/// an HTTP sink, the response's status code), for the call's metrics. The
/// last note of a call wins. Does nothing outside a call the processor
/// makes.
pub fn note_call_status(status: u16) {
    let _ = STATUS.try_with(|cell| cell.store(u32::from(status), Relaxed));
}

/// Runs `call`, returning its output and the status noted during it.
pub(crate) async fn noting_status<F: Future>(call: F) -> (F::Output, Option<u16>) {
    let cell = Arc::new(AtomicU32::new(NONE));
    let output = STATUS.scope(Arc::clone(&cell), call).await;
    let status = u16::try_from(cell.load(Relaxed)).ok();
    (output, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_last_note_of_the_call_is_its_status() {
        let (output, status) = noting_status(async {
            note_call_status(503);
            tokio::task::yield_now().await;
            note_call_status(200);
            7
        })
        .await;
        assert_eq!((output, status), (7, Some(200)));
        let ((), none) = noting_status(async {}).await;
        assert_eq!(none, None);
        // Outside a call: nowhere to go, and no panic.
        note_call_status(404);
    }
}
