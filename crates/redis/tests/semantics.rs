//! Reserve and settle against the machine's Redis at 127.0.0.1:6379
//! (skipped when it is missing, failed under `CI`): the window admits its
//! limit, gives back what is not kept at once, keeps the rest a window
//! from the answer, and forgets what is never settled.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{TestWindow, quota};
use sluice_processor::{SharedLimit, SharedLimitError, WindowStart};
use sluice_redis::{RedisLimit, RedisLimitError};

const MS: Duration = Duration::from_millis(1);

/// The `retry_in` of a `Full`, or a panic naming what came instead.
fn full<T: std::fmt::Debug>(answer: Result<T, SharedLimitError>) -> Duration {
    match answer {
        Err(SharedLimitError::Full { retry_in }) => retry_in,
        other => panic!("expected Full, got {other:?}"),
    }
}

/// A window of this test's own, `name`, admitting `limit` per `window_ms`
/// with each slot held `margin` longer; `None` (skipped) without Redis.
/// Keep the `TestWindow`: dropping it deletes the test's key.
async fn own_window(
    name: &str,
    limit: u32,
    window_ms: u64,
    margin: Duration,
) -> Option<(TestWindow, RedisLimit)> {
    if !common::main_server() {
        return None;
    }
    let window = TestWindow::new(name);
    let limit = RedisLimit::connect(&window.url, quota(limit, window_ms), margin)
        .await
        .unwrap();
    Some((window, limit))
}

/// Once `retry_in` (and a little) has passed, the window has room for
/// `units` again; then the test's key is removed.
async fn room_after(limit: &RedisLimit, retry_in: Duration, units: usize) {
    tokio::time::sleep(retry_in + 30 * MS).await;
    limit.reserve(units).await.unwrap();
    limit.remove().await.unwrap();
}

#[tokio::test]
async fn the_limit_is_admitted_and_the_next_waits_until_the_earliest_slot_leaves() {
    let Some((window, limit)) = own_window("fill", 3, 300, Duration::ZERO).await else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(limit.reserve(1).await.unwrap().id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "reservation ids are distinct");
    assert_eq!(limit.held().await.unwrap(), 3);

    let retry_in = full(limit.reserve(1).await);
    assert!(
        retry_in <= 300 * MS && retry_in > 150 * MS,
        "retry_in {retry_in:?} is not about the 300 ms window"
    );
    assert_eq!(limit.held().await.unwrap(), 3, "a refusal holds nothing");

    // Never settled: the slots leave by themselves a window after they
    // were reserved.
    tokio::time::sleep(retry_in + 30 * MS).await;
    limit.reserve(1).await.unwrap();
    assert_eq!(limit.held().await.unwrap(), 1);
    limit.remove().await.unwrap();
    assert!(!window.exists());
}

#[tokio::test]
async fn settling_gives_back_at_once_what_is_not_kept() {
    // A long window: only a settlement can explain a slot coming back.
    let Some((_window, limit)) = own_window("give-back", 2, 10_000, Duration::ZERO).await else {
        return;
    };
    let both = limit.reserve(2).await.unwrap();
    assert_eq!(both.units, 2);
    full(limit.reserve(1).await);

    limit.settle(both, 1, WindowStart::Answer).await.unwrap();
    assert_eq!(limit.held().await.unwrap(), 1, "one kept, one given back");
    let one = limit.reserve(1).await.unwrap();
    full(limit.reserve(1).await);

    limit.settle(one, 0, WindowStart::Answer).await.unwrap();
    assert_eq!(limit.held().await.unwrap(), 1);
    limit.reserve(1).await.unwrap();
    full(limit.reserve(1).await);
    limit.remove().await.unwrap();
}

#[tokio::test]
async fn counted_from_the_reservation_a_kept_slot_keeps_its_expiry() {
    let Some((_window, limit)) = own_window("kept-early", 1, 300, Duration::ZERO).await else {
        return;
    };
    let reservation = limit.reserve(1).await.unwrap();
    tokio::time::sleep(200 * MS).await;
    limit
        .settle(reservation, 1, WindowStart::Reservation)
        .await
        .unwrap();

    // It leaves 300 ms after the reservation, about 100 ms from now.
    let retry_in = full(limit.reserve(1).await);
    assert!(
        retry_in <= 110 * MS,
        "retry_in {retry_in:?}: not counted from the reservation"
    );
    room_after(&limit, retry_in, 1).await;
}

