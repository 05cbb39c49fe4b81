//! Payloads: well-formed ones per source, and the five problematic kinds.

use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_models::{DataSource, JsonObject, Priority};

/// The problematic payloads the original stream mixes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// A payload of the source's usual shape.
    WellFormed,
    /// `{}`.
    Empty,
    /// A single field.
    Minimal,
    /// Unusual timing fields.
    TimingEdgeCase,
    /// 50 fields `field_i: "value_i"` plus `data_type`.
    Large,
    /// CJK, Arabic, Cyrillic, emoji, accents, currency symbols and one
    /// nested object.
    SpecialCharacters,
}

impl PayloadKind {
    /// The five problematic kinds, drawn uniformly.
    pub const PROBLEMATIC: [PayloadKind; 5] = [
        PayloadKind::Empty,
        PayloadKind::Minimal,
        PayloadKind::TimingEdgeCase,
        PayloadKind::Large,
        PayloadKind::SpecialCharacters,
    ];

    /// Tells a payload's kind from its fields (for tests and reports).
    pub fn classify(source: DataSource, data: &JsonObject) -> PayloadKind {
        if data.is_empty() {
            PayloadKind::Empty
        } else if data.contains_key("data_type") {
            PayloadKind::Large
        } else if data.contains_key("timestamp_hint") {
            PayloadKind::TimingEdgeCase
        } else if data.contains_key("nested") {
            PayloadKind::SpecialCharacters
        } else if data.len() == 1 && data.contains_key(minimal_field(source).0) {
            PayloadKind::Minimal
        } else {
            PayloadKind::WellFormed
        }
    }
}

/// A uniformly drawn priority.
pub(crate) fn priority(rng: &mut impl Rng) -> Priority {
    Priority::ALL[rng.random_range(0..Priority::ALL.len())]
}

/// A payload for `source`: problematic with probability `bad_data_rate`.
pub(crate) fn payload(source: DataSource, bad_data_rate: f64, rng: &mut ChaCha8Rng) -> JsonObject {
    let kind = if bad_data_rate > 0.0 && rng.random_bool(bad_data_rate.min(1.0)) {
        PayloadKind::PROBLEMATIC[rng.random_range(0..PayloadKind::PROBLEMATIC.len())]
    } else {
        PayloadKind::WellFormed
    };
    payload_of_kind(source, kind, rng)
}

/// A payload of the given kind.
pub fn payload_of_kind(source: DataSource, kind: PayloadKind, rng: &mut impl Rng) -> JsonObject {
    let value = match kind {
        PayloadKind::WellFormed => well_formed(source, rng),
        PayloadKind::Empty => json!({}),
        PayloadKind::Minimal => {
            let (field, value) = minimal_field(source);
            json!({ field: value })
        }
        PayloadKind::TimingEdgeCase => json!({
            "timestamp_hint": "edge_case",
            "rapid_processing": true,
            "processing_delay_ms": 0,
        }),
        PayloadKind::Large => {
            let mut large: JsonObject = (0..50)
                .map(|i| (format!("field_{i}"), Value::from(format!("value_{i}"))))
                .collect();
            large.insert("data_type".to_owned(), Value::from("large_payload"));
            Value::Object(large)
        }
        PayloadKind::SpecialCharacters => json!({
            "message": "Hello 世界 مرحبا Привет 🚀",
            "accents": "café naïve résumé Zürich",
            "currency_symbols": "€ £ ¥ ₹ ₿",
            "nested": {"emoji": "🎉✨🔥", "cjk": "中文字符 日本語 한국어"},
        }),
    };
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

fn minimal_field(source: DataSource) -> (&'static str, &'static str) {
    match source {
        DataSource::UserEvents => ("event", "minimal"),
        DataSource::TransactionData => ("type", "test"),
        DataSource::SystemMetrics => ("status", "ok"),
        DataSource::SecurityLogs => ("event", "test"),
    }
}

fn well_formed(source: DataSource, rng: &mut impl Rng) -> Value {
    fn one_of<'a>(rng: &mut impl Rng, choices: &[&'a str]) -> &'a str {
        choices[rng.random_range(0..choices.len())]
    }
    fn tenths(rng: &mut impl Rng) -> f64 {
        f64::from(rng.random_range(0..=1000u32)) / 10.0
    }
    match source {
        DataSource::UserEvents => json!({
            "user_id": format!("user_{}", rng.random_range(1..=1000)),
            "event_type": one_of(rng, &["login", "logout", "purchase", "view"]),
            "value": rng.random_range(1..=500),
        }),
        DataSource::TransactionData => json!({
            "transaction_id": format!("txn_{}", rng.random_range(10_000..=99_999)),
            "amount": f64::from(rng.random_range(1_000..=100_000u32)) / 100.0,
            "currency": one_of(rng, &["USD", "EUR", "GBP"]),
        }),
        DataSource::SystemMetrics => json!({
            "cpu_usage": tenths(rng),
            "memory_usage": tenths(rng),
            "disk_io": rng.random_range(0..=1000),
        }),
        DataSource::SecurityLogs => {
            let octets: [u8; 4] = std::array::from_fn(|_| rng.random_range(1..=255));
            let ip = format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3]);
            json!({
                "ip_address": ip,
                "threat_level": one_of(rng, &["low", "medium", "high"]),
                "blocked": rng.random_bool(0.5),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_kind_is_recognised_for_every_source() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for source in DataSource::ALL {
            for kind in [PayloadKind::WellFormed]
                .into_iter()
                .chain(PayloadKind::PROBLEMATIC)
            {
                let data = payload_of_kind(source, kind, &mut rng);
                assert_eq!(
                    PayloadKind::classify(source, &data),
                    kind,
                    "{source} {data:?}"
                );
            }
        }
    }

    #[test]
    fn well_formed_payloads_match_the_scenario_table() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..200 {
            let user = payload_of_kind(DataSource::UserEvents, PayloadKind::WellFormed, &mut rng);
            let n: u32 = user["user_id"].as_str().unwrap()[5..].parse().unwrap();
            assert!((1..=1000).contains(&n));
            assert!((1..=500).contains(&user["value"].as_i64().unwrap()));

            let txn = payload_of_kind(
                DataSource::TransactionData,
                PayloadKind::WellFormed,
                &mut rng,
            );
            let amount = txn["amount"].as_f64().unwrap();
            assert!((10.0..=1000.0).contains(&amount));
            assert_eq!((amount * 100.0).round() / 100.0, amount);

            let metrics =
                payload_of_kind(DataSource::SystemMetrics, PayloadKind::WellFormed, &mut rng);
            assert!((0.0..=100.0).contains(&metrics["cpu_usage"].as_f64().unwrap()));
            assert!((0..=1000).contains(&metrics["disk_io"].as_i64().unwrap()));

            let log = payload_of_kind(DataSource::SecurityLogs, PayloadKind::WellFormed, &mut rng);
            let parts: Vec<u32> = log["ip_address"]
                .as_str()
                .unwrap()
                .split('.')
                .map(|p| p.parse().unwrap())
                .collect();
            assert_eq!(parts.len(), 4);
            assert!(parts.iter().all(|p| (1..=255).contains(p)));
        }
    }

    #[test]
    fn the_large_payload_has_fifty_fields_and_a_data_type() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let large = payload_of_kind(DataSource::UserEvents, PayloadKind::Large, &mut rng);
        assert_eq!(large.len(), 51);
        assert_eq!(large["field_49"], "value_49");
    }
}
