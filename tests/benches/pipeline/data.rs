//! The NDJSON input files of the file scenarios, made once and reused.

use std::io::Read;
use std::path::{Path, PathBuf};

use sluice_models::DataSource;
use sluice_sim::StreamConfig;

/// Where the input files are kept between runs.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("target/bench-data")
}

/// `default`, or `$SLUICE_BENCH_RECORDS` when set: fewer records for a
/// profiler's run (`valgrind --tool=callgrind`, `perf record`).
pub fn records(default: u64) -> u64 {
    std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Partitions per source of the generated records: 4 sources x 8
/// partitions, as in the raw throughput scenario.
pub const PARTITIONS: u32 = 8;

/// A file of `records` `StreamData` lines as `sluice generate --records N
/// --seed 1 --partitions 8 --invalid-rate 0` writes them (the four
/// sources taking turns, 15 % problematic payloads that the standard
/// transform repairs, no undeliverable line), made on first use under
/// `target/bench-data` and reused; then read through once, so that it is
/// in the page cache when the clock starts.
pub fn seed_file(records: u64) -> PathBuf {
    let dir = data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("seed-{records}.ndjson"));
    if !path.exists() {
        let partial = dir.join(format!("seed-{records}.ndjson.partial"));
        let file = std::fs::File::create(&partial).unwrap();
        let config = StreamConfig {
            sources: DataSource::ALL.to_vec(),
            partitions: PARTITIONS,
            seed: 1,
            ..StreamConfig::default()
        };
        sluice_sim::ndjson::write_records(config, records, 0.0, file).unwrap();
        std::fs::rename(&partial, &path).unwrap();
    }
    warm(&path);
    path
}

/// Reads `path` through (in 1 MiB pieces, so that the reading adds
/// nothing to the process's memory), to put it in the page cache.
fn warm(path: &Path) {
    let mut file = std::fs::File::open(path).unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    while file.read(&mut buffer).unwrap() > 0 {}
}
