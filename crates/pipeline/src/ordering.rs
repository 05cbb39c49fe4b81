//! Which delivery order a run uses when its settings leave it open, and
//! what it says when the order caps how many calls can be in flight.

use crate::settings::{Ordering, PipelineSettings, ProfileKind};

/// The delivery order of a run, and a note for the user when the inputs'
/// shape decided it or makes it cost concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderingChoice {
    pub(crate) ordering: Ordering,
    /// Said once at start, and kept in the report.
    pub(crate) note: Option<String>,
}

/// Chooses the order for `settings` over a source whose positions name
/// partitions (`partitioned`) or not.
///
/// When records get no partition (the `json` profile without
/// `partition_field`, over files or stdin), each input is one partition:
/// ordering by it would keep one call in flight per input, whatever the
/// concurrency. Then an order left unset becomes `none` (records in any
/// order, every call slot used), and one set to `partition` is kept and
/// said to cap concurrency.
pub(crate) fn choose(settings: &PipelineSettings, partitioned: bool) -> OrderingChoice {
    let no_partition = !partitioned
        && settings.profile() == ProfileKind::Json
        && settings.partition_field.is_none();
    let (ordering, note) = match (settings.ordering, no_partition) {
        (None, true) => (
            Ordering::None,
            Some(
                "the records name no partition (no --partition-field): they are delivered in \
                 any order, with up to --concurrency calls at once; --ordering partition keeps \
                 each input's order, one call at a time"
                    .to_owned(),
            ),
        ),
        (Some(Ordering::Partition), true) => (
            Ordering::Partition,
            Some(
                "--ordering partition and no --partition-field: each input is one partition, \
                 so calls go one at a time per input, whatever --concurrency says; name a \
                 --partition-field to order by it"
                    .to_owned(),
            ),
        ),
        (set, _) => (set.unwrap_or_default(), None),
    };
    OrderingChoice { ordering, note }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        profile: ProfileKind,
        field: Option<&str>,
        ordering: Option<Ordering>,
    ) -> PipelineSettings {
        PipelineSettings {
            profile: Some(profile),
            partition_field: field.map(str::to_owned),
            ordering,
            ..PipelineSettings::default()
        }
    }

    #[test]
    fn records_without_a_partition_are_not_ordered_by_default_and_it_is_said() {
        let choice = choose(&settings(ProfileKind::Json, None, None), false);
        assert_eq!(choice.ordering, Ordering::None);
        assert!(choice.note.unwrap().contains("--partition-field"));
    }

    #[test]
    fn an_order_asked_for_is_kept_and_its_cost_said() {
        let asked = settings(ProfileKind::Json, None, Some(Ordering::Partition));
        let choice = choose(&asked, false);
        assert_eq!(choice.ordering, Ordering::Partition);
        assert!(choice.note.unwrap().contains("one at a time"));
        let unordered = settings(ProfileKind::Json, None, Some(Ordering::None));
        assert_eq!(
            choose(&unordered, false),
            OrderingChoice {
                ordering: Ordering::None,
                note: None
            }
        );
    }

    #[test]
    fn records_with_partitions_keep_the_default_order_and_say_nothing() {
        let ordered = OrderingChoice {
            ordering: Ordering::Partition,
            note: None,
        };
        // A partition field, a profile that reads one, a partitioned source.
        assert_eq!(
            choose(&settings(ProfileKind::Json, Some("p"), None), false),
            ordered
        );
        assert_eq!(
            choose(&settings(ProfileKind::Seed, None, None), false),
            ordered
        );
        assert_eq!(
            choose(&settings(ProfileKind::Json, None, None), true),
            ordered
        );
    }
}
