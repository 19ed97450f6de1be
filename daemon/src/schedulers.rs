//! Background work: keeping tokens fresh, the model catalog and the client identity current.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::accounts::AccountState;
use crate::app::AppState;
use crate::auth::{AuthError, Need};
use crate::clock::unix_now;
use crate::models::{Catalog, CatalogSource};
use crate::state::{MODELS_CACHE_FILE, write_private_atomic};

/// How often the catalog is refetched without a hint from the backend.
const CATALOG_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Serialize, Deserialize)]
struct CatalogCache {
    client_version: String,
    etag: Option<String>,
    fetched_at: i64,
    /// The backend's reply, verbatim.
    catalog: serde_json::Value,
}

/// The catalog saved by the last successful fetch, if it is for this client version.
pub fn load_cached_catalog(state_dir: &Path, client_version: &str) -> Option<Catalog> {
    let text = std::fs::read_to_string(state_dir.join(MODELS_CACHE_FILE)).ok()?;
    let cache: CatalogCache = serde_json::from_str(&text).ok()?;
    if cache.client_version != client_version {
        return None;
    }
    let body = serde_json::to_vec(&cache.catalog).ok()?;
    Catalog::from_upstream(&body, cache.etag).ok()
}

/// Fetches the live catalog now, then hourly and whenever a response carries a new ETag.
pub async fn catalog_refresher(state: AppState, stop: CancellationToken) {
    loop {
        // A fetch dropped at a stop loses nothing: the catalog is only read.
        tokio::select! {
            () = stop.cancelled() => return,
            () = refresh_catalog(&state) => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(CATALOG_INTERVAL) => {}
            () = state.catalog_stale() => {}
        }
    }
}

pub async fn refresh_catalog(state: &AppState) {
    let Some(account) = state.first_account() else {
        return;
    };
    let current = state.catalog();
    let etag = (current.source == CatalogSource::Live)
        .then(|| current.etag.clone())
        .flatten();
    match state.upstream().models(&account, etag.as_deref()).await {
        Ok(None) => tracing::debug!("model catalog unchanged"),
        Ok(Some((body, etag))) => match Catalog::from_upstream(&body, etag.clone()) {
            Ok(catalog) => {
                tracing::info!("model catalog updated: {} models", catalog.models.len());
                state.set_catalog(catalog);
                let cache = CatalogCache {
                    client_version: state.upstream().identity().version.clone(),
                    etag,
                    fetched_at: unix_now(),
                    catalog: serde_json::from_slice(&body).unwrap_or_default(),
                };
                let path = state.state_dir().join(MODELS_CACHE_FILE);
                let write = move || {
                    serde_json::to_vec(&cache)
                        .map_err(anyhow::Error::from)
                        .and_then(|b| write_private_atomic(&path, &b))
                };
                match tokio::task::spawn_blocking(write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("cannot cache the model catalog: {e:#}"),
                    Err(e) => tracing::warn!("cannot cache the model catalog: {e}"),
                }
            }
            Err(e) => tracing::warn!(
                "the backend's model catalog did not parse ({e}); keeping the current one"
            ),
        },
        Err(e) => tracing::warn!(
            "cannot refresh the model catalog: {e}; keeping the {:?} list",
            current.source
        ),
    }
}

/// Quota older than this is fetched from `/wham/usage` (an idle account hears nothing else).
const QUOTA_MAX_AGE: i64 = 15 * 60;

/// Fetches an account's plan and quota from `/wham/usage` into the store.
pub async fn refresh_quota(state: &AppState, id: &str) -> Result<(), String> {
    let margin = state.config().auth.refresh_margin_seconds as i64;
    let account = state
        .refresher()
        .fresh(id, Need::ValidFor(margin))
        .await
        .map_err(|e| e.to_string())?;
    let usage = state
        .upstream()
        .usage(&account)
        .await
        .map_err(|e| e.to_string())?;
    let now = unix_now();
    let quota = crate::accounts::Quota::from_usage(&usage, now);
    let plan = usage
        .get("plan_type")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    state.accounts().update(id, |a| {
        if let Some(quota) = quota {
            a.quota = quota;
        }
        a.plan = plan.or(a.plan.take());
    });
    Ok(())
}

