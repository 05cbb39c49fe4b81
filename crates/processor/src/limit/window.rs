//! Client-side rate limiting by successes in a sliding window.
//!
//! Written here rather than taken from `governor` because the semantics
//! differ: the downstream counts only *successful* calls (or records)
//! admitted in the last window, and a failed call gives its slot back. A
//! GCRA or token bucket counts attempts and cannot refund one, which leaves
//! about the failure rate's share of the ceiling unused; it also lets a
//! burst through that a sliding window refuses. Here each permit is a slot
//! of the window: a call takes one per unit it counts at admission, a
//! failure returns them at once, a success returns them one window after
//! admission.
//!
//! A known limit's first window may be ramped
//! ([`RateLimiter::ramping_the_first_window`], for real APIs, whose margin
//! is tens of milliseconds): its calls are spread over the window (at
//! most the first second of a longer one) instead of going at once. Admitted at once, they would keep their phase from window to
//! window: the successes come in one bunch per window and, as a success
//! holds its slot a margin longer than the API's window, the bunch drifts
//! against the API's windows and every `window / margin` windows slips
//! past an edge, so the margin's shortfall falls in one stretch of
//! seconds (measured: 42-45 successes a second for ~8 s in every ~36 s at
//! 50/s with a 25 ms margin) instead of evenly.
//!
//! Time arithmetic saturates: a window or margin as long as `Duration::MAX`
//! holds a slot until the process ends, it does not overflow.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

mod permit;
#[cfg(test)]
mod tests;

pub(crate) use permit::WindowPermit;

/// Until the first refusal an adaptive limiter does not limit (the
/// processor's `max_in_flight` still does); this is "no limit" in permits.
const UNBOUNDED: usize = 1 << 24;

/// The shortest first wait between probes for a higher limit.
const BASE_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// The shortest longest wait between probes, reached after repeated
/// refused probes.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// The longest a first window's calls are spread over.
const MAX_RAMP: Duration = Duration::from_secs(1);

/// What "forever" is for instants: far enough that no run reaches it, near
/// enough that adding it to any instant of a run cannot overflow.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `at + wait`, or [`FAR_FUTURE`] from `at` when that would overflow.
pub(crate) fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait.min(FAR_FUTURE))
        .unwrap_or_else(|| at + Duration::from_secs(86_400))
}

/// A sliding-window limiter of successes, with a fixed or learned limit.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// One permit per free slot of the window.
    slots: Semaphore,
    state: Mutex<State>,
    /// Wakes the releaser when a success expires earlier than any before it.
    releaser: Notify,
    /// How long a success holds its slot from its call: the window plus a
    /// safety margin.
    hold: Duration,
    /// How long it holds it from its answer.
    window: Duration,
    /// A known quota: the limit never rises above it.
    ceiling: Option<usize>,
    /// Whether to count from answers once a call is refused.
    answer_after_refusal: bool,
    /// Whether a refusal leaves the limit as it is: when the quota is
    /// shared with other processes, what this one holds is not the limit.
    shared: bool,
    base_probe_interval: Duration,
    max_probe_interval: Duration,
}

/// The spreading of a known limit's first window of calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ramp {
    /// No call yet.
    NotStarted,
    /// The next unit goes no sooner than `next`, until `ends`.
    Running { next: Instant, ends: Instant },
    /// The first window (or second) has passed: no more spreading.
    Done,
}

#[derive(Debug)]
struct State {
    /// The number of slots the window currently has.
    limit: usize,
    /// Slots to destroy as they come back, after the limit was lowered while
    /// they were taken.
    debt: usize,
    /// When successes in the window give their slots back, and how many.
    releases: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Slots held by successes in the window.
    held: usize,
    /// Slots of calls admitted and not yet answered.
    pending: usize,
    /// No call is admitted before this instant (a retry-after hint).
    paused_until: Option<Instant>,
    /// How far the first window's spreading of calls has got.
    ramp: Ramp,
    /// When the limit last changed.
    last_change: Instant,
    /// Whether the last raise of the limit is still unrefuted.
    probing: bool,
    /// Whether a success's window starts at its answer (else at its call).
    from_answer: bool,
    /// Successes still to count from their answers before counting from
    /// calls: the first calls open connections, and reach the API later
    /// than they start.
    warmup: usize,
    probe_interval: Duration,
    probe_step: usize,
}

