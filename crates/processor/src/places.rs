//! The queue's places: a counting semaphore whose release takes no lock.
//!
//! tokio's `Semaphore` locks its waiter list on every release. The queue
//! frees a place per finished record, from every worker, so that lock was
//! taken a million times a second by both threads and could form a convoy
//! that halved throughput. Here a release is an atomic add and a
//! `Notify::notify_one`, which is lock-free while nobody waits. Waiters are
//! woken one per freed place but, unlike tokio's, not strictly in FIFO
//! order: a task that finds a place free takes it.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct Places {
    free: AtomicUsize,
    capacity: usize,
    freed: Notify,
}

/// A place taken for one record. Dropped, it is given back; kept
/// ([`Place::keep`]), it stays taken until [`Places::release`].
#[derive(Debug)]
pub(crate) struct Place<'a> {
    places: &'a Places,
    kept: bool,
}

impl Place<'_> {
    /// Keeps the place for a record that is about to be queued.
    pub(crate) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.places.release(1);
        }
    }
}

impl Places {
    pub(crate) fn new(capacity: usize) -> Places {
        Places {
            free: AtomicUsize::new(capacity),
            capacity,
            freed: Notify::new(),
        }
    }

    /// A free place, if there is one now.
    pub(crate) fn try_take(&self) -> Option<Place<'_>> {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                free.checked_sub(1)
            })
            .ok()
            .map(|_| Place {
                places: self,
                kept: false,
            })
    }

    /// Waits for a free place. Cancel-safe: nothing is taken until it returns.
    pub(crate) async fn take(&self) -> Place<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(place) = self.try_take() {
                return place;
            }
            freed.await;
        }
    }

    /// Gives back `count` places.
    pub(crate) fn release(&self, count: usize) {
        self.free.fetch_add(count, Ordering::AcqRel);
        for _ in 0..count {
            self.freed.notify_one();
        }
    }

    /// Places taken now.
    pub(crate) fn taken(&self) -> usize {
        self.capacity
            .saturating_sub(self.free.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn places_are_bounded_and_come_back() {
        let places = Places::new(2);
        places.take().await.keep();
        let dropped = places.try_take();
        assert!(dropped.is_some());
        drop(dropped);
        places.try_take().expect("a place is free").keep();
        assert_eq!(places.taken(), 2);
        assert!(places.try_take().is_none());
        assert!(
            tokio::time::timeout(Duration::from_secs(1), places.take())
                .await
                .is_err()
        );
        places.release(1);
        places.take().await.keep();
        assert_eq!(places.taken(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_wakes_a_waiter() {
        let places = std::sync::Arc::new(Places::new(1));
        places.take().await.keep();
        let waiter = {
            let places = std::sync::Arc::clone(&places);
            tokio::spawn(async move { places.take().await.keep() })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        places.release(1);
        waiter.await.unwrap();
        assert_eq!(places.taken(), 1);
    }
}
