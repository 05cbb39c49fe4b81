//! The pipeline's own settings: its inputs, profile, limits and outputs,
//! the top level of a configuration (connectors have sections of their
//! own, see [`Connectors`](crate::Connectors)).
//!
//! Each setting is declared once, here: a field is a configuration key
//! (`concurrency`), an environment variable (`SLUICE_CONCURRENCY`) and a
//! flag (`--concurrency`, its clap id the key). Fields are optional so
//! that a layer sets only what it names; [`PipelineSettings::default`]
//! holds the documented defaults, and the accessors apply them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_processor::{
    BatchConfig, DeliveryOrder, ProcessorConfig, RateLimit, RetryPolicy, SettingError, SinkPolicy,
};
use sluice_profiles::json::JsonProfileConfig;

use crate::dead_letters::{DEFAULT_MAX_DEAD_LETTERS, MaxDeadLetters};

/// Calls in flight by default.
pub const DEFAULT_CONCURRENCY: u32 = 16;
/// The most records inside the pipeline by default, at least: the default
/// grows to two full calls per call in flight (see
/// [`PipelineSettings::queue_capacity`]).
pub const DEFAULT_QUEUE_CAPACITY: u32 = 1_000;
/// The largest queue capacity.
const MAX_QUEUE_CAPACITY: u32 = 10_000_000;
/// How long ready records wait for a full call by default.
pub const DEFAULT_BATCH_LINGER: Duration = Duration::from_millis(100);
/// The longest batch linger.
const MAX_BATCH_LINGER: Duration = Duration::from_secs(60);
/// Records per call by default.
pub const DEFAULT_BATCH_MAX: u32 = 1;
/// Attempts per record by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// How long a stop waits for calls in flight, by default.
pub const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// The longest drain deadline.
const MAX_DRAIN_DEADLINE: Duration = Duration::from_secs(3_600);

/// What each record is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// The original test's StreamData records, the standard transform,
    /// derive validation.
    #[default]
    Seed,
    /// Any JSON object, sent unchanged.
    Json,
}

/// Delivery order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// In sequence within each (stream, partition).
    #[default]
    Partition,
    /// No order promised.
    None,
}

impl From<Ordering> for DeliveryOrder {
    fn from(ordering: Ordering) -> DeliveryOrder {
        match ordering {
            Ordering::Partition => DeliveryOrder::Partition,
            Ordering::None => DeliveryOrder::None,
        }
    }
}

