//! The JetStream source as a connector: its settings (section `[nats]`,
//! flags `--nats-*`, variables `SLUICE_NATS_*`) and how a pipeline builds
//! it from them.

use sluice_processor::redact_userinfo;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sluice_processor::{
    BuiltSource, ConnectorError, DeliveryOrder, Finish, Finished, NothingToFinish, SettingError,
    SourceConnector, SourceContext,
};

use crate::config::{DEFAULT_SUBJECT_FILTER, JetStreamConfig};
use crate::partitioned::{PartitionLeases, PartitionedSource};
use crate::source::JetStreamSource;

/// The default durable consumer (and lease group) name.
pub const DEFAULT_CONSUMER: &str = "sluice";
/// How long a partition lease lives without renewal, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);
/// How long JetStream waits for an acknowledgement, by default.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// The shortest lease and ack wait.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// The longest lease and ack wait.
const MAX_WAIT: Duration = Duration::from_secs(3_600);

/// A JetStream stream as the pipeline's source: `source = "nats"`, or an
/// input `nats://HOST:PORT`.
///
/// With `ordering = "partition"` (the default) each partition is consumed
/// by one live process at a time, through leases
/// ([`PartitionedSource`]); with `ordering = "none"` every process pulls
/// from one shared durable consumer ([`JetStreamSource`]). JetStream keeps
/// the consumers' progress: a checkpoint is refused. At the end of a run
/// this process's leases are released so that others take its partitions
/// at once.
///
/// ```
/// use sluice_nats::NatsSettings;
///
/// let settings: NatsSettings = toml::from_str("stream = 'RECORDS'\nlease = '3s'")?;
/// assert_eq!(settings.stream.as_deref(), Some("RECORDS"));
/// assert_eq!(settings.lease, Some(std::time::Duration::from_secs(3)));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// The NATS server, `nats://HOST:PORT`. Default: the input given as
    /// `nats://HOST:PORT`.
    #[arg(id = "nats.url", long = "nats-url", value_name = "nats://HOST:PORT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The JetStream stream to consume (it must exist). Required.
    #[arg(id = "nats.stream", long = "nats-stream", value_name = "NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The subjects consumed: `records.>` or `records.<stream or *>.*`. A
    /// record's stream and partition are its subject's second and third
    /// tokens. Default `records.>`.
    #[arg(id = "nats.subject", long = "nats-subject", value_name = "FILTER")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The durable consumer. Processes with the same name share the work;
    /// with `--ordering partition` each partition has its own consumer
    /// `NAME-<partition>` and lease. Default `sluice`.
    #[arg(id = "nats.consumer", long = "nats-consumer", value_name = "NAME")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// How long a partition stays with a process that stopped renewing its
    /// lease (died): 1s to 1h. Default 5s.
    #[arg(id = "nats.lease", long = "nats-lease", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub lease: Option<Duration>,
    /// How long JetStream waits for a record's acknowledgement before it
    /// redelivers it (sluice marks held records in progress every half of
    /// it): 1s to 1h. Default 30s.
    #[arg(id = "nats.ack_wait", long = "nats-ack-wait", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub ack_wait: Option<Duration>,
    /// End the run by itself once the stream is drained: when this
    /// consumer group has had nothing pending (not yet delivered, or
    /// delivered and not yet acknowledged) for QUIET, every partition
    /// with records having its consumer. 1s to 1h: `--until-drained`
    /// waits 5s, `--until-drained=30s` so long. Without it a JetStream run
    /// goes on until a signal.
    #[arg(
        id = "nats.until_drained",
        long = "until-drained",
        value_name = "QUIET",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "5s",
        value_parser = humantime::parse_duration
    )]
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub until_drained: Option<Duration>,
}

impl Default for NatsSettings {
    /// The documented defaults; no server and no stream.
    fn default() -> Self {
        NatsSettings {
            url: None,
            stream: None,
            subject: Some(DEFAULT_SUBJECT_FILTER.to_owned()),
            consumer: Some(DEFAULT_CONSUMER.to_owned()),
            lease: Some(DEFAULT_LEASE),
            ack_wait: Some(DEFAULT_ACK_WAIT),
            until_drained: None,
        }
    }
}

