//! Flags of `sluice generate`.

use clap::Args;
use sluice_models::DataSource;
use sluice_sim::StreamConfig;

use super::parse::{probability, source};

/// Flags of `sluice generate`: NDJSON records from the stream simulator,
/// problematic payloads included, for `sluice run --profile seed`.
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
}

impl GenerateArgs {
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
