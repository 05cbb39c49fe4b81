//! [`RedisLimit`]: the [`SharedLimit`] kept in Redis.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rand::rngs::{ChaCha8Rng, SysRng};
use rand::{Rng, SeedableRng};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use sluice_processor::{Quota, Reservation, SharedLimit, SharedLimitError, WindowStart};

use crate::error::RedisLimitError;
use crate::scripts::{self, Reserved, Scripts};
use crate::url::LimitUrl;

/// How long connecting to Redis may take, at start and on each reconnect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one operation (reserve, settle, count, remove) may take,
/// waiting for a reconnection included, before it is
/// [`SharedLimitError::Unavailable`].
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest `window + margin` accepted: a year and a day.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3_600);

/// How long the quota of a window stays stored after its last
/// reservation (beyond the window itself): a run started within it must
/// give the same quota.
pub const QUOTA_KEPT: Duration = Duration::from_secs(60);

/// What the key of a window's quota adds to the window's key.
pub const QUOTA_KEY_SUFFIX: &str = ":quota";

/// How often a reserve draws a new id when the one it drew is already held
/// in the window, before it gives up (it never has to in practice).
const ID_DRAWS: usize = 4;

/// A window of successes shared through Redis by every process that uses
/// the same server, database and window name.
///
/// Cheap to share behind an `Arc`; all its methods take `&self`. See the
/// [crate docs](crate) for the data model and what it guarantees.
pub struct RedisLimit {
    url: LimitUrl,
    key: String,
    /// The quota's key, its text (`100/1s`) and how long it is kept, ms.
    quota_key: String,
    quota: String,
    quota_kept_ms: u64,
    connection: ConnectionManager,
    scripts: Scripts,
    limit: u64,
    ttl_micros: u64,
    /// The window alone: a window counted from an answer needs no margin,
    /// as the API counted the call before it answered.
    window_micros: u64,
    ids: Mutex<ChaCha8Rng>,
}

impl std::fmt::Debug for RedisLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimit")
            .field("url", &self.url)
            .field("limit", &self.limit)
            .field("ttl_micros", &self.ttl_micros)
            .finish_non_exhaustive()
    }
}

impl RedisLimit {
    /// Connects to the window at `url` (`redis://HOST:PORT/NAME`, see
    /// [`LimitUrl`]) that admits `quota.limit` successes per
    /// `quota.window`; each slot stays `quota.window + margin` in it.
    ///
    /// Every process sharing the window must give the same quota and
    /// margin: each one checks the window against its own.
    ///
    /// # Errors
    /// [`RedisLimitError::Url`] for a bad URL, [`RedisLimitError::Window`]
    /// for a zero window or one longer than [`MAX_WINDOW`],
    /// [`RedisLimitError::Connect`] when Redis does not answer within
    /// [`CONNECT_TIMEOUT`] plus [`COMMAND_TIMEOUT`], and
    /// [`RedisLimitError::KeyInUse`] when the window's key holds something
    /// else.
    pub async fn connect(
        url: &str,
        quota: Quota,
        margin: Duration,
    ) -> Result<RedisLimit, RedisLimitError> {
        let url = LimitUrl::parse(url)?;
        RedisLimit::connect_to(url, quota, margin).await
    }

    /// [`RedisLimit::connect`] with a URL already parsed.
    ///
    /// # Errors
    /// As [`RedisLimit::connect`], but for the URL.
    pub async fn connect_to(
        url: LimitUrl,
        quota: Quota,
        margin: Duration,
    ) -> Result<RedisLimit, RedisLimitError> {
        if quota.window.is_zero() {
            return Err(RedisLimitError::Window("must be above 0"));
        }
        let ttl = quota
            .window
            .checked_add(margin)
            .filter(|&ttl| ttl <= MAX_WINDOW)
            .ok_or(RedisLimitError::Window(
                "plus its margin must be at most a year and a day",
            ))?;
        let unreachable = |reason: String| RedisLimitError::Connect {
            address: url.address(),
            reason,
        };
        let client = Client::open(url.connection_url()).map_err(|e| unreachable(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250));
        let connecting = ConnectionManager::new_with_config(client, config);
        let connection = tokio::time::timeout(CONNECT_TIMEOUT * 2, connecting)
            .await
            .map_err(|_| unreachable(format!("no connection within {:?}", CONNECT_TIMEOUT * 2)))?
            .map_err(|e| unreachable(e.to_string()))?;
        let key = url.key();
        let quota_kept = quota
            .window
            .saturating_add(margin)
            .saturating_add(QUOTA_KEPT);
        let limit = RedisLimit {
            quota_key: format!("{key}{QUOTA_KEY_SUFFIX}"),
            quota: quota.to_string(),
            quota_kept_ms: u64::try_from(quota_kept.as_millis()).unwrap_or(u64::MAX),
            key,
            connection,
            scripts: Scripts::new(),
            limit: u64::from(quota.limit.get()),
            ttl_micros: u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX).max(1),
            window_micros: u64::try_from(quota.window.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
            ids: Mutex::new(seeded_rng()),
            url,
        };
        limit.check_key().await?;
        limit.claim_quota().await?;
        Ok(limit)
    }

