//! The limit: a sliding window of successes whose slots are reserved at
//! admission, so that it holds under any concurrency.
//!
//! A call is admitted only while fewer than `limit` slots are live, where
//! a slot is live from its admission until either its call fails or is
//! cancelled (the slot is released at once) or one window has passed since
//! its admission (a success keeps its slot that long). Times are durations
//! since the API's start.

use std::collections::VecDeque;
use std::time::Duration;

use crate::quota::Quota;

/// The slots of the last window, for a limited API; nothing for an
/// unlimited one.
#[derive(Debug)]
pub(crate) struct SuccessWindow {
    quota: Option<Quota>,
    /// Admissions of the last window, oldest first: live ones (successes
    /// and calls in flight) and released ones (failed or cancelled), until
    /// they leave the window.
    admissions: VecDeque<Admission>,
    live: usize,
    next_id: u64,
}

#[derive(Debug, Clone, Copy)]
struct Admission {
    id: u64,
    at: Duration,
    live: bool,
}

/// The slot of an admitted call, to release if the call does not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(Option<u64>);

impl SuccessWindow {
    /// An empty window for `quota` (`None`: no limit).
    pub(crate) fn new(quota: Option<Quota>) -> SuccessWindow {
        SuccessWindow {
            quota,
            admissions: VecDeque::new(),
            live: 0,
            next_id: 0,
        }
    }

    /// Admits a call at `now` and reserves its slot, or refuses it with
    /// the time until the oldest live slot frees (the earliest a new call
    /// can be admitted, unless a call in flight fails first).
    pub(crate) fn admit(&mut self, now: Duration) -> Result<Slot, Duration> {
        let Some(quota) = self.quota else {
            return Ok(Slot(None));
        };
        while let Some(oldest) = self.admissions.front() {
            if !expired(oldest.at, quota.window, now) {
                break;
            }
            if oldest.live {
                self.live -= 1;
            }
            self.admissions.pop_front();
        }
        if self.live >= quota.limit as usize {
            let oldest_live = self
                .admissions
                .iter()
                .find(|a| a.live)
                .map_or(now, |a| a.at);
            let frees_at = oldest_live.checked_add(quota.window);
            let wait = frees_at.map_or(Duration::MAX, |t| t.saturating_sub(now));
            return Err(wait);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.admissions.push_back(Admission {
            id,
            at: now,
            live: true,
        });
        self.live += 1;
        Ok(Slot(Some(id)))
    }

    /// Frees `slot` (its call failed or was cancelled), if it is still in
    /// the window.
    pub(crate) fn release(&mut self, slot: Slot) {
        let Slot(Some(id)) = slot else {
            return;
        };
        // Admissions are pushed in id order, so the deque is sorted by id.
        if let Ok(i) = self.admissions.binary_search_by_key(&id, |a| a.id)
            && let Some(admission) = self.admissions.get_mut(i)
            && admission.live
        {
            admission.live = false;
            self.live -= 1;
        }
    }
}

/// Whether a slot admitted `at` has left the window by `now`. A window too
/// long for the timeline never ends.
fn expired(at: Duration, window: Duration, now: Duration) -> bool {
    at.checked_add(window).is_some_and(|end| end <= now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_window_refuses_until_the_oldest_slot_frees() {
        let mut window = SuccessWindow::new(Some(Quota::per_second(2)));
        window.admit(ms(0)).unwrap();
        window.admit(ms(300)).unwrap();
        assert_eq!(window.admit(ms(400)), Err(ms(600)));
        // Exactly one window after admission, the slot is free again.
        window.admit(SECOND).unwrap();
        assert_eq!(window.admit(SECOND), Err(ms(300)));
    }

    #[test]
    fn a_released_slot_is_free_at_once_and_only_once() {
        let mut window = SuccessWindow::new(Some(Quota::per_second(2)));
        let failed = window.admit(ms(0)).unwrap();
        window.admit(ms(100)).unwrap();
        assert!(window.admit(ms(200)).is_err());
        window.release(failed);
        window.release(failed);
        let third = window.admit(ms(200)).unwrap();
        // The refusal counts from the oldest live slot, not the released one.
        assert_eq!(window.admit(ms(250)), Err(ms(850)));
        // Releasing a slot that has left the window changes nothing.
        window.admit(ms(1250)).unwrap();
        window.release(third);
        window.admit(ms(1260)).unwrap();
        assert_eq!(window.admit(ms(1270)), Err(ms(980)));
    }

    #[test]
    fn no_quota_admits_everything_and_huge_windows_do_not_overflow() {
        let mut unlimited = SuccessWindow::new(None);
        for i in 0..10_000 {
            unlimited.admit(ms(i)).unwrap();
        }
        assert!(unlimited.admissions.is_empty());

        let mut forever = SuccessWindow::new(Some(Quota {
            limit: 1,
            window: Duration::MAX,
        }));
        forever.admit(SECOND).unwrap();
        assert_eq!(forever.admit(SECOND * 3600), Err(Duration::MAX));
    }
}
