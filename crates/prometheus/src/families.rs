//! The metric families, encoded from one snapshot: the table of the
//! crate's documentation, in code.

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;
use sluice_processor::{LatencyHistogram, MetricsSnapshot, StreamStats};

use crate::Options;
use crate::process::ProcessStats;

/// The label value of the streams (and inputs) beyond the top
/// [`Options::max_streams`].
pub const OTHER: &str = "other";

/// A per-stream record counter.
struct StreamCounter {
    /// The family's name; the encoder adds `_total`.
    name: &'static str,
    help: &'static str,
    /// The count it reads.
    count: fn(&StreamStats) -> u64,
}

/// The per-stream record counters.
const STREAM_COUNTERS: [StreamCounter; 4] = [
    StreamCounter {
        name: "sluice_records_ingested",
        help: "Records taken from the inputs and named by the transform.",
        count: |stats| stats.ingested,
    },
    StreamCounter {
        name: "sluice_records_delivered",
        help: "Records the API accepted.",
        count: |stats| stats.delivered,
    },
    StreamCounter {
        name: "sluice_records_handed_back",
        help: "Records handed back unprocessed (at a stop or after a fault), for the next run.",
        count: |stats| stats.handed_back,
    },
    StreamCounter {
        name: "sluice_records_failed_attempts",
        help: "Failed attempts to deliver a record (each retry counts; refusals excluded).",
        count: |stats| stats.failed_attempts,
    },
];

/// The label a stream goes by: its own name among the `max` with the most
/// records ingested (ties by name), [`OTHER`] beyond them.
fn stream_labels(snapshot: &MetricsSnapshot, max: usize) -> BTreeMap<&str, &str> {
    let mut by_volume: Vec<_> = snapshot.by_stream.iter().collect();
    by_volume
        .sort_by(|(a_name, a), (b_name, b)| b.ingested.cmp(&a.ingested).then(a_name.cmp(b_name)));
    by_volume
        .into_iter()
        .enumerate()
        .map(|(rank, (name, _))| {
            let label = if rank < max { name.as_str() } else { OTHER };
            (name.as_str(), label)
        })
        .collect()
}

