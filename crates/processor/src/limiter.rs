//! Client-side rate limiting by successful calls in a sliding window.
//!
//! Written here rather than taken from `governor` because the semantics
//! differ: the downstream counts only *successful* calls admitted in the last
//! second, and a failed call gives its slot back. A GCRA or token bucket
//! counts attempts and cannot refund one, which leaves about the failure
//! rate's share of the ceiling unused; it also lets a burst through that a
//! sliding window refuses. Here each permit is a slot of the window: a call
//! takes one at admission, a failure returns it at once, a success returns
//! it one window after admission.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// The window the downstream counts successes in.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// Until the first refusal an adaptive limiter does not limit (the
/// processor's `max_in_flight` still does); this is "no limit" in permits.
const UNBOUNDED: usize = 1 << 24;

/// The first wait between probes for a higher limit.
const BASE_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// The longest wait between probes, reached after repeated refused probes.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// A sliding-window limiter of successful calls, with a fixed or learned limit.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// One permit per free slot of the window.
    slots: Semaphore,
    state: Mutex<State>,
    /// Wakes the releaser when a success expires earlier than any before it.
    releaser: Notify,
    /// How long a success holds its slot: the window plus a safety margin.
    hold: Duration,
    /// A known quota: the limit never rises above it.
    ceiling: Option<usize>,
}

#[derive(Debug)]
struct State {
    /// The number of slots the window currently has.
    limit: usize,
    /// Slots to destroy as they come back, after the limit was lowered while
    /// they were taken.
    debt: usize,
    /// When each success in the window gives its slot back.
    releases: BinaryHeap<Reverse<Instant>>,
    /// Calls admitted and not yet answered.
    pending: usize,
    /// No call is admitted before this instant (a retry-after hint).
    paused_until: Option<Instant>,
    /// When the limit last changed.
    last_change: Instant,
    /// Whether the last raise of the limit is still unrefuted.
    probing: bool,
    probe_interval: Duration,
    probe_step: usize,
}

impl RateLimiter {
    /// A limiter with a known quota of `limit` successes per second.
    pub(crate) fn known(limit: usize, margin: Duration) -> RateLimiter {
        RateLimiter::new(limit.max(1), Some(limit.max(1)), margin)
    }

    /// A limiter that learns its limit from refusals.
    pub(crate) fn adaptive(margin: Duration) -> RateLimiter {
        RateLimiter::new(UNBOUNDED, None, margin)
    }

    fn new(limit: usize, ceiling: Option<usize>, margin: Duration) -> RateLimiter {
        RateLimiter {
            slots: Semaphore::new(limit),
            state: Mutex::new(State {
                limit,
                debt: 0,
                releases: BinaryHeap::new(),
                pending: 0,
                paused_until: None,
                last_change: Instant::now(),
                probing: false,
                probe_interval: BASE_PROBE_INTERVAL,
                probe_step: 1,
            }),
            releaser: Notify::new(),
            hold: WINDOW + margin,
            ceiling,
        }
    }

    /// The current limit, or `None` while an adaptive limiter has not yet
    /// been refused.
    pub(crate) fn current_limit(&self) -> Option<usize> {
        let limit = self.lock().limit;
        (limit < UNBOUNDED).then_some(limit)
    }

    /// Waits for a slot in the window. Dropping the returned permit without
    /// resolving it gives the slot back, as does cancelling this future.
    pub(crate) async fn acquire(&self) -> WindowPermit<'_> {
        if self.slots.available_permits() == 0 {
            self.maybe_probe();
        }
        // The semaphore is never closed, so acquire cannot fail; if it ever
        // did, admitting the call is safer than losing the record.
        if let Ok(permit) = self.slots.acquire().await {
            permit.forget();
        }
        let mut permit = WindowPermit {
            limiter: self,
            admitted_at: Instant::now(),
            resolved: false,
        };
        let paused_until = {
            let mut state = self.lock();
            state.pending += 1;
            state.paused_until
        };
        if let Some(until) = paused_until.filter(|&until| until > permit.admitted_at) {
            tokio::time::sleep_until(until).await;
            permit.admitted_at = Instant::now();
        }
        permit
    }

    /// Gives back the slots of successes whose window has passed, for as
    /// long as the limiter lives. The processor runs one per limiter.
    pub(crate) async fn run_releaser(&self) {
        loop {
            let wake = self.releaser.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let next = {
                let mut state = self.lock();
                let now = Instant::now();
                while let Some(&Reverse(at)) = state.releases.peek() {
                    if at > now {
                        break;
                    }
                    state.releases.pop();
                    self.give_back(&mut state);
                }
                state.releases.peek().map(|&Reverse(at)| at)
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut wake => {}
                    }
                }
                None => wake.await,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every unlock, so a panic elsewhere
        // while holding the lock does not invalidate it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn give_back(&self, state: &mut State) {
        if state.debt > 0 {
            state.debt -= 1;
        } else {
            self.slots.add_permits(1);
        }
    }

    fn set_limit(&self, state: &mut State, limit: usize) {
        if limit > state.limit {
            let mut raise = limit - state.limit;
            let repaid = raise.min(state.debt);
            state.debt -= repaid;
            raise -= repaid;
            self.slots.add_permits(raise);
        } else {
            let cut = state.limit - limit;
            let destroyed = self.slots.forget_permits(cut);
            state.debt += cut - destroyed;
        }
        state.limit = limit;
        state.last_change = Instant::now();
    }

    /// Raises the limit a little when callers are waiting and the last
    /// change is old enough: the quota may have grown.
    fn maybe_probe(&self) {
        let mut state = self.lock();
        let room_to_grow = match self.ceiling {
            Some(ceiling) => state.limit < ceiling,
            None => state.limit < UNBOUNDED,
        };
        if !room_to_grow || state.last_change.elapsed() < state.probe_interval {
            return;
        }
        if state.probing {
            // The previous probe was not refused: the quota grew; grow faster.
            state.probe_step = state.probe_step.saturating_mul(2);
            state.probe_interval = BASE_PROBE_INTERVAL;
        }
        let mut raised = state.limit.saturating_add(state.probe_step);
        if let Some(ceiling) = self.ceiling {
            raised = raised.min(ceiling);
        }
        state.probing = true;
        self.set_limit(&mut state, raised);
    }

    /// The downstream refused a call as rate limited: its window holds the
    /// successes this client counts now and the other calls in flight, so
    /// that is the limit.
    fn on_refusal(&self, state: &mut State, retry_after: Option<Duration>) {
        // `pending` still counts the refused call itself.
        let in_window = (state.releases.len() + state.pending.saturating_sub(1)).max(1);
        if in_window < state.limit {
            self.set_limit(state, in_window);
        }
        if state.probing {
            state.probing = false;
            state.probe_step = 1;
            state.probe_interval = (state.probe_interval * 2).min(MAX_PROBE_INTERVAL);
        }
        if let Some(wait) = retry_after {
            let until = Instant::now() + wait;
            state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
        }
    }
}