/// Counters and quota changed by requests are saved this long after the first change.
const FLUSH_EVERY: i64 = 30;
/// While writes fail, they are tried again this often (a rotated token may be at stake).
const SAVE_RETRY: i64 = 5;
/// A failed quota fetch of an idle account is tried again after this long.
const QUOTA_RETRY: i64 = 60;
/// Refreshes are spread over up to this many seconds before they are due.
const REFRESH_JITTER: i64 = 60;
/// The scheduler looks again at least this often, whatever it expects.
const LONGEST_SLEEP: i64 = 3600;

/// When the token of `account` should be refreshed: `margin` (plus a little jitter) before it
/// expires; at once when a refresh was left unfinished by a stop (to learn whether the sign-in
/// survived); never for a token without an expiry.
fn refresh_due(account: &crate::accounts::Account, margin: i64, interrupted: bool) -> Option<i64> {
    if interrupted {
        return Some(0);
    }
    // Ordinary jitter, stable per account, so refreshes do not all fire at once.
    let jitter = account
        .id
        .bytes()
        .fold(0i64, |h, b| (h * 31 + i64::from(b)) % REFRESH_JITTER);
    account
        .access_expires_at()
        .map(|expires| expires - margin - jitter)
}

/// The token scheduler: refreshes each account's token before it expires, fetches the quota of
/// idle accounts, and saves what requests changed — retrying every few seconds while writes
/// fail. It sleeps until the next of these is due, or until the accounts change (a login), or
/// until `stop`; stopping between steps leaves nothing half done (a refresh in progress belongs
/// to the refresher, which a stop waits for).
pub async fn token_refresher(state: AppState, stop: CancellationToken) {
    let mut quota_retry: HashMap<String, i64> = HashMap::new();
    let mut last_save: i64 = 0;
    let mut last_history_save: i64 = 0;
    loop {
        let now = unix_now();
        let margin = state.config().auth.refresh_margin_seconds as i64;
        let accounts = state.accounts();
        let refresher = state.refresher();
        let mut next = now + LONGEST_SLEEP;
        for account in accounts.all() {
            if account.state != AccountState::Active {
                continue;
            }
            let interrupted = refresher.interrupted_at(&account).is_some();
            let Some(due) = refresh_due(&account, margin, interrupted) else {
                continue;
            };
            let due = due.max(refresher.next_attempt(&account.id).unwrap_or(0));
            if due > now {
                next = next.min(due);
                continue;
            }
            // Due: a new token whatever the one held (after an unfinished refresh, the one held
            // may still be valid; only the exchange tells whether the sign-in survived).
            let held = account.tokens.access_token.expose().to_owned();
            let refreshed = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                refreshed = refresher.fresh(&account.id, Need::Replacing(&held)) => refreshed,
            };
            match refreshed {
                Ok(_) | Err(AuthError::Transient { .. }) => {}
                Err(error) => tracing::warn!("{error}"),
            }
            // Whatever happened, look at this account again soon (a backoff may apply).
            next = next.min(unix_now() + 1);
        }
        // Idle accounts learn their quota from /wham/usage; busy ones from response headers.
        for account in accounts.all() {
            if account.state != AccountState::Active {
                continue;
            }
            let due = account
                .quota
                .updated_at
                .map_or(0, |t| t + QUOTA_MAX_AGE)
                .max(quota_retry.get(&account.id).copied().unwrap_or(0));
            if due > now {
                next = next.min(due);
                continue;
            }
            let fetched = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                fetched = refresh_quota(&state, &account.id) => fetched,
            };
            if let Err(e) = fetched {
                tracing::debug!(account = %account.display_name(), "cannot fetch quota: {e}");
                quota_retry.insert(account.id.clone(), unix_now() + QUOTA_RETRY);
                next = next.min(unix_now() + QUOTA_RETRY);
            } else {
                quota_retry.remove(&account.id);
            }
        }
        // Request counters and quota change on every request; they are saved here, not per
        // request. A write that failed is retried soon and loudly: it may hold a new token.
        if accounts.is_dirty() {
            let failing = accounts.save_health().failure.is_some();
            let due = last_save + if failing { SAVE_RETRY } else { FLUSH_EVERY };
            let now = unix_now();
            if due <= now {
                last_save = now;
                // The write runs to its end in its own task, even if this stops waiting.
                let saved = tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    saved = accounts.persist() => saved,
                };
                if saved.is_err() {
                    next = next.min(now + SAVE_RETRY);
                }
                state.upstream().save_cookies().await;
            } else {
                next = next.min(due);
            }
        }
        // The usage history, on the same rhythm (a small file; its write is not abandoned
        // half-way, so it is not raced against the stop).
        let history = state.usage_history();
        if history.is_dirty() {
            let now = unix_now();
            let due = last_history_save + FLUSH_EVERY;
            if due <= now {
                last_history_save = now;
                if let Err(e) = history.save().await {
                    tracing::warn!("cannot save the usage history (trying again soon): {e}");
                    last_history_save = now - FLUSH_EVERY + SAVE_RETRY;
                    next = next.min(now + SAVE_RETRY);
                }
            } else {
                next = next.min(due);
            }
        }
        // Idle WebSockets to the backend are closed when they have waited long enough.
        state.upstream().sockets().purge();
        next = next.min(unix_now() + SOCKET_PURGE_EVERY);
        let wait = u64::try_from(next - unix_now()).unwrap_or(0);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(wait)) => {}
            () = accounts.changed() => {}
        }
    }
}

