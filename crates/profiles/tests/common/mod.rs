//! What the `json` profile's tests share: a file's identities and one
//! transform of one line.

#![allow(clippy::unwrap_used, dead_code)]

use sluice_processor::{
    Context, Origin, RawRecord, RecordId, Rejected, StreamName, Transform, Transformed,
};
use sluice_profiles::json::{JsonProfile, JsonRecord};

/// What the profile makes of one record.
pub type Outcome = Result<Transformed<JsonRecord>, Rejected<JsonRecord>>;

/// The stream of the file the lines come from.
pub fn file() -> StreamName {
    StreamName::new("input.jsonl").unwrap()
}

/// The identity of the file's line `line`.
pub fn position(line: u64) -> RecordId {
    RecordId {
        stream: file(),
        partition: 0,
        sequence: line,
    }
}

/// An identity.
pub fn id(stream: &str, partition: u32, sequence: u64) -> RecordId {
    RecordId {
        stream: StreamName::new(stream).unwrap(),
        partition,
        sequence,
    }
}

/// `profile`'s outcome for `text`, found at line `line` of the file.
pub fn run(profile: &JsonProfile, text: &str, line: u64) -> Outcome {
    let mut context = Context::new(0.0);
    profile.transform(raw(text, position(line)), &mut context)
}

/// `text` found at `position` of the file.
pub fn raw(text: &str, position: RecordId) -> RawRecord {
    RawRecord::new(Origin::new("/data/input.jsonl"), position, text)
}
