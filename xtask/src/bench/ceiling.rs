//! The API's ceiling through `sluice run` processes (issue 22), as
//! `crates/runner/tests/ceiling.rs` and `scale_out.rs` run it; the tests
//! keep regression floors, the figures are here:
//!
//! - `ceiling-one`: one `sluice run` on 3 000 generated records against
//!   `sluice mock-api --rate-limit 50/s` (15 % failures, 10-50 ms);
//! - `ceiling-three`: three `sluice run` processes sharing one JetStream
//!   stream (6 000 generated records, 8 partitions) and one Redis window
//!   against a 100/s API, each ending by itself once the stream is drained;
//! - `ceiling-uneven`: as `ceiling-three`, with 4 000 records of which one
//!   partition holds half.
//!
//! The share of the ceiling is the tests' (`LedgerCounts::ceiling_used`):
//! successes ÷ the most the quota admits from the first success to the
//! last, `quota × (⌊span ÷ 1 s⌋ + 1)`, read from the API's `/ledger`.
//! The JetStream stream, its lease bucket and the Redis window are named
//! after this process's id and deleted after the run.
//!
//! - `ceiling.rs`: the three runs, the stream's loading, the processes;
//! - `ceiling/figures.rs`: a run's figures from the API's ledger and the
//!   processes' logs;
//! - `ceiling/wire.rs`: NATS's and Redis's text protocols, just enough.

mod figures;
mod wire;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::edge::{sluice_run, work_dir};
use super::overload_real::Process;
use super::peers::api::MockApi;
use figures::{figures, first_drained, number, per_partition, taken_before};
use wire::Nats;

/// The machine's NATS server (JetStream), as the scale-out tests use it.
const NATS: &str = "127.0.0.1:4222";

/// The machine's Redis server.
const REDIS: &str = "127.0.0.1:6379";

/// `ceiling-one`'s quota, successes a second, and its records.
const ONE_QUOTA: u32 = 50;

/// See [`ONE_QUOTA`].
const ONE_RECORDS: u64 = 3_000;

/// The quota three processes share, successes a second.
const SHARED_QUOTA: u32 = 100;

/// `ceiling-three`'s records (8 partitions) and `ceiling-uneven`'s.
const THREE_RECORDS: u64 = 6_000;

/// See [`THREE_RECORDS`].
const UNEVEN_RECORDS: u64 = 4_000;

/// The processes sharing the stream and the quota.
const MEMBERS: usize = 3;

/// The longest the processes may take before the run counts as failed.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Fails, naming it, unless NATS (with JetStream) and Redis answer: asked
/// before the bench builds anything when a shared ceiling run is due.
pub fn check_services() -> anyhow::Result<()> {
    Nats::connect(NATS)
        .context("ceiling-three and ceiling-uneven need NATS (`nats-server -js`)")?;
    wire::redis(REDIS, &["PING"])
        .context("ceiling-three and ceiling-uneven need Redis (`redis-server`)")?;
    Ok(())
}

/// `ceiling-one`: the run of `crates/runner/tests/ceiling.rs`.
pub fn one(sluice: &Path) -> anyhow::Result<Value> {
    let work = work_dir("ceiling-one")?;
    let input = work.join("records.ndjson");
    let records = ONE_RECORDS.to_string();
    std::fs::write(
        &input,
        generate(sluice, &["--records", &records, "--seed", "7"])?,
    )?;
    let quota = format!("{ONE_QUOTA}/s");
    let api_args = ["--rate-limit".to_owned(), quota.clone()];
    let api = MockApi::start(sluice, &api_args, &work.join("mock-api.log"))?;
    let url = format!("http://{}/records", api.addr());
    let dead = work.join("dead.ndjson");
    let started = Instant::now();
    let report = sluice_run(
        sluice,
        &input,
        &work,
        &[
            "--http-url",
            &url,
            "--rate-limit",
            &quota,
            "--max-attempts",
            "30",
            "--dead-letters",
            &dead.to_string_lossy(),
        ],
    )?;
    let wall = started.elapsed().as_secs_f64();
    let ledger = api.ledger()?;
    api.stop()?;
    let mut result = figures(&ledger, ONE_QUOTA)?;
    result["records"] = json!(ONE_RECORDS);
    result["wall_seconds"] = json!(wall);
    for key in ["delivered", "dead_lettered", "conserved"] {
        result[key] = report[key].clone();
    }
    Ok(result)
}

