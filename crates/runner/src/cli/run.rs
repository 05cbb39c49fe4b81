//! Flags of `sluice run`, and the TOML config file they override.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use sluice_processor::{Quota, RateLimit};

use super::parse::{MAX_WAIT, bounded_duration, duration};
use super::scale_out::{NatsSettings, ScaleOutArgs, ScaleOutFile};

/// Flags of `sluice run`. Every setting may also come from `--config`;
/// a flag overrides the file.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// A file of records, one JSON object a line, `-` for stdin (stdin
    /// has no checkpoint), or `nats://HOST:PORT` for a JetStream stream
    /// (with --nats-stream). Repeat for several files.
    #[arg(long = "input", value_name = "PATH|-|nats://HOST:PORT")]
    pub inputs: Vec<String>,
    /// The API's URL: each call POSTs one record, or an array of them.
    #[arg(long, value_name = "URL")]
    pub http_url: Option<String>,
    /// A TOML file with any of these settings (keys as the flags, with `_`
    /// for `-`; `http_headers` for --http-header). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What each record is: `seed` (the original test's StreamData, the
    /// standard transform, derive validation) or `json` (any JSON object,
    /// sent unchanged). Default seed.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// A JSON Schema file the `json` profile validates records with.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// The API's quota: N/UNIT successes per sliding window (`20/s`,
    /// `1000/min`, `5/200ms`; N 1 to 4294967295, window 1ms to 1 day),
    /// `auto` to learn it from refusals, or `none`. Default auto.
    #[arg(long, value_name = "N/UNIT|auto|none", value_parser = rate_limit)]
    pub rate_limit: Option<RateLimit>,
    /// The most calls in flight at once, 1 to 65536. Default 16.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_in_flight: Option<u32>,
    /// Delivery order: per (stream, partition), or none. Default partition.
    #[arg(long, value_enum)]
    pub ordering: Option<Ordering>,
    /// The most records per call, 1 to 10000. Default 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_max: Option<u32>,
    /// The most records inside the pipeline (the memory bound), 1 to
    /// 10000000. Default 1000.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub queue_capacity: Option<u32>,
    /// Attempts per record before it is dead-lettered (refusals excluded),
    /// 1 to 100. Default 6.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: Option<u32>,
    /// The longest a call may take before it is retried: 1ms to 1h.
    /// Default 30s.
    #[arg(long, value_parser = bounded_duration(Duration::from_millis(1), MAX_WAIT))]
    pub timeout: Option<Duration>,
    /// A header of every call, `Name: value`; `${VAR}` in the value is read
    /// from the environment. Values are never printed. Repeatable.
    #[arg(long = "http-header", value_name = "NAME: VALUE")]
    pub http_headers: Vec<String>,
    /// Append dead letters (NDJSON: identity, reason, raw input) to this
    /// file. Default: kept in memory and counted in the report.
    #[arg(long, value_name = "PATH")]
    pub dead_letters: Option<PathBuf>,
    /// Keep each file's progress here (a directory when there are several
    /// inputs), and resume from it.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9898).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// How long a stop waits for calls in flight: 0 to 1h. Default 5s.
    #[arg(long, value_parser = bounded_duration(Duration::ZERO, MAX_WAIT))]
    pub drain_timeout: Option<Duration>,
    /// The stream name of records of the `json` profile that name none
    /// (default: the file's name, `stdin` for stdin).
    #[arg(long)]
    pub stream: Option<String>,
    /// The `json` profile's field (a key, or a JSON Pointer such as
    /// `/meta/stream`) holding the stream name. Default: --stream.
    #[arg(long)]
    pub stream_field: Option<String>,
    /// The `json` profile's field holding the partition. Default 0.
    #[arg(long)]
    pub partition_field: Option<String>,
    /// The `json` profile's field holding the sequence. Default: the line
    /// number.
    #[arg(long)]
    pub sequence_field: Option<String>,
    /// The `json` profile's field holding the priority (0 to 255).
    #[arg(long)]
    pub priority_field: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// JetStream input and shared limit.
    #[command(flatten)]
    pub scale_out: ScaleOutArgs,
}

/// `--profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The original test's StreamData records.
    Seed,
    /// Any JSON object.
    Json,
}

/// `--ordering`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// In sequence within each (stream, partition).
    Partition,
    /// No order promised.
    None,
}

