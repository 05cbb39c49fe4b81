//! Data sets from the stream simulator as NDJSON lines (`sluice
//! generate`): the simulator's records, a share of them made
//! undeliverable on purpose.

use std::io::{self, Write};

use crate::{SimError, StreamConfig, StreamSimulator};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use sluice_processor::EpochClock;

/// One generated record: the stream and partition it belongs to, and its
/// NDJSON line (without the newline).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedLine {
    /// The record's source, as a stream name.
    pub stream: &'static str,
    /// The record's partition.
    pub partition: u32,
    /// The line: a `StreamData` object, or an undeliverable one.
    pub line: Vec<u8>,
}

/// `records` records from the simulator, the sources taking turns; a share
/// `invalid_rate` of the lines are made undeliverable (see [`Invalid`]),
/// drawn from the config's seed.
///
/// # Errors
/// A simulator setting that cannot be used.
pub fn lines(
    config: StreamConfig,
    records: u64,
    invalid_rate: f64,
) -> Result<impl Iterator<Item = GeneratedLine>, GenerateError> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x0001_a51d);
    let simulator = StreamSimulator::new(config, EpochClock::system())?;
    let count = usize::try_from(records).unwrap_or(usize::MAX);
    Ok(simulator.records().take(count).map(move |record| {
        // A record of plain fields and a JSON object always serializes.
        let mut line = serde_json::to_vec(&record).unwrap_or_default();
        if invalid_rate > 0.0 && rng.random_bool(invalid_rate) {
            let kind = Invalid::ALL[rng.random_range(0..Invalid::ALL.len())];
            line = kind.corrupt(&line);
        }
        GeneratedLine {
            stream: record.source.as_str(),
            partition: record.partition,
            line,
        }
    }))
}

/// Writes the [`lines`] as NDJSON to `out`.
///
/// # Errors
/// A simulator setting that cannot be used, or a failed write (a closed
/// pipe included: the reader went away).
pub fn write_records(
    config: StreamConfig,
    records: u64,
    invalid_rate: f64,
    out: impl Write,
) -> Result<(), GenerateError> {
    let mut out = io::BufWriter::new(out);
    for generated in lines(config, records, invalid_rate)? {
        out.write_all(&generated.line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The ways `sluice generate` makes a line undeliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Cut in half: not JSON.
    Cut,
    /// Priority 9: not a StreamData record.
    Priority,
    /// An unknown source: not a StreamData record.
    Source,
    /// A negative timestamp: a record the validation refuses.
    Timestamp,
}

impl Invalid {
    /// Every kind.
    pub const ALL: [Invalid; 4] = [
        Invalid::Cut,
        Invalid::Priority,
        Invalid::Source,
        Invalid::Timestamp,
    ];

    fn corrupt(self, line: &[u8]) -> Vec<u8> {
        let Ok(mut record) = serde_json::from_slice::<serde_json::Value>(line) else {
            return line.to_vec();
        };
        match self {
            Invalid::Cut => return line[..line.len() / 2].to_vec(),
            Invalid::Priority => record["priority"] = 9.into(),
            Invalid::Source => record["source"] = "unknown_source".into(),
            Invalid::Timestamp => record["timestamp"] = (-5.0).into(),
        }
        serde_json::to_vec(&record).unwrap_or_else(|_| line.to_vec())
    }
}

/// Why generated records could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A simulator setting.
    #[error(transparent)]
    Setting(#[from] SimError),
    /// Writing failed.
    #[error("could not write the records: {0}")]
    Write(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use sluice_models::{DataSource, StreamData};

    use super::*;

    #[test]
    fn every_line_is_a_stream_data_record_and_the_count_is_exact() {
        let config = StreamConfig {
            sources: vec![DataSource::UserEvents, DataSource::TransactionData],
            partitions: 2,
            bad_data_rate: 0.5,
            seed: 3,
            ..StreamConfig::default()
        };
        let mut out = Vec::new();
        write_records(config, 25, 0.0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let records: Vec<StreamData> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(records.len(), 25);
        assert_eq!(
            records
                .iter()
                .filter(|r| r.source == DataSource::UserEvents)
                .count(),
            13
        );
        assert!(
            records
                .iter()
                .all(|r| r.sequence_id >= 1 && r.partition < 2)
        );
    }

    #[test]
    fn invalid_lines_come_at_their_rate_and_are_each_undeliverable() {
        let config = StreamConfig {
            seed: 5,
            ..StreamConfig::default()
        };
        let mut out = Vec::new();
        write_records(config, 2_000, 0.1, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let bad = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<StreamData>(line).map_or(true, |r| r.timestamp <= 0.0)
            })
            .count();
        // 10 % of 2 000, within 4 sigma.
        assert!((150..=250).contains(&bad), "{bad}");
    }
}
