//! A sink and a dead-letter outlet that act as a script says: accept,
//! panic (before or inside their future), hang, or refuse.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_processor::{
    DeadLetter, DeadLetterSink, Envelope, RecordId, SendError, Sink, SinkError,
};

/// What a scripted sink does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Accept,
    /// Panics in `send` itself, before a future exists.
    PanicBefore,
    /// Panics while its future is polled.
    PanicInside,
    /// Its future never completes.
    Hang,
    Refuse(Option<Duration>),
}

/// A sink that acts on each call as `script(first sequence, attempt)` says
/// (attempts of that record, from 1), after `latency`, and records every
/// record it accepted, in order.
pub struct ScriptedSink {
    pub script: fn(u64, u32) -> Act,
    pub latency: Duration,
    pub attempts: Mutex<HashMap<u64, u32>>,
    pub accepted: Arc<Mutex<Vec<RecordId>>>,
}

impl ScriptedSink {
    pub fn new(script: fn(u64, u32) -> Act, latency: Duration) -> ScriptedSink {
        ScriptedSink {
            script,
            latency,
            attempts: Mutex::default(),
            accepted: Arc::default(),
        }
    }
}

/// Implemented by hand rather than with `async_trait`, so that it can panic
/// before it returns a future.
impl Sink<u64> for ScriptedSink {
    fn send<'life0, 'life1, 'async_trait>(
        &'life0 self,
        batch: &'life1 [Envelope<u64>],
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let first = batch[0].id.sequence;
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let attempt = attempts.entry(first).or_default();
            *attempt += 1;
            *attempt
        };
        let act = (self.script)(first, attempt);
        if act == Act::PanicBefore {
            panic!("the sink broke before its future, on {first}");
        }
        Box::pin(async move {
            tokio::time::sleep(self.latency).await;
            match act {
                Act::Accept => {
                    let ids = batch.iter().map(|envelope| envelope.id);
                    self.accepted.lock().unwrap().extend(ids);
                    Ok(())
                }
                Act::PanicBefore | Act::PanicInside => panic!("the sink broke inside, on {first}"),
                Act::Hang => std::future::pending().await,
                Act::Refuse(retry_after) => Err(SinkError::RateLimited { retry_after }.into()),
            }
        })
    }
}

/// What a scripted outlet does with a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outlet {
    Keep,
    PanicBefore,
    PanicInside,
    Hang,
}

/// A dead-letter outlet acting on each letter as `script(sequence)` says.
pub struct ScriptedOutlet {
    pub script: fn(u64) -> Outlet,
    pub kept: Arc<Mutex<Vec<DeadLetter<u64>>>>,
}

impl DeadLetterSink<u64> for ScriptedOutlet {
    fn dead_letter<'life0, 'life1, 'async_trait>(
        &'life0 self,
        letter: &'life1 DeadLetter<u64>,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let keep = (self.script)(letter.id.sequence);
        if keep == Outlet::PanicBefore {
            panic!("the outlet broke before its future");
        }
        Box::pin(async move {
            match keep {
                Outlet::Keep => {
                    self.kept.lock().unwrap().push(letter.clone());
                    Ok(())
                }
                Outlet::PanicBefore | Outlet::PanicInside => panic!("the outlet broke inside"),
                Outlet::Hang => std::future::pending().await,
            }
        })
    }
}
