//! sluice's pipeline profiles: what a pipeline does to each record
//! between its source and its sink. Each profile is a [`Transform`] of
//! the core's [`RawRecord`]s.
//!
//! - [`seed`]: the original test's domain. `StreamData` in, the standard
//!   transform, derive validation, [`ProcessedRecord`] out; streams are
//!   the four source names.
//! - [`json`]: any JSON object, identity and priority from configured
//!   fields (or from the source's position), validated against a JSON
//!   Schema when one is given, and sent unchanged.
//! - [`Profile`]: either, chosen when the pipeline is built, sending a
//!   [`Record`].

pub mod json;
pub mod seed;

use serde::Serialize;
use sluice_models::ProcessedRecord;
use sluice_processor::{Context, RawRecord, Rejected, Transform, Transformed};

use json::{JsonProfile, JsonRecord, raw_excerpt};
use seed::SeedProfile;

/// A profile chosen when the pipeline is built.
#[derive(Debug)]
pub enum Profile {
    /// The original test's records.
    Seed(SeedProfile),
    /// Any JSON object (boxed: it holds a compiled schema).
    Json(Box<JsonProfile>),
}

/// The record of whichever profile runs, serialized as that profile's
/// record is.
///
/// ```
/// use sluice_profiles::Record;
/// use sluice_profiles::json::JsonRecord;
///
/// # let record: JsonRecord = serde_json::from_str(r#"{"id": 1}"#)?;
/// let sent = Record::Json(record);
/// assert_eq!(serde_json::to_string(&sent)?, r#"{"id": 1}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Record {
    /// A `seed` profile's record.
    Seed(ProcessedRecord),
    /// A `json` profile's record, byte for byte as received.
    Json(JsonRecord),
}

impl Transform<RawRecord> for Profile {
    type Output = Record;

    fn transform(
        &self,
        input: RawRecord,
        context: &mut Context,
    ) -> Result<Transformed<Record>, Rejected<Record>> {
        match self {
            Profile::Seed(seed) => seed
                .transform(input, context)
                .map(|done| done.map(Record::Seed))
                .map_err(|refused| refused.map(Record::Seed)),
            Profile::Json(json) => json
                .transform(input, context)
                .map(|done| done.map(Record::Json))
                .map_err(|refused| refused.map(Record::Json)),
        }
    }
}

/// The refusal of a record its source cut ([`RawRecord::cut`]): reason
/// `too long: N bytes, over the source's maximum record length`, its first
/// bytes as raw text, its position as identity.
pub(crate) fn refuse_cut<R>(input: &RawRecord) -> Option<Rejected<R>> {
    let length = input.cut?;
    Some(Rejected {
        id: input.position,
        record: None,
        raw: Some(raw_excerpt(&input.text).to_owned()),
        reason: format!("too long: {length} bytes, over the source's maximum record length"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sluice_processor::{Origin, RecordId, StreamName};

    use super::*;

    fn raw(text: &str, cut: Option<u64>) -> RawRecord {
        let stream = StreamName::new("lines").unwrap();
        let position = RecordId {
            stream,
            partition: 0,
            sequence: 3,
        };
        RawRecord {
            cut,
            ..RawRecord::new(Origin::new("/data/lines"), position, text)
        }
    }

    const SEED: &str = r#"{"source":"user_events","partition":2,"timestamp":1000.0,"priority":3,"data":{"user_id":"u"},"sequence_id":9}"#;

    #[test]
    fn either_profile_sends_its_own_record() {
        let mut context = Context::new(1_000.5);
        let json = Profile::Json(Box::new(JsonProfile::new(Default::default()).unwrap()));
        let done = json
            .transform(raw(r#"{"a":1}"#, None), &mut context)
            .unwrap();
        assert_eq!(done.id.to_string(), "lines/0#3");
        assert_eq!(serde_json::to_string(&done.record).unwrap(), r#"{"a":1}"#);
        let seed = Profile::Seed(SeedProfile::new().unwrap());
        let done = seed.transform(raw(SEED, None), &mut context).unwrap();
        assert_eq!(done.id.to_string(), "user_events/2#9");
        assert!(matches!(done.record, Record::Seed(_)));
        let refused = seed
            .transform(raw(r#"{"a":1}"#, None), &mut context)
            .unwrap_err();
        assert!(
            refused.reason.starts_with("not a seed record"),
            "{}",
            refused.reason
        );
    }

    #[test]
    fn a_record_its_source_cut_is_refused_by_every_profile_with_its_length() {
        let mut context = Context::new(1_000.5);
        for profile in [
            Profile::Json(Box::new(JsonProfile::new(Default::default()).unwrap())),
            Profile::Seed(SeedProfile::new().unwrap()),
        ] {
            // Even text that would pass whole is refused once cut.
            let refused = profile
                .transform(raw(SEED, Some(5_000)), &mut context)
                .unwrap_err();
            assert_eq!(
                refused.reason,
                "too long: 5000 bytes, over the source's maximum record length"
            );
            assert_eq!(refused.id.to_string(), "lines/0#3");
            assert_eq!(refused.raw.as_deref(), Some(SEED));
            assert!(refused.record.is_none());
        }
    }
}
