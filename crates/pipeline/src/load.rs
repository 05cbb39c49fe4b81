//! One configuration from three layers, in order of precedence: flags over
//! `SLUICE_*` environment variables over a TOML file, over the documented
//! defaults. `figment` merges them and keeps, for every value, where it
//! came from, so that an error names the file, the variable or the flag.
//!
//! Keys and variables correspond one to one: the top-level key
//! `rate_limit` is `SLUICE_RATE_LIMIT`; the key `url` of the `[http]`
//! section is `SLUICE_HTTP_URL`. A variable's value is read as TOML-like
//! text: `16`, `true`, `20/s`, `[a.ndjson, b.ndjson]`.

use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connectors::Connectors;
use crate::error::PipelineError;
use crate::settings::PipelineSettings;

/// The prefix of the environment variables read.
pub const ENV_PREFIX: &str = "SLUICE_";

/// The top-level keys of [`PipelineSettings`]; a connector's name may not
/// begin one of them followed by `_`.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "inputs",
    "source",
    "checkpoint",
    "profile",
    "schema",
    "stream_field",
    "partition_field",
    "sequence_field",
    "priority_field",
    "sink",
    "rate_limit",
    "shared_limit",
    "concurrency",
    "queue_capacity",
    "batch_max",
    "batch_linger",
    "max_attempts",
    "ordering",
    "drain_deadline",
    "dead_letters",
    "max_dead_letters",
    "metrics_addr",
    "metrics_textfile",
    "metrics_max_streams",
];

/// Keys of config files written before connectors had sections, and the
/// keys they are now. Read, with a warning, for one more release.
const RENAMED_KEYS: &[(&str, &str)] = &[
    ("input", "inputs"),
    ("max_in_flight", "concurrency"),
    ("drain_timeout", "drain_deadline"),
    ("http_url", "http.url"),
    ("http_headers", "http.headers"),
    ("timeout", "http.timeout"),
    ("stream", "files.stream"),
    ("nats_stream", "nats.stream"),
    ("nats_subject", "nats.subject"),
    ("nats_consumer", "nats.consumer"),
    ("nats_lease", "nats.lease"),
    ("nats_ack_wait", "nats.ack_wait"),
];

/// Where a configuration comes from: an optional TOML file, the
/// environment, and the flags given. Build it, then
/// [`load`](Self::load) the settings.
///
/// ```
/// use sluice_pipeline::{ConfigLayers, Connectors, PipelineSettings};
///
/// // The flags given, and only those (`Default` holds the documented
/// // defaults, which would override every lower layer).
/// let flags: PipelineSettings = toml::from_str("concurrency = 4")?;
/// let settings: PipelineSettings = ConfigLayers::new(&Connectors::builtin())
///     .environment([("SLUICE_RATE_LIMIT", "20/s"), ("SLUICE_CONCURRENCY", "8")])
///     .flags(&flags)?
///     .load()?;
/// assert_eq!(settings.rate_limit.map(|limit| limit.to_string()).as_deref(), Some("20/s"));
/// assert_eq!(settings.concurrency, Some(4)); // the flag over the variable
/// assert_eq!(settings.max_attempts, Some(6)); // the default
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ConfigLayers {
    connectors: Connectors,
    sections: Vec<&'static str>,
    file: Option<Layer>,
    environment: Vec<Layer>,
    flags: Option<Layer>,
}

impl ConfigLayers {
    /// No file, no variable, no flag: the defaults, with the sections of
    /// `connectors`.
    pub fn new(connectors: &Connectors) -> ConfigLayers {
        ConfigLayers {
            connectors: connectors.clone(),
            sections: connectors.section_names().collect(),
            file: None,
            environment: Vec::new(),
            flags: None,
        }
    }

