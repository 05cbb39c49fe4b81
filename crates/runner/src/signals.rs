//! SIGINT and SIGTERM, as futures.

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM. Never completes if
/// the handlers cannot be installed (then the default action, ending the
/// process, still applies).
pub async fn first() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Counts SIGINT and SIGTERM as they come, so that the first can mean
/// "stop" and the second "stop now".
#[derive(Debug, Clone)]
pub struct Signals(tokio::sync::watch::Receiver<u32>);

impl Signals {
    /// Starts counting. Must be called within a tokio runtime.
    pub fn install() -> Signals {
        let (count, counted) = tokio::sync::watch::channel(0);
        tokio::spawn(async move {
            loop {
                first().await;
                count.send_modify(|n| *n += 1);
            }
        });
        Signals(counted)
    }

    /// Completes once `n` signals have come.
    pub async fn nth(mut self, n: u32) {
        if self.0.wait_for(|count| *count >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