/// `ceiling-three`: `three_processes_share_a_stream_and_one_quota_at_its_ceiling`.
pub fn three(sluice: &Path) -> anyhow::Result<Value> {
    let shared = Shared::new("three")?;
    let records = THREE_RECORDS.to_string();
    let loaded = Command::new(sluice)
        .args(["generate", "--records", &records, "--partitions", "8"])
        .args(["--seed", "11", "--to", &format!("nats://{NATS}")])
        .args(["--nats-stream", &shared.stream, "--create-stream"])
        .args(["--subject-prefix", &shared.prefix])
        .output()
        .context("could not run sluice generate --to")?;
    if !loaded.status.success() {
        let said = String::from_utf8_lossy(&loaded.stderr);
        bail!("sluice generate --to nats://{NATS} failed:\n{said}");
    }
    shared.run(sluice, "ceiling-three", THREE_RECORDS)
}

/// `ceiling-uneven`: `uneven_partitions_lose_nothing_and_keep_the_quota`,
/// loaded as its `publish_uneven` loads it.
pub fn uneven(sluice: &Path) -> anyhow::Result<Value> {
    let shared = Shared::new("uneven")?;
    let records = UNEVEN_RECORDS.to_string();
    let template = generate(
        sluice,
        &[
            "--records",
            &records,
            "--partitions",
            "1",
            "--invalid-rate",
            "0",
        ],
    )?;
    let messages = uneven_records(&String::from_utf8_lossy(&template), &shared.prefix)?;
    let mut nats = Nats::connect(NATS)?;
    nats.create_stream(&shared.stream, &shared.prefix)?;
    nats.publish_all(&messages)?;
    shared.run(sluice, "ceiling-uneven", UNEVEN_RECORDS)
}

/// Each source's records alternately in partition 0 and in partitions 1
/// to 7 in turn, each (source, partition)'s sequence counting from 1: one
/// partition holds half the records. (subject, line) under `prefix`.
fn uneven_records(template: &str, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut turns = std::collections::HashMap::<String, usize>::new();
    let mut next = std::collections::HashMap::<(String, usize), u64>::new();
    let mut messages = Vec::new();
    for line in template.lines() {
        let mut record: Value = serde_json::from_str(line)?;
        let source = record["source"].as_str().context("no source")?.to_owned();
        let turn = turns.entry(source.clone()).or_default();
        let partition = if turn.is_multiple_of(2) {
            0
        } else {
            1 + (*turn / 2) % 7
        };
        *turn += 1;
        let sequence = next.entry((source.clone(), partition)).or_default();
        *sequence += 1;
        record["partition"] = json!(partition);
        record["sequence_id"] = json!(*sequence);
        messages.push((format!("{prefix}.{source}.{partition}"), record.to_string()));
    }
    Ok(messages)
}

/// The names one shared run uses: a JetStream stream, its subjects'
/// prefix, the consumer group (and so its lease bucket) and the Redis
/// window. Deleted when dropped.
struct Shared {
    /// The JetStream stream.
    stream: String,
    /// Records go to `<prefix>.<source>.<partition>`.
    prefix: String,
    /// The consumer group; its leases live in `KV_<group>-leases`.
    group: String,
    /// The Redis window's name, keys `sluice:limit:<name>[:quota]`.
    limit: String,
}

impl Shared {
    /// Names for `tag` and this process; fails, naming it, when NATS or
    /// Redis does not answer.
    fn new(tag: &str) -> anyhow::Result<Shared> {
        check_services()?;
        let pid = std::process::id();
        Ok(Shared {
            stream: format!("BENCH_CEILING_{}_{pid}", tag.to_uppercase()),
            prefix: format!("bench_{tag}_{pid}"),
            group: format!("bench_{tag}_{pid}"),
            limit: format!("bench-ceiling-{tag}-{pid}"),
        })
    }

