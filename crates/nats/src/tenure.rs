//! What one process took of a partition under one lease, so that it can
//! hand the partition over without a duplicate: the records handed to the
//! pipeline whose fate JetStream has not been told yet, and which stream
//! sequences were acknowledged (delivered) or terminated (dead-lettered).
//!
//! JetStream's acknowledgement floor, the only state a new consumer can
//! start from, stops at the first record not acknowledged; a partition's
//! records of several streams travel in lanes of their own, so records of
//! one lane may be acknowledged above a record of another that was handed
//! back. The [`Note`] a holder leaves when it hands a partition over says
//! exactly what it resolved: the next holder starts after
//! [`Note::through`] and skips [`Note::acked`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_nats::jetstream::AckKind;

/// One lease's worth of a partition, as this process consumes it.
#[derive(Debug, Default)]
pub(crate) struct Tenure {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Every record taken at or below this sequence was acknowledged.
    through: u64,
    /// The records taken above `through`: acknowledged or not (out, or
    /// handed back).
    above: BTreeMap<u64, bool>,
    /// Records taken and not yet told.
    out: usize,
    /// The highest sequence taken: the consumer delivers in order, so every
    /// record of the partition up to it was taken (or resolved before).
    pulled: u64,
}

/// A record taken under a [`Tenure`]: tell it what JetStream was told.
#[derive(Debug)]
pub(crate) struct Taken {
    tenure: Arc<Tenure>,
    sequence: u64,
    /// Whether `told` settled it; if not, dropping it does.
    settled: bool,
}

/// What a holder resolved of a partition, for the next holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Note {
    /// Every record of the partition at or below this stream sequence was
    /// acknowledged or terminated (or was below where this holder began).
    pub(crate) through: u64,
    /// Stream sequences above `through` acknowledged or terminated.
    pub(crate) acked: Vec<u64>,
}

