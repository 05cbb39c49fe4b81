//! sluice's pipeline: one configuration of a pipeline (its inputs and
//! source, its profile, its sink, its limits, checkpoints, dead letters
//! and metrics), read from a file, the environment and flags, and built
//! into a running pipeline from connectors that describe themselves.
//!
//! - [`PipelineSettings`]: the pipeline's own settings, and the
//!   connectors' sections (`[files]`, `[nats]`, `[http]`).
//! - [`ConfigLayers`]: the settings from a TOML file, `SLUICE_*`
//!   variables and flags, in that order of precedence ([`from_toml`] for
//!   a text alone); [`effective_config`] shows the result, secrets masked.
//! - [`Connectors`]: the sources and sinks a pipeline can be built with,
//!   each registered by one line; [`Connectors::builtin`] has `files`,
//!   `nats` and `http`.
//! - [`Pipeline`]: [`build`](Pipeline::build) checks every setting and
//!   opens everything; [`run`](Pipeline::run) delivers until the inputs
//!   end or a stop, finishes the source and returns a [`RunSummary`].
//!
//! ```text
//! flags ─┐
//! SLUICE_* ├─► ConfigLayers ─► PipelineSettings ─► Pipeline::build(&Connectors)
//! file ──┘                                              │ source (by name or input scheme)
//!                                                       │ profile ─► processor ─► sink
//!                                                       ▼
//!                                   Pipeline::run ─► RunSummary (+ the source's finish)
//! ```

mod check;
mod connectors;
mod dead_letters;
mod error;
mod load;
mod ordering;
mod pipeline;
mod settings;
mod show;
mod summary;

pub use check::{Checked, check};
pub use connectors::{ConnectorSettings, Connectors, PipelineSink};
pub use dead_letters::{
    CHECKPOINT_SUFFIX, DEFAULT_FILE, DEFAULT_MAX_DEAD_LETTERS, DISCARD, DeadLetterTarget, Discard,
    MaxDeadLetters,
};
pub use error::PipelineError;
pub use load::{ConfigLayers, ENV_PREFIX, TOP_LEVEL_KEYS, from_toml};
pub use pipeline::{Hooks, Pipeline};
pub use settings::{
    DEFAULT_BATCH_MAX, DEFAULT_CONCURRENCY, DEFAULT_DRAIN_DEADLINE, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE_CAPACITY, Ordering, PipelineSettings, ProfileKind,
};
pub use show::effective_config;
pub use summary::RunSummary;
