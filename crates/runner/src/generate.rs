//! `sluice generate`: a data set from the stream simulator.

use std::io::{self, Write};

use sluice_processor::EpochClock;
use sluice_sim::{SimError, StreamConfig, StreamSimulator};

/// Writes `records` records as NDJSON (one `StreamData` object a line) to
/// `out`, the sources taking turns.
///
/// # Errors
/// A simulator setting that cannot be used, or a failed write (a closed
/// pipe included: the reader went away).
pub fn write_records(
    config: StreamConfig,
    records: u64,
    out: impl Write,
) -> Result<(), GenerateError> {
    let simulator = StreamSimulator::new(config, EpochClock::system())?;
    let mut out = io::BufWriter::new(out);
    for record in simulator
        .records()
        .take(usize::try_from(records).unwrap_or(usize::MAX))
    {
        serde_json::to_writer(&mut out, &record).map_err(io::Error::from)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Why `sluice generate` could not write its records.
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
        write_records(config, 25, &mut out).unwrap();
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
}