    /// The window's URL (its `Display` hides the password).
    pub fn url(&self) -> &LimitUrl {
        &self.url
    }

    /// The Redis key that holds the window.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How many slots are in the window now, by the server's clock:
    /// reserved or kept, by every process.
    ///
    /// # Errors
    /// [`SharedLimitError::Unavailable`] when Redis cannot be asked.
    pub async fn held(&self) -> Result<usize, SharedLimitError> {
        let mut connection = self.connection.clone();
        let invocation = self.scripts.held.key(&self.key);
        let held: u64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(usize::try_from(held).unwrap_or(usize::MAX))
    }

    /// Deletes the window's key and its quota, forgetting every slot in it, of every
    /// process (for tests and for tidying up; an idle window deletes
    /// itself one window and margin after its last use).
    ///
    /// # Errors
    /// [`SharedLimitError::Unavailable`] when Redis cannot be asked.
    pub async fn remove(&self) -> Result<(), SharedLimitError> {
        let mut connection = self.connection.clone();
        let mut deleting = redis::cmd("DEL");
        deleting.arg(&self.key).arg(&self.quota_key);
        self.bounded(deleting.query_async::<i64>(&mut connection))
            .await
            .map(drop)
    }

    /// Stores this process's quota as the window's, unless a process that
    /// used the window within [`QUOTA_KEPT`] stored another: then fails
    /// naming both, since two quotas on one window would exceed the API's.
    async fn claim_quota(&self) -> Result<(), RedisLimitError> {
        let mut connection = self.connection.clone();
        let claim = redis::Script::new(scripts::CLAIM);
        let mut claiming = claim.key(&self.quota_key);
        claiming.arg(&self.quota).arg(self.quota_kept_ms);
        let stored: String = self
            .bounded(claiming.invoke_async(&mut connection))
            .await
            .map_err(|error| RedisLimitError::Connect {
                address: self.url.address(),
                reason: error.to_string(),
            })?;
        if stored == self.quota {
            Ok(())
        } else {
            Err(RedisLimitError::OtherQuota {
                name: self.url.name().to_owned(),
                stored,
                ours: self.quota.clone(),
            })
        }
    }

    /// Fails when the window's key already holds something else than a
    /// sorted set; proves the server answers.
    async fn check_key(&self) -> Result<(), RedisLimitError> {
        let mut connection = self.connection.clone();
        let mut asking = redis::cmd("TYPE");
        asking.arg(&self.key);
        let kind = self
            .bounded(asking.query_async::<String>(&mut connection))
            .await
            .map_err(|error| RedisLimitError::Connect {
                address: self.url.address(),
                reason: match error {
                    SharedLimitError::Unavailable(reason) => reason,
                    other => other.to_string(),
                },
            })?;
        match kind.as_str() {
            "zset" | "none" => Ok(()),
            _ => Err(RedisLimitError::KeyInUse {
                key: self.key.clone(),
                kind,
            }),
        }
    }

    /// A new reservation id.
    fn draw_id(&self) -> u64 {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64()
    }

    /// Runs one Redis operation within [`COMMAND_TIMEOUT`]; every failure
    /// is [`SharedLimitError::Unavailable`], naming the server.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, SharedLimitError> {
        match tokio::time::timeout(COMMAND_TIMEOUT, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(SharedLimitError::Unavailable(format!(
                "Redis at {}: {error}",
                self.url.address()
            ))),
            Err(_) => Err(SharedLimitError::Unavailable(format!(
                "Redis at {}: no answer within {COMMAND_TIMEOUT:?}",
                self.url.address()
            ))),
        }
    }
}

