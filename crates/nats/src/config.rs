//! How a JetStream source is configured, and what can go wrong.

use sluice_processor::redact_userinfo;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::Config as ConsumerConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use sluice_processor::StreamName;

/// The first token of every record subject: `records.<stream>.<partition>`.
pub const SUBJECT_PREFIX: &str = "records";

/// The subjects a source consumes when none is configured.
pub const DEFAULT_SUBJECT_FILTER: &str = "records.>";

/// The most messages one pull request asks for, by default.
pub const DEFAULT_FETCH_BATCH: usize = 64;

/// How long one pull request waits for messages, by default.
pub const DEFAULT_FETCH_WAIT: Duration = Duration::from_secs(1);

/// How long JetStream waits before redelivering a record handed back, by
/// default.
pub const DEFAULT_NAK_DELAY: Duration = Duration::from_secs(1);

/// Where a [`JetStreamSource`](crate::JetStreamSource) reads, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// The server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream, which must exist. Its name is also the
    /// records' stream when a subject names none.
    pub stream: String,
    /// The subjects consumed; default [`DEFAULT_SUBJECT_FILTER`].
    pub subject_filter: String,
    /// The durable consumer's name: created when missing, reused when
    /// present (with the configuration it has).
    pub durable: String,
    /// How long JetStream waits for an acknowledgement before it
    /// redelivers a message. Records held longer by the pipeline are kept
    /// in progress every half of it.
    pub ack_wait: Duration,
    /// The most messages delivered and not yet acknowledged (at least 1):
    /// give the processor's `queue_capacity`, so that JetStream never hands
    /// out more than the pipeline can hold.
    pub max_ack_pending: usize,
    /// The most messages one pull request asks for (at least 1; at most
    /// `max_ack_pending` are asked). Default [`DEFAULT_FETCH_BATCH`].
    pub fetch_batch: usize,
    /// How long one pull request waits for messages. Default
    /// [`DEFAULT_FETCH_WAIT`].
    pub fetch_wait: Duration,
    /// How long JetStream waits before redelivering a record the
    /// pipeline handed back. Default [`DEFAULT_NAK_DELAY`].
    pub nak_delay: Duration,
}

impl JetStreamConfig {
    /// The durable consumer `durable` of stream `stream` at `url`, with
    /// defaults for everything else: subjects [`DEFAULT_SUBJECT_FILTER`],
    /// an ack wait of 30 s, at most 100 messages pending (the processor's
    /// default queue capacity).
    pub fn new(
        url: impl Into<String>,
        stream: impl Into<String>,
        durable: impl Into<String>,
    ) -> JetStreamConfig {
        JetStreamConfig {
            url: url.into(),
            stream: stream.into(),
            subject_filter: DEFAULT_SUBJECT_FILTER.to_owned(),
            durable: durable.into(),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 100,
            fetch_batch: DEFAULT_FETCH_BATCH,
            fetch_wait: DEFAULT_FETCH_WAIT,
            nak_delay: DEFAULT_NAK_DELAY,
        }
    }

    /// The records' [`Origin`](sluice_processor::Origin): `URL/STREAM`.
    pub fn origin(&self) -> sluice_processor::Origin {
        sluice_processor::Origin::new(format!(
            "{}/{}",
            redact_userinfo(self.url.trim_end_matches('/')),
            self.stream
        ))
    }

    /// Checks the values that make no sense.
    pub(crate) fn validate(&self) -> Result<(), NatsError> {
        let invalid = |reason: &str| Err(NatsError::Config(reason.to_owned()));
        if self.stream.is_empty() {
            return invalid("the stream name is empty");
        }
        if self.durable.is_empty() {
            return invalid("the durable consumer name is empty");
        }
        if self.max_ack_pending == 0 || i64::try_from(self.max_ack_pending).is_err() {
            return invalid("max_ack_pending must be in 1..=i64::MAX");
        }
        if self.fetch_batch == 0 {
            return invalid("fetch_batch must be at least 1");
        }
        if self.ack_wait.is_zero() {
            return invalid("ack_wait must be more than zero");
        }
        if self.fetch_wait.is_zero() {
            return invalid("fetch_wait must be more than zero");
        }
        Ok(())
    }
}

/// What a source holds of the server: the connection, its JetStream
/// context, the stream, and the records' stream when a subject names none.
pub(crate) struct Connection {
    pub(crate) client: async_nats::Client,
    pub(crate) context: jetstream::Context,
    pub(crate) stream: jetstream::stream::Stream,
    pub(crate) default_stream: StreamName,
}

impl JetStreamConfig {
    /// Checks the configuration, connects and finds the stream.
    pub(crate) async fn open(&self) -> Result<Connection, NatsError> {
        self.validate()?;
        let default_stream =
            StreamName::new(&self.stream).map_err(|error| NatsError::StreamName {
                stream: self.stream.clone(),
                error,
            })?;
        let client = async_nats::connect(&self.url).await.map_err(|error| {
            NatsError::nats(format!("connect to {}", redact_userinfo(&self.url)), error)
        })?;
        let context = jetstream::new(client.clone());
        let stream = context
            .get_stream(&self.stream)
            .await
            .map_err(|error| NatsError::nats(format!("find stream `{}`", self.stream), error))?;
        Ok(Connection {
            client,
            context,
            stream,
            default_stream,
        })
    }

    /// The durable pull consumer `durable` of the subjects `filter`, from
    /// `deliver` on, with explicit acknowledgements and this configuration's
    /// ack wait and bound.
    pub(crate) fn consumer(
        &self,
        durable: &str,
        filter: String,
        deliver: DeliverPolicy,
    ) -> ConsumerConfig {
        ConsumerConfig {
            durable_name: Some(durable.to_owned()),
            filter_subject: filter,
            deliver_policy: deliver,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_ack_pending: i64::try_from(self.max_ack_pending).unwrap_or(i64::MAX),
            ..ConsumerConfig::default()
        }
    }
}

/// Why a JetStream connector cannot start or publish.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The configuration makes no sense.
    #[error("invalid JetStream configuration: {0}")]
    Config(String),
    /// The JetStream stream name is no sluice stream name.
    #[error("the JetStream stream `{stream}` is no stream name: {error}")]
    StreamName {
        /// The JetStream stream.
        stream: String,
        /// Why it does not do.
        error: sluice_processor::StreamNameError,
    },
    /// The server refused or failed an operation.
    #[error("NATS: cannot {action}: {source}")]
    Nats {
        /// What was attempted, e.g. `connect to nats://…`.
        action: String,
        /// What failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl NatsError {
    /// A failed `action`.
    pub(crate) fn nats(
        action: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> NatsError {
        NatsError::Nats {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_nonsense_does_not() {
        let config = JetStreamConfig::new("nats://127.0.0.1:4222", "RECORDS", "sluice");
        assert_eq!(config.subject_filter, DEFAULT_SUBJECT_FILTER);
        assert!(config.validate().is_ok());
        let broken = [
            JetStreamConfig {
                stream: String::new(),
                ..config.clone()
            },
            JetStreamConfig {
                durable: String::new(),
                ..config.clone()
            },
            JetStreamConfig {
                max_ack_pending: 0,
                ..config.clone()
            },
            JetStreamConfig {
                fetch_batch: 0,
                ..config.clone()
            },
            JetStreamConfig {
                ack_wait: Duration::ZERO,
                ..config.clone()
            },
            JetStreamConfig {
                fetch_wait: Duration::ZERO,
                ..config.clone()
            },
        ];
        for config in broken {
            assert!(matches!(config.validate(), Err(NatsError::Config(_))));
        }
    }
}
