//! The call: one batch sent to the sink, with its panics caught, its time
//! bounded by the call timeout, and cut off at the drain deadline; and
//! what it answered for each record.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;

use crate::answer::noting_status;
use crate::fault::{FaultyTask, panic_message};
use crate::limit::Refusal;
use crate::metrics::{CallOutcome, Shard};
use crate::shared::Shared;
use crate::sink::{Envelope, SendError, Sink, SinkError};

/// Sends `batch` in one call, counted as in flight while it lasts. A
/// panicking sink, or one with no answer within `call_timeout`, is a
/// transient failure of every record and a fault named in the report.
/// `None` when the drain deadline cut the call off: the downstream may or
/// may not have the records.
pub(super) async fn call<R: Send + Sync + 'static, S: Sink<R>, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    batch: &[Envelope<R>],
) -> Option<Outcomes> {
    shard.call_started();
    let started = tokio::time::Instant::now();
    let (sent, status) = noting_status(send(shared, shard, batch)).await;
    let took = started.elapsed();
    shard.call_ended();
    let (outcomes, outcome, took) = match sent {
        Sent::Cut => (None, CallOutcome::Cancelled, None),
        Sent::TimedOut(error) => {
            let outcomes = Outcomes::of(Err(error), batch.len());
            (Some(outcomes), CallOutcome::TimedOut, Some(took))
        }
        Sent::Answered(answer) => {
            let outcomes = Outcomes::of(answer, batch.len());
            let outcome = outcomes.outcome(batch.len());
            (Some(outcomes), outcome, Some(took))
        }
    };
    shared.metrics.call_ended(shard, outcome, status, took);
    outcomes
}

/// How a call to the sink ended.
enum Sent {
    /// With the sink's answer (a panic is a transient failure).
    Answered(Result<(), SendError>),
    /// With no answer within the call timeout: a transient failure.
    TimedOut(SendError),
    /// Cut off at the drain deadline.
    Cut,
}

/// One call to the sink, with its panics caught and its time bounded.
async fn send<R: Send + Sync + 'static, S: Sink<R>, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    batch: &[Envelope<R>],
) -> Sent {
    let sink_panicked = |panic: Box<dyn std::any::Any + Send>| {
        let message = panic_message(&*panic).to_owned();
        shared.failed(FaultyTask::Sink, message.clone());
        Err(SinkError::Transient(format!("the sink panicked: {message}")).into())
    };
    let future = match catch_unwind(AssertUnwindSafe(|| shared.sink.send(batch))) {
        Ok(future) => future,
        Err(panic) => return Sent::Answered(sink_panicked(panic)),
    };
    let mut call = pin!(AssertUnwindSafe(future).catch_unwind());
    // A sink that answers at once needs no timer and no race.
    let outcome = match futures::poll!(call.as_mut()) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => {
            let timeout = shared.settings.call_timeout;
            tokio::select! {
                biased;
                () = shared.abort.raised() => return Sent::Cut,
                () = tokio::time::sleep(timeout) => {
                    // A hang of user code: named in the report, as the
                    // dead-letter outlet's is.
                    let message = format!("no answer within {timeout:?}");
                    shard.call_timed_out();
                    shared.failed(FaultyTask::Sink, message.clone());
                    return Sent::TimedOut(SinkError::Transient(message).into());
                }
                outcome = call => outcome,
            }
        }
    };
    Sent::Answered(outcome.unwrap_or_else(sink_panicked))
}

/// Whether the API is up, by [`Sink::is_up`] (its answer kept a while,
/// see [`Health::is_up`](crate::health::Health::is_up)), bounded by the
/// call timeout: no answer in time, a panic or the drain deadline mean
/// `false` (the records wait, or are handed back).
pub(super) async fn api_is_up<R: Send + Sync + 'static, S: Sink<R>, T>(
    shared: &Shared<R, S, T>,
) -> bool {
    shared
        .health
        .is_up(|| async {
            let probe = match catch_unwind(AssertUnwindSafe(|| shared.sink.is_up())) {
                Ok(probe) => AssertUnwindSafe(probe).catch_unwind(),
                Err(panic) => {
                    shared.failed(FaultyTask::Sink, panic_message(&*panic).to_owned());
                    return false;
                }
            };
            tokio::select! {
                biased;
                () = shared.abort.raised() => false,
                () = tokio::time::sleep(shared.settings.call_timeout) => false,
                up = probe => up.unwrap_or_else(|panic| {
                    shared.failed(FaultyTask::Sink, panic_message(&*panic).to_owned());
                    false
                }),
            }
        })
        .await
}

