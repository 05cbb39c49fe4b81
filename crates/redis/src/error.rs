//! Why a shared limit could not be set up.

use crate::url::UrlError;

/// Why [`RedisLimit::connect`](crate::RedisLimit::connect) failed.
///
/// Once connected, a [`RedisLimit`](crate::RedisLimit) reports trouble as
/// [`SharedLimitError::Unavailable`](sluice_processor::SharedLimitError)
/// instead, and reconnects by itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisLimitError {
    /// The URL is not `redis://HOST:PORT/NAME`.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The quota or the margin cannot make a window.
    #[error("the shared limit's window {0}")]
    Window(&'static str),
    /// Redis could not be reached, or did not answer in time.
    #[error("cannot reach Redis at {address}: {reason}")]
    Connect {
        /// `HOST:PORT` (never the password).
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// Another process shares the window with another quota: together
    /// they would exceed the API's.
    #[error(
        "the shared limit `{name}` is in use with the quota {stored}, and this process's --rate-limit is {ours}: give every process sharing it the same --rate-limit, or use another name"
    )]
    OtherQuota {
        /// The window's name.
        name: String,
        /// The quota stored by the processes using it.
        stored: String,
        /// This process's quota.
        ours: String,
    },
    /// The window's key holds something else than a window.
    #[error("the Redis key {key:?} holds a {kind}, not a shared window: choose another name")]
    KeyInUse {
        /// The key.
        key: String,
        /// Its Redis type.
        kind: String,
    },
}
