//! The `json` profile, record by record: identity, rejections and their
//! reasons, schema validation, raw text kept for dead letters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sluice_processor::{Context, RecordId, Transform};
use sluice_profiles::json::{
    JsonProfile, JsonProfileConfig, JsonProfileError, JsonRecord, MAX_RAW_BYTES, MAX_SCHEMA_ERRORS,
};

mod common;

use common::{Outcome, file, id, position, run};

fn fields(stream: &str, partition: &str, sequence: &str, priority: &str) -> JsonProfile {
    JsonProfile::new(JsonProfileConfig {
        stream_field: Some(stream.into()),
        partition_field: Some(partition.into()),
        sequence_field: Some(sequence.into()),
        priority_field: Some(priority.into()),
        schema: None,
    })
    .unwrap()
}

fn top_level() -> JsonProfile {
    fields("stream", "partition", "seq", "priority")
}

fn with_schema(schema: serde_json::Value) -> JsonProfile {
    JsonProfile::new(JsonProfileConfig {
        stream_field: Some("stream".into()),
        sequence_field: Some("seq".into()),
        schema: Some(schema),
        ..JsonProfileConfig::default()
    })
    .unwrap()
}

fn amount_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": { "amount": { "type": "number", "minimum": 0 } },
        "required": ["amount"],
    })
}

/// The rejection's reason, after checking what every rejection carries.
fn rejected(outcome: Outcome, text: &str, expected_id: RecordId) -> String {
    let rejected = outcome.expect_err("the record should be rejected");
    assert_eq!(rejected.id, expected_id, "{}", rejected.reason);
    assert_eq!(rejected.record, None);
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r']);
    assert_eq!(rejected.raw.as_deref(), Some(trimmed));
    rejected.reason
}

#[test]
fn identity_and_priority_come_from_top_level_fields() {
    let text = r#"{"stream":"orders-eu","partition":3,"seq":42,"priority":7,"x":null}"#;
    let done = run(&top_level(), text, 1).unwrap();
    assert_eq!(done.id, id("orders-eu", 3, 42));
    assert_eq!(done.priority, 7);
    assert_eq!(done.bytes, text.len());
}

#[test]
fn identity_and_priority_come_from_json_pointers() {
    let profile = fields("/meta/stream", "/meta/p", "/meta/seq/0", "/meta/a~1b");
    let text = r#"{"meta":{"stream":"clicks","p":1,"seq":[9],"a/b":255},"stream":"no"}"#;
    let done = run(&profile, text, 1).unwrap();
    assert_eq!(done.id, id("clicks", 1, 9));
    assert_eq!(done.priority, 255);
}

