//! sluice's shared rate limit in Redis: a [`SharedLimit`] that several
//! processes respect together, so that their calls stay within one API
//! quota.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use sluice_processor::{Quota, SharedLimit, WindowStart};
//! use sluice_redis::RedisLimit;
//!
//! let quota = Quota { limit: NonZeroU32::new(100).unwrap(), window: Duration::from_secs(1) };
//! let limit = RedisLimit::connect("redis://127.0.0.1:6379/orders-api", quota, Duration::from_millis(25)).await?;
//! let reservation = limit.reserve(1).await?; // before the call
//! limit.settle(reservation, 1, WindowStart::Answer).await?; // after it: 1 success kept
//! # Ok(()) }
//! ```
//!
//! # Data model
//!
//! The window named `NAME` in `redis://HOST:PORT/NAME` (see [`LimitUrl`])
//! is the sorted set `sluice:limit:NAME`. Each slot is one member,
//! `"<reservation id>:<i>"` for `i` from 0 to the reservation's units - 1,
//! whose score is the server time, in microseconds since the epoch, at
//! which the slot leaves the window. Two Lua scripts change it, each run
//! atomically by Redis (`EVALSHA`, loaded again when a restarted server has
//! forgotten it), each reading the time from the server (`TIME`), never
//! from a client's clock, so that processes on machines whose clocks
//! disagree still share one window:
//!
//! - **reserve** removes the slots whose time has come
//!   (`ZREMRANGEBYSCORE`), counts the rest (`ZCARD`), and if `units` more fit
//!   in the limit (or the window is empty, so that a call of more units
//!   than the limit still goes, alone) adds them, leaving at
//!   `now + window + margin`; otherwise it answers
//!   [`SharedLimitError::Full`] with the time until enough slots leave by
//!   themselves (for one unit: until the earliest leaves). It also sets the
//!   key to expire with its latest slot (`PEXPIRE`), so an idle window
//!   leaves nothing behind.
//! - **settle** gives the slots that were not kept back at once (`ZREM`).
//!   Counted from the answer, it sets the kept ones to leave at
//!   `now + window`; a kept slot whose reservation had already expired is
//!   added back: the API counts a success from its answer, however late.
//!   Counted from the reservation, a kept slot leaves at
//!   `now + window` if that is sooner than the reservation's expiry: the
//!   API counted the call before it answered.
//!
//! # Reservation ids
//!
//! Each [`RedisLimit`] draws its ids from ChaCha8 seeded by the operating
//! system, so the ids of different processes are independent uniform
//! 64-bit numbers. Two reservations could only clash while both are in the
//! window at once, and reserve refuses an id that is already there (its
//! slot `:0` exists, which it does while any slot of that id does) and
//! draws another. What is left is a settlement arriving after its
//! reservation expired *and* after another reservation drew the same id
//! meanwhile: with `n` slots in the window, a chance below `n / 2^64` per
//! late settlement.
//!
//! # Guarantees
//!
//! - **The quota holds across processes**: a slot is taken atomically by
//!   the server, so no two processes can both take the last one; as long
//!   as every process reserves before it calls and settles after, no more
//!   than the limit of calls are in any window, as the server's clock
//!   measures it.
//! - **An outage stops sending**: when Redis cannot be reached or does not
//!   answer within [`COMMAND_TIMEOUT`] (waiting for a reconnection
//!   included), reserve answers [`SharedLimitError::Unavailable`] and the
//!   processor sends nothing until it can reserve again; the connection is
//!   made again in the background, so the same [`RedisLimit`] works again
//!   once Redis is back. A Redis that restarts without persistence starts
//!   from an empty window: calls in flight across the restart are not
//!   counted.
//! - **A crash leaks slots only until the window passes**: a reservation
//!   never settled (the process died, or a stop dropped the call) leaves
//!   the window `window + margin` after it was made, by itself.
//!
//! The processes sharing a window must give it the same quota and margin;
//! each checks the window against its own.
//!
//! [`SharedLimitError::Full`]: sluice_processor::SharedLimitError::Full
//! [`SharedLimitError::Unavailable`]: sluice_processor::SharedLimitError::Unavailable

mod error;
mod limit;
mod scripts;
mod url;

pub use error::RedisLimitError;
pub use limit::{
    COMMAND_TIMEOUT, CONNECT_TIMEOUT, MAX_WINDOW, QUOTA_KEPT, QUOTA_KEY_SUFFIX, RedisLimit,
};
pub use url::{DEFAULT_PORT, KEY_PREFIX, LimitUrl, MAX_NAME_LEN, UrlError};

#[doc(no_inline)]
pub use sluice_processor::SharedLimit;
