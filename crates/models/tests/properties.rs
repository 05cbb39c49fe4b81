//! Property tests of `ProcessedRecord` validation and serde.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use proptest::prelude::*;
use sluice_models::{DataSource, JsonObject, ModelError, ProcessedRecord};
use validator::Validate;

fn source_name() -> impl Strategy<Value = String> {
    prop::sample::select(DataSource::ALL.to_vec()).prop_map(|s| s.as_str().to_owned())
}

fn non_empty_object() -> impl Strategy<Value = JsonObject> {
    prop::collection::btree_map("[a-z_]{1,12}", any::<i64>(), 1..8).prop_map(|entries| {
        entries
            .into_iter()
            .map(|(key, value)| (key, serde_json::Value::from(value)))
            .collect()
    })
}

prop_compose! {
    /// Any record whose every value is in range.
    fn valid_record()(
        source in source_name(),
        timestamp in 1e-3f64..4e9,
        lag in 0.0f64..1e4,
        priority in 1i64..=4,
        transformed_data in non_empty_object(),
        processing_time_ms in 0.0f64..10_000.0,
        partition in any::<u32>(),
        sequence_id in any::<u64>(),
    ) -> ProcessedRecord {
        ProcessedRecord {
            source,
            timestamp,
            priority,
            processed_at: timestamp + lag,
            transformed_data,
            processing_time_ms,
            partition,
            sequence_id,
        }
    }
}

/// One way to move exactly one rule out of range, and the field it must name.
#[derive(Debug, Clone)]
enum Break {
    Priority(i64),
    ProcessingTime(f64),
    TimingOrder(f64),
    Source(String),
    EmptyTransformedData,
}

impl Break {
    fn apply(&self, record: &mut ProcessedRecord) -> &'static str {
        match self {
            Break::Priority(p) => {
                record.priority = *p;
                "priority"
            }
            Break::ProcessingTime(ms) => {
                record.processing_time_ms = *ms;
                "processing_time_ms"
            }
            Break::TimingOrder(earlier_by) => {
                record.processed_at = record.timestamp - earlier_by;
                "schema"
            }
            Break::Source(name) => {
                record.source = name.clone();
                "source"
            }
            Break::EmptyTransformedData => {
                record.transformed_data.clear();
                "transformed_data"
            }
        }
    }
}

fn one_break() -> impl Strategy<Value = Break> {
    prop_oneof![
        prop_oneof![i64::MIN..1, 5..=i64::MAX].prop_map(Break::Priority),
        prop_oneof![
            -1e9f64..-1e-9,
            10_000.0f64..1e12,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
        ]
        .prop_map(Break::ProcessingTime),
        // Relative to a timestamp of at least 1e-3, an absolute step of at
        // least 1e-4 s is representable and keeps processed_at positive.
        (1e-4f64..1e-3).prop_map(Break::TimingOrder),
        "[a-zA-Z_ ]{0,20}"
            .prop_filter("must not be a real source", |s| s
                .parse::<DataSource>()
                .is_err())
            .prop_map(Break::Source),
        Just(Break::EmptyTransformedData),
    ]
}

proptest! {
    #[test]
    fn in_range_records_validate(record in valid_record()) {
        prop_assert!(record.validate().is_ok(), "{:?}", record.validate());
    }

    #[test]
    fn breaking_exactly_one_rule_fails_and_names_that_field(
        mut record in valid_record(),
        broken in one_break(),
    ) {
        let field = broken.apply(&mut record);
        let error = ModelError::from(record.validate().unwrap_err());
        prop_assert_eq!(error.fields(), vec![field]);
        let json = serde_json::to_string(&record).unwrap();
        // NaN and infinities have no JSON form (they serialize as null), so
        // through JSON they are malformed rather than invalid.
        match ProcessedRecord::parse_json(&json) {
            Err(error @ ModelError::Invalid { .. }) => prop_assert_eq!(error.fields(), vec![field]),
            Err(ModelError::Malformed { .. }) => prop_assert!(json.contains("null")),
            Ok(_) => prop_assert!(false, "{} parsed as valid", json),
        }
    }

    #[test]
    fn parse_json_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = ProcessedRecord::parse_json(&text);
    }

    #[test]
    fn parse_json_never_panics_on_arbitrary_json_objects(
        object in prop::collection::btree_map(
            prop_oneof![
                Just("source".to_owned()), Just("timestamp".to_owned()),
                Just("priority".to_owned()), Just("processed_at".to_owned()),
                Just("transformed_data".to_owned()), Just("processing_time_ms".to_owned()),
                "[a-z]{1,6}",
            ],
            prop_oneof![
                any::<f64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                ".{0,8}".prop_map(serde_json::Value::from),
                Just(serde_json::json!({"k": 1})),
                Just(serde_json::Value::Null),
            ],
            0..8,
        )
    ) {
        let json = serde_json::to_string(&object).unwrap();
        let _ = ProcessedRecord::parse_json(&json);
    }

    #[test]
    fn serde_round_trip_is_lossless(record in valid_record()) {
        let json = serde_json::to_string(&record).unwrap();
        let back = ProcessedRecord::parse_json(&json).unwrap();
        prop_assert_eq!(back, record);
    }
}