    /// Reads the TOML file at `path`. Keys of older releases are read
    /// under their new names, with a warning.
    ///
    /// # Errors
    /// [`PipelineError::Config`] naming the file when it cannot be read or
    /// is not TOML.
    pub fn file(mut self, path: &Path) -> Result<ConfigLayers, PipelineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| PipelineError::Config(format!("{}: {error}", path.display())))?;
        let mut table: toml::Table = toml::from_str(&text)
            .map_err(|error| PipelineError::Config(format!("{}: {error}", path.display())))?;
        rename_old_keys(&mut table, path);
        let dict = to_dict(&table, &format!("{}", path.display()))?;
        self.file = Some(Layer {
            metadata: Metadata::named("config file")
                .source(figment::Source::File(PathBuf::from(path))),
            dict,
        });
        Ok(self)
    }

    /// Reads the `SLUICE_*` variables among `variables` (e.g.
    /// `std::env::vars()`); others are ignored.
    pub fn environment<K, V>(mut self, variables: impl IntoIterator<Item = (K, V)>) -> ConfigLayers
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (name, value) in variables {
            let name = name.as_ref();
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = self.key_of_variable(key);
            let value: Value = value
                .as_ref()
                .parse()
                .unwrap_or_else(|never| match never {});
            let Some(dict) = figment::util::nest(&key, value).into_dict() else {
                continue;
            };
            self.environment.push(Layer {
                metadata: Metadata::named(name.to_owned()),
                dict,
            });
        }
        self
    }

    /// Takes the flags given: `flags` serializes to the keys they set (see
    /// the conventions of [`PipelineSettings`]).
    ///
    /// # Errors
    /// [`PipelineError::Config`] if `flags` does not serialize to a table.
    pub fn flags(mut self, flags: &impl Serialize) -> Result<ConfigLayers, PipelineError> {
        let table = toml::Table::try_from(flags)
            .map_err(|error| PipelineError::Config(format!("the flags: {error}")))?;
        self.flags = Some(Layer {
            metadata: Metadata::named("command-line flags"),
            dict: to_dict(&table, "the flags")?,
        });
        Ok(self)
    }

    /// `section_key` of `SLUICE_SECTION_KEY`: `http.url` for `HTTP_URL`,
    /// `rate_limit` for `RATE_LIMIT`.
    fn key_of_variable(&self, variable: &str) -> String {
        let key = variable.to_ascii_lowercase();
        for section in &self.sections {
            if let Some(rest) = key
                .strip_prefix(section)
                .and_then(|rest| rest.strip_prefix('_'))
            {
                return format!("{section}.{rest}");
            }
        }
        key
    }

    /// The layers merged, each over the one before.
    fn figment(&self) -> Figment {
        let mut figment = Figment::from(Layer {
            metadata: Metadata::named(DEFAULTS),
            dict: defaults(),
        });
        for layer in self.file.iter().chain(&self.environment).chain(&self.flags) {
            figment = figment.merge(layer.clone());
        }
        figment
    }

    /// Where the value of `key` (`concurrency`, `http.url`) came from: the
    /// file's path, the variable's name, `command-line flags`; `None` when
    /// no layer set it (the default).
    ///
    /// ```
    /// use sluice_pipeline::{ConfigLayers, Connectors};
    ///
    /// let layers = ConfigLayers::new(&Connectors::builtin())
    ///     .environment([("SLUICE_HTTP_URL", "http://127.0.0.1:8080/records")]);
    /// assert_eq!(layers.origin("http.url").as_deref(), Some("SLUICE_HTTP_URL"));
    /// assert_eq!(layers.origin("concurrency"), None);
    /// ```
    pub fn origin(&self, key: &str) -> Option<String> {
        let figment = self.figment();
        let metadata = figment.find_metadata(key)?;
        match &metadata.source {
            Some(figment::Source::File(path)) => Some(path.display().to_string()),
            _ if metadata.name == DEFAULTS => None,
            _ => Some(metadata.name.to_string()),
        }
    }

    /// The settings `T` (e.g. [`PipelineSettings`], or a program's type
    /// holding it with `#[serde(flatten)]` and keys of its own).
    ///
    /// # Errors
    /// [`PipelineError::Config`] naming the key and where its value came
    /// from, for a value of the wrong type or an unknown key.
    pub fn load<T: DeserializeOwned>(&self) -> Result<T, PipelineError> {
        let figment = self.figment();
        let settings = figment.extract()?;
        self.connectors.check_sections_in(&figment)?;
        Ok(settings)
    }
}

/// The name of the defaults' layer.
const DEFAULTS: &str = "the defaults";

/// The documented defaults, as the bottom layer.
fn defaults() -> Dict {
    let table = toml::Table::try_from(PipelineSettings::default()).unwrap_or_default();
    to_dict(&table, "the defaults").unwrap_or_default()
}

/// One layer: its values, and where they come from.
#[derive(Debug, Clone)]
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// A TOML table as figment's values.
fn to_dict(table: &toml::Table, origin: &str) -> Result<Dict, PipelineError> {
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|error: toml::de::Error| PipelineError::Config(format!("{origin}: {error}")))
}

/// Moves keys of older releases to their new places in `table`, read from
/// `path`.
fn rename_old_keys(table: &mut toml::Table, path: &Path) {
    for (old, new) in RENAMED_KEYS {
        let Some(value) = table.remove(*old) else {
            continue;
        };
        tracing::warn!(
            file = %path.display(),
            "`{old}` is now `{new}`; the old key is read for one more release"
        );
        let (section, key) = match new.split_once('.') {
            Some((section, key)) => (Some(section), key),
            None => (None, *new),
        };
        let target = match section {
            None => &mut *table,
            Some(section) => match table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            {
                toml::Value::Table(inner) => inner,
                // Not a table: leave it for the connector to refuse.
                _ => continue,
            },
        };
        target.entry(key).or_insert(value);
    }
}

/// The settings `T` read from a TOML text alone (no environment, no
/// flags), e.g. a configuration kept in a program.
///
/// # Errors
/// As [`ConfigLayers::load`], and [`PipelineError::Config`] for text that
/// is not TOML.
pub fn from_toml<T: DeserializeOwned>(
    connectors: &Connectors,
    text: &str,
) -> Result<T, PipelineError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|error| PipelineError::Config(error.to_string()))?;
    let mut layers = ConfigLayers::new(connectors);
    layers.file = Some(Layer {
        metadata: Metadata::named("the configuration"),
        dict: to_dict(&table, "the configuration")?,
    });
    layers.load()
}
