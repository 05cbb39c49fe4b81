//! The bounded queue between intake and delivery.
//!
//! With ordering on, the queue keeps one FIFO lane per (stream, partition)
//! and lends a lane to one worker at a time, so that a partition's records
//! are sent one after another, retries included, while other partitions
//! proceed. A worker's batch takes the head of the oldest ready lane, then
//! the heads of further ready lanes until it holds a call's worth, so that
//! calls are full also when records are spread over many partitions; each
//! partition's records stay in order within it. Without ordering it is a
//! single FIFO that any worker takes from.
//!
//! A worker takes a batch once a call's worth is ready, or once the ready
//! records have waited `linger`, or when waiting cannot fill it (the queue
//! is full or sealed); with no linger, at once.
//!
//! Either way at most `capacity` records are inside the pipeline: intake
//! must reserve a place before it pulls a record from its source, which
//! is how backpressure reaches the sources, and a place is freed only when
//! its record is finished (delivered, dead-lettered or handed back), not
//! when a worker takes it.
//!
//! No crate offers a bounded queue with per-key exclusive checkout, hence
//! this module.

mod state;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

pub(crate) use self::state::Fill;
use self::state::State;
use crate::ack::Ack;
use crate::config::DeliveryOrder;
use crate::places::{Place, Places};
use crate::sink::Envelope;
use crate::stream::PartitionId;

/// A transformed record waiting for delivery.
#[derive(Debug)]
pub(crate) struct Queued<R> {
    pub(crate) envelope: Envelope<R>,
    pub(crate) meta: Meta,
}

/// What the processor keeps beside a record.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) priority: u8,
    /// Its size as the transform measured it.
    pub(crate) bytes: usize,
    /// When intake pulled the record from its source.
    pub(crate) intake_at: Instant,
    pub(crate) ack: Option<Ack>,
    /// Failed attempts to deliver it so far: failures that used an
    /// attempt (transient ones while the API was up).
    pub(crate) failures: u32,
    /// The count of calls that delivered, as it was at its last failure
    /// (or when its first call started): a transient failure uses an
    /// attempt only when the count has moved since.
    pub(crate) seen: Option<u64>,
    /// When it first used an attempt: `retry.max_elapsed` counts from it.
    pub(crate) first_failed_at: Option<Instant>,
}

/// Records lent to one worker: the heads of one or more lanes, in the
/// order of their lanes, or the FIFO's head.
#[derive(Debug)]
pub(crate) struct Batch<R> {
    /// The lanes lent with it, to give back with
    /// [`DeliveryQueue::checkin_and_take`]; empty without ordering.
    pub(crate) lanes: Vec<PartitionId>,
    pub(crate) items: VecDeque<Queued<R>>,
}

#[derive(Debug)]
pub(crate) struct DeliveryQueue<R> {
    /// At most `capacity` records inside the pipeline.
    places: Places,
    capacity: usize,
    state: Mutex<State<R>>,
    /// Signals a worker that records are ready (it takes them or waits
    /// for them to make a call's worth), or all workers that the queue
    /// closed or ran dry after sealing.
    work: Notify,
    ordering: DeliveryOrder,
    fill: Fill,
}

