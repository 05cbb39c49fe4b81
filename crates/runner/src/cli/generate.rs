//! Flags of `sluice generate`.

use clap::Args;
use sluice_models::DataSource;
use sluice_sim::StreamConfig;

use super::parse::{probability, source};
use sluice_nats::SUBJECT_PREFIX;

use sluice_nats::StreamTarget;

/// Flags of `sluice generate`: NDJSON records from the stream simulator,
/// problematic payloads included, for `sluice run --profile seed`; to
/// stdout or to a JetStream stream.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many records to write, 1 to 100000000.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub records: u64,
    /// The seed of the payloads (timestamps are the time of writing).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The sources, comma-separated; they take turns.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "user_events,transaction_data,system_metrics,security_logs",
        value_parser = source
    )]
    pub sources: Vec<DataSource>,
    /// Partitions per source, 1 to 1000000; a source's records take turns.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub partitions: u32,
    /// The probability that a payload is one of the five problematic kinds
    /// (the standard transform repairs them).
    #[arg(long, default_value_t = 0.15, value_parser = probability)]
    pub bad_data_rate: f64,
    /// The probability that a line cannot be delivered at all: cut short,
    /// a priority or source out of range, or a negative timestamp (0 to 1).
    #[arg(long, default_value_t = 0.01, value_parser = probability)]
    pub invalid_rate: f64,
    /// Publish to JetStream at `nats://HOST:PORT` (with --nats-stream),
    /// each record to `records.<source>.<partition>`, instead of writing
    /// to stdout.
    #[arg(long, value_name = "nats://HOST:PORT")]
    pub to: Option<String>,
    /// The JetStream stream to publish to.
    #[arg(long, value_name = "NAME", requires = "to")]
    pub nats_stream: Option<String>,
    /// Create the stream (over `<PREFIX>.>`, file storage) when it is
    /// missing.
    #[arg(long, requires = "to")]
    pub create_stream: bool,
    /// The subjects' first token: records go to
    /// `<PREFIX>.<source>.<partition>`. Default `records`.
    #[arg(long, value_name = "PREFIX", requires = "to", default_value = SUBJECT_PREFIX)]
    pub subject_prefix: String,
}

impl GenerateArgs {
    /// Where to publish, when `--to` is given.
    ///
    /// # Errors
    /// A message naming the flag when `--to` is no `nats://` URL or
    /// `--nats-stream` is missing.
    pub fn nats_target(&self) -> Result<Option<StreamTarget>, String> {
        let Some(url) = &self.to else {
            return Ok(None);
        };
        if !url.starts_with("nats://") {
            return Err(format!("--to {url}: write nats://HOST:PORT"));
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.subject_prefix.is_empty() || !self.subject_prefix.chars().all(plain) {
            return Err(format!(
                "--subject-prefix {:?}: one subject token of letters, digits, - and _",
                self.subject_prefix
            ));
        }
        let stream = self
            .nats_stream
            .clone()
            .ok_or("--to nats://... needs --nats-stream NAME")?;
        Ok(Some(StreamTarget {
            url: url.clone(),
            stream,
            create_stream: self.create_stream,
            subject_prefix: self.subject_prefix.clone(),
        }))
    }

    /// The simulator these flags describe.
    ///
    /// # Errors
    /// A message naming the flag when the settings cannot be used together.
    pub fn to_stream_config(&self) -> Result<StreamConfig, String> {
        let config = StreamConfig {
            sources: self.sources.clone(),
            partitions: self.partitions,
            bad_data_rate: self.bad_data_rate,
            seed: self.seed,
            ..StreamConfig::default()
        };
        config.validate().map_err(|error| match error.field {
            "stream.sources" => format!("--sources: {}", error.reason),
            _ => error.to_string(),
        })?;
        Ok(config)
    }
}
