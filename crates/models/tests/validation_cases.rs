//! The eleven validation cases of the original Python test, from
//! `tests/data/validation_cases.json` (a copy of
//! `shared/acceptance/validation_cases.json`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use serde::Deserialize;
use sluice_models::{ModelError, ProcessedRecord};

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    expect_valid: bool,
    field: Option<String>,
    record: serde_json::Value,
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/validation_cases.json");
    serde_json::from_str::<Cases>(text)
        .expect("the case file parses")
        .cases
}

#[test]
fn there_are_eleven_cases_three_valid() {
    let cases = cases();
    assert_eq!(cases.len(), 11);
    assert_eq!(cases.iter().filter(|c| c.expect_valid).count(), 3);
}

#[test]
fn every_case_is_judged_as_the_original_judges_it_and_names_its_field() {
    for case in cases() {
        let json = case.record.to_string();
        let outcome = ProcessedRecord::parse_json(&json);
        match (case.expect_valid, outcome) {
            (true, Ok(record)) => {
                assert_eq!(
                    serde_json::to_value(&record).unwrap()["source"],
                    case.record["source"]
                );
            }
            (false, Err(error @ ModelError::Invalid { .. })) => {
                let field = case.field.as_deref().expect("invalid cases name a field");
                assert_eq!(error.fields(), [field], "case {}: {error}", case.name);
                assert!(
                    error.to_string().contains(field),
                    "case {}: message {error} does not name {field}",
                    case.name
                );
            }
            (expected, outcome) => {
                panic!(
                    "case {}: expected valid={expected}, got {outcome:?}",
                    case.name
                )
            }
        }
    }
}

#[test]
fn malformed_json_wrong_types_and_missing_fields_are_errors_not_panics() {
    let valid = cases().remove(0).record;

    let missing = {
        let mut record = valid.clone();
        record.as_object_mut().unwrap().remove("priority");
        record.to_string()
    };
    let wrong_type = {
        let mut record = valid.clone();
        record["priority"] = serde_json::json!("HIGH");
        record.to_string()
    };
    let not_an_object = {
        let mut record = valid.clone();
        record["transformed_data"] = serde_json::json!(["a"]);
        record.to_string()
    };

    for (input, expected_in_message) in [
        ("", "EOF"),
        ("{", "EOF"),
        ("[]", "struct ProcessedRecord"),
        (missing.as_str(), "missing field `priority`"),
        (wrong_type.as_str(), "invalid type: string \"HIGH\""),
        (not_an_object.as_str(), "invalid type: sequence"),
    ] {
        match ProcessedRecord::parse_json(input) {
            Err(error @ ModelError::Malformed { .. }) => assert!(
                error.to_string().contains(expected_in_message),
                "{input:?}: {error}"
            ),
            other => panic!("{input:?}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn partition_and_sequence_default_when_absent_and_survive_when_present() {
    let mut record = cases().remove(0).record;
    let parsed = ProcessedRecord::parse_json(&record.to_string()).unwrap();
    assert_eq!((parsed.partition, parsed.sequence_id), (0, 0));

    record["partition"] = 3.into();
    record["sequence_id"] = 42.into();
    let parsed = ProcessedRecord::parse_json(&record.to_string()).unwrap();
    assert_eq!((parsed.partition, parsed.sequence_id), (3, 42));
    assert_eq!(parsed.key().unwrap().to_string(), "user_events/3#42");
}

#[test]
fn every_broken_rule_is_reported_not_only_the_first() {
    let mut record = cases().remove(0).record;
    record["priority"] = 9.into();
    record["source"] = "".into();
    record["transformed_data"] = serde_json::json!({});
    let error = ProcessedRecord::parse_json(&record.to_string()).unwrap_err();
    assert_eq!(error.fields(), ["priority", "source", "transformed_data"]);
}