impl<R> DeliveryQueue<R> {
    pub(crate) fn new(capacity: usize, fill: Fill, ordering: DeliveryOrder) -> Self {
        DeliveryQueue {
            places: Places::new(capacity),
            capacity,
            state: Mutex::new(State::new(&fill)),
            work: Notify::new(),
            ordering,
            fill,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<R>> {
        // Every critical section leaves the state consistent before it can
        // panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether every place is taken: no record can come in before one
    /// finishes, so ready records gain nothing by waiting.
    fn full(&self) -> bool {
        self.places.taken() >= self.capacity
    }

    /// Waits for a free place. Cancel-safe: nothing is taken until it returns.
    pub(crate) async fn reserve(&self) -> Place<'_> {
        self.places.take().await
    }

    /// A free place, if there is one now.
    pub(crate) fn try_reserve(&self) -> Option<Place<'_>> {
        self.places.try_take()
    }

    /// Enqueues records whose places were kept ([`Place::keep`]), leaving
    /// `items` empty. Always succeeds, even after [`close`](Self::close): a
    /// stop hands queued records back.
    pub(crate) fn push_all(&self, items: &mut Vec<Queued<R>>) {
        if items.is_empty() {
            return;
        }
        let inside = self.places.taken();
        let mut state = self.lock();
        state.high_water = state.high_water.max(inside);
        let (was_ready, could_take) = (state.ready_records() > 0, self.may_take(&state));
        let mut became_ready = 0;
        for item in items.drain(..) {
            if state.push(item, self.ordering) {
                became_ready += 1;
            }
        }
        // A worker for each lane that became ready, when they may be
        // taken (with no linger, only then: each ready lane is announced
        // once); one when a call's worth became ready in lanes already
        // ready; one when records became ready to wait for the linger, to
        // arm a timer.
        let wake = if self.may_take(&state) {
            became_ready.max(usize::from(!could_take))
        } else {
            usize::from(!was_ready && state.ready_records() > 0)
        };
        drop(state);
        for _ in 0..wake {
            self.work.notify_one();
        }
    }

    /// Waits for records to deliver. `None` once the queue is closed, or
    /// sealed and empty.
    ///
    /// # Cancel safety
    /// Cancel-safe: a batch is taken only as it returns.
    pub(crate) async fn checkout(&self) -> Option<Batch<R>> {
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let deadline = {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                let names = state.lane_names();
                if let Some(batch) = self.take(&mut state, names) {
                    // Other ready lanes were announced when they became
                    // ready; what is left to linger needs a timer.
                    let lingering = state.ready_records() > 0 && !self.may_take(&state);
                    self.wake_after(state, lingering);
                    return Some(batch);
                }
                if state.sealed && state.len == 0 {
                    return None;
                }
                state.deadline(&self.fill)
            };
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Whether a worker may take a batch now.
    fn may_take(&self, state: &State<R>) -> bool {
        state.may_take(&self.fill, self.full())
    }

    /// A batch, if one may be taken now.
    fn take(&self, state: &mut State<R>, lanes: Vec<PartitionId>) -> Option<Batch<R>> {
        if !self.may_take(state) {
            state.keep_lane_names(lanes);
            return None;
        }
        state.take(&self.fill, self.ordering, lanes)
    }

    /// After the state changed under `state`: wakes every worker when the
    /// queue ran dry after sealing (they finish), else one when `needed`
    /// (records are ready that no waiting worker was told of: it takes
    /// them, or waits for the linger with a timer).
    fn wake_after(&self, state: MutexGuard<'_, State<R>>, needed: bool) {
        let ran_dry = state.sealed && state.len == 0;
        drop(state);
        if ran_dry {
            self.work.notify_waiters();
        } else if needed {
            self.work.notify_one();
        }
    }

    /// Frees the places of `records` finished records.
    pub(crate) fn finished(&self, records: usize) {
        self.places.release(records);
    }

    /// Gives a batch's lanes back once it is done, with its buffers for
    /// reuse, and, under the same lock, takes the next batch if one may
    /// be taken now: a worker that goes on working pays one lock per batch
    /// instead of two. `None` when nothing may be taken or the queue is
    /// closed: then [`checkout`](Self::checkout) waits or says so.
    pub(crate) fn checkin_and_take(&self, batch: Batch<R>) -> Option<Batch<R>> {
        let mut state = self.lock();
        let (lanes, returned) = state.give_back(batch);
        let next = if state.closed {
            None
        } else {
            self.take(&mut state, lanes)
        };
        // A lane given back ready and taken again in the same breath
        // needs nobody; more lanes given back than taken, or records left
        // to linger, need a worker told.
        let took = next.as_ref().map_or(0, |batch| batch.lanes.len());
        let needed = state.ready_records() > 0
            && (next.is_none() || returned > took || !self.may_take(&state));
        self.wake_after(state, needed);
        next
    }

    /// Gives back, before `batch` is done, the lanes none of whose records
    /// are still to be sent: not among `waiting` (records to retry) nor
    /// left in the batch. So that a partition whose records were delivered
    /// does not wait on another's retries.
    pub(crate) fn release_settled(&self, batch: &mut Batch<R>, waiting: &[Envelope<R>]) {
        if batch.lanes.len() < 2 {
            // Its only lane has records waiting.
            return;
        }
        let busy: HashSet<PartitionId, foldhash::fast::RandomState> = waiting
            .iter()
            .map(|envelope| envelope.id.partition_id())
            .chain(
                batch
                    .items
                    .iter()
                    .map(|item| item.envelope.id.partition_id()),
            )
            .collect();
        let mut state = self.lock();
        let mut returned = false;
        batch.lanes.retain(|key| {
            let keep = busy.contains(key);
            if !keep {
                returned |= state.return_lane(*key);
            }
            keep
        });
        self.wake_after(state, returned);
    }

    /// Stops lending records: every waiting and later checkout returns `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.work.notify_waiters();
    }

    /// Declares that no more records will come: checkouts return `None`
    /// once the queue is empty.
    pub(crate) fn seal(&self) {
        self.lock().sealed = true;
        self.work.notify_waiters();
    }

    /// Takes every queued record out, each partition's in order.
    pub(crate) fn drain(&self) -> Vec<Queued<R>> {
        self.lock().drain()
    }

    /// Records waiting now, not counting those lent to workers.
    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }

    /// The most records that were ever inside the pipeline at once
    /// (reserved, waiting, lent to a worker or in flight); at most the
    /// capacity.
    pub(crate) fn high_water(&self) -> usize {
        self.lock().high_water
    }
}
