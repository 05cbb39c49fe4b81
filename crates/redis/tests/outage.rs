//! Redis servers that the tests start themselves (Debian's
//! /usr/bin/redis-server, a free port, no persistence) and then kill,
//! freeze and restart: the limit answers `Unavailable` within about a
//! second, never hangs, and works again by itself once the server is back.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{RedisServer, quota};
use sluice_processor::{Reservation, SharedLimit, SharedLimitError, WindowStart};
use sluice_redis::{RedisLimit, RedisLimitError};

/// Far more than an answer may take: `COMMAND_TIMEOUT` is 1 s.
const BOUND: Duration = Duration::from_secs(5);
/// What an unavailable answer may take, with room for a slow machine.
const QUICK: Duration = Duration::from_millis(2_500);

/// Reserves one unit, bounded by `BOUND`; returns how long it took.
async fn reserve(limit: &RedisLimit) -> (Result<Reservation, SharedLimitError>, Duration) {
    let start = Instant::now();
    let answer = tokio::time::timeout(BOUND, limit.reserve(1))
        .await
        .expect("reserve hung");
    (answer, start.elapsed())
}

/// Asserts that the limit answers `Unavailable`, quickly.
async fn unavailable(limit: &RedisLimit) {
    let (answer, took) = reserve(limit).await;
    match answer {
        Err(SharedLimitError::Unavailable(why)) => {
            eprintln!("unavailable after {took:?}: {why}");
            assert!(took <= QUICK, "Unavailable took {took:?}: {why}");
        }
        other => panic!("expected Unavailable, got {other:?} after {took:?}"),
    }
}

/// Asks until a reservation succeeds, for at most 10 s.
async fn reserves_again(limit: &RedisLimit) -> Reservation {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (answer, _) = reserve(limit).await;
        match answer {
            Ok(reservation) => return reservation,
            Err(error) if Instant::now() > deadline => {
                panic!("the limit never worked again: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_unavailable_at_once_and_a_restarted_one_is_used_again() {
    if !common::server_binary() {
        return;
    }
    let mut server = RedisServer::start();
    let url = format!("redis://{}/outage", server.address());
    let limit = RedisLimit::connect(&url, quota(2, 10_000), Duration::ZERO)
        .await
        .unwrap();
    let before = limit.reserve(1).await.unwrap();

    server.kill();
    for _ in 0..3 {
        unavailable(&limit).await;
    }
    let settled = tokio::time::timeout(BOUND, limit.settle(before, 1, WindowStart::Answer))
        .await
        .expect("settle hung");
    assert!(
        matches!(settled, Err(SharedLimitError::Unavailable(_))),
        "{settled:?}"
    );

    // Back on the same port, without persistence: an empty window, used
    // by the same RedisLimit, scripts loaded again.
    server.restart();
    let reservation = reserves_again(&limit).await;
    limit.reserve(1).await.unwrap();
    assert!(matches!(
        limit.reserve(1).await,
        Err(SharedLimitError::Full { .. })
    ));
    limit
        .settle(reservation, 0, WindowStart::Answer)
        .await
        .unwrap();
    assert_eq!(limit.held().await.unwrap(), 1);
    limit.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_unavailable_after_the_command_timeout_not_a_hang() {
    if !common::server_binary() {
        return;
    }
    let server = RedisServer::start();
    let url = format!("redis://{}/frozen", server.address());
    let limit = RedisLimit::connect(&url, quota(100, 10_000), Duration::ZERO)
        .await
        .unwrap();
    limit.reserve(1).await.unwrap();

    server.signal("STOP");
    for _ in 0..2 {
        unavailable(&limit).await;
    }
    server.signal("CONT");
    reserves_again(&limit).await;
    assert!(limit.held().await.unwrap() >= 2);
    limit.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_server_that_is_not_there_fails_quickly() {
    let port = common::free_port();
    let url = format!("redis://127.0.0.1:{port}/nobody");
    let start = Instant::now();
    let refused = tokio::time::timeout(
        BOUND,
        RedisLimit::connect(&url, quota(2, 1_000), Duration::ZERO),
    )
    .await
    .expect("connect hung");
    let took = start.elapsed();
    match refused {
        Err(RedisLimitError::Connect { address, reason }) => {
            assert_eq!(address, format!("127.0.0.1:{port}"));
            assert!(!reason.is_empty());
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(took <= QUICK, "connect took {took:?}");
}
