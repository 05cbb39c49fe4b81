//! User code that panics (a source, the transform, a sink before or inside
//! its future, a dead-letter outlet) is caught and named in the report, and
//! loses no record and no acknowledgement, whether the run is stopped or
//! finished.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Act, End, Outlet, Setup, Tail, Verdict, inputs, run};
use sluice_processor::{DeadLetterKind, FaultyTask, HandBackReason, UNIDENTIFIED_STREAM};

/// The stop comes while records are still in flight: 30 records at 50 ms a
/// call, two calls at a time, take 750 ms.
const STOP: End = End::StopAfter(Duration::from_millis(425));

/// After a stop: something was left to hand back, and the calls in flight
/// at the stop were let finish (the drain deadline is far), not cut off.
fn stopped_mid_run(accounts: &common::Accounts) {
    assert!(!accounts.handed_back.is_empty(), "stopped mid-run");
    assert!(
        accounts
            .handed_back
            .values()
            .all(|&reason| reason != HandBackReason::CallCancelled),
        "{:?}",
        accounts.handed_back
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_loses_nothing_and_is_named() {
    for how in [End::Finish, STOP] {
        let mut setup = Setup::new(0, how);
        // Room for every record: both sources are drained, and source 0
        // panics, before the stop.
        setup.config.queue_capacity = 64;
        let healthy_tail = if let End::Finish = how {
            Tail::End
        } else {
            Tail::Pending
        };
        // Source 0 panics after its twenty records; source 1 is healthy.
        setup.sources = vec![
            (inputs(1, 20), Tail::Panic),
            (inputs(101, 120), healthy_tail),
        ];
        let run = run(setup, how).await;
        assert!(common::names(&run.report, FaultyTask::Source(0)));
        assert!(!common::names(&run.report, FaultyTask::Source(1)));
        let accounts = &run.accounts;
        match how {
            End::Finish => {
                let everything: Vec<u64> = (1..=20).chain(101..=120).collect();
                assert!(accounts.delivered.iter().eq(everything.iter()));
            }
            End::StopAfter(_) => {
                assert!(!accounts.delivered.is_empty());
                stopped_mid_run(accounts);
            }
        }
    }
}

fn every_seventh_panics(sequence: u64) -> Verdict {
    if sequence.is_multiple_of(7) {
        Verdict::Panic
    } else {
        Verdict::Accept
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_transform_dead_letters_its_records_and_is_named() {
    for how in [End::Finish, STOP] {
        let mut setup = Setup::new(30, how);
        setup.transform = every_seventh_panics;
        let run = run(setup, how).await;
        assert!(common::names(&run.report, FaultyTask::Transform));
        // Intake dead-letters at once: every record pulled that broke the
        // transform is dead, even when stopped.
        let accounts = &run.accounts;
        let panicked = run.offered.iter().filter(|&s| s % 7 == 0);
        assert!(accounts.dead.keys().eq(panicked), "{:?}", accounts.dead);
        assert!(!accounts.dead.is_empty());
        assert!(
            accounts
                .dead
                .values()
                .all(|&kind| kind == DeadLetterKind::TransformPanicked)
        );
        // The transform named no stream before it panicked: the letters
        // are counted under the unidentified stream, with their pull number.
        for letter in &run.report.dead_letters {
            assert_eq!(letter.id.stream.as_str(), UNIDENTIFIED_STREAM);
            assert_eq!(letter.id.partition, 0);
        }
        if let End::Finish = how {
            assert!(accounts.dead.keys().eq([7, 14, 21, 28].iter()));
            assert_eq!(accounts.delivered.len(), 26);
        } else {
            stopped_mid_run(accounts);
        }
    }
}

/// Record 10, 20 and 30 break the sink on every attempt; every fourth
/// record breaks it on its first attempt only. (Records after 30 keep the
/// API getting records while 30 spends its attempts: a record failing
/// alone, with nothing else getting through, cannot be told from an
/// outage and would wait until the stop.)
fn panicking_sink(panic: Act) -> fn(u64, u32) -> Act {
    match panic {
        Act::PanicBefore => |sequence, attempt| {
            if matches!(sequence, 10 | 20 | 30) || (sequence % 4 == 0 && attempt == 1) {
                Act::PanicBefore
            } else {
                Act::Accept
            }
        },
        _ => |sequence, attempt| {
            if matches!(sequence, 10 | 20 | 30) || (sequence % 4 == 0 && attempt == 1) {
                Act::PanicInside
            } else {
                Act::Accept
            }
        },
    }
}

async fn a_panicking_sink(panic: Act) {
    for how in [End::Finish, STOP] {
        let mut setup = Setup::new(60, how);
        // Room for all, and a worker per partition: while a record spends
        // its attempts, the other partitions must get through (with every
        // call in flight failing, nothing would tell it from an outage).
        setup.config.queue_capacity = 64;
        setup.config.max_in_flight = 3;
        setup.sink = panicking_sink(panic);
        let run = run(setup, how).await;
        let accounts = &run.accounts;
        assert!(common::names(&run.report, FaultyTask::Sink));
        assert!(run.report.metrics.failed_calls >= 1);
        assert!(
            accounts
                .delivered
                .iter()
                .all(|s| !matches!(s, 10 | 20 | 30)),
            "{:?}",
            accounts.delivered
        );
        if let End::Finish = how {
            assert!(accounts.dead.keys().eq([10, 20, 30].iter()));
            assert!(
                accounts
                    .dead
                    .values()
                    .all(|&kind| kind == DeadLetterKind::RetriesExhausted)
            );
            // Panicking once is a transient failure: retried and delivered.
            assert_eq!(accounts.delivered.len(), 57);
            assert!(accounts.delivered.contains(&4) && accounts.delivered.contains(&28));
        } else {
            stopped_mid_run(accounts);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_panics_before_returning_its_future_is_caught_and_named() {
    a_panicking_sink(Act::PanicBefore).await;
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_panics_inside_its_future_is_caught_and_named() {
    a_panicking_sink(Act::PanicInside).await;
}

fn every_third_rejected(sequence: u64) -> Verdict {
    if sequence.is_multiple_of(3) {
        Verdict::Reject
    } else {
        Verdict::Accept
    }
}

/// Of the rejected records (every third), the outlet keeps one in three and
/// panics on the others, before or inside its future.
fn panicking_outlet(sequence: u64) -> Outlet {
    match sequence % 9 {
        0 => Outlet::PanicInside,
        3 => Outlet::PanicBefore,
        _ => Outlet::Keep,
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_dead_letter_outlet_hands_back_what_it_did_not_keep() {
    for how in [End::Finish, STOP] {
        let mut setup = Setup::new(30, how);
        setup.transform = every_third_rejected;
        setup.outlet = Some(panicking_outlet);
        let run = run(setup, how).await;
        assert!(common::names(&run.report, FaultyTask::DeadLetterOutlet));
        let accounts = &run.accounts;
        // Intake settles a rejected record before it pulls the next, so
        // every one pulled was kept, or handed back if the outlet panicked.
        for &sequence in run.offered.iter().filter(|&s| s % 3 == 0) {
            if panicking_outlet(sequence) == Outlet::Keep {
                assert_eq!(accounts.dead.get(&sequence), Some(&DeadLetterKind::Invalid));
            } else {
                assert_eq!(
                    accounts.handed_back.get(&sequence),
                    Some(&HandBackReason::DeadLetterFailed),
                    "record {sequence}"
                );
            }
        }
        if let End::Finish = how {
            assert!(accounts.dead.keys().eq([6, 15, 24].iter()));
            let not_kept = [3, 9, 12, 18, 21, 27, 30];
            assert!(accounts.handed_back.keys().eq(not_kept.iter()));
            assert_eq!(accounts.delivered.len(), 20);
        } else {
            assert!(!accounts.dead.is_empty());
            stopped_mid_run(accounts);
        }
    }
}
