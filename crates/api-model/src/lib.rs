//! One model of the original test's downstream API, shared by
//! `sluice-sim` (the API as a `Sink`, on tokio's paused clock) and
//! `sluice-mock-api` (the same API over real HTTP), so that both behave
//! and count alike:
//!
//! - **The limit** ([`Quota`]): a sliding window of *successes*. A call
//!   reserves its slot at admission and gives it back at once if it fails
//!   or is cancelled; a success keeps it for one window from admission. A
//!   call that finds the window full is refused at once ([`Refused`], with
//!   when the oldest slot frees). So the limit holds under any concurrency
//!   and for any window length.
//! - **The draws** ([`Behaviour`]): each admitted call's latency (uniform
//!   in `latency_min..=latency_max`, not drawn when they are equal) and
//!   fate (failure with probability `failure_rate`), from one RNG seeded
//!   with `seed`, in admission order.
//! - **The ledger's counting** ([`Tally`]): calls, successes, failures,
//!   refusals, cancellations, records delivered, duplicates and order
//!   violations per partition ([`DeliverySet`]), the first and last
//!   success, success times and the busiest window
//!   ([`max_in_any_window`]), and [`Counts::failures_per_call`].
//!
//! [`ApiModel`] puts these behind one lock. It reads no clock and waits
//! for nothing: the caller passes each admission's time as a duration
//! since the API's start, read from its own clock (tokio's, paused in the
//! simulator, real in the mock API), and waits an admitted [`Call`]'s
//! latency on that clock before it completes the call. What the callers
//! keep apart is theirs: the simulator's `Sink` and its ledger in the
//! simulator's types; the mock API's HTTP, body parsing, JSON ledger and
//! `Idempotency-Key` counts (an annex of the model, updated under its
//! lock).
//!
//! A crate of its own because neither user can hold it for the other:
//! `sluice-sim` depends on the processor and the models, and
//! `sluice-mock-api` on neither (it stays light, for a server that only
//! plays the API), while the mock API's axum and tokio networking have no
//! place in the simulator. This one depends on no crate of ours and on no
//! async runtime: `rand` for the draws, `roaring` and `indexmap` for the
//! delivery set, `humantime` for quotas, `thiserror`.
//!
//! ```
//! use std::time::Duration;
//!
//! use sluice_api_model::{ApiModel, Behaviour, Quota, Refused, Retention};
//!
//! let behaviour = Behaviour {
//!     rate_limit: Some(Quota::per_second(1)),
//!     failure_rate: 0.0,
//!     ..Behaviour::default()
//! };
//! let api: ApiModel<&str> = ApiModel::new(behaviour, Retention::EVERYTHING, ())?;
//! let call = api.admit(Duration::ZERO).expect("an empty window admits");
//! // ... wait `call.latency()` on your clock ...
//! call.complete([Some(("orders", 1))], |_| {}).expect("no failures drawn");
//! let refused = api.admit(Duration::from_millis(400)).map(drop);
//! let retry_after = Duration::from_millis(600);
//! assert_eq!(refused, Err(Refused { retry_after }));
//! assert_eq!(api.read(|tally, _| tally.counts().successes), 1);
//! # Ok::<(), sluice_api_model::ConfigError>(())
//! ```

mod behaviour;
mod deliveries;
mod model;
mod quota;
mod tally;
mod window;

pub use behaviour::{Behaviour, ConfigError};
pub use deliveries::DeliverySet;
pub use model::{ApiModel, Call, CallFailed, Refused};
pub use quota::Quota;
pub use tally::{Counts, Keep, Retention, Tally, failures_per_call, max_in_any_window};