/// Encodes a counter family with one label from `(label value, count)`
/// pairs, adding up the counts of equal values.
fn labelled_counter<'a>(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, label): (&str, &str, &str),
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), fmt::Error> {
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    for (value, count) in values {
        *sums.entry(value).or_default() += count;
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in sums {
        ConstCounter::new(count).encode(metric.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

/// Encodes one unlabelled counter or gauge.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, unit): (&str, &str, Option<&Unit>),
    metric: &impl EncodeMetric,
) -> Result<(), fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// Encodes every family of the crate's table from `snapshot` and
/// `process`.
pub(crate) fn encode(
    snapshot: &MetricsSnapshot,
    process: &ProcessStats,
    options: &Options,
    mut encoder: DescriptorEncoder<'_>,
) -> Result<(), fmt::Error> {
    let streams = stream_labels(snapshot, options.max_streams);
    let label_of = |name: &str| streams.get(name).copied().unwrap_or(OTHER);
    for StreamCounter { name, help, count } in STREAM_COUNTERS {
        let values = snapshot
            .by_stream
            .iter()
            .map(|(stream, stats)| (label_of(stream.as_str()), count(stats)));
        labelled_counter(&mut encoder, (name, help, "stream"), values)?;
    }

    let mut letters: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for count in &snapshot.dead_letters {
        let key = (count.reason.as_str(), label_of(count.stream.as_str()));
        *letters.entry(key).or_default() += count.records;
    }
    let mut metric = encoder.encode_descriptor(
        "sluice_dead_letters",
        "Records dead-lettered, by kind of reason and stream.",
        None,
        MetricType::Counter,
    )?;
    for ((reason, stream), records) in letters {
        let labels = [("reason", reason), ("stream", stream)];
        ConstCounter::new(records).encode(metric.encode_family(&labels)?)?;
    }

    let mut metric = encoder.encode_descriptor(
        "sluice_http_requests",
        "Calls to the API that ended, by outcome and HTTP status (none: no answer); the outcomes partition the calls.",
        None,
        MetricType::Counter,
    )?;
    for count in &snapshot.calls {
        let status = count
            .status
            .map_or_else(|| "none".to_owned(), |s| s.to_string());
        let labels = [
            ("outcome", count.outcome.as_str()),
            ("status", status.as_str()),
        ];
        ConstCounter::new(count.calls).encode(metric.encode_family(&labels)?)?;
    }
    histogram(
        &mut encoder,
        "sluice_http_request_duration",
        "The API's answer times: from a call's start to its answer (or the call timeout).",
        &snapshot.call_latency_histogram,
    )?;
    histogram(
        &mut encoder,
        "sluice_delivery_latency",
        "Time from intake to delivery: waiting in the pipeline (queue, rate limit, retries) and the call.",
        &snapshot.latency_histogram,
    )?;

    let gauges = [
        (
            "sluice_http_requests_in_flight",
            "Calls to the API in flight now.",
            snapshot.in_flight,
        ),
        (
            "sluice_queue_depth",
            "Records waiting in the queue for a worker.",
            snapshot.queued,
        ),
        (
            "sluice_queue_capacity",
            "The most records inside the pipeline (the queue's bound).",
            snapshot.queue_capacity,
        ),
        (
            "sluice_records_in_pipeline",
            "Records inside the pipeline: ingested, not yet delivered, dead-lettered or handed back.",
            snapshot.backlog,
        ),
        (
            "sluice_api_failing",
            "1 while the API is failing (calls failing for its sake, nothing delivered since), else 0.",
            u64::from(snapshot.api_failing),
        ),
    ];
    for (name, help, value) in gauges {
        single(&mut encoder, (name, help, None), &ConstGauge::new(value))?;
    }
    single(
        &mut encoder,
        (
            "sluice_api_outages",
            "Outages of the API seen (each ended by a delivery).",
            None,
        ),
        &ConstCounter::new(snapshot.api_outages),
    )?;
    if let (Some(limit), Some(window)) = (snapshot.client_rate_limit, snapshot.limit_window) {
        let mut metric = encoder.encode_descriptor(
            "sluice_rate_limit",
            "The client's rate limit in force: units per window (sluice_rate_limit_window_seconds).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(limit as u64)
            .encode(metric.encode_family(&[("unit", window.unit.as_str())])?)?;
        single(
            &mut encoder,
            (
                "sluice_rate_limit_window",
                "The rate limit's window.",
                Some(&Unit::Seconds),
            ),
            &ConstGauge::new(window.window.as_secs_f64()),
        )?;
    }

    inputs(&mut encoder, snapshot, options)?;

    let mut metric = encoder.encode_descriptor(
        "sluice_build_info",
        "sluice's version; always 1.",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(1).encode(metric.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;

    process_families(&mut encoder, process)
}

/// The inputs' progress, the first [`Options::max_streams`] by bytes read
/// under their names, the rest added up as [`OTHER`] (their checkpoints
/// not shown).
fn inputs(
    encoder: &mut DescriptorEncoder<'_>,
    snapshot: &MetricsSnapshot,
    options: &Options,
) -> Result<(), fmt::Error> {
    let mut ranked: Vec<_> = snapshot.inputs.iter().collect();
    ranked.sort_by(|a, b| b.bytes_read.cmp(&a.bytes_read).then(a.name.cmp(&b.name)));
    let (named, rest) = ranked.split_at(ranked.len().min(options.max_streams));
    let label = |rank: usize| {
        if rank < named.len() {
            named[rank].name.as_str()
        } else {
            OTHER
        }
    };
    labelled_counter(
        encoder,
        (
            "sluice_input_bytes_read",
            "Bytes read from each input (decompressed, for a compressed file).",
            "input",
        ),
        ranked
            .iter()
            .enumerate()
            .map(|(rank, input)| (label(rank), input.bytes_read)),
    )?;
    let gauge_family = |encoder: &mut DescriptorEncoder<'_>,
                        (name, help, unit): (&str, &str, Option<&Unit>),
                        values: Vec<(&str, f64)>|
     -> Result<(), fmt::Error> {
        let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
        for (input, value) in values {
            ConstGauge::new(value).encode(metric.encode_family(&[("input", input)])?)?;
        }
        Ok(())
    };
    let mut sizes: Vec<(&str, f64)> = named
        .iter()
        .filter_map(|input| Some((input.name.as_str(), input.size_bytes? as f64)))
        .collect();
    let other_sizes: Vec<u64> = rest.iter().filter_map(|input| input.size_bytes).collect();
    if !other_sizes.is_empty() {
        sizes.push((OTHER, other_sizes.iter().sum::<u64>() as f64));
    }
    gauge_family(
        encoder,
        (
            "sluice_input_size",
            "Each input's size, when known (an uncompressed file read to its end).",
            Some(&Unit::Bytes),
        ),
        sizes,
    )?;
    gauge_family(
        encoder,
        (
            "sluice_checkpoint_offset",
            "The byte offset of each input's last checkpoint saved.",
            Some(&Unit::Bytes),
        ),
        named
            .iter()
            .filter_map(|input| Some((input.name.as_str(), input.checkpoint_offset? as f64)))
            .collect(),
    )?;
    gauge_family(
        encoder,
        (
            "sluice_checkpoint_last_write_timestamp",
            "When each input's last checkpoint was saved, since the Unix epoch.",
            Some(&Unit::Seconds),
        ),
        named
            .iter()
            .filter_map(|input| Some((input.name.as_str(), input.checkpoint_written_unix_seconds?)))
            .collect(),
    )?;
    gauge_family(
        encoder,
        (
            "sluice_input_pending_records",
            "Records a broker still holds for each input (JetStream).",
            None,
        ),
        ranked
            .iter()
            .enumerate()
            .filter_map(|(rank, input)| Some((label(rank), input.pending? as f64)))
            .fold(
                Vec::new(),
                |mut sums: Vec<(&str, f64)>, (input, pending)| {
                    match sums.iter_mut().find(|(name, _)| *name == input) {
                        Some((_, sum)) => *sum += pending,
                        None => sums.push((input, pending)),
                    }
                    sums
                },
            ),
    )
}

/// The `process_*` families, those the system gave.
fn process_families(
    encoder: &mut DescriptorEncoder<'_>,
    process: &ProcessStats,
) -> Result<(), fmt::Error> {
    if let Some(seconds) = process.cpu_seconds {
        single(
            encoder,
            (
                "process_cpu",
                "User and system CPU time spent.",
                Some(&Unit::Seconds),
            ),
            &ConstCounter::new(seconds),
        )?;
    }
    let gauges = [
        (
            "process_resident_memory",
            "Resident memory size.",
            Some(Unit::Bytes),
            process.resident_memory_bytes.map(|b| b as f64),
        ),
        (
            "process_virtual_memory",
            "Virtual memory size.",
            Some(Unit::Bytes),
            process.virtual_memory_bytes.map(|b| b as f64),
        ),
        (
            "process_start_time",
            "Start time of the process since the Unix epoch.",
            Some(Unit::Seconds),
            process.start_time_seconds,
        ),
        (
            "process_open_fds",
            "Open file descriptors.",
            None,
            process.open_fds.map(|n| n as f64),
        ),
        (
            "process_max_fds",
            "The most file descriptors the process may open.",
            None,
            process.max_fds.map(|n| n as f64),
        ),
    ];
    for (name, help, unit, value) in gauges {
        if let Some(value) = value {
            single(
                encoder,
                (name, help, unit.as_ref()),
                &ConstGauge::new(value),
            )?;
        }
    }
    Ok(())
}

/// Encodes a latency histogram in seconds.
fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    latency: &LatencyHistogram,
) -> Result<(), fmt::Error> {
    encoder
        .encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(
            latency.sum_ms / 1_000.0,
            latency.count,
            &bucket_increments(latency),
            None,
        )
}

/// The snapshot's cumulative buckets as `prometheus-client` takes them:
/// (upper bound in seconds, deliveries in this bucket alone), which it adds
/// up again, closed by `+Inf` so that its cumulative count is the total.
fn bucket_increments(latency: &LatencyHistogram) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut buckets = Vec::with_capacity(latency.buckets.len() + 1);
    for &(le_ms, cumulative) in latency.buckets.iter().filter(|(le, _)| le.is_finite()) {
        buckets.push((le_ms / 1_000.0, cumulative.saturating_sub(below)));
        below = below.max(cumulative);
    }
    buckets.push((f64::INFINITY, latency.count.saturating_sub(below)));
    buckets
}