/// The pipeline's own settings, and the connectors' sections.
///
/// ```
/// use sluice_pipeline::PipelineSettings;
///
/// let settings: PipelineSettings = toml::from_str(
///     "inputs = ['orders.ndjson']\nrate_limit = '20/s'\n[http]\nurl = 'http://127.0.0.1:8080/records'",
/// )?;
/// assert_eq!(settings.rate_limit()?.to_string(), "20/s");
/// assert_eq!(settings.concurrency()?, 16);
/// assert!(settings.sections.contains_key("http"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct PipelineSettings {
    /// Where records come from: files, globs and directories, `-` for
    /// stdin, or `nats://HOST:PORT` for a JetStream stream (see the
    /// JetStream flags).
    #[arg(id = "inputs", value_name = "INPUT", help_heading = "Input")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// The source connector: `files` (paths, globs, directories, stdin)
    /// or `nats`. Default: chosen by the inputs (`nats://` URLs choose
    /// `nats`), else `files`.
    #[arg(
        id = "source",
        long = "source",
        value_name = "NAME",
        help_heading = "Input"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Keep each file's progress here (a directory when there are several
    /// files), and resume from it.
    #[arg(
        id = "checkpoint",
        long = "checkpoint",
        value_name = "PATH",
        help_heading = "Input"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,

    /// What each record is: `seed` (the original test's StreamData) or
    /// `json` (any JSON object, sent unchanged). Default seed.
    #[arg(
        id = "profile",
        long = "profile",
        value_enum,
        value_name = "PROFILE",
        help_heading = "Profile"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileKind>,
    /// A JSON Schema file the `json` profile validates records with.
    #[arg(
        id = "schema",
        long = "schema",
        value_name = "FILE",
        help_heading = "Profile"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<PathBuf>,
    /// The `json` profile's field (a key, or a JSON Pointer such as
    /// `/meta/stream`) holding the stream name. Default: the source's
    /// (a file's name).
    #[arg(
        id = "stream_field",
        long = "stream-field",
        value_name = "FIELD",
        help_heading = "Profile"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_field: Option<String>,
    /// The `json` profile's field holding the partition. Default: the
    /// source's (0 for a file).
    #[arg(
        id = "partition_field",
        long = "partition-field",
        value_name = "FIELD",
        help_heading = "Profile"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_field: Option<String>,
    /// The `json` profile's field holding the sequence. Default: the
    /// source's (the line number).
    #[arg(
        id = "sequence_field",
        long = "sequence-field",
        value_name = "FIELD",
        help_heading = "Profile"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_field: Option<String>,
    /// The `json` profile's field holding the priority (0 to 255).
    #[arg(
        id = "priority_field",
        long = "priority-field",
        value_name = "FIELD",
        help_heading = "Profile"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_field: Option<String>,

    /// The sink connector. Default `http`.
    #[arg(id = "sink", long = "sink", value_name = "NAME", help_heading = "HTTP")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,

    /// The API's quota: N/UNIT successes per sliding window (`20/s`,
    /// `1000/min`, `5/200ms`; N 1 to 4294967295, window 1ms to 1 day),
    /// `auto` to learn it from refusals, or `none`. Default auto.
    #[arg(
        id = "rate_limit",
        long = "rate-limit",
        value_name = "N/UNIT|auto|none",
        help_heading = "Limits"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Share the rate limit's quota with every process given the same
    /// URL: `redis://HOST:PORT/NAME`, NAME naming the shared window. Needs
    /// a known quota (`--rate-limit N/UNIT`).
    #[arg(
        id = "shared_limit",
        long = "shared-limit",
        value_name = "redis://HOST:PORT/NAME",
        help_heading = "Limits"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_limit: Option<String>,
    /// The most calls in flight at once, 1 to 65536. Default 16.
    #[arg(
        id = "concurrency",
        long = "concurrency",
        alias = "max-in-flight",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The most records inside the pipeline (the memory bound), 1 to
    /// 10000000. Default 1000, or two full calls per call in flight
    /// (2 x concurrency x batch-max) when that is more.
    #[arg(
        id = "queue_capacity",
        long = "queue-capacity",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<u32>,
    /// The most records per call, 1 to 10000. Default 1.
    #[arg(
        id = "batch_max",
        long = "batch-max",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_max: Option<u32>,
    /// How long records wait for a full call (batch-max records) before a
    /// call takes fewer: 0 (send at once) to 60s. Default 100ms.
    #[arg(
        id = "batch_linger",
        long = "batch-linger",
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        help_heading = "Limits"
    )]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub batch_linger: Option<Duration>,
    /// Attempts per record before it is dead-lettered (refusals
    /// excluded), 1 to 100. Default 6.
    #[arg(
        id = "max_attempts",
        long = "max-attempts",
        value_name = "N",
        help_heading = "Limits"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Delivery order: per (stream, partition), or none. Default
    /// partition; none for records that name no partition (the json
    /// profile on files or stdin without --partition-field).
    #[arg(
        id = "ordering",
        long = "ordering",
        value_enum,
        value_name = "ORDER",
        help_heading = "Limits"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<Ordering>,
    /// How long a stop waits for calls in flight: 0 to 1h. Default 5s.
    #[arg(
        id = "drain_deadline",
        long = "drain-deadline",
        alias = "drain-timeout",
        value_name = "DURATION",
        value_parser = humantime::parse_duration,
        help_heading = "Limits"
    )]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub drain_deadline: Option<Duration>,

    /// Append dead letters (NDJSON: identity, reason, raw input) to this
    /// file; `none` discards them (still counted). Default: beside the
    /// checkpoint (CHECKPOINT.dead-letters), else ./sluice.dead-letters;
    /// the report names it.
    #[arg(
        id = "dead_letters",
        long = "dead-letters",
        value_name = "PATH",
        help_heading = "Output"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<PathBuf>,
    /// The most dead letters a run may write and still exit 0: a count
    /// (10) or a share of the records taken (0.5%). Past it the run exits
    /// 4. Default 10%.
    #[arg(
        id = "max_dead_letters",
        long = "max-dead-letters",
        value_name = "N|P%",
        help_heading = "Output"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dead_letters: Option<MaxDeadLetters>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9898), with a live page at http://ADDR/, its data at
    /// /status.json, and /health (200 while running, 503 once stopping).
    #[arg(
        id = "metrics_addr",
        long = "metrics-addr",
        value_name = "ADDR",
        help_heading = "Output"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
    /// At the end of the run, write its metrics to FILE in the Prometheus
    /// text format, for node-exporter's textfile collector (written
    /// beside it, then renamed), so that a short run is never missed.
    #[arg(
        id = "metrics_textfile",
        long = "metrics-textfile",
        value_name = "FILE",
        help_heading = "Output"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_textfile: Option<PathBuf>,
    /// The streams (and inputs) metrics name in their labels, those with
    /// the most records (bytes) first; the others are added up as
    /// `other`. Default 20.
    #[arg(
        id = "metrics_max_streams",
        long = "metrics-max-streams",
        value_name = "N",
        help_heading = "Output"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_max_streams: Option<usize>,

    /// The connectors' sections, by connector name (`[http]`, `[files]`,
    /// `[nats]`), checked by the connectors registered; anything else at
    /// the top level is an unknown key.
    #[arg(skip)]
    #[serde(flatten)]
    pub sections: BTreeMap<String, toml::Value>,
}

