//! The acker task: holds every message the source handed out until its
//! record is resolved, tells JetStream the outcome, and keeps the messages
//! the pipeline still holds in progress.
//!
//! [`Ack`] receivers are synchronous and must not block, so they only send
//! their decision over an unbounded channel; this task does the I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::Acker;
use sluice_processor::{Ack, Resolution};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval};

/// What the source and the acks tell the acker task.
pub(crate) enum Event {
    /// A message handed to the pipeline, under this key.
    Hold(u64, Box<Acker>, Option<OwnedSemaphorePermit>),
    /// The fate of the message under this key.
    Resolve(u64, AckKind),
}

/// The source's end of the acker task.
#[derive(Debug, Clone)]
pub(crate) struct AckerHandle {
    events: UnboundedSender<Event>,
    nak_delay: Duration,
    /// The next message's key, shared by every handle of the task.
    next_key: Arc<AtomicU64>,
}

impl AckerHandle {
    /// Starts the acker task; `client` is flushed after each round of
    /// acknowledgements. Must be called within a tokio runtime.
    /// The task ends once every handle and every `Ack` is gone, having
    /// told JetStream every resolution; its `JoinHandle` says when.
    pub(crate) fn start(
        client: async_nats::Client,
        ack_wait: Duration,
        nak_delay: Duration,
    ) -> (AckerHandle, JoinHandle<()>) {
        let (events, received) = unbounded_channel();
        let task = tokio::spawn(run(received, client, ack_wait));
        let handle = AckerHandle {
            events,
            nak_delay,
            next_key: Arc::new(AtomicU64::new(0)),
        };
        (handle, task)
    }

    /// Hands `acker` to the task and returns the record's [`Ack`], which
    /// resolves it. `place` is given back once JetStream has been told.
    pub(crate) fn hold(&self, acker: Acker, place: Option<OwnedSemaphorePermit>) -> Ack {
        let key = self.next_key.fetch_add(1, Relaxed);
        // The task ends only once every sender is gone: a send cannot fail
        // while this handle exists, and if it did the message would be
        // redelivered after its ack wait.
        let _ = self.events.send(Event::Hold(key, Box::new(acker), place));
        let events = self.events.clone();
        let nak_delay = self.nak_delay;
        Ack::new(move |resolution: Resolution<'_>| {
            let kind = match resolution {
                Resolution::Delivered => AckKind::Ack,
                Resolution::DeadLettered(_) => AckKind::Term,
                Resolution::NotProcessed => AckKind::Nak(Some(nak_delay)),
            };
            let _ = events.send(Event::Resolve(key, kind));
        })
    }
}

/// A message held for the pipeline.
struct Held {
    acker: Box<Acker>,
    /// Its place among the messages pending, free once JetStream is told
    /// its fate (so that the server never counts more pending).
    _place: Option<OwnedSemaphorePermit>,
    /// When JetStream last heard of it: delivery, or the last progress.
    since: Instant,
}

async fn run(
    mut received: UnboundedReceiver<Event>,
    client: async_nats::Client,
    ack_wait: Duration,
) {
    let mut held: HashMap<u64, Held> = HashMap::new();
    let every = (ack_wait / 4).max(Duration::from_millis(10));
    let mut ticker = interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            count = received.recv_many(&mut events, 1024) => {
                if count == 0 {
                    break;
                }
                for event in events.drain(..) {
                    apply(&mut held, event).await;
                }
                if let Err(error) = client.flush().await {
                    tracing::warn!(%error, "cannot flush JetStream acknowledgements");
                }
            }
            _ = ticker.tick() => keep_in_progress(&mut held, ack_wait).await,
        }
    }
    // Every sender is gone: the source and every Ack. Whatever is still
    // held was never resolved (impossible: a dropped Ack resolves itself),
    // JetStream redelivers it after its ack wait.
    if !held.is_empty() {
        tracing::warn!(count = held.len(), "JetStream messages left unacknowledged");
    }
}

async fn apply(held: &mut HashMap<u64, Held>, event: Event) {
    match event {
        Event::Hold(key, acker, place) => {
            held.insert(
                key,
                Held {
                    acker,
                    _place: place,
                    since: Instant::now(),
                },
            );
        }
        Event::Resolve(key, kind) => {
            if let Some(message) = held.remove(&key)
                && let Err(error) = message.acker.ack_with(kind).await
            {
                tracing::warn!(%error, ?kind, "cannot acknowledge a JetStream message");
            }
        }
    }
}

/// Marks in progress every message held longer than half the ack wait.
async fn keep_in_progress(held: &mut HashMap<u64, Held>, ack_wait: Duration) {
    let now = Instant::now();
    for message in held.values_mut() {
        if now.saturating_duration_since(message.since) >= ack_wait / 2 {
            match message.acker.ack_with(AckKind::Progress).await {
                Ok(()) => message.since = now,
                Err(error) => tracing::warn!(%error, "cannot mark a JetStream message in progress"),
            }
        }
    }
}
