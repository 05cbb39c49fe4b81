//! The `json` profile: any JSON object, its identity and priority taken
//! from configured fields (or from the source's position), validated
//! against a JSON Schema when one is given, and sent unchanged.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sluice_processor::{Context, RawRecord, RecordId, Rejected, Transform, Transformed};

use fields::{Field, Keys, Record, mistyped};

mod fields;

/// The most bytes of a rejected record's text kept in its dead letter
/// ([`Rejected::raw`]); longer text is cut on a char boundary.
pub const MAX_RAW_BYTES: usize = 4096;

/// The most schema validation errors a rejection's reason lists; it says
/// how many more there were.
pub const MAX_SCHEMA_ERRORS: usize = 5;

/// The most bytes of one schema validation message in a reason; longer
/// ones (a message may quote the whole offending value) are cut, with `…`.
pub const MAX_SCHEMA_MESSAGE_BYTES: usize = 256;

/// A JSON object exactly as received (trimmed of surrounding JSON whitespace),
/// serialized as that same raw JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JsonRecord(Box<RawValue>);

impl JsonRecord {
    /// The record's text, byte for byte as received, trimmed.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The record as a raw JSON value, e.g. to embed it in a larger document.
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }
}

impl PartialEq for JsonRecord {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonRecord {}

impl fmt::Display for JsonRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the `json` profile finds a record's identity and priority, and the
/// JSON Schema records must satisfy.
///
/// A field is a top-level key (`stream`) or, when it starts with `/`, a
/// JSON Pointer (`/meta/stream`). A field that is not configured is taken
/// from the source's position ([`RawRecord::position`]); priority then is 0.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonProfileConfig {
    /// The stream: a non-empty string (see [`StreamName`](sluice_processor::StreamName)).
    pub stream_field: Option<String>,
    /// The partition: an integer in `0..=u32::MAX`.
    pub partition_field: Option<String>,
    /// The sequence: an integer in `0..=u64::MAX`.
    pub sequence_field: Option<String>,
    /// The priority: an integer in `0..=255`.
    pub priority_field: Option<String>,
    /// The JSON Schema every record must satisfy. Its draft is taken from
    /// `$schema` (default 2020-12); `$ref`s to other documents are not
    /// fetched.
    pub schema: Option<Value>,
}

impl JsonProfileConfig {
    /// This configuration with the JSON Schema read from the file at `path`.
    ///
    /// # Errors
    /// A [`JsonProfileError`] naming `path` when the file cannot be read,
    /// is not JSON, or is not a valid JSON Schema.
    pub fn with_schema_file(
        mut self,
        path: impl AsRef<Path>,
    ) -> Result<JsonProfileConfig, JsonProfileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| JsonProfileError::ReadSchema {
            path: path.to_owned(),
            error,
        })?;
        let schema: Value =
            serde_json::from_str(&text).map_err(|error| JsonProfileError::SchemaNotJson {
                path: path.to_owned(),
                error,
            })?;
        compile(&schema).map_err(|problem| JsonProfileError::InvalidSchemaFile {
            path: path.to_owned(),
            problem,
        })?;
        self.schema = Some(schema);
        Ok(self)
    }
}

/// Why a `json` profile cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum JsonProfileError {
    /// The schema file could not be read.
    #[error("cannot read the JSON Schema file {}: {error}", path.display())]
    ReadSchema {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The schema file is not JSON.
    #[error("the JSON Schema file {} is not JSON: {error}", path.display())]
    SchemaNotJson {
        /// The file.
        path: PathBuf,
        /// Where and why parsing failed.
        error: serde_json::Error,
    },
    /// The schema file holds no valid JSON Schema.
    #[error("the JSON Schema file {} is invalid: {problem}", path.display())]
    InvalidSchemaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with the schema.
        problem: String,
    },
    /// The configured schema is no valid JSON Schema.
    #[error("invalid JSON Schema: {0}")]
    InvalidSchema(String),
    /// A field is configured with an empty name.
    #[error("the {0} field is configured with an empty name")]
    EmptyField(&'static str),
}

