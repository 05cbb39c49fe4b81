//! The registry of connectors: which sources and sinks a pipeline can be
//! built with, each under its name, and how a configuration chooses them.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_processor::{BuiltSource, SinkConnector, SinkPolicy, SourceConnector, SourceContext};
use sluice_profiles::Record;

use crate::error::PipelineError;
use crate::settings::PipelineSettings;

/// A sink as the pipeline holds it, for its records.
pub type PipelineSink = Box<dyn sluice_processor::Sink<Record>>;

/// What a connector's configuration type must be to be registered: read
/// from its section (serde, unknown keys refused), printed back
/// (`--print-config`), with its documented defaults as `Default`.
pub trait ConnectorSettings:
    Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static
{
}

impl<C> ConnectorSettings for C where
    C: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static
{
}

/// The connectors a pipeline can be built with, by name: a configuration
/// chooses its source and sink among them, and each one's section
/// (`[files]`, `[http]`) configures it.
///
/// Registering a connector is one line; its settings type describes the
/// rest (its keys, defaults, checks, how it builds and finishes):
///
/// ```
/// use sluice_pipeline::Connectors;
///
/// let connectors = Connectors::builtin();
/// assert_eq!(connectors.source_names(), ["files", "nats"]);
/// assert_eq!(connectors.sink_names(), ["http"]);
/// ```
#[derive(Clone, Default)]
pub struct Connectors {
    sources: BTreeMap<&'static str, Arc<dyn SourceEntry>>,
    sinks: BTreeMap<&'static str, Arc<dyn SinkEntry>>,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors")
            .field("sources", &self.source_names())
            .field("sinks", &self.sink_names())
            .finish()
    }
}

impl Connectors {
    /// No connector at all.
    pub fn new() -> Connectors {
        Connectors::default()
    }

    /// The connectors of the `sluice` binary: the `files` and `nats`
    /// sources and the `http` sink.
    pub fn builtin() -> Connectors {
        Connectors::new()
            .with_source::<sluice_files::FilesSettings>()
            .with_source::<sluice_nats::NatsSettings>()
            .with_sink::<sluice_http::HttpSettings>()
    }

    /// These connectors and the source `C`, under `C::NAME`.
    ///
    /// # Panics
    /// When a connector of that name is registered already, or the name
    /// would make a top-level key ambiguous (environment variables map
    /// `SLUICE_<NAME>_<KEY>` to the section's key): both are mistakes in
    /// the program, not in its input.
    #[must_use]
    pub fn with_source<C: SourceConnector + ConnectorSettings>(mut self) -> Connectors {
        self.check_name(C::NAME);
        self.sources
            .insert(C::NAME, Arc::new(Source::<C>(std::marker::PhantomData)));
        self
    }

    /// These connectors and the sink `C`, under `C::NAME`.
    ///
    /// # Panics
    /// As [`with_source`](Self::with_source).
    #[must_use]
    pub fn with_sink<C: SinkConnector<Record> + ConnectorSettings>(mut self) -> Connectors {
        self.check_name(<C as SinkConnector<Record>>::NAME);
        self.sinks.insert(
            <C as SinkConnector<Record>>::NAME,
            Arc::new(Sink::<C>(std::marker::PhantomData)),
        );
        self
    }

    fn check_name(&self, name: &'static str) {
        assert!(
            !self.sources.contains_key(name) && !self.sinks.contains_key(name),
            "a connector named `{name}` is registered already"
        );
        let prefix = format!("{name}_");
        assert!(
            !crate::load::TOP_LEVEL_KEYS
                .iter()
                .any(|key| key.starts_with(&prefix)),
            "a connector named `{name}` would make a top-level key ambiguous"
        );
    }