impl Default for PipelineSettings {
    /// The documented defaults; no inputs, no connector section.
    fn default() -> Self {
        PipelineSettings {
            inputs: Vec::new(),
            source: None,
            checkpoint: None,
            profile: Some(ProfileKind::Seed),
            schema: None,
            stream_field: None,
            partition_field: None,
            sequence_field: None,
            priority_field: None,
            sink: Some("http".to_owned()),
            rate_limit: Some(default_rate_limit()),
            shared_limit: None,
            concurrency: Some(DEFAULT_CONCURRENCY),
            // Unset: it follows concurrency and batch_max.
            queue_capacity: None,
            batch_max: Some(DEFAULT_BATCH_MAX),
            batch_linger: Some(DEFAULT_BATCH_LINGER),
            max_attempts: Some(DEFAULT_MAX_ATTEMPTS),
            // Unset: the inputs decide (see `ordering::choose`).
            ordering: None,
            drain_deadline: Some(DEFAULT_DRAIN_DEADLINE),
            dead_letters: None,
            max_dead_letters: Some(DEFAULT_MAX_DEAD_LETTERS),
            metrics_addr: None,
            metrics_textfile: None,
            metrics_max_streams: Some(sluice_prometheus::DEFAULT_MAX_STREAMS),
            sections: BTreeMap::new(),
        }
    }
}

fn default_rate_limit() -> RateLimit {
    RateLimit::Adaptive {
        window: Duration::from_secs(1),
    }
}

/// `value` of `key` (flag `flag`) when it is within `1..=high`.
fn bounded(
    key: &'static str,
    flag: &'static str,
    value: Option<u32>,
    default: u32,
    high: u32,
) -> Result<u32, SettingError> {
    match value.unwrap_or(default) {
        value if (1..=high).contains(&value) => Ok(value),
        value => Err(SettingError::new(
            key,
            flag,
            format!("must be 1 to {high}, got {value}"),
        )),
    }
}

impl PipelineSettings {
    /// The profile: as set, else `seed`.
    pub fn profile(&self) -> ProfileKind {
        self.profile.unwrap_or_default()
    }

    /// The delivery order: as set, else per partition.
    pub fn ordering(&self) -> Ordering {
        self.ordering.unwrap_or_default()
    }

