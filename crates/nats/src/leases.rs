//! Partition leases in a JetStream key-value bucket: which live process
//! owns which partition.
//!
//! The bucket keeps each entry for `lease_time` (its `max_age`), so a key
//! that is not renewed disappears by itself when its process dies:
//!
//! - `member.<id>`: a live process, put again every renewal;
//! - `handover.<partition>`: the [`Note`] of what the last holder to hand
//!   the partition over resolved, written before it released the lease;
//! - `lease.<partition>`: the owner's id, created with compare-and-set
//!   (`create` fails while the key exists) and renewed with
//!   compare-and-set on its revision (`update` fails once another process
//!   holds it).
//!
//! Each lease held has a [`Fence`] that the records read under it carry:
//! it holds until the lease's deadline *as this process sees it*, on its
//! own monotonic clock: the time it asked for the last renewal that was
//! confirmed, plus the lease time, minus [`fence_margin`]. The store
//! counts the lease from when it wrote the renewal, which is later, so the
//! fence lapses before the store lets another process take the partition.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use futures::TryStreamExt;
use sluice_processor::Fence;
use tokio::time::Instant;

use crate::config::NatsError;
use crate::tenure::Note;

const MEMBER_PREFIX: &str = "member.";
const LEASE_PREFIX: &str = "lease.";
const NOTE_PREFIX: &str = "handover.";

/// The leases of one consumer group, as one process holds them.
#[derive(Debug)]
pub(crate) struct Leases {
    store: kv::Store,
    /// This process: unique among the group's live members.
    member: String,
    lease_time: Duration,
    /// The partitions held.
    held: BTreeMap<String, Held>,
}

/// A lease held: the revision of its key, and the fence of its records.
#[derive(Debug)]
struct Held {
    revision: u64,
    /// The revision of the claim: the fence's token while this process
    /// holds the lease, lower than any later holder's.
    claimed: u64,
    fence: Fence,
    /// Being handed over: the fence is revoked, the lease still renewed
    /// until the partition is drained.
    handing_over: bool,
}

/// What a renewal found: leases that another process holds now, leases
/// whose fence lapsed before the renewal was confirmed (given up: their
/// records are no longer sent), and an error that left some leases to be
/// renewed next time.
#[derive(Debug, Default)]
pub(crate) struct Renewal {
    pub(crate) lost: Vec<String>,
    pub(crate) lapsed: Vec<String>,
    pub(crate) failure: Option<NatsError>,
}

/// How much sooner than the store a lease ends for this process: a fifth
/// of the lease time. It covers the time between a call's fence check and
/// the call reaching the API, and any difference between the rates of
/// this machine's clock and the server's.
pub(crate) fn fence_margin(lease_time: Duration) -> Duration {
    lease_time / 5
}

/// Until when a lease of `lease_time` holds for this process, when the
/// request that took or renewed it was made at `asked`.
fn fence_deadline(asked: Instant, lease_time: Duration) -> Instant {
    asked + (lease_time - fence_margin(lease_time))
}

