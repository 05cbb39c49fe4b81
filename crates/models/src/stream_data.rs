//! Records as they arrive from a source.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{DataSource, Priority};

/// A JSON object: the payload of a record.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// One record as a source emits it.
///
/// As in Kafka, a source may be split into partitions, each an independent
/// ordered stream: `sequence_id` counts from 1 per (source, partition), and
/// order is promised per (source, partition) only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamData {
    /// The source that emitted the record.
    pub source: DataSource,
    /// The partition of the source; 0 when the source is not partitioned.
    #[serde(default)]
    pub partition: u32,
    /// Emission time, epoch seconds.
    pub timestamp: f64,
    /// How urgent the record is.
    pub priority: Priority,
    /// The payload.
    pub data: JsonObject,
    /// Position in its (source, partition), counting from 1.
    pub sequence_id: u64,
}

impl StreamData {
    /// The record's identity: (source, partition, sequence_id).
    pub fn key(&self) -> RecordKey {
        RecordKey {
            source: self.source,
            partition: self.partition,
            sequence_id: self.sequence_id,
        }
    }
}

/// The identity of a record: unique per run, ordered within a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    /// The source that emitted the record.
    pub source: DataSource,
    /// The partition of the source.
    pub partition: u32,
    /// Position in its (source, partition), counting from 1.
    pub sequence_id: u64,
}

impl RecordKey {
    /// The (source, partition) the record belongs to: the unit of ordering.
    pub fn partition_key(&self) -> PartitionKey {
        PartitionKey {
            source: self.source,
            partition: self.partition,
        }
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.source, self.partition, self.sequence_id)
    }
}

/// A (source, partition): one independently ordered stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionKey {
    /// The source.
    pub source: DataSource,
    /// The partition of the source.
    pub partition: u32,
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_defaults_to_zero_when_absent() {
        let json = r#"{"source":"user_events","timestamp":1.5,"priority":3,"data":{"a":1},"sequence_id":7}"#;
        let record: StreamData = serde_json::from_str(json).unwrap();
        assert_eq!(record.partition, 0);
        assert_eq!(record.key().to_string(), "user_events/0#7");
    }

    #[test]
    fn keys_order_by_source_then_partition_then_sequence() {
        let key = |partition, sequence_id| RecordKey {
            source: DataSource::UserEvents,
            partition,
            sequence_id,
        };
        assert!(key(0, 9) < key(1, 1));
        assert!(key(1, 1) < key(1, 2));
        assert_eq!(key(3, 4).partition_key().to_string(), "user_events/3");
    }
}
