//! One call to the API, apart from any transport and any clock: admission,
//! the draws of latency and fate, and the ledger.

use std::fmt;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::behaviour::{Behaviour, ConfigError};
use crate::tally::{Retention, Tally};
use crate::window::{Slot, SuccessWindow};

/// The API's state, shared by every caller: the success window, the RNG
/// and the [`Tally`], behind one lock, with `X`, state of the caller's own
/// (e.g. counts of request headers) kept beside the tally and updated under
/// the same lock, so that a copy of both is always consistent.
///
/// The model reads no clock and waits for nothing: the caller passes the
/// time of each admission, as a duration since the API's start on its own
/// clock, and waits the [latency](Call::latency) of an admitted call on
/// that clock before it [completes](Call::complete) the call.
#[derive(Debug)]
pub struct ApiModel<P: Eq + Hash, X = ()> {
    behaviour: Behaviour,
    state: Mutex<State<P, X>>,
}

#[derive(Debug)]
struct State<P: Eq + Hash, X> {
    rng: ChaCha8Rng,
    window: SuccessWindow,
    tally: Tally<P>,
    annex: X,
}

/// A call refused because the window is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When the window's oldest live slot frees: the earliest a new call
    /// can be admitted, unless a call in flight fails first
    /// ([`Duration::MAX`] for a window too long for the timeline).
    pub retry_after: Duration,
}

/// An admitted call that failed, as the behaviour's `failure_rate` drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFailed;

impl<P: Eq + Hash, X> ApiModel<P, X> {
    /// An API that behaves as `behaviour` says, keeps what `retention`
    /// says, and keeps `annex` beside its tally.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of `behaviour`, if it is not usable.
    pub fn new(
        behaviour: Behaviour,
        retention: Retention,
        annex: X,
    ) -> Result<ApiModel<P, X>, ConfigError> {
        behaviour.validate()?;
        Ok(ApiModel {
            state: Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(behaviour.seed),
                window: SuccessWindow::new(behaviour.rate_limit),
                tally: Tally::new(retention),
                annex,
            }),
            behaviour,
        })
    }

    /// How the API behaves.
    pub fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }

    /// A call at `now` (since the API's start): counted, then refused if
    /// the window is full, else admitted with a slot reserved and its
    /// latency and fate drawn.
    ///
    /// # Errors
    ///
    /// [`Refused`] when the window is full.
    pub fn admit(&self, now: Duration) -> Result<Call<'_, P, X>, Refused> {
        let mut state = self.lock();
        state.tally.call();
        let slot = match state.window.admit(now) {
            Ok(slot) => slot,
            Err(retry_after) => {
                state.tally.refused();
                return Err(Refused { retry_after });
            }
        };
        let (min, max) = (self.behaviour.latency_min, self.behaviour.latency_max);
        let latency = if min == max {
            min
        } else {
            state.rng.random_range(min..=max)
        };
        let rate = self.behaviour.failure_rate;
        let fails = rate > 0.0 && state.rng.random_bool(rate);
        Ok(Call {
            model: self,
            slot: Some(slot),
            admitted_at: now,
            latency,
            fails,
        })
    }

    /// Reads the tally and the annex as they stand, under the lock: keep
    /// `read` short, calls wait for it.
    pub fn read<R>(&self, read: impl FnOnce(&Tally<P>, &X) -> R) -> R {
        let state = self.lock();
        read(&state.tally, &state.annex)
    }

    /// Changes the annex, under the lock.
    pub fn update_annex<R>(&self, update: impl FnOnce(&mut X) -> R) -> R {
        update(&mut self.lock().annex)
    }

    fn lock(&self) -> MutexGuard<'_, State<P, X>> {
        // The model's own critical sections leave the state consistent; a
        // caller's closure that panicked leaves at most its annex half
        // changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An admitted call in flight, holding its slot in the window.