    /// The rate limit: as set, else `auto`.
    ///
    /// # Errors
    /// A [`SettingError`] when a shared limit is asked for without a known
    /// quota.
    pub fn rate_limit(&self) -> Result<RateLimit, SettingError> {
        let limit = self.rate_limit.unwrap_or_else(default_rate_limit);
        if self.shared_limit.is_some() && !matches!(limit, RateLimit::Fixed(_)) {
            return Err(SettingError::new(
                "shared_limit",
                "--shared-limit",
                "needs a known quota: set --rate-limit N/UNIT (the same in every process)",
            ));
        }
        Ok(limit)
    }

    /// Calls in flight: 1 to 65536, default 16.
    ///
    /// # Errors
    /// A [`SettingError`] naming the key when out of bounds.
    pub fn concurrency(&self) -> Result<u32, SettingError> {
        bounded(
            "concurrency",
            "--concurrency",
            self.concurrency,
            DEFAULT_CONCURRENCY,
            65_536,
        )
    }

    /// The queue's capacity: 1 to 10000000. Default 1000, or two full
    /// calls per call in flight when that is more, so that every call in
    /// flight can be full and the next ones ready (up to 10000000).
    ///
    /// # Errors
    /// A [`SettingError`] naming the key when out of bounds, or naming
    /// concurrency or batch_max when they are.
    pub fn queue_capacity(&self) -> Result<u32, SettingError> {
        let default = match self.queue_capacity {
            Some(_) => DEFAULT_QUEUE_CAPACITY,
            None => {
                let calls = u64::from(self.concurrency()?) * u64::from(self.batch_max()?);
                let default = (2 * calls).clamp(
                    u64::from(DEFAULT_QUEUE_CAPACITY),
                    u64::from(MAX_QUEUE_CAPACITY),
                );
                u32::try_from(default).unwrap_or(MAX_QUEUE_CAPACITY)
            }
        };
        bounded(
            "queue_capacity",
            "--queue-capacity",
            self.queue_capacity,
            default,
            MAX_QUEUE_CAPACITY,
        )
    }

    /// Records per call: 1 to 10000, default 1.
    ///
    /// # Errors
    /// A [`SettingError`] naming the key when out of bounds.
    pub fn batch_max(&self) -> Result<u32, SettingError> {
        bounded(
            "batch_max",
            "--batch-max",
            self.batch_max,
            DEFAULT_BATCH_MAX,
            10_000,
        )
    }

    /// How long records wait for a full call: 0 to 60s, default 100ms.
    ///
    /// # Errors
    /// A [`SettingError`] naming the key when out of bounds.
    pub fn batch_linger(&self) -> Result<Duration, SettingError> {
        SettingError::check_duration(
            "batch_linger",
            "--batch-linger",
            self.batch_linger.unwrap_or(DEFAULT_BATCH_LINGER),
            Duration::ZERO,
            MAX_BATCH_LINGER,
        )
    }

    /// Attempts per record: 1 to 100, default 6.
    ///
    /// # Errors
    /// A [`SettingError`] naming the key when out of bounds.
    pub fn max_attempts(&self) -> Result<u32, SettingError> {
        bounded(
            "max_attempts",
            "--max-attempts",
            self.max_attempts,
            DEFAULT_MAX_ATTEMPTS,
            100,
        )
    }

    /// The drain deadline: 0 to 1h, default 5s.
    ///
    /// # Errors
    /// A [`SettingError`] naming the key when out of bounds.
    pub fn drain_deadline(&self) -> Result<Duration, SettingError> {
        SettingError::check_duration(
            "drain_deadline",
            "--drain-deadline",
            self.drain_deadline.unwrap_or(DEFAULT_DRAIN_DEADLINE),
            Duration::ZERO,
            MAX_DRAIN_DEADLINE,
        )
    }

    /// The `json` profile's configuration (its schema read from the file).
    ///
    /// # Errors
    /// A [`SettingError`] when a profile setting is given with the `seed`
    /// profile, or the schema file cannot be used.
    pub fn json_profile(&self) -> Result<JsonProfileConfig, SettingError> {
        let config = JsonProfileConfig {
            stream_field: self.stream_field.clone(),
            partition_field: self.partition_field.clone(),
            sequence_field: self.sequence_field.clone(),
            priority_field: self.priority_field.clone(),
            schema: None,
        };
        match &self.schema {
            Some(path) => config
                .with_schema_file(path)
                .map_err(|error| SettingError::new("schema", "--schema", error.to_string())),
            None => Ok(config),
        }
    }

