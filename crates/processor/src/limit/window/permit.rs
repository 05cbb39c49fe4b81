//! Slots of the window taken for one call, and how the call's end gives
//! them back: at once when it failed or was cancelled, one window later
//! for each success.

use std::cmp::Reverse;
use std::time::Duration;

use tokio::time::Instant;

use super::{RateLimiter, later};

/// Slots of the window, taken for one call.
#[derive(Debug)]
pub(crate) struct WindowPermit<'a> {
    limiter: &'a RateLimiter,
    admitted_at: Instant,
    count: usize,
    resolved: bool,
}

impl<'a> WindowPermit<'a> {
    /// `count` slots of `limiter`, admitted now, already counted as pending.
    pub(super) fn new(limiter: &'a RateLimiter, count: usize) -> WindowPermit<'a> {
        WindowPermit {
            limiter,
            admitted_at: Instant::now(),
            count,
            resolved: false,
        }
    }

    /// Waits out a pause (a retry-after hint) that holds admission past
    /// the moment the permit was taken; its window then starts when the
    /// pause ends. Cancelled, the permit gives its slots back.
    pub(super) async fn wait_out(&mut self, paused_until: Option<Instant>) {
        if let Some(until) = paused_until.filter(|&until| until > self.admitted_at) {
            tokio::time::sleep_until(until).await;
            self.admitted_at = Instant::now();
        }
    }
}

impl WindowPermit<'_> {
    /// The call succeeded for `successes` of the permit's slots: those stay
    /// taken until the window passes, the rest come back at once.
    pub(crate) fn succeeded(mut self, successes: usize) {
        self.resolved = true;
        let limiter = self.limiter;
        let kept = successes.min(self.count);
        let mut state = limiter.lock();
        // A window from the answer always covers the API's count, with no
        // margin: the API counted the call before it answered. Counted
        // from the call, a success leaves at the end of the window and
        // margin, or at that when it comes sooner (a quick answer).
        let from_answer = state.counts_from_answers();
        state.warmup = state.warmup.saturating_sub(kept.max(1));
        let answer_window_ends = later(Instant::now(), limiter.window);
        let release_at = if from_answer {
            answer_window_ends
        } else {
            later(self.admitted_at, limiter.hold).min(answer_window_ends)
        };
        state.pending -= self.count;
        limiter.give_back(&mut state, self.count - kept);
        limiter.unramp(&mut state, self.count - kept);
        if kept == 0 {
            return;
        }
        let earliest = state
            .releases
            .peek()
            .is_none_or(|&Reverse((next, _))| release_at < next);
        state.releases.push(Reverse((release_at, kept)));
        state.held += kept;
        drop(state);
        if earliest {
            limiter.releaser.notify_one();
        }
    }

    /// The call was refused as rate limited: the slots come back, and the
    /// limit drops to what the window holds.
    pub(crate) fn refused(mut self, retry_after: Option<Duration>) {
        self.resolved = true;
        let limiter = self.limiter;
        let mut state = limiter.lock();
        limiter.on_refusal(&mut state, self.count, retry_after);
        state.pending -= self.count;
        limiter.give_back(&mut state, self.count);
        limiter.unramp(&mut state, self.count);
    }
}

impl Drop for WindowPermit<'_> {
    /// A failed or cancelled call gives its slots back at once.
    fn drop(&mut self) {
        if !self.resolved {
            let mut state = self.limiter.lock();
            state.pending -= self.count;
            self.limiter.give_back(&mut state, self.count);
            self.limiter.unramp(&mut state, self.count);
        }
    }
}
