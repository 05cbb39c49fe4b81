//! The queue's lanes, batches, places and wake-ups, under tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use super::state::{SPARE_BUFFER_RECORDS, SPARE_BUFFERS};
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

/// Batches of up to `take_size` records of one lane, one record a call,
/// taken at once.
fn taking(take_size: usize) -> Fill {
    Fill {
        take_size,
        call_records: 1,
        call_bytes: usize::MAX,
        linger: Duration::ZERO,
    }
}

/// Calls of `call_records`, taken once that many are ready or after
/// `linger`.
fn filling(call_records: usize, linger: Duration) -> Fill {
    Fill {
        take_size: call_records,
        call_records,
        call_bytes: usize::MAX,
        linger,
    }
}

/// Each record of `batch` as (partition, sequence).
fn records(batch: &Batch<()>) -> Vec<(u32, u64)> {
    batch
        .items
        .iter()
        .map(|i| (i.envelope.id.partition, i.envelope.id.sequence))
        .collect()
}

fn sequence_ids(batch: &Batch<()>) -> Vec<u64> {
    batch.items.iter().map(|i| i.envelope.id.sequence).collect()
}

#[tokio::test(start_paused = true)]
async fn a_lane_is_lent_to_one_worker_at_a_time() {
    let queue = DeliveryQueue::new(10, taking(2), DeliveryOrder::Partition);
    for seq in 1..=3 {
        push(&queue, 0, seq).await;
    }
    push(&queue, 1, 1).await;
    let first = queue.checkout().await.unwrap();
    assert_eq!(
        (first.lanes[0].partition, sequence_ids(&first)),
        (0, vec![1, 2])
    );
    // Partition 0 still has record 3, but it is lent out: the next
    // worker gets partition 1.
    let second = queue.checkout().await.unwrap();
    assert_eq!(
        (second.lanes[0].partition, sequence_ids(&second)),
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
    let queue = DeliveryQueue::new(10, taking(2), DeliveryOrder::None);
    for seq in 1..=3 {
        push(&queue, 0, seq).await;
    }
    assert_eq!(sequence_ids(&queue.checkout().await.unwrap()), vec![1, 2]);
    assert_eq!(sequence_ids(&queue.checkout().await.unwrap()), vec![3]);
}

#[tokio::test(start_paused = true)]
async fn reserve_waits_while_the_queue_is_full() {
    let queue = DeliveryQueue::new(2, taking(1), DeliveryOrder::Partition);
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
    let queue = DeliveryQueue::new(4, taking(4), DeliveryOrder::Partition);
    push(&queue, 0, 1).await;
    queue.seal();
    let batch = queue.checkout().await.unwrap();
    assert!(queue.checkin_and_take(batch).is_none());
    assert!(queue.checkout().await.is_none());

    let queue = DeliveryQueue::new(4, taking(4), DeliveryOrder::Partition);
    push(&queue, 0, 1).await;
    queue.close();
    assert!(queue.checkout().await.is_none());
    let drained = queue.drain();
    assert_eq!(drained.len(), 1);
    assert_eq!(queue.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn lane_buffers_are_reused_and_their_pool_stays_small() {
    let queue = DeliveryQueue::new(1_000, taking(1_000), DeliveryOrder::Partition);
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
    let queue = DeliveryQueue::new(1_000, taking(1_000), DeliveryOrder::Partition);
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
    let queue = DeliveryQueue::new(10, taking(4), DeliveryOrder::None);
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
    let queue = DeliveryQueue::new(10, taking(2), DeliveryOrder::Partition);
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
async fn a_batch_takes_further_lanes_up_to_a_call_and_lends_each() {
    let queue = DeliveryQueue::new(20, filling(5, Duration::ZERO), DeliveryOrder::Partition);
    for (partition, sequence) in [(0, 1), (1, 1), (0, 2), (2, 1), (2, 2), (2, 3), (3, 1)] {
        push(&queue, partition, sequence).await;
    }
    let batch = queue.checkout().await.unwrap();
    // Lane 0 whole, lane 1 whole, lane 2's head: a call's worth, each
    // partition in order.
    assert_eq!(
        records(&batch),
        vec![(0, 1), (0, 2), (1, 1), (2, 1), (2, 2)]
    );
    let lent: Vec<u32> = batch.lanes.iter().map(|lane| lane.partition).collect();
    assert_eq!(lent, vec![0, 1, 2]);
    // Lane 2's rest waits for its lane: the next worker gets lane 3 only.
    push(&queue, 0, 3).await;
    let other = queue.checkout().await.unwrap();
    assert_eq!(records(&other), vec![(3, 1)]);
    assert!(
        queue.checkin_and_take(other).is_none(),
        "lanes 0 and 2 are lent"
    );
    let next = queue.checkin_and_take(batch).unwrap();
    assert_eq!(records(&next), vec![(0, 3), (2, 3)]);
}

#[tokio::test(start_paused = true)]
async fn ready_records_wait_the_linger_for_a_call_unless_a_call_is_ready() {
    let linger = Duration::from_millis(100);
    let queue = DeliveryQueue::new(20, filling(4, linger), DeliveryOrder::Partition);
    let started = Instant::now();
    push(&queue, 0, 1).await;
    tokio::time::advance(Duration::from_millis(30)).await;
    push(&queue, 1, 1).await;
    let batch = queue.checkout().await.unwrap();
    // The first record's linger, not the second's.
    assert_eq!(started.elapsed(), linger);
    assert_eq!(records(&batch), vec![(0, 1), (1, 1)]);

    // A call's worth goes at once, across lanes.
    for partition in 2..6 {
        push(&queue, partition, 1).await;
    }
    let at = Instant::now();
    let full = queue.checkout().await.unwrap();
    assert_eq!((at.elapsed(), full.items.len()), (Duration::ZERO, 4));
}

#[tokio::test(start_paused = true)]
async fn a_waiting_worker_wakes_when_a_call_fills_before_the_linger() {
    let linger = Duration::from_secs(10);
    let queue = Arc::new(DeliveryQueue::new(
        20,
        filling(3, linger),
        DeliveryOrder::None,
    ));
    let worker = tokio::spawn({
        let queue = Arc::clone(&queue);
        async move {
            let batch = queue.checkout().await.unwrap();
            (Instant::now(), sequence_ids(&batch))
        }
    });
    let started = Instant::now();
    for sequence in 1..=3 {
        tokio::time::advance(Duration::from_millis(10)).await;
        push(&queue, 0, sequence).await;
    }
    let (taken_at, taken) = worker.await.unwrap();
    assert_eq!(taken, vec![1, 2, 3]);
    assert_eq!(taken_at - started, Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_or_a_sealed_one_does_not_wait_for_the_linger() {
    let linger = Duration::from_secs(10);
    let queue = DeliveryQueue::new(2, filling(5, linger), DeliveryOrder::Partition);
    push(&queue, 0, 1).await;
    push(&queue, 1, 1).await;
    let at = Instant::now();
    let batch = queue.checkout().await.unwrap();
    assert_eq!((at.elapsed(), batch.items.len()), (Duration::ZERO, 2));

    let queue = DeliveryQueue::new(10, filling(5, linger), DeliveryOrder::Partition);
    push(&queue, 0, 1).await;
    queue.seal();
    let batch = queue.checkout().await.unwrap();
    assert_eq!((at.elapsed(), batch.items.len()), (Duration::ZERO, 1));
}

#[tokio::test(start_paused = true)]
async fn lanes_with_nothing_to_retry_are_given_back_before_the_batch_is_done() {
    let queue = DeliveryQueue::new(20, filling(4, Duration::ZERO), DeliveryOrder::Partition);
    for (partition, sequence) in [(0, 1), (1, 1), (2, 1)] {
        push(&queue, partition, sequence).await;
    }
    let mut batch = queue.checkout().await.unwrap();
    assert_eq!(batch.lanes.len(), 3);
    push(&queue, 1, 2).await;
    push(&queue, 0, 2).await;
    // Partition 0's record is to be retried; 1 and 2 were delivered.
    let waiting: Vec<Envelope<()>> = batch
        .items
        .drain(..)
        .filter(|item| item.envelope.id.partition == 0)
        .map(|item| item.envelope)
        .collect();
    queue.release_settled(&mut batch, &waiting);
    assert_eq!(
        batch.lanes.iter().map(|l| l.partition).collect::<Vec<_>>(),
        vec![0]
    );
    // Partition 1's next record goes now; partition 0's waits its retry.
    let other = queue.checkout().await.unwrap();
    assert_eq!(records(&other), vec![(1, 2)]);
    assert!(queue.checkin_and_take(other).is_none());
    let next = queue.checkin_and_take(batch).unwrap();
    assert_eq!(records(&next), vec![(0, 2)]);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_worker_takes_records_short_of_a_call_once_they_lingered() {
    let linger = Duration::from_millis(100);
    let queue = Arc::new(DeliveryQueue::new(
        20,
        filling(10, linger),
        DeliveryOrder::Partition,
    ));
    let worker = tokio::spawn({
        let queue = Arc::clone(&queue);
        async move {
            let batch = queue.checkout().await.unwrap();
            (Instant::now(), records(&batch))
        }
    });
    tokio::task::yield_now().await;
    let started = Instant::now();
    push(&queue, 0, 1).await;
    // Nothing else happens: the worker must have been told, to wait with
    // a timer.
    let (taken_at, taken) = tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker was never told of the record")
        .unwrap();
    assert_eq!(taken, vec![(0, 1)]);
    assert_eq!(taken_at - started, linger);
}
