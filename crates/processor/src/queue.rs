//! The bounded queue between intake and delivery.
//!
//! With ordering on, the queue keeps one FIFO lane per (source, partition)
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

use sluice_models::{PartitionKey, Priority, ProcessedRecord, RecordKey};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::Ordering;
use crate::places::{Place, Places};

/// A validated record waiting for delivery.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) record: ProcessedRecord,
    pub(crate) key: RecordKey,
    pub(crate) priority: Priority,
    /// When intake pulled the record from its source.
    pub(crate) intake_at: Instant,
}

/// Records lent to one worker: the head of one lane, or of the FIFO.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The lane to give back with [`DeliveryQueue::checkin`]; `None` without ordering.
    pub(crate) lane: Option<PartitionKey>,
    pub(crate) items: VecDeque<Queued>,
}

#[derive(Debug)]
pub(crate) struct DeliveryQueue {
    /// At most `capacity` records inside the pipeline.
    places: Places,
    state: Mutex<State>,
    /// Signals a worker that a lane became ready, or all workers that the
    /// queue closed or ran dry after sealing.
    work: Notify,
    ordering: Ordering,
    batch_size: usize,
}

#[derive(Debug, Default)]
struct State {
    lanes: HashMap<PartitionKey, Lane>,
    /// Lanes with records that no worker holds, oldest first.
    ready: VecDeque<PartitionKey>,
    /// The single FIFO used without ordering.
    fifo: VecDeque<Queued>,
    /// Records waiting in lanes or the FIFO.
    len: usize,
    /// The most records ever inside the pipeline at once.
    high_water: usize,
    /// Stopping: workers take nothing more.
    closed: bool,
    /// No more input: workers finish once the queue is empty.
    sealed: bool,
}

#[derive(Debug, Default)]
struct Lane {
    items: VecDeque<Queued>,
    checked_out: bool,
}

impl DeliveryQueue {
    pub(crate) fn new(capacity: usize, batch_size: usize, ordering: Ordering) -> DeliveryQueue {
        DeliveryQueue {
            places: Places::new(capacity),
            state: Mutex::new(State::default()),
            work: Notify::new(),
            ordering,
            batch_size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
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
    pub(crate) fn push_all(&self, items: &mut Vec<Queued>) {
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
                Ordering::None => {
                    state.fifo.push_back(item);
                    became_ready += 1;
                }
                Ordering::Partition => {
                    let key = item.key.partition_key();
                    let lane = state.lanes.entry(key).or_default();
                    let was_idle = lane.items.is_empty() && !lane.checked_out;
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
    pub(crate) async fn checkout(&self) -> Option<Batch> {
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

    fn take_batch(&self, state: &mut State) -> Option<Batch> {
        let (lane, items) = match self.ordering {
            Ordering::None => {
                let n = state.fifo.len().min(self.batch_size);
                if n == 0 {
                    return None;
                }
                (None, state.fifo.drain(..n).collect::<VecDeque<_>>())
            }
            Ordering::Partition => {
                let key = state.ready.pop_front()?;
                let lane = state.lanes.entry(key).or_default();
                lane.checked_out = true;
                let n = lane.items.len().min(self.batch_size);
                (Some(key), lane.items.drain(..n).collect())
            }
        };
        state.len -= items.len();
        Some(Batch { lane, items })
    }

    /// Frees the places of `records` finished records.
    pub(crate) fn finished(&self, records: usize) {
        self.places.release(records);
    }

    /// Gives a lane back after its batch is done.
    pub(crate) fn checkin(&self, lane: Option<PartitionKey>) {
        let Some(key) = lane else { return };
        let mut state = self.lock();
        let lane = state.lanes.entry(key).or_default();
        lane.checked_out = false;
        if lane.items.is_empty() {
            return;
        }
        state.ready.push_back(key);
        drop(state);
        self.work.notify_one();
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
    pub(crate) fn drain(&self) -> Vec<Queued> {
        let mut state = self.lock();
        let mut items: Vec<Queued> = state.fifo.drain(..).collect();
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

    use sluice_models::{DataSource, JsonObject};

    use super::*;

    fn item(partition: u32, sequence_id: u64) -> Queued {
        let key = RecordKey {
            source: DataSource::UserEvents,
            partition,
            sequence_id,
        };
        Queued {
            record: ProcessedRecord {
                source: key.source.as_str().to_owned(),
                timestamp: 1.0,
                priority: 1,
                processed_at: 1.0,
                transformed_data: JsonObject::new(),
                processing_time_ms: 0.0,
                partition,
                sequence_id,
            },
            key,
            priority: Priority::Low,
            intake_at: Instant::now(),
        }
    }

    async fn push(queue: &DeliveryQueue, partition: u32, sequence_id: u64) {
        queue.reserve().await.keep();
        queue.push_all(&mut vec![item(partition, sequence_id)]);
    }

    fn sequence_ids(batch: &Batch) -> Vec<u64> {
        batch.items.iter().map(|i| i.key.sequence_id).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lane_is_lent_to_one_worker_at_a_time() {
        let queue = DeliveryQueue::new(10, 2, Ordering::Partition);
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
        queue.checkin(first.lane);
        let fourth = queue.checkout().await.unwrap();
        assert_eq!(sequence_ids(&fourth), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn without_ordering_any_worker_takes_the_fifo_head() {
        let queue = DeliveryQueue::new(10, 2, Ordering::None);
        for seq in 1..=3 {
            push(&queue, 0, seq).await;
        }
        assert_eq!(sequence_ids(&queue.checkout().await.unwrap()), vec![1, 2]);
        assert_eq!(sequence_ids(&queue.checkout().await.unwrap()), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn reserve_waits_while_the_queue_is_full() {
        let queue = DeliveryQueue::new(2, 1, Ordering::Partition);
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
        let queue = DeliveryQueue::new(4, 4, Ordering::Partition);
        push(&queue, 0, 1).await;
        queue.seal();
        let batch = queue.checkout().await.unwrap();
        queue.checkin(batch.lane);
        assert!(queue.checkout().await.is_none());

        let queue = DeliveryQueue::new(4, 4, Ordering::Partition);
        push(&queue, 0, 1).await;
        queue.close();
        assert!(queue.checkout().await.is_none());
        let drained = queue.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!(queue.len(), 0);
    }
}
