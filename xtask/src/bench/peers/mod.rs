//! `cargo xtask bench --peers`: the same jobs against `sluice mock-api`
//! by `sluice run` and by each peer client this machine has, figures into
//! `benchmarks.json` under `peers-<job>-<client>`.
//!
//! The jobs ([`Job`]): a 50/s quota with 15 % failures for a fixed time,
//! and a fast API (no limit, no failures, no latency) taking one record a
//! call and 500 a call. The clients ([`Client`]): sluice; the Python client
//! of `xtask/peers/python_client.py` (aiohttp, aiolimiter, tenacity) in a
//! virtual environment the bench makes; Vector when `VECTOR` names its
//! binary. Each run has a fresh API and reads the same generated NDJSON
//! file.
//!
//! - `mod.rs`: the jobs, the clients, one run;
//! - `figures.rs`: a run's figures;
//! - `api.rs`: `sluice mock-api` as a process, and its ledger's counts;
//! - `watch.rs`: the client process's CPU time and peak RSS, from `/proc`;
//! - `python.rs`: the virtual environment and the Python client's command;
//! - `vector.rs`: the Vector configuration and command;
//! - `table.rs`: the Markdown tables.

pub(super) mod api;
mod figures;
mod python;
mod table;
mod vector;
mod watch;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::overload_real::Process;
use crate::util::{generated_file, root, utc};
use api::MockApi;
use watch::Until;

pub use table::render;

/// The quota job's length, seconds (half with `--quick`).
const QUOTA_SECONDS: u64 = 60;

/// The quota job's API: successes a second, and the share of admitted
/// calls that fail with 503.
const QUOTA: u32 = 50;

/// See [`QUOTA`].
const FAILURE_RATE: f64 = 0.15;

/// Calls in flight, for every client and job: `sluice run`'s default
/// `--concurrency`.
const CONCURRENCY: u32 = 16;

/// Records a call in the batch job.
const BATCH: u32 = 500;

/// The longest a fast job may take before it counts as failed.
const FAST_TIMEOUT: Duration = Duration::from_secs(180);

/// What each client is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// A 50/s quota with 15 % failures (10-50 ms), one record a call, for
    /// a fixed time over more records than it can deliver.
    Quota,
    /// A fast API, one record a call, 20 000 records.
    Single,
    /// A fast API, [`BATCH`] records a call, 200 000 records.
    Batch,
}

impl Job {
    /// Every job, in the order they run.
    const ALL: [Job; 3] = [Job::Quota, Job::Single, Job::Batch];

    /// The job's name in scenario keys.
    fn name(self) -> &'static str {
        match self {
            Job::Quota => "quota",
            Job::Single => "single",
            Job::Batch => "batch",
        }
    }

    /// Records in the job's file (the quota job takes what it can in its
    /// time: at 50/s, 3 000 a minute).
    fn records(self) -> u64 {
        match self {
            Job::Quota | Job::Single => 20_000,
            Job::Batch => 200_000,
        }
    }

    /// Records a call, at most.
    fn batch(self) -> u32 {
        if self == Job::Batch { BATCH } else { 1 }
    }

    /// The quota the client is told, successes a second (`None`: no limit).
    fn quota(self) -> Option<u32> {
        (self == Job::Quota).then_some(QUOTA)
    }

    /// `sluice mock-api`'s flags for the job (beside `--listen`).
    fn api_args(self) -> Vec<String> {
        match self {
            Job::Quota => vec![
                "--rate-limit".into(),
                format!("{QUOTA}/s"),
                "--failure-rate".into(),
                FAILURE_RATE.to_string(),
            ],
            Job::Single | Job::Batch => ["--rate-limit", "none", "--failure-rate", "0"]
                .into_iter()
                .chain(["--latency", "0ms"])
                .map(String::from)
                .collect(),
        }
    }
}

/// A client of the jobs.
#[derive(Debug)]
enum Client {
    /// `sluice run`, this build.
    Sluice(PathBuf),
    /// The Python client, with the virtual environment's interpreter.
    Python(PathBuf),
    /// Vector, the binary `VECTOR` names.
    Vector(PathBuf),
}

impl Client {
    /// The client's name in scenario keys.
    fn name(&self) -> &'static str {
        match self {
            Client::Sluice(_) => "sluice",
            Client::Python(_) => "python",
            Client::Vector(_) => "vector",
        }
    }

    /// The command that runs `job` on `input` against `url`, its scratch
    /// files in `work`.
    fn command(&self, job: Job, input: &Path, url: &str, work: &Path) -> anyhow::Result<Command> {
        Ok(match self {
            Client::Sluice(sluice) => sluice_command(sluice, job, input, url),
            Client::Python(python) => python::command(python, job, input, url),
            Client::Vector(vector) => vector::command(vector, job, input, url, work)?,
        })
    }

    /// Whether the client ends by itself once its file is delivered
    /// (Vector's file source keeps watching its file).
    fn ends_by_itself(&self) -> bool {
        !matches!(self, Client::Vector(_))
    }
}

