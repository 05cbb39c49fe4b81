//! NDJSON in a file through the `json` profile to an instant sink, as
//! `sluice run --profile json` reads it (a `LineSource` with
//! acknowledgements), with or without a JSON Schema.

use std::time::Instant;

use serde_json::{Value, json};
use sluice_files::{LineSource, SourceOptions};
use sluice_processor::{DeliveryOrder, ProcessorConfig, RateLimit, StreamProcessor};
use sluice_profiles::json::{JsonProfile, JsonProfileConfig};

use crate::{InstantSink, cpu_time, data, multi_thread_runtime, rss_mib};

/// Records in the file (unless `$SLUICE_BENCH_RECORDS` says otherwise).
const RECORDS: u64 = 1_000_000;

/// A schema of five typed, required fields of the generated records.
fn five_field_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["source", "timestamp", "priority", "partition", "sequence_id"],
        "properties": {
            "source": { "type": "string" },
            "timestamp": { "type": "number" },
            "priority": { "type": "integer" },
            "partition": { "type": "integer" },
            "sequence_id": { "type": "integer" }
        }
    })
}

/// 1 000 000 `StreamData` lines in a file (in the page cache) through the
/// `json` profile, identity and priority from the records' fields (4
/// sources x 8 partitions), to an instant sink, on two runtime threads;
/// with `schema`, validated against [`five_field_schema`].
pub fn ndjson(schema: bool) -> Value {
    let records = data::records(RECORDS);
    let path = data::seed_file(records);
    let file_bytes = std::fs::metadata(&path).unwrap().len();
    let runtime = multi_thread_runtime(2);
    let profile = JsonProfile::new(JsonProfileConfig {
        stream_field: Some("source".to_owned()),
        partition_field: Some("partition".to_owned()),
        sequence_field: Some("sequence_id".to_owned()),
        priority_field: Some("priority".to_owned()),
        schema: schema.then(five_field_schema),
    })
    .unwrap();
    let config = ProcessorConfig {
        max_in_flight: 8,
        queue_capacity: 1_000,
        take_size: 64,
        rate_limit: RateLimit::Unlimited,
        ordering: DeliveryOrder::Partition,
        ..ProcessorConfig::default()
    };
    let (rss_before, _) = rss_mib();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let report = runtime.block_on(async {
        let source = LineSource::open(&path, SourceOptions::default())
            .await
            .unwrap();
        StreamProcessor::new(profile, InstantSink, config)
            .unwrap()
            .start([source])
            .finish()
            .await
    });
    let elapsed = started.elapsed();
    let cpu = cpu_time() - cpu_before;
    let (_, rss_peak) = rss_mib();
    assert_eq!(
        report.metrics.delivered,
        records,
        "{}",
        report.conservation()
    );
    assert!(report.is_conserved());
    json!({
        "records": records,
        "file_mib": file_bytes as f64 / 1_048_576.0,
        "schema": schema,
        "partitions": 4 * data::PARTITIONS,
        "threads": 2,
        "seconds": elapsed.as_secs_f64(),
        "records_per_second": records as f64 / elapsed.as_secs_f64(),
        "cpu_ns_per_record": cpu.as_nanos() as f64 / records as f64,
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_peak,
    })
}