///
/// # Cancel safety
///
/// Dropping it before [`complete`](Self::complete) (a cancelled call: its
/// caller went away) frees its slot at once and counts it as cancelled:
/// a future that holds a `Call` across an `.await` may be dropped at any
/// point.
#[must_use = "dropping a call cancels it"]
pub struct Call<'a, P: Eq + Hash, X> {
    model: &'a ApiModel<P, X>,
    /// `None` once the call is settled.
    slot: Option<Slot>,
    admitted_at: Duration,
    latency: Duration,
    fails: bool,
}

impl<P: Eq + Hash, X> Call<'_, P, X> {
    /// How long the call takes: the caller waits this long on its clock
    /// before it completes the call.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// When the call was admitted, since the API's start.
    pub fn admitted_at(&self) -> Duration {
        self.admitted_at
    }

    /// Ends the call as drawn at admission. A success delivers `records`,
    /// each a (partition, sequence) or `None` for a record without an
    /// identity, keeps its slot for one window from admission, and runs
    /// `on_success` on the annex under the same lock; a failure frees the
    /// slot at once.
    ///
    /// # Errors
    ///
    /// [`CallFailed`] if the call was drawn to fail.
    pub fn complete(
        mut self,
        records: impl IntoIterator<Item = Option<(P, u64)>>,
        on_success: impl FnOnce(&mut X),
    ) -> Result<(), CallFailed> {
        let Some(slot) = self.slot.take() else {
            return Ok(());
        };
        let mut state = self.model.lock();
        if self.fails {
            state.window.release(slot);
            state.tally.failed();
            return Err(CallFailed);
        }
        state.tally.succeeded(self.admitted_at, records);
        on_success(&mut state.annex);
        Ok(())
    }
}

impl<P: Eq + Hash, X> fmt::Debug for Call<'_, P, X> {
    /// The call alone, not the model it belongs to.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("admitted_at", &self.admitted_at)
            .field("latency", &self.latency)
            .field("fails", &self.fails)
            .field("settled", &self.slot.is_none())
            .finish()
    }
}

