//! A run's inputs (files and stdin, or a JetStream stream) and its shared
//! limit, opened from the settings.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use sluice_files::{Checkpointer, DEFAULT_CHECKPOINT_INTERVAL, LineSource, SourceOptions};
use sluice_nats::{JetStreamConfig, JetStreamSource, PartitionLeases, PartitionedSource};
use sluice_processor::{Incoming, RateLimit, StreamName};
use sluice_profiles::json::JsonInput;

use crate::cli::{NatsSettings, RunOrdering, RunSettings};
use crate::pipeline::RunError;

/// A JetStream input as one source.
pub(crate) type NatsSource = Pin<Box<dyn Stream<Item = Incoming<JsonInput>> + Send>>;

/// The JetStream input: with `--ordering partition`, this process's share
/// of the partitions (and the leases to give up at the end); otherwise the
/// one durable consumer every process pulls from.
pub(crate) async fn open_nats(
    settings: &RunSettings,
    nats: &NatsSettings,
) -> Result<(NatsSource, Option<PartitionLeases>), RunError> {
    let config = JetStreamConfig {
        subject_filter: nats.subject.clone(),
        ack_wait: nats.ack_wait,
        // JetStream hands out no more than the pipeline holds.
        max_ack_pending: settings.queue_capacity as usize,
        ..JetStreamConfig::new(&nats.url, &nats.stream, &nats.consumer)
    };
    let failed =
        |e: sluice_nats::NatsError| RunError::Setting(format!("--input {}: {e}", nats.url));
    match settings.ordering {
        RunOrdering::Partition => {
            let (source, leases) = PartitionedSource::connect(config, nats.lease)
                .await
                .map_err(failed)?;
            tracing::info!(
                member = leases.member(),
                "consuming a share of the partitions"
            );
            Ok((Box::pin(source), Some(leases)))
        }
        RunOrdering::None => {
            let source = JetStreamSource::connect(config).await.map_err(failed)?;
            Ok((Box::pin(source), None))
        }
    }
}

/// The limit shared through `url` (`redis://HOST:PORT/NAME`) for the quota
/// of `rate_limit`.
pub(crate) async fn shared_limit(
    url: &str,
    rate_limit: RateLimit,
    margin: Duration,
) -> Result<sluice_redis::RedisLimit, RunError> {
    let RateLimit::Fixed(quota) = rate_limit else {
        return Err(RunError::Setting(
            "--shared-limit needs a known quota: --rate-limit N/UNIT".to_owned(),
        ));
    };
    sluice_redis::RedisLimit::connect(url, quota, margin)
        .await
        .map_err(|e| RunError::Setting(format!("--shared-limit: {e}")))
}

/// The line sources, and a checkpointer per file when checkpoints are on.
pub(crate) async fn open_files(
    settings: &RunSettings,
) -> Result<(Vec<LineSource>, Vec<Checkpointer>), RunError> {
    let stream = match &settings.stream {
        Some(name) => {
            Some(StreamName::new(name).map_err(|e| RunError::Setting(format!("--stream: {e}")))?)
        }
        None => None,
    };
    let options = || SourceOptions {
        stream,
        ..SourceOptions::default()
    };
    let mut sources = Vec::new();
    let mut checkpointers = Vec::new();
    let several = settings.inputs.len() > 1;
    for input in &settings.inputs {
        if input == "-" {
            let source =
                LineSource::stdin(options()).map_err(|e| RunError::Setting(e.to_string()))?;
            sources.push(source);
            continue;
        }
        let source = match &settings.checkpoint {
            Some(checkpoint) => {
                let file = checkpoint_file(checkpoint, Path::new(input), several)?;
                let source = LineSource::resume(input, &file, options())
                    .await
                    .map_err(|e| RunError::Setting(e.to_string()))?;
                if let Some(progress) = source.progress() {
                    checkpointers.push(Checkpointer::start(
                        file,
                        progress.clone(),
                        DEFAULT_CHECKPOINT_INTERVAL,
                    ));
                }
                source
            }
            None => LineSource::open(input, options())
                .await
                .map_err(|e| RunError::Setting(e.to_string()))?,
        };
        sources.push(source);
    }
    Ok((sources, checkpointers))
}

/// The checkpoint of `input`: `checkpoint` itself for one input; for
/// several, a file in the `checkpoint` directory named after the input's
/// canonical path.
fn checkpoint_file(checkpoint: &Path, input: &Path, several: bool) -> Result<PathBuf, RunError> {
    if !several {
        return Ok(checkpoint.to_owned());
    }
    std::fs::create_dir_all(checkpoint)
        .map_err(|e| RunError::Setting(format!("--checkpoint {}: {e}", checkpoint.display())))?;
    let canonical = input
        .canonicalize()
        .map_err(|e| RunError::Setting(format!("--input {}: {e}", input.display())))?;
    let hash = blake3::hash(canonical.to_string_lossy().as_bytes()).to_hex();
    let stem = input
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    Ok(checkpoint.join(format!("{stem}-{}.checkpoint.json", &hash[..16])))
}