/// The config file: the flags' settings, every key optional; an unknown
/// key is an error that names it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    input: Option<Vec<String>>,
    http_url: Option<String>,
    profile: Option<Profile>,
    schema: Option<PathBuf>,
    rate_limit: Option<String>,
    max_in_flight: Option<u32>,
    ordering: Option<Ordering>,
    batch_max: Option<u32>,
    queue_capacity: Option<u32>,
    max_attempts: Option<u32>,
    timeout: Option<String>,
    http_headers: Option<Vec<String>>,
    dead_letters: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
    drain_timeout: Option<String>,
    stream: Option<String>,
    stream_field: Option<String>,
    partition_field: Option<String>,
    sequence_field: Option<String>,
    priority_field: Option<String>,
    json: Option<bool>,
    nats_stream: Option<String>,
    nats_subject: Option<String>,
    nats_consumer: Option<String>,
    nats_lease: Option<String>,
    nats_ack_wait: Option<String>,
    shared_limit: Option<String>,
}

/// A run's settings: flags over the config file over the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// Files, or `-` for stdin.
    pub inputs: Vec<String>,
    /// The API's URL.
    pub http_url: String,
    /// What each record is.
    pub profile: Profile,
    /// The `json` profile's schema file.
    pub schema: Option<PathBuf>,
    /// The client-side limit.
    pub rate_limit: RateLimit,
    /// Calls in flight.
    pub max_in_flight: u32,
    /// Delivery order.
    pub ordering: Ordering,
    /// Records per call.
    pub batch_max: u32,
    /// The memory bound, in records.
    pub queue_capacity: u32,
    /// Attempts per record.
    pub max_attempts: u32,
    /// Per-call timeout.
    pub timeout: Duration,
    /// `Name: value` headers, unexpanded.
    pub http_headers: Vec<String>,
    /// The dead-letter file.
    pub dead_letters: Option<PathBuf>,
    /// The checkpoint file or directory.
    pub checkpoint: Option<PathBuf>,
    /// Where to serve metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// The stop's drain deadline.
    pub drain_timeout: Duration,
    /// The `json` profile's default stream name.
    pub stream: Option<String>,
    /// The `json` profile's identity and priority fields.
    pub fields: JsonFields,
    /// Report as JSON.
    pub json: bool,
    /// The JetStream input, when `--input` is a `nats://` URL.
    pub nats: Option<NatsSettings>,
    /// The shared limit's `redis://HOST:PORT/NAME`.
    pub shared_limit: Option<String>,
}

/// The `json` profile's field settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonFields {
    /// The stream name's field.
    pub stream: Option<String>,
    /// The partition's field.
    pub partition: Option<String>,
    /// The sequence's field.
    pub sequence: Option<String>,
    /// The priority's field.
    pub priority: Option<String>,
}

