//! The bounded queue between intake and delivery.
//!
//! With ordering on, the queue keeps one FIFO lane per (stream, partition)
//! and lends a whole lane to one worker at a time, so that a partition's
//! records are sent one after another, retries included, while other
//! partitions proceed. Without ordering it is a single FIFO that any worker
//! takes from. Either way at most `capacity` records are inside the
//! pipeline: intake must reserve a slot before it pulls a record from its
//! source, which is how backpressure reaches the sources, and a slot is freed
//! only when its record is finished (delivered, dead-lettered or handed
//! back), not when a worker takes it.
//!
//! No crate offers a bounded queue with per-key exclusive checkout, hence
//! this module.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

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

/// Records lent to one worker: the head of one lane, or of the FIFO.
#[derive(Debug)]
pub(crate) struct Batch<R> {
    /// The lane to give back with [`DeliveryQueue::checkin_and_take`]; `None` without ordering.
    pub(crate) lane: Option<PartitionId>,
    pub(crate) items: VecDeque<Queued<R>>,
}

#[derive(Debug)]
pub(crate) struct DeliveryQueue<R> {
    /// At most `capacity` records inside the pipeline.
    places: Places,
    state: Mutex<State<R>>,
    /// Signals a worker that a lane became ready, or all workers that the
    /// queue closed or ran dry after sealing.
    work: Notify,
    ordering: DeliveryOrder,
    take_size: usize,
}

/// Lanes by partition. foldhash rather than the standard SipHash: with
/// many partitions a lane is looked up three times per record, and SipHash
/// was the larger part of that. Its seed is random per process, and the
/// map never holds more lanes than the queue holds records, so keys chosen
/// to collide can cost at most a slow lookup among `capacity`.
type Lanes<R> = HashMap<PartitionId, Lane<R>, foldhash::fast::RandomState>;

#[derive(Debug)]
struct State<R> {
    lanes: Lanes<R>,
    /// Lanes with records that no worker holds, oldest first.
    ready: VecDeque<PartitionId>,
    /// The single FIFO used without ordering.
    fifo: VecDeque<Queued<R>>,
    /// Records waiting in lanes or the FIFO.
    len: usize,
    /// The most records ever inside the pipeline at once.
    high_water: usize,
    /// Stopping: workers take nothing more.
    closed: bool,
    /// No more input: workers finish once the queue is empty.
    sealed: bool,
    /// Empty lane buffers given back by workers, for lanes to come: with
    /// many partitions most lanes hold a record or two and are forgotten
    /// once delivered, and without these each would allocate a buffer on
    /// the intake's thread and free it on a worker's.
    spare: Vec<VecDeque<Queued<R>>>,
}

/// The most empty lane buffers kept for reuse.
const SPARE_BUFFERS: usize = 64;
/// The largest buffer kept for reuse, in records; a larger one (a lane
/// that held a backlog) is freed, so that spare memory stays small.
const SPARE_BUFFER_RECORDS: usize = 256;

impl<R> Default for State<R> {
    fn default() -> Self {
        State {
            lanes: Lanes::default(),
            ready: VecDeque::new(),
            fifo: VecDeque::new(),
            len: 0,
            high_water: 0,
            closed: false,
            sealed: false,
            spare: Vec::new(),
        }
    }
}

impl<R> State<R> {
    /// An empty buffer for a lane: a spare one when there is one.
    fn buffer(&mut self) -> VecDeque<Queued<R>> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps the empty `buffer` for reuse, if it is worth keeping.
    fn recycle(&mut self, buffer: VecDeque<Queued<R>>) {
        let capacity = buffer.capacity();
        if buffer.is_empty()
            && capacity > 0
            && capacity <= SPARE_BUFFER_RECORDS
            && self.spare.len() < SPARE_BUFFERS
        {
            self.spare.push(buffer);
        }
    }
}

#[derive(Debug)]
struct Lane<R> {
    items: VecDeque<Queued<R>>,
    checked_out: bool,
}

impl<R> Default for Lane<R> {
    fn default() -> Self {
        Lane {
            items: VecDeque::new(),
            checked_out: false,
        }
    }
}

