//! `sluice check`: everything a run would use, checked without reading a
//! record or sending one.

use sluice_processor::{RateLimit, SourceContext};

use crate::connectors::Connectors;
use crate::dead_letters::DeadLetterTarget;
use crate::error::PipelineError;
use crate::ordering;
use crate::pipeline::profile;
use crate::settings::PipelineSettings;

/// One thing checked, and how it went.
#[derive(Debug)]
pub struct Checked {
    /// What was checked: `settings`, `profile`, `source`, `sink`, `API`,
    /// `shared limit`, `dead letters`.
    pub what: &'static str,
    /// What was found, or why it cannot be used.
    pub outcome: Result<String, PipelineError>,
}

impl Checked {
    fn new(what: &'static str, outcome: Result<String, PipelineError>) -> Checked {
        Checked { what, outcome }
    }
}

/// Checks everything a run of `settings` would use: the settings, the
/// profile and its schema, the sink's settings (headers and the variables
/// they name), the API (reached, see `Sink::check`), the shared limit's
/// store, the dead-letter file, and the source's inputs, checkpoint or
/// server. Reads no record, sends none, takes no lease or lock it keeps.
/// Stops at the first failure that makes the rest meaningless (settings
/// that cannot be read).
pub async fn check(settings: &PipelineSettings, connectors: &Connectors) -> Vec<Checked> {
    let mut checked = Vec::new();
    let chosen = settings
        .check()
        .map_err(PipelineError::from)
        .and_then(|()| {
            let (source_name, source) = connectors.source(settings)?;
            let (sink_name, sink) = connectors.sink(settings)?;
            connectors.check_sections(settings, source_name, sink_name)?;
            Ok((source_name, source, sink_name, sink))
        });
    let (source_name, source, sink_name, sink) = match chosen {
        Ok(chosen) => chosen,
        Err(error) => {
            checked.push(Checked::new("settings", Err(error)));
            return checked;
        }
    };
    checked.push(Checked::new(
        "settings",
        Ok(format!("source `{source_name}`, sink `{sink_name}`")),
    ));
    checked.push(Checked::new(
        "profile",
        profile(settings).map(|_| format!("{:?}", settings.profile()).to_lowercase()),
    ));
    let built = sink.build(settings.sections.get(sink_name));
    let queue_capacity = match &built {
        Ok((sink, policy)) => {
            checked.push(Checked::new(
                "sink",
                Ok("settings and headers usable".into()),
            ));
            let reached = sink
                .check()
                .await
                .map_err(|error| PipelineError::unreachable(sink_name, error));
            checked.push(Checked::new("API", reached));
            settings
                .processor_config(*policy)
                .map(|config| config.queue_capacity)
                .unwrap_or(0)
        }
        Err(_) => 0,
    };
    if let Err(error) = built {
        checked.push(Checked::new("sink", Err(error)));
    }
    if let Some(url) = &settings.shared_limit {
        checked.push(Checked::new(
            "shared limit",
            shared_limit(settings, url).await,
        ));
    }
    checked.push(Checked::new("dead letters", dead_letters(settings).await));
    let context = SourceContext {
        inputs: settings.inputs.clone(),
        checkpoint: settings.checkpoint.clone(),
        queue_capacity,
        ordering: ordering::choose(settings, source.partitioned())
            .ordering
            .into(),
        progress: sluice_processor::InputProgress::default(),
    };
    checked.push(Checked::new(
        "source",
        source
            .check(settings.sections.get(source_name), &context)
            .await,
    ));
    checked
}

/// Connects to the shared limit's store.
async fn shared_limit(settings: &PipelineSettings, url: &str) -> Result<String, PipelineError> {
    let RateLimit::Fixed(quota) = settings.rate_limit()? else {
        return Err(PipelineError::setting(
            "shared_limit",
            "needs a known quota: set --rate-limit N/UNIT",
        ));
    };
    sluice_redis::RedisLimit::connect(url, quota, std::time::Duration::ZERO)
        .await
        .map_err(|error| PipelineError::setting("shared_limit", error.to_string()))?;
    Ok(format!("the store answers; quota {quota}"))
}

/// Whether the dead-letter file can be written (made and removed again
/// when it did not exist).
async fn dead_letters(settings: &PipelineSettings) -> Result<String, PipelineError> {
    let target = DeadLetterTarget::of(
        settings.dead_letters.as_deref(),
        settings.checkpoint.as_deref(),
    );
    let DeadLetterTarget::File { path, .. } = target else {
        return Ok("discarded (--dead-letters none)".to_owned());
    };
    let existed = tokio::fs::try_exists(&path).await.unwrap_or(true);
    let opened = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await;
    if !existed {
        let _ = tokio::fs::remove_file(&path).await;
    }
    opened
        .map(|_| format!("{} can be written", path.display()))
        .map_err(|error| {
            PipelineError::setting(
                "dead_letters",
                format!("cannot write {}: {error}", path.display()),
            )
        })
}
