//! sluice's data vocabulary: what a source emits ([`StreamData`]), what is
//! sent downstream ([`ProcessedRecord`], validated by derive), and what the
//! pipeline reports ([`PipelineMetrics`]).
//!
//! This crate has no async runtime and depends on no other sluice crate, so
//! it can be used alone, e.g. to validate records at another service.
//!
//! ```
//! use sluice_models::{ModelError, ProcessedRecord};
//!
//! let json = r#"{"source": "", "timestamp": 5.0, "priority": 2,
//!     "processed_at": 4.0, "transformed_data": {"k": 1}, "processing_time_ms": 1.0}"#;
//! match ProcessedRecord::parse_json(json) {
//!     Err(error @ ModelError::Invalid { .. }) => {
//!         assert_eq!(error.fields(), ["source"]);
//!     }
//!     other => panic!("expected a validation error, got {other:?}"),
//! }
//! ```

mod error;
mod metrics;
mod priority;
mod record;
mod source;
mod stream_data;

pub use error::{ModelError, SCHEMA_FIELD, Violation};
pub use metrics::{PipelineMetrics, SourceStats};
pub use priority::{Priority, PriorityOutOfRange};
pub use record::{MAX_PROCESSING_TIME_MS, ProcessedRecord};
pub use source::{DataSource, UnknownSource};
pub use stream_data::{JsonObject, PartitionKey, RecordKey, StreamData};