impl<R> DeliveryQueue<R> {
    pub(crate) fn new(capacity: usize, take_size: usize, ordering: DeliveryOrder) -> Self {
        DeliveryQueue {
            places: Places::new(capacity),
            state: Mutex::new(State::default()),
            work: Notify::new(),
            ordering,
            take_size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<R>> {
        // Every critical section leaves the state consistent before it can
        // panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
        state.len += items.len();
        state.high_water = state.high_water.max(inside);
        let mut became_ready = 0;
        for item in items.drain(..) {
            match self.ordering {
                DeliveryOrder::None => {
                    state.fifo.push_back(item);
                    became_ready += 1;
                }
                DeliveryOrder::Partition => {
                    let key = item.envelope.id.partition_id();
                    let state = &mut *state;
                    let lane = state.lanes.entry(key).or_default();
                    let was_idle = lane.items.is_empty() && !lane.checked_out;
                    if lane.items.capacity() == 0 {
                        lane.items = state.spare.pop().unwrap_or_default();
                    }
                    lane.items.push_back(item);
                    if was_idle {
                        state.ready.push_back(key);
                        became_ready += 1;
                    }
                }
            }
        }
        drop(state);
        for _ in 0..became_ready {
            self.work.notify_one();
        }
    }

    /// Waits for records to deliver. `None` once the queue is closed, or
    /// sealed and empty.
    pub(crate) async fn checkout(&self) -> Option<Batch<R>> {
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                if let Some(batch) = self.take_batch(&mut state) {
                    let ran_dry = state.sealed && state.len == 0;
                    drop(state);
                    if ran_dry {
                        self.work.notify_waiters();
                    }
                    return Some(batch);
                }
                if state.sealed && state.len == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    fn take_batch(&self, state: &mut State<R>) -> Option<Batch<R>> {
        let (lane, items) = match self.ordering {
            DeliveryOrder::None => {
                let n = state.fifo.len().min(self.take_size);
                if n == 0 {
                    return None;
                }
                let mut items = state.buffer();
                items.extend(state.fifo.drain(..n));
                (None, items)
            }
            DeliveryOrder::Partition => {
                let key = state.ready.pop_front()?;
                let state = &mut *state;
                let lane = state.lanes.entry(key).or_default();
                lane.checked_out = true;
                let items = if lane.items.len() <= self.take_size {
                    // The whole lane: its buffer goes, no copy.
                    std::mem::take(&mut lane.items)
                } else {
                    let mut items = state.spare.pop().unwrap_or_default();
                    items.extend(lane.items.drain(..self.take_size));
                    items
                };
                (Some(key), items)
            }
        };
        state.len -= items.len();
        Some(Batch { lane, items })
    }

    /// Frees the places of `records` finished records.
    pub(crate) fn finished(&self, records: usize) {
        self.places.release(records);
    }

    /// Moves up to `want` more records of `batch`'s lane (or of the FIFO)
    /// into it: for a batch that lingered to fill up.
    pub(crate) fn top_up(&self, batch: &mut Batch<R>, want: usize) {
        let mut state = self.lock();
        let source = match batch.lane {
            Some(key) => match state.lanes.get_mut(&key) {
                Some(lane) => &mut lane.items,
                None => return,
            },
            None => &mut state.fifo,
        };
        let n = source.len().min(want);
        batch.items.extend(source.drain(..n));
        state.len -= n;
    }

    /// Gives a lane back after its batch is done, with the batch's buffer
    /// for reuse, and, under the same lock, takes the next batch if one is
    /// ready now: a worker that goes on working pays one lock per batch
    /// instead of two, and wakes nobody. `None` when nothing is ready or the
    /// queue is closed: then [`checkout`](Self::checkout) waits or says so.
    pub(crate) fn checkin_and_take(&self, batch: Batch<R>) -> Option<Batch<R>> {
        let mut state = self.lock();
        // A lane given back ready again leaves a ready lane taken in its
        // stead (the queue is closed otherwise), so as many lanes are ready
        // as before and no other worker needs waking for it.
        Self::give_back(&mut state, batch);
        let next = if state.closed {
            None
        } else {
            self.take_batch(&mut state)
        };
        let ran_dry = next.is_some() && state.sealed && state.len == 0;
        drop(state);
        if ran_dry {
            self.work.notify_waiters();
        }
        next
    }

    /// Returns `batch`'s lane (ready again when it has records, forgotten
    /// when idle) and keeps its buffer.
    fn give_back(state: &mut State<R>, batch: Batch<R>) {
        let Batch { lane, items } = batch;
        state.recycle(items);
        let Some(key) = lane else { return };
        let Some(lane) = state.lanes.get_mut(&key) else {
            return;
        };
        lane.checked_out = false;
        if lane.items.is_empty() {
            // An idle lane is forgotten, so that memory follows the
            // partitions in use, not every partition ever seen; its buffer
            // is kept for the next.
            if let Some(idle) = state.lanes.remove(&key) {
                state.recycle(idle.items);
            }
            return;
        }
        state.ready.push_back(key);
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
        let mut state = self.lock();
        let mut items: Vec<Queued<R>> = state.fifo.drain(..).collect();
        for lane in state.lanes.values_mut() {
            items.extend(lane.items.drain(..));
        }
        state.ready.clear();
        state.len = 0;
        items
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stream::{RecordId, StreamName};

    fn item(partition: u32, sequence: u64) -> Queued<()> {
        let id = RecordId {
            stream: StreamName::new("queue-test").unwrap(),
            partition,
            sequence,
        };
        Queued {
            envelope: Envelope::new(id, ()),
            meta: Meta {
                priority: 0,
                bytes: 0,
                intake_at: Instant::now(),
                ack: None,
                failures: 0,
                seen: None,
                first_failed_at: None,
            },
        }
    }

    async fn push(queue: &DeliveryQueue<()>, partition: u32, sequence_id: u64) {
        queue.reserve().await.keep();
        queue.push_all(&mut vec![item(partition, sequence_id)]);
    }

    fn sequence_ids(batch: &Batch<()>) -> Vec<u64> {
        batch.items.iter().map(|i| i.envelope.id.sequence).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_is_lent_to_one_worker_at_a_time() {
        let queue = DeliveryQueue::new(10, 2, DeliveryOrder::Partition);
        for seq in 1..=3 {
            push(&queue, 0, seq).await;
        }
        push(&queue, 1, 1).await;
        let first = queue.checkout().await.unwrap();
        assert_eq!(
            (first.lane.unwrap().partition, sequence_ids(&first)),
            (0, vec![1, 2])
        );
        // Partition 0 still has record 3, but it is lent out: the next
        // worker gets partition 1.
        let second = queue.checkout().await.unwrap();
        assert_eq!(
            (second.lane.unwrap().partition, sequence_ids(&second)),
            (1, vec![1])
        );
        let third = tokio::time::timeout(Duration::from_secs(1), queue.checkout()).await;
        assert!(third.is_err(), "partition 0 must wait for its checkin");
        let fourth = queue.checkin_and_take(first).unwrap();
        assert_eq!(sequence_ids(&fourth), vec![3]);
        assert!(queue.checkin_and_take(second).is_none(), "nothing is ready");
    }

    #[tokio::test(start_paused = true)]
    async fn without_ordering_any_worker_takes_the_fifo_head() {
        let queue = DeliveryQueue::new(10, 2, DeliveryOrder::None);
        for seq in 1..=3 {
            push(&queue, 0, seq).await;
        }
        assert_eq!(sequence_ids(&queue.checkout().await.unwrap()), vec![1, 2]);
        assert_eq!(sequence_ids(&queue.checkout().await.unwrap()), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn reserve_waits_while_the_queue_is_full() {
        let queue = DeliveryQueue::new(2, 1, DeliveryOrder::Partition);
        push(&queue, 0, 1).await;
        push(&queue, 1, 1).await;
        assert!(
            tokio::time::timeout(Duration::from_secs(1), queue.reserve())
                .await
                .is_err()
        );
        let batch = queue.checkout().await.unwrap();
        assert_eq!(batch.items.len(), 1);
        // Taking a record out does not free its place; finishing it does.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), queue.reserve())
                .await
                .is_err()
        );
        queue.finished(1);
        let _slot = queue.reserve().await;
        assert_eq!(queue.high_water(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn sealing_ends_checkouts_once_empty_and_closing_ends_them_at_once() {
        let queue = DeliveryQueue::new(4, 4, DeliveryOrder::Partition);
        push(&queue, 0, 1).await;
        queue.seal();
        let batch = queue.checkout().await.unwrap();
        assert!(queue.checkin_and_take(batch).is_none());
        assert!(queue.checkout().await.is_none());

        let queue = DeliveryQueue::new(4, 4, DeliveryOrder::Partition);
        push(&queue, 0, 1).await;
        queue.close();
        assert!(queue.checkout().await.is_none());
        let drained = queue.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!(queue.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn lane_buffers_are_reused_and_their_pool_stays_small() {
        let queue = DeliveryQueue::new(1_000, 1_000, DeliveryOrder::Partition);
        for partition in 0..100 {
            push(&queue, partition, 1).await;
        }
        let mut batch = queue.checkout().await.unwrap();
        let mut batches = 1;
        loop {
            batch.items.clear();
            match queue.checkin_and_take(batch) {
                Some(next) => (batch, batches) = (next, batches + 1),
                None => break,
            }
        }
        assert_eq!(batches, 100);
        assert!(queue.lock().lanes.is_empty(), "idle lanes are forgotten");
        assert_eq!(queue.lock().spare.len(), SPARE_BUFFERS);
        push(&queue, 7, 1).await;
        assert_eq!(
            queue.lock().spare.len(),
            SPARE_BUFFERS - 1,
            "a new lane takes a spare"
        );

        // A buffer that grew with a backlog is freed, not kept.
        let queue = DeliveryQueue::new(1_000, 1_000, DeliveryOrder::Partition);
        for sequence in 0..=SPARE_BUFFER_RECORDS as u64 {
            push(&queue, 0, sequence).await;
        }
        let mut batch = queue.checkout().await.unwrap();
        assert_eq!(batch.items.len(), SPARE_BUFFER_RECORDS + 1);
        batch.items.clear();
        assert!(queue.checkin_and_take(batch).is_none());
        assert!(queue.lock().spare.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn without_ordering_a_take_reuses_a_spare_buffer() {
        let queue = DeliveryQueue::new(10, 4, DeliveryOrder::None);
        push(&queue, 0, 1).await;
        let mut batch = queue.checkout().await.unwrap();
        batch.items.clear();
        assert!(queue.checkin_and_take(batch).is_none());
        assert_eq!(queue.lock().spare.len(), 1, "the emptied batch is kept");
        push(&queue, 0, 2).await;
        let batch = queue.checkout().await.unwrap();
        assert_eq!(sequence_ids(&batch), vec![2]);
        assert!(queue.lock().spare.is_empty(), "and taken for the next");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_longer_than_a_take_keeps_its_rest_in_order() {
        let queue = DeliveryQueue::new(10, 2, DeliveryOrder::Partition);
        for sequence in 1..=5 {
            push(&queue, 0, sequence).await;
        }
        let mut seen = Vec::new();
        let mut next = queue.checkout().await;
        while let Some(mut batch) = next {
            assert!(batch.items.len() <= 2);
            seen.extend(sequence_ids(&batch));
            batch.items.clear();
            next = queue.checkin_and_take(batch);
        }
        assert_eq!(seen, vec![1, 2, 3, 4, 5]);
        assert_eq!(queue.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_batch_is_topped_up_from_its_own_lane_only() {
        let queue = DeliveryQueue::new(10, 1, DeliveryOrder::Partition);
        push(&queue, 0, 1).await;
        let mut batch = queue.checkout().await.unwrap();
        push(&queue, 0, 2).await;
        push(&queue, 1, 1).await;
        push(&queue, 0, 3).await;
        queue.top_up(&mut batch, 5);
        assert_eq!(sequence_ids(&batch), vec![1, 2, 3]);
        assert_eq!(queue.len(), 1);
        let other = queue.checkin_and_take(batch).unwrap();
        assert_eq!(other.lane.unwrap().partition, 1);
    }
}
