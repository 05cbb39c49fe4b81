//! sluice's file connectors: files (and stdin) in, dead letters out, with
//! checkpoints that only ever pass what is done.
//!
//! - [`LineSource`]: a file's lines as a pull-based stream of
//!   [`Incoming`](sluice_processor::Incoming)`<`[`Line`]`>`, each carrying an
//!   acknowledgement; or stdin's, without. Lines longer than a maximum are
//!   yielded cut and flagged, never held whole.
//! - [`Progress`]: which lines of a file are in flight, and the
//!   *watermark*: the offset below which every line is delivered,
//!   dead-lettered or blank. A line handed back holds it.
//! - [`Checkpoint`] and [`Checkpointer`]: the watermark saved atomically as
//!   JSON with a fingerprint of the file's start, every interval and at
//!   the end; [`LineSource::resume`] reads on from it, or fails with a
//!   typed error when the file is not the one checkpointed.
//! - [`NdjsonDeadLetters`]: a dead-letter outlet appending one JSON object
//!   per letter to a file, synced before the letter counts as kept.
//! - [`JsonLines`] and `From<Line> for JsonInput`: lines for the `json`
//!   profile.
//!
//! A runner wires them so:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use sluice_files::{Checkpointer, JsonLines, LineSource, NdjsonDeadLetters, SourceOptions};
//! use sluice_processor::{Envelope, ProcessorConfig, SendError, Sink, StreamProcessor};
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
//! // From the checkpoint if there is one (verified against the file).
//! let source = LineSource::resume(&input, &checkpoint, SourceOptions::default()).await?;
//! let progress = source.progress().cloned().expect("a file has progress");
//! let checkpointer = Checkpointer::start(&checkpoint, progress, Duration::from_secs(1));
//! let outlet = NdjsonDeadLetters::open(dir.path().join("orders.dead.ndjson")).await?;
//!
//! let transform = JsonLines::new(JsonProfile::new(Default::default())?);
//! let processor = StreamProcessor::new(transform, Accept, ProcessorConfig::default())?
//!     .with_dead_letters(outlet);
//! let report = processor.start([source]).finish().await; // or .stop() on a signal
//! let saved = checkpointer.finish().await?; // the final watermark
//!
//! assert_eq!(report.metrics.delivered, 2);
//! assert_eq!(report.metrics.dead_lettered, 1);
//! assert_eq!(saved.offset, std::fs::metadata(&input)?.len());
//! assert_eq!(saved.lines, 4);
//! # Ok(()) }
//! ```

mod checkpoint;
mod checkpointer;
mod dead_letters;
mod json;
mod line;
mod progress;
mod source;

pub use checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointError, FINGERPRINT_BYTES};
pub use checkpointer::{Checkpointer, DEFAULT_CHECKPOINT_INTERVAL, MIN_CHECKPOINT_INTERVAL};
pub use dead_letters::{DeadLetterFileError, NdjsonDeadLetters};
pub use json::{JsonLines, json_input};
pub use line::{DEFAULT_MAX_LINE_BYTES, Line};
pub use progress::{LineTicket, Position, Progress, Resolutions, SourceEnd};
pub use source::{DEFAULT_BUFFER_BYTES, LineSource, STDIN_STREAM, SourceError, SourceOptions};