/// A call's outcome, per record.
pub(super) enum Outcomes {
    All(Result<(), SinkError>),
    Each(Vec<Result<(), SinkError>>),
}

impl Outcomes {
    /// Reads the sink's answer for a call of `records` records: a
    /// per-record answer of the wrong length is a transient failure of all.
    fn of(outcome: Result<(), SendError>, records: usize) -> Outcomes {
        match outcome {
            Ok(()) => Outcomes::All(Ok(())),
            Err(SendError::Batch(error)) => Outcomes::All(Err(error)),
            Err(SendError::PerRecord(each)) if each.len() == records => Outcomes::Each(each),
            Err(SendError::PerRecord(each)) => Outcomes::All(Err(SinkError::Transient(format!(
                "the sink gave {} outcomes for {records} records",
                each.len()
            )))),
        }
    }

    /// The outcome of the call's `i`-th record.
    pub(super) fn get(&self, i: usize) -> &Result<(), SinkError> {
        match self {
            Outcomes::All(outcome) => outcome,
            Outcomes::Each(each) => &each[i],
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Result<(), SinkError>> {
        let (all, each) = match self {
            Outcomes::All(outcome) => (Some(outcome), &[][..]),
            Outcomes::Each(each) => (None, &each[..]),
        };
        all.into_iter().chain(each)
    }

    /// Whether any record's outcome passes `test`.
    pub(super) fn any(&self, test: impl Fn(&Result<(), SinkError>) -> bool) -> bool {
        self.iter().any(test)
    }

    /// How the call of `records` records ended, of the outcomes that
    /// answer: delivered in whole or in part, else the first of refused,
    /// rejected, misconfigured, unavailable that any record met, else
    /// failed.
    fn outcome(&self, records: usize) -> CallOutcome {
        let delivered = self.delivered(records);
        if delivered == records {
            return CallOutcome::Delivered;
        }
        if delivered > 0 {
            return CallOutcome::Partial;
        }
        let met = |test: fn(&SinkError) -> bool| self.any(|o| o.as_ref().err().is_some_and(test));
        if met(|e| matches!(e, SinkError::RateLimited { .. })) {
            CallOutcome::RateLimited
        } else if met(|e| matches!(e, SinkError::Rejected(_))) {
            CallOutcome::Rejected
        } else if met(|e| matches!(e, SinkError::Misconfigured(_))) {
            CallOutcome::Misconfigured
        } else if met(|e| matches!(e, SinkError::Unavailable(_))) {
            CallOutcome::Unavailable
        } else {
            CallOutcome::Failed
        }
    }

    /// Records delivered, of `records`.
    pub(super) fn delivered(&self, records: usize) -> usize {
        match self {
            Outcomes::All(Ok(())) => records,
            Outcomes::All(Err(_)) => 0,
            Outcomes::Each(each) => each.iter().filter(|o| o.is_ok()).count(),
        }
    }

    /// Whether the API refused (some of) the call as rate limited, with the
    /// longest wait it asked for. A wait longer than `max_retry_after` is
    /// cut to it, for the limiter's pause as for the worker's.
    pub(super) fn refusal(&self, max_retry_after: Duration) -> Option<Refusal> {
        self.iter()
            .filter_map(|outcome| match outcome {
                Err(SinkError::RateLimited { retry_after }) => Some(*retry_after),
                _ => None,
            })
            .reduce(|a, b| a.max(b))
            .map(|hint| Refusal {
                retry_after: hint.map(|wait| wait.min(max_retry_after)),
            })
    }
}
