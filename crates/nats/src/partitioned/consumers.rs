//! The partitions' consumers: one per holder of a partition's lease,
//! `<durable>-<partition>~<lease token>`, made afresh where the previous
//! holders left off.

use std::collections::BTreeSet;

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use futures::TryStreamExt;

use super::Coordinator;
use crate::config::NatsError;

impl Coordinator {
    /// The partition's consumer for this lease, `<durable>-<partition>~<token>`,
    /// made afresh after the last message the previous holder resolved in
    /// order; and the stream sequence it starts at.
    ///
    /// Every holder's consumer has a name of its own, so that a process
    /// that lost the partition (paused past its lease, say) can neither
    /// pull from the new holder's consumer nor acknowledge on it: its
    /// requests find no consumer. The previous holders' consumers are read
    /// for their acknowledgement floors, then deleted.
    pub(super) async fn fresh_consumer(
        &self,
        partition: &str,
        token: u64,
    ) -> Result<(PullConsumer, u64, BTreeSet<u64>), NatsError> {
        let durable = &self.config.durable;
        let names: Vec<String> = self
            .stream
            .consumer_names()
            .try_collect()
            .await
            .map_err(|e| NatsError::nats("list the stream's consumers", e))?;
        let mut start = 1;
        for name in names {
            if partition_of(&name, durable) != Some(partition) {
                continue;
            }
            let info = match self.stream.consumer_info(&name).await {
                Ok(info) => info,
                Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => continue,
                Err(error) => {
                    return Err(NatsError::nats(format!("read consumer `{name}`"), error));
                }
            };
            let configured = match info.config.deliver_policy {
                DeliverPolicy::ByStartSequence { start_sequence } => {
                    start_sequence.saturating_sub(1)
                }
                _ => 0,
            };
            start = start.max(info.ack_floor.stream_sequence.max(configured) + 1);
            self.stream
                .delete_consumer(&name)
                .await
                .map_err(|e| NatsError::nats(format!("reset consumer `{name}`"), e))?;
        }
        // What the last holder to hand over resolved beyond the floor.
        let mut skip = BTreeSet::new();
        if let Some(note) = self.leases.note(partition).await {
            start = start.max(note.through + 1);
            skip.extend(note.acked.into_iter().filter(|sequence| *sequence >= start));
        }
        let name = format!("{durable}-{partition}~{token}");
        let filter = partition_filter(&self.config.subject_filter, partition)
            .ok_or_else(|| NatsError::Config("no partition filter".into()))?;
        let deliver = DeliverPolicy::ByStartSequence {
            start_sequence: start,
        };
        let consumer = self
            .stream
            .create_consumer(self.config.consumer(&name, filter, deliver))
            .await
            .map_err(|e| NatsError::nats(format!("create consumer `{name}`"), e))?;
        Ok((consumer, start, skip))
    }
}

/// The filter of one partition's subjects, from the group's filter:
/// `records.>` gives `records.*.<partition>`, `records.orders.*` gives
/// `records.orders.<partition>`; `None` for any other form.
pub(super) fn partition_filter(filter: &str, partition: &str) -> Option<String> {
    let tokens: Vec<&str> = filter.split('.').collect();
    match tokens.as_slice() {
        [prefix, ">"] => Some(format!("{prefix}.*.{partition}")),
        [prefix, stream, "*" | ">"] if *stream != ">" => {
            Some(format!("{prefix}.{stream}.{partition}"))
        }
        _ => None,
    }
}

/// The partition `consumer` consumes, when it is one of the group
/// `durable`'s partition consumers: `<durable>-<partition>~<lease token>`
/// (or `<durable>-<partition>`, as releases before 0.22 named them).
pub(crate) fn partition_of<'a>(consumer: &'a str, durable: &str) -> Option<&'a str> {
    let rest = consumer.strip_prefix(durable)?.strip_prefix('-')?;
    let partition = match rest.split_once('~') {
        Some((partition, token)) => token.parse::<u64>().ok().map(|_| partition)?,
        None => rest,
    };
    is_partition_token(partition).then_some(partition)
}

/// Whether `token` can name a partition in consumer and key names.
pub(crate) fn is_partition_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_filters_narrow_the_groups_filter_to_one_partition() {
        assert_eq!(
            partition_filter("records.>", "3").as_deref(),
            Some("records.*.3")
        );
        assert_eq!(
            partition_filter("records.orders.*", "3").as_deref(),
            Some("records.orders.3")
        );
        assert_eq!(
            partition_filter("records.*.*", "7").as_deref(),
            Some("records.*.7")
        );
        assert_eq!(partition_filter("records.orders.3", "3"), None);
        assert_eq!(partition_filter("records.>.*", "3"), None);
        assert_eq!(partition_filter("records", "3"), None);
    }

    #[test]
    fn partition_consumers_are_named_by_partition_and_lease() {
        assert_eq!(partition_of("g-3~41", "g"), Some("3"));
        assert_eq!(partition_of("g-eu-1~7", "g"), Some("eu-1"));
        assert_eq!(partition_of("g-3", "g"), Some("3"));
        assert_eq!(partition_of("g-3~x", "g"), None);
        assert_eq!(partition_of("g", "g"), None);
        assert_eq!(partition_of("h-3~1", "g"), None);
        assert_eq!(partition_of("g-a*b~1", "g"), None);
    }

    #[test]
    fn only_plain_tokens_name_partitions() {
        assert!(is_partition_token("12"));
        assert!(is_partition_token("eu-west_1"));
        assert!(!is_partition_token(""));
        assert!(!is_partition_token("a*b"));
        assert!(!is_partition_token(&"7".repeat(65)));
    }
}