/// How often idle backend sockets are looked at.
const SOCKET_PURGE_EVERY: i64 = 60;

/// After a failed poll, the next try comes this soon (doubling up to the configured interval).
const APPCAST_RETRY: Duration = Duration::from_secs(300);

/// Polls the Desktop appcast every `interval_hours` when its values are used: the identity is
/// `Codex Desktop` and leaves the version or build unpinned. Failures are logged and retried.
pub async fn appcast_refresher(state: AppState, stop: CancellationToken) {
    use crate::upstream::appcast::{self, DESKTOP_ORIGINATOR};
    let config = state.config();
    let identity = &config.client_identity;
    if !config.appcast.enabled {
        return;
    }
    if identity.originator.as_str() != DESKTOP_ORIGINATOR
        || (identity.app_version.is_some() && identity.build_number.is_some())
    {
        tracing::debug!(
            "appcast not polled: it describes {DESKTOP_ORIGINATOR}, and the identity is {} with {}",
            identity.originator.as_str(),
            if identity.app_version.is_some() {
                "a pinned version"
            } else {
                "its own version"
            }
        );
        return;
    }
    let interval = Duration::from_secs(config.appcast.interval_hours.max(1) * 3600);
    let mut retry = APPCAST_RETRY;
    loop {
        let url = config.appcast.url.as_str();
        let fetched = tokio::select! {
            () = stop.cancelled() => return,
            fetched = state.upstream().fetch_feed(url, appcast::MAX_FEED_BYTES) => fetched,
        };
        let polled = match fetched {
            Ok(xml) => appcast::parse(&xml),
            Err(e) => Err(e),
        };
        let wait = match polled {
            Ok(release) => {
                apply_appcast(&state, release).await;
                retry = APPCAST_RETRY;
                interval
            }
            Err(e) => {
                let wait = retry.min(interval);
                tracing::warn!(
                    "cannot read the appcast at {url}: {e}; keeping the current identity, retrying in {} min",
                    wait.as_secs() / 60
                );
                retry = (retry * 2).min(interval);
                wait
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Uses `release` in the identity, saves it, and refetches the catalog if the version changed.
async fn apply_appcast(state: &AppState, release: crate::upstream::appcast::Release) {
    let identity = crate::upstream::Identity::new(&state.config().client_identity, Some(&release));
    let before = state.upstream().identity();
    if !state.upstream().set_identity(identity.clone()) {
        tracing::debug!(
            "appcast unchanged: {} ({})",
            release.app_version,
            release.build_number
        );
        return;
    }
    tracing::info!(
        "client identity now {} {} (build {}) from the appcast",
        identity.originator,
        identity.version,
        release.build_number
    );
    if before.version != identity.version {
        state.catalog_is_stale();
    }
    let dir = state.state_dir().to_owned();
    let now = unix_now();
    let save = move || crate::upstream::appcast::save(&dir, &release, now);
    match tokio::task::spawn_blocking(save).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot save the appcast release: {e:#}"),
        Err(e) => tracing::warn!("cannot save the appcast release: {e}"),
    }
}
