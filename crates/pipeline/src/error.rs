//! Why a pipeline could not be configured, built or finished.

use sluice_processor::{ConnectorError, SettingError};

/// Why a pipeline could not be configured, built, or finished. Every
/// message names what was wrong and where; none holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The configuration could not be read: a file that cannot be read or
    /// parsed, a value of the wrong type. The message names the key and
    /// where the value came from (a file, a variable, a flag).
    #[error("{0}")]
    Config(String),
    /// A key no setting and no connector has.
    #[error(
        "unknown key `{0}`: see `sluice run --help` for the settings, `--print-config` for their keys"
    )]
    UnknownKey(String),
    /// A setting that cannot be used; the problem names the key.
    #[error("{problem}")]
    Setting {
        /// The key, or the connector's section.
        key: String,
        /// What is wrong, and what to do.
        problem: String,
    },
    /// A connector could not be built: its inputs, its server, its
    /// settings.
    #[error("{connector}: {error}")]
    Connector {
        /// The connector's name.
        connector: &'static str,
        /// What went wrong.
        error: ConnectorError,
    },
    /// The sink's downstream cannot be reached (checked before anything
    /// is read): nothing was read, nothing sent.
    #[error("{sink}: cannot reach the API: {why}; check its URL (--http-url) and that it is up")]
    Unreachable {
        /// The sink's name.
        sink: &'static str,
        /// What failed, the URL without credentials.
        why: String,
    },
    /// The run delivered what it could but could not keep its state (a
    /// checkpoint not written): every record is resolved, yet the next run
    /// may send some again.
    #[error("{0}")]
    Finish(String),
    /// The run finished, but its metrics could not be written to the
    /// `--metrics-textfile`.
    #[error(
        "the run finished, but its metrics could not be written to {}: {error}; check that the directory exists and is writable",
        path.display()
    )]
    MetricsTextfile {
        /// The textfile.
        path: std::path::PathBuf,
        /// Why it could not be written.
        error: std::io::Error,
    },
}

impl PipelineError {
    /// A setting `key` that cannot be used.
    pub(crate) fn setting(key: impl Into<String>, problem: impl AsRef<str>) -> PipelineError {
        let key = key.into();
        PipelineError::Setting {
            problem: format!("{key}: {}", problem.as_ref()),
            key,
        }
    }

    /// The configuration key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            PipelineError::UnknownKey(key) | PipelineError::Setting { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Whether the run could not start because of its configuration or
    /// its inputs (rather than failing once under way).
    pub fn is_setting(&self) -> bool {
        !matches!(
            self,
            PipelineError::Finish(_) | PipelineError::MetricsTextfile { .. }
        )
    }
}

impl PipelineError {
    /// The sink `sink` cannot reach its downstream: `error`.
    pub(crate) fn unreachable(sink: &'static str, error: sluice_processor::SinkError) -> Self {
        use sluice_processor::SinkError;
        let why = match error {
            SinkError::Transient(why)
            | SinkError::Rejected(why)
            | SinkError::Unavailable(why)
            | SinkError::Misconfigured(why) => why,
            other => other.to_string(),
        };
        PipelineError::Unreachable { sink, why }
    }
}

impl From<SettingError> for PipelineError {
    fn from(error: SettingError) -> PipelineError {
        PipelineError::Setting {
            key: error.key.to_owned(),
            problem: error.to_string(),
        }
    }
}

impl From<figment::Error> for PipelineError {
    fn from(errors: figment::Error) -> PipelineError {
        let messages: Vec<String> = errors.into_iter().map(|error| describe(&error)).collect();
        PipelineError::Config(messages.join("; "))
    }
}

/// One figment error as `WHERE: KEY: WHAT`, e.g. `run.toml: http.timeout:
/// invalid type: found integer 5, expected a duration`.
fn describe(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let origin = error
        .metadata
        .as_ref()
        .map(|metadata| match &metadata.source {
            Some(figment::Source::File(path)) => path.display().to_string(),
            _ => metadata.name.to_string(),
        });
    let what = match &error.kind {
        figment::error::Kind::UnknownField(field, _) => {
            // The path ends with the unknown field itself.
            let key = if key.is_empty() { field.clone() } else { key };
            return format!(
                "{}unknown key `{key}`: see `sluice run --help` for the settings, `--print-config` for their keys",
                origin.map(|o| format!("{o}: ")).unwrap_or_default()
            );
        }
        kind => kind.to_string(),
    };
    match (origin, key.is_empty()) {
        (Some(origin), false) => format!("{origin}: {key}: {what}"),
        (Some(origin), true) => format!("{origin}: {what}"),
        (None, false) => format!("{key}: {what}"),
        (None, true) => what,
    }
}
