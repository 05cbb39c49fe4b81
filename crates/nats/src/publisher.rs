//! Loading: NDJSON lines published to `records.<stream>.<partition>`
//! subjects (or another prefix's) with JetStream acknowledgements.

use sluice_processor::redact_userinfo;
use std::collections::VecDeque;

use async_nats::jetstream::{self, context::PublishAckFuture};

use crate::config::{NatsError, SUBJECT_PREFIX};

/// The most publications awaiting their JetStream ack in
/// [`JetStreamPublisher::publish_all`].
const IN_FLIGHT: usize = 256;

/// The subject of records of `stream`'s `partition` under `prefix`:
/// `<prefix>.<stream>.<partition>`, e.g. `records.orders.3`.
pub fn record_subject(prefix: &str, stream: &str, partition: u32) -> String {
    format!("{prefix}.{stream}.{partition}")
}

/// Publishes records to JetStream, e.g. for `sluice generate --to nats://…`.
#[derive(Debug, Clone)]
pub struct JetStreamPublisher {
    client: async_nats::Client,
    context: jetstream::Context,
    prefix: String,
}

impl JetStreamPublisher {
    /// Connects to the server at `url`.
    ///
    /// # Errors
    /// [`NatsError::Nats`] when it cannot be reached.
    pub async fn connect(url: &str) -> Result<JetStreamPublisher, NatsError> {
        let client = async_nats::connect(url).await.map_err(|error| {
            NatsError::nats(format!("connect to {}", redact_userinfo(url)), error)
        })?;
        let context = jetstream::new(client.clone());
        Ok(JetStreamPublisher {
            client,
            context,
            prefix: SUBJECT_PREFIX.to_owned(),
        })
    }

    /// Publishes under `prefix` rather than [`SUBJECT_PREFIX`]:
    /// `<prefix>.<stream>.<partition>`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> JetStreamPublisher {
        self.prefix = prefix.into();
        self
    }

    /// The JetStream context, e.g. to manage streams.
    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }

    /// The connection.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Creates the stream `name` over `subjects` (file storage, default
    /// limits) unless it exists; an existing stream is left as it is.
    ///
    /// # Errors
    /// [`NatsError::Nats`] when the server refuses.
    pub async fn create_stream_if_missing(
        &self,
        name: &str,
        subjects: Vec<String>,
    ) -> Result<(), NatsError> {
        self.context
            .get_or_create_stream(jetstream::stream::Config {
                name: name.to_owned(),
                subjects,
                ..Default::default()
            })
            .await
            .map_err(|error| NatsError::nats(format!("create stream `{name}`"), error))?;
        Ok(())
    }

    /// Fails unless the stream `name` exists.
    ///
    /// # Errors
    /// [`NatsError::Config`] naming the stream when it is missing (or the
    /// server cannot say).
    pub async fn require_stream(&self, name: &str) -> Result<(), NatsError> {
        match self.context.get_stream(name).await {
            Ok(_) => Ok(()),
            Err(error) => Err(NatsError::Config(format!(
                "no JetStream stream `{name}` ({error}): create it, or ask for it to be created"
            ))),
        }
    }

    /// Loads a stream: connects to `target.url`, makes sure the stream
    /// exists (creating it over `<prefix>.>` when `target.create_stream`
    /// and it is missing), and publishes `records` as
    /// [`publish_all`](Self::publish_all) does; returns how many were
    /// stored.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), [`require_stream`](Self::require_stream)
    /// and [`publish_all`](Self::publish_all).
    pub async fn load<I, S, L>(target: &StreamTarget, records: I) -> Result<u64, NatsError>
    where
        I: IntoIterator<Item = (S, u32, L)>,
        S: AsRef<str>,
        L: Into<String>,
    {
        let publisher = JetStreamPublisher::connect(&target.url)
            .await?
            .with_prefix(&target.subject_prefix);
        if target.create_stream {
            let subjects = vec![format!("{}.>", target.subject_prefix)];
            publisher
                .create_stream_if_missing(&target.stream, subjects)
                .await?;
        } else {
            publisher.require_stream(&target.stream).await?;
        }
        publisher.publish_all(records).await
    }

    /// Publishes one record to [`record_subject`]`(stream, partition)` and
    /// waits for JetStream to store it.
    ///
    /// # Errors
    /// [`NatsError::Nats`] when it cannot be published or is not stored.
    pub async fn publish(
        &self,
        stream: &str,
        partition: u32,
        line: impl Into<String>,
    ) -> Result<(), NatsError> {
        let pending = self.send(stream, partition, line.into()).await?;
        stored(pending).await
    }

    /// Publishes each `(stream, partition, line)` in order, with up to 256
    /// publications awaiting their JetStream ack at once; returns how many
    /// were stored.
    ///
    /// # Errors
    /// [`NatsError::Nats`] at the first record that cannot be published or
    /// is not stored (the ones before it may be stored).
    pub async fn publish_all<I, S, L>(&self, records: I) -> Result<u64, NatsError>
    where
        I: IntoIterator<Item = (S, u32, L)>,
        S: AsRef<str>,
        L: Into<String>,
    {
        let mut pending = VecDeque::with_capacity(IN_FLIGHT);
        let mut count = 0;
        for (stream, partition, line) in records {
            if pending.len() >= IN_FLIGHT
                && let Some(oldest) = pending.pop_front()
            {
                stored(oldest).await?;
                count += 1;
            }
            pending.push_back(self.send(stream.as_ref(), partition, line.into()).await?);
        }
        for publication in pending {
            stored(publication).await?;
            count += 1;
        }
        Ok(count)
    }

    async fn send(
        &self,
        stream: &str,
        partition: u32,
        line: String,
    ) -> Result<PublishAckFuture, NatsError> {
        let subject = record_subject(&self.prefix, stream, partition);
        self.context
            .publish(subject.clone(), line.into())
            .await
            .map_err(|error| NatsError::nats(format!("publish to {subject}"), error))
    }
}

/// Where [`JetStreamPublisher::load`] loads records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    /// The server, `nats://HOST:PORT`.
    pub url: String,
    /// The JetStream stream.
    pub stream: String,
    /// Whether to create the stream when it is missing.
    pub create_stream: bool,
    /// The subjects' first token: `<prefix>.<stream>.<partition>`.
    pub subject_prefix: String,
}

async fn stored(publication: PublishAckFuture) -> Result<(), NatsError> {
    publication
        .await
        .map(drop)
        .map_err(|error| NatsError::nats("store a publication", error))
}