impl Tenure {
    /// A tenure that begins at stream sequence `start`: what lies below,
    /// and the sequences of `resolved` (a previous holder's note), were
    /// resolved by the previous holders, and its own note says so too.
    pub(crate) fn starting_at(start: u64, resolved: &BTreeSet<u64>) -> Arc<Tenure> {
        let state = State {
            through: start.saturating_sub(1),
            above: resolved.iter().map(|sequence| (*sequence, true)).collect(),
            out: 0,
            pulled: start.saturating_sub(1),
        };
        Arc::new(Tenure {
            state: Mutex::new(state),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // No critical section can panic: a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the record of stream sequence `sequence`.
    pub(crate) fn take(self: &Arc<Self>, sequence: u64) -> Taken {
        let mut state = self.state();
        state.out += 1;
        state.pulled = state.pulled.max(sequence);
        state.above.insert(sequence, false);
        Taken {
            tenure: Arc::clone(self),
            sequence,
            settled: false,
        }
    }

    /// Whether every record taken has been told to JetStream.
    pub(crate) fn is_settled(&self) -> bool {
        self.state().out == 0
    }

    /// What this tenure resolved, for the partition's next holder.
    pub(crate) fn note(&self) -> Note {
        let state = self.state();
        Note {
            through: state.through,
            acked: state
                .above
                .iter()
                .filter(|(_, acked)| **acked)
                .map(|(sequence, _)| *sequence)
                .collect(),
        }
    }
}

impl Taken {
    /// JetStream was told `kind` for this record.
    pub(crate) fn told(mut self, kind: AckKind) {
        let acked = matches!(kind, AckKind::Ack | AckKind::Term);
        self.settle(acked);
        self.settled = true;
    }

    fn settle(&self, acked: bool) {
        let mut state = self.tenure.state();
        state.out = state.out.saturating_sub(1);
        if acked {
            state.above.insert(self.sequence, true);
        }
        // Acknowledged from the bottom up to what was pulled: folded into
        // `through`, so that what is kept stays about as large as what is
        // in flight. (Above what was pulled, records of the partition not
        // yet seen may lie between those a note said were resolved.)
        let pulled = state.pulled;
        while let Some(entry) = state.above.first_entry() {
            if !*entry.get() || *entry.key() > pulled {
                break;
            }
            let (sequence, _) = entry.remove_entry();
            state.through = state.through.max(sequence);
        }
    }
}

impl Drop for Taken {
    /// Never told (JetStream could not be): out no more, not acknowledged.
    fn drop(&mut self) {
        if !self.settled {
            self.settle(false);
        }
    }
}

impl Note {
    /// The note as the key-value store keeps it: `through;a,b,c`.
    pub(crate) fn encode(&self) -> String {
        let acked: Vec<String> = self.acked.iter().map(u64::to_string).collect();
        format!("{};{}", self.through, acked.join(","))
    }

    /// A note read back; `None` if it is not one.
    pub(crate) fn decode(text: &str) -> Option<Note> {
        let (through, acked) = text.split_once(';')?;
        let acked = acked
            .split(',')
            .filter(|sequence| !sequence.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()
            .ok()?;
        Some(Note {
            through: through.parse().ok()?,
            acked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenure_settles_once_every_record_is_told_and_notes_what_was_acknowledged() {
        let tenure = Tenure::starting_at(4, &BTreeSet::new());
        assert!(tenure.is_settled());
        assert_eq!(
            tenure.note(),
            Note {
                through: 3,
                acked: vec![]
            }
        );
        let taken: Vec<Taken> = [4, 6, 9, 12].into_iter().map(|s| tenure.take(s)).collect();
        assert!(!tenure.is_settled());
        let mut taken = taken.into_iter();
        let (four, six, nine, twelve) = (
            taken.next().unwrap(),
            taken.next().unwrap(),
            taken.next().unwrap(),
            taken.next().unwrap(),
        );
        // 6 is handed back (a gap), 9 and 12 delivered above it.
        nine.told(AckKind::Ack);
        four.told(AckKind::Term);
        six.told(AckKind::Nak(None));
        assert!(!tenure.is_settled());
        twelve.told(AckKind::Ack);
        assert!(tenure.is_settled());
        assert_eq!(
            tenure.note(),
            Note {
                through: 4,
                acked: vec![9, 12]
            }
        );
        // 6 comes again and is delivered: everything folds into `through`.
        tenure.take(6).told(AckKind::Ack);
        assert_eq!(
            tenure.note(),
            Note {
                through: 12,
                acked: vec![]
            }
        );
    }

    #[test]
    fn what_a_previous_holder_resolved_is_in_the_next_note_until_passed() {
        // The note said 7 and 9 were resolved; this holder reaches 5 only.
        let tenure = Tenure::starting_at(5, &BTreeSet::from([7, 9]));
        tenure.take(5).told(AckKind::Ack);
        assert_eq!(
            tenure.note(),
            Note {
                through: 5,
                acked: vec![7, 9]
            }
        );
        tenure.take(6).told(AckKind::Ack);
        assert_eq!(
            tenure.note(),
            Note {
                through: 6,
                acked: vec![7, 9]
            }
        );
        tenure.take(7).told(AckKind::Ack);
        tenure.take(8).told(AckKind::Ack);
        assert_eq!(
            tenure.note(),
            Note {
                through: 8,
                acked: vec![9]
            }
        );
    }

    #[test]
    fn a_record_dropped_untold_settles_unacknowledged() {
        let tenure = Tenure::starting_at(1, &BTreeSet::new());
        drop(tenure.take(9));
        assert!(tenure.is_settled());
        assert_eq!(
            tenure.note(),
            Note {
                through: 0,
                acked: vec![]
            }
        );
    }

    #[test]
    fn notes_read_back_as_written_and_nothing_else_reads_as_one() {
        let note = Note {
            through: 41,
            acked: vec![43, 47],
        };
        assert_eq!(note.encode(), "41;43,47");
        assert_eq!(Note::decode(&note.encode()), Some(note));
        let empty = Note {
            through: 7,
            acked: vec![],
        };
        assert_eq!(Note::decode(&empty.encode()), Some(empty));
        assert_eq!(Note::decode("7"), None);
        assert_eq!(Note::decode("x;1"), None);
        assert_eq!(Note::decode("7;1,y"), None);
    }
}