#[async_trait]
impl SharedLimit for RedisLimit {
    /// Reserves `units` slots: admitted when the window holds at most
    /// `limit - units` slots, or when it is empty (so that a call of more
    /// units than the limit still goes, alone).
    async fn reserve(&self, units: usize) -> Result<Reservation, SharedLimitError> {
        if units == 0 {
            return Ok(Reservation {
                id: self.draw_id(),
                units,
            });
        }
        for _ in 0..ID_DRAWS {
            let id = self.draw_id();
            let mut connection = self.connection.clone();
            let mut invocation = self.scripts.reserve.key(&self.key);
            invocation
                .key(&self.quota_key)
                .arg(id)
                .arg(units as u64)
                .arg(self.limit)
                .arg(self.ttl_micros)
                .arg(scripts::chunk())
                .arg(&self.quota)
                .arg(self.quota_kept_ms);
            let reply: (i64, i64) = self
                .bounded(invocation.invoke_async(&mut connection))
                .await?;
            match Reserved::from_reply(reply) {
                Some(Reserved::Yes) => return Ok(Reservation { id, units }),
                Some(Reserved::Full(micros)) => {
                    return Err(SharedLimitError::Full {
                        retry_in: Duration::from_micros(micros),
                    });
                }
                Some(Reserved::IdTaken) => {}
                Some(Reserved::OtherQuota) => {
                    return Err(SharedLimitError::Unavailable(format!(
                        "the processes sharing the window `{}` now use another quota than this one's {}: stop the ones whose --rate-limit differs",
                        self.url.name(),
                        self.quota
                    )));
                }
                None => {
                    return Err(SharedLimitError::Unavailable(format!(
                        "Redis at {}: unexpected reply {reply:?} to reserve",
                        self.url.address()
                    )));
                }
            }
        }
        Err(SharedLimitError::Unavailable(format!(
            "Redis at {}: {ID_DRAWS} reservation ids in a row were already taken",
            self.url.address()
        )))
    }

    /// Keeps the first `kept` slots (at most `reservation.units`) until a
    /// window from now, by the server's clock (counted from the answer), or
    /// until the earlier of that and the window and margin from the
    /// reservation (counted from the reservation); gives the others back at
    /// once.
    async fn settle(
        &self,
        reservation: Reservation,
        kept: usize,
        from: WindowStart,
    ) -> Result<(), SharedLimitError> {
        if reservation.units == 0 {
            return Ok(());
        }
        let kept = kept.min(reservation.units);
        let mut connection = self.connection.clone();
        let mut invocation = self.scripts.settle.key(&self.key);
        invocation
            .arg(reservation.id)
            .arg(reservation.units as u64)
            .arg(kept as u64)
            .arg(self.window_micros)
            .arg(scripts::chunk())
            .arg(u8::from(from == WindowStart::Answer));
        let _kept: i64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(())
    }
}

/// The generator of reservation ids: ChaCha8 seeded from the operating
/// system; should that fail, from std's per-process random hash keys, the
/// time and the process id.
fn seeded_rng() -> ChaCha8Rng {
    ChaCha8Rng::try_from_rng(&mut SysRng).unwrap_or_else(|_| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or_default();
        let hashed = RandomState::new().hash_one((nanos, std::process::id()));
        ChaCha8Rng::seed_from_u64(hashed)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::num::NonZeroU32;

    use super::*;

    /// Two processes that drew the same id: the second reservation is not
    /// merged into the first, it draws another id.
    #[tokio::test]
    async fn an_id_already_in_the_window_is_drawn_again() {
        let name = format!("test-clash-{}", std::process::id());
        let url = format!("redis://127.0.0.1:6379/{name}");
        let quota = Quota {
            limit: NonZeroU32::new(5).unwrap(),
            window: Duration::from_secs(10),
        };
        let limit = match RedisLimit::connect(&url, quota, Duration::ZERO).await {
            Ok(limit) => limit,
            Err(error) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: Redis at 127.0.0.1:6379 is unreachable: {error}");
                return;
            }
            Err(error) => panic!("Redis at 127.0.0.1:6379 is unreachable: {error}"),
        };
        *limit.ids.lock().unwrap() = ChaCha8Rng::seed_from_u64(7);
        let clash = ChaCha8Rng::seed_from_u64(7).next_u64();
        let mut connection = limit.connection.clone();
        redis::cmd("ZADD")
            .arg(&limit.key)
            .arg(f64::MAX)
            .arg(format!("{clash}:0"))
            .query_async::<i64>(&mut connection)
            .await
            .unwrap();

        let reservation = limit.reserve(2).await.unwrap();
        assert_ne!(reservation.id, clash);
        assert_eq!(limit.held().await.unwrap(), 3);
        limit
            .settle(reservation, 0, WindowStart::Answer)
            .await
            .unwrap();
        assert_eq!(
            limit.held().await.unwrap(),
            1,
            "the other's slot is untouched"
        );
        limit.remove().await.unwrap();
    }
}
