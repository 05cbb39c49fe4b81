//! The `Idempotency-Key` of a call, and the key of each record.

use sluice_processor::RecordKey;

/// The request header that carries the batch's key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The key's prefix.
pub const IDEMPOTENCY_KEY_PREFIX: &str = "sluice-";

/// How many hex digits of the hash the key keeps (128 bits).
pub const IDEMPOTENCY_KEY_HEX_LEN: usize = 32;

/// The `Idempotency-Key` of a call carrying records with these keys, in
/// batch order.
///
/// For one record it is that record's key: [`IDEMPOTENCY_KEY_PREFIX`]
/// followed by the [`RecordKey`]'s 32 hex digits, the same string the
/// record carries in an array body (see [`record_key`]). For several it
/// is the prefix followed by the first [`IDEMPOTENCY_KEY_HEX_LEN`] hex
/// digits of the BLAKE3 hash of the keys' bytes in order, so the header
/// is the same whenever a call holds the same records in the same order.
/// Nothing else goes in (no time, no process state, no random draw).
///
/// A batch cut otherwise after a restart carries another header key; its
/// records keep theirs, in the body. A downstream that must drop every
/// duplicate record deduplicates by the records' keys.
///
/// ```
/// use sluice_http::{idempotency_key, record_key};
/// use sluice_processor::{RecordId, RecordKey, StreamName};
///
/// let stream = StreamName::new("orders").unwrap();
/// let keys = [41, 42].map(|sequence| RecordKey::of_id(&RecordId { stream, partition: 0, sequence }));
/// let key = idempotency_key(keys);
/// assert_eq!(key, idempotency_key(keys));
/// assert_ne!(key, idempotency_key([keys[1], keys[0]]));
/// assert_eq!(idempotency_key([keys[0]]), record_key(keys[0]));
/// assert!(key.starts_with("sluice-") && key.len() == 7 + 32);
/// ```
pub fn idempotency_key(keys: impl IntoIterator<Item = RecordKey>) -> String {
    let mut keys = keys.into_iter();
    let Some(first) = keys.next() else {
        return record_key_of_hex(&blake3::hash(b"").to_hex()[..IDEMPOTENCY_KEY_HEX_LEN]);
    };
    let Some(second) = keys.next() else {
        return record_key(first);
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update(first.as_bytes());
    hasher.update(second.as_bytes());
    for key in keys {
        hasher.update(key.as_bytes());
    }
    record_key_of_hex(&hasher.finalize().to_hex()[..IDEMPOTENCY_KEY_HEX_LEN])
}

/// A record's key as the API sees it: [`IDEMPOTENCY_KEY_PREFIX`] and the
/// key's 32 hex digits.
pub fn record_key(key: RecordKey) -> String {
    let mut text = String::with_capacity(IDEMPOTENCY_KEY_PREFIX.len() + IDEMPOTENCY_KEY_HEX_LEN);
    text.push_str(IDEMPOTENCY_KEY_PREFIX);
    text.extend(key.to_hex().map(char::from));
    text
}

fn record_key_of_hex(hex: &str) -> String {
    let mut key = String::with_capacity(IDEMPOTENCY_KEY_PREFIX.len() + hex.len());
    key.push_str(IDEMPOTENCY_KEY_PREFIX);
    key.push_str(hex);
    key
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sluice_processor::{RecordId, StreamName};

    use super::*;

    fn key(stream: &str, partition: u32, sequence: u64) -> RecordKey {
        RecordKey::of_id(&RecordId {
            stream: StreamName::new(stream).unwrap(),
            partition,
            sequence,
        })
    }

    #[test]
    fn one_record_s_key_is_its_own() {
        // Pinned: a change here breaks deduplication across an upgrade.
        let expected = format!("sluice-{}", &blake3::hash(b"s\x000\x007\n").to_hex()[..32]);
        assert_eq!(idempotency_key([key("s", 0, 7)]), expected);
        assert_eq!(record_key(key("s", 0, 7)), expected);
    }

    #[test]
    fn a_batch_s_key_hashes_its_records_keys_in_order() {
        let (a, b) = (key("s", 0, 7), key("s", 0, 8));
        let mut bytes = a.as_bytes().to_vec();
        bytes.extend_from_slice(b.as_bytes());
        let expected = format!("sluice-{}", &blake3::hash(&bytes).to_hex()[..32]);
        assert_eq!(idempotency_key([a, b]), expected);
        let c = key("s", 0, 9);
        let mut three = bytes.clone();
        three.extend_from_slice(c.as_bytes());
        let expected = format!("sluice-{}", &blake3::hash(&three).to_hex()[..32]);
        assert_eq!(idempotency_key([a, b, c]), expected);
        assert!(idempotency_key([]).starts_with("sluice-"));
    }

    #[test]
    fn different_batches_have_different_keys() {
        let keys = [
            idempotency_key([key("s", 0, 7)]),
            idempotency_key([key("s", 0, 8)]),
            idempotency_key([key("s", 1, 7)]),
            idempotency_key([key("t", 0, 7)]),
            idempotency_key([key("s", 0, 7), key("s", 0, 8)]),
            idempotency_key([key("s", 0, 8), key("s", 0, 7)]),
            idempotency_key([key("s1", 0, 7)]),
            idempotency_key([key("s", 10, 7)]),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
