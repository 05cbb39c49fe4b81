//! The rate limits a call passes: this process's own sliding window of
//! successes, and a window shared with other processes.
//!
//! - `window`: the local limiter ([`RateLimiter`]) and the slots one call
//!   takes of it (`WindowPermit`).
//! - `shared`: the [`SharedLimit`] trait a store implements, and how a
//!   worker waits on it.

pub(crate) mod shared;
mod window;

pub use shared::{Reservation, SharedLimit, SharedLimitError, UNAVAILABLE_RETRY, WindowStart};
pub(crate) use window::{RateLimiter, later};
