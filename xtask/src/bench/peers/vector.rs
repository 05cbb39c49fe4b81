//! Vector as a peer, when `VECTOR` names its binary: a configuration per
//! job (the file source reading the NDJSON file, a `remap` that parses
//! each line and gives it a key, the `http` sink posting JSON arrays at the
//! job's quota) and its command line. Vector keeps watching its file, so
//! the bench ends its jobs from the API's ledger (see `watch.rs`).
//!
//! Built from source with the features this needs (see BENCHMARKS.md,
//! "Peers"): `sources-file`, `transforms-remap`, `sinks-http` and
//! `vrl-functions-crypto` (for `sha2`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::{CONCURRENCY, Job};

/// The variable naming Vector's binary.
const VECTOR: &str = "VECTOR";

/// How long Vector may take to stop after SIGTERM (its default is 60 s).
const SHUTDOWN_LIMIT_SECS: u32 = 5;

/// The binary `VECTOR` names, or why Vector does not run.
pub fn find() -> Result<PathBuf, String> {
    let Some(path) = std::env::var_os(VECTOR) else {
        return Err(format!("{VECTOR} is not set (see Peers in BENCHMARKS.md)"));
    };
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{VECTOR}={} is not a file", path.display()))
    }
}

/// Writes the job's configuration in `work` and returns Vector's command.
pub fn command(
    vector: &Path,
    job: Job,
    input: &Path,
    url: &str,
    work: &Path,
) -> anyhow::Result<Command> {
    let data_dir = work.join("vector-data");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("could not create {}", data_dir.display()))?;
    let config = work.join("vector.toml");
    std::fs::write(&config, config_text(job, input, url, &data_dir))
        .with_context(|| format!("could not write {}", config.display()))?;
    let mut command = Command::new(vector);
    command
        .arg("--config")
        .arg(&config)
        .arg("--graceful-shutdown-limit-secs")
        .arg(SHUTDOWN_LIMIT_SECS.to_string());
    Ok(command)
}

/// The configuration (TOML) of `job`.
///
/// - The file source reads `input` from its start, ignoring checkpoints
///   (each run has a fresh `data_dir` anyway).
/// - The `remap` makes each event the line's JSON object and adds an
///   `idempotency_key` field, `sluice-` and 32 hex digits as sluice's:
///   VRL has no BLAKE3, so the digits are SHA-256's of the same identity.
///   VRL objects are sorted maps: the fields go out in key order.
/// - The `http` sink posts JSON arrays (`character_delimited` framing with
///   `,`, which the JSON codec wraps in brackets; an array of one record
///   when the job sends one a call), [`CONCURRENCY`] requests in flight,
///   at most the quota's requests a second (Vector counts requests, not
///   successes), retried with its default Fibonacci backoff; 429 and 5xx
///   are retried by default.
fn config_text(job: Job, input: &Path, url: &str, data_dir: &Path) -> String {
    let mut text = format!(
        r#"data_dir = {data_dir:?}

[sources.records]
type = "file"
include = [{input:?}]
read_from = "beginning"
ignore_checkpoints = true
max_line_bytes = 1048576

[transforms.keyed]
type = "remap"
inputs = ["records"]
source = '''
. = parse_json!(string!(.message))
identity = string!(.source) + "\0" + to_string!(.partition) + "\0" + to_string!(.sequence_id) + "\n"
.idempotency_key = "sluice-" + slice!(sha2(identity, variant: "SHA-256"), 0, 32)
'''

[sinks.api]
type = "http"
inputs = ["keyed"]
uri = "{url}"
method = "post"
encoding.codec = "json"
framing.method = "character_delimited"
framing.character_delimited.delimiter = ","
healthcheck.enabled = false
batch.max_events = {batch}
batch.timeout_secs = 0.1
request.concurrency = {CONCURRENCY}
request.timeout_secs = 30
"#,
        data_dir = data_dir.display().to_string(),
        input = input.display().to_string(),
        batch = job.batch(),
    );
    if let Some(quota) = job.quota() {
        let _ = write!(
            text,
            "request.rate_limit_num = {quota}\nrequest.rate_limit_duration_secs = 1\n"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_job_is_rate_limited_and_the_fast_ones_batch() {
        let quota = config_text(
            Job::Quota,
            Path::new("/d/records.ndjson"),
            "http://127.0.0.1:1/records",
            Path::new("/w/data"),
        );
        assert!(
            quota.contains("include = [\"/d/records.ndjson\"]"),
            "{quota}"
        );
        assert!(quota.contains("data_dir = \"/w/data\""), "{quota}");
        assert!(quota.contains("request.rate_limit_num = 50\n"), "{quota}");
        assert!(quota.contains("batch.max_events = 1\n"), "{quota}");
        let batch = config_text(
            Job::Batch,
            Path::new("/f"),
            "http://h/records",
            Path::new("/w"),
        );
        assert!(batch.contains("batch.max_events = 500\n"), "{batch}");
        assert!(!batch.contains("rate_limit_num"), "{batch}");
    }
}