impl NatsSettings {
    /// The consumer's configuration for a pipeline of `context`, and the
    /// lease time.
    ///
    /// # Errors
    /// A [`SettingError`] naming the setting that is missing, out of
    /// bounds, or contradicts the pipeline's.
    pub fn config(
        &self,
        context: &SourceContext,
    ) -> Result<(JetStreamConfig, Duration), SettingError> {
        if context.checkpoint.is_some() {
            return Err(SettingError::new(
                "checkpoint",
                "--checkpoint",
                "JetStream keeps a consumer's progress itself: drop the checkpoint",
            ));
        }
        let url = match (&self.url, context.inputs.as_slice()) {
            (Some(url), []) => url.clone(),
            (None, [url]) => url.clone(),
            (Some(url), [input]) if input == url => url.clone(),
            (None, []) => {
                return Err(SettingError::new(
                    "nats.url",
                    "--nats-url",
                    "required: the NATS server, nats://HOST:PORT",
                ));
            }
            _ => {
                return Err(SettingError::new(
                    "inputs",
                    "INPUT",
                    "a JetStream stream is read alone: give one nats://HOST:PORT input (or --nats-url), nothing else",
                ));
            }
        };
        let stream = self.stream.clone().ok_or_else(|| {
            SettingError::new(
                "nats.stream",
                "--nats-stream",
                "required: the JetStream stream to read",
            )
        })?;
        let lease = SettingError::check_duration(
            "nats.lease",
            "--nats-lease",
            self.lease.unwrap_or(DEFAULT_LEASE),
            MIN_WAIT,
            MAX_WAIT,
        )?;
        let ack_wait = SettingError::check_duration(
            "nats.ack_wait",
            "--nats-ack-wait",
            self.ack_wait.unwrap_or(DEFAULT_ACK_WAIT),
            MIN_WAIT,
            MAX_WAIT,
        )?;
        if let Some(quiet) = self.until_drained {
            SettingError::check_duration(
                "nats.until_drained",
                "--until-drained",
                quiet,
                MIN_WAIT,
                MAX_WAIT,
            )?;
        }
        let consumer = self.consumer.as_deref().unwrap_or(DEFAULT_CONSUMER);
        let config = JetStreamConfig {
            subject_filter: self
                .subject
                .clone()
                .unwrap_or_else(|| DEFAULT_SUBJECT_FILTER.to_owned()),
            ack_wait,
            // JetStream hands out no more than the pipeline holds.
            max_ack_pending: context.queue_capacity.max(1),
            ..JetStreamConfig::new(url, stream, consumer)
        };
        Ok((config, lease))
    }
}

#[async_trait]
impl SourceConnector for NatsSettings {
    const NAME: &'static str = "nats";
    const SCHEMES: &'static [&'static str] = &["nats"];

    /// The URL without its credentials.
    fn redacted(&self) -> NatsSettings {
        NatsSettings {
            url: self
                .url
                .as_deref()
                .map(|url| redact_userinfo(url).into_owned()),
            ..self.clone()
        }
    }

    /// Connects to the server and finds the stream.
    async fn check(&self, context: &SourceContext) -> Result<String, ConnectorError> {
        let (config, _) = self.config(context)?;
        let publisher = crate::JetStreamPublisher::connect(&config.url)
            .await
            .map_err(|error| format!("{}: {error}", redact_userinfo(&config.url)))?;
        publisher
            .require_stream(&config.stream)
            .await
            .map_err(|error| format!("{}: {error}", redact_userinfo(&config.url)))?;
        Ok(format!(
            "NATS {} answers; stream `{}` exists",
            redact_userinfo(&config.url),
            config.stream
        ))
    }

    async fn build(&self, context: &SourceContext) -> Result<BuiltSource, ConnectorError> {
        let (config, lease) = self.config(context)?;
        let url = config.url.clone();
        let failed = |error: crate::NatsError| format!("{}: {error}", redact_userinfo(&url));
        // A connection of its own for the pending count, beside the source's.
        let watched = config.open().await.map_err(failed)?;
        let durable = config.durable.clone();
        let gauge = context
            .progress
            .input(format!("{}/{durable}", config.stream));
        let built = match context.ordering {
            DeliveryOrder::Partition => {
                let (source, leases) = PartitionedSource::connect(config, lease)
                    .await
                    .map_err(failed)?;
                tracing::info!(
                    member = leases.member(),
                    "consuming a share of the partitions"
                );
                BuiltSource {
                    streams: vec![Box::pin(source)],
                    finish: Box::new(ReleaseLeases(leases)),
                }
            }
            DeliveryOrder::None => {
                let source = JetStreamSource::connect(config).await.map_err(failed)?;
                BuiltSource {
                    streams: vec![Box::pin(source)],
                    finish: Box::new(NothingToFinish),
                }
            }
        };
        let watch = crate::pending::Watch {
            stream: watched.stream,
            durable,
            partitioned: matches!(context.ordering, DeliveryOrder::Partition).then(|| {
                self.subject
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SUBJECT_FILTER.to_owned())
            }),
            gauge,
        };
        let (poller, drained) = crate::pending::poll(watch, self.until_drained);
        let streams = built
            .streams
            .into_iter()
            .map(|records| -> sluice_processor::RawStream {
                match drained.clone() {
                    Some(drained) => Box::pin(records.take_until(drained.cancelled_owned())),
                    None => records,
                }
            })
            .collect();
        Ok(BuiltSource {
            streams,
            finish: Box::new(crate::pending::StopPolling {
                poller,
                then: built.finish,
            }),
        })
    }
}

