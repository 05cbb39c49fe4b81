//! The rate limits a call passes: this process's own sliding window of
//! successes, and a window shared with other processes.
//!
//! A call is admitted by the local limiter first (which paces this
//! process), then reserves its units of the shared window ([`admit()`]); it
//! holds both while it is sent, and its answer settles them
//! ([`Admission::settle`]): delivered units stay in the windows until they
//! pass, the rest come back at once, and a refusal lowers or pauses the
//! local limit.
//!
//! - `window`: the local limiter ([`RateLimiter`]) and the slots one call
//!   takes of it ([`WindowPermit`]).
//! - `shared`: the [`SharedLimit`] trait a store implements, and its types.
//! - `admit`: waiting for both, as long as it takes, until a stop.
//! - `settle`: what a call's answer does to what it took.
//! - `text`: limits as users write them (`20/s`, `auto`, `none`).

mod admit;
mod settle;
mod shared;
mod text;
mod window;

pub(crate) use admit::{Admission, Stopped, admit};
pub(crate) use settle::Refusal;
pub use shared::{Reservation, SharedLimit, SharedLimitError, UNAVAILABLE_RETRY, WindowStart};
pub use text::{MAX_QUOTA_WINDOW, MIN_QUOTA_WINDOW, RateLimitParseError};
pub(crate) use window::{RateLimiter, WindowPermit, later};
