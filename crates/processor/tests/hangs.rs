//! User code that hangs (a dead-letter outlet, a sink) and waits as long as
//! `Duration::MAX` (a retry-after hint, a rate-limit margin) cannot lose a
//! record, leave an acknowledgement unresolved, or hold up `stop()` past the
//! drain deadline or `finish()` forever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::{Act, End, Outlet, Setup, Verdict, run};
use sluice_processor::{FaultyTask, HandBackReason, Quota, RateLimit};

fn every_third_rejected(sequence: u64) -> Verdict {
    if sequence.is_multiple_of(3) {
        Verdict::Reject
    } else {
        Verdict::Accept
    }
}

fn every_fifth_hangs(sequence: u64, _attempt: u32) -> Act {
    if sequence.is_multiple_of(5) {
        Act::Hang
    } else {
        Act::Accept
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_dead_letter_outlet_cannot_hold_up_stop() {
    // Each letter hangs for the 5 s call timeout; the stop at 11 s finds
    // the third one in the outlet and cuts it off at the 2 s drain deadline,
    // before its timeout.
    let how = End::StopAfter(Duration::from_secs(11));
    let mut setup = Setup::new(30, how);
    setup.config.call_timeout = Duration::from_secs(5);
    setup.transform = every_third_rejected;
    setup.outlet = Some(|_| Outlet::Hang);
    let run = run(setup, how).await;
    let accounts = &run.accounts;
    assert!(accounts.dead.is_empty(), "a hanging outlet keeps nothing");
    assert!(accounts.handed_back.len() >= 3);
    let letters_back = accounts.handed_back.iter().filter(|&(sequence, reason)| {
        sequence % 3 == 0 && *reason == HandBackReason::DeadLetterFailed
    });
    assert_eq!(letters_back.count(), 3, "{:?}", accounts.handed_back);
    assert!(!accounts.delivered.is_empty());
    assert!(common::names(&run.report, FaultyTask::DeadLetterOutlet));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_dead_letter_outlet_cannot_hold_up_finish() {
    let mut setup = Setup::new(30, End::Finish);
    setup.config.call_timeout = Duration::from_secs(1);
    setup.transform = every_third_rejected;
    setup.outlet = Some(|_| Outlet::Hang);
    let run = run(setup, End::Finish).await;
    let accounts = &run.accounts;
    let rejected: Vec<u64> = (1..=30).filter(|s| s % 3 == 0).collect();
    let handed_back: Vec<u64> = accounts.handed_back.keys().copied().collect();
    assert_eq!(handed_back, rejected, "letters not kept are handed back");
    assert!(
        accounts
            .handed_back
            .values()
            .all(|&reason| reason == HandBackReason::DeadLetterFailed)
    );
    assert_eq!(accounts.delivered.len(), 20);
    assert!(common::names(&run.report, FaultyTask::DeadLetterOutlet));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_sink_cannot_hold_up_stop() {
    // Calls time out after 5 s: a first hung call of record 5 by then, its
    // retry in flight when the stop comes at 6 s, cut off by the 2 s drain
    // deadline 3 s before its timeout.
    let how = End::StopAfter(Duration::from_secs(6));
    let mut setup = Setup::new(30, how);
    setup.config.call_timeout = Duration::from_secs(5);
    setup.sink = every_fifth_hangs;
    let run = run(setup, how).await;
    let accounts = &run.accounts;
    assert!(
        accounts
            .handed_back
            .values()
            .any(|&reason| reason == HandBackReason::CallCancelled),
        "a hanging call was cut off: {:?}",
        accounts.handed_back
    );
    assert!(accounts.delivered.iter().all(|s| s % 5 != 0));
    assert!(!accounts.delivered.is_empty());
    assert!(
        common::names(&run.report, FaultyTask::Sink),
        "{:?}",
        run.report.failures
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_sink_cannot_hold_up_finish() {
    // Every fifth record's first call hangs; each is cut off at the 1 s
    // call timeout and retried. (A call that hangs on every attempt, once
    // nothing else gets through, cannot be told from an outage: it waits
    // until the stop, as the stop test shows.)
    let mut setup = Setup::new(30, End::Finish);
    setup.config.call_timeout = Duration::from_secs(1);
    setup.sink = |sequence, attempt| {
        if sequence.is_multiple_of(5) && attempt == 1 {
            Act::Hang
        } else {
            Act::Accept
        }
    };
    let run = run(setup, End::Finish).await;
    let accounts = &run.accounts;
    assert_eq!(accounts.delivered.len(), 30, "each hung call was retried");
    assert!(accounts.dead.is_empty());
    assert!(accounts.handed_back.is_empty());
    assert_eq!(run.report.metrics.timed_out_calls, 6);
    assert!(run.elapsed >= Duration::from_secs(1), "{:?}", run.elapsed);
    assert!(
        common::names(&run.report, FaultyTask::Sink),
        "{:?}",
        run.report.failures
    );
}

fn always_refuses_forever(_: u64, _: u32) -> Act {
    Act::Refuse(Some(Duration::MAX))
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_duration_max_cannot_hold_up_stop() {
    let how = End::StopAfter(Duration::from_secs(10));
    let mut setup = Setup::new(30, how);
    // The default limiter (adaptive), told to pause, honouring any hint.
    setup.config.rate_limit = RateLimit::Adaptive {
        window: Duration::from_secs(1),
    };
    setup.config.max_retry_after = Duration::MAX;
    setup.sink = always_refuses_forever;
    let run = run(setup, how).await;
    let accounts = &run.accounts;
    assert!(accounts.delivered.is_empty());
    assert!(accounts.dead.is_empty());
    assert_eq!(accounts.handed_back.len(), 8, "the whole queue came back");
    assert!(run.report.metrics.rate_limit_hits >= 1);
}

#[tokio::test(start_paused = true)]
async fn refusals_never_dead_letter_however_long_they_last() {
    // Refused "forever", far past `max_elapsed`: waiting on the API's
    // limit is nobody's failure, so nothing is dead-lettered (records
    // timed out at `max_elapsed` before); the stop hands everything back.
    let how = End::StopAfter(Duration::from_secs(600));
    let mut setup = Setup::new(30, how);
    setup.config.rate_limit = RateLimit::Adaptive {
        window: Duration::from_secs(1),
    };
    setup.config.max_retry_after = Duration::MAX;
    setup.config.retry.max_elapsed = Duration::from_secs(10);
    setup.sink = always_refuses_forever;
    let run = run(setup, how).await;
    let accounts = &run.accounts;
    assert!(accounts.delivered.is_empty());
    assert!(accounts.dead.is_empty(), "{:?}", accounts.dead);
    assert_eq!(accounts.handed_back.len(), 8, "the whole queue came back");
    assert!(run.report.failures.is_empty(), "refusing is not a fault");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_duration_max_is_cut_to_max_retry_after() {
    // One refusal asking to wait "forever", then the API accepts all: the
    // wait is cut to `max_retry_after`, and every record is delivered.
    let mut setup = Setup::new(30, End::Finish);
    setup.config.rate_limit = RateLimit::Adaptive {
        window: Duration::from_secs(1),
    };
    setup.config.max_retry_after = Duration::from_secs(5);
    setup.config.retry.max_elapsed = Duration::from_secs(60);
    setup.sink = |sequence, attempt| {
        if sequence == 1 && attempt == 1 {
            Act::Refuse(Some(Duration::MAX))
        } else {
            Act::Accept
        }
    };
    let run = run(setup, End::Finish).await;
    assert_eq!(run.accounts.delivered.len(), 30, "{:?}", run.accounts.dead);
    assert_eq!(run.report.metrics.rate_limit_hits, 1);
    assert!(
        run.elapsed >= Duration::from_secs(5),
        "the hint was honoured"
    );
    assert!(run.elapsed < Duration::from_secs(60), "{:?}", run.elapsed);
}

/// A quota of 5 whose window and margin are `Duration::MAX`: each success
/// holds its slot "forever", counted from its call or from its answer.
fn forever_window(records: u64, how: End) -> Setup {
    let mut setup = Setup::new(records, how);
    setup.config.rate_limit = RateLimit::Fixed(Quota {
        limit: NonZeroU32::new(5).unwrap(),
        window: Duration::MAX,
    });
    setup.config.rate_limit_margin = Duration::MAX;
    setup
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_window_and_margin_of_duration_max_cannot_hold_up_stop() {
    // Each success holds its slot "forever": five go through, then the
    // limiter holds every call until the stop.
    let how = End::StopAfter(Duration::from_secs(30));
    let run = run(forever_window(30, how), how).await;
    let accounts = &run.accounts;
    assert_eq!(
        accounts.delivered.len(),
        5,
        "exactly the quota went through"
    );
    assert!(accounts.dead.is_empty(), "the stop came before max_elapsed");
    assert_eq!(accounts.handed_back.len(), 8, "the whole queue came back");
    assert_eq!(run.report.metrics.client_rate_limit, Some(5));
}

#[tokio::test(start_paused = true)]
async fn a_limiter_that_admits_nothing_never_dead_letters() {
    // The limiter holds every call past `max_elapsed`: waiting on a limit
    // never dead-letters (records timed out at `max_elapsed` before).
    let how = End::StopAfter(Duration::from_secs(600));
    let mut setup = forever_window(30, how);
    setup.config.retry.max_elapsed = Duration::from_secs(10);
    let run = run(setup, how).await;
    let accounts = &run.accounts;
    assert_eq!(
        accounts.delivered.len(),
        5,
        "exactly the quota went through"
    );
    assert!(accounts.dead.is_empty(), "{:?}", accounts.dead);
    assert_eq!(accounts.handed_back.len(), 8, "the whole queue came back");
}