/// Gives this process's partitions up to the others at the end of a run.
struct ReleaseLeases(PartitionLeases);

#[async_trait]
impl Finish for ReleaseLeases {
    async fn finish(self: Box<Self>) -> Result<Finished, ConnectorError> {
        self.0.release().await;
        Ok(Finished::default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;

    fn context(inputs: &[&str]) -> SourceContext {
        SourceContext {
            inputs: inputs.iter().map(|input| (*input).to_owned()).collect(),
            checkpoint: None,
            queue_capacity: 250,
            ordering: DeliveryOrder::Partition,
            progress: sluice_processor::InputProgress::default(),
        }
    }

    fn with_stream() -> NatsSettings {
        NatsSettings {
            stream: Some("RECORDS".into()),
            ..NatsSettings::default()
        }
    }

    #[test]
    fn the_input_url_the_defaults_and_the_queue_bound_make_the_consumer() {
        let (config, lease) = with_stream()
            .config(&context(&["nats://127.0.0.1:4222"]))
            .unwrap();
        assert_eq!(config.url, "nats://127.0.0.1:4222");
        assert_eq!(
            (config.stream.as_str(), config.durable.as_str()),
            ("RECORDS", "sluice")
        );
        assert_eq!(config.subject_filter, "records.>");
        assert_eq!((config.ack_wait, lease), (DEFAULT_ACK_WAIT, DEFAULT_LEASE));
        assert_eq!(config.max_ack_pending, 250);
        let settings = NatsSettings {
            url: Some("nats://h:1".into()),
            consumer: Some("eu".into()),
            lease: Some(Duration::from_secs(9)),
            ..with_stream()
        };
        let (config, lease) = settings.config(&context(&[])).unwrap();
        assert_eq!(
            (config.url.as_str(), config.durable.as_str()),
            ("nats://h:1", "eu")
        );
        assert_eq!(lease, Duration::from_secs(9));
    }

    #[test]
    fn what_is_missing_or_contradictory_is_named() {
        let error = |settings: &NatsSettings, context: &SourceContext| {
            settings.config(context).unwrap_err().to_string()
        };
        let url = context(&["nats://127.0.0.1:4222"]);
        assert!(
            error(&NatsSettings::default(), &url).contains("nats.stream (--nats-stream): required")
        );
        assert!(error(&with_stream(), &context(&[])).contains("--nats-url"));
        assert!(
            error(&with_stream(), &context(&["nats://h:1", "a.ndjson"])).contains("read alone")
        );
        let checkpointed = SourceContext {
            checkpoint: Some(PathBuf::from("c.json")),
            ..url.clone()
        };
        assert!(error(&with_stream(), &checkpointed).contains("drop the checkpoint"));
        let short = NatsSettings {
            lease: Some(Duration::from_millis(500)),
            ..with_stream()
        };
        assert_eq!(
            error(&short, &url),
            "nats.lease (--nats-lease): must be 1s to 1h, got 500ms"
        );
        let long = NatsSettings {
            ack_wait: Some(Duration::from_secs(7_200)),
            ..with_stream()
        };
        assert!(
            error(&long, &url).starts_with("nats.ack_wait (--nats-ack-wait): must be 1s to 1h")
        );
        let hasty = NatsSettings {
            until_drained: Some(Duration::from_millis(100)),
            ..with_stream()
        };
        assert!(
            error(&hasty, &url)
                .starts_with("nats.until_drained (--until-drained): must be 1s to 1h"),
            "{}",
            error(&hasty, &url)
        );
    }

    #[test]
    fn only_the_settings_given_are_serialized_and_unknown_keys_are_refused() {
        let given = NatsSettings {
            url: None,
            stream: Some("S".into()),
            subject: None,
            consumer: None,
            lease: Some(Duration::from_secs(2)),
            ack_wait: None,
            until_drained: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            toml::to_string(&given).unwrap(),
            "stream = \"S\"\nlease = \"2s\"\nuntil_drained = \"3s\"\n"
        );
        let error = toml::from_str::<NatsSettings>("streem = 'S'").unwrap_err();
        assert!(error.to_string().contains("streem"), "{error}");
    }
}