/// A slot of the window, taken for one call.
#[derive(Debug)]
pub(crate) struct WindowPermit<'a> {
    limiter: &'a RateLimiter,
    admitted_at: Instant,
    resolved: bool,
}

impl WindowPermit<'_> {
    /// The call succeeded: the slot stays taken until the window passes.
    pub(crate) fn succeeded(mut self) {
        self.resolved = true;
        let release_at = self.admitted_at + self.limiter.hold;
        let mut state = self.limiter.lock();
        state.pending -= 1;
        let earliest = state
            .releases
            .peek()
            .is_none_or(|&Reverse(next)| release_at < next);
        state.releases.push(Reverse(release_at));
        drop(state);
        if earliest {
            self.limiter.releaser.notify_one();
        }
    }

    /// The call was refused as rate limited: the slot comes back, and the
    /// limit drops to what the window holds.
    pub(crate) fn refused(mut self, retry_after: Option<Duration>) {
        self.resolved = true;
        let limiter = self.limiter;
        let mut state = limiter.lock();
        limiter.on_refusal(&mut state, retry_after);
        state.pending -= 1;
        limiter.give_back(&mut state);
    }
}

impl Drop for WindowPermit<'_> {
    /// A failed or cancelled call gives its slot back at once.
    fn drop(&mut self) {
        if !self.resolved {
            let mut state = self.limiter.lock();
            state.pending -= 1;
            self.limiter.give_back(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn spawn_releaser(limiter: &Arc<RateLimiter>) -> tokio::task::JoinHandle<()> {
        let limiter = Arc::clone(limiter);
        tokio::spawn(async move { limiter.run_releaser().await })
    }

    #[tokio::test(start_paused = true)]
    async fn successes_hold_their_slot_for_one_window() {
        let limiter = Arc::new(RateLimiter::known(3, Duration::ZERO));
        let releaser = spawn_releaser(&limiter);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await.succeeded();
        }
        // The fourth call waits until the first success leaves the window.
        limiter.acquire().await.succeeded();
        assert_eq!(start.elapsed(), WINDOW);
        releaser.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn failures_and_cancellations_give_the_slot_back_at_once() {
        let limiter = Arc::new(RateLimiter::known(1, Duration::ZERO));
        let start = Instant::now();
        for _ in 0..10 {
            drop(limiter.acquire().await);
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_adaptive_limiter_learns_the_limit_from_a_refusal() {
        let limiter = Arc::new(RateLimiter::adaptive(Duration::ZERO));
        let releaser = spawn_releaser(&limiter);
        assert_eq!(limiter.current_limit(), None);
        for _ in 0..5 {
            limiter.acquire().await.succeeded();
        }
        limiter.acquire().await.refused(None);
        assert_eq!(limiter.current_limit(), Some(5));
        // The sixth call in this window has to wait for the first to expire.
        let start = Instant::now();
        limiter.acquire().await.succeeded();
        assert_eq!(start.elapsed(), WINDOW);
        releaser.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_hint_pauses_admission() {
        let limiter = Arc::new(RateLimiter::known(10, Duration::ZERO));
        limiter
            .acquire()
            .await
            .refused(Some(Duration::from_millis(300)));
        let start = Instant::now();
        drop(limiter.acquire().await);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn probes_raise_a_lowered_limit_back_towards_the_ceiling() {
        let limiter = Arc::new(RateLimiter::known(4, Duration::ZERO));
        let releaser = spawn_releaser(&limiter);
        limiter.acquire().await.succeeded();
        limiter.acquire().await.succeeded();
        limiter.acquire().await.refused(None);
        assert_eq!(limiter.current_limit(), Some(2));
        // Saturate for longer than the probe interval: the limit climbs back
        // to the known ceiling and not beyond.
        for _ in 0..40 {
            limiter.acquire().await.succeeded();
        }
        assert_eq!(limiter.current_limit(), Some(4));
        releaser.abort();
    }
}
