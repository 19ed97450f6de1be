//! systemd notifications: `READY=1` once listeners are bound and state is loaded, a one-line
//! `STATUS=`, `WATCHDOG=1` at half the watchdog interval, `RELOADING=1` (with the monotonic
//! time) around a reload, `STOPPING=1` on stop. All no-ops outside systemd (no `NOTIFY_SOCKET`).

use std::time::Duration;

use sd_notify::NotifyState;

use crate::accounts::Status;
use crate::app::AppState;
use crate::clock::unix_now;

/// How often `STATUS=` is refreshed when no watchdog asks for more.
const STATUS_EVERY: Duration = Duration::from_secs(30);

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("cannot notify systemd: {e}");
    }
}

/// "2 accounts ready, 1 cooling down (back in 1h 2m), 1 needs login; 3 streams".
pub fn summary(state: &AppState) -> String {
    let now = unix_now();
    let accounts = state.accounts().all();
    let (mut ready, mut cooling, mut login, mut disabled) = (0, 0, 0, 0);
    let mut back = None::<i64>;
    for a in &accounts {
        match a.status(now) {
            Status::Active => ready += 1,
            Status::CoolingDown { until } => {
                cooling += 1;
                back = Some(back.map_or(until, |b| b.min(until)));
            }
            Status::NeedsLogin => login += 1,
            Status::Disabled => disabled += 1,
        }
    }
    let mut parts = vec![format!(
        "{ready} account{} ready",
        if ready == 1 { "" } else { "s" }
    )];
    if cooling > 0 {
        let wait = back.map_or(0, |b| b - now).max(0);
        parts.push(format!(
            "{cooling} cooling down (back in {}h {}m)",
            wait / 3600,
            wait % 3600 / 60
        ));
    }
    if login > 0 {
        parts.push(format!("{login} needs login"));
    }
    if disabled > 0 {
        parts.push(format!("{disabled} disabled"));
    }
    let streams = state.in_flight();
    format!(
        "{}; {streams} stream{}",
        parts.join(", "),
        if streams == 1 { "" } else { "s" }
    )
}

pub fn ready(state: &AppState) {
    let status = summary(state);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings the watchdog at half its interval (when systemd set one) and keeps `STATUS=` current.
pub async fn keep_alive(state: AppState) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    if let Some(w) = watchdog {
        tracing::debug!(
            "systemd watchdog every {} ms; pinging at half",
            w.as_millis()
        );
    }
    loop {
        tokio::time::sleep(every).await;
        let status = summary(&state);
        if watchdog.is_some() {
            send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else {
            send(&[NotifyState::Status(&status)]);
        }
    }
}
