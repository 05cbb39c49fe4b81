//! sluice's processor core.
//!
//! A [`StreamProcessor`] consumes several sources (any
//! `futures::Stream<Item = StreamData>`) concurrently, transforms and
//! validates each record, and delivers it to a [`Sink`]:
//!
//! ```text
//! source ─► intake ─► transform ─► validate ─► queue (bounded, lane per partition)
//!   ...       │                      │                │
//! source ─► intake                   └─► dead letters └─► worker ─► limiter ─► sink
//!                                                          ▲   │
//!                                                          └───┘ retry with backoff
//! ```
//!
//! - **Backpressure**: intake reserves a queue place before pulling from
//!   its source, so a full queue stops the sources; memory stays bounded.
//! - **Ordering**: records of one (source, partition) are sent one at a
//!   time, in sequence, across retries ([`Ordering::Partition`]).
//! - **Rate limits**: a client-side sliding window of *successful* calls
//!   ([`RateLimit`]), known or learned from refusals, keeps the downstream at
//!   its ceiling without hammering it.
//! - **Nothing lost**: every ingested record ends delivered, dead-lettered
//!   with a reason, or handed back at stop; [`Report::is_conserved`] checks.
//! - **Metrics**: [`ProcessorHandle::metrics`] reads per-task atomic
//!   counters at any moment.

mod clock;
mod config;
mod dead_letter;
mod intake;
mod limiter;
mod metrics;
mod places;
mod processor;
mod queue;
mod retry;
mod shared;
mod sink;
mod transform;
mod worker;

pub use clock::EpochClock;
pub use config::{ConfigError, Ordering, ProcessorConfig, RateLimit};
pub use dead_letter::{
    DeadLetter, DeadLetterKind, DeadLetterQueue, DeadLetterReason, DeadLetterSink,
};
pub use metrics::{LatencySummary, MetricsSnapshot};
pub use processor::{ProcessorHandle, Report, StreamProcessor};
pub use retry::{MIN_REFUSAL_BACKOFF, RetryPolicy};
pub use shared::{HandBackReason, HandedBack};
pub use sink::{Sink, SinkError};
pub use transform::{StandardTransform, Transform};
