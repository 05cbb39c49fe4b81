//! 413 Payload Too Large: a batch sent again in halves.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use sluice_processor::{Envelope, SendError, SinkError};

use crate::sink::HttpSink;

/// One outcome per record of a batch, in order.
pub(crate) type Outcomes = Vec<Result<(), SinkError>>;

impl HttpSink {
    /// Sends `batch` in two halves, each split again while the API answers
    /// 413: the first half, then the second only once every record of the
    /// first is delivered (or rejected), so that a partition's records
    /// arrive in order. Records not sent take the outcome of the failure
    /// that held them back. One outcome per record, in order.
    pub(crate) fn in_halves<'a, R: Serialize + Sync>(
        &'a self,
        batch: &'a [Envelope<R>],
    ) -> Pin<Box<dyn Future<Output = Outcomes> + Send + 'a>> {
        Box::pin(async move {
            let (first, second) = batch.split_at(batch.len() / 2);
            let mut outcomes = Vec::with_capacity(batch.len());
            for half in [first, second] {
                let held = outcomes.iter().find_map(|outcome: &Result<(), SinkError>| {
                    outcome
                        .as_ref()
                        .err()
                        .filter(|error| !matches!(error, SinkError::Rejected(_)))
                        .cloned()
                });
                if let Some(error) = held {
                    outcomes.extend(half.iter().map(|_| Err(error.clone())));
                    continue;
                }
                match self.post(half).await {
                    (Err(SendError::Batch(_)), true) if half.len() > 1 => {
                        outcomes.extend(self.in_halves(half).await);
                    }
                    (Ok(()), _) => outcomes.extend(half.iter().map(|_| Ok(()))),
                    (Err(SendError::Batch(error)), _) => {
                        outcomes.extend(half.iter().map(|_| Err(error.clone())));
                    }
                    (Err(SendError::PerRecord(each)), _) => outcomes.extend(each),
                }
            }
            outcomes
        })
    }
}
