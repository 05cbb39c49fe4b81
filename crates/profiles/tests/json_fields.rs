//! How the `json` profile reads its identity and priority fields: the
//! values of top-level keys and of JSON Pointers, duplicate keys, mistyped
//! values, and what makes a record "not JSON" once its fields are read.
//!
//! Without a schema the profile reads only the top-level keys its fields
//! need; with one it parses the whole record (the schema needs it). A
//! schema that accepts everything (`{}`) therefore gives the whole-record
//! reading, and every outcome must be the same both ways.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::json;
use sluice_processor::RecordId;
use sluice_profiles::json::{JsonProfile, JsonProfileConfig};

mod common;

use common::{Outcome, id, position, run};

/// The fields, each `None` when not configured.
type Specs = [Option<&'static str>; 4];

/// A profile reading `specs` (stream, partition, sequence, priority),
/// without a schema (`whole` false) or with one that accepts everything.
fn profile(specs: Specs, whole: bool) -> JsonProfile {
    let [stream, partition, sequence, priority] = specs.map(|spec| spec.map(str::to_owned));
    JsonProfile::new(JsonProfileConfig {
        stream_field: stream,
        partition_field: partition,
        sequence_field: sequence,
        priority_field: priority,
        schema: whole.then(|| json!({})),
    })
    .unwrap()
}

/// The outcome of `text` read as `specs` say, after checking that reading
/// the whole record gives the same.
fn both(specs: Specs, text: &str) -> Outcome {
    let light = run(&profile(specs, false), text, 5);
    let whole = run(&profile(specs, true), text, 5);
    assert_eq!(light, whole, "{specs:?} on {text}");
    light
}

/// The reason `text` is rejected for, read as `specs` say (both ways).
fn refusal(specs: Specs, text: &str, expected_id: RecordId) -> String {
    let rejected = both(specs, text).expect_err("the record should be rejected");
    assert_eq!(rejected.id, expected_id, "{}", rejected.reason);
    assert_eq!(rejected.raw.as_deref(), Some(text.trim()));
    rejected.reason
}

const ALL: Specs = [
    Some("stream"),
    Some("partition"),
    Some("seq"),
    Some("priority"),
];

#[test]
fn pointer_fields_unescape_their_first_segment_and_follow_the_rest() {
    let specs = [
        Some("/p~1q/name"),
        Some("/m~0n/0"),
        Some("/~01/deep/seq"),
        Some("/meta/a~1b"),
    ];
    let text = r#"{"p/q":{"name":"clicks"},"m~n":[3,"x"],"~1":{"deep":{"seq":12}},
        "meta":{"a/b":200},"p":{"q":{"name":"wrong"}},"m":{"n":[9]}}"#;
    let done = both(specs, text).unwrap();
    assert_eq!(done.id, id("clicks", 3, 12));
    assert_eq!(done.priority, 200);

    // The same keys read as the top-level keys they are, unescaped.
    let specs = [Some("p/q"), None, Some(r"~1"), None];
    let text = r#"{"p\/q":"plain","~1":4,"s\u0074ream":"x"}"#;
    assert_eq!(both(specs, text).unwrap().id, id("plain", 0, 4));
    let specs = [Some("stream"), None, Some("/~01"), None];
    assert_eq!(both(specs, text).unwrap().id, id("x", 0, 4));
}

