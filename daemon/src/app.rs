//! The daemon's shared state: configuration, accounts, the upstream client, the catalog,
//! conversations. Every front end (HTTP surfaces, control socket, schedulers) holds a clone.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use anyhow::Context;

use crate::accounts::{Account, AccountState, Accounts, Secret};
use crate::body_budget::BodyBudget;
use crate::config::{Config, Loaded, Overrides, ResolvedPaths};
use crate::engine::Conversations;
use crate::models::Catalog;
use crate::state;
use crate::upstream::{Identity, Upstream};

/// Shared, read-mostly state of the daemon.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    /// Replaced whole on reload; readers clone the `Arc`.
    config: RwLock<Arc<Config>>,
    paths: ResolvedPaths,
    overrides: Overrides,
    listen: OnceLock<SocketAddr>,
    in_flight: AtomicU64,
    api_keys: RwLock<Arc<Vec<Secret>>>,
    upstream: Arc<Upstream>,
    accounts: Arc<Accounts>,
    refresher: crate::auth::Refresher,
    /// Replaced whole on refresh; readers clone the `Arc` and never hold the lock.
    catalog: RwLock<Arc<Catalog>>,
    conversations: Conversations,
    histories: crate::engine::histories::Histories,
    responses: crate::engine::store::ResponseStore,
    requests: crate::requests::RequestLog,
    usage_history: crate::usage_history::UsageHistory,
    catalog_stale: tokio::sync::Notify,
    logins: crate::auth::login::Logins,
    installation_id: String,
    body_budget: BodyBudget,
}

impl AppState {
    /// Reads keys, accounts and the cached catalog. Blocking file I/O: call before the runtime.
    pub fn load(loaded: &Loaded) -> anyhow::Result<Self> {
        let config = loaded.config.clone();
        let state_dir = loaded.paths.state_dir.clone();
        let api_keys = api_keys(&config, &state_dir)?;
        let accounts = Accounts::load_with_slots(
            &state_dir,
            config.auth.rotation_strategy,
            config.auth.max_concurrent_per_account as usize,
        )?;
        if accounts.all().is_empty() {
            tracing::warn!(
                "no ChatGPT account yet: requests will fail until one is added (`codexctl login`)"
            );
        }
        let installation_id = state::installation_id(&state_dir, loaded.codex_home.as_deref())?;
        let appcast = crate::upstream::appcast::load(&state_dir);
        let identity = Identity::new(&config.client_identity, appcast.as_ref());
        let catalog = crate::schedulers::load_cached_catalog(&state_dir, &identity.version)
            .unwrap_or_else(Catalog::builtin);
        let cookies = Arc::new(crate::upstream::cookies::CloudflareCookies::load(
            &state_dir,
        ));
        let upstream = Arc::new(
            Upstream::with_cookies(&config, identity, Some(cookies))
                .context("cannot set up the upstream client")?,
        );
        upstream.set_installation_id(&installation_id);
        let accounts = Arc::new(accounts);
        for account in accounts.all() {
            if let Some(at) = account.refresh_started_at {
                tracing::warn!(
                    account = %account.display_name(),
                    "a token refresh at {} did not finish (codex-proxy stopped mid-exchange); \
                     checking now whether the sign-in survived",
                    crate::clock::utc_clock(at, crate::clock::unix_now())
                );
            }
        }
        let refresher = crate::auth::Refresher::new(accounts.clone(), upstream.clone());
        let body_budget = BodyBudget::new(config.server.request_memory_mb);
        let config_store_mb = config.responses.store_mb;
        let config_store_ttl = config.responses.store_ttl_minutes as i64;
        Ok(Self {
            inner: Arc::new(Inner {
                started: Instant::now(),
                config: RwLock::new(Arc::new(config)),
                paths: loaded.paths.clone(),
                overrides: loaded.overrides.clone(),
                listen: OnceLock::new(),
                in_flight: AtomicU64::new(0),
                api_keys: RwLock::new(Arc::new(api_keys)),
                upstream,
                accounts,
                refresher,
                catalog: RwLock::new(Arc::new(catalog)),
                conversations: Conversations::default(),
                histories: Default::default(),
                requests: crate::requests::RequestLog::default(),
                usage_history: crate::usage_history::UsageHistory::load(&state_dir),
                responses: crate::engine::store::ResponseStore::new(
                    (config_store_mb as usize) << 20,
                    config_store_ttl * 60,
                ),
                catalog_stale: tokio::sync::Notify::new(),
                logins: crate::auth::login::Logins::default(),
                installation_id,
                body_budget,
            }),
        })
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }

    /// The configuration in effect (a reload replaces it).
    pub fn config(&self) -> Arc<Config> {
        read(&self.inner.config)
    }

    /// Puts a reloaded configuration (and the API keys it implies) in effect.
    pub fn set_config(&self, config: Config) -> anyhow::Result<()> {
        let keys = api_keys(&config, self.state_dir())?;
        *write(&self.inner.api_keys) = Arc::new(keys);
        *write(&self.inner.config) = Arc::new(config);
        Ok(())
    }

    pub fn state_dir(&self) -> &std::path::Path {
        &self.inner.paths.state_dir
    }

    pub fn paths(&self) -> &ResolvedPaths {
        &self.inner.paths
    }

    /// The command-line values the daemon was started with (a reload layers them again).
    pub fn overrides(&self) -> &Overrides {
        &self.inner.overrides
    }

