//! The `seed` profile: the original test's domain.
//!
//! [`StreamData`] in; the [standard transform](StandardTransform) onto
//! each source's canonical schema; the derive validation of
//! [`ProcessedRecord`]; [`ProcessedRecord`] out. A record's stream is its
//! source's name (`user_events`, ...), its partition and sequence those of
//! the source.

use serde_json::Value;
use sluice_models::{
    DataSource, JsonObject, PartitionKey, PipelineMetrics, Priority, ProcessedRecord, RecordKey,
    SourceStats, StreamData,
};
use sluice_processor::{
    Context, MetricsSnapshot, RawRecord, RecordId, Rejected, StreamName, StreamNameError,
    Transform, Transformed,
};
use validator::Validate;

use crate::json::raw_excerpt;

/// The `seed` profile: the standard transform, then the derive validation.
///
/// ```
/// use sluice_models::{DataSource, JsonObject, Priority, StreamData};
/// use sluice_processor::{Context, Transform};
/// use sluice_profiles::seed::SeedProfile;
///
/// let profile = SeedProfile::new().unwrap();
/// let input = StreamData {
///     source: DataSource::UserEvents,
///     partition: 3,
///     timestamp: 100.0,
///     priority: Priority::High,
///     data: JsonObject::new(),
///     sequence_id: 7,
/// };
/// let done = profile.transform(input, &mut Context::new(100.5)).unwrap();
/// assert_eq!(done.id.to_string(), "user_events/3#7");
/// assert_eq!(done.record.transformed_data["user_id"], "anonymous");
///
/// let mut bad = StreamData { timestamp: f64::NAN, ..done_input() };
/// let rejected = profile.transform(bad, &mut Context::new(100.5)).unwrap_err();
/// assert!(rejected.reason.contains("timestamp"));
/// # fn done_input() -> StreamData {
/// #     StreamData { source: DataSource::UserEvents, partition: 0, timestamp: 1.0,
/// #         priority: Priority::Low, data: JsonObject::new(), sequence_id: 1 }
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SeedProfile {
    streams: [StreamName; 4],
}

impl SeedProfile {
    /// The profile, with the four sources' stream names interned.
    ///
    /// # Errors
    /// When the process's table of stream names is full.
    pub fn new() -> Result<SeedProfile, StreamNameError> {
        let name = |source: DataSource| StreamName::new(source.as_str());
        Ok(SeedProfile {
            streams: [
                name(DataSource::UserEvents)?,
                name(DataSource::TransactionData)?,
                name(DataSource::SystemMetrics)?,
                name(DataSource::SecurityLogs)?,
            ],
        })
    }

    /// The identity of a record of the seed domain.
    pub fn id(&self, key: RecordKey) -> RecordId {
        RecordId {
            stream: self.streams[key.source.index()],
            partition: key.partition,
            sequence: key.sequence_id,
        }
    }
}

impl Transform<StreamData> for SeedProfile {
    type Output = ProcessedRecord;

    fn transform(
        &self,
        input: StreamData,
        context: &mut Context,
    ) -> Result<Transformed<ProcessedRecord>, Rejected<ProcessedRecord>> {
        let id = self.id(input.key());
        let priority = input.priority.value();
        let mut record = StandardTransform.apply(input, context.now());
        record.processing_time_ms = context.taken_at().elapsed().as_secs_f64() * 1000.0;
        match record.validate() {
            Ok(()) => Ok(Transformed {
                id,
                record,
                priority,
                bytes: 0,
                // Named by its own fields (stream and sequence number).
                key: None,
            }),
            Err(errors) => Err(Rejected {
                id,
                reason: sluice_models::ModelError::from(errors).to_string(),
                record: Some(record),
                raw: None,
            }),
        }
    }
}

/// The seed profile over text: each input is one `StreamData` JSON object
/// (a line of a file, as `sluice generate` writes them). Text that is not
/// such an object is refused with the parser's reason and the raw text
/// (cut to [`MAX_RAW_BYTES`](crate::json::MAX_RAW_BYTES)), under the input's
/// position (stream, partition 0, line number).
impl Transform<RawRecord> for SeedProfile {
    type Output = ProcessedRecord;

    fn transform(
        &self,
        input: RawRecord,
        context: &mut Context,
    ) -> Result<Transformed<ProcessedRecord>, Rejected<ProcessedRecord>> {
        if let Some(too_long) = crate::refuse_cut(&input) {
            return Err(too_long);
        }
        match serde_json::from_str::<StreamData>(&input.text) {
            Ok(data) => self.transform(data, context),
            Err(error) => Err(Rejected {
                id: input.position,
                record: None,
                raw: Some(raw_excerpt(input.text.trim_end()).to_owned()),
                reason: format!("not a seed record (StreamData JSON): {error}"),
            }),
        }
    }
}

