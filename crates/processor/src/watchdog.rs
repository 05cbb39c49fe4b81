//! A real-time watchdog for `stop()`, for when tokio's timer cannot fire.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How often the watchdog wakes a stop once its drain deadline has passed.
const WATCHDOG_TICK: Duration = Duration::from_millis(10);

/// Wakes a stop that tokio's timer may fail to wake.
///
/// Tokio's timer is driven by idle worker threads: when user code blocks
/// one worker thread while the others sleep, nothing may drive it, and a
/// stop waiting for its drain deadline would wait forever. This thread
/// wakes the stop every few milliseconds once the drain deadline has passed
/// in real time. A stop acts on a wake only when tokio's clock says its
/// deadline passed, so runs in paused (virtual) time are unaffected.
pub(crate) struct Watchdog {
    tick: Arc<Notify>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::Thread>,
}

impl Watchdog {
    pub(crate) fn start(after: Duration) -> Watchdog {
        let tick = Arc::new(Notify::new());
        let done = Arc::new(AtomicBool::new(false));
        let first = std::time::Instant::now().checked_add(after);
        let (ticks, ended) = (Arc::clone(&tick), Arc::clone(&done));
        let thread = std::thread::Builder::new()
            .name("sluice-stop-watchdog".to_owned())
            .spawn(move || {
                while !ended.load(Ordering::Acquire) {
                    let now = std::time::Instant::now();
                    match first.map(|first| first.saturating_duration_since(now)) {
                        None => std::thread::park(),
                        Some(wait) if !wait.is_zero() => std::thread::park_timeout(wait),
                        Some(_) => {
                            ticks.notify_waiters();
                            std::thread::park_timeout(WATCHDOG_TICK);
                        }
                    }
                }
            })
            // Without a thread, the stop relies on tokio's timer alone.
            .ok()
            .map(|handle| handle.thread().clone());
        Watchdog { tick, done, thread }
    }

    /// Completes on a wake of the watchdog with tokio's clock at or past
    /// `deadline`; never without a watchdog.
    pub(crate) async fn passed(watchdog: Option<&Watchdog>, deadline: tokio::time::Instant) {
        let Some(watchdog) = watchdog else {
            return std::future::pending().await;
        };
        loop {
            watchdog.tick.notified().await;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}
