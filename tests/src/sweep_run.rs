//! One sweep scenario's run and the invariants checked after it.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use sluice_models::{ProcessedRecord, RecordKey};
use sluice_processor::{
    DeadLetterReason, DeliveryOrder, EpochClock, FaultyTask, HandBackReason, ProcessorHandle,
    Report, StreamName, StreamProcessor,
};
use sluice_sim::{Audit, Ledger, SimulatedApi, StreamSimulator};

use crate::faults::{AckLog, FaultyOutlet, FaultyProfile, FaultySink, FaultySource};
use crate::sweep::{Outcome, Scenario};

/// How much longer than its drain deadline a stop may take: the abort
/// grace and scheduling.
const STOP_MARGIN: Duration = Duration::from_secs(1);

/// A scenario's processor, running.
pub(crate) struct Run {
    api: Arc<SimulatedApi>,
    simulator: StreamSimulator,
    handle: ProcessorHandle<ProcessedRecord, FaultySink, FaultyProfile>,
    log: Arc<AckLog>,
    outlet: Option<Arc<FaultyOutlet>>,
    panicked: Arc<std::sync::Mutex<Vec<RecordKey>>>,
}

/// What a run left behind, for the checks.
pub(crate) struct Observed {
    report: Report<ProcessedRecord>,
    ledger: Ledger,
    offered: u64,
    audit: Audit,
    acks: std::collections::BTreeMap<RecordKey, Vec<&'static str>>,
    delivered_keys: HashSet<RecordKey>,
    letters: usize,
    panicked: Vec<RecordKey>,
    letters_of_panics: usize,
    worst_backlog: u64,
    stop_took: Duration,
}

impl Run {
    pub(crate) fn start(scenario: &Scenario) -> Run {
        let clock = EpochClock::starting_at(sluice_sim::simulation::VIRTUAL_EPOCH);
        let api =
            Arc::new(SimulatedApi::new(scenario.api.clone()).unwrap_or_else(|e| panic!("{e}")));
        let simulator =
            StreamSimulator::new(scenario.stream.clone(), clock).unwrap_or_else(|e| panic!("{e}"));
        let log = Arc::new(AckLog::default());
        let sources: Vec<_> = simulator
            .sources()
            .into_iter()
            .map(|source| FaultySource::new(source, Arc::clone(&log), &scenario.faults))
            .collect();
        let names = scenario
            .stream_names
            .map(|name| StreamName::new(name).unwrap_or_else(|e| panic!("{e}")));
        let profile = FaultyProfile::new(names, scenario.seed, &scenario.faults);
        let panicked = Arc::clone(&profile.panicked);
        let sink = FaultySink::new(Arc::clone(&api), scenario.faults, scenario.seed);
        let processor = StreamProcessor::new(profile, sink, scenario.processor.clone())
            .unwrap_or_else(|e| panic!("{e}"))
            .with_clock(clock);
        let outlet = scenario
            .outlet
            .then(|| Arc::new(FaultyOutlet::new(scenario.faults, scenario.seed)));
        let processor = match &outlet {
            Some(outlet) => processor.with_dead_letters(Arc::clone(outlet)),
            None => processor,
        };
        Run {
            api,
            simulator,
            handle: processor.start(sources),
            log,
            outlet,
            panicked,
        }
    }

    pub(crate) async fn finish(self, scenario: &Scenario) -> Observed {
        let mut worst_backlog = 0;
        let deadline = tokio::time::Instant::now() + scenario.stop_after;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            worst_backlog = worst_backlog.max(self.handle.metrics().backlog);
        }
        let stopping = tokio::time::Instant::now();
        let report = self.handle.stop().await;
        let stop_took = stopping.elapsed();
        let ledger = self.api.ledger();
        let acks = self.log.resolutions();
        let keys_with = |what: &str| -> Vec<RecordKey> {
            acks.iter()
                .filter(|(_, seen)| seen.first() == Some(&what))
                .map(|(key, _)| *key)
                .collect()
        };
        let offered = self.simulator.offered();
        let audit = Audit::of(
            offered,
            &ledger,
            &keys_with("dead_lettered"),
            &keys_with("not_processed"),
        );
        let delivered_keys = keys_with("delivered").into_iter().collect();
        let (letters, letters_of_panics) = match &self.outlet {
            Some(outlet) => {
                let kept = outlet.kept.lock().unwrap_or_else(PoisonError::into_inner);
                let panics = kept
                    .iter()
                    .filter(|(_, reason)| matches!(reason, DeadLetterReason::TransformPanicked(_)))
                    .count();
                (kept.len(), panics)
            }
            None => {
                let panics = report
                    .dead_letters
                    .iter()
                    .filter(|l| matches!(l.reason, DeadLetterReason::TransformPanicked(_)))
                    .count();
                (report.dead_letters.len(), panics)
            }
        };
        let panicked = self
            .panicked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Observed {
            offered: offered.total(),
            report,
            ledger,
            audit,
            acks,
            delivered_keys,
            letters,
            panicked,
            letters_of_panics,
            worst_backlog,
            stop_took,
        }
    }
}

