//! A source and a sink of your own, each registered by one line, in a
//! pipeline built from a configuration the way `sluice run` builds its own.
//!
//! - `Generator`: a source of `records` JSON objects `{"n": 1}`, ...
//! - `FileSink`: a sink appending each record to a file, one line each.
//!
//! ```sh
//! cargo run -p sluice-pipeline --example custom_connectors -- /tmp/out.ndjson
//! ```
//!
//! ARCHITECTURE.md ("Adding a source or a sink") walks through it.

use std::path::PathBuf;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sluice_pipeline::{ConfigLayers, Connectors, Hooks, Pipeline, RunSummary};
use sluice_processor::{
    BuiltSource, ConnectorError, CountedFrom, Envelope, Incoming, NothingToFinish, Origin,
    RawRecord, RecordId, SendError, SettingError, Sink, SinkConnector, SinkError, SinkPolicy,
    SourceConnector, SourceContext, StreamName,
};
use sluice_profiles::Record;

// --- The source: its settings type is the connector. -----------------------

/// `[generator]`: how many records to make, and their stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Generator {
    /// How many records.
    pub records: u64,
    /// Their stream's name.
    pub stream: String,
}

impl Default for Generator {
    fn default() -> Self {
        Generator {
            records: 10,
            stream: "generated".to_owned(),
        }
    }
}

#[async_trait]
impl SourceConnector for Generator {
    const NAME: &'static str = "generator";

    async fn build(&self, _: &SourceContext) -> Result<BuiltSource, ConnectorError> {
        let stream = StreamName::new(&self.stream).map_err(|error| {
            SettingError::new("generator.stream", "(config)", error.to_string())
        })?;
        let origin = Origin::new("generator");
        let records = futures::stream::iter(1..=self.records).map(move |n| {
            let position = RecordId {
                stream,
                partition: 0,
                sequence: n,
            };
            Incoming::new(RawRecord::new(
                origin.clone(),
                position,
                format!("{{\"n\":{n}}}"),
            ))
        });
        Ok(BuiltSource {
            streams: vec![records.boxed()],
            finish: Box::new(NothingToFinish),
        })
    }
}

// --- The sink: its settings type builds it. ---------------------------------

/// `[file]`: where to write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkSettings {
    /// The file records are appended to.
    pub path: Option<PathBuf>,
}

/// Appends each record of a batch as one line of JSON.
pub struct FileSink {
    file: tokio::sync::Mutex<tokio::fs::File>,
}

#[async_trait]
impl Sink<Record> for FileSink {
    async fn send(&self, batch: &[Envelope<Record>]) -> Result<(), SendError> {
        use tokio::io::AsyncWriteExt;
        let mut lines = Vec::new();
        for envelope in batch {
            serde_json::to_writer(&mut lines, &envelope.record)
                .map_err(|error| SinkError::Rejected(error.to_string()))?;
            lines.push(b'\n');
        }
        let mut file = self.file.lock().await;
        file.write_all(&lines)
            .await
            .map_err(|error| SinkError::Transient(error.to_string()))?;
        Ok(())
    }
}

impl SinkConnector<Record> for FileSinkSettings {
    const NAME: &'static str = "file";
    type Sink = FileSink;

    fn build(&self) -> Result<FileSink, ConnectorError> {
        let path = self
            .path
            .as_ref()
            .ok_or_else(|| SettingError::new("file.path", "(config)", "required"))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(FileSink {
            file: tokio::sync::Mutex::new(tokio::fs::File::from_std(file)),
        })
    }

    fn policy(&self) -> SinkPolicy {
        SinkPolicy {
            call_timeout: std::time::Duration::from_secs(5),
            counted_from: CountedFrom::Call,
            rate_limit_margin: std::time::Duration::ZERO,
        }
    }
}

// --- The pipeline: the same path as `sluice run`. ---------------------------

/// Runs 25 generated records into the file at `out` through the `json`
/// profile.
pub async fn run(out: &std::path::Path) -> Result<RunSummary, Box<dyn std::error::Error>> {
    // One registration each.
    let connectors = Connectors::builtin()
        .with_source::<Generator>()
        .with_sink::<FileSinkSettings>();
    let config = format!(
        "source = 'generator'\nsink = 'file'\nprofile = 'json'\nrate_limit = 'none'\n\
         [generator]\nrecords = 25\n[file]\npath = {out:?}\n"
    );
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, config)?;
    // As `sluice run --config FILE` loads its settings (with its flags
    // and the environment as the layers above).
    let settings = ConfigLayers::new(&connectors).file(&file)?.load()?;
    let pipeline = Pipeline::build(&settings, &connectors).await?;
    let summary = pipeline
        .run(Hooks {
            on_status: |_: &_| {},
            stop: std::future::pending(),
            abort: std::future::pending(),
        })
        .await?;
    Ok(summary)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join("generated.ndjson"),
        PathBuf::from,
    );
    let summary = run(&out).await?;
    println!(
        "delivered {} of {} records to {}",
        summary.delivered,
        summary.ingested,
        out.display()
    );
    Ok(())
}