    /// Runs [`MEMBERS`] `sluice run` processes on the loaded stream, each
    /// in a directory of its own under `work/<name>`, against a fresh
    /// 100/s API, until each ends by itself (`--until-drained=2s`); the
    /// figures of the run of `records` records.
    fn run(&self, sluice: &Path, name: &str, records: u64) -> anyhow::Result<Value> {
        let work = work_dir(name)?;
        let quota = format!("{SHARED_QUOTA}/s");
        let api_args = ["--rate-limit".to_owned(), quota.clone()];
        let api = MockApi::start(sluice, &api_args, &work.join("mock-api.log"))?;
        let url = format!("http://{}/records", api.addr());
        let limit = format!("redis://{REDIS}/{}", self.limit);
        let dirs: Vec<PathBuf> = (1..=MEMBERS)
            .map(|n| work.join(format!("member-{n}")))
            .collect();
        let started = Instant::now();
        let mut members = Vec::new();
        for dir in &dirs {
            std::fs::create_dir_all(dir)?;
            let child = Command::new(sluice)
                .current_dir(dir)
                .env("RUST_LOG", "info,async_nats=warn")
                .args(["run", "--http-url", &url, "--rate-limit", &quota])
                .args(["--input", &format!("nats://{NATS}")])
                .args([
                    "--nats-stream",
                    &self.stream,
                    "--nats-consumer",
                    &self.group,
                ])
                .args(["--nats-subject", &format!("{}.>", self.prefix)])
                .args(["--nats-lease", "3s", "--shared-limit", &limit])
                .args(["--max-attempts", "30", "--until-drained=2s", "--json"])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(dir.join("report.json"))?)
                .stderr(std::fs::File::create(dir.join("run.log"))?)
                .spawn()
                .context("could not start sluice run")?;
            members.push(Process(child));
        }
        wait_all(&mut members, &dirs)?;
        let wall = started.elapsed().as_secs_f64();
        let ledger = api.ledger()?;
        api.stop()?;
        let mut result = figures(&ledger, SHARED_QUOTA)?;
        let mut each = Vec::new();
        let (mut delivered, mut dead) = (0, 0);
        let logs: Vec<String> = dirs
            .iter()
            .map(|dir| std::fs::read_to_string(dir.join("run.log")).unwrap_or_default())
            .collect();
        let drained = first_drained(&logs);
        for (dir, log) in dirs.iter().zip(&logs) {
            let report: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json"))?)
                .with_context(|| format!("no JSON report in {}", dir.display()))?;
            delivered += report["delivered"].as_u64().unwrap_or(0);
            dead += report["dead_lettered"].as_u64().unwrap_or(0);
            each.push(json!({
                "delivered": report["delivered"],
                "dead_lettered": report["dead_lettered"],
                "conserved": report["conserved"],
                "partitions_taken": taken_before(log, drained.as_deref()),
                "leases_lost": log.matches("lost the lease").count(),
            }));
        }
        let distinct = number(&ledger["records_delivered"]) - number(&ledger["duplicates"]);
        result["records"] = json!(records);
        result["processes"] = json!(each);
        result["delivered"] = json!(delivered);
        result["dead_lettered"] = json!(dead);
        result["lost"] = json!(records.saturating_sub(distinct + dead));
        result["per_partition"] = json!(per_partition(&ledger));
        result["wall_seconds"] = json!(wall);
        Ok(result)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let leases = format!("KV_{}-leases", self.group);
        let deleted = Nats::connect(NATS).and_then(|mut nats| {
            nats.delete_stream(&self.stream)?;
            nats.delete_stream(&leases)
        });
        if let Err(error) = deleted {
            eprintln!(
                "bench: could not delete {} and {leases}: {error:#}",
                self.stream
            );
        }
        let window = format!("sluice:limit:{}", self.limit);
        let quota = format!("{window}:quota");
        if let Err(error) = wire::redis(REDIS, &["DEL", &window, &quota]) {
            eprintln!("bench: could not delete {window}: {error:#}");
        }
    }
}

/// Waits for every member to exit 0, at most [`RUN_LIMIT`]; otherwise an
/// error with the end of the failed member's log (the others are killed
/// when dropped).
fn wait_all(members: &mut [Process], dirs: &[PathBuf]) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut exited = vec![false; members.len()];
    while exited.iter().any(|done| !done) {
        for (n, member) in members.iter_mut().enumerate() {
            if exited[n] {
                continue;
            }
            if let Some(status) = member.0.try_wait()? {
                exited[n] = true;
                if !status.success() {
                    bail!(
                        "sluice run {} failed ({status}):\n{}",
                        n + 1,
                        tail(&dirs[n])
                    );
                }
            }
        }
        if started.elapsed() > RUN_LIMIT {
            let n = exited.iter().position(|done| !done).unwrap_or(0);
            bail!(
                "sluice run {} did not end within {RUN_LIMIT:?}:\n{}",
                n + 1,
                tail(&dirs[n])
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The last 30 lines of a member's log.
fn tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `sluice generate ARGS`: its standard output.
fn generate(sluice: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let output = Command::new(sluice)
        .arg("generate")
        .args(args)
        .output()
        .context("could not run sluice generate")?;
    if !output.status.success() {
        bail!("sluice generate failed ({})", output.status);
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_of_each_source_goes_to_partition_zero() {
        let template: String = (0..28)
            .map(|n| {
                format!(
                    "{{\"source\":\"s{}\",\"partition\":0,\"sequence_id\":{n}}}\n",
                    n % 2
                )
            })
            .collect();
        let messages = uneven_records(&template, "p").unwrap_or_default();
        let hot = messages
            .iter()
            .filter(|(subject, _)| subject.ends_with(".0"))
            .count();
        assert_eq!(hot, 14);
        assert_eq!(messages[2].0, "p.s0.1");
        let record: Value = serde_json::from_str(&messages[4].1).unwrap_or_default();
        assert_eq!(
            (record["partition"].clone(), record["sequence_id"].clone()),
            (json!(0), json!(2))
        );
    }
}
