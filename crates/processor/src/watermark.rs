//! Acknowledgements to a watermark: how a source of an ordered input (a
//! file, a log partition) learns how far its input is done, so that it can
//! save that position and resume from it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

use crate::ack::{Ack, Acknowledge, Resolution};

/// How many records were resolved, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Resolutions {
    /// Delivered.
    pub delivered: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Handed back (or their acknowledgement dropped unresolved).
    pub not_processed: u64,
    /// Read and done at once, needing no delivery (e.g. blank lines).
    pub skipped: u64,
}

/// Which records of an ordered input are in flight, and the *watermark*:
/// the position below which every record is done for good (delivered,
/// dead-lettered or skipped), so that a restart from it loses nothing.
///
/// Positions `P` are the input's own (a byte offset and line count, a log
/// offset), ordered as the input is read. The source
/// [`track`](Self::track)s each record it hands out, in input order, and
/// [`resolve`](Self::resolve)s it when its fate is known. A record
/// resolved [`NotProcessed`](Resolution::NotProcessed) is not done: the
/// watermark never passes it in this run, so a restart reads it again.
///
/// Memory is bounded by the records in flight. [`WatermarkTracker`] shares
/// one between a source and the records' [`Ack`]s.
///
/// ```
/// use sluice_processor::{Resolution, Watermark};
///
/// let mut marks = Watermark::new(0u64);
/// marks.track(0, 10);
/// marks.track(10, 20);
/// marks.resolve(10, Resolution::Delivered);
/// assert_eq!(marks.mark(), 0); // the record at 0 is still in flight
/// marks.resolve(0, Resolution::Delivered);
/// assert_eq!(marks.mark(), 20);
/// ```
#[derive(Debug, Clone)]
pub struct Watermark<P> {
    start: P,
    /// Just past the last record read.
    read: P,
    /// The records in flight, by position.
    pending: BTreeSet<P>,
    /// The first record resolved not processed: the watermark stops there.
    blocked: Option<P>,
    resolutions: Resolutions,
}

impl<P: Ord + Copy> Watermark<P> {
    /// An input read from `start` on, nothing in flight.
    pub fn new(start: P) -> Watermark<P> {
        Watermark {
            start,
            read: start,
            pending: BTreeSet::new(),
            blocked: None,
            resolutions: Resolutions::default(),
        }
    }

    /// The record at `at` is in flight; the next record starts at `next`.
    /// Records are tracked (or [skipped](Self::skip)) in input order.
    pub fn track(&mut self, at: P, next: P) {
        self.pending.insert(at);
        self.read = next;
    }

    /// A record ending before `next` was read and needs no delivery: it
    /// is done at once.
    pub fn skip(&mut self, next: P) {
        self.read = next;
        self.resolutions.skipped += 1;
    }

    /// The record at `at` was resolved so. Returns `false`, changing
    /// nothing, when no record at `at` is in flight (already resolved, or
    /// never tracked).
    pub fn resolve(&mut self, at: P, resolution: Resolution<'_>) -> bool {
        if !self.pending.remove(&at) {
            return false;
        }
        match resolution {
            Resolution::Delivered => self.resolutions.delivered += 1,
            Resolution::DeadLettered(_) => self.resolutions.dead_lettered += 1,
            Resolution::NotProcessed => {
                self.resolutions.not_processed += 1;
                self.blocked = Some(self.blocked.map_or(at, |blocked| blocked.min(at)));
            }
        }
        true
    }

    /// The position below which every record is done. Never decreases.
    pub fn mark(&self) -> P {
        let mut mark = self.read;
        if let Some(&first) = self.pending.first() {
            mark = mark.min(first);
        }
        if let Some(blocked) = self.blocked {
            mark = mark.min(blocked);
        }
        mark
    }

    /// Where reading started.
    pub fn start(&self) -> P {
        self.start
    }

    /// Just past the last record read.
    pub fn read(&self) -> P {
        self.read
    }

    /// The first record resolved not processed, if any: the watermark
    /// will not pass it in this run.
    pub fn blocked(&self) -> Option<P> {
        self.blocked
    }

    /// How many records are in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// How many records were resolved, and how.
    pub fn resolutions(&self) -> Resolutions {
        self.resolutions
    }
}

/// A [`Watermark`] shared by a source and the [`Ack`]s of the records it
/// hands out: [`track`](Self::track) returns the record's `Ack`, which
/// resolves the record in the watermark (a dropped `Ack` resolves it not
/// processed). Clones share the same watermark.
///
/// ```
/// use sluice_processor::{Incoming, WatermarkTracker};
///
/// let tracker = WatermarkTracker::new(0u64);
/// let first = Incoming::with_ack("a", tracker.track(0, 2));
/// let second = Incoming::with_ack("b", tracker.track(2, 4));
/// drop(second); // handed back: the watermark stays below it
/// drop(first);
/// assert_eq!(tracker.mark(), 0);
/// assert_eq!(tracker.with(|marks| marks.resolutions().not_processed), 2);
/// ```
#[derive(Debug)]
pub struct WatermarkTracker<P>(Arc<Mutex<Watermark<P>>>);

