//! What the queue holds, under its lock: the lanes (or the FIFO), which of
//! their records a worker may take now, and how a batch is cut from them.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::{Batch, Queued};
use crate::config::DeliveryOrder;
use crate::stream::PartitionId;

/// How the queue fills a worker's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fill {
    /// The most records taken from one lane at a time (several calls'
    /// worth when calls are small, to take the lock less often).
    pub(crate) take_size: usize,
    /// A call's worth of records: a batch takes lanes until it holds one.
    pub(crate) call_records: usize,
    /// A call's worth of bytes, as the transform measured records.
    pub(crate) call_bytes: usize,
    /// How long ready records wait for a call's worth before a worker
    /// takes fewer. Zero: a worker takes whatever is ready.
    pub(crate) linger: Duration,
}

/// Lanes by partition. foldhash rather than the standard SipHash: with
/// many partitions a lane is looked up three times per record, and SipHash
/// was the larger part of that. Its seed is random per process, and the
/// map never holds more lanes than the queue holds records, so keys chosen
/// to collide can cost at most a slow lookup among `capacity`.
pub(super) type Lanes<R> = HashMap<PartitionId, Lane<R>, foldhash::fast::RandomState>;

#[derive(Debug)]
pub(super) struct Lane<R> {
    pub(super) items: VecDeque<Queued<R>>,
    /// The bytes of `items`, as the transform measured them.
    bytes: usize,
    checked_out: bool,
}

impl<R> Default for Lane<R> {
    fn default() -> Self {
        Lane {
            items: VecDeque::new(),
            bytes: 0,
            checked_out: false,
        }
    }
}

/// The most empty lane buffers kept for reuse.
pub(super) const SPARE_BUFFERS: usize = 64;
/// The largest buffer kept for reuse, in records; a larger one (a lane
/// that held a backlog) is freed, so that spare memory stays small.
pub(super) const SPARE_BUFFER_RECORDS: usize = 256;

#[derive(Debug)]
pub(super) struct State<R> {
    pub(super) lanes: Lanes<R>,
    /// Lanes with records that no worker holds, oldest first.
    ready: VecDeque<PartitionId>,
    /// The single FIFO used without ordering.
    fifo: VecDeque<Queued<R>>,
    /// Records waiting in lanes or the FIFO.
    pub(super) len: usize,
    /// Records a worker may take now: in ready lanes, or in the FIFO.
    ready_records: usize,
    /// Their bytes.
    ready_bytes: usize,
    /// Since when some record has been ready without a break: the oldest
    /// ready record waited at most this long, so that a batch taken at
    /// `ready_since + linger` keeps every record's wait within `linger`.
    ready_since: Option<Instant>,
    /// Batches lent to workers: each will free places and give lanes back.
    out: usize,
    /// The most records ever inside the pipeline at once.
    pub(super) high_water: usize,
    /// Whether ready records may wait (a linger): only then is
    /// `ready_since` kept, as reading the clock costs.
    lingers: bool,
    /// Stopping: workers take nothing more.
    pub(super) closed: bool,
    /// No more input: workers finish once the queue is empty.
    pub(super) sealed: bool,
    /// Empty lane buffers given back by workers, for lanes to come: with
    /// many partitions most lanes hold a record or two and are forgotten
    /// once delivered, and without these each would allocate a buffer on
    /// the intake's thread and free it on a worker's.
    pub(super) spare: Vec<VecDeque<Queued<R>>>,
    /// An emptied buffer of lane names, for the next batch.
    spare_names: Vec<PartitionId>,
}

impl<R> State<R> {
    /// An empty queue's state, for `fill`.
    pub(super) fn new(fill: &Fill) -> Self {
        State {
            lingers: !fill.linger.is_zero(),
            ..State::default()
        }
    }
}

impl<R> Default for State<R> {
    fn default() -> Self {
        State {
            lanes: Lanes::default(),
            ready: VecDeque::new(),
            fifo: VecDeque::new(),
            len: 0,
            ready_records: 0,
            ready_bytes: 0,
            ready_since: None,
            out: 0,
            high_water: 0,
            closed: false,
            sealed: false,
            spare: Vec::new(),
            lingers: false,
            spare_names: Vec::new(),
        }
    }
}

