//! The core's source payload: a record as a source read it, before any
//! profile has looked inside.

use std::fmt;
use std::sync::Arc;

use crate::key::RecordKey;
use crate::stream::RecordId;

/// The input a record came from, as its source names it: a file's
/// canonical path, `-` for stdin, `nats://HOST:PORT/STREAM` for a
/// JetStream stream. Shown where a user looks for a record (dead letters,
/// logs); cheap to clone (one shared string per input).
///
/// ```
/// use sluice_processor::Origin;
///
/// let origin = Origin::new("/data/orders.ndjson");
/// assert_eq!(origin.as_str(), "/data/orders.ndjson");
/// assert_eq!(origin.clone(), origin);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(Arc<str>);

impl Origin {
    /// The input named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Origin {
        Origin(name.into())
    }

    /// The input's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record as a source read it: its text, where it was found, and which
/// input it came from. Sources yield `Incoming<RawRecord>`; a profile (a
/// [`Transform`](crate::Transform)`<RawRecord>`) reads the text and
/// decides the record's identity, from the record's own fields or from
/// [`position`](Self::position).
///
/// A source that bounds a record's size keeps the first bytes of a longer
/// one and says how long it was ([`cut`](Self::cut)), so that a profile can
/// refuse it with its length, without the source holding it whole.
///
/// ```
/// use sluice_processor::{Origin, RawRecord, RecordId, StreamName};
///
/// let stream = StreamName::new("orders")?;
/// let position = RecordId { stream, partition: 0, sequence: 7 };
/// let record = RawRecord::new(Origin::new("/data/orders.ndjson"), position, r#"{"id":1}"#);
/// assert_eq!(record.position.to_string(), "orders/0#7");
/// assert_eq!(record.cut, None);
/// # Ok::<(), sluice_processor::StreamNameError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The record's text as read (a line without its terminator, a
    /// message's payload); bytes that are not UTF-8 are replaced by
    /// U+FFFD.
    pub text: String,
    /// Where the source found it: its stream, partition and sequence (a
    /// file's name, partition 0 and line number; a subject's stream and
    /// partition and the message's stream sequence). The record's identity
    /// when the profile reads none from the record.
    pub position: RecordId,
    /// The input it came from.
    pub origin: Origin,
    /// `Some(length)` when the record was longer than the source keeps:
    /// `text` then holds only its first bytes, and `length` is its whole
    /// length in bytes.
    pub cut: Option<u64>,
    /// The record's key when the source names it (a file's path, content
    /// fingerprint and line; a stream's sequence): unique to the record
    /// and the same every time it is read. `None`: the key derives from
    /// the identity the profile gives the record ([`RecordKey::of_id`]).
    pub key: Option<RecordKey>,
}

impl RawRecord {
    /// The record `text`, found at `position` of `origin`, whole.
    pub fn new(origin: Origin, position: RecordId, text: impl Into<String>) -> RawRecord {
        RawRecord {
            text: text.into(),
            position,
            origin,
            cut: None,
            key: None,
        }
    }

    /// The same record, with the key its source names it by.
    #[must_use]
    pub fn with_key(mut self, key: RecordKey) -> RawRecord {
        self.key = Some(key);
        self
    }
}