    /// Checks that no setting of the `json` profile is given with another.
    ///
    /// # Errors
    /// A [`SettingError`] naming the first such setting.
    pub fn check_profile(&self) -> Result<(), SettingError> {
        if self.profile() == ProfileKind::Json {
            return Ok(());
        }
        let given = [
            ("schema", "--schema", self.schema.is_some()),
            (
                "stream_field",
                "--stream-field",
                self.stream_field.is_some(),
            ),
            (
                "partition_field",
                "--partition-field",
                self.partition_field.is_some(),
            ),
            (
                "sequence_field",
                "--sequence-field",
                self.sequence_field.is_some(),
            ),
            (
                "priority_field",
                "--priority-field",
                self.priority_field.is_some(),
            ),
        ];
        match given.into_iter().find(|(_, _, given)| *given) {
            Some((key, flag, _)) => Err(SettingError::new(key, flag, "needs --profile json")),
            None => Ok(()),
        }
    }

    /// Checks every setting of the pipeline's own (not the connectors').
    ///
    /// # Errors
    /// A [`SettingError`] naming the first setting that cannot be used.
    pub fn check(&self) -> Result<(), SettingError> {
        self.check_profile()?;
        self.rate_limit()?;
        self.concurrency()?;
        self.queue_capacity()?;
        self.batch_max()?;
        self.batch_linger()?;
        self.max_attempts()?;
        self.drain_deadline()?;
        Ok(())
    }

