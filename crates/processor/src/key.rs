//! A record's key: the identity a downstream deduplicates by.

use std::fmt;

use crate::stream::RecordId;

/// A record's key: 128 bits that name one record, and the same record
/// every time it is sent (a retry, a batch cut otherwise, a run after a
/// crash). A downstream that drops a second record with a key it has seen
/// drops exactly the duplicates a crash or a restart causes.
///
/// The source decides it, from what names the record where it was read:
/// a file's canonical path, the fingerprint of its content and the line;
/// a JetStream stream and the message's sequence. A profile may name it
/// from the record's own fields instead. Without either,
/// [`RecordKey::of_id`] derives it from the [`RecordId`].
///
/// Shown as 32 lowercase hex digits.
///
/// ```
/// use sluice_processor::RecordKey;
///
/// let a = RecordKey::derive(&[b"file", b"/data/a/orders.ndjson", b"9f86d0", b"12"]);
/// let b = RecordKey::derive(&[b"file", b"/data/b/orders.ndjson", b"9f86d0", b"12"]);
/// assert_ne!(a, b);
/// assert_eq!(a, RecordKey::derive(&[b"file", b"/data/a/orders.ndjson", b"9f86d0", b"12"]));
/// assert_eq!(a.to_string().len(), 32);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey([u8; 16]);

impl RecordKey {
    /// The key named by `parts`, in order: the first 128 bits of the
    /// BLAKE3 hash of each part preceded by its length (so that no two
    /// different lists of parts give the same bytes).
    pub fn derive(parts: &[&[u8]]) -> RecordKey {
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        RecordKey::from_hash(hasher.finalize())
    }

    /// The key of a record known only by its [`RecordId`]: the BLAKE3 hash
    /// of `stream \0 partition \0 sequence \n` (numbers in decimal), the
    /// per-record `Idempotency-Key` of earlier versions, so that records
    /// named by their own fields keep their keys across an upgrade.
    pub fn of_id(id: &RecordId) -> RecordKey {
        let mut numbers = itoa::Buffer::new();
        let mut hasher = blake3::Hasher::new();
        hasher.update(id.stream.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(numbers.format(id.partition).as_bytes());
        hasher.update(b"\0");
        hasher.update(numbers.format(id.sequence).as_bytes());
        hasher.update(b"\n");
        RecordKey::from_hash(hasher.finalize())
    }

    /// The key as 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    fn from_hash(hash: blake3::Hash) -> RecordKey {
        let mut key = [0; 16];
        key.copy_from_slice(&hash.as_bytes()[..16]);
        RecordKey(key)
    }
}

impl RecordKey {
    /// The key as 32 lowercase hex digits (ASCII), without allocating:
    /// what [`Display`](fmt::Display) shows, for a writer of many keys.
    pub fn to_hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0; 32];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        hex
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey({self})")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::stream::StreamName;

    #[test]
    fn a_key_of_an_id_is_the_earlier_per_record_key() {
        // Pinned: a change here breaks deduplication across an upgrade.
        let id = RecordId {
            stream: StreamName::new("s").unwrap(),
            partition: 0,
            sequence: 7,
        };
        let expected = &blake3::hash(b"s\x000\x007\n").to_hex()[..32];
        assert_eq!(RecordKey::of_id(&id).to_string(), expected);
    }

    #[test]
    fn a_key_shows_as_hex() {
        let key = RecordKey::derive(&[b"x"]);
        let hex = key.to_string();
        assert_eq!(hex.len(), 32);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(format!("{key:?}"), format!("RecordKey({hex})"));
        let bytes: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, bytes, "each byte, high digit first");
    }

    #[test]
    fn parts_are_kept_apart() {
        assert_ne!(
            RecordKey::derive(&[b"ab", b"c"]),
            RecordKey::derive(&[b"a", b"bc"])
        );
        assert_ne!(RecordKey::derive(&[b"a"]), RecordKey::derive(&[b"a", b""]));
        let mut expected = blake3::Hasher::new();
        expected.update(&1u64.to_le_bytes());
        expected.update(b"a");
        assert_eq!(
            RecordKey::derive(&[b"a"]).as_bytes()[..],
            expected.finalize().as_bytes()[..16]
        );
    }
}