    /// The sources' names, sorted.
    pub fn source_names(&self) -> Vec<&'static str> {
        self.sources.keys().copied().collect()
    }

    /// The sinks' names, sorted.
    pub fn sink_names(&self) -> Vec<&'static str> {
        self.sinks.keys().copied().collect()
    }

    /// Every connector's name: the configuration's sections.
    pub fn section_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sources.keys().chain(self.sinks.keys()).copied()
    }

    /// Reads every connector's section in `figment` as its settings type,
    /// so that a value of the wrong type or an unknown key is reported
    /// with the file, variable or flag it came from.
    ///
    /// # Errors
    /// The first section that does not read.
    pub(crate) fn check_sections_in(
        &self,
        figment: &figment::Figment,
    ) -> Result<(), PipelineError> {
        let entries = self
            .sources
            .iter()
            .map(|(name, entry)| (*name, entry.reader()))
            .chain(
                self.sinks
                    .iter()
                    .map(|(name, entry)| (*name, entry.reader())),
            );
        for (name, read) in entries {
            if figment.contains(name) {
                read(figment, name)?;
            }
        }
        Ok(())
    }

    /// The source `settings` choose: `source` when set; else the one whose
    /// scheme the inputs use (`nats://` chooses `nats`); else `files`.
    ///
    /// # Errors
    /// [`PipelineError::Setting`] naming the unknown source or scheme, or
    /// the inputs that two sources would read.
    pub(crate) fn source(
        &self,
        settings: &PipelineSettings,
    ) -> Result<(&'static str, &dyn SourceEntry), PipelineError> {
        let known = || self.source_names().join(", ");
        if let Some(name) = &settings.source {
            return self
                .sources
                .get_key_value(name.as_str())
                .map(|(name, entry)| (*name, &**entry))
                .ok_or_else(|| {
                    PipelineError::setting(
                        "source",
                        format!("no source is named `{name}` (known: {})", known()),
                    )
                });
        }
        let mut chosen: Option<&'static str> = None;
        for input in &settings.inputs {
            let Some((scheme, _)) = input.split_once("://") else {
                continue;
            };
            let (name, _) = self
                .sources
                .iter()
                .find(|(_, entry)| entry.schemes().contains(&scheme))
                .ok_or_else(|| {
                    PipelineError::setting(
                        "inputs",
                        format!("no source reads `{scheme}://` inputs such as {input} (known sources: {})", known()),
                    )
                })?;
            match chosen {
                Some(other) if other != *name => {
                    return Err(PipelineError::setting(
                        "inputs",
                        format!("inputs of `{other}` and `{name}` cannot be read in one run"),
                    ));
                }
                _ => chosen = Some(name),
            }
        }
        let name = chosen.unwrap_or("files");
        self.sources
            .get_key_value(name)
            .map(|(name, entry)| (*name, &**entry))
            .ok_or_else(|| {
                PipelineError::setting(
                    "source",
                    format!("choose a source with --source (known: {})", known()),
                )
            })
    }

    /// The sink `settings` choose: `sink`, else `http`.
    pub(crate) fn sink(
        &self,
        settings: &PipelineSettings,
    ) -> Result<(&'static str, &dyn SinkEntry), PipelineError> {
        let name = settings.sink.as_deref().unwrap_or("http");
        self.sinks
            .get_key_value(name)
            .map(|(name, entry)| (*name, &**entry))
            .ok_or_else(|| {
                PipelineError::setting(
                    "sink",
                    format!(
                        "no sink is named `{name}` (known: {})",
                        self.sink_names().join(", ")
                    ),
                )
            })
    }

    /// Checks every section: each names a registered connector, and only
    /// the chosen source's and sink's are set.
    ///
    /// # Errors
    /// [`PipelineError::Setting`] naming the section.
    pub(crate) fn check_sections(
        &self,
        settings: &PipelineSettings,
        source: &str,
        sink: &str,
    ) -> Result<(), PipelineError> {
        for (key, value) in &settings.sections {
            let registered =
                self.sources.contains_key(key.as_str()) || self.sinks.contains_key(key.as_str());
            if !registered {
                return Err(PipelineError::UnknownKey(key.clone()));
            }
            if !value.is_table() {
                return Err(PipelineError::setting(
                    "sections",
                    format!(
                        "`{key}` is the {key} connector's section: write it as a table, [{key}]"
                    ),
                ));
            }
            if key != source && key != sink {
                return Err(PipelineError::setting(
                    key,
                    format!(
                        "[{key}] is set, but the source is `{source}` and the sink `{sink}`: \
                         choose it (--source {key}) or drop its settings"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Reads a section of a figment as a connector's settings, for its errors.
type SectionReader = fn(&figment::Figment, &str) -> Result<(), PipelineError>;

/// Reads the section `name` of `figment` as `C`.
fn read_section<C: ConnectorSettings>(
    figment: &figment::Figment,
    name: &str,
) -> Result<(), PipelineError> {
    figment
        .extract_inner::<C>(name)
        .map(drop)
        .map_err(|mut error| {
            // figment 0.10 appends the section to the error's path instead of
            // prepending it: put it first, where it belongs.
            if error.path.last().is_some_and(|last| last == name) {
                error.path.pop();
                error.path.insert(0, name.to_owned());
            }
            error.into()
        })
}

/// A registered source, its settings type erased.
#[async_trait]
pub(crate) trait SourceEntry: Send + Sync {
    /// Reads its section of a figment.
    fn reader(&self) -> SectionReader;
    /// The URL schemes of the inputs it reads.
    fn schemes(&self) -> &'static [&'static str];
    /// See [`SourceConnector::PARTITIONED`].
    fn partitioned(&self) -> bool;
    /// Its section as `--print-config` shows it: defaults filled in,
    /// secrets masked.
    fn shown(&self, section: Option<&toml::Value>) -> Result<toml::Value, PipelineError>;
    /// Builds the source from its section.
    async fn build(
        &self,
        section: Option<&toml::Value>,
        context: &SourceContext,
    ) -> Result<BuiltSource, PipelineError>;
    /// Checks what building it would use, reading nothing.
    async fn check(
        &self,
        section: Option<&toml::Value>,
        context: &SourceContext,
    ) -> Result<String, PipelineError>;
}

/// A registered sink, its settings type erased.
pub(crate) trait SinkEntry: Send + Sync {
    /// Reads its section of a figment.
    fn reader(&self) -> SectionReader;
    /// As [`SourceEntry::shown`].
    fn shown(&self, section: Option<&toml::Value>) -> Result<toml::Value, PipelineError>;
    /// Builds the sink from its section, with the processor policy it
    /// implies.
    fn build(
        &self,
        section: Option<&toml::Value>,
    ) -> Result<(PipelineSink, SinkPolicy), PipelineError>;
}

struct Source<C>(std::marker::PhantomData<fn() -> C>);
struct Sink<C>(std::marker::PhantomData<fn() -> C>);

/// The settings `C` of connector `name` read from its section (the
/// defaults when there is none).
fn parse<C: ConnectorSettings>(
    name: &str,
    section: Option<&toml::Value>,
) -> Result<C, PipelineError> {
    match section {
        None => Ok(C::default()),
        Some(value) => value
            .clone()
            .try_into()
            .map_err(|error: toml::de::Error| PipelineError::setting(name, error.message())),
    }
}

/// `settings` with the connector's defaults under what is set, as a table.
fn with_defaults<C: ConnectorSettings>(
    name: &str,
    settings: &C,
) -> Result<toml::Value, PipelineError> {
    let shown = |value: &dyn erased::Show| value.table(name);
    let mut table = shown(&C::default())?;
    table.extend(shown(settings)?);
    Ok(toml::Value::Table(table))
}

/// Serializing settings to a TOML table, object-safe.
mod erased {
    use super::PipelineError;

    pub(super) trait Show {
        fn table(&self, name: &str) -> Result<toml::Table, PipelineError>;
    }

    impl<T: serde::Serialize> Show for T {
        fn table(&self, name: &str) -> Result<toml::Table, PipelineError> {
            toml::Table::try_from(self)
                .map_err(|error| PipelineError::setting(name, format!("cannot be shown: {error}")))
        }
    }
}

#[async_trait]
impl<C: SourceConnector + ConnectorSettings> SourceEntry for Source<C> {
    fn reader(&self) -> SectionReader {
        read_section::<C>
    }

    fn schemes(&self) -> &'static [&'static str] {
        C::SCHEMES
    }

    fn partitioned(&self) -> bool {
        C::PARTITIONED
    }

    fn shown(&self, section: Option<&toml::Value>) -> Result<toml::Value, PipelineError> {
        let settings: C = parse(C::NAME, section)?;
        with_defaults(C::NAME, &settings.redacted())
    }

    async fn build(
        &self,
        section: Option<&toml::Value>,
        context: &SourceContext,
    ) -> Result<BuiltSource, PipelineError> {
        let settings: C = parse(C::NAME, section)?;
        settings
            .build(context)
            .await
            .map_err(|error| PipelineError::Connector {
                connector: C::NAME,
                error,
            })
    }

    async fn check(
        &self,
        section: Option<&toml::Value>,
        context: &SourceContext,
    ) -> Result<String, PipelineError> {
        let settings: C = parse(C::NAME, section)?;
        settings
            .check(context)
            .await
            .map_err(|error| PipelineError::Connector {
                connector: C::NAME,
                error,
            })
    }
}

impl<C: SinkConnector<Record> + ConnectorSettings> SinkEntry for Sink<C> {
    fn reader(&self) -> SectionReader {
        read_section::<C>
    }

    fn shown(&self, section: Option<&toml::Value>) -> Result<toml::Value, PipelineError> {
        let name = <C as SinkConnector<Record>>::NAME;
        let settings: C = parse(name, section)?;
        with_defaults(name, &SinkConnector::<Record>::redacted(&settings))
    }

    fn build(
        &self,
        section: Option<&toml::Value>,
    ) -> Result<(PipelineSink, SinkPolicy), PipelineError> {
        let name = <C as SinkConnector<Record>>::NAME;
        let settings: C = parse(name, section)?;
        let sink = SinkConnector::<Record>::build(&settings).map_err(|error| {
            PipelineError::Connector {
                connector: name,
                error,
            }
        })?;
        Ok((Box::new(sink), SinkConnector::<Record>::policy(&settings)))
    }
}
