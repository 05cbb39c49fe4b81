//! A record ready for the downstream API, and its validation rules.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::{DataSource, JsonObject, ModelError, RecordKey};

/// Processing time must stay below this many milliseconds.
pub const MAX_PROCESSING_TIME_MS: f64 = 10_000.0;

/// A transformed record, as sent downstream.
///
/// Validation is derived (`#[derive(Validate)]`):
/// - `source` is non-empty and one of the four [`DataSource`] names;
/// - `timestamp` and `processed_at` are finite and > 0;
/// - `priority` is in 1..=4;
/// - `processing_time_ms` is finite and in `[0, 10000)`;
/// - `transformed_data` is a non-empty object;
/// - `processed_at >= timestamp` (the struct-level rule, reported as field
///   `"schema"`).
///
/// `partition` and `sequence_id` identify the record downstream; they
/// default to 0 when absent from JSON.
///
/// ```
/// use sluice_models::ProcessedRecord;
///
/// let ok = ProcessedRecord::parse_json(r#"{"source": "user_events", "timestamp": 1.0,
///     "priority": 2, "processed_at": 1.5, "transformed_data": {"k": "v"},
///     "processing_time_ms": 3.0}"#);
/// assert!(ok.is_ok());
///
/// let error = ProcessedRecord::parse_json(r#"{"source": "user_events", "timestamp": 1.0,
///     "priority": 9, "processed_at": 1.5, "transformed_data": {"k": "v"},
///     "processing_time_ms": 3.0}"#).unwrap_err();
/// assert_eq!(error.fields(), ["priority"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate)]
#[validate(schema(function = "processed_not_before_timestamp"))]
pub struct ProcessedRecord {
    /// The source name; one of the four [`DataSource`] names.
    #[validate(
        length(min = 1, code = "empty", message = "must not be empty"),
        custom(function = "known_source")
    )]
    pub source: String,
    /// Emission time at the source, epoch seconds.
    #[validate(
        custom(function = "finite"),
        range(exclusive_min = 0.0, message = "must be > 0")
    )]
    pub timestamp: f64,
    /// 1 (LOW) to 4 (CRITICAL).
    #[validate(range(min = 1, max = 4, message = "must be 1 (LOW) to 4 (CRITICAL)"))]
    pub priority: i64,
    /// When the processor finished transforming the record, epoch seconds.
    #[validate(
        custom(function = "finite"),
        range(exclusive_min = 0.0, message = "must be > 0")
    )]
    pub processed_at: f64,
    /// The transformed payload; never empty.
    #[validate(custom(function = "non_empty_object"))]
    pub transformed_data: JsonObject,
    /// How long the transform took, milliseconds, in `[0, 10000)`.
    #[validate(
        custom(function = "finite"),
        range(
            min = 0.0,
            exclusive_max = 10_000.0,
            message = "must be in [0, 10000) ms"
        )
    )]
    pub processing_time_ms: f64,
    /// The partition of the source; 0 when absent.
    #[serde(default)]
    pub partition: u32,
    /// Position in its (source, partition); 0 when absent.
    #[serde(default)]
    pub sequence_id: u64,
}

impl ProcessedRecord {
    /// Parses a record from JSON and validates it: the one entry point for
    /// records from outside. Malformed JSON, a wrong type or a missing field
    /// give [`ModelError::Malformed`]; a broken rule gives
    /// [`ModelError::Invalid`] naming every offending field.
    pub fn parse_json(json: &str) -> Result<ProcessedRecord, ModelError> {
        let record: ProcessedRecord = serde_json::from_str(json)?;
        record.validate()?;
        Ok(record)
    }

    /// The record's identity, or `None` when `source` is not a known name.
    pub fn key(&self) -> Option<RecordKey> {
        Some(RecordKey {
            source: self.source.parse().ok()?,
            partition: self.partition,
            sequence_id: self.sequence_id,
        })
    }
}

fn rule(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Borrowed(message))
}

fn finite(value: f64) -> Result<(), ValidationError> {
    if value.is_finite() {
        Ok(())
    } else {
        let mut error = rule("finite", "must be a finite number");
        error.add_param(Cow::Borrowed("value"), &value.to_string());
        Err(error)
    }
}

fn known_source(source: &str) -> Result<(), ValidationError> {
    // The empty string is reported once, by the `length` rule.
    if source.is_empty() || source.parse::<DataSource>().is_ok() {
        return Ok(());
    }
    let mut error = rule(
        "unknown_source",
        "must be one of user_events, transaction_data, system_metrics, security_logs",
    );
    error.add_param(Cow::Borrowed("value"), &source);
    Err(error)
}

fn non_empty_object(data: &JsonObject) -> Result<(), ValidationError> {
    if data.is_empty() {
        Err(rule("empty", "must not be empty"))
    } else {
        Ok(())
    }
}

fn processed_not_before_timestamp(record: &ProcessedRecord) -> Result<(), ValidationError> {
    if record.processed_at >= record.timestamp {
        return Ok(());
    }
    let mut error = rule(
        "processed_before_timestamp",
        "processed_at must not be earlier than timestamp",
    );
    error.add_param(
        Cow::Borrowed("value"),
        &format!(
            "processed_at {} < timestamp {}",
            record.processed_at, record.timestamp
        ),
    );
    Err(error)
}