/// Every invariant, checked after a run.
pub(crate) fn check(scenario: &Scenario, seen: &Observed) -> Result<Outcome, Vec<String>> {
    let mut violations = Vec::new();
    let mut check = |holds: bool, what: String| {
        if !holds {
            violations.push(what);
        }
    };
    let report = &seen.report;
    let ledger = &seen.ledger;
    let m = &report.metrics;
    let faults = &scenario.faults;

    for failure in &report.failures {
        let expected = match failure.task {
            FaultyTask::Source(_) => faults.source_fails_after.is_some() && !faults.source_hangs,
            FaultyTask::Transform => faults.transform_panics > 0.0,
            // A call slower than the call timeout is a hang too.
            FaultyTask::Sink => {
                !faults.sink_is_bare() || failure.message.starts_with("no answer within")
            }
            FaultyTask::DeadLetterOutlet => faults.outlet_panics + faults.outlet_hangs > 0.0,
            FaultyTask::Acknowledgement
            | FaultyTask::SharedLimit
            | FaultyTask::Stuck
            | FaultyTask::Processor => false,
        };
        check(expected, format!("unexpected failure: {failure}"));
    }
    check(
        report.abandoned == 0,
        format!("{} record(s) abandoned", report.abandoned),
    );
    check(
        report.is_conserved(),
        format!("not conserved: {}", report.conservation()),
    );
    let bound = scenario.processor.drain_deadline + STOP_MARGIN;
    check(
        seen.stop_took <= bound,
        format!("stop took {:?}, more than {bound:?}", seen.stop_took),
    );
    check(
        seen.offered == m.ingested,
        format!("offered {} but ingested {}", seen.offered, m.ingested),
    );
    check(
        m.delivered == ledger.counts.records_delivered,
        format!(
            "delivered {} but the API accepted {}",
            m.delivered, ledger.counts.records_delivered
        ),
    );
    if faults.sink_is_bare() {
        check(
            m.attempts == ledger.counts.calls,
            format!(
                "{} attempts but the API saw {} calls",
                m.attempts, ledger.counts.calls
            ),
        );
        check(
            m.failed_calls == ledger.counts.failures + m.timed_out_calls,
            format!(
                "{} failed calls but the API failed {} and {} timed out",
                m.failed_calls, ledger.counts.failures, m.timed_out_calls
            ),
        );
        check(
            m.rate_limit_hits == ledger.counts.rate_limit_hits,
            format!(
                "{} refusals but the API refused {}",
                m.rate_limit_hits, ledger.counts.rate_limit_hits
            ),
        );
        if scenario.processor.batch.max_records == 1 {
            let cancelled = report
                .handed_back
                .iter()
                .filter(|r| r.reason == HandBackReason::CallCancelled)
                .count() as u64;
            check(
                cancelled + m.timed_out_calls == ledger.counts.cancelled,
                format!(
                    "{cancelled} calls cancelled at the stop and {} timed out, but the API saw {} abandoned",
                    m.timed_out_calls, ledger.counts.cancelled
                ),
            );
        }
    }

    // Every acknowledgement resolved exactly once, as the report counts.
    let more_than_once = seen.acks.values().filter(|seen| seen.len() != 1).count();
    check(
        more_than_once == 0,
        format!("{more_than_once} record(s) resolved more than once"),
    );
    let resolved = |what: &str| {
        seen.acks
            .values()
            .filter(|s| s.first() == Some(&what))
            .count() as u64
    };
    check(
        seen.acks.len() as u64 == m.ingested,
        format!(
            "{} records resolved but {} ingested",
            seen.acks.len(),
            m.ingested
        ),
    );
    for (what, counted) in [
        ("delivered", m.delivered),
        ("dead_lettered", m.dead_lettered),
        ("not_processed", m.handed_back),
    ] {
        let told = resolved(what);
        check(
            told == counted,
            format!("{told} acknowledged {what} but the report counts {counted}"),
        );
    }
    let api_delivered = seen
        .acks
        .keys()
        .filter(|key| ledger.audit.is_delivered(**key))
        .count();
    check(
        api_delivered == seen.delivered_keys.len(),
        format!(
            "{} acknowledged delivered but the API holds {api_delivered} of them",
            seen.delivered_keys.len()
        ),
    );
    check(
        seen.letters as u64 == m.dead_lettered,
        format!(
            "{} dead letters kept but {} counted",
            seen.letters, m.dead_lettered
        ),
    );
    check(
        seen.letters_of_panics <= seen.panicked.len(),
        format!(
            "{} letters of transform panics, {} panics",
            seen.letters_of_panics,
            seen.panicked.len()
        ),
    );
    let audit = &seen.audit;
    check(audit.lost == 0, format!("{} record(s) lost", audit.lost));
    check(
        audit.duplicates == 0,
        format!("{} duplicate outcome(s)", audit.duplicates),
    );
    check(
        audit.unexpected == 0,
        format!("{} outcome(s) for records never offered", audit.unexpected),
    );
    if scenario.processor.ordering == DeliveryOrder::Partition {
        check(
            audit.order_violations == 0,
            format!(
                "{} delivery(ies) out of partition order",
                audit.order_violations
            ),
        );
    }
    if let Some(limit) = scenario.api.rate_limit {
        let busiest = ledger.max_successes_in_any(scenario.api.window);
        check(
            busiest <= limit as usize,
            format!("{busiest} successes in one window, limit {limit}"),
        );
    }
    let capacity = scenario.processor.queue_capacity as u64;
    check(
        report.queue_high_water <= capacity && seen.worst_backlog <= capacity,
        format!(
            "{} records inside the pipeline (sampled backlog {}), capacity {capacity}",
            report.queue_high_water, seen.worst_backlog
        ),
    );
    if violations.is_empty() {
        Ok(Outcome {
            offered: seen.offered,
            delivered: m.delivered,
            dead_lettered: m.dead_lettered,
            handed_back: m.handed_back,
            rate_limit_hits: m.rate_limit_hits,
            faults_caught: report.failure_count,
        })
    } else {
        Err(violations)
    }
}