/// The `json` profile: a [`Transform`] of [`RawRecord`] into [`JsonRecord`].
///
/// Each record must be one JSON object. Its identity is taken from the
/// configured fields, else from the source's position; its priority from
/// the priority field, else 0. It is sent unchanged. A record that is not
/// JSON, not an object, has a configured field missing or mistyped, or
/// fails the schema is rejected with a reason saying so and its text (at
/// most [`MAX_RAW_BYTES`]); a schema failure's reason begins `schema: `.
/// A record its source [cut](RawRecord::cut) is rejected as too long.
///
/// ```
/// use serde_json::json;
/// use sluice_processor::{Context, Origin, RawRecord, RecordId, StreamName, Transform};
/// use sluice_profiles::json::{JsonProfile, JsonProfileConfig};
///
/// let profile = JsonProfile::new(JsonProfileConfig {
///     stream_field: Some("stream".into()),
///     sequence_field: Some("/meta/seq".into()),
///     schema: Some(json!({
///         "type": "object",
///         "properties": { "amount": { "type": "number", "minimum": 0 } },
///         "required": ["amount"],
///     })),
///     ..JsonProfileConfig::default()
/// })?;
/// let file = StreamName::new("orders.jsonl")?;
/// let origin = Origin::new("/data/orders.jsonl");
/// let line = |n, text| RawRecord::new(origin.clone(), RecordId { stream: file, partition: 0, sequence: n }, text);
/// let mut context = Context::new(0.0);
///
/// let good = r#"{"stream":"orders-eu","meta":{"seq":7},"amount":12.5}"#;
/// let sent = profile.transform(line(1, good), &mut context).unwrap();
/// assert_eq!(sent.id.to_string(), "orders-eu/0#7");
/// assert_eq!(sent.record.as_str(), good);
///
/// let bad = r#"{"stream":"orders-eu","meta":{"seq":8},"amount":-3}"#;
/// let refused = profile.transform(line(2, bad), &mut context).unwrap_err();
/// assert_eq!(refused.id.to_string(), "orders-eu/0#8");
/// assert_eq!(refused.reason, "schema: /amount: -3 is less than the minimum of 0");
/// assert_eq!(refused.raw.as_deref(), Some(bad));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct JsonProfile {
    stream: Option<Field>,
    partition: Option<Field>,
    sequence: Option<Field>,
    priority: Option<Field>,
    /// The top-level keys the fields begin with.
    keys: Keys,
    schema: Option<jsonschema::Validator>,
}

impl JsonProfile {
    /// The profile `config` describes; its schema is compiled once, here.
    ///
    /// # Errors
    /// [`JsonProfileError::InvalidSchema`] naming the problem, or
    /// [`JsonProfileError::EmptyField`].
    pub fn new(config: JsonProfileConfig) -> Result<JsonProfile, JsonProfileError> {
        let schema = match &config.schema {
            Some(schema) => Some(compile(schema).map_err(JsonProfileError::InvalidSchema)?),
            None => None,
        };
        let mut keys = Keys::default();
        let mut field = |role: &'static str, spec: Option<String>| match spec {
            Some(spec) if spec.is_empty() => Err(JsonProfileError::EmptyField(role)),
            spec => Ok(spec.map(|spec| keys.field(spec))),
        };
        let stream = field("stream", config.stream_field)?;
        let partition = field("partition", config.partition_field)?;
        let sequence = field("sequence", config.sequence_field)?;
        let priority = field("priority", config.priority_field)?;
        Ok(JsonProfile {
            stream,
            partition,
            sequence,
            priority,
            keys,
            schema,
        })
    }

    /// What the fields of the JSON object `text` are read from: the whole
    /// record when there is a schema, else only the fields' top-level keys
    /// (read in one pass, nothing else kept), or nothing when no field is
    /// configured (the syntax check was enough).
    fn record(&self, text: &str) -> Result<Record, serde_json::Error> {
        if self.schema.is_none() {
            if self.keys.is_empty() {
                return Ok(Record::Nothing);
            }
            if let Some(kept) = self.keys.read(text)? {
                return Ok(Record::TopLevel(kept));
            }
        }
        serde_json::from_str(text).map(Record::Whole)
    }

    /// The record's identity: every configured field, or the position
    /// when one of them is missing or mistyped.
    fn identity(
        &self,
        record: &Record,
        position: RecordId,
        context: &mut Context,
    ) -> Result<RecordId, String> {
        let stream = match &self.stream {
            Some(field) => match record.find(field)? {
                Value::String(name) if !name.is_empty() => context
                    .stream(name)
                    .map_err(|error| format!("field `{}`: {error}", field.spec()))?,
                other => return Err(mistyped(field, "a non-empty string", other)),
            },
            None => position.stream,
        };
        let partition = match &self.partition {
            Some(field) => record.integer(field, "an integer in 0..=4294967295")?,
            None => position.partition,
        };
        let sequence = match &self.sequence {
            Some(field) => record.integer(field, "an integer in 0..=18446744073709551615")?,
            None => position.sequence,
        };
        Ok(RecordId {
            stream,
            partition,
            sequence,
        })
    }

    /// Every schema problem of `record`, when it has any.
    fn schema_problems(&self, record: &Record) -> Option<String> {
        let schema = self.schema.as_ref()?;
        // With a schema, the record is read whole.
        let record = record.whole()?;
        if schema.is_valid(record) {
            return None;
        }
        let mut reason = String::from("schema: ");
        let mut errors = schema.iter_errors(record);
        for (i, error) in errors.by_ref().take(MAX_SCHEMA_ERRORS).enumerate() {
            if i > 0 {
                reason.push_str("; ");
            }
            let path = match error.instance_path().as_str() {
                "" => "(root)",
                path => path,
            };
            let message = error.to_string();
            let _ = write!(
                reason,
                "{path}: {}",
                cut(&message, MAX_SCHEMA_MESSAGE_BYTES)
            );
            if message.len() > MAX_SCHEMA_MESSAGE_BYTES {
                reason.push('…');
            }
        }
        match errors.count() {
            0 => {}
            more => {
                let _ = write!(reason, "; and {more} more");
            }
        }
        Some(reason)
    }
}

