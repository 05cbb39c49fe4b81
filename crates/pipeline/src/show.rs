//! The effective configuration, as `--print-config` shows it.

use sluice_processor::redact_userinfo;

use crate::connectors::Connectors;
use crate::error::PipelineError;
use crate::ordering;
use crate::settings::PipelineSettings;

/// The configuration `settings` amount to, as TOML a file could hold: the
/// pipeline's settings with their defaults, and the sections of the
/// source and the sink chosen, with theirs; every secret masked (header
/// values, passwords in URLs).
///
/// ```
/// use sluice_pipeline::{Connectors, effective_config, from_toml};
///
/// let connectors = Connectors::builtin();
/// let settings = from_toml(&connectors, "inputs = ['a.ndjson']\n[http]\nurl = 'http://u:pw@h/r'")?;
/// let shown = effective_config(&settings, &connectors)?;
/// assert_eq!(shown["concurrency"].as_integer(), Some(16));
/// assert_eq!(shown["http"]["url"].as_str(), Some("http://<redacted>@h/r"));
/// assert_eq!(shown["http"]["timeout"].as_str(), Some("30s"));
/// # Ok::<(), sluice_pipeline::PipelineError>(())
/// ```
///
/// # Errors
/// [`PipelineError`] naming a setting that cannot be used, or a source,
/// sink or section that cannot be read.
pub fn effective_config(
    settings: &PipelineSettings,
    connectors: &Connectors,
) -> Result<toml::Table, PipelineError> {
    settings.check()?;
    let (source_name, source) = connectors.source(settings)?;
    let (sink_name, sink) = connectors.sink(settings)?;
    connectors.check_sections(settings, source_name, sink_name)?;
    let top = PipelineSettings {
        sections: Default::default(),
        source: Some(source_name.to_owned()),
        inputs: settings
            .inputs
            .iter()
            .map(|input| redact_userinfo(input).into_owned())
            .collect(),
        shared_limit: settings
            .shared_limit
            .as_deref()
            .map(|url| redact_userinfo(url).into_owned()),
        ordering: Some(ordering::choose(settings, source.partitioned()).ordering),
        queue_capacity: Some(settings.queue_capacity()?),
        ..settings.clone()
    };
    let shown = |settings: &PipelineSettings| {
        toml::Table::try_from(settings).map_err(|error| {
            PipelineError::Config(format!("the settings cannot be shown: {error}"))
        })
    };
    // The defaults under what is set, for settings not loaded in layers.
    let mut table = shown(&PipelineSettings::default())?;
    table.extend(shown(&top)?);
    table.insert(
        source_name.to_owned(),
        source.shown(settings.sections.get(source_name))?,
    );
    table.insert(
        sink_name.to_owned(),
        sink.shown(settings.sections.get(sink_name))?,
    );
    Ok(table)
}
