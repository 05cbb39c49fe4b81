//! Many clients hammering one window on the machine's Redis (skipped when
//! it is missing, failed under `CI`): the server, sampled atomically and
//! often, never holds more slots than the limit, and the limit is reached.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{TestWindow, quota};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use sluice_processor::{SharedLimit, SharedLimitError, WindowStart};
use sluice_redis::RedisLimit;

const LIMIT: u32 = 5;
const WINDOW_MS: u64 = 300;
const CLIENTS: usize = 3;
const TASKS: usize = 20;
const RUN: Duration = Duration::from_millis(1_500);

/// The slots in the window at one instant of the server, with that
/// instant: the judge, run atomically between the clients' scripts.
const SNAPSHOT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_never_hold_more_than_the_limit_together() {
    if !common::main_server() {
        return;
    }
    let window = TestWindow::new("race");
    let mut limits = Vec::new();
    for _ in 0..CLIENTS {
        let limit = RedisLimit::connect(&window.url, quota(LIMIT, WINDOW_MS), Duration::ZERO)
            .await
            .unwrap();
        limits.push(Arc::new(limit));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let admitted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let limit = Arc::clone(&limits[task % CLIENTS]);
        let (stop, admitted, refused) = (stop.clone(), admitted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(task as u64);
            while !stop.load(Ordering::Relaxed) {
                let units = if rng.random_bool(0.2) { 2 } else { 1 };
                match limit.reserve(units).await {
                    Ok(reservation) => {
                        admitted.fetch_add(units as u64, Ordering::Relaxed);
                        let call = Duration::from_millis(rng.random_range(0..20));
                        tokio::time::sleep(call).await;
                        let kept = rng.random_range(0..=units);
                        limit
                            .settle(reservation, kept, WindowStart::Answer)
                            .await
                            .unwrap();
                    }
                    Err(SharedLimitError::Full { retry_in }) => {
                        assert!(retry_in <= Duration::from_millis(WINDOW_MS));
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(rng.random_range(0..3))).await;
                    }
                    Err(error) => panic!("{error}"),
                }
            }
        }));
    }

    // The judge: every ~3 ms, how many slots the server holds.
    let snapshot = redis::Script::new(SNAPSHOT);
    let client = redis::Client::open(format!("redis://{}/", common::ADDRESS)).unwrap();
    let mut judge = client.get_multiplexed_async_connection().await.unwrap();
    let mut samples = 0;
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + RUN;
    while tokio::time::Instant::now() < deadline {
        let held: u64 = snapshot
            .key(&window.key)
            .invoke_async(&mut judge)
            .await
            .unwrap();
        assert!(
            held <= u64::from(LIMIT),
            "the server held {held} slots of a limit of {LIMIT}"
        );
        most = most.max(held);
        samples += 1;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("a task hung")
            .unwrap();
    }
    let admitted = admitted.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    eprintln!("{samples} samples, at most {most} held; {admitted} admitted, {refused} refused");
    assert_eq!(most, u64::from(LIMIT), "the window was never full");
    assert!(refused > 0 && samples > 100);
    // Slots given back are taken again: more than a window's worth of
    // limits over the run.
    let windows = RUN.as_millis() as u64 / WINDOW_MS;
    assert!(admitted > u64::from(LIMIT) * windows, "{admitted} admitted");
    limits[0].remove().await.unwrap();
}
