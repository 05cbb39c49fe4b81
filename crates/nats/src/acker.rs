//! The acker task: holds every message the source handed out until its
//! record is resolved, tells JetStream the outcome, and keeps the messages
//! the pipeline still holds in progress.
//!
//! [`Ack`] receivers are synchronous and must not block, so they only send
//! their decision through the core's [`AckRelay`]; this task does the I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::Acker;
use sluice_processor::{Ack, AckRelay, Outcome};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval};

use crate::tenure::Taken;

/// A message handed to the pipeline, under its key, with its place among
/// the messages pending, its partition's tenure, and when it was handed
/// over.
pub(crate) struct Hold(
    u64,
    Box<Acker>,
    Option<OwnedSemaphorePermit>,
    Option<Taken>,
    Instant,
);

/// The source's end of the acker task: holds go to the task on one
/// channel, each record's resolution on the core's [`AckRelay`].
#[derive(Debug, Clone)]
pub(crate) struct AckerHandle {
    holds: UnboundedSender<Hold>,
    relay: AckRelay<u64>,
    /// The next message's key, shared by every handle of the task.
    next_key: Arc<AtomicU64>,
}

impl AckerHandle {
    /// Starts the acker task; `client` is flushed after each round of
    /// acknowledgements; a record handed back is redelivered after
    /// `nak_delay`. Must be called within a tokio runtime.
    /// The task ends once every handle and every `Ack` is gone, having
    /// told JetStream every resolution; its `JoinHandle` says when.
    pub(crate) fn start(
        client: async_nats::Client,
        ack_wait: Duration,
        nak_delay: Duration,
    ) -> (AckerHandle, JoinHandle<()>) {
        let (holds, held) = unbounded_channel();
        let (relay, outcomes) = AckRelay::new();
        let task = tokio::spawn(run(
            Channels { held, outcomes },
            client,
            ack_wait,
            nak_delay,
        ));
        let handle = AckerHandle {
            holds,
            relay,
            next_key: Arc::new(AtomicU64::new(0)),
        };
        (handle, task)
    }

    /// Hands `acker` to the task and returns the record's [`Ack`], which
    /// resolves it. `place` is given back, and `taken` told, once
    /// JetStream has been told.
    pub(crate) fn hold(
        &self,
        acker: Acker,
        place: Option<OwnedSemaphorePermit>,
        taken: Option<Taken>,
    ) -> Ack {
        let key = self.next_key.fetch_add(1, Relaxed);
        // The task ends only once every sender is gone: a send cannot fail
        // while this handle exists, and if it did the message would be
        // redelivered after its ack wait.
        let hold = Hold(key, Box::new(acker), place, taken, Instant::now());
        let _ = self.holds.send(hold);
        self.relay.ack(key)
    }
}

/// What the task receives.
struct Channels {
    held: UnboundedReceiver<Hold>,
    outcomes: UnboundedReceiver<(u64, Outcome)>,
}

/// A message held for the pipeline.
struct Held {
    acker: Box<Acker>,
    /// Its place among the messages pending, free once JetStream is told
    /// its fate (so that the server never counts more pending).
    _place: Option<OwnedSemaphorePermit>,
    /// Its partition's tenure, told what JetStream was told.
    taken: Option<Taken>,
    /// When JetStream last heard of it: delivery, or the last progress.
    since: Instant,
}

async fn run(
    mut channels: Channels,
    client: async_nats::Client,
    ack_wait: Duration,
    nak_delay: Duration,
) {
    let mut held: HashMap<u64, Held> = HashMap::new();
    let every = (ack_wait / 4).max(Duration::from_millis(10));
    let mut ticker = interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut outcomes = Vec::new();
    loop {
        tokio::select! {
            count = channels.outcomes.recv_many(&mut outcomes, 1024) => {
                if count == 0 {
                    break;
                }
                // A message's hold was sent before its Ack existed, so it
                // is in the channel by the time its outcome is read.
                take_holds(&mut channels.held, &mut held);
                for (key, outcome) in outcomes.drain(..) {
                    let kind = match outcome {
                        Outcome::Delivered => AckKind::Ack,
                        Outcome::DeadLettered(_) => AckKind::Term,
                        Outcome::NotProcessed => AckKind::Nak(Some(nak_delay)),
                    };
                    tell(&mut held, key, kind).await;
                }
                if let Err(error) = client.flush().await {
                    tracing::warn!(%error, "cannot flush JetStream acknowledgements");
                }
            }
            Some(hold) = channels.held.recv() => {
                take(&mut held, hold);
                take_holds(&mut channels.held, &mut held);
            }
            _ = ticker.tick() => {
                take_holds(&mut channels.held, &mut held);
                keep_in_progress(&mut held, ack_wait).await;
            }
        }
    }
    // Every sender is gone: the source and every Ack. Whatever is still
    // held was never resolved (impossible: a dropped Ack resolves itself),
    // JetStream redelivers it after its ack wait.
    take_holds(&mut channels.held, &mut held);
    if !held.is_empty() {
        tracing::warn!(count = held.len(), "JetStream messages left unacknowledged");
    }
}

/// Takes every hold sent so far.
fn take_holds(channel: &mut UnboundedReceiver<Hold>, held: &mut HashMap<u64, Held>) {
    while let Ok(hold) = channel.try_recv() {
        take(held, hold);
    }
}

/// Holds one message, its progress counted from when it was handed over.
fn take(held: &mut HashMap<u64, Held>, Hold(key, acker, place, taken, since): Hold) {
    held.insert(
        key,
        Held {
            acker,
            _place: place,
            taken,
            since,
        },
    );
}

/// Tells JetStream the fate of the message under `key`.
async fn tell(held: &mut HashMap<u64, Held>, key: u64, kind: AckKind) {
    match held.remove(&key) {
        Some(message) => match message.acker.ack_with(kind).await {
            Ok(()) => {
                if let Some(taken) = message.taken {
                    taken.told(kind);
                }
            }
            Err(error) => {
                tracing::warn!(%error, ?kind, "cannot acknowledge a JetStream message");
            }
        },
        None => tracing::error!(key, "an acknowledgement for a message not held"),
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
