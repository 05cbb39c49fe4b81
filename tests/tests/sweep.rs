//! The deterministic simulation sweep: at least 200 scenarios in virtual
//! time, each checked against every invariant. `SLUICE_SWEEP_SEED` and
//! `SLUICE_SWEEP_RUNS` choose the seeds (`cargo xtask sweep` sets them).

use sluice_tests::sweep::sweep;

#[test]
fn every_invariant_holds_in_every_scenario() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let first = env("SLUICE_SWEEP_SEED", 0);
    let runs = env("SLUICE_SWEEP_RUNS", 200);
    let started = std::time::Instant::now();
    let result = sweep(first, runs);
    let t = result.totals;
    println!(
        "sweep of seeds {first}..{}: {} scenarios in {:.1?}; offered {}, delivered {}, dead-lettered {}, handed back {}, refused calls {}, faults of user code caught {}",
        first + runs,
        result.runs,
        started.elapsed(),
        t.offered,
        t.delivered,
        t.dead_lettered,
        t.handed_back,
        t.rate_limit_hits,
        t.faults_caught,
    );
    for failure in &result.failures {
        eprintln!("{failure}\n");
    }
    assert_eq!(result.runs, runs);
    assert!(
        result.failures.is_empty(),
        "{} of {runs} scenarios failed; each is printed above with the command that replays it",
        result.failures.len()
    );
}