impl RunArgs {
    /// The settings: these flags over `--config` over the defaults.
    ///
    /// # Errors
    /// A message naming the flag or config key that is missing or wrong.
    pub fn settings(&self) -> Result<RunSettings, String> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => RunFile::default(),
        };
        let in_file = |key: &str| format!("{key} in the config file");
        let inputs = if self.inputs.is_empty() {
            file.input.unwrap_or_default()
        } else {
            self.inputs.clone()
        };
        if inputs.is_empty() {
            return Err("--input is required (a file, or - for stdin)".to_owned());
        }
        if inputs.iter().filter(|input| *input == "-").count() > 1 {
            return Err("--input: stdin (-) can be read only once".to_owned());
        }
        let (nats, shared_limit) = self.scale_out.settings(
            ScaleOutFile {
                nats_stream: file.nats_stream,
                nats_subject: file.nats_subject,
                nats_consumer: file.nats_consumer,
                nats_lease: file.nats_lease,
                nats_ack_wait: file.nats_ack_wait,
                shared_limit: file.shared_limit,
            },
            &inputs,
        )?;
        let http_url = self
            .http_url
            .clone()
            .or(file.http_url)
            .ok_or("--http-url is required")?;
        let rate_limit = match (self.rate_limit, file.rate_limit) {
            (Some(limit), _) => limit,
            (None, Some(text)) => {
                rate_limit(&text).map_err(|e| format!("{}: {e}", in_file("rate_limit")))?
            }
            (None, None) => RateLimit::Adaptive {
                window: Duration::from_secs(1),
            },
        };
        let file_duration =
            |key: &str, text: Option<String>, low: Duration| -> Result<Option<Duration>, String> {
                text.map(|text| {
                    bounded_duration(low, MAX_WAIT)(&text)
                        .map_err(|e| format!("{}: {e}", in_file(key)))
                })
                .transpose()
            };
        let timeout = match self.timeout {
            Some(timeout) => timeout,
            None => file_duration("timeout", file.timeout, Duration::from_millis(1))?
                .unwrap_or(Duration::from_secs(30)),
        };
        let drain_timeout = match self.drain_timeout {
            Some(drain) => drain,
            None => file_duration("drain_timeout", file.drain_timeout, Duration::ZERO)?
                .unwrap_or(Duration::from_secs(5)),
        };
        let bounded = |key: &str, value: Option<u32>, high: u32| match value {
            Some(v) if !(1..=high).contains(&v) => {
                Err(format!("{}: must be 1 to {high}, got {v}", in_file(key)))
            }
            other => Ok(other),
        };
        let settings = RunSettings {
            inputs,
            http_url,
            profile: self.profile.or(file.profile).unwrap_or(Profile::Seed),
            schema: self.schema.clone().or(file.schema),
            rate_limit,
            max_in_flight: self
                .max_in_flight
                .or(bounded("max_in_flight", file.max_in_flight, 65_536)?)
                .unwrap_or(16),
            ordering: self
                .ordering
                .or(file.ordering)
                .unwrap_or(Ordering::Partition),
            batch_max: self
                .batch_max
                .or(bounded("batch_max", file.batch_max, 10_000)?)
                .unwrap_or(1),
            queue_capacity: self
                .queue_capacity
                .or(bounded("queue_capacity", file.queue_capacity, 10_000_000)?)
                .unwrap_or(1_000),
            max_attempts: self
                .max_attempts
                .or(bounded("max_attempts", file.max_attempts, 100)?)
                .unwrap_or(6),
            timeout,
            http_headers: if self.http_headers.is_empty() {
                file.http_headers.unwrap_or_default()
            } else {
                self.http_headers.clone()
            },
            dead_letters: self.dead_letters.clone().or(file.dead_letters),
            checkpoint: self.checkpoint.clone().or(file.checkpoint),
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            drain_timeout,
            stream: self.stream.clone().or(file.stream),
            fields: JsonFields {
                stream: self.stream_field.clone().or(file.stream_field),
                partition: self.partition_field.clone().or(file.partition_field),
                sequence: self.sequence_field.clone().or(file.sequence_field),
                priority: self.priority_field.clone().or(file.priority_field),
            },
            json: self.json || file.json.unwrap_or(false),
            nats,
            shared_limit,
        };
        if settings.schema.is_some() && settings.profile != Profile::Json {
            return Err("--schema needs --profile json".to_owned());
        }
        if settings.checkpoint.is_some() && settings.inputs.iter().any(|i| i == "-") {
            return Err("--checkpoint: stdin has no checkpoint; give files only".to_owned());
        }
        if settings.checkpoint.is_some() && settings.nats.is_some() {
            return Err(
                "--checkpoint: JetStream keeps a consumer's progress itself; drop --checkpoint"
                    .to_owned(),
            );
        }
        if settings.shared_limit.is_some() && !matches!(settings.rate_limit, RateLimit::Fixed(_)) {
            return Err("--shared-limit needs a known quota: --rate-limit N/UNIT".to_owned());
        }
        Ok(settings)
    }
}

fn read_file(path: &Path) -> Result<RunFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("--config {}: {error}", path.display()))?;
    toml::from_str(&text).map_err(|error| format!("--config {}: {error}", path.display()))
}