/// The seed domain's key of a record identity, when its stream is one of
/// the four source names.
pub fn record_key(id: RecordId) -> Option<RecordKey> {
    Some(RecordKey {
        source: id.stream.as_str().parse().ok()?,
        partition: id.partition,
        sequence_id: id.sequence,
    })
}

/// The seed domain's partition key of a record identity.
pub fn partition_key(id: RecordId) -> Option<PartitionKey> {
    record_key(id).map(|key| key.partition_key())
}

/// The original test's eight metrics, from the processor's snapshot.
/// Streams that are not one of the four sources are left out of
/// `by_source`; priorities outside 1..=4 out of `by_priority`.
pub fn pipeline_metrics(snapshot: &MetricsSnapshot) -> PipelineMetrics {
    let by_source = snapshot
        .by_stream
        .iter()
        .filter_map(|(stream, stats)| {
            let source: DataSource = stream.as_str().parse().ok()?;
            let stats = SourceStats {
                delivered: stats.delivered,
                failed_calls: stats.failed_attempts,
                dead_lettered: stats.dead_lettered,
            };
            Some((source, stats))
        })
        .collect();
    let by_priority = snapshot
        .delivered_by_priority
        .iter()
        .filter_map(|(&priority, &count)| Some((Priority::try_from(priority).ok()?, count)))
        .collect();
    PipelineMetrics {
        total_processed: snapshot.delivered,
        processing_rate_per_second: snapshot.delivery_rate(),
        avg_processing_time_ms: snapshot.latency.mean_ms,
        error_rate: snapshot.error_rate(),
        backlog_size: snapshot.backlog,
        rate_limit_hits: snapshot.rate_limit_hits,
        by_source,
        by_priority,
    }
}

/// The standard transform: maps each payload onto its source's canonical
/// schema.
///
/// - Each source has canonical fields (`user_events`: `user_id`,
///   `event_type`, `value`; `transaction_data`: `transaction_id`, `amount`,
///   `currency`; `system_metrics`: `cpu_usage`, `memory_usage`, `disk_io`;
///   `security_logs`: `ip_address`, `threat_level`, `blocked`). A missing or
///   mistyped field gets a default and is listed in `defaults_applied`, so
///   an empty payload still yields a meaningful record.
/// - Derived fields are added when their inputs are present:
///   `is_purchase`, `amount_usd` and `high_value`, `health`, `needs_review`.
/// - Every other field is kept, untouched, under `extra`: large and unicode
///   payloads pass intact.
/// - A source timestamp ahead of the processor's clock (clock skew) does not
///   make `processed_at` earlier than `timestamp`: `processed_at` is the
///   later of the two, and the skew is recorded as `clock_skew_ms`.
///
/// ```
/// use sluice_models::{DataSource, JsonObject, Priority, StreamData};
/// use sluice_profiles::seed::StandardTransform;
///
/// let input = StreamData {
///     source: DataSource::UserEvents,
///     partition: 0,
///     timestamp: 100.0,
///     priority: Priority::High,
///     data: JsonObject::new(),
///     sequence_id: 1,
/// };
/// let record = StandardTransform.apply(input, 100.5);
/// assert_eq!(record.transformed_data["user_id"], "anonymous");
/// assert_eq!(record.transformed_data["defaults_applied"][0], "user_id");
/// assert_eq!(record.processed_at, 100.5);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardTransform;

