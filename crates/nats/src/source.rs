//! The JetStream source: a durable pull consumer as a pull-based stream of
//! [`RawRecord`]s, each acknowledged through the acker task.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Batch;
use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::{AckKind, Message};
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use sluice_processor::{Fence, Incoming, Origin, RawRecord, RecordId, RecordKey, StreamName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::acker::AckerHandle;
use crate::config::{Connection, JetStreamConfig, NatsError};
use crate::tenure::Tenure;

/// A durable JetStream pull consumer as a source for a
/// [`StreamProcessor`](sluice_processor::StreamProcessor), yielding
/// [`RawRecord`]s whose origin is `URL/STREAM` (see [`JetStreamConfig::origin`]).
///
/// - **Pull-based**: a pull request (of at most
///   [`fetch_batch`](JetStreamConfig::fetch_batch) and
///   [`max_ack_pending`](JetStreamConfig::max_ack_pending) messages,
///   waiting at most [`fetch_wait`](JetStreamConfig::fetch_wait)) is made
///   only when the processor polls and the previous one is used up.
/// - **Records**: the payload as text (invalid UTF-8 replaced by U+FFFD);
///   its position, the identity when the profile reads none from the
///   record, is taken from the subject `records.<stream>.<partition>` (see
///   [`parse_subject`]) and the message's stream sequence.
/// - **Acknowledgements**: each record's [`Ack`](sluice_processor::Ack)
///   acks its message when delivered, terminates it (no redelivery) when
///   dead-lettered, and naks it with
///   [`nak_delay`](JetStreamConfig::nak_delay) when handed back, so that
///   JetStream redelivers it. While the pipeline holds a record, its
///   message is marked in progress every half ack wait.
/// - **Handing over**: messages of a pull request that have arrived are
///   taken (and their acks made) as soon as the first is read; dropping the
///   source naks those it holds. Messages of a pull request that had not
///   arrived when the source was dropped are redelivered after the ack
///   wait.
/// - **Never ends** on its own: a failed pull request is logged and
///   retried after a second. Stop the processor to stop it.
pub struct JetStreamSource {
    records: BoxStream<'static, Incoming<RawRecord>>,
    consumer: PullConsumer,
}

impl fmt::Debug for JetStreamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamSource")
            .field("consumer", &self.consumer.cached_info().name)
            .finish_non_exhaustive()
    }
}

impl JetStreamSource {
    /// Connects to `config.url` and creates, or reuses, the durable pull
    /// consumer `config.durable` of the existing stream `config.stream`,
    /// with explicit acknowledgements. Must be called within a tokio
    /// runtime.
    ///
    /// # Errors
    /// [`NatsError::Config`] for a configuration that makes no sense,
    /// [`NatsError::StreamName`] when the JetStream stream's name is no
    /// sluice stream name, [`NatsError::Nats`] when the server cannot be
    /// reached, has no such stream, or refuses the consumer.
    pub async fn connect(config: JetStreamConfig) -> Result<JetStreamSource, NatsError> {
        let Connection {
            client,
            stream,
            default_stream,
            ..
        } = config.open().await?;
        let consumer_config = config.consumer(
            &config.durable,
            config.subject_filter.clone(),
            DeliverPolicy::All,
        );
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&config.durable, consumer_config)
            .await
            .map_err(|error| {
                NatsError::nats(format!("create consumer `{}`", config.durable), error)
            })?;
        let (acker, _) = AckerHandle::start(client, config.ack_wait, config.nak_delay);
        let pulling = Pulling::new(consumer.clone(), &config, default_stream, acker, None);
        Ok(JetStreamSource {
            records: Box::pin(futures::stream::unfold(pulling, |mut pulling| async move {
                let record = pulling.next().await;
                Some((record, pulling))
            })),
            consumer,
        })
    }

    /// The durable consumer, e.g. for its info.
    pub fn consumer(&self) -> &PullConsumer {
        &self.consumer
    }
}

impl Stream for JetStreamSource {
    type Item = Incoming<RawRecord>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.records.as_mut().poll_next(cx)
    }
}

