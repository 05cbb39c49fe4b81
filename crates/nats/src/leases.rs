//! Partition leases in a JetStream key-value bucket: which live process
//! owns which partition.
//!
//! The bucket keeps each entry for `lease_time` (its `max_age`), so a key
//! that is not renewed disappears by itself when its process dies:
//!
//! - `member.<id>`: a live process, put again every renewal;
//! - `lease.<partition>`: the owner's id, created with compare-and-set
//!   (`create` fails while the key exists) and renewed with
//!   compare-and-set on its revision (`update` fails once another process
//!   holds it).

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use futures::TryStreamExt;

use crate::config::NatsError;

const MEMBER_PREFIX: &str = "member.";
const LEASE_PREFIX: &str = "lease.";

/// The leases of one consumer group, as one process holds them.
#[derive(Debug)]
pub(crate) struct Leases {
    store: kv::Store,
    /// This process: unique among the group's live members.
    member: String,
    /// The partitions held, with the revision of their lease.
    held: BTreeMap<String, u64>,
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
        let members = keys
            .iter()
            .filter(|key| key.starts_with(MEMBER_PREFIX))
            .count();
        Ok(members.max(1))
    }

    /// Tries to take the free lease of `partition`; `false` when another
    /// process holds it.
    pub(crate) async fn claim(&mut self, partition: &str) -> Result<bool, NatsError> {
        let key = format!("{LEASE_PREFIX}{partition}");
        match self.store.create(&key, self.member.clone().into()).await {
            Ok(revision) => {
                self.held.insert(partition.to_owned(), revision);
                Ok(true)
            }
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(NatsError::nats(
                format!("claim partition {partition}"),
                error,
            )),
        }
    }

    /// Renews every lease held; returns the partitions whose lease was lost
    /// (another process holds it now), which are no longer held. A lease
    /// that could not be renewed for another reason is kept, to be renewed
    /// next time, and the error returned after the others were tried.
    pub(crate) async fn renew(&mut self) -> (Vec<String>, Option<NatsError>) {
        let mut lost = Vec::new();
        let mut failure = None;
        for (partition, revision) in &mut self.held {
            let key = format!("{LEASE_PREFIX}{partition}");
            match self
                .store
                .update(&key, self.member.clone().into(), *revision)
                .await
            {
                Ok(next) => *revision = next,
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    lost.push(partition.clone());
                }
                Err(error) => {
                    failure = Some(NatsError::nats(
                        format!("renew the lease of {partition}"),
                        error,
                    ));
                }
            }
        }
        for partition in &lost {
            self.held.remove(partition);
        }
        (lost, failure)
    }

    /// Whether this process holds `partition`'s lease.
    pub(crate) fn holds(&self, partition: &str) -> bool {
        self.held.contains_key(partition)
    }

    /// How many leases this process holds.
    pub(crate) fn count(&self) -> usize {
        self.held.len()
    }

    /// Gives up `partition`'s lease, if held.
    pub(crate) async fn release(&mut self, partition: &str) {
        if let Some(revision) = self.held.remove(partition) {
            self.free(partition, revision).await;
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
        for (partition, revision) in std::mem::take(&mut self.held) {
            self.free(&partition, revision).await;
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