impl Leases {
    /// Opens (creating it if missing) the bucket `bucket` whose entries
    /// live `lease_time`, as member `member`.
    pub(crate) async fn open(
        context: &jetstream::Context,
        bucket: &str,
        lease_time: Duration,
        member: String,
    ) -> Result<Leases, NatsError> {
        // `create_key_value` first reads the account's limits, in a form
        // servers before 2.10 do not answer in; the bucket's stream is made
        // here as it would make it (one value a key, kept `lease_time`).
        let name = format!("KV_{bucket}");
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: lease_time,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..stream::Config::default()
        };
        if let Err(error) = context.get_or_create_stream(config).await {
            // Members starting together race to make the bucket, and the
            // server may answer the loser "subjects overlap" rather than
            // "already exists": then the winner's bucket is there.
            context.get_stream(&name).await.map_err(|_| {
                NatsError::nats(format!("create the lease bucket `{bucket}`"), error)
            })?;
        }
        let store = context
            .get_key_value(bucket)
            .await
            .map_err(|e| NatsError::nats(format!("open the lease bucket `{bucket}`"), e))?;
        Ok(Leases {
            store,
            member,
            lease_time,
            held: BTreeMap::new(),
        })
    }

    /// This process's name in the group.
    pub(crate) fn member(&self) -> &str {
        &self.member
    }

    /// Says this process is alive, until one lease time from now.
    pub(crate) async fn announce(&self) -> Result<(), NatsError> {
        self.store
            .put(
                format!("{MEMBER_PREFIX}{}", self.member),
                self.member.clone().into(),
            )
            .await
            .map(drop)
            .map_err(|e| NatsError::nats("announce this member", e))
    }

    /// How many members are alive (this one included).
    pub(crate) async fn members(&self) -> Result<usize, NatsError> {
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(|e| NatsError::nats("list the group's members", e))?
            .try_collect()
            .await
            .map_err(|e| NatsError::nats("list the group's members", e))?;
        // A key put again while the listing runs can be listed twice.
        let members = keys
            .iter()
            .filter(|key| key.starts_with(MEMBER_PREFIX))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        Ok(members.max(1))
    }

    /// Tries to take the free lease of `partition`: its fence, for the
    /// records read under it; `None` when another process holds it.
    pub(crate) async fn claim(&mut self, partition: &str) -> Result<Option<Fence>, NatsError> {
        let key = format!("{LEASE_PREFIX}{partition}");
        let asked = Instant::now();
        match self.store.create(&key, self.member.clone().into()).await {
            Ok(revision) => {
                let fence = Fence::new(partition, revision, fence_deadline(asked, self.lease_time));
                let held = Held {
                    revision,
                    claimed: revision,
                    fence: fence.clone(),
                    handing_over: false,
                };
                self.held.insert(partition.to_owned(), held);
                Ok(Some(fence))
            }
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(error) => Err(NatsError::nats(
                format!("claim partition {partition}"),
                error,
            )),
        }
    }

    /// Renews every lease held, moving its fence forward. A lease another
    /// process holds now is lost: its fence revoked, no longer held. A
    /// lease whose fence lapsed before its renewal was confirmed (this
    /// process was paused, or the store slow to answer) is given up, and
    /// its records stay fenced out. A lease that could not be renewed for
    /// another reason is kept, to be renewed next time (its fence lapses
    /// if that takes too long), and the error returned after the others
    /// were tried.
    pub(crate) async fn renew(&mut self) -> Renewal {
        let mut renewal = Renewal::default();
        let mut given_up = Vec::new();
        for (partition, held) in &mut self.held {
            let key = format!("{LEASE_PREFIX}{partition}");
            let asked = Instant::now();
            let deadline = fence_deadline(asked, self.lease_time);
            match self
                .store
                .update(&key, self.member.clone().into(), held.revision)
                .await
            {
                Ok(next) => {
                    held.revision = next;
                    if !held.handing_over && !held.fence.renew(held.claimed, deadline) {
                        renewal.lapsed.push(partition.clone());
                        given_up.push((partition.clone(), next));
                    }
                }
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    held.fence.revoke();
                    renewal.lost.push(partition.clone());
                }
                Err(error) => {
                    renewal.failure = Some(NatsError::nats(
                        format!("renew the lease of {partition}"),
                        error,
                    ));
                }
            }
        }
        for partition in &renewal.lost {
            self.held.remove(partition);
        }
        for (partition, revision) in given_up {
            self.held.remove(&partition);
            self.free(&partition, revision).await;
        }
        renewal
    }

    /// Gives up the leases whose fence lapsed without a renewal (the store
    /// did not answer in time); returns their partitions.
    pub(crate) async fn give_up_lapsed(&mut self) -> Vec<String> {
        let lapsed: Vec<(String, u64)> = self
            .held
            .iter()
            .filter(|(_, held)| !held.handing_over && !held.fence.holds())
            .map(|(partition, held)| (partition.clone(), held.revision))
            .collect();
        for (partition, revision) in &lapsed {
            self.held.remove(partition);
            self.free(partition, *revision).await;
        }
        lapsed.into_iter().map(|(partition, _)| partition).collect()
    }

    /// Whether this process holds `partition`'s lease.
    pub(crate) fn holds(&self, partition: &str) -> bool {
        self.held.contains_key(partition)
    }

    /// How many leases this process holds.
    pub(crate) fn count(&self) -> usize {
        self.held.len()
    }

    /// Leaves `note` for `partition`'s next holder. A note that cannot be
    /// written is logged: the next holder then starts from JetStream's
    /// acknowledgement floor, and may send some records again.
    pub(crate) async fn leave_note(&self, partition: &str, note: &Note) {
        let key = format!("{NOTE_PREFIX}{partition}");
        if let Err(error) = self.store.put(&key, note.encode().into()).await {
            tracing::warn!(%error, partition, "cannot leave the handover note; the next holder may send some records again");
        }
    }

    /// The note the last holder of `partition` left, if any is left (a
    /// note expires with the lease time).
    pub(crate) async fn note(&self, partition: &str) -> Option<Note> {
        let key = format!("{NOTE_PREFIX}{partition}");
        match self.store.get(&key).await {
            Ok(Some(value)) => Note::decode(&String::from_utf8_lossy(&value)),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, partition, "cannot read the handover note");
                None
            }
        }
    }

    /// Starts handing `partition` over: its fence is revoked (its records
    /// are no longer sent), its lease kept and renewed until
    /// [`Leases::release`].
    pub(crate) fn hand_over(&mut self, partition: &str) {
        if let Some(held) = self.held.get_mut(partition) {
            held.handing_over = true;
            held.fence.revoke();
        }
    }

    /// Gives up `partition`'s lease, if held: its fence is revoked.
    pub(crate) async fn release(&mut self, partition: &str) {
        if let Some(held) = self.held.remove(partition) {
            held.fence.revoke();
            self.free(partition, held.revision).await;
        }
    }

    async fn free(&self, partition: &str, revision: u64) {
        let key = format!("{LEASE_PREFIX}{partition}");
        // Only if still ours: a delete on the revision we hold.
        if let Err(error) = self
            .store
            .delete_expect_revision(&key, Some(revision))
            .await
        {
            tracing::warn!(%error, partition, "cannot release a partition lease; it expires by itself");
        }
    }

    /// Gives up every lease and the membership, for a clean stop: the
    /// partitions are free at once rather than after the lease time.
    pub(crate) async fn release_all(&mut self) {
        for (partition, held) in std::mem::take(&mut self.held) {
            held.fence.revoke();
            self.free(&partition, held.revision).await;
        }
        if let Err(error) = self
            .store
            .purge(format!("{MEMBER_PREFIX}{}", self.member))
            .await
        {
            tracing::warn!(%error, "cannot leave the group; the membership expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_for_this_process_a_fifth_less_than_in_the_store() {
        let asked = Instant::now();
        let lease = Duration::from_secs(5);
        assert_eq!(fence_margin(lease), Duration::from_secs(1));
        assert_eq!(fence_deadline(asked, lease), asked + Duration::from_secs(4));
    }
}