    /// The processor's configuration: these limits, under the policy the
    /// sink implies.
    ///
    /// # Errors
    /// A [`SettingError`] naming the first limit that cannot be used.
    pub fn processor_config(&self, policy: SinkPolicy) -> Result<ProcessorConfig, SettingError> {
        let config = ProcessorConfig {
            max_in_flight: self.concurrency()? as usize,
            queue_capacity: self.queue_capacity()? as usize,
            batch: BatchConfig {
                max_records: self.batch_max()? as usize,
                linger: self.batch_linger()?,
                ..BatchConfig::default()
            },
            rate_limit: self.rate_limit()?,
            retry: RetryPolicy {
                max_attempts: self.max_attempts()?,
                ..RetryPolicy::default()
            },
            ordering: self.ordering().into(),
            drain_deadline: self.drain_deadline()?,
            ..ProcessorConfig::default()
        };
        Ok(policy.apply(config))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::num::NonZeroU32;

    use sluice_processor::{CountedFrom, Quota};

    use super::*;

    fn policy() -> SinkPolicy {
        SinkPolicy {
            call_timeout: Duration::from_secs(31),
            counted_from: CountedFrom::CallThenAnswer,
            rate_limit_margin: Duration::from_millis(25),
        }
    }

    #[test]
    fn unset_settings_take_the_documented_defaults() {
        let unset: PipelineSettings = toml::from_str("").unwrap();
        let config = unset.processor_config(policy()).unwrap();
        let defaults = PipelineSettings::default()
            .processor_config(policy())
            .unwrap();
        assert_eq!(config, defaults);
        assert_eq!((config.max_in_flight, config.queue_capacity), (16, 1_000));
        assert_eq!(
            (config.batch.max_records, config.retry.max_attempts),
            (1, 6)
        );
        assert_eq!(config.rate_limit, default_rate_limit());
        assert_eq!(config.ordering, DeliveryOrder::Partition);
        assert_eq!(config.drain_deadline, Duration::from_secs(5));
        assert_eq!(config.batch.linger, Duration::from_millis(100));
        assert_eq!(
            config.call_timeout,
            Duration::from_secs(31),
            "the sink's policy"
        );
        assert_eq!(config.counted_from, CountedFrom::CallThenAnswer);
        assert_eq!(unset.profile(), ProfileKind::Seed);
    }

    #[test]
    fn settings_reach_the_processor() {
        let settings: PipelineSettings = toml::from_str(
            "concurrency = 3\nqueue_capacity = 40\nbatch_max = 7\nmax_attempts = 2\n\
             rate_limit = '1000/min'\nordering = 'none'\ndrain_deadline = '250ms'\n\
             batch_linger = '5ms'",
        )
        .unwrap();
        let config = settings.processor_config(policy()).unwrap();
        assert_eq!((config.max_in_flight, config.queue_capacity), (3, 40));
        assert_eq!(
            (config.batch.max_records, config.retry.max_attempts),
            (7, 2)
        );
        let quota = Quota {
            limit: NonZeroU32::new(1_000).unwrap(),
            window: Duration::from_secs(60),
        };
        assert_eq!(config.rate_limit, RateLimit::Fixed(quota));
        assert_eq!(config.ordering, DeliveryOrder::None);
        assert_eq!(config.drain_deadline, Duration::from_millis(250));
        assert_eq!(config.batch.linger, Duration::from_millis(5));
    }

    #[test]
    fn an_unset_queue_holds_two_full_calls_per_call_in_flight() {
        let capacity = |text: &str| {
            let settings: PipelineSettings = toml::from_str(text).unwrap();
            settings.processor_config(policy()).unwrap().queue_capacity
        };
        assert_eq!(capacity("batch_max = 10"), 1_000, "at least the default");
        assert_eq!(capacity("batch_max = 500"), 16_000);
        assert_eq!(capacity("batch_max = 500\nconcurrency = 3"), 3_000);
        assert_eq!(
            capacity("batch_max = 10000\nconcurrency = 65536"),
            10_000_000,
            "at most the largest"
        );
        assert_eq!(capacity("batch_max = 500\nqueue_capacity = 7"), 7, "as set");
    }

    #[test]
    fn limits_out_of_bounds_are_refused_naming_key_and_flag() {
        for (text, message) in [
            (
                "concurrency = 0",
                "concurrency (--concurrency): must be 1 to 65536, got 0",
            ),
            (
                "queue_capacity = 10000001",
                "queue_capacity (--queue-capacity): must be 1 to 10000000",
            ),
            (
                "batch_max = 10001",
                "batch_max (--batch-max): must be 1 to 10000",
            ),
            (
                "batch_linger = '61s'",
                "batch_linger (--batch-linger): must be 0s to 1m",
            ),
            (
                "max_attempts = 101",
                "max_attempts (--max-attempts): must be 1 to 100",
            ),
            (
                "drain_deadline = '2h'",
                "drain_deadline (--drain-deadline): must be 0s to 1h",
            ),
            (
                "shared_limit = 'redis://127.0.0.1:6379/q'",
                "shared_limit (--shared-limit): needs a known quota",
            ),
        ] {
            let settings: PipelineSettings = toml::from_str(text).unwrap();
            let error = settings.processor_config(policy()).unwrap_err().to_string();
            assert!(error.starts_with(message), "{text}: {error}");
        }
    }

    #[test]
    fn profile_settings_need_the_json_profile() {
        let settings: PipelineSettings = toml::from_str("stream_field = 's'").unwrap();
        let error = settings.check_profile().unwrap_err().to_string();
        assert_eq!(error, "stream_field (--stream-field): needs --profile json");
        let settings: PipelineSettings =
            toml::from_str("profile = 'json'\nstream_field = 's'").unwrap();
        assert!(settings.check_profile().is_ok());
        assert_eq!(
            settings.json_profile().unwrap().stream_field.as_deref(),
            Some("s")
        );
        let settings: PipelineSettings =
            toml::from_str("profile = 'json'\nschema = '/no/such/schema.json'").unwrap();
        let error = settings.json_profile().unwrap_err().to_string();
        assert!(
            error.starts_with("schema (--schema): cannot read"),
            "{error}"
        );
    }

    #[test]
    fn only_what_is_given_is_serialized() {
        let settings = PipelineSettings {
            concurrency: Some(3),
            ..toml::from_str("").unwrap()
        };
        assert_eq!(toml::to_string(&settings).unwrap(), "concurrency = 3\n");
    }
}
