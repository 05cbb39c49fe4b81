//! The Lua scripts, one per operation, each run atomically by Redis with
//! the time taken from the server (`TIME`), never from a client's clock.
//!
//! The window `KEYS[1]` is a sorted set: one member `"<id>:<i>"` per slot
//! (`i` from 0 to `units - 1` for the reservation `id`), scored with the
//! server time, in microseconds since the epoch, at which the slot leaves
//! the window. A slot is in the window while `now < score`.

use redis::Script;

/// `ZADD` and `ZREM` take at most this many members per call, so that no
/// Lua `unpack` comes near its stack limit whatever the units.
const CHUNK: usize = 500;

/// Reserve: drop the expired slots, then either add `units` slots expiring
/// at `now + ttl` or say when the window will have room.
///
/// `ARGV`: reservation id (decimal u64), units (≥ 1), limit, ttl in µs.
/// Reply `{code, value}`:
/// - `{1, 0}` reserved;
/// - `{0, wait}` full: `wait` µs until enough slots leave the window by
///   themselves for `units` more (all of them when `units` exceeds the
///   limit, since such a call is admitted only into an empty window);
/// - `{2, 0}` the id is already held in this window (two processes drew
///   the same id): nothing was done, draw another one;
/// - `{3, 0}` the quota stored under `KEYS[2]` is not this process's
///   (`ARGV[6]`): nothing was done.
///
/// Otherwise `KEYS[2]` is set to `ARGV[6]` for `ARGV[7]` ms: the quota of
/// the processes sharing the window, which [`CLAIM`] checks at start.
const RESERVE: &str = r"
local key = KEYS[1]
local id = ARGV[1]
local units = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local chunk = tonumber(ARGV[5])
local stored = redis.call('GET', KEYS[2])
if stored and stored ~= ARGV[6] then
  return {3, 0}
end
redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local held = redis.call('ZCARD', key)
if held > 0 and held + units > limit then
  local leave = held
  if units <= limit then
    leave = held + units - limit
  end
  local last = redis.call('ZRANGE', key, leave - 1, leave - 1, 'WITHSCORES')
  return {0, tonumber(last[2]) - now}
end
if redis.call('ZSCORE', key, id .. ':0') then
  return {2, 0}
end
local expiry = now + ttl
local args = {}
for i = 0, units - 1 do
  args[#args + 1] = expiry
  args[#args + 1] = id .. ':' .. i
  if #args >= 2 * chunk then
    redis.call('ZADD', key, unpack(args))
    args = {}
  end
end
if #args > 0 then
  redis.call('ZADD', key, unpack(args))
end
local ttl_ms = math.ceil(ttl / 1000) + 1
if redis.call('PTTL', key) < ttl_ms then
  redis.call('PEXPIRE', key, ttl_ms)
end
return {1, 0}
";

/// Settle: the first `kept` slots of the reservation stay in the window,
/// the others leave it. Counted from the answer, the kept slots stay until
/// `now + window` (added back if they had already expired: the API counts
/// that success from its answer, however late). Counted from the
/// reservation, they keep the expiry the reservation gave them, or take
/// `now + window` where that is sooner (`ZADD XX LT`): the API counted the
/// call before it answered, so a window from the answer always covers it,
/// and a quick answer frees the slot before the reservation's margin ends.
///
/// `ARGV`: reservation id, units, kept (≤ units), window in µs, chunk
/// size, 1 to count from the answer. Reply: the number of slots kept.
const SETTLE: &str = r"
local key = KEYS[1]
local id = ARGV[1]
local units = tonumber(ARGV[2])
local kept = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local chunk = tonumber(ARGV[5])
local from_answer = tonumber(ARGV[6]) == 1
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local expiry = now + window
-- From the answer: set (or add back) the expiry. From the reservation:
-- only lower the expiry of a slot still in the window.
local function keep(members)
  if from_answer then
    redis.call('ZADD', key, unpack(members))
  else
    redis.call('ZADD', key, 'XX', 'LT', unpack(members))
  end
end
local args = {}
for i = 0, kept - 1 do
  args[#args + 1] = expiry
  args[#args + 1] = id .. ':' .. i
  if #args >= 2 * chunk then
    keep(args)
    args = {}
  end
end
if #args > 0 then
  keep(args)
end
args = {}
for i = kept, units - 1 do
  args[#args + 1] = id .. ':' .. i
  if #args >= chunk then
    redis.call('ZREM', key, unpack(args))
    args = {}
  end
end
if #args > 0 then
  redis.call('ZREM', key, unpack(args))
end
if kept > 0 then
  local ttl_ms = math.ceil(window / 1000) + 1
  if redis.call('PTTL', key) < ttl_ms then
    redis.call('PEXPIRE', key, ttl_ms)
  end
end
return kept
";

/// Claim: `KEYS[1]` (the window's quota) is set to `ARGV[1]` for
/// `ARGV[2]` ms unless it holds another quota. Reply: the quota stored.
pub(crate) const CLAIM: &str = r"
local stored = redis.call('GET', KEYS[1])
if stored and stored ~= ARGV[1] then
  return stored
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
";

/// Count the slots in the window now, without changing anything.
const HELD: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
";

/// The three scripts, hashed once; `EVALSHA` first, loaded on `NOSCRIPT`
/// (a restarted server has forgotten them).
pub(crate) struct Scripts {
    pub(crate) reserve: Script,
    pub(crate) settle: Script,
    pub(crate) held: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
            held: Script::new(HELD),
        }
    }
}

/// The `ARGV` chunk size passed to the scripts.
pub(crate) fn chunk() -> u64 {
    CHUNK as u64
}

/// What the reserve script answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// The slots are held.
    Yes,
    /// Full for this many more microseconds.
    Full(u64),
    /// The id is taken: draw another.
    IdTaken,
    /// The processes sharing the window have another quota.
    OtherQuota,
}

impl Reserved {
    /// Reads the script's `{code, value}` reply.
    pub(crate) fn from_reply((code, value): (i64, i64)) -> Option<Reserved> {
        match code {
            1 => Some(Reserved::Yes),
            0 => Some(Reserved::Full(u64::try_from(value).unwrap_or(0).max(1))),
            2 => Some(Reserved::IdTaken),
            3 => Some(Reserved::OtherQuota),
            _ => None,
        }
    }
}