/// Parses `--rate-limit`: `N/UNIT` (`20/s`, `1000/min`, `5/200ms`), `auto`
/// or `none`.
pub(crate) fn rate_limit(text: &str) -> Result<RateLimit, String> {
    match text.trim() {
        "auto" => {
            return Ok(RateLimit::Adaptive {
                window: Duration::from_secs(1),
            });
        }
        "none" => return Ok(RateLimit::Unlimited),
        _ => {}
    }
    let (count, unit) = text.split_once('/').ok_or_else(|| {
        format!("{text:?} is not N/UNIT (e.g. 20/s, 1000/min, 5/200ms), auto or none")
    })?;
    let limit: NonZeroU32 = count
        .trim()
        .parse()
        .map_err(|_| format!("{count:?} is not a whole number from 1 to 4294967295"))?;
    let window = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3_600),
        other => {
            let window = duration(other)?;
            if !(Duration::from_millis(1)..=Duration::from_secs(86_400)).contains(&window) {
                return Err(format!("the window {other:?} must be 1ms to 1 day"));
            }
            window
        }
    };
    Ok(RateLimit::Fixed(Quota { limit, window }))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(flags: &[&str]) -> Result<RunArgs, clap::Error> {
        let cli = Cli::try_parse_from(["sluice", "run"].iter().chain(flags))?;
        match cli.command {
            Command::Run(args) => Ok(*args),
            _ => panic!("parsed as run"),
        }
    }

    fn quota(limit: u32, window: Duration) -> RateLimit {
        RateLimit::Fixed(Quota {
            limit: NonZeroU32::new(limit).unwrap(),
            window,
        })
    }

    #[test]
    fn rate_limits_are_read_as_apis_state_them() {
        assert_eq!(rate_limit("20/s"), Ok(quota(20, Duration::from_secs(1))));
        assert_eq!(
            rate_limit("1000/min"),
            Ok(quota(1_000, Duration::from_secs(60)))
        );
        assert_eq!(
            rate_limit("5/200ms"),
            Ok(quota(5, Duration::from_millis(200)))
        );
        assert_eq!(rate_limit("none"), Ok(RateLimit::Unlimited));
        assert!(matches!(rate_limit("auto"), Ok(RateLimit::Adaptive { .. })));
        for bad in [
            "0/s",
            "20",
            "x/s",
            "20/fortnight",
            "20/0ms",
            "20/2days",
            "99999999999/s",
        ] {
            assert!(rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(
            &path,
            "input = ['a.ndjson']\nhttp_url = 'http://127.0.0.1:1/records'\nrate_limit = '1000/min'\nbatch_max = 50\nhttp_headers = ['Authorization: Bearer ${API_TOKEN}']\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let settings = args(&["--config", config, "--batch-max", "7"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(settings.inputs, ["a.ndjson"]);
        assert_eq!(settings.batch_max, 7, "the flag wins");
        assert_eq!(settings.rate_limit, quota(1_000, Duration::from_secs(60)));
        assert_eq!(
            settings.http_headers,
            ["Authorization: Bearer ${API_TOKEN}"]
        );
        assert_eq!(
            (settings.max_in_flight, settings.queue_capacity),
            (16, 1_000)
        );
        assert_eq!(settings.profile, Profile::Seed);
    }

    #[test]
    fn the_example_config_is_valid() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/run.toml");
        let settings = args(&["--config", example]).unwrap().settings().unwrap();
        assert_eq!(settings.rate_limit, quota(15, Duration::from_secs(1)));
        assert_eq!(
            settings.http_headers,
            ["Authorization: Bearer ${API_TOKEN}"]
        );
        assert_eq!(
            settings.metrics_addr,
            Some("127.0.0.1:9898".parse().unwrap())
        );
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_in_the_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, "http_url = 'http://x'\nbatch_size = 5\n").unwrap();
        let error = args(&["--input", "-", "--config", path.to_str().unwrap()])
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(error.contains("batch_size"), "{error}");
        std::fs::write(&path, "http_url = 'http://x'\nrate_limit = 'fast'\n").unwrap();
        let error = args(&["--input", "-", "--config", path.to_str().unwrap()])
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(error.contains("rate_limit in the config file"), "{error}");
    }

    #[test]
    fn missing_or_contradictory_settings_are_refused_naming_the_flag() {
        let error = |flags: &[&str]| args(flags).unwrap().settings().unwrap_err();
        assert!(error(&["--http-url", "http://x"]).contains("--input"));
        assert!(error(&["--input", "-"]).contains("--http-url"));
        assert!(error(&["--input", "-", "--input", "-", "--http-url", "h"]).contains("stdin"));
        assert!(
            error(&["--input", "a", "--http-url", "h", "--schema", "s.json"])
                .contains("--profile json")
        );
        assert!(
            error(&["--input", "-", "--http-url", "h", "--checkpoint", "c"])
                .contains("--checkpoint")
        );
        for (flag, value) in [
            ("--max-in-flight", "0"),
            ("--batch-max", "10001"),
            ("--timeout", "2h"),
            ("--rate-limit", "5e-324/s"),
        ] {
            let error = args(&["--input", "-", flag, value])
                .unwrap_err()
                .to_string();
            assert!(error.contains(flag), "{flag}: {error}");
        }
    }
}
