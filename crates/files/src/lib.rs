//! sluice's file connectors: files (and stdin) in, dead letters out, with
//! checkpoints that only ever pass what is done.
//!
//! - [`FilesSettings`]: the `files` source connector (section `[files]`
//!   of a configuration, the same as flags): expands the inputs a user
//!   named (paths, globs, directories, `-` for stdin) to files, opens each
//!   with its checkpoint, one stream each, and saves the checkpoints when
//!   the run finishes.
//! - [`LineSource`]: a file's lines as a pull-based stream of
//!   [`Incoming`](sluice_processor::Incoming)`<`[`RawRecord`](sluice_processor::RawRecord)`>`,
//!   each carrying an acknowledgement; or stdin's, without. gzip and zstd
//!   files are decompressed as they are read. Lines longer than a maximum
//!   are yielded cut, with their length, never held whole. A followed file
//!   is read as it grows and through its rotations.
//! - [`Progress`]: which lines of a path's files are in flight, and each
//!   file's *watermark* (a [`Watermark`](sluice_processor::Watermark) of
//!   [`Position`]s): the place below which every line is delivered,
//!   dead-lettered or blank. A line handed back holds it.
//! - [`Checkpoint`] and [`Checkpointer`]: the watermarks, and the lines
//!   resolved past them, saved atomically as JSON with a fingerprint of
//!   each file's first 64 KiB and its identity: at the first resolution,
//!   then at most every 200 ms while they change, and at the end;
//!   [`LineSource::resume`] locks the checkpoint ([`CheckpointLock`]),
//!   reads on from it without reading again the lines it resolved, or
//!   fails with a typed error when a file is not the one checkpointed.
//! - [`FileIdentity`]: a file's canonical path and fingerprint, stable
//!   across restarts and growth, per record through
//!   [`Progress::identity_of`].
//! - [`NdjsonDeadLetters`]: a dead-letter outlet appending one JSON object
//!   per letter to a file, synced before the letter counts as kept.
//!
//! A pipeline wires them so (the profile, from `sluice-profiles`, reads
//! the records' text):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use async_trait::async_trait;
//! use sluice_files::{FilesSettings, NdjsonDeadLetters};
//! use sluice_processor::{
//!     DeliveryOrder, Envelope, ProcessorConfig, SendError, Sink, SourceConnector,
//!     SourceContext, StreamProcessor,
//! };
//! use sluice_profiles::json::{JsonProfile, JsonRecord};
//!
//! struct Accept;
//! #[async_trait]
//! impl Sink<JsonRecord> for Accept {
//!     async fn send(&self, _: &[Envelope<JsonRecord>]) -> Result<(), SendError> { Ok(()) }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let input = dir.path().join("orders.jsonl");
//! std::fs::write(&input, "{\"amount\":1}\nnot json\n\n{\"amount\":2}\n")?;
//! let checkpoint = dir.path().join("orders.checkpoint.json");
//!
//! let outlet = NdjsonDeadLetters::open(dir.path().join("orders.dead.ndjson")).await?;
//! let profile = JsonProfile::new(Default::default())?;
//! let processor = StreamProcessor::new(profile, Accept, ProcessorConfig::default())?
//!     .with_dead_letters(outlet);
//!
//! // From the checkpoint if there is one (verified against the file).
//! let context = SourceContext {
//!     inputs: vec![input.display().to_string()],
//!     checkpoint: Some(checkpoint.clone()),
//!     queue_capacity: 1000,
//!     ordering: DeliveryOrder::Partition,
//!     progress: processor.input_progress(), // how far each file is read
//! };
//! let source = FilesSettings::default().build(&context).await?;
//! let report = processor.start(source.streams).finish().await; // or .stop() on a signal
//! let finished = source.finish.finish().await?; // saves the final watermark
//!
//! assert_eq!(report.metrics.delivered, 2);
//! assert_eq!(report.metrics.share_read(), Some(1.0));
//! assert_eq!(report.metrics.dead_lettered, 1);
//! let saved = &finished.checkpoints[0];
//! assert_eq!(saved.offset, std::fs::metadata(&input)?.len());
//! assert_eq!(saved.lines, 4);
//! # Ok(()) }
//! ```

mod checkpoint;
mod checkpointer;
mod connector;
mod dead_letters;
mod inputs;
mod line;
mod lock;
mod open;
mod progress;
mod reading;
mod resolved;
mod resume;
mod settings;
mod source;

pub use checkpoint::{
    CHECKPOINT_VERSION, Checkpoint, CheckpointError, FINGERPRINT_BYTES, FINGERPRINT_BYTES_V1,
    FileId, FileIdentity, OLDEST_CHECKPOINT_VERSION,
};
pub use checkpointer::{Checkpointer, DEFAULT_CHECKPOINT_INTERVAL, MIN_CHECKPOINT_INTERVAL};
pub use connector::FilesError;
pub use dead_letters::{DeadLetterFileError, NdjsonDeadLetters};
pub use inputs::InputError;
pub use line::DEFAULT_MAX_LINE_BYTES;
pub use lock::CheckpointLock;
pub use progress::{LineTicket, Position, Progress, SourceEnd};
pub use resolved::Span;
pub use settings::{FilesSettings, MAX_LINE_BYTES_LIMIT};
pub use sluice_processor::Resolutions;
pub use source::{
    DEFAULT_BUFFER_BYTES, DEFAULT_POLL_INTERVAL, LineSource, STDIN_ORIGIN, STDIN_STREAM,
    SourceError, SourceOptions,
};