/// `sluice run` for `job`: the `json` profile with the records' own
/// identities (`source`, `partition`, `sequence_id`), so that it sends
/// each line unchanged, ordered per partition.
fn sluice_command(sluice: &Path, job: Job, input: &Path, url: &str) -> Command {
    let mut command = Command::new(sluice);
    command
        .arg("run")
        .arg(input)
        .args(["--profile", "json", "--stream-field", "source"])
        .args([
            "--partition-field",
            "partition",
            "--sequence-field",
            "sequence_id",
        ])
        .args(["--http-url", url, "--rate-limit"])
        .arg(job.quota().map_or("none".to_owned(), |q| format!("{q}/s")))
        .arg("--concurrency")
        .arg(CONCURRENCY.to_string())
        .arg("--batch-max")
        .arg(job.batch().to_string())
        .args(["--dead-letters", "none", "--json"]);
    // The queue is `sluice run`'s default: two full calls per call in
    // flight (16 000 records in the batch job).
    command
}

/// Runs every job with every client found, and puts each result in
/// `scenarios` as `peers-<job>-<client>`. A client that is missing or
/// fails keeps its result of an earlier run (in `previous`), if any;
/// otherwise its entry says why it did not run. `quick` halves the quota
/// job.
pub fn run(
    sluice: &Path,
    quick: bool,
    previous: Option<&Value>,
    scenarios: &mut Value,
) -> anyhow::Result<()> {
    let work = root().join("target/bench-peers");
    std::fs::create_dir_all(&work)
        .with_context(|| format!("could not create {}", work.display()))?;
    let clients: Vec<Result<Client, String>> = vec![
        Ok(Client::Sluice(sluice.to_path_buf())),
        python::prepare(&work).map(Client::Python).map_err(|e| {
            let reason = format!("{e:#}");
            eprintln!("bench: peers: the Python client does not run: {reason}");
            reason
        }),
        vector::find().map(Client::Vector).inspect_err(|reason| {
            eprintln!("bench: peers: Vector does not run: {reason}");
        }),
    ];
    let quota_seconds = if quick {
        QUOTA_SECONDS / 2
    } else {
        QUOTA_SECONDS
    };
    let date = utc("+%Y-%m-%d %H:%M UTC");
    for job in Job::ALL {
        let input = input_file(sluice, &work, job.records())?;
        for (client, name) in clients.iter().zip(["sluice", "python", "vector"]) {
            let key = format!("peers-{}-{name}", job.name());
            let outcome = match client {
                Ok(client) => {
                    eprintln!("bench: {key}");
                    run_one(sluice, &work, job, client, &input, quota_seconds)
                        .map_err(|e| format!("failed: {e:#}"))
                }
                Err(reason) => Err(reason.clone()),
            };
            match outcome {
                Ok(mut result) => {
                    result["measured"] = json!(date);
                    scenarios[key] = result;
                }
                Err(reason) => {
                    if client.is_ok() {
                        eprintln!("bench: {key} {reason}");
                    }
                    let kept = previous.map(|p| &p["scenarios"][&key]);
                    if kept.is_none_or(|k| k.is_null() || !k["not_run"].is_null()) {
                        scenarios[key] = json!({ "not_run": reason });
                    }
                }
            }
        }
    }
    Ok(())
}

/// One run of `job` by `client`, against a fresh API; its scratch files
/// (the API's log, the client's output) under `work/<job>-<client>`.
fn run_one(
    sluice: &Path,
    work: &Path,
    job: Job,
    client: &Client,
    input: &Path,
    quota_seconds: u64,
) -> anyhow::Result<Value> {
    let dir = work.join(format!("{}-{}", job.name(), client.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let api = MockApi::start(sluice, &job.api_args(), &dir.join("mock-api.log"))?;
    let url = format!("http://{}/records", api.addr());
    let mut command = client.command(job, input, &url, &dir)?;
    let stdout = dir.join("stdout");
    let stderr = dir.join("stderr");
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout)?)
        .stderr(std::fs::File::create(&stderr)?);
    let started = Instant::now();
    let process = Process(
        command
            .spawn()
            .with_context(|| format!("could not start {command:?}"))?,
    );
    let until = match job {
        Job::Quota => Until::Elapsed(Duration::from_secs(quota_seconds)),
        _ if client.ends_by_itself() => Until::Exit(FAST_TIMEOUT),
        _ => Until::Delivered(job.records(), FAST_TIMEOUT),
    };
    let tail = || watch::tail(&stderr);
    let watched = watch::watch(&process, started, until, &api)
        .with_context(|| format!("{}; its stderr ends:\n{}", client.name(), tail()))?;
    let exit = watch::stop(process)?;
    if job != Job::Quota && client.ends_by_itself() && exit != Some(0) {
        bail!(
            "{} exited with {exit:?}; its stderr ends:\n{}",
            client.name(),
            tail()
        );
    }
    let counts = api.counts()?;
    api.stop()?;
    let own = std::fs::read_to_string(&stdout).unwrap_or_default();
    Ok(figures::figures(
        job,
        client,
        &counts,
        &watched,
        exit,
        &own,
        quota_seconds,
    ))
}

/// `sluice generate --records N --seed 1 --partitions 8 --invalid-rate
/// 0` (every line deliverable: 4 sources x 8 partitions), made once under
/// `work`.
pub(super) fn input_file(sluice: &Path, work: &Path, records: u64) -> anyhow::Result<PathBuf> {
    let path = work.join(format!("records-{records}.ndjson"));
    generated_file(sluice, &path, records, &["--invalid-rate", "0"])
}