/// The state of the pull loop. `futures::stream::unfold` keeps its future
/// across a dropped `next()`, so a message being read is never lost.
pub(crate) struct Pulling {
    consumer: PullConsumer,
    batch: Option<Batch>,
    /// Messages received and not yet handed over, with their acks.
    ready: VecDeque<Incoming<RawRecord>>,
    size: usize,
    wait: Duration,
    default_stream: StreamName,
    origin: Origin,
    /// The JetStream stream's name: with a message's stream sequence, the
    /// message's key.
    jetstream: Arc<str>,
    acker: AckerHandle,
    /// Places for messages pending acknowledgement, shared with the other
    /// consumers of the same pipeline; `None` when `max_ack_pending` of the
    /// one consumer bounds them.
    places: Option<Arc<Semaphore>>,
    /// The places taken for the current pull request and not yet given to
    /// a message.
    reserved: Option<OwnedSemaphorePermit>,
    /// With partitions shared by leases: the lease's fence, which each
    /// record's ack carries, and what this process took under it.
    lease: Option<(Fence, Arc<Tenure>)>,
    /// Stream sequences the previous holders of the partition resolved
    /// (see [`crate::tenure::Note`]): acknowledged at once, never handed
    /// over.
    skip: BTreeSet<u64>,
    /// Messages of `skip` received and not yet acknowledged.
    skipped: Vec<(u64, Acker)>,
}

impl Pulling {
    /// A pull loop over `consumer`, sized by `config`; each message takes
    /// one of `places`, if given, until its record is resolved.
    pub(crate) fn new(
        consumer: PullConsumer,
        config: &JetStreamConfig,
        default_stream: StreamName,
        acker: AckerHandle,
        places: Option<Arc<Semaphore>>,
    ) -> Pulling {
        Pulling {
            consumer,
            batch: None,
            ready: VecDeque::new(),
            size: config.fetch_batch.min(config.max_ack_pending),
            wait: config.fetch_wait,
            default_stream,
            origin: config.origin(),
            jetstream: Arc::from(config.stream.as_str()),
            acker,
            places,
            reserved: None,
            lease: None,
            skip: BTreeSet::new(),
            skipped: Vec::new(),
        }
    }

    /// The same pull loop, for a partition held under a lease: each
    /// record's ack carries `fence`, `tenure` learns what is taken, and
    /// the messages of `skip` (resolved by a previous holder) are
    /// acknowledged without being handed over.
    pub(crate) fn under_lease(
        mut self,
        fence: Fence,
        tenure: Arc<Tenure>,
        skip: BTreeSet<u64>,
    ) -> Pulling {
        self.lease = Some((fence, tenure));
        self.skip = skip;
        self
    }

    /// The next record: from those received, the current pull request, or
    /// a new one.
    pub(crate) async fn next(&mut self) -> Incoming<RawRecord> {
        loop {
            if let Some(record) = self.ready.pop_front() {
                return record;
            }
            let Some(batch) = self.batch.as_mut() else {
                let size = self.reserve_places().await;
                self.batch = request(&self.consumer, size, self.wait).await;
                continue;
            };
            let received = batch.next().await;
            self.receive(received);
            self.receive_arrived();
            self.acknowledge_skipped().await;
        }
    }

    /// Acknowledges the messages a previous holder resolved, as taken
    /// and acknowledged under this lease (so that the next note has them).
    async fn acknowledge_skipped(&mut self) {
        for (sequence, acker) in self.skipped.drain(..) {
            match acker.ack_with(AckKind::Ack).await {
                Ok(()) => {
                    if let Some((_, tenure)) = &self.lease {
                        tenure.take(sequence).told(AckKind::Ack);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, sequence, "cannot acknowledge a message resolved before");
                }
            }
        }
    }

    /// Takes every message of the pull request that has already arrived:
    /// from now on the acker keeps it in progress, and if the source is
    /// dropped before handing it over, its dropped ack naks it at once.
    fn receive_arrived(&mut self) {
        while let Some(batch) = self.batch.as_mut() {
            match batch.next().now_or_never() {
                Some(received) => self.receive(received),
                None => break,
            }
        }
    }

