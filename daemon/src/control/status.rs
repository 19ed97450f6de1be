//! `status` and `status --watch`.

use std::time::Duration;

use codex_proxy_proto::{PROTOCOL, Response, StatusReport};

use super::Connection;
use crate::app::AppState;
use crate::clock::unix_now;

pub fn report(state: &AppState) -> Response {
    let now = unix_now();
    let pinned = state.accounts().pinned();
    let health = state.accounts().save_health();
    let paths = state.paths();
    let config = state.config();
    let listen = state.listen().map_or_else(
        || format!("http://{}:{}", config.server.host, config.server.port),
        |addr| format!("http://{addr}"),
    );
    Response::Status(StatusReport {
        daemon_version: crate::VERSION.to_owned(),
        protocol: PROTOCOL,
        pid: std::process::id(),
        uptime_seconds: state.uptime().as_secs(),
        listen,
        mode: paths.mode.to_string(),
        config_file: paths.config_file.as_ref().map(|p| p.display().to_string()),
        state_dir: paths.state_dir.display().to_string(),
        strategy: super::views::strategy(state.accounts().strategy()),
        pinned,
        in_flight: state.in_flight(),
        queued: crate::metrics::metrics().queued_now(),
        now,
        accounts: super::views::accounts(state, now),
        save_failure: health.failure.map(|f| codex_proxy_proto::SaveFailure {
            since: f.since,
            attempts: f.attempts,
            error: f.error,
        }),
        unsaved_tokens: health.unsaved_tokens,
    })
}

/// Sends a report every `interval_ms` (bounded to 0.2–60 s) until the client hangs up.
pub async fn watch(state: &AppState, interval_ms: u64, conn: &mut Connection) -> bool {
    let interval = Duration::from_millis(interval_ms.clamp(200, 60_000));
    loop {
        if !conn.send(&report(state)).await {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = conn.closed() => return false,
        }
    }
}
