//! Signals: SIGINT/SIGTERM stop, SIGHUP reloads the config.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGINT or SIGTERM.
pub async fn terminated() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default disposition (exit) still applies; never resolve.
        tracing::warn!("cannot install signal handlers; SIGTERM will not stop gracefully");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name} received, stopping");
}

/// Reloads the configuration on every SIGHUP (as `codexctl reload` does).
pub async fn reload_on_hangup(
    state: crate::app::AppState,
    stop: tokio_util::sync::CancellationToken,
) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; use `codexctl reload`");
        return;
    };
    while let Some(()) = tokio::select! {
        () = stop.cancelled() => None,
        hup = hup.recv() => hup,
    } {
        tracing::info!("SIGHUP received, reloading the configuration");
        // The outcome is logged by the reload itself.
        let _ = crate::control::reload(&state).await;
    }
}