    /// The HTTP address actually bound (set once at start).
    pub fn listen(&self) -> Option<SocketAddr> {
        self.inner.listen.get().copied()
    }

    pub fn set_listen(&self, addr: SocketAddr) {
        let _ = self.inner.listen.set(addr);
    }

    /// Counts a request as in flight until the guard drops.
    pub fn track_request(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Replaces the generated API key with a new one (kept in state); the old one stops working.
    pub fn rotate_generated_key(&self) -> anyhow::Result<Secret> {
        let key = state::new_generated_api_key(self.state_dir())?;
        *write(&self.inner.api_keys) = Arc::new(vec![key.clone()]);
        Ok(key)
    }

    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.inner.upstream
    }

    pub fn conversations(&self) -> &Conversations {
        &self.inner.conversations
    }

    /// Large requests' translations, kept for their conversations' next turns.
    pub fn histories(&self) -> &crate::engine::histories::Histories {
        &self.inner.histories
    }

    /// Usage over time, kept across restarts.
    pub fn usage_history(&self) -> &crate::usage_history::UsageHistory {
        &self.inner.usage_history
    }

    /// The most recent requests (`codexctl requests`).
    pub fn requests(&self) -> &crate::requests::RequestLog {
        &self.inner.requests
    }

    /// The responses `/v1/responses` keeps (for `previous_response_id` and retrieval).
    pub fn responses(&self) -> &crate::engine::store::ResponseStore {
        &self.inner.responses
    }

    pub fn api_keys(&self) -> Arc<Vec<Secret>> {
        read(&self.inner.api_keys)
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner
            .catalog
            .read()
            .map_or_else(|p| p.into_inner().clone(), |c| c.clone())
    }

    pub fn set_catalog(&self, catalog: Catalog) {
        let mut slot = self
            .inner
            .catalog
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Arc::new(catalog);
    }

    /// Asks the catalog scheduler to refetch (the backend announced a new ETag).
    pub fn catalog_is_stale(&self) {
        self.inner.catalog_stale.notify_one();
    }

    pub async fn catalog_stale(&self) {
        self.inner.catalog_stale.notified().await;
    }

    /// `client_metadata` as the official client sends it (§2.3): the installation, and the
    /// conversation's session as session, thread and window.
    pub fn client_metadata(
        &self,
        session: &str,
    ) -> std::collections::BTreeMap<&'static str, String> {
        std::collections::BTreeMap::from([
            ("x-codex-installation-id", self.installation_id().to_owned()),
            ("session_id", session.to_owned()),
            ("thread_id", session.to_owned()),
            ("x-codex-window-id", format!("{session}:0")),
        ])
    }

    pub fn installation_id(&self) -> &str {
        &self.inner.installation_id
    }

    /// Login flows in progress (driven by the control socket).
    pub fn logins(&self) -> &crate::auth::login::Logins {
        &self.inner.logins
    }

    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.inner.accounts
    }

    /// The memory request bodies in flight may take together.
    pub fn body_budget(&self) -> &BodyBudget {
        &self.inner.body_budget
    }

    /// Token refreshes: one per account at a time, each finishing whoever waits for it.
    pub fn refresher(&self) -> &crate::auth::Refresher {
        &self.inner.refresher
    }

    /// An active account for background calls (catalog), if there is one.
    pub fn first_account(&self) -> Option<Account> {
        self.inner
            .accounts
            .all()
            .into_iter()
            .find(|a| a.state == AccountState::Active)
    }
}

/// Decrements the in-flight count when a request ends (or is cancelled).
#[derive(Debug)]
pub struct InFlight(AppState);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn read<T>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    lock.read()
        .map_or_else(|p| p.into_inner().clone(), |v| v.clone())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The keys clients must send: the configured ones, else the generated one (loopback only).
fn api_keys(config: &Config, state_dir: &std::path::Path) -> anyhow::Result<Vec<Secret>> {
    if !config.server.api_keys.is_empty() {
        return Ok(config
            .server
            .api_keys
            .iter()
            .map(|k| Secret::new(k.expose().to_owned()))
            .collect());
    }
    if let Some(listen) = config.ollama.listen.filter(|a| !a.ip().is_loopback()) {
        anyhow::bail!(
            "ollama.listen is {listen}, which is reachable from the network, but server.api_keys \
             is empty; list the keys clients must send (the generated key is only for loopback \
             use), or listen on 127.0.0.1"
        );
    }
    if !config.server.host.is_loopback() {
        anyhow::bail!(
            "server.host is {}, which is reachable from the network, but server.api_keys is empty; \
             list the keys clients must send (the generated key is only for loopback use)",
            config.server.host
        );
    }
    Ok(vec![state::generated_api_key(state_dir)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_listener_needs_configured_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        assert_eq!(api_keys(&config, dir.path()).unwrap().len(), 1, "generated");
        config.ollama.listen = Some("127.0.0.1:11434".parse().unwrap());
        assert!(api_keys(&config, dir.path()).is_ok());
        config.ollama.listen = Some("0.0.0.0:11434".parse().unwrap());
        let refused = api_keys(&config, dir.path()).unwrap_err().to_string();
        assert!(refused.contains("ollama.listen"), "{refused}");
        config.server.api_keys =
            vec![serde_json::from_value(serde_json::json!("key-123456789")).unwrap()];
        assert_eq!(api_keys(&config, dir.path()).unwrap().len(), 1);
    }
}
