//! sluice's pipeline profiles: what a pipeline does to each record
//! between its source and its sink. Each profile is a
//! [`Transform`](sluice_processor::Transform) of the processor core.
//!
//! - [`seed`]: the original test's domain. [`StreamData`](sluice_models::StreamData)
//!   in, the standard transform, derive validation,
//!   [`ProcessedRecord`](sluice_models::ProcessedRecord) out; streams are
//!   the four source names.
//! - [`json`]: any JSON object, identity and priority from configured
//!   fields (or from the source's position), validated against a JSON
//!   Schema when one is given, and sent unchanged.

pub mod json;
pub mod seed;