impl State {
    fn counts_from_answers(&self) -> bool {
        self.from_answer || self.warmup > 0
    }
}

impl RateLimiter {
    /// A limiter with a known quota of `limit` successes per `window`.
    pub(crate) fn known(limit: usize, window: Duration, margin: Duration) -> RateLimiter {
        let limit = limit.clamp(1, UNBOUNDED);
        RateLimiter::new(limit, Some(limit), window, margin)
    }

    /// A limiter that learns its limit from refusals.
    pub(crate) fn adaptive(window: Duration, margin: Duration) -> RateLimiter {
        RateLimiter::new(UNBOUNDED, None, window, margin)
    }

    fn new(
        limit: usize,
        ceiling: Option<usize>,
        window: Duration,
        margin: Duration,
    ) -> RateLimiter {
        let base_probe_interval = BASE_PROBE_INTERVAL.max(window.saturating_mul(2));
        RateLimiter {
            slots: Semaphore::new(limit),
            state: Mutex::new(State {
                limit,
                debt: 0,
                releases: BinaryHeap::new(),
                held: 0,
                pending: 0,
                paused_until: None,
                ramp: Ramp::Done,
                last_change: Instant::now(),
                probing: false,
                from_answer: false,
                warmup: 0,
                probe_interval: base_probe_interval,
                probe_step: 1,
            }),
            releaser: Notify::new(),
            hold: window.saturating_add(margin),
            window,
            ceiling,
            answer_after_refusal: false,
            shared: false,
            base_probe_interval,
            max_probe_interval: MAX_PROBE_INTERVAL.max(window.saturating_mul(60)),
        }
    }

    /// Counts each success's window from its answer rather than its call.
    pub(crate) fn counting_from_answers(self) -> RateLimiter {
        self.lock().from_answer = true;
        self
    }

    /// Counts from calls until a refusal, then from answers.
    pub(crate) fn counting_from_answers_after_a_refusal(mut self) -> RateLimiter {
        self.answer_after_refusal = true;
        // The first window's worth of successes counts from answers: they
        // open the connections, whose handshakes delay their arrival.
        self.lock().warmup = self.ceiling.unwrap_or(0);
        self
    }

    /// Spreads the first window's calls over the window (at most
    /// [`MAX_RAMP`]), so that successes do not come in one bunch per
    /// window (see the module's documentation). Only a known limit is
    /// ramped.
    pub(crate) fn ramping_the_first_window(self) -> RateLimiter {
        self.lock().ramp = Ramp::NotStarted;
        self
    }

    /// Whether successes' windows count from their answers now.
    pub(crate) fn counts_from_answers(&self) -> bool {
        self.lock().counts_from_answers()
    }

    /// Shares the quota with other processes (through a shared limit): a
    /// refusal pauses and changes how successes count, but does not lower
    /// the limit to what this process holds.
    pub(crate) fn sharing_the_quota(mut self) -> RateLimiter {
        self.shared = true;
        self
    }

    /// The current limit, or `None` while an adaptive limiter has not yet
    /// been refused.
    pub(crate) fn current_limit(&self) -> Option<usize> {
        let limit = self.lock().limit;
        (limit < UNBOUNDED).then_some(limit)
    }

    /// Waits for `count` slots of the window (fewer if the limit is lower:
    /// a call larger than the limit is let through alone, for the API to
    /// judge). Dropping the returned permit without resolving it gives the
    /// slots back, as does cancelling this future.
    pub(crate) async fn acquire(&self, count: usize) -> WindowPermit<'_> {
        if self.slots.available_permits() < count {
            self.maybe_probe();
        }
        let count = count.clamp(1, self.lock().limit);
        // The semaphore is never closed, so acquiring cannot fail; if it
        // ever did, admitting the call is safer than losing the records.
        let wanted = u32::try_from(count).unwrap_or(u32::MAX);
        if let Ok(permit) = self.slots.acquire_many(wanted).await {
            permit.forget();
        }
        let mut permit = WindowPermit::new(self, count);
        let wait_until = {
            let mut state = self.lock();
            state.pending += count;
            let ramped = self.ramp(&mut state, count);
            state.paused_until.max(ramped)
        };
        permit.wait_out(wait_until).await;
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
                while let Some(&Reverse((at, count))) = state.releases.peek() {
                    if at > now {
                        break;
                    }
                    state.releases.pop();
                    state.held -= count;
                    self.give_back(&mut state, count);
                }
                state.releases.peek().map(|&Reverse((at, _))| at)
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

