//! Fencing: a source's proof, checked before each call, that it may still
//! send a record.
//!
//! A source that shares its input with other processes (partitions held
//! under leases) gives each record's [`Ack`](crate::Ack) the [`Fence`] of
//! the lease it was read under. The lease is valid until a deadline on
//! this process's monotonic clock (tokio's, so tests can pause it), which
//! the source moves forward each time the lease's holder confirms a
//! renewal. Before every call, a worker checks the fence of each record:
//! a record whose fence has lapsed is not sent but handed back
//! ([`HandBackReason::LeaseEnded`](crate::HandBackReason::LeaseEnded)), so
//! a process that was paused past its lease sends nothing of a partition
//! another process may have taken. The call carries the [`FenceToken`] of
//! each record sent ([`Envelope::fence`](crate::Envelope::fence)), for a
//! downstream that fences stale writers itself.
//!
//! A fence lapses for good: once its deadline has passed (or it was
//! revoked), renewing it fails, and the source must take the lease again
//! under a new fence. So records read under a lapsed lease are never sent,
//! even if the same process holds the partition again later.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

/// The lease under which a record was read, shared by every record read
/// under it and by the source that renews it. Cloning shares it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
/// use sluice_processor::Fence;
/// use tokio::time::Instant;
///
/// let fence = Fence::new("7", 41, Instant::now() + Duration::from_secs(2));
/// assert_eq!(fence.check().map(|token| token.token), Some(41));
/// // Renewed in time: valid for longer, under the new token.
/// assert!(fence.renew(45, Instant::now() + Duration::from_secs(3)));
/// tokio::time::sleep(Duration::from_secs(3)).await;
/// // Lapsed: for good.
/// assert_eq!(fence.check(), None);
/// assert!(!fence.renew(46, Instant::now() + Duration::from_secs(3)));
/// # }
/// ```
#[derive(Clone)]
pub struct Fence(Arc<Inner>);

struct Inner {
    name: Arc<str>,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    token: u64,
    valid_until: Instant,
    lapsed: bool,
}

impl State {
    /// Whether the fence has lapsed at `now`; remembers it if so.
    fn lapse_if_due(&mut self, now: Instant) -> bool {
        if now >= self.valid_until {
            self.lapsed = true;
        }
        self.lapsed
    }
}

/// What a call carries of a record's fence: the lease's name and its
/// token, which is higher for every new holder (a JetStream lease's is the
/// revision of its holder's claim), so that a downstream can refuse a
/// token lower than one it has seen for the same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FenceToken {
    /// What the lease is of: for a JetStream source, the partition.
    pub name: Arc<str>,
    /// The lease's fencing token: for a JetStream source, the revision of
    /// the lease's key.
    pub token: u64,
}

impl fmt::Display for FenceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.token)
    }
}

impl Fence {
    /// The fence of a lease on `name` with fencing token `token`, held
    /// until `valid_until`.
    pub fn new(name: impl Into<Arc<str>>, token: u64, valid_until: Instant) -> Fence {
        Fence(Arc::new(Inner {
            name: name.into(),
            state: Mutex::new(State {
                token,
                valid_until,
                lapsed: false,
            }),
        }))
    }

    /// What the lease is of.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // No critical section can panic: a poisoned lock is still sound.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a confirmed renewal: the lease now has token `token` and is
    /// held until `valid_until` (never earlier than it was). Returns
    /// `false`, changing nothing, when the fence has already lapsed: the
    /// records read under it stay fenced out, and the source must take
    /// the lease again under a new fence.
    pub fn renew(&self, token: u64, valid_until: Instant) -> bool {
        let mut state = self.state();
        if state.lapse_if_due(Instant::now()) {
            return false;
        }
        state.token = state.token.max(token);
        state.valid_until = state.valid_until.max(valid_until);
        true
    }

    /// Ends the fence now: its records are no longer sent.
    pub fn revoke(&self) {
        self.state().lapsed = true;
    }

    /// The token to send with a record, or `None` when the fence has
    /// lapsed (its deadline passed, or it was revoked).
    pub fn check(&self) -> Option<FenceToken> {
        let mut state = self.state();
        if state.lapse_if_due(Instant::now()) {
            return None;
        }
        Some(FenceToken {
            name: Arc::clone(&self.0.name),
            token: state.token,
        })
    }

    /// Whether the fence still holds now.
    pub fn holds(&self) -> bool {
        self.check().is_some()
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = *self.state();
        f.debug_struct("Fence")
            .field("name", &self.0.name)
            .field("token", &state.token)
            .field("valid_until", &state.valid_until)
            .field("lapsed", &state.lapsed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_fence_holds_until_its_deadline_and_not_at_it() {
        let fence = Fence::new("3", 10, Instant::now() + SECOND);
        tokio::time::sleep(SECOND - Duration::from_millis(1)).await;
        assert_eq!(
            fence.check(),
            Some(FenceToken {
                name: "3".into(),
                token: 10
            })
        );
        assert!(fence.holds());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(fence.check(), None);
        assert!(!fence.holds());
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_move_the_deadline_and_the_token_forward_only() {
        let fence = Fence::new("3", 10, Instant::now() + 2 * SECOND);
        // An older renewal confirmed late shortens nothing, lowers nothing.
        assert!(fence.renew(8, Instant::now() + SECOND));
        tokio::time::sleep(SECOND + SECOND / 2).await;
        assert_eq!(fence.check().map(|t| t.token), Some(10));
        assert!(fence.renew(12, Instant::now() + SECOND));
        tokio::time::sleep(SECOND - Duration::from_millis(1)).await;
        assert_eq!(fence.check().map(|t| t.token), Some(12));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lapsed_fence_cannot_be_renewed() {
        let fence = Fence::new("3", 10, Instant::now() + SECOND);
        tokio::time::sleep(2 * SECOND).await;
        // Not even checked since it lapsed: renewing finds it out.
        assert!(!fence.renew(11, Instant::now() + 10 * SECOND));
        assert_eq!(fence.check(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_fence_is_shared_by_its_clones_and_stays_revoked() {
        let fence = Fence::new("a", 1, Instant::now() + SECOND);
        let held_by_a_record = fence.clone();
        fence.revoke();
        assert!(!held_by_a_record.holds());
        assert!(!fence.renew(2, Instant::now() + SECOND));
        assert_eq!(fence.name(), "a");
        assert!(format!("{fence:?}").contains("lapsed: true"));
    }

    #[test]
    fn a_token_reads_as_name_equals_token() {
        let token = FenceToken {
            name: "eu-1".into(),
            token: 42,
        };
        assert_eq!(token.to_string(), "eu-1=42");
    }
}