    /// Takes what the pull request gave: a message, its failure, or its end.
    fn receive(&mut self, received: Option<Result<Message, async_nats::Error>>) {
        match received {
            Some(Ok(message)) => {
                let sequence = message.info().map_or(0, |info| info.stream_sequence);
                if self.skip.remove(&sequence) {
                    let (_, acker) = message.split();
                    self.skipped.push((sequence, acker));
                    return;
                }
                let record = self.record(message);
                self.ready.push_back(record);
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "a JetStream pull request failed");
                self.batch = None;
            }
            None => {
                self.batch = None;
                // Places of messages the request did not bring are free.
                self.reserved = None;
            }
        }
    }

    /// Waits for at least one place, takes up to a pull request's worth,
    /// and says how many messages to ask for.
    async fn reserve_places(&mut self) -> usize {
        let Some(places) = &self.places else {
            return self.size;
        };
        let Ok(mut reserved) = Arc::clone(places).acquire_owned().await else {
            // Never closed; if it were, asking for one message stays bounded.
            return 1;
        };
        let more = places.available_permits().min(self.size - 1);
        if let Ok(extra) = Arc::clone(places).try_acquire_many_owned(more as u32) {
            reserved.merge(extra);
        }
        let size = reserved.num_permits();
        self.reserved = Some(reserved);
        size
    }

    fn record(&mut self, message: Message) -> Incoming<RawRecord> {
        let sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
        let (stream, partition) = parse_subject(message.subject.as_str(), self.default_stream);
        let (message, acker) = message.split();
        let text = String::from_utf8_lossy(&message.payload).into_owned();
        let place = self
            .reserved
            .as_mut()
            .and_then(|reserved| reserved.split(1));
        let ack = match &self.lease {
            Some((fence, tenure)) => self
                .acker
                .hold(acker, place, Some(tenure.take(sequence)))
                .fenced(fence.clone()),
            None => self.acker.hold(acker, place, None),
        };
        let position = RecordId {
            stream,
            partition,
            sequence,
        };
        let key = RecordKey::derive(&[
            b"jetstream",
            self.jetstream.as_bytes(),
            &sequence.to_le_bytes(),
        ]);
        let record = RawRecord::new(self.origin.clone(), position, text).with_key(key);
        Incoming::with_ack(record, ack)
    }
}

/// A new pull request; `None` (after a pause) when it fails.
async fn request(consumer: &PullConsumer, size: usize, wait: Duration) -> Option<Batch> {
    let requested = consumer
        .batch()
        .max_messages(size)
        .expires(wait)
        .messages()
        .await;
    match requested {
        Ok(batch) => Some(batch),
        Err(error) => {
            tracing::warn!(%error, "cannot request JetStream messages; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            None
        }
    }
}

/// The stream and partition a subject `<prefix>.<stream>.<partition>`
/// names, whatever its prefix (`records` by default).
///
/// The stream is `default_stream` when the subject has no second token or
/// it is no stream name; the partition is 0 when there is no third token
/// or it is no `u32`.
///
/// ```
/// use sluice_nats::parse_subject;
/// use sluice_processor::StreamName;
///
/// let default = StreamName::new("RECORDS").unwrap();
/// let orders = StreamName::new("orders").unwrap();
/// assert_eq!(parse_subject("records.orders.3", default), (orders, 3));
/// assert_eq!(parse_subject("shop.orders.3", default), (orders, 3));
/// assert_eq!(parse_subject("records.orders", default), (orders, 0));
/// assert_eq!(parse_subject("records.orders.x", default), (orders, 0));
/// assert_eq!(parse_subject("other", default), (default, 0));
/// ```
pub fn parse_subject(subject: &str, default_stream: StreamName) -> (StreamName, u32) {
    let mut tokens = subject.split('.').skip(1);
    let stream = tokens
        .next()
        .and_then(|name| StreamName::new(name).ok())
        .unwrap_or(default_stream);
    let partition = tokens
        .next()
        .and_then(|token| token.parse().ok())
        .unwrap_or(0);
    (stream, partition)
}