    /// When `count` units admitted now may go, while a known limit's first
    /// window is spread (over the window, at most [`MAX_RAMP`]): one
    /// unit every spread / limit. `None`: at once (a time already passed
    /// is also at once).
    fn ramp(&self, state: &mut State, count: usize) -> Option<Instant> {
        if state.ramp == Ramp::Done {
            return None;
        }
        let step = self.ramp_step(count)?;
        let now = Instant::now();
        let (next, ends) = match state.ramp {
            Ramp::Done => return None,
            Ramp::NotStarted => (now, later(now, self.window.min(MAX_RAMP))),
            Ramp::Running { next, ends } => (next.max(now), ends),
        };
        if next >= ends {
            state.ramp = Ramp::Done;
            return None;
        }
        state.ramp = Ramp::Running {
            next: later(next, step),
            ends,
        };
        Some(next)
    }

    /// The ramp's spacing of `count` units: the spread over the limit,
    /// per unit. `None` without a known limit.
    fn ramp_step(&self, count: usize) -> Option<Duration> {
        let ceiling = u32::try_from(self.ceiling?).unwrap_or(u32::MAX).max(1);
        let units = u32::try_from(count).unwrap_or(u32::MAX);
        Some((self.window.min(MAX_RAMP) / ceiling).saturating_mul(units))
    }

    /// Gives back the ramp's spacing of `count` units whose call did not
    /// deliver them (failed, refused, cancelled): the first window's
    /// successes, not its attempts, are spread.
    fn unramp(&self, state: &mut State, count: usize) {
        let (Some(step), Ramp::Running { next, ends }) = (self.ramp_step(count), state.ramp) else {
            return;
        };
        if let Some(sooner) = next.checked_sub(step) {
            state.ramp = Ramp::Running { next: sooner, ends };
        }
    }

    fn give_back(&self, state: &mut State, count: usize) {
        let repaid = count.min(state.debt);
        state.debt -= repaid;
        self.slots.add_permits(count - repaid);
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
        let room_to_grow = state.limit < self.ceiling.unwrap_or(UNBOUNDED);
        if !room_to_grow || state.last_change.elapsed() < state.probe_interval {
            return;
        }
        if state.probing {
            // The previous probe was not refused: the quota grew; grow faster.
            state.probe_step = state.probe_step.saturating_mul(2);
            state.probe_interval = self.base_probe_interval;
        }
        let raised = state
            .limit
            .saturating_add(state.probe_step)
            .min(self.ceiling.unwrap_or(UNBOUNDED));
        state.probing = true;
        self.set_limit(&mut state, raised);
    }

    /// The downstream refused a call of `count` slots as rate limited: its
    /// window holds the successes this client counts now and the other
    /// calls in flight, so that is the limit.
    fn on_refusal(&self, state: &mut State, count: usize, retry_after: Option<Duration>) {
        // `pending` still counts the refused call itself.
        let in_window = (state.held + state.pending.saturating_sub(count)).max(1);
        if in_window < state.limit && !self.shared {
            self.set_limit(state, in_window);
        }
        if state.probing {
            state.probing = false;
            state.probe_step = 1;
            state.probe_interval = state
                .probe_interval
                .saturating_mul(2)
                .min(self.max_probe_interval);
        }
        if self.answer_after_refusal && !state.from_answer {
            tracing::info!("the API counts calls later than they start: counting from answers");
            state.from_answer = true;
        }
        if let Some(wait) = retry_after {
            let until = later(Instant::now(), wait);
            state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
        }
    }
}