impl<R> State<R> {
    /// An empty buffer for a batch or a lane: a spare one when there is one.
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

    fn mark_ready(&mut self, records: usize, bytes: usize) {
        if records == 0 {
            return;
        }
        if self.ready_records == 0 && self.lingers {
            self.ready_since = Some(Instant::now());
        }
        self.ready_records += records;
        self.ready_bytes = self.ready_bytes.saturating_add(bytes);
    }

    fn unmark_ready(&mut self, records: usize, bytes: usize) {
        self.ready_records -= records;
        self.ready_bytes = self.ready_bytes.saturating_sub(bytes);
        if self.ready_records == 0 {
            self.ready_since = None;
            self.ready_bytes = 0;
        }
    }

    /// Records a worker may take now.
    pub(super) fn ready_records(&self) -> usize {
        self.ready_records
    }

    /// Queues one record; whether its lane became ready.
    pub(super) fn push(&mut self, item: Queued<R>, ordering: DeliveryOrder) -> bool {
        let bytes = item.meta.bytes;
        self.len += 1;
        match ordering {
            DeliveryOrder::None => {
                self.fifo.push_back(item);
                self.mark_ready(1, bytes);
                true
            }
            DeliveryOrder::Partition => {
                let key = item.envelope.id.partition_id();
                let lane = self.lanes.entry(key).or_default();
                if lane.items.capacity() == 0 {
                    lane.items = self.spare.pop().unwrap_or_default();
                }
                lane.items.push_back(item);
                lane.bytes = lane.bytes.saturating_add(bytes);
                let (checked_out, became_ready) = (lane.checked_out, lane.items.len() == 1);
                if checked_out {
                    return false;
                }
                self.mark_ready(1, bytes);
                if became_ready {
                    self.ready.push_back(key);
                }
                became_ready
            }
        }
    }

    /// Whether a worker may take a batch now: something is ready and
    /// either it makes a call's worth, or it waited `linger` (counted from
    /// `ready_since`), or waiting cannot fill it: the queue is sealed, or
    /// `full` (no record can come in) with no batch out (none will end
    /// and make room or give a lane back).
    pub(super) fn may_take(&self, fill: &Fill, full: bool) -> bool {
        self.ready_records > 0
            && (fill.linger.is_zero()
                || (full && self.out == 0)
                || self.sealed
                || self.ready_records >= fill.call_records
                || self.ready_bytes >= fill.call_bytes
                || self.deadline(fill).is_some_and(|at| at <= Instant::now()))
    }

    /// When the ready records will have waited `linger`; `None` when
    /// nothing is ready, or never (a linger too long for the clock).
    pub(super) fn deadline(&self, fill: &Fill) -> Option<Instant> {
        self.ready_since?.checked_add(fill.linger)
    }

    /// Takes a batch: without ordering, the FIFO's head (up to
    /// `take_size`); with it, the oldest ready lane's head (up to
    /// `take_size`), then further ready lanes' heads until the batch holds
    /// a call's worth. Each lane taken from is lent with the batch.
    /// `lanes` is an empty buffer for their names.
    pub(super) fn take(
        &mut self,
        fill: &Fill,
        ordering: DeliveryOrder,
        lanes: Vec<PartitionId>,
    ) -> Option<Batch<R>> {
        let batch = match ordering {
            DeliveryOrder::None => self.take_fifo(fill, lanes)?,
            DeliveryOrder::Partition => self.take_lanes(fill, lanes)?,
        };
        self.len -= batch.items.len();
        self.out += 1;
        Some(batch)
    }

    fn take_fifo(&mut self, fill: &Fill, lanes: Vec<PartitionId>) -> Option<Batch<R>> {
        let n = self.fifo.len().min(fill.take_size);
        if n == 0 {
            return None;
        }
        let mut items = self.buffer();
        let mut bytes = 0usize;
        for item in self.fifo.drain(..n) {
            bytes = bytes.saturating_add(item.meta.bytes);
            items.push_back(item);
        }
        self.unmark_ready(n, bytes);
        Some(Batch { lanes, items })
    }