#[test]
fn a_field_without_a_leading_slash_is_a_top_level_key() {
    let profile = JsonProfile::new(JsonProfileConfig {
        stream_field: Some("a/b".into()),
        ..JsonProfileConfig::default()
    })
    .unwrap();
    let done = run(&profile, r#"{"a/b":"slashed","a":{"b":"nested"}}"#, 4).unwrap();
    assert_eq!(done.id, id("slashed", 0, 4));
}

#[test]
fn identity_is_the_position_when_no_field_is_configured() {
    let profile = JsonProfile::new(JsonProfileConfig::default()).unwrap();
    let text = r#"{"stream":"ignored","seq":5,"priority":9}"#;
    let input = common::raw(
        text,
        RecordId {
            stream: file(),
            partition: 2,
            sequence: 17,
        },
    );
    let done = profile.transform(input, &mut Context::new(0.0)).unwrap();
    assert_eq!(
        done.id,
        RecordId {
            stream: file(),
            partition: 2,
            sequence: 17
        }
    );
    assert_eq!(done.priority, 0);

    // Only the configured fields are read; the others stay the position's.
    let profile = JsonProfile::new(JsonProfileConfig {
        sequence_field: Some("seq".into()),
        ..JsonProfileConfig::default()
    })
    .unwrap();
    assert_eq!(run(&profile, text, 3).unwrap().id, id("input.jsonl", 0, 5));
}

#[test]
fn the_record_is_sent_byte_for_byte_as_received_trimmed() {
    let plain = JsonProfile::new(JsonProfileConfig::default()).unwrap();
    let checked = with_schema(json!({"type": "object"}));
    let line = "  {\"b\" : 1.50,\"a\":[1, 2 ,3], \"é\":\"\\u00e9\", \"n\": 1e2}\r\n";
    let with_fields = " {\"n\": 1.0, \"seq\": 1 , \"stream\":\"s\",\"z\":\"\\/\"}\n";
    for (profile, line) in [(&plain, line), (&checked, with_fields)] {
        let done = run(profile, line, 1).unwrap();
        assert_eq!(done.record.as_str(), line.trim());
        assert_eq!(done.record.to_string(), line.trim());
        assert_eq!(serde_json::to_string(&done.record).unwrap(), line.trim());
        let nested = serde_json::to_string(&[&done.record]).unwrap();
        assert_eq!(nested, format!("[{}]", line.trim()));
        assert_eq!(done.bytes, line.trim().len());
    }
}

#[test]
fn text_that_is_not_json_is_rejected_with_line_and_column() {
    let profile = JsonProfile::new(JsonProfileConfig::default()).unwrap();
    for (text, at) in [
        (r#"{"a": 1,"#, "line 1 column 8"),
        (
            "{\"a\": 1}\n{\"b\": 2}",
            "trailing characters at line 2 column 1",
        ),
        ("", "line 1 column 0"),
        ("{}\u{a0}", "trailing characters at line 1 column 3"),
    ] {
        let reason = rejected(run(&profile, text, 6), text, position(6));
        assert!(reason.starts_with("not JSON: "), "{reason}");
        assert!(reason.contains(at), "{reason}");
    }
}

#[test]
fn json_that_is_not_an_object_is_rejected_saying_what_it_is() {
    let profile = top_level();
    for (text, found) in [
        ("[1, 2]", "an array"),
        (r#""text""#, "a string"),
        ("-3.5", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        let reason = rejected(run(&profile, text, 2), text, position(2));
        assert_eq!(reason, format!("not a JSON object: found {found}"));
    }
}

#[test]
fn a_missing_identity_field_rejects_the_record_naming_the_field() {
    let text = r#"{"partition":0,"seq":1,"priority":1}"#;
    let reason = rejected(run(&top_level(), text, 8), text, position(8));
    assert_eq!(reason, "field `stream` is missing");

    let profile = fields("/meta/stream", "/meta/p", "/meta/seq", "/meta/priority");
    let text = r#"{"meta":{"stream":"s","p":0,"priority":1}}"#;
    let reason = rejected(run(&profile, text, 9), text, position(9));
    assert_eq!(reason, "field `/meta/seq` is missing");
}

#[test]
fn a_mistyped_identity_field_rejects_the_record_saying_what_was_wrong() {
    let long = "x".repeat(300);
    let cases = [
        (
            json!({"stream": 5, "partition": 0, "seq": 1, "priority": 0}),
            "field `stream` must be a non-empty string, found the number 5".to_owned(),
        ),
        (
            json!({"stream": "", "partition": 0, "seq": 1, "priority": 0}),
            "field `stream` must be a non-empty string, found an empty string".to_owned(),
        ),
        (
            json!({"stream": long, "partition": 0, "seq": 1, "priority": 0}),
            "field `stream`: stream name of 300 bytes is longer than the 255 allowed".to_owned(),
        ),
        (
            json!({"stream": "s", "partition": -1, "seq": 1, "priority": 0}),
            "field `partition` must be an integer in 0..=4294967295, found the number -1"
                .to_owned(),
        ),
        (
            json!({"stream": "s", "partition": 4_294_967_296_u64, "seq": 1, "priority": 0}),
            "field `partition` must be an integer in 0..=4294967295, found the number 4294967296"
                .to_owned(),
        ),
        (
            json!({"stream": "s", "partition": 0, "seq": "7", "priority": 0}),
            "field `seq` must be an integer in 0..=18446744073709551615, found a string".to_owned(),
        ),
        (
            json!({"stream": "s", "partition": 0, "seq": 1.5, "priority": 0}),
            "field `seq` must be an integer in 0..=18446744073709551615, found the number 1.5"
                .to_owned(),
        ),
        (
            json!({"stream": "s", "partition": 0, "seq": [1], "priority": 0}),
            "field `seq` must be an integer in 0..=18446744073709551615, found an array".to_owned(),
        ),
    ];
    for (record, expected) in cases {
        let text = record.to_string();
        let reason = rejected(run(&top_level(), &text, 11), &text, position(11));
        assert_eq!(reason, expected);
    }
}

#[test]
fn a_priority_out_of_range_is_rejected_keeping_the_fields_identity() {
    for (priority, found) in [
        ("256", "the number 256"),
        ("-1", "the number -1"),
        ("2.0", "the number 2.0"),
        (r#""high""#, "a string"),
        ("null", "null"),
    ] {
        let text = format!(r#"{{"stream":"s","partition":1,"seq":2,"priority":{priority}}}"#);
        let reason = rejected(run(&top_level(), &text, 3), &text, id("s", 1, 2));
        assert_eq!(
            reason,
            format!("field `priority` must be an integer in 0..=255, found {found}")
        );
    }
    let text = r#"{"stream":"s","partition":1,"seq":2,"priority":0}"#;
    assert_eq!(run(&top_level(), text, 3).unwrap().priority, 0);
}

#[test]
fn a_schema_failure_names_the_message_and_the_instance_path() {
    let profile = with_schema(amount_schema());
    let text = r#"{"stream":"orders-eu","seq":4,"amount":-2}"#;
    let reason = rejected(run(&profile, text, 1), text, id("orders-eu", 0, 4));
    assert_eq!(reason, "schema: /amount: -2 is less than the minimum of 0");

    let text = r#"{"stream":"orders-eu","seq":5}"#;
    let reason = rejected(run(&profile, text, 1), text, id("orders-eu", 0, 5));
    assert_eq!(reason, r#"schema: (root): "amount" is a required property"#);

    let text = r#"{"stream":"orders-eu","seq":6,"amount":12.5}"#;
    assert_eq!(run(&profile, text, 1).unwrap().id, id("orders-eu", 0, 6));
}

#[test]
fn several_schema_failures_are_joined_and_capped() {
    let profile = with_schema(json!({
        "type": "object",
        "properties": { "items": { "type": "array", "items": { "type": "integer" } } },
    }));
    let items: Vec<String> = (0..8).map(|i| format!(r#""i{i}""#)).collect();
    let text = format!(r#"{{"stream":"s","seq":1,"items":[{}]}}"#, items.join(","));
    let reason = rejected(run(&profile, &text, 1), &text, id("s", 0, 1));
    let listed: Vec<&str> = reason.trim_start_matches("schema: ").split("; ").collect();
    assert_eq!(listed.len(), MAX_SCHEMA_ERRORS + 1, "{reason}");
    assert_eq!(listed[0], r#"/items/0: "i0" is not of type "integer""#);
    assert_eq!(listed[4], r#"/items/4: "i4" is not of type "integer""#);
    assert_eq!(listed[5], "and 3 more");
}

#[test]
fn a_long_schema_message_is_cut() {
    let profile = with_schema(json!({ "properties": { "big": { "type": "string" } } }));
    let big: Vec<u32> = (0..500).collect();
    let text = json!({"stream": "s", "seq": 1, "big": big}).to_string();
    let reason = rejected(run(&profile, &text, 1), &text, id("s", 0, 1));
    assert!(reason.starts_with("schema: /big: [0,1,2,"), "{reason}");
    assert!(reason.ends_with('…'), "{reason}");
    assert!(reason.len() < 300, "{} bytes", reason.len());
}

#[test]
fn a_schema_failure_with_a_bad_identity_uses_the_position_and_says_both() {
    let profile = with_schema(amount_schema());
    let text = r#"{"stream":7,"seq":4,"amount":"x"}"#;
    let reason = rejected(run(&profile, text, 12), text, position(12));
    assert_eq!(
        reason,
        concat!(
            r#"schema: /amount: "x" is not of type "number"; "#,
            "field `stream` must be a non-empty string, found the number 7"
        )
    );
}

#[test]
fn raw_text_is_cut_on_a_char_boundary() {
    let profile = JsonProfile::new(JsonProfileConfig::default()).unwrap();
    // `["` then three-byte chars: byte MAX_RAW_BYTES falls inside one.
    let text = format!(r#"["{}"]"#, "€".repeat(2000));
    assert!(!text.is_char_boundary(MAX_RAW_BYTES));
    let rejected = run(&profile, &text, 1).unwrap_err();
    let raw = rejected.raw.unwrap();
    assert_eq!(raw.len(), 2 + 3 * ((MAX_RAW_BYTES - 2) / 3));
    assert!(raw.len() <= MAX_RAW_BYTES && raw.len() > MAX_RAW_BYTES - 3);
    assert!(text.starts_with(&raw));
    assert_eq!(rejected.reason, "not a JSON object: found an array");

    // Not JSON, long, with two-byte chars after an odd prefix.
    let text = format!(r#"{{ "{}"#, "é".repeat(4000));
    assert!(!text.is_char_boundary(MAX_RAW_BYTES));
    let raw = run(&profile, &text, 1).unwrap_err().raw.unwrap();
    assert!(text.starts_with(&raw) && raw.len() == MAX_RAW_BYTES - 1);
}

#[test]
fn bad_configurations_are_refused_naming_the_problem() {
    let error = JsonProfile::new(JsonProfileConfig {
        schema: Some(json!({"type": "nope"})),
        ..JsonProfileConfig::default()
    })
    .unwrap_err();
    assert!(matches!(error, JsonProfileError::InvalidSchema(_)));
    let message = error.to_string();
    assert!(message.starts_with("invalid JSON Schema: "), "{message}");
    assert!(message.contains("nope"), "{message}");

    let error = JsonProfile::new(JsonProfileConfig {
        schema: Some(json!({"minimum": "zero"})),
        ..JsonProfileConfig::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("/minimum"), "{error}");

    let error = JsonProfile::new(JsonProfileConfig {
        partition_field: Some(String::new()),
        ..JsonProfileConfig::default()
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the partition field is configured with an empty name"
    );
}

#[test]
fn a_schema_file_is_read_and_its_failures_name_the_path() {
    let dir = std::env::temp_dir().join(format!("sluice-json-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let good = dir.join("amount.schema.json");
    std::fs::write(&good, amount_schema().to_string()).unwrap();
    let config = JsonProfileConfig::default()
        .with_schema_file(&good)
        .unwrap();
    assert_eq!(config.schema, Some(amount_schema()));

    let missing = dir.join("missing.schema.json");
    let error = JsonProfileConfig::default()
        .with_schema_file(&missing)
        .unwrap_err();
    assert!(matches!(error, JsonProfileError::ReadSchema { .. }));
    assert!(
        error.to_string().contains(&*missing.to_string_lossy()),
        "{error}"
    );

    let broken = dir.join("broken.schema.json");
    std::fs::write(&broken, "{\"type\": \n").unwrap();
    let error = JsonProfileConfig::default()
        .with_schema_file(&broken)
        .unwrap_err();
    assert!(matches!(error, JsonProfileError::SchemaNotJson { .. }));
    assert!(
        error.to_string().contains(&*broken.to_string_lossy()),
        "{error}"
    );
    assert!(error.to_string().contains("line 2"), "{error}");

    let invalid = dir.join("invalid.schema.json");
    std::fs::write(&invalid, r#"{"type": 12}"#).unwrap();
    let error = JsonProfileConfig::default()
        .with_schema_file(&invalid)
        .unwrap_err();
    assert!(matches!(error, JsonProfileError::InvalidSchemaFile { .. }));
    assert!(
        error.to_string().contains(&*invalid.to_string_lossy()),
        "{error}"
    );

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_configuration_deserializes_and_refuses_unknown_keys() {
    let config: JsonProfileConfig = serde_json::from_value(json!({
        "stream_field": "/meta/stream",
        "schema": {"type": "object"},
    }))
    .unwrap();
    assert_eq!(config.stream_field.as_deref(), Some("/meta/stream"));
    assert_eq!(config.sequence_field, None);
    let typo = serde_json::from_value::<JsonProfileConfig>(json!({"stream": "x"}));
    assert!(
        typo.unwrap_err()
            .to_string()
            .contains("unknown field `stream`")
    );
}

#[test]
fn the_profile_can_be_shared_between_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<JsonProfile>();
    shared::<JsonRecord>();
}
