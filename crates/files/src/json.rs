//! Lines for the `json` profile.

use sluice_processor::{Context, Incoming, Rejected, Transform, Transformed};
use sluice_profiles::json::{JsonInput, JsonProfile, MAX_RAW_BYTES};

use crate::line::Line;

/// A line as the `json` profile's input: its text, its stream, partition 0,
/// sequence its line number.
///
/// A [truncated](Line::truncated) line becomes its cut text, which the
/// profile refuses as not JSON, except when what was cut off is only
/// whitespace; [`JsonLines`] refuses every truncated line.
impl From<Line> for JsonInput {
    fn from(line: Line) -> JsonInput {
        JsonInput::new(line.text, line.stream, 0, line.line_number)
    }
}

/// A line source's record as the `json` profile's, its acknowledgement
/// kept: `source.map(json_input)` feeds a processor running
/// [`JsonProfile`] directly.
pub fn json_input(incoming: Incoming<Line>) -> Incoming<JsonInput> {
    Incoming {
        payload: incoming.payload.into(),
        ack: incoming.ack,
    }
}

/// A transform of [`Line`]s by a transform of [`JsonInput`]s (by default
/// the `json` profile), that first refuses every [truncated](Line::truncated)
/// line: reason `line too long: N bytes, over the source's maximum line
/// length`, with the line's first [`MAX_RAW_BYTES`] bytes as raw text, and
/// its position (stream, partition 0, line number) as identity.
///
/// ```
/// use sluice_files::JsonLines;
/// use sluice_profiles::json::JsonProfile;
///
/// let transform = JsonLines::new(JsonProfile::new(Default::default())?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct JsonLines<T = JsonProfile> {
    inner: T,
}

impl<T> JsonLines<T> {
    /// Lines transformed by `inner`.
    pub fn new(inner: T) -> JsonLines<T> {
        JsonLines { inner }
    }

    /// The inner transform.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Transform<JsonInput>> Transform<Line> for JsonLines<T> {
    type Output = T::Output;

    fn transform(
        &self,
        line: Line,
        context: &mut Context,
    ) -> Result<Transformed<T::Output>, Rejected<T::Output>> {
        if line.truncated {
            let mut end = MAX_RAW_BYTES.min(line.text.len());
            while !line.text.is_char_boundary(end) {
                end -= 1;
            }
            return Err(Rejected {
                id: line.position(),
                record: None,
                raw: Some(line.text[..end].to_owned()),
                reason: format!(
                    "line too long: {} bytes, over the source's maximum line length",
                    line.byte_len()
                ),
            });
        }
        self.inner.transform(line.into(), context)
    }
}
