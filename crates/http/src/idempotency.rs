//! The `Idempotency-Key` of a batch.

use sluice_processor::RecordId;

/// The request header that carries the batch's key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The key's prefix.
pub const IDEMPOTENCY_KEY_PREFIX: &str = "sluice-";

/// How many hex digits of the hash the key keeps (128 bits).
pub const IDEMPOTENCY_KEY_HEX_LEN: usize = 32;

/// The idempotency key of a batch of records with these identities, in
/// batch order.
///
/// The key is [`IDEMPOTENCY_KEY_PREFIX`] followed by the first
/// [`IDEMPOTENCY_KEY_HEX_LEN`] lowercase hex digits of the BLAKE3 hash of,
/// for each record in order, `stream \0 partition \0 sequence \n`, the
/// numbers in decimal. It depends on nothing else (no time, no process
/// state, no random draw), so a retry of the batch, or the same batch
/// sent again after a restart, carries the same key, and the downstream
/// can drop the duplicate; a batch of other records, or of the same
/// records in another order, carries another key.
///
/// The key names the batch, not each record: if records come back in a
/// differently cut batch (e.g. after being handed back at a stop), the
/// key differs, and a downstream that must drop every duplicate record
/// should also use the records' own identities.
///
/// ```
/// use sluice_http::idempotency_key;
/// use sluice_processor::{RecordId, StreamName};
///
/// let stream = StreamName::new("orders").unwrap();
/// let ids = [
///     RecordId { stream, partition: 0, sequence: 41 },
///     RecordId { stream, partition: 0, sequence: 42 },
/// ];
/// let key = idempotency_key(&ids);
/// assert_eq!(key, idempotency_key(&ids));
/// assert_ne!(key, idempotency_key(&ids[..1]));
/// assert!(key.starts_with("sluice-") && key.len() == 7 + 32);
/// ```
pub fn idempotency_key<'a>(ids: impl IntoIterator<Item = &'a RecordId>) -> String {
    // The lines are gathered in one buffer and hashed at once, the numbers
    // written by `itoa` rather than `fmt`: a key is made for every call,
    // and with one record per call this was a tenth of the sink's own work.
    let mut lines = Vec::with_capacity(64);
    let mut numbers = itoa::Buffer::new();
    for id in ids {
        lines.extend_from_slice(id.stream.as_str().as_bytes());
        lines.push(0);
        lines.extend_from_slice(numbers.format(id.partition).as_bytes());
        lines.push(0);
        lines.extend_from_slice(numbers.format(id.sequence).as_bytes());
        lines.push(b'\n');
    }
    let hash = blake3::hash(&lines).to_hex();
    let mut key = String::with_capacity(IDEMPOTENCY_KEY_PREFIX.len() + IDEMPOTENCY_KEY_HEX_LEN);
    key.push_str(IDEMPOTENCY_KEY_PREFIX);
    key.push_str(&hash[..IDEMPOTENCY_KEY_HEX_LEN]);
    key
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sluice_processor::StreamName;

    use super::*;

    fn id(stream: &str, partition: u32, sequence: u64) -> RecordId {
        RecordId {
            stream: StreamName::new(stream).unwrap(),
            partition,
            sequence,
        }
    }

    #[test]
    fn the_key_is_a_fixed_function_of_the_identities() {
        // Pinned: a change here breaks deduplication across an upgrade.
        let expected = format!(
            "sluice-{}",
            &blake3::hash(b"s\x000\x007\ns\x000\x008\n").to_hex()[..32]
        );
        assert_eq!(idempotency_key(&[id("s", 0, 7), id("s", 0, 8)]), expected);
    }

    #[test]
    fn numbers_are_written_in_full_decimal() {
        let expected = format!(
            "sluice-{}",
            &blake3::hash("ström\x004294967295\x0018446744073709551615\n".as_bytes()).to_hex()
                [..32]
        );
        assert_eq!(
            idempotency_key(&[id("ström", u32::MAX, u64::MAX)]),
            expected
        );
    }

    #[test]
    fn different_batches_have_different_keys() {
        let keys = [
            idempotency_key(&[id("s", 0, 7)]),
            idempotency_key(&[id("s", 0, 8)]),
            idempotency_key(&[id("s", 1, 7)]),
            idempotency_key(&[id("t", 0, 7)]),
            idempotency_key(&[id("s", 0, 7), id("s", 0, 8)]),
            idempotency_key(&[id("s", 0, 8), id("s", 0, 7)]),
            // Separators keep fields apart: "s1"/0 is not "s"/10.
            idempotency_key(&[id("s1", 0, 7)]),
            idempotency_key(&[id("s", 10, 7)]),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
