//! The human-readable report.

use std::fmt::Write as _;

use sluice_sim::report::RunReport;
use sluice_sim::simulation::SimulationConfig;

/// The banner printed before a run.
pub fn banner(config: &SimulationConfig) -> String {
    let limit = config
        .api
        .rate_limit
        .map_or_else(|| "no limit".to_owned(), |limit| format!("limit {limit}/s"));
    format!(
        "🚀 sluice simulate: {} source(s) x {} partition(s), API {limit}, failure rate {:.0}%, seed {} ({})\n\
         📊 Starting stream processing for {} seconds...",
        config.stream.sources.len(),
        config.stream.partitions,
        config.api.failure_rate * 100.0,
        config.seed,
        if config.virtual_time {
            "virtual time"
        } else {
            "real time"
        },
        config.duration.as_secs_f64(),
    )
}

/// The report: the original's seven lines, then accuracy, conservation,
/// the audit, latency and the checks.
pub fn report(run: &RunReport) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("✅ Processing completed!".to_owned());
    line(format!("📈 Total processed: {}", run.delivered));
    line(format!(
        "⚡ Processing rate: {:.1}/sec",
        run.processing_rate_per_second
    ));
    line(format!(
        "🕐 Avg processing time: {:.1}ms",
        run.avg_processing_time_ms
    ));
    line(format!("❌ Error rate: {:.1}%", run.error_rate * 100.0));
    line(format!("📦 Final backlog: {}", run.backlog_size));
    line(format!("🚦 Rate limit hits: {}", run.rate_limit_hits));

    let exact = run.accuracy.checks.iter().filter(|c| c.exact).count();
    line(format!(
        "🎯 Metric accuracy: {} of {} checks ({exact} exact)",
        run.accuracy.passed(),
        run.accuracy.checks.len()
    ));
    for check in &run.accuracy.checks {
        let mark = if check.passed { "✓" } else { "✗" };
        line(format!("   {mark} {}: {}", check.name, check.detail));
    }
    line(format!(
        "⚖️  Conservation: ingested {} = delivered {} + dead-lettered {} + handed back {}{}",
        run.ingested,
        run.delivered,
        run.dead_lettered,
        run.handed_back,
        if run.conserved { "" } else { "  VIOLATED" }
    ));
    line(format!(
        "🔍 Audit against the API's ledger: offered {}, lost {}, duplicates {}, order violations {}",
        run.offered, run.lost, run.duplicates, run.order_violations
    ));
    line(format!(
        "⏱️  Latency, intake to delivery: p50 {:.1}ms, p99 {:.1}ms",
        run.p50_latency_ms, run.p99_latency_ms
    ));
    let mut calls = format!(
        "📞 API calls: {} ({} failed, {} refused)",
        run.attempts, run.failed_calls, run.rate_limit_hits
    );
    if let Some(utilization) = run.ceiling_utilization.filter(|u| *u > 0.0) {
        let _ = write!(
            calls,
            "; ceiling utilization {:.1}% ({} of {:.0})",
            utilization * 100.0,
            run.delivered,
            run.delivered as f64 / utilization
        );
    } else if run.ceiling_utilization.is_some() {
        let _ = write!(calls, "; ceiling utilization 0.0%");
    }
    line(calls);
    for check in run.checks.iter().filter(|c| !c.passed) {
        line(format!("💥 FAILED {}: {}", check.name, check.detail));
    }
    line(if run.passed {
        "🎉 All performance requirements met!".to_owned()
    } else {
        "🛑 Some requirements were not met.".to_owned()
    });
    out
}

/// The report of `sluice run`.
pub fn run_summary(s: &sluice_pipeline::RunSummary) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(if s.halted.is_some() {
        "🛑 sluice run stopped: the API says the client is misconfigured".to_owned()
    } else if s.interrupted {
        "⏹️ sluice run stopped by a signal".to_owned()
    } else {
        "✅ sluice run finished".to_owned()
    });
    line(format!(
        "⚖️  ingested {} = delivered {} + dead-lettered {} + handed back {}{}",
        s.ingested,
        s.delivered,
        s.dead_lettered,
        s.handed_back,
        if s.conserved { "" } else { "  (VIOLATED)" }
    ));
    if s.handed_over > 0 {
        line(format!(
            "🤝 {} handed over: their partitions' leases ended before their calls; \
             JetStream redelivers them to the partitions' next holders",
            s.handed_over
        ));
    }
    line(format!(
        "📞 API calls: {} ({} failed, {} refused); {:.1} records/s over {:.1}s",
        s.calls, s.failed_calls, s.rate_limit_hits, s.delivered_per_second, s.elapsed_seconds
    ));
    // Said only when some call did not deliver: then where the failed
    // and refused calls went is worth a line.
    if s.calls_by_outcome
        .keys()
        .any(|outcome| outcome != "delivered")
    {
        let by_outcome: Vec<String> = s
            .calls_by_outcome
            .iter()
            .map(|(outcome, calls)| format!("{} {calls}", outcome.replace('_', " ")))
            .collect();
        line(format!("📞 calls by outcome: {}", by_outcome.join(", ")));
    }
    line(format!(
        "⏱️  time in pipeline (queue + calls): p50 {:.1}ms, p99 {:.1}ms",
        s.p50_latency_ms, s.p99_latency_ms
    ));
    line(format!(
        "⏱️  API answer time: p50 {:.1}ms, p99 {:.1}ms",
        s.api_p50_latency_ms, s.api_p99_latency_ms
    ));
    for (reason, count) in &s.dead_letter_reasons {
        line(format!("🪦 dead-lettered ({reason}): {count}"));
    }
    if let Some(file) = &s.dead_letter_file {
        line(format!("🪦 dead letters are in {}", file.display()));
    } else if s.dead_letters_discarded {
        line("🪦 dead letters were discarded (--dead-letters none)".to_owned());
    }
    if let Some(max) = &s.too_many_dead_letters {
        line(format!(
            "❌ {} of {} records dead-lettered: more than --max-dead-letters {max} allows",
            s.dead_lettered, s.ingested
        ));
    }
    for (file, offset, lines) in &s.checkpoints {
        line(format!(
            "📌 checkpoint of {}: byte {offset}, line {lines}",
            file.display()
        ));
    }
    for failure in &s.failures {
        line(format!("💥 {failure}"));
    }
    for failure in &s.read_failures {
        line(format!("❌ not read to its end: {failure}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use sluice_pipeline::RunSummary;

    use super::run_summary;

    #[test]
    fn a_run_report_says_what_went_to_a_partitions_next_holder_only_when_anything_did() {
        let summary = RunSummary {
            ingested: 10,
            delivered: 7,
            handed_back: 3,
            conserved: true,
            ..RunSummary::default()
        };
        let quiet = run_summary(&summary);
        assert!(quiet.contains("handed back 3\n"), "{quiet}");
        assert!(!quiet.contains("🤝"), "{quiet}");
        let said = run_summary(&RunSummary {
            handed_over: 3,
            ..summary
        });
        assert!(said.contains("🤝 3 handed over: "), "{said}");
    }
}
