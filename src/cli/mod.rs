//! The subcommands of the `eventsock` binary.

pub(crate) mod demo;
pub(crate) mod nats;
pub(crate) mod sim;
pub(crate) mod tail;

use std::time::Duration;

/// Parses `500ms`, `5s`, `1m`...
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 500ms or 5s: {e}"))
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn terminated() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
