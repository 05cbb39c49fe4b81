//! What a `POST /records` body must be, and how its records are named.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ledger::StreamPartition;

/// A record's identity, for the ledger: which (stream, partition) it
/// belongs to and where it stands in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordIdentity {
    /// The string field `stream`, else the string field `source`, else
    /// `"-"`.
    pub stream: String,
    /// The integer field `partition` (0 to `u64::MAX`), else 0.
    pub partition: u64,
    /// The integer field `sequence`, else the integer field `sequence_id`
    /// (0 to `u64::MAX`), else 0.
    pub sequence: u64,
}

/// The stream of a record that names none.
pub const UNNAMED_STREAM: &str = "-";

impl RecordIdentity {
    /// The identity of `record`. A field of the wrong type (a number for
    /// `stream`, a string or a negative number for `partition`) counts as
    /// absent.
    pub fn of(record: &Map<String, Value>) -> RecordIdentity {
        let string = |name: &str| record.get(name).and_then(Value::as_str);
        let integer = |name: &str| record.get(name).and_then(Value::as_u64);
        RecordIdentity {
            stream: string("stream")
                .or_else(|| string("source"))
                .unwrap_or(UNNAMED_STREAM)
                .to_owned(),
            partition: integer("partition").unwrap_or(0),
            sequence: integer("sequence")
                .or_else(|| integer("sequence_id"))
                .unwrap_or(0),
        }
    }
}

impl RecordIdentity {
    /// The identity as the shared model counts deliveries: its (stream,
    /// partition) and its sequence.
    pub(crate) fn into_delivery(self) -> (StreamPartition, u64) {
        ((self.stream, self.partition), self.sequence)
    }
}

/// Why a body was refused with `400`: a short sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadBody(pub(crate) String);

/// The field of a record, in an array body, that carries its own key.
pub const RECORD_KEY_FIELD: &str = "idempotency_key";

/// What the API reads of a body: its records' identities, in order, and
/// the keys of those that carry one ([`RECORD_KEY_FIELD`], in an array).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Body {
    pub(crate) records: Vec<RecordIdentity>,
    pub(crate) record_keys: Vec<String>,
    /// Whether the body was one object rather than an array.
    pub(crate) single: bool,
}

/// Reads a body: one JSON object, or an array of objects (possibly
/// empty), in order.
pub(crate) fn parse_body(body: &[u8]) -> Result<Body, BadBody> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BadBody(format!("body is not JSON: {e}")))?;
    match value {
        Value::Object(record) => Ok(Body {
            records: vec![RecordIdentity::of(&record)],
            record_keys: Vec::new(),
            single: true,
        }),
        Value::Array(records) => {
            let record_keys = records
                .iter()
                .filter_map(|record| record.get(RECORD_KEY_FIELD)?.as_str())
                .map(str::to_owned)
                .collect();
            let records = identities(&records)?;
            Ok(Body {
                records,
                record_keys,
                single: false,
            })
        }
        other => Err(BadBody(format!(
            "body must be a JSON object or an array of objects, not {}",
            kind(&other)
        ))),
    }
}

fn identities(records: &[Value]) -> Result<Vec<RecordIdentity>, BadBody> {
    records
        .iter()
        .enumerate()
        .map(|(i, element)| match element {
            Value::Object(record) => Ok(RecordIdentity::of(record)),
            other => Err(BadBody(format!(
                "element {i} of the array is {}, not an object",
                kind(other)
            ))),
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn id(stream: &str, partition: u64, sequence: u64) -> RecordIdentity {
        RecordIdentity {
            stream: stream.to_owned(),
            partition,
            sequence,
        }
    }

    #[test]
    fn identities_come_from_fields_with_fallbacks() {
        let body = br#"[
            {"stream": "orders", "source": "ignored", "partition": 2, "sequence": 7, "sequence_id": 9},
            {"source": "system_metrics", "partition": 1, "sequence_id": 4},
            {"stream": 5, "source": "web", "partition": -1, "sequence": "3", "sequence_id": 3},
            {}
        ]"#;
        assert_eq!(
            parse_body(body).unwrap().records,
            vec![
                id("orders", 2, 7),
                id("system_metrics", 1, 4),
                id("web", 0, 3),
                id("-", 0, 0),
            ]
        );
        assert_eq!(
            parse_body(br#"{"stream":"a","sequence":1}"#).unwrap(),
            Body {
                records: vec![id("a", 0, 1)],
                record_keys: vec![],
                single: true
            }
        );
        assert_eq!(parse_body(b"[]").unwrap(), Body::default());
    }

    #[test]
    fn records_of_an_array_carry_their_own_keys() {
        let body = br#"[{"idempotency_key":"sluice-a","sequence":1},{"sequence":2},{"idempotency_key":"sluice-c"}]"#;
        let parsed = parse_body(body).unwrap();
        assert_eq!(parsed.record_keys, ["sluice-a", "sluice-c"]);
        assert!(!parsed.single);
        assert_eq!(parsed.records.len(), 3);
    }

    #[test]
    fn anything_but_an_object_or_an_array_of_objects_is_refused() {
        for (body, says) in [
            (&b"{nope"[..], "not JSON"),
            (b"", "not JSON"),
            (b"42", "not a number"),
            (b"\"text\"", "not a string"),
            (b"null", "not null"),
            (b"[{}, 3]", "element 1 of the array is a number"),
            (b"[[{}]]", "element 0 of the array is an array"),
            (b"{} {}", "not JSON"),
        ] {
            let BadBody(reason) = parse_body(body).unwrap_err();
            assert!(reason.contains(says), "{reason:?} for {body:?}");
        }
    }
}