impl<P> Clone for WatermarkTracker<P> {
    fn clone(&self) -> Self {
        WatermarkTracker(Arc::clone(&self.0))
    }
}

impl<P: Ord + Copy + Send + 'static> WatermarkTracker<P> {
    /// An input read from `start` on.
    pub fn new(start: P) -> WatermarkTracker<P> {
        WatermarkTracker(Arc::new(Mutex::new(Watermark::new(start))))
    }

    fn lock(&self) -> MutexGuard<'_, Watermark<P>> {
        // The watermark's state is consistent after every method: a panic
        // elsewhere while the lock was held leaves nothing half done.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record at `at` is in flight (the next starts at `next`); its
    /// fate, told to the returned `Ack`, resolves it.
    pub fn track(&self, at: P, next: P) -> Ack {
        self.lock().track(at, next);
        Ack::new(Ticket {
            tracker: Some(self.clone()),
            at,
        })
    }

    /// A record ending before `next` needs no delivery: done at once.
    pub fn skip(&self, next: P) {
        self.lock().skip(next);
    }

    /// The watermark: see [`Watermark::mark`].
    pub fn mark(&self) -> P {
        self.lock().mark()
    }

    /// Reads the watermark's state under its lock, e.g. several values
    /// that must agree.
    pub fn with<T>(&self, read: impl FnOnce(&Watermark<P>) -> T) -> T {
        read(&self.lock())
    }
}

/// What a tracked record's `Ack` holds: where to resolve it.
struct Ticket<P: Ord + Copy + Send + 'static> {
    tracker: Option<WatermarkTracker<P>>,
    at: P,
}

impl<P: Ord + Copy + Send + 'static> Acknowledge for Ticket<P> {
    fn acknowledge(mut self: Box<Self>, resolution: Resolution<'_>) {
        if let Some(tracker) = self.tracker.take() {
            tracker.lock().resolve(self.at, resolution);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterReason;

    #[test]
    fn the_mark_stops_at_the_first_record_in_flight_or_handed_back() {
        let mut marks = Watermark::new(5u64);
        assert_eq!(marks.mark(), 5);
        marks.track(5, 10);
        marks.skip(12);
        marks.track(12, 20);
        marks.track(20, 30);
        assert_eq!((marks.mark(), marks.read(), marks.in_flight()), (5, 30, 3));
        let reason = DeadLetterReason::Invalid("bad".into());
        assert!(marks.resolve(5, Resolution::DeadLettered(&reason)));
        assert_eq!(marks.mark(), 12);
        assert!(marks.resolve(20, Resolution::NotProcessed));
        assert!(marks.resolve(12, Resolution::Delivered));
        assert_eq!(marks.mark(), 20, "stopped by the record handed back");
        assert_eq!(marks.blocked(), Some(20));
        marks.track(30, 40);
        assert!(marks.resolve(30, Resolution::Delivered));
        assert_eq!(marks.mark(), 20, "never past what was handed back");
        assert_eq!(
            marks.resolutions(),
            Resolutions {
                delivered: 2,
                dead_lettered: 1,
                not_processed: 1,
                skipped: 1
            }
        );
        assert_eq!(marks.start(), 5);
    }

    #[test]
    fn resolving_twice_or_an_untracked_record_changes_nothing() {
        let mut marks = Watermark::new(0u64);
        marks.track(0, 1);
        assert!(marks.resolve(0, Resolution::Delivered));
        assert!(!marks.resolve(0, Resolution::NotProcessed));
        assert!(!marks.resolve(7, Resolution::NotProcessed));
        assert_eq!(marks.blocked(), None);
        assert_eq!(marks.resolutions().delivered, 1);
        assert_eq!(marks.mark(), 1);
    }

    #[test]
    fn the_lowest_handed_back_record_blocks_whatever_the_order() {
        let mut marks = Watermark::new(0u64);
        for at in 0..4 {
            marks.track(at, at + 1);
        }
        assert!(marks.resolve(3, Resolution::NotProcessed));
        assert!(marks.resolve(1, Resolution::NotProcessed));
        assert_eq!(marks.blocked(), Some(1));
        assert!(marks.resolve(0, Resolution::Delivered));
        assert!(marks.resolve(2, Resolution::Delivered));
        assert_eq!(marks.mark(), 1);
    }

    #[test]
    fn a_tracker_resolves_through_the_acks_it_made() {
        let tracker = WatermarkTracker::new(0u64);
        let first = tracker.track(0, 4);
        let second = tracker.track(4, 9);
        second.resolve(Resolution::Delivered).unwrap();
        assert_eq!(tracker.mark(), 0);
        first.resolve(Resolution::Delivered).unwrap();
        assert_eq!(tracker.mark(), 9);
        tracker.skip(11);
        assert_eq!(tracker.mark(), 11);
        let third = tracker.track(11, 15);
        drop(third);
        assert_eq!(tracker.with(|marks| marks.blocked()), Some(11));
        assert_eq!(tracker.with(|marks| marks.resolutions().not_processed), 1);
    }
}
