//! Background work: keeping tokens fresh, the model catalog and the client identity current.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::models::{Catalog, CatalogSource};
use crate::server::AppState;
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
pub async fn catalog_refresher(state: AppState) {
    loop {
        refresh_catalog(&state).await;
        tokio::select! {
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
                    fetched_at: crate::clock::unix_now(),
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
    let account = crate::auth::fresh_account(state.accounts(), state.upstream(), id, margin, None)
        .await
        .map_err(|e| e.to_string())?;
    let usage = state
        .upstream()
        .usage(&account)
        .await
        .map_err(|e| e.to_string())?;
    let now = crate::clock::unix_now();
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

/// How often the token scheduler looks at the accounts (and saves usage counters).
const TOKEN_TICK: Duration = Duration::from_secs(30);
/// Refreshes are spread over up to this many seconds before they are due.
const REFRESH_JITTER: i64 = 60;

/// Refreshes each account's token `refresh_margin_seconds` (plus a little jitter) before it
/// expires. Transient failures back off (30 s doubling to 15 min); permanent ones leave the
/// account in `needs_login` and are not retried.
pub async fn token_refresher(state: AppState) {
    let mut backoff: HashMap<String, (i64, i64)> = HashMap::new();
    loop {
        let now = crate::clock::unix_now();
        let margin = state.config().auth.refresh_margin_seconds as i64;
        for account in state.accounts().all() {
            if account.state != crate::accounts::AccountState::Active {
                continue;
            }
            if backoff
                .get(&account.id)
                .is_some_and(|(next, _)| *next > now)
            {
                continue;
            }
            // Ordinary jitter, stable per account, so refreshes do not all fire at once.
            let jitter = account
                .id
                .bytes()
                .fold(0i64, |h, b| (h * 31 + i64::from(b)) % REFRESH_JITTER);
            let Some(expires) = account.access_expires_at() else {
                continue;
            };
            if expires - margin - jitter > now {
                continue;
            }
            match crate::auth::fresh_account(
                state.accounts(),
                state.upstream(),
                &account.id,
                margin + jitter,
                None,
            )
            .await
            {
                Ok(_) => {
                    backoff.remove(&account.id);
                }
                Err(error @ crate::auth::AuthError::Transient { .. }) => {
                    let delay = backoff
                        .get(&account.id)
                        .map_or(30, |(_, d)| (d * 2).min(900));
                    backoff.insert(account.id.clone(), (now + delay, delay));
                    tracing::warn!("{error}; retrying in {delay} s");
                }
                Err(error) => tracing::warn!("{error}"),
            }
        }
        // Idle accounts learn their quota from /wham/usage; busy ones from response headers.
        for account in state.accounts().all() {
            let stale = account
                .quota
                .updated_at
                .is_none_or(|t| now - t > QUOTA_MAX_AGE);
            if account.state == crate::accounts::AccountState::Active
                && stale
                && let Err(e) = refresh_quota(&state, &account.id).await
            {
                tracing::debug!(account = %account.display_name(), "cannot fetch quota: {e}");
            }
        }
        // Request counters and quota change on every request; they are saved here, not per request.
        if let Err(e) = state.accounts().persist_if_changed().await {
            tracing::error!("cannot save accounts: {e:#}");
        }
        state.upstream().save_cookies().await;
        tokio::time::sleep(TOKEN_TICK).await;
    }
}

/// After a failed poll, the next try comes this soon (doubling up to the configured interval).
const APPCAST_RETRY: Duration = Duration::from_secs(300);

/// Polls the Desktop appcast every `interval_hours` when its values are used: the identity is
/// `Codex Desktop` and leaves the version or build unpinned. Failures are logged and retried.
pub async fn appcast_refresher(state: AppState) {
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
        let polled = match state
            .upstream()
            .fetch_feed(url, appcast::MAX_FEED_BYTES)
            .await
        {
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
        tokio::time::sleep(wait).await;
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
    let now = crate::clock::unix_now();
    let save = move || crate::upstream::appcast::save(&dir, &release, now);
    match tokio::task::spawn_blocking(save).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("cannot save the appcast release: {e:#}"),
        Err(e) => tracing::warn!("cannot save the appcast release: {e}"),
    }
}
