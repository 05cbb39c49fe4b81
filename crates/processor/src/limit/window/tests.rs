use std::sync::Arc;

use super::*;

const WINDOW: Duration = Duration::from_secs(1);

fn spawn_releaser(limiter: &Arc<RateLimiter>) -> tokio::task::JoinHandle<()> {
    let limiter = Arc::clone(limiter);
    tokio::spawn(async move { limiter.run_releaser().await })
}

#[tokio::test(start_paused = true)]
async fn successes_hold_their_slot_for_one_window() {
    let limiter = Arc::new(RateLimiter::known(3, WINDOW, Duration::ZERO));
    let releaser = spawn_releaser(&limiter);
    let start = Instant::now();
    for _ in 0..3 {
        limiter.acquire(1).await.succeeded(1);
    }
    // The fourth call waits until the first success leaves the window.
    limiter.acquire(1).await.succeeded(1);
    assert_eq!(start.elapsed(), WINDOW);
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn failures_and_cancellations_give_the_slot_back_at_once() {
    let limiter = Arc::new(RateLimiter::known(1, WINDOW, Duration::ZERO));
    let start = Instant::now();
    for _ in 0..10 {
        drop(limiter.acquire(1).await);
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn an_adaptive_limiter_learns_the_limit_from_a_refusal() {
    let limiter = Arc::new(RateLimiter::adaptive(WINDOW, Duration::ZERO));
    let releaser = spawn_releaser(&limiter);
    assert_eq!(limiter.current_limit(), None);
    for _ in 0..5 {
        limiter.acquire(1).await.succeeded(1);
    }
    limiter.acquire(1).await.refused(None);
    assert_eq!(limiter.current_limit(), Some(5));
    // The sixth call in this window has to wait for the first to expire.
    let start = Instant::now();
    limiter.acquire(1).await.succeeded(1);
    assert_eq!(start.elapsed(), WINDOW);
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_pauses_admission() {
    let limiter = Arc::new(RateLimiter::known(10, WINDOW, Duration::ZERO));
    limiter
        .acquire(1)
        .await
        .refused(Some(Duration::from_millis(300)));
    let start = Instant::now();
    drop(limiter.acquire(1).await);
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_refusal_keeps_a_shared_quota_and_only_pauses() {
    let limiter = RateLimiter::known(4, WINDOW, Duration::ZERO).sharing_the_quota();
    limiter.acquire(1).await.succeeded(1);
    limiter
        .acquire(1)
        .await
        .refused(Some(Duration::from_millis(200)));
    assert_eq!(limiter.current_limit(), Some(4), "others hold the rest");
    let start = Instant::now();
    drop(limiter.acquire(1).await);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn probes_raise_a_lowered_limit_back_towards_the_ceiling() {
    let limiter = Arc::new(RateLimiter::known(4, WINDOW, Duration::ZERO));
    let releaser = spawn_releaser(&limiter);
    limiter.acquire(1).await.succeeded(1);
    limiter.acquire(1).await.succeeded(1);
    limiter.acquire(1).await.refused(None);
    assert_eq!(limiter.current_limit(), Some(2));
    // Saturate for longer than the probe interval: the limit climbs back
    // to the known ceiling and not beyond.
    for _ in 0..40 {
        limiter.acquire(1).await.succeeded(1);
    }
    assert_eq!(limiter.current_limit(), Some(4));
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn a_minute_window_holds_its_quota_for_a_minute_and_counts_records() {
    let minute = Duration::from_secs(60);
    let limiter = Arc::new(RateLimiter::known(60, minute, Duration::ZERO));
    let releaser = spawn_releaser(&limiter);
    let start = Instant::now();
    // Three calls of 20 records fill the window...
    for _ in 0..3 {
        limiter.acquire(20).await.succeeded(20);
    }
    // ...a call whose records were refused in part keeps only the
    // delivered ones: here none are kept, so the window stays full.
    let next = limiter.acquire(20).await;
    assert_eq!(start.elapsed(), minute);
    next.succeeded(5);
    // 15 of those 20 slots came back at once.
    limiter.acquire(15).await.succeeded(15);
    assert_eq!(start.elapsed(), minute);
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn counted_from_answers_a_window_starts_when_the_call_ends() {
    let limiter = Arc::new(RateLimiter::known(1, WINDOW, Duration::ZERO).counting_from_answers());
    let releaser = spawn_releaser(&limiter);
    let start = Instant::now();
    let permit = limiter.acquire(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the call's latency
    permit.succeeded(1);
    limiter.acquire(1).await.succeeded(1);
    assert_eq!(start.elapsed(), Duration::from_millis(1_300));
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn the_margin_covers_windows_counted_from_calls_only() {
    let margin = Duration::from_millis(100);
    let from_calls = Arc::new(RateLimiter::known(1, WINDOW, margin));
    let from_answers = Arc::new(RateLimiter::known(1, WINDOW, margin).counting_from_answers());
    let releasers = [spawn_releaser(&from_calls), spawn_releaser(&from_answers)];
    for (limiter, expected) in [(&from_calls, 1_100), (&from_answers, 1_300)] {
        let start = Instant::now();
        let permit = limiter.acquire(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        permit.succeeded(1);
        limiter.acquire(1).await.succeeded(1);
        assert_eq!(start.elapsed(), Duration::from_millis(expected));
    }
    for releaser in releasers {
        releaser.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn counted_from_calls_a_quick_answer_ends_the_margin_early() {
    let margin = Duration::from_millis(100);
    let limiter = Arc::new(RateLimiter::known(1, WINDOW, margin));
    let releaser = spawn_releaser(&limiter);
    let start = Instant::now();
    let permit = limiter.acquire(1).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    permit.succeeded(1);
    limiter.acquire(1).await.succeeded(1);
    // A window from the answer (1 030 ms), not the window and margin
    // from the call (1 100 ms).
    assert_eq!(start.elapsed(), Duration::from_millis(1_030));
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn a_first_window_and_everything_after_a_refusal_count_from_answers() {
    let limiter = Arc::new(
        RateLimiter::known(1, WINDOW, Duration::ZERO).counting_from_answers_after_a_refusal(),
    );
    let releaser = spawn_releaser(&limiter);
    let start = Instant::now();
    let mut admitted = Vec::new();
    // Each call takes 300 ms; the third is refused.
    for refused in [false, false, true, false, false] {
        let permit = limiter.acquire(1).await;
        admitted.push(start.elapsed().as_millis());
        tokio::time::sleep(Duration::from_millis(300)).await;
        if refused {
            permit.refused(None);
        } else {
            permit.succeeded(1);
        }
    }
    // The first success (the warm-up window of a quota of 1) counts
    // from its answer (300 ms), the second from its call (1 300 ms),
    // the refused one gives its slot back, then from answers (2 900 ms).
    assert_eq!(admitted, [0, 1_300, 2_300, 2_600, 3_900]);
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn the_largest_hints_and_margins_saturate_instead_of_panicking() {
    let limiter = Arc::new(RateLimiter::known(1, Duration::MAX, Duration::MAX));
    let releaser = spawn_releaser(&limiter);
    limiter.acquire(1).await.succeeded(1);
    let waiting = tokio::time::timeout(Duration::from_secs(3_600), limiter.acquire(1)).await;
    assert!(waiting.is_err(), "a success holds its slot 'forever'");
    let limiter = RateLimiter::known(5, WINDOW, Duration::ZERO);
    limiter.acquire(1).await.refused(Some(Duration::MAX));
    let paused = tokio::time::timeout(Duration::from_secs(3_600), limiter.acquire(1)).await;
    assert!(paused.is_err(), "admission paused far into the future");
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn a_success_leaving_sooner_than_those_before_it_is_released_on_time() {
    let margin = Duration::from_millis(100);
    let limiter = Arc::new(RateLimiter::known(2, WINDOW, margin));
    let releaser = spawn_releaser(&limiter);
    let start = Instant::now();
    let first = limiter.acquire(1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = limiter.acquire(1).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    // Leaves at 1 150 ms: its call (50 ms) plus the window and margin.
    second.succeeded(1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Answered later but called sooner: leaves at 1 100 ms, first.
    first.succeeded(1);
    limiter.acquire(1).await.succeeded(1);
    assert_eq!(start.elapsed(), Duration::from_millis(1_100));
    releaser.abort();
}

#[tokio::test(start_paused = true)]
async fn a_refusal_counts_only_the_calls_still_in_flight() {
    let limiter = RateLimiter::known(10, WINDOW, Duration::ZERO);
    let failed = limiter.acquire(1).await;
    let refused = limiter.acquire(1).await;
    let refused_again = limiter.acquire(1).await;
    let in_flight = limiter.acquire(1).await;
    drop(failed);
    // The window holds the two other calls still in flight.
    refused.refused(None);
    assert_eq!(limiter.current_limit(), Some(2));
    // Now only the last one: the refused calls are no longer in flight.
    refused_again.refused(None);
    assert_eq!(limiter.current_limit(), Some(1));
    drop(in_flight);
}

#[tokio::test(start_paused = true)]
async fn a_ramped_first_window_spreads_its_successes_and_later_windows_do_not() {
    let limiter =
        Arc::new(RateLimiter::known(50, WINDOW, Duration::ZERO).ramping_the_first_window());
    let releaser = spawn_releaser(&limiter);
    let start = Instant::now();
    let ms = |n| Duration::from_millis(n);
    let mut admitted = Vec::new();
    for _ in 0..3 {
        let permit = limiter.acquire(1).await;
        admitted.push(start.elapsed());
        permit.succeeded(1);
    }
    // One every 20 ms (the window over the limit), not three at once.
    assert_eq!(admitted, [ms(0), ms(20), ms(40)]);
    // A call that delivered nothing gives its place in the ramp back.
    limiter.acquire(1).await.succeeded(0);
    assert_eq!(start.elapsed(), ms(60));
    limiter.acquire(1).await.succeeded(1);
    assert_eq!(start.elapsed(), ms(60));
    // And the ramp goes on from there.
    limiter.acquire(1).await.succeeded(1);
    assert_eq!(start.elapsed(), ms(80));
    // After the first window, calls go as soon as slots are free.
    tokio::time::sleep_until(start + WINDOW * 3).await;
    for _ in 0..3 {
        limiter.acquire(1).await.succeeded(1);
    }
    assert_eq!(start.elapsed(), WINDOW * 3);
    releaser.abort();
}
