//! Record identity: open stream names, partitions, sequences.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The most distinct stream names one process can hold.
pub const MAX_STREAMS: usize = 65_536;
/// The longest stream name, in bytes.
pub const MAX_STREAM_NAME_LEN: usize = 255;

/// The name of a stream, such as `orders-eu`: any non-empty text of at
/// most [`MAX_STREAM_NAME_LEN`] bytes.
///
/// Names are interned once per process, so a `StreamName` is a pointer:
/// `Copy`, compared and hashed without touching the text, and free to move
/// between threads on the hot path. The intern table keeps at most
/// [`MAX_STREAMS`] names; that bound is what keeps an input with endless
/// new names from growing memory without limit (such records are
/// dead-lettered by the profile that names them).
///
/// ```
/// use sluice_processor::StreamName;
///
/// let a = StreamName::new("orders-eu").unwrap();
/// let b = StreamName::new("orders-eu").unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.as_str(), "orders-eu");
/// assert!(StreamName::new("").is_err());
/// ```
#[derive(Clone, Copy)]
pub struct StreamName(&'static Entry);

#[derive(Debug)]
struct Entry {
    name: Box<str>,
    index: u32,
}

/// A stream name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamNameError {
    /// The name is empty.
    #[error("a stream name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_STREAM_NAME_LEN`] bytes.
    #[error("stream name of {0} bytes is longer than the {MAX_STREAM_NAME_LEN} allowed")]
    TooLong(usize),
    /// The process already holds [`MAX_STREAMS`] names.
    #[error("too many distinct stream names (at most {MAX_STREAMS} per process)")]
    TooMany,
}

/// The process's interned names, by text and by index.
#[derive(Default)]
struct Table {
    by_name: HashMap<&'static str, StreamName>,
    by_index: Vec<StreamName>,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

impl StreamName {
    /// The interned name `name`.
    ///
    /// # Errors
    /// [`StreamNameError`] when the name is empty, too long, or new while
    /// the table is full.
    pub fn new(name: &str) -> Result<StreamName, StreamNameError> {
        if name.is_empty() {
            return Err(StreamNameError::Empty);
        }
        if name.len() > MAX_STREAM_NAME_LEN {
            return Err(StreamNameError::TooLong(name.len()));
        }
        let mut table = table().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&interned) = table.by_name.get(name) {
            return Ok(interned);
        }
        if table.by_index.len() >= MAX_STREAMS {
            return Err(StreamNameError::TooMany);
        }
        // Leaked on purpose: interned names live as long as the process,
        // and the table's bound caps what that can cost (at most
        // MAX_STREAMS × MAX_STREAM_NAME_LEN bytes).
        let index = u32::try_from(table.by_index.len()).map_err(|_| StreamNameError::TooMany)?;
        let entry: &'static Entry = Box::leak(Box::new(Entry {
            name: name.into(),
            index,
        }));
        let interned = StreamName(entry);
        table.by_name.insert(&entry.name, interned);
        table.by_index.push(interned);
        Ok(interned)
    }

    /// The names of indices `0..count` (fewer if fewer are interned).
    pub(crate) fn first(count: usize) -> Vec<StreamName> {
        let table = table().lock().unwrap_or_else(PoisonError::into_inner);
        table.by_index.iter().take(count).copied().collect()
    }

    /// The name's text.
    pub fn as_str(self) -> &'static str {
        &self.0.name
    }

    /// A dense index, unique per name in this process, for counters kept
    /// in vectors.
    pub(crate) fn index(self) -> usize {
        self.0.index as usize
    }
}

impl PartialEq for StreamName {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for StreamName {}

impl Hash for StreamName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.index.hash(state);
    }
}

impl PartialOrd for StreamName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StreamName {
    /// By text, so that reports list streams alphabetically.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for StreamName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The identity of a record: unique per run, ordered within a partition.
///
/// As in Kafka, a stream is split into partitions, each independently
/// ordered; `sequence` is the record's position in its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct RecordId {
    /// The stream.
    pub stream: StreamName,
    /// The partition of the stream.
    pub partition: u32,
    /// Position in its partition.
    pub sequence: u64,
}

impl RecordId {
    /// The (stream, partition) the record belongs to: the unit of ordering.
    pub fn partition_id(&self) -> PartitionId {
        PartitionId {
            stream: self.stream,
            partition: self.partition,
        }
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.stream, self.partition, self.sequence)
    }
}

/// A (stream, partition): one independently ordered sequence of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PartitionId {
    /// The stream.
    pub stream: StreamName,
    /// The partition of the stream.
    pub partition: u32,
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_and_checked() {
        let a = StreamName::new("clicks").unwrap();
        assert_eq!(a, StreamName::new("clicks").unwrap());
        assert_ne!(a, StreamName::new("clicks-2").unwrap());
        assert_eq!(StreamName::new(""), Err(StreamNameError::Empty));
        let long = "x".repeat(MAX_STREAM_NAME_LEN + 1);
        assert_eq!(
            StreamName::new(&long),
            Err(StreamNameError::TooLong(MAX_STREAM_NAME_LEN + 1))
        );
        assert!(StreamName::new(&long[1..]).is_ok());
    }

    #[test]
    fn ids_order_by_stream_text_then_partition_then_sequence() {
        let b = StreamName::new("b-stream").unwrap();
        let a = StreamName::new("a-stream").unwrap();
        let id = |stream, partition, sequence| RecordId {
            stream,
            partition,
            sequence,
        };
        assert!(id(a, 9, 9) < id(b, 0, 0));
        assert!(id(a, 0, 9) < id(a, 1, 0));
        assert_eq!(id(a, 3, 4).to_string(), "a-stream/3#4");
        assert_eq!(id(a, 3, 4).partition_id().to_string(), "a-stream/3");
    }
}