impl StandardTransform {
    /// Maps `input` onto its source's canonical schema; `now` is the
    /// processor's clock, epoch seconds. `processing_time_ms` is left 0
    /// for the caller to measure.
    pub fn apply(&self, input: StreamData, now: f64) -> ProcessedRecord {
        let StreamData {
            source,
            partition,
            timestamp,
            priority,
            mut data,
            sequence_id,
        } = input;

        let mut out = JsonObject::new();
        let mut defaults = Vec::new();
        for field in canonical_fields(source) {
            match data.remove_entry(field.name) {
                Some((name, value)) if field.kind.accepts(&value) => {
                    out.insert(name, value);
                }
                other => {
                    // A mistyped value is kept, untouched, under `extra`.
                    if let Some((name, value)) = other {
                        data.insert(name, value);
                    }
                    out.insert(field.name.to_owned(), field.default());
                    defaults.push(Value::from(field.name));
                }
            }
        }
        add_derived_fields(source, &mut out, &defaults);
        if !data.is_empty() {
            out.insert("extra".to_owned(), Value::Object(data));
        }
        if !defaults.is_empty() {
            out.insert("defaults_applied".to_owned(), Value::Array(defaults));
        }
        let processed_at = if timestamp > now {
            out.insert(
                "clock_skew_ms".to_owned(),
                Value::from((timestamp - now) * 1000.0),
            );
            timestamp
        } else {
            now
        };

        ProcessedRecord {
            source: source.as_str().to_owned(),
            timestamp,
            priority: i64::from(priority.value()),
            processed_at,
            transformed_data: out,
            processing_time_ms: 0.0,
            partition,
            sequence_id,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Number,
    Flag,
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::Text => value.is_string(),
            Kind::Integer => value.is_i64() || value.is_u64(),
            Kind::Number => value.is_number(),
            Kind::Flag => value.is_boolean(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    kind: Kind,
}

impl Field {
    const fn new(name: &'static str, kind: Kind) -> Field {
        Field { name, kind }
    }

    fn default(self) -> Value {
        match (self.name, self.kind) {
            ("user_id", _) => Value::from("anonymous"),
            ("currency", _) => Value::from("XXX"),
            (_, Kind::Text) => Value::from("unknown"),
            (_, Kind::Integer) => Value::from(0),
            (_, Kind::Number) => Value::from(0.0),
            (_, Kind::Flag) => Value::from(false),
        }
    }
}

fn canonical_fields(source: DataSource) -> &'static [Field] {
    use Kind::{Flag, Integer, Number, Text};
    const USER_EVENTS: &[Field] = &[
        Field::new("user_id", Text),
        Field::new("event_type", Text),
        Field::new("value", Integer),
    ];
    const TRANSACTION_DATA: &[Field] = &[
        Field::new("transaction_id", Text),
        Field::new("amount", Number),
        Field::new("currency", Text),
    ];
    const SYSTEM_METRICS: &[Field] = &[
        Field::new("cpu_usage", Number),
        Field::new("memory_usage", Number),
        Field::new("disk_io", Integer),
    ];
    const SECURITY_LOGS: &[Field] = &[
        Field::new("ip_address", Text),
        Field::new("threat_level", Text),
        Field::new("blocked", Flag),
    ];
    match source {
        DataSource::UserEvents => USER_EVENTS,
        DataSource::TransactionData => TRANSACTION_DATA,
        DataSource::SystemMetrics => SYSTEM_METRICS,
        DataSource::SecurityLogs => SECURITY_LOGS,
    }
}

/// Adds the fields computed from canonical ones, when those were present.
fn add_derived_fields(source: DataSource, out: &mut JsonObject, defaults: &[Value]) {
    let present = |name: &str| !defaults.iter().any(|d| d == name);
    let text =
        |out: &JsonObject, name: &str| out.get(name).and_then(Value::as_str).map(str::to_owned);
    let number = |out: &JsonObject, name: &str| out.get(name).and_then(Value::as_f64);
    match source {
        DataSource::UserEvents => {
            if present("event_type") {
                let purchase = text(out, "event_type").is_some_and(|e| e == "purchase");
                out.insert("is_purchase".to_owned(), Value::from(purchase));
            }
        }
        DataSource::TransactionData => {
            if present("amount") && present("currency") {
                let amount = number(out, "amount").unwrap_or(0.0);
                let rate = text(out, "currency").as_deref().and_then(usd_rate);
                if let Some(rate) = rate {
                    let usd = (amount * rate * 100.0).round() / 100.0;
                    out.insert("amount_usd".to_owned(), Value::from(usd));
                }
                out.insert("high_value".to_owned(), Value::from(amount >= 500.0));
            }
        }
        DataSource::SystemMetrics => {
            if present("cpu_usage") && present("memory_usage") {
                let load = number(out, "cpu_usage")
                    .unwrap_or(0.0)
                    .max(number(out, "memory_usage").unwrap_or(0.0));
                let health = match load {
                    l if l >= 90.0 => "critical",
                    l if l >= 75.0 => "degraded",
                    _ => "ok",
                };
                out.insert("health".to_owned(), Value::from(health));
            }
        }
        DataSource::SecurityLogs => {
            if present("threat_level") && present("blocked") {
                let high = text(out, "threat_level").is_some_and(|t| t == "high");
                let blocked = out.get("blocked").and_then(Value::as_bool).unwrap_or(false);
                out.insert("needs_review".to_owned(), Value::from(high && !blocked));
            }
        }
    }
}

/// Fixed reference rates to US dollars.
fn usd_rate(currency: &str) -> Option<f64> {
    match currency {
        "USD" => Some(1.0),
        "EUR" => Some(1.08),
        "GBP" => Some(1.27),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_models::Priority;
    use validator::Validate;

    use super::*;

    fn input(source: DataSource, data: Value) -> StreamData {
        StreamData {
            source,
            partition: 2,
            timestamp: 1_000.0,
            priority: Priority::Medium,
            data: match data {
                Value::Object(map) => map,
                _ => JsonObject::new(),
            },
            sequence_id: 9,
        }
    }

    #[test]
    fn well_formed_payloads_keep_their_fields_and_gain_derived_ones() {
        let cases = [
            (
                DataSource::UserEvents,
                json!({"user_id": "user_7", "event_type": "purchase", "value": 120}),
                json!({"user_id": "user_7", "event_type": "purchase", "value": 120, "is_purchase": true}),
            ),
            (
                DataSource::TransactionData,
                json!({"transaction_id": "txn_12345", "amount": 600.0, "currency": "EUR"}),
                json!({"transaction_id": "txn_12345", "amount": 600.0, "currency": "EUR",
                       "amount_usd": 648.0, "high_value": true}),
            ),
            (
                DataSource::SystemMetrics,
                json!({"cpu_usage": 80.5, "memory_usage": 10.0, "disk_io": 3}),
                json!({"cpu_usage": 80.5, "memory_usage": 10.0, "disk_io": 3, "health": "degraded"}),
            ),
            (
                DataSource::SecurityLogs,
                json!({"ip_address": "1.2.3.4", "threat_level": "high", "blocked": false}),
                json!({"ip_address": "1.2.3.4", "threat_level": "high", "blocked": false,
                       "needs_review": true}),
            ),
        ];
        for (source, data, expected) in cases {
            let record = StandardTransform.apply(input(source, data), 1_000.5);
            assert_eq!(Value::Object(record.transformed_data.clone()), expected);
            assert_eq!(record.source, source.as_str());
            assert_eq!(
                (record.partition, record.sequence_id, record.priority),
                (2, 9, 2)
            );
            assert_eq!(record.processed_at, 1_000.5);
            assert!(record.validate().is_ok());
        }
    }

    #[test]
    fn an_empty_payload_gets_meaningful_defaults() {
        let record =
            StandardTransform.apply(input(DataSource::TransactionData, json!({})), 1_000.0);
        assert_eq!(
            Value::Object(record.transformed_data.clone()),
            json!({"transaction_id": "unknown", "amount": 0.0, "currency": "XXX",
                   "defaults_applied": ["transaction_id", "amount", "currency"]})
        );
        assert!(record.validate().is_ok());
    }

    #[test]
    fn unknown_and_mistyped_fields_are_kept_intact_under_extra() {
        let data = json!({"value": "lots", "名前": "テスト", "nested": {"emoji": "🚀"}});
        let record = StandardTransform.apply(input(DataSource::UserEvents, data), 1_000.0);
        let out = &record.transformed_data;
        assert_eq!(out["value"], 0);
        assert_eq!(
            out["extra"],
            json!({"value": "lots", "名前": "テスト", "nested": {"emoji": "🚀"}})
        );
        assert_eq!(
            out["defaults_applied"],
            json!(["user_id", "event_type", "value"])
        );
    }

    #[test]
    fn a_source_clock_ahead_of_ours_is_recorded_not_an_error() {
        let record = StandardTransform.apply(input(DataSource::SecurityLogs, json!({})), 999.75);
        assert_eq!(record.processed_at, record.timestamp);
        assert_eq!(record.transformed_data["clock_skew_ms"], json!(250.0));
        assert!(record.validate().is_ok());
    }

    #[test]
    fn text_input_is_parsed_as_stream_data_or_refused_with_its_position() {
        let profile = SeedProfile::new().unwrap();
        let lines = StreamName::new("seed-lines").unwrap();
        let line = |sequence, text: &str| {
            let position = RecordId {
                stream: lines,
                partition: 0,
                sequence,
            };
            RawRecord::new(sluice_processor::Origin::new("seed-lines"), position, text)
        };
        let mut context = Context::new(1_000.5);
        let good = r#"{"source":"user_events","partition":2,"timestamp":1000.0,"priority":3,"data":{"user_id":"u"},"sequence_id":9}"#;
        let done = profile.transform(line(1, good), &mut context).unwrap();
        assert_eq!(done.id.to_string(), "user_events/2#9");
        assert_eq!(done.record.transformed_data["user_id"], "u");
        let bad = profile
            .transform(line(4, "{\"source\": 7}\n"), &mut context)
            .unwrap_err();
        assert_eq!(bad.id.to_string(), "seed-lines/0#4");
        assert_eq!(bad.raw.as_deref(), Some("{\"source\": 7}"));
        assert!(
            bad.reason.starts_with("not a seed record"),
            "{}",
            bad.reason
        );
        assert!(bad.record.is_none());
    }

    #[test]
    fn a_bad_source_timestamp_is_left_for_validation_to_refuse() {
        let mut bad = input(DataSource::UserEvents, json!({}));
        bad.timestamp = f64::NAN;
        let record = StandardTransform.apply(bad, 1_000.0);
        let error = sluice_models::ModelError::from(record.validate().unwrap_err());
        assert_eq!(error.fields(), ["timestamp"]);
    }
}
