//! sluice's processor core.
//!
//! A [`StreamProcessor`] consumes several sources (any
//! `futures::Stream<Item = Incoming<In>>`) concurrently, transforms each
//! record with the pipeline's profile (a [`Transform`]), and delivers it to
//! a [`Sink`] in batches:
//!
//! ```text
//! source ─► intake ─► transform ─► queue (bounded, lane per partition)
//!   ...       │          │                │
//! source ─► intake       └─► dead letters └─► worker ─► limiter ─► sink (batch)
//!                                              ▲   │
//!                                              └───┘ retry with backoff
//! ```
//!
//! - **Open streams**: a record's identity is a [`RecordId`]: any
//!   [`StreamName`], a partition, a sequence. The core knows no source
//!   names; metrics are kept per stream by name.
//! - **Acknowledgements**: each record may carry an [`Ack`], resolved
//!   exactly once with its fate ([`Resolution`]).
//! - **Backpressure**: intake reserves a queue place before pulling from
//!   its source, so a full queue stops the sources; memory stays bounded.
//! - **Ordering**: records of one (stream, partition) are sent in
//!   sequence, across batches and retries ([`DeliveryOrder::Partition`]).
//! - **Rate limits**: a client-side sliding window of *successes*
//!   ([`RateLimit`], [`Quota`]) of any length, known or learned from
//!   refusals, counting calls or records; and a [`SharedLimit`] that
//!   several processes respect together.
//! - **Nothing lost**: every ingested record ends delivered, dead-lettered
//!   with a reason, or handed back; [`Report::is_conserved`] checks. User
//!   code that panics or hangs is caught, bounded and named in the report.
//! - **Fencing**: a record read under a lease another process may take
//!   over ([`Fence`], on its [`Ack`]) is sent only while the lease holds,
//!   checked before each call.
//! - **Metrics**: [`ProcessorHandle::metrics`] reads per-task counters at
//!   any moment.

mod ack;
mod answer;
mod clock;
mod config;
mod connector;
mod dead_letter;
mod fault;
mod fence;
mod health;
mod intake;
mod key;
mod limit;
mod metrics;
mod places;
mod processor;
mod progress;
mod queue;
mod raw;
mod redact;
mod relay;
mod retry;
mod shared;
mod sink;
mod stream;
mod transform;
mod watchdog;
mod watermark;
mod worker;

pub use ack::{Ack, Acknowledge, Incoming, Resolution};
pub use answer::note_call_status;
pub use clock::EpochClock;
pub use config::{
    BatchConfig, ConfigError, CountedFrom, DeliveryOrder, LimitUnit, MAX_IN_FLIGHT,
    ProcessorConfig, Quota, RateLimit,
};
pub use connector::{
    BuiltSource, ConnectorError, Finish, Finished, NothingToFinish, RawStream, SavedCheckpoint,
    SettingError, SinkConnector, SinkPolicy, SourceConnector, SourceContext,
};
pub use dead_letter::{
    DeadLetter, DeadLetterKind, DeadLetterQueue, DeadLetterReason, DeadLetterSink,
};
pub use fault::{FaultyTask, TaskFailure};
pub use fence::{Fence, FenceToken};
pub use health::Halt;
pub use key::RecordKey;
pub use limit::{
    MAX_QUOTA_WINDOW, MIN_QUOTA_WINDOW, RateLimitParseError, Reservation, SharedLimit,
    SharedLimitError, UNAVAILABLE_RETRY, WindowStart,
};
pub use metrics::{
    CallCount, CallOutcome, DeadLetterCount, LATENCY_BUCKETS_MS, LatencyHistogram, LatencySummary,
    LimitWindow, MetricsSnapshot, StreamStats,
};
pub use processor::{
    AbortHandle, MetricsReader, ProcessorHandle, Report, StreamProcessor, UNIDENTIFIED_STREAM,
};
pub use progress::{InputGauge, InputProgress, InputSnapshot};
pub use raw::{Origin, RawRecord};
pub use redact::redact_userinfo;
pub use relay::{AckRelay, Outcome};
pub use retry::{MIN_REFUSAL_BACKOFF, RetryPolicy};
pub use shared::{HandBackReason, HandedBack, MAX_FAILURES_KEPT};
pub use sink::{Envelope, SendError, Sink, SinkError};
pub use stream::{
    MAX_STREAM_NAME_LEN, MAX_STREAMS, PartitionId, RecordId, StreamName, StreamNameError,
};
pub use transform::{Context, Rejected, Transform, Transformed};
pub use watermark::{Resolutions, Watermark, WatermarkTracker};
