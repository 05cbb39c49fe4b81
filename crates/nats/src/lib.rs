//! sluice's NATS JetStream connectors.
//!
//! - [`JetStreamSource`]: a durable pull consumer as a source of
//!   [`RawRecord`](sluice_processor::RawRecord)s, each carrying
//!   an [`Ack`](sluice_processor::Ack) that acknowledges (delivered),
//!   terminates (dead-lettered) or naks (not processed) its message, and
//!   keeps it in progress while the pipeline holds it.
//! - [`PartitionedSource`]: the same for several processes sharing a
//!   stream with order per partition: each partition is consumed by one
//!   live process at a time, by leases in a JetStream key-value bucket.
//! - [`NatsSettings`]: the JetStream source as a connector of a
//!   configured pipeline (`[nats]`, `--nats-*`).
//! - [`JetStreamPublisher`]: publishes NDJSON lines to
//!   `records.<stream>.<partition>` subjects with JetStream acks, creating
//!   the stream when asked.
//!
//! Subjects follow `records.<stream>.<partition>` (any prefix will do in
//! place of `records`): the sources take a record's stream and partition
//! from its subject (see [`parse_subject`]).

mod acker;
mod config;
mod leases;
mod partitioned;
mod pending;
mod publisher;
mod settings;
mod source;
mod tenure;

pub use config::{
    DEFAULT_FETCH_BATCH, DEFAULT_FETCH_WAIT, DEFAULT_NAK_DELAY, DEFAULT_SUBJECT_FILTER,
    JetStreamConfig, NatsError, SUBJECT_PREFIX,
};
pub use partitioned::{PartitionLeases, PartitionedSource};
pub use publisher::{JetStreamPublisher, StreamTarget, record_subject};
pub use settings::{DEFAULT_ACK_WAIT, DEFAULT_CONSUMER, DEFAULT_LEASE, NatsSettings};
pub use source::{JetStreamSource, parse_subject};