    fn take_lanes(&mut self, fill: &Fill, mut lanes: Vec<PartitionId>) -> Option<Batch<R>> {
        let first = self.ready.pop_front()?;
        let lane = self.lanes.entry(first).or_default();
        lane.checked_out = true;
        let (records, lane_bytes) = (lane.items.len(), lane.bytes);
        let (mut items, mut bytes) = if records <= fill.take_size {
            // The whole lane: its buffer goes, no copy.
            lane.bytes = 0;
            (std::mem::take(&mut lane.items), lane_bytes)
        } else {
            let mut items = self.spare.pop().unwrap_or_default();
            let lane = self.lanes.entry(first).or_default();
            items.extend(lane.items.drain(..fill.take_size));
            let taken = bytes_of(&items);
            lane.bytes = lane.bytes.saturating_sub(taken);
            (items, taken)
        };
        lanes.push(first);
        // A lane lent out is no longer ready, taken or not.
        let mut unready = (records, lane_bytes);
        while items.len() < fill.call_records && bytes < fill.call_bytes {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let lane = self.lanes.entry(key).or_default();
            lane.checked_out = true;
            unready = (
                unready.0 + lane.items.len(),
                unready.1.saturating_add(lane.bytes),
            );
            let n = lane.items.len().min(fill.call_records - items.len());
            let mut taken = 0usize;
            for item in lane.items.drain(..n) {
                taken = taken.saturating_add(item.meta.bytes);
                items.push_back(item);
            }
            lane.bytes = lane.bytes.saturating_sub(taken);
            bytes = bytes.saturating_add(taken);
            lanes.push(key);
        }
        self.unmark_ready(unready.0, unready.1);
        Some(Batch { lanes, items })
    }

    /// An empty buffer of lane names for a batch.
    pub(super) fn lane_names(&mut self) -> Vec<PartitionId> {
        std::mem::take(&mut self.spare_names)
    }

    /// Keeps an emptied buffer of lane names for the next batch.
    pub(super) fn keep_lane_names(&mut self, names: Vec<PartitionId>) {
        if self.spare_names.capacity() < names.capacity() {
            self.spare_names = names;
        }
    }

    /// Takes back `batch`'s lanes and keeps its buffer; returns the empty
    /// buffer of lane names, for the next batch, and how many lanes became
    /// ready again.
    pub(super) fn give_back(&mut self, batch: Batch<R>) -> (Vec<PartitionId>, usize) {
        let Batch { mut lanes, items } = batch;
        self.out -= 1;
        self.recycle(items);
        let mut ready = 0;
        for key in lanes.drain(..) {
            ready += usize::from(self.return_lane(key));
        }
        (lanes, ready)
    }

    /// Returns a lent lane: ready again when it has records, forgotten
    /// when idle, so that memory follows the partitions in use, not every
    /// partition ever seen (its buffer is kept for the next). Whether it
    /// became ready.
    pub(super) fn return_lane(&mut self, key: PartitionId) -> bool {
        let Some(lane) = self.lanes.get_mut(&key) else {
            return false;
        };
        lane.checked_out = false;
        if lane.items.is_empty() {
            if let Some(idle) = self.lanes.remove(&key) {
                self.recycle(idle.items);
            }
            return false;
        }
        let (records, bytes) = (lane.items.len(), lane.bytes);
        self.ready.push_back(key);
        self.mark_ready(records, bytes);
        true
    }

    /// Takes every queued record out, each partition's in order.
    pub(super) fn drain(&mut self) -> Vec<Queued<R>> {
        let mut items: Vec<Queued<R>> = self.fifo.drain(..).collect();
        for lane in self.lanes.values_mut() {
            items.extend(lane.items.drain(..));
            lane.bytes = 0;
        }
        self.ready.clear();
        self.len = 0;
        self.ready_records = 0;
        self.ready_bytes = 0;
        self.ready_since = None;
        items
    }
}

/// The bytes of `items`, as the transform measured them.
fn bytes_of<R>(items: &VecDeque<Queued<R>>) -> usize {
    items
        .iter()
        .fold(0usize, |sum, item| sum.saturating_add(item.meta.bytes))
}