#[tokio::test]
async fn counted_from_the_reservation_a_quick_answer_ends_the_margin_early() {
    // A margin longer than the call: a window from the answer (350 ms
    // after the reservation) ends before the window and margin (500 ms).
    let Some((_window, limit)) = own_window("kept-quick", 1, 300, 200 * MS).await else {
        return;
    };
    let reservation = limit.reserve(1).await.unwrap();
    let retry_in = full(limit.reserve(1).await);
    assert!(retry_in > 400 * MS, "reserved for {retry_in:?}, not 500 ms");
    tokio::time::sleep(50 * MS).await;
    limit
        .settle(reservation, 1, WindowStart::Reservation)
        .await
        .unwrap();

    let retry_in = full(limit.reserve(1).await);
    assert!(
        retry_in > 200 * MS && retry_in <= 300 * MS,
        "retry_in {retry_in:?}: not a window from the answer"
    );
    assert_eq!(limit.held().await.unwrap(), 1);
    room_after(&limit, retry_in, 1).await;
}

#[tokio::test]
async fn a_kept_slot_stays_a_window_from_the_answer_not_from_the_reservation() {
    let Some((_window, limit)) = own_window("kept", 1, 300, Duration::ZERO).await else {
        return;
    };
    let reservation = limit.reserve(1).await.unwrap();
    tokio::time::sleep(200 * MS).await;
    limit
        .settle(reservation, 1, WindowStart::Answer)
        .await
        .unwrap();

    // Counted from the reservation it would leave in about 100 ms.
    let retry_in = full(limit.reserve(1).await);
    assert!(
        retry_in > 200 * MS && retry_in <= 300 * MS,
        "retry_in {retry_in:?}: not counted from the answer"
    );
    tokio::time::sleep(150 * MS).await;
    full(limit.reserve(1).await);
    let retry_in = full(limit.reserve(1).await);
    room_after(&limit, retry_in, 1).await;
}

#[tokio::test]
async fn the_margin_lengthens_every_slot_and_an_idle_window_deletes_its_key() {
    let Some((window, limit)) = own_window("margin", 2, 200, 100 * MS).await else {
        return;
    };
    limit.reserve(2).await.unwrap();
    let retry_in = full(limit.reserve(1).await);
    assert!(
        retry_in > 200 * MS && retry_in <= 300 * MS,
        "retry_in {retry_in:?} is not window + margin"
    );
    assert!(window.exists());
    // The key expires with its latest slot (+ 1 ms), by itself.
    tokio::time::sleep(retry_in + 50 * MS).await;
    assert!(!window.exists(), "an idle window left its key behind");
    assert_eq!(limit.held().await.unwrap(), 0);
    limit.reserve(2).await.unwrap();
    limit.remove().await.unwrap();
}

#[tokio::test]
async fn a_call_larger_than_the_limit_goes_alone_into_an_empty_window() {
    let Some((_window, limit)) = own_window("large", 3, 300, Duration::ZERO).await else {
        return;
    };
    let large = limit.reserve(5).await.unwrap();
    assert_eq!(limit.held().await.unwrap(), 5);
    full(limit.reserve(1).await);
    limit.settle(large, 0, WindowStart::Answer).await.unwrap();

    limit.reserve(1).await.unwrap();
    let retry_in = full(limit.reserve(5).await);
    assert!(retry_in > 150 * MS && retry_in <= 300 * MS, "{retry_in:?}");
    room_after(&limit, retry_in, 5).await;
}

#[tokio::test]
async fn a_batch_waits_until_enough_slots_leave_not_just_the_first() {
    let Some((_window, limit)) = own_window("batch", 3, 600, Duration::ZERO).await else {
        return;
    };
    limit.reserve(1).await.unwrap();
    tokio::time::sleep(250 * MS).await;
    limit.reserve(2).await.unwrap();
    // One unit fits once the first slot leaves (about 350 ms from now);
    // two only once one of the later ones leaves too (about 600 ms).
    let one = full(limit.reserve(1).await);
    let two = full(limit.reserve(2).await);
    assert!(one <= 350 * MS, "{one:?}");
    assert!(two > 500 * MS && two <= 600 * MS, "{two:?}");
    assert!(two >= one + 150 * MS, "one {one:?}, two {two:?}");
    limit.remove().await.unwrap();
}