impl Transform<RawRecord> for JsonProfile {
    type Output = JsonRecord;

    fn transform(
        &self,
        input: RawRecord,
        context: &mut Context,
    ) -> Result<Transformed<JsonRecord>, Rejected<JsonRecord>> {
        if let Some(too_long) = crate::refuse_cut(&input) {
            return Err(too_long);
        }
        let position = input.position;
        // A record whose sequence is its own is named by its fields; one
        // numbered by where it was read keeps the source's key.
        let key = if self.sequence.is_some() {
            None
        } else {
            input.key
        };
        // JSON's own whitespace only: anything else is not JSON.
        let text = input.text.trim_matches([' ', '\t', '\n', '\r']);
        let reject = |id, reason| Rejected {
            id,
            record: None,
            raw: Some(cut(text, MAX_RAW_BYTES).to_owned()),
            reason,
        };
        let raw: Box<RawValue> = serde_json::from_str(text)
            .map_err(|error| reject(position, format!("not JSON: {error}")))?;
        if !text.starts_with('{') {
            let found = kind_of_text(text);
            return Err(reject(
                position,
                format!("not a JSON object: found {found}"),
            ));
        }
        // Reading values checks more than the syntax (numbers in range,
        // unicode escapes, nesting), as a whole `Value` would.
        let record = self
            .record(text)
            .map_err(|error| reject(position, format!("not JSON: {error}")))?;
        let identity = self.identity(&record, position, context);
        let priority = match &self.priority {
            Some(field) => record.integer(field, "an integer in 0..=255"),
            None => Ok(0),
        };
        match (identity, priority, self.schema_problems(&record)) {
            (Ok(id), Ok(priority), None) => Ok(Transformed {
                id,
                record: JsonRecord(raw),
                priority,
                bytes: text.len(),
                key,
            }),
            (identity, priority, schema) => {
                let id = *identity.as_ref().unwrap_or(&position);
                let problems = [schema, identity.err(), priority.err()];
                let reason: Vec<String> = problems.into_iter().flatten().collect();
                Err(reject(id, reason.join("; ")))
            }
        }
    }
}

/// Compiles `schema`, or says what is wrong with it.
fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|error| match error.instance_path().as_str() {
        "" => error.to_string(),
        path => format!("{path}: {error}"),
    })
}

/// What valid JSON `text` is, from its first character.
fn kind_of_text(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// The raw text kept in a dead letter: `text` cut to at most
/// [`MAX_RAW_BYTES`] on a char boundary.
pub fn raw_excerpt(text: &str) -> &str {
    cut(text, MAX_RAW_BYTES)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// char boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