impl<P: Eq + Hash, X> Drop for Call<'_, P, X> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let mut state = self.model.lock();
            state.window.release(slot);
            state.tally.cancelled();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::quota::Quota;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn behaviour(limit: u32, failure_rate: f64) -> Behaviour {
        Behaviour {
            rate_limit: Some(Quota::per_second(limit)),
            failure_rate,
            latency_min: ms(10),
            latency_max: ms(50),
            seed: 7,
        }
    }

    type Model = ApiModel<&'static str, u64>;

    #[test]
    fn failed_and_cancelled_calls_free_their_slot_and_successes_keep_it() {
        let always_fails = Model::new(behaviour(1, 1.0), Retention::EVERYTHING, 0).unwrap();
        for t in 0..3 {
            let call = always_fails.admit(ms(t)).unwrap();
            assert_eq!(call.complete([Some(("s", t))], |_| {}), Err(CallFailed));
        }
        let model = Model::new(behaviour(1, 0.0), Retention::EVERYTHING, 0).unwrap();
        drop(model.admit(ms(0)).unwrap());
        let call = model.admit(ms(1)).unwrap();
        assert_eq!(call.admitted_at(), ms(1));
        call.complete([Some(("s", 1))], |annex| *annex += 1)
            .unwrap();
        assert_eq!(
            model.admit(ms(2)).map(|_| ()).unwrap_err(),
            Refused {
                retry_after: ms(999)
            }
        );
        model.update_annex(|annex| *annex += 10);
        let (counts, annex, times) = model.read(|tally, annex| {
            (
                tally.counts(),
                *annex,
                tally.success_times().collect::<Vec<_>>(),
            )
        });
        assert_eq!(
            (
                counts.calls,
                counts.cancelled,
                counts.successes,
                counts.rate_limit_hits
            ),
            (3, 1, 1, 1)
        );
        assert_eq!((annex, times), (11, vec![ms(1)]));
        let failed = always_fails.read(|tally, _| tally.counts());
        assert_eq!((failed.failures, failed.rate_limit_hits), (3, 0));
    }

    /// Up to 200 calls in flight at once, admitted, completed and
    /// abandoned in a seeded random order over ten seconds: no window holds
    /// more successes than the limit, and failures and cancellations give
    /// their slots back, so the limit is reached.
    #[test]
    fn the_limit_holds_whatever_the_interleaving() {
        let model = Model::new(behaviour(5, 0.3), Retention::EVERYTHING, 0).unwrap();
        let mut schedule = ChaCha8Rng::seed_from_u64(3);
        let mut in_flight: Vec<(Duration, Call<'_, &str, u64>)> = Vec::new();
        let mut now = Duration::ZERO;
        let mut sequence = 0;
        while now < Duration::from_secs(10) {
            now += ms(schedule.random_range(0..3));
            // Ends every call whose latency has passed, in a random order,
            // one in twenty of them abandoned.
            let (due, waiting): (Vec<_>, Vec<_>) = in_flight
                .drain(..)
                .partition(|(at, call)| *at + call.latency() <= now);
            in_flight = waiting;
            for (_, call) in due {
                if schedule.random_bool(0.05) {
                    drop(call);
                } else {
                    sequence += 1;
                    let _ = call.complete([Some(("s", sequence))], |_| {});
                }
            }
            while in_flight.len() < 200
                && let Ok(call) = model.admit(now)
            {
                in_flight.push((now, call));
            }
        }
        drop(in_flight);
        model.read(|tally, _| {
            let counts = tally.counts();
            assert!(tally.max_successes_in_any(Duration::from_secs(1)) <= 5);
            assert!(counts.successes >= 45, "{counts:?}");
            assert!(counts.failures > 0 && counts.cancelled > 0, "{counts:?}");
            assert_eq!(
                counts.calls,
                counts.successes + counts.failures + counts.rate_limit_hits + counts.cancelled
            );
        });
    }

    #[test]
    fn latencies_are_drawn_in_bounds_and_the_seed_decides_them_and_the_fates() {
        fn draws(seed: u64) -> Vec<(Duration, bool)> {
            let model = Model::new(
                Behaviour {
                    rate_limit: None,
                    seed,
                    ..behaviour(1, 0.5)
                },
                Retention::COUNTS,
                0,
            )
            .unwrap();
            (0..40)
                .map(|t| {
                    let call = model.admit(ms(t)).unwrap();
                    let latency = call.latency();
                    assert!((ms(10)..=ms(50)).contains(&latency), "{latency:?}");
                    (latency, call.complete([], |_| {}).is_err())
                })
                .collect()
        }
        let first = draws(1);
        assert_eq!(first, draws(1));
        assert_ne!(first, draws(2));
        let failures = first.iter().filter(|(_, failed)| *failed).count();
        assert!((8..=32).contains(&failures), "{failures} of 40 failed");
    }

    #[test]
    fn a_fixed_latency_is_not_drawn() {
        let fixed = Model::new(
            Behaviour {
                latency_min: ms(20),
                latency_max: ms(20),
                ..behaviour(100, 0.5)
            },
            Retention::COUNTS,
            0,
        )
        .unwrap();
        let ranged = Model::new(behaviour(100, 0.5), Retention::COUNTS, 0).unwrap();
        let fates = |model: &Model| -> Vec<bool> {
            (0..20)
                .map(|t| {
                    let call = model.admit(ms(t)).unwrap();
                    call.complete([], |_| {}).is_err()
                })
                .collect()
        };
        // Without a latency draw, the fates come from the RNG's first draws.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let expected: Vec<bool> = (0..20).map(|_| rng.random_bool(0.5)).collect();
        assert_eq!(fates(&fixed), expected);
        assert_ne!(fates(&ranged), expected);
        assert_eq!(fixed.admit(ms(50)).unwrap().latency(), ms(20));
    }
}