#[tokio::test]
async fn windows_of_one_name_are_shared_and_of_another_name_apart() {
    if !common::main_server() {
        return;
    }
    let shared = TestWindow::new("shared");
    let apart = TestWindow::new("apart");
    let first = RedisLimit::connect(&shared.url, quota(2, 10_000), Duration::ZERO)
        .await
        .unwrap();
    let second = RedisLimit::connect(&shared.url, quota(2, 10_000), Duration::ZERO)
        .await
        .unwrap();
    let other = RedisLimit::connect(&apart.url, quota(2, 10_000), Duration::ZERO)
        .await
        .unwrap();
    let reservation = first.reserve(1).await.unwrap();
    second.reserve(1).await.unwrap();
    full(first.reserve(1).await);
    full(second.reserve(1).await);
    other.reserve(2).await.unwrap();
    // One process gives back what another can then take.
    first
        .settle(reservation, 0, WindowStart::Answer)
        .await
        .unwrap();
    second.reserve(1).await.unwrap();
    // Nothing reserved costs nothing.
    let nothing = other.reserve(0).await.unwrap();
    other.settle(nothing, 0, WindowStart::Answer).await.unwrap();
    first.remove().await.unwrap();
    other.remove().await.unwrap();
}

#[tokio::test]
async fn a_key_holding_something_else_is_refused_at_connect() {
    if !common::main_server() {
        return;
    }
    let window = TestWindow::new("taken");
    redis::cmd("SET")
        .arg(&window.key)
        .arg("not a window")
        .arg("PX")
        .arg(60_000)
        .query::<()>(&mut common::raw(common::ADDRESS))
        .unwrap();
    let refused = RedisLimit::connect(&window.url, quota(2, 1_000), Duration::ZERO).await;
    match refused {
        Err(RedisLimitError::KeyInUse { key, kind }) => {
            assert_eq!(key, window.key);
            assert_eq!(kind, "string");
        }
        other => panic!("expected KeyInUse, got {other:?}"),
    }
}

#[tokio::test]
async fn a_bad_url_or_window_is_refused_before_connecting() {
    let url = "redis://127.0.0.1:6379/";
    let refused = RedisLimit::connect(url, quota(2, 1_000), Duration::ZERO).await;
    assert!(
        matches!(refused, Err(RedisLimitError::Url(_))),
        "{refused:?}"
    );
    let url = "redis://127.0.0.1:6379/name";
    let refused = RedisLimit::connect(url, quota(2, 0), Duration::ZERO).await;
    assert!(
        matches!(refused, Err(RedisLimitError::Window(_))),
        "{refused:?}"
    );
    let refused = RedisLimit::connect(url, quota(2, 1_000), Duration::MAX).await;
    assert!(
        matches!(refused, Err(RedisLimitError::Window(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn processes_sharing_a_window_must_share_its_quota() {
    let Some((window, first)) = own_window("quota", 100, 1_000, Duration::ZERO).await else {
        return;
    };
    // The same quota joins; another is refused, naming both.
    let same = RedisLimit::connect(&window.url, quota(100, 1_000), Duration::ZERO).await;
    assert!(same.is_ok());
    let other = RedisLimit::connect(&window.url, quota(50, 1_000), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(other, RedisLimitError::OtherQuota { .. }),
        "{other}"
    );
    let message = other.to_string();
    assert!(
        message.contains("100/s") && message.contains("50/s"),
        "{message}"
    );
    // A reservation keeps the claim; once the window is gone with its
    // quota, another quota may take it.
    first.reserve(1).await.unwrap();
    first.remove().await.unwrap();
    let taken = RedisLimit::connect(&window.url, quota(50, 1_000), Duration::ZERO)
        .await
        .unwrap();
    // The first process, still running, meets the new quota and waits.
    let answer = first.reserve(1).await;
    assert!(
        matches!(&answer, Err(SharedLimitError::Unavailable(why)) if why.contains("another quota")),
        "{answer:?}"
    );
    taken.remove().await.unwrap();
}