#[test]
fn a_pointer_the_record_does_not_have_is_missing() {
    let specs = [Some("stream"), None, Some("/meta/seq"), None];
    for text in [
        r#"{"stream":"s","meta":{"other":1}}"#,
        r#"{"stream":"s","meta":7}"#,
        r#"{"stream":"s","meta":null}"#,
        r#"{"stream":"s","meta":[1,2]}"#,
        r#"{"stream":"s"}"#,
        r#"{"stream":"s","metaa":{"seq":1},"/meta/seq":2}"#,
    ] {
        let reason = refusal(specs, text, position(5));
        assert_eq!(reason, "field `/meta/seq` is missing", "{text}");
    }
    // An array index past its end, and one not a number.
    let specs = [Some("stream"), None, Some("/list/2"), None];
    let reason = refusal(specs, r#"{"stream":"s","list":[0,1]}"#, position(5));
    assert_eq!(reason, "field `/list/2` is missing");
    let specs = [Some("stream"), None, Some("/list/-"), None];
    let reason = refusal(specs, r#"{"stream":"s","list":[0,1]}"#, position(5));
    assert_eq!(reason, "field `/list/-` is missing");
}

#[test]
fn of_duplicate_keys_the_last_one_counts() {
    let specs = [Some("stream"), None, Some("seq"), Some("/meta/p")];
    let text = r#"{"seq":1,"stream":"first","meta":{"p":3},"seq":2,"stream":"last"}"#;
    let done = both(specs, text).unwrap();
    assert_eq!(done.id, id("last", 0, 2));
    assert_eq!(done.priority, 3);

    // A later object replaces an earlier one whole; they are not merged.
    let text = r#"{"stream":"s","seq":1,"meta":{"p":3},"meta":{"q":4}}"#;
    let reason = refusal(specs, text, id("s", 0, 1));
    assert_eq!(reason, "field `/meta/p` is missing");

    // A valid value does not save a record whose later duplicate is bad.
    let text = r#"{"stream":"s","seq":1,"seq":"one","meta":{"p":3}}"#;
    let reason = refusal(specs, text, position(5));
    assert_eq!(
        reason,
        "field `seq` must be an integer in 0..=18446744073709551615, found a string"
    );
}

#[test]
fn an_object_or_array_where_a_scalar_belongs_is_mistyped() {
    let text = r#"{"stream":{"name":"s"},"partition":[0],"seq":{},"priority":[]}"#;
    let reason = refusal(ALL, text, position(5));
    assert_eq!(
        reason,
        concat!(
            "field `stream` must be a non-empty string, found an object; ",
            "field `priority` must be an integer in 0..=255, found an array"
        )
    );
    let text = r#"{"stream":"s","partition":[0],"seq":{},"priority":1}"#;
    let reason = refusal(ALL, text, position(5));
    assert_eq!(
        reason,
        "field `partition` must be an integer in 0..=4294967295, found an array"
    );
    let text = r#"{"stream":"s","partition":0,"seq":{"n":1},"priority":1}"#;
    let reason = refusal(ALL, text, position(5));
    assert_eq!(
        reason,
        "field `seq` must be an integer in 0..=18446744073709551615, found an object"
    );
}

#[test]
fn text_that_is_not_an_object_is_refused_before_any_field_is_read() {
    for (text, found) in [
        (" [ {\"stream\":\"s\"} ] ", "an array"),
        ("\"{}\"", "a string"),
        ("12", "a number"),
        ("false", "a boolean"),
        ("null", "null"),
    ] {
        let reason = refusal(ALL, text, position(5));
        assert_eq!(reason, format!("not a JSON object: found {found}"));
    }
    let reason = refusal(ALL, r#"{"stream":"s","seq":1"#, position(5));
    assert_eq!(
        reason,
        "not JSON: EOF while parsing an object at line 1 column 21"
    );
}

/// What the syntax check alone lets through but reading the record as
/// JSON values does not: the record is still refused as not JSON, even
/// when the problem is in a key no field reads.
#[test]
fn values_serde_json_cannot_hold_make_the_record_not_json() {
    let deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
    let cases = [
        (
            r#"{"stream":"s","note":"\udc00","seq":1,"partition":0,"priority":0}"#.to_owned(),
            "not JSON: lone leading surrogate in hex escape at line 1 column 28",
        ),
        (
            r#"{"stream":"s","note":"\ud800x","seq":1,"partition":0,"priority":0}"#.to_owned(),
            "not JSON: unexpected end of hex escape at line 1 column 29",
        ),
        (
            r#"{"stream":"s","x":[1e400],"seq":1,"partition":0,"priority":0}"#.to_owned(),
            "not JSON: number out of range at line 1 column 24",
        ),
        (
            format!(r#"{{"stream":"s","seq":1,"partition":0,"priority":0,"x":{deep}}}"#),
            "not JSON: recursion limit exceeded at line 1 column 180",
        ),
        (
            r#"{"stream":"s","seq":1,"partition":0,"priority":0,"x":{"\ud800":1}}"#.to_owned(),
            "not JSON: unexpected end of hex escape at line 1 column 62",
        ),
    ];
    let plain = JsonProfile::new(JsonProfileConfig::default()).unwrap();
    for (text, expected) in cases {
        assert_eq!(refusal(ALL, &text, position(5)), expected);
        // Only read, not checked, when no field is configured.
        assert!(run(&plain, &text, 5).is_ok(), "{text}");
    }
}

/// serde_json reads an object whose first key is its private raw-value
/// token as the JSON in that key's string; the fields see what it reads.
#[test]
fn serde_jsons_raw_value_token_reads_as_it_always_did() {
    let specs = [Some("stream"), None, Some("/meta/seq"), None];
    let token = "$serde_json::private::RawValue";
    let text = format!(r#"{{"stream":"s","meta":{{"{token}":"{{\"seq\":4}}"}}}}"#);
    assert_eq!(both(specs, &text).unwrap().id, id("s", 0, 4));

    let text = format!(r#"{{"{token}":"{{\"stream\":\"t\",\"meta\":{{\"seq\":6}}}}"}}"#);
    assert_eq!(both(specs, &text).unwrap().id, id("t", 0, 6));

    // As a later key it is an ordinary key.
    let text = format!(r#"{{"stream":"s","meta":{{"seq":2,"{token}":5}}}}"#);
    assert_eq!(both(specs, &text).unwrap().id, id("s", 0, 2));

    // Not a string, in a key no field reads.
    let text = format!(r#"{{"stream":"s","meta":{{"seq":2}},"x":{{"{token}":5}}}}"#);
    let reason = refusal(specs, &text, position(5));
    assert!(
        reason.starts_with("not JSON: invalid type: integer `5`"),
        "{reason}"
    );
}

// ---- The property: reading the fields alone is reading the whole record.

/// A key of the generated objects: the fields' keys, some escaped, and
/// others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("stream"),
        Just("partition"),
        Just("seq"),
        Just("priority"),
        Just("meta"),
        Just("list"),
        Just("a/b"),
        Just(r"a\/b"),
        Just("m~n"),
        Just("~1"),
        Just(""),
        Just(r"s\u0074ream"),
        Just("x"),
        Just("$serde_json::private::RawValue"),
    ]
    .prop_map(|key| format!("\"{key}\""))
}

/// A JSON scalar's text, some of them beyond what serde_json holds.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u64..300).prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        2 => prop_oneof![
            Just("1.5"), Just("2.0"), Just("-0"), Just("1e2"), Just("7E0"),
            Just("18446744073709551616"), Just("1e400"), Just("-1e400"),
        ].prop_map(str::to_owned),
        4 => prop_oneof![
            Just(r#""s""#), Just(r#""orders-eu""#), Just(r#""""#), Just(r#""caf\u00e9""#),
            Just(r#""\ud83d\ude80""#), Just(r#""\udc00""#), Just(r#""\ud800x""#),
            Just(r#""{\"seq\":3}""#), Just(r#""7""#), Just(r#""[1,"#),
        ].prop_map(str::to_owned),
        1 => Just("x".repeat(300)).prop_map(|s| format!("\"{s}\"")),
        2 => prop_oneof![Just("true"), Just("false"), Just("null")].prop_map(str::to_owned),
        1 => (125usize..132).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
    ]
}

/// A JSON value's text: scalars, arrays and objects, with JSON whitespace.
fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| { format!("[{}]", items.join(" ,")) }),
            prop::collection::vec((key(), inner), 0..5).prop_map(|entries| object(&entries)),
        ]
    })
}

fn object(entries: &[(String, String)]) -> String {
    let entries: Vec<String> = entries.iter().map(|(k, v)| format!("{k} :{v}")).collect();
    format!("{{ {}\n}}", entries.join(",\t"))
}

/// A field as configured: top-level keys and pointers.
fn spec() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::weighted(
        0.8,
        prop_oneof![
            Just("stream"),
            Just("partition"),
            Just("seq"),
            Just("priority"),
            Just("a/b"),
            Just("/meta/seq"),
            Just("/meta/stream"),
            Just("/meta/a~1b"),
            Just("/m~0n/0"),
            Just("/~01"),
            Just("/list/1"),
            Just("/list/0/seq"),
            Just("/"),
            Just("/meta"),
            Just("/stream"),
            Just("/meta//x"),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn reading_the_fields_alone_is_reading_the_whole_record(
        specs in [spec(), spec(), spec(), spec()],
        entries in prop::collection::vec((key(), value()), 0..8),
        leading in "[ \t\n]{0,2}",
    ) {
        let text = format!("{leading}{}", object(&entries));
        // With no field, nothing is read without a schema.
        prop_assume!(specs.iter().any(Option::is_some));
        let light = run(&profile(specs, false), &text, 5);
        let whole = run(&profile(specs, true), &text, 5);
        prop_assert_eq!(light, whole);
    }
}
