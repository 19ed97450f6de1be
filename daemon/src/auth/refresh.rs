//! Token refresh (protocol §1.4). Refresh tokens rotate: once the auth server has answered, the
//! old refresh token is dead and the new one exists only in this process until it is saved. So a
//! refresh, once sent, always runs to its end in a task of its own and is saved, whoever waited
//! for it: a client that hangs up, a request that fails over, a shutdown (which waits for it)
//! never cancel it half-way. Waiters share the one refresh of their account.
//!
//! Before the exchange the account records, durably, that a refresh started; the mark is cleared
//! with the outcome. Found at start-up, it means the daemon died mid-exchange (kill -9, OOM,
//! power loss), and the next refresh tells whether the sign-in survived; the account then says
//! exactly what happened. Permanent failures put the account in `needs_login`, never in a loop;
//! transient ones back off, and while the old access token still works it is used meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::jwt;
use crate::accounts::{Account, AccountState, Accounts, Secret};
use crate::clock::{unix_now, utc_clock};
use crate::upstream::Upstream;

/// The official client's OAuth client id (§1.1).
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// The longest one exchange with the auth server may take.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);
/// After a transient failure, the next attempt on that account waits this long, doubling.
const FIRST_BACKOFF: i64 = 10;
const MAX_BACKOFF: i64 = 300;
/// An access token that expires sooner than this is not used while a refresh is failing.
const LAST_USABLE_SECONDS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The refresh token is dead (expired, reused, revoked): the person must sign in again.
    #[error("the sign-in of {account} has ended ({reason}); sign in again with `codexctl login`")]
    NeedsLogin { account: String, reason: String },
    /// The auth server could not be reached or failed; a later attempt may succeed.
    #[error("cannot refresh the token of {account}: {reason}")]
    Transient { account: String, reason: String },
    #[error("account {0} no longer exists")]
    Gone(String),
}

/// What a caller needs of an account's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// An access token good for at least this many more seconds (the refresh margin).
    ValidFor(i64),
    /// Any access token but this one: the backend refused it, or a person asked for new tokens.
    Replacing(&'a str),
}

impl Need<'_> {
    fn met_by(self, account: &Account, now: i64) -> bool {
        match self {
            Need::ValidFor(margin) => account
                .access_expires_at()
                .is_none_or(|exp| exp - margin > now),
            Need::Replacing(stale) => account.tokens.access_token.expose() != stale,
        }
    }

    /// Whether the account's current token may serve while a refresh is failing.
    fn can_wait(self, account: &Account, now: i64) -> bool {
        match self {
            Need::ValidFor(_) => Need::ValidFor(LAST_USABLE_SECONDS).met_by(account, now),
            Need::Replacing(_) => self.met_by(account, now),
        }
    }
}

type Outcome = Result<Account, AuthError>;

#[derive(Debug, Clone, Copy)]
struct Backoff {
    until: i64,
    delay: i64,
}

/// The refreshes of every account: at most one running per account, each in a task of its own.
#[derive(Debug, Clone)]
pub struct Refresher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    accounts: Arc<Accounts>,
    upstream: Arc<Upstream>,
    /// The refresh running for an account; every waiter subscribes to its outcome.
    running: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
    backoff: Mutex<HashMap<String, Backoff>>,
    tasks: TaskTracker,
    /// Set at a stop: no new refresh starts.
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Refresher {
    pub fn new(accounts: Arc<Accounts>, upstream: Arc<Upstream>) -> Self {
        Self {
            inner: Arc::new(Inner {
                accounts,
                upstream,
                running: Mutex::new(HashMap::new()),
                backoff: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// The account with tokens that meet `need`, refreshing them if they do not. A refresh
    /// already running for the account is joined rather than repeated; dropping this future
    /// never cancels the refresh.
    pub async fn fresh(&self, id: &str, need: Need<'_>) -> Result<Account, AuthError> {
        let inner = &self.inner;
        let get = || {
            inner
                .accounts
                .get(id)
                .ok_or_else(|| AuthError::Gone(id.to_owned()))
        };
        let account = get()?;
        if need.met_by(&account, unix_now()) {
            return Ok(account);
        }
        let mut outcome = {
            let mut running = lock(&inner.running);
            match running.get(id) {
                Some(outcome) => outcome.clone(),
                None => {
                    // Checked again under the lock: a refresh that just ended changed the
                    // account before it left `running`.
                    let account = get()?;
                    let now = unix_now();
                    if account.state == AccountState::NeedsLogin {
                        return Err(AuthError::NeedsLogin {
                            account: account.display_name().to_owned(),
                            reason: account
                                .login_reason
                                .clone()
                                .unwrap_or_else(|| "an earlier refresh was refused".into()),
                        });
                    }
                    if need.met_by(&account, now) {
                        return Ok(account);
                    }
                    if let Some(reason) = self.held_back(id, now) {
                        return if need.can_wait(&account, now) {
                            Ok(account)
                        } else {
                            Err(AuthError::Transient {
                                account: account.display_name().to_owned(),
                                reason,
                            })
                        };
                    }
                    let (tx, rx) = watch::channel(None);
                    running.insert(id.to_owned(), rx.clone());
                    inner.tasks.spawn(run(inner.clone(), id.to_owned(), tx));
                    rx
                }
            }
        };
        let result = match outcome.wait_for(Option::is_some).await {
            Ok(done) => done.clone().unwrap_or_else(|| Err(vanished(id))),
            Err(_) => Err(vanished(id)),
        };
        match result {
            Err(AuthError::Transient { .. })
                if get().is_ok_and(|a| need.can_wait(&a, unix_now())) =>
            {
                get()
            }
            other => other,
        }
    }

    /// Why no new refresh of `id` may start now, if none may.
    fn held_back(&self, id: &str, now: i64) -> Option<String> {
        if self.inner.stopping.load(Ordering::Acquire) {
            return Some("codex-proxy is stopping".into());
        }
        let backoff = lock(&self.inner.backoff).get(id).copied()?;
        (backoff.until > now).then(|| {
            format!(
                "the last attempt failed; the next one is in {} s",
                backoff.until - now
            )
        })
    }

    /// Whether a refresh of this account is running now.
    pub fn is_running(&self, id: &str) -> bool {
        lock(&self.inner.running).contains_key(id)
    }

    /// When a refresh of `account` started that did not finish: its mark is set and no refresh
    /// of it is running (the daemon stopped mid-exchange, or got no answer).
    pub fn interrupted_at(&self, account: &Account) -> Option<i64> {
        account
            .refresh_started_at
            .filter(|_| !self.is_running(&account.id))
    }

    /// When the next attempt on `id` may start, after a transient failure.
    pub fn next_attempt(&self, id: &str) -> Option<i64> {
        lock(&self.inner.backoff).get(id).map(|b| b.until)
    }

    /// No new refresh starts from now on (a stop); those running go on.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.tasks.close();
    }

    /// Waits up to `limit` for the running refreshes to end; false if some are still running.
    pub async fn wait(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.inner.tasks.wait())
            .await
            .is_ok()
    }
}

fn vanished(id: &str) -> AuthError {
    AuthError::Transient {
        account: id.to_owned(),
        reason: "the refresh stopped before it finished".into(),
    }
}

/// One refresh, in its own task: the exchange, the save, the bookkeeping, then the waiters.
async fn run(inner: Arc<Inner>, id: String, done: watch::Sender<Option<Outcome>>) {
    let outcome = exchange(&inner, &id).await;
    crate::metrics::metrics().refresh(match &outcome {
        Ok(_) => "ok",
        Err(AuthError::Transient { .. }) => "transient",
        Err(AuthError::NeedsLogin { .. }) => "needs_login",
        Err(_) => "gone",
    });
    {
        let mut backoff = lock(&inner.backoff);
        match &outcome {
            Err(AuthError::Transient { reason, .. }) => {
                let delay = backoff
                    .get(&id)
                    .map_or(FIRST_BACKOFF, |b| (b.delay * 2).min(MAX_BACKOFF));
                tracing::warn!(account = %id, "cannot refresh the token ({reason}); next attempt in {delay} s");
                backoff.insert(
                    id.clone(),
                    Backoff {
                        until: unix_now() + delay,
                        delay,
                    },
                );
            }
            _ => {
                backoff.remove(&id);
            }
        }
    }
    lock(&inner.running).remove(&id);
    done.send_replace(Some(outcome));
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The exchange with the auth server and its saved outcome.
async fn exchange(inner: &Inner, id: &str) -> Outcome {
    let accounts = &inner.accounts;
    let account = accounts
        .get(id)
        .ok_or_else(|| AuthError::Gone(id.to_owned()))?;
    let name = account.display_name().to_owned();
    let transient = |reason: String| AuthError::Transient {
        account: name.clone(),
        reason,
    };
    // Left by a process that stopped mid-exchange: the saved refresh token may be dead.
    let interrupted = account.refresh_started_at;
    let started = unix_now();
    accounts.update(id, |a| a.refresh_started_at = Some(started));
    if let Err(e) = accounts.persist().await {
        // Without the mark on disk nothing may rotate the token: the saved one is kept safe.
        accounts.update(id, |a| a.refresh_started_at = interrupted);
        return Err(transient(format!(
            "not refreshing while the state cannot be saved ({e}); the saved sign-in stays valid"
        )));
    }
    let body = json!({
        "client_id": CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": account.tokens.refresh_token.expose(),
    });
    // No answer: the server may or may not have rotated the token, so the mark stays.
    let (status, text) = inner
        .upstream
        .auth_post("/oauth/token", &body, REFRESH_TIMEOUT)
        .await
        .map_err(|e| transient(e.to_string()))?;
    if !status.is_success() {
        let Some(code) = classify(status, &text) else {
            // An answer that is not a rotation: this attempt changed nothing (an earlier,
            // unfinished one may have, so its mark stays).
            accounts.update(id, |a| a.refresh_started_at = interrupted);
            save_or_log(accounts).await;
            return Err(transient(format!("the auth server answered {status}")));
        };
        let reason = match interrupted {
            Some(at) => format!(
                "{code}: a token refresh at {} did not finish (no answer came, or codex-proxy \
                 stopped mid-exchange: killed, out of memory, power lost), and the auth server \
                 had already retired the saved token",
                utc_clock(at, unix_now())
            ),
            None => code,
        };
        tracing::warn!(account = %name, "refresh refused ({reason}); the account needs a new login");
        accounts.update(id, |a| {
            a.state = AccountState::NeedsLogin;
            a.login_reason = Some(reason.clone());
            a.refresh_started_at = None;
        });
        save_or_log(accounts).await;
        return Err(AuthError::NeedsLogin {
            account: name,
            reason,
        });
    }
    let tokens: TokenResponse = serde_json::from_str(&text)
        .map_err(|_| transient("the auth server's answer did not parse".into()))?;
    let now = unix_now();
    let updated = accounts
        .update_tokens(id, |a| {
            if let Some(t) = tokens.access_token {
                a.tokens.access_token = Secret::new(t);
            }
            if let Some(t) = tokens.refresh_token {
                a.tokens.refresh_token = Secret::new(t);
            }
            if let Some(t) = tokens.id_token {
                a.tokens.id_token = Some(Secret::new(t));
            }
            let claims = jwt::claims(
                a.tokens.id_token.as_ref().map(Secret::expose),
                a.tokens.access_token.expose(),
            );
            a.plan = claims.plan.or(a.plan.take());
            a.last_refresh = Some(now);
            a.refresh_started_at = None;
            a.clone()
        })
        .ok_or_else(|| AuthError::Gone(id.to_owned()))?;
    // The new refresh token is the only live one: kept in memory whatever the disk does, saved
    // now, and — if this write fails — saved again by the token scheduler until it sticks.
    match accounts.persist().await {
        Ok(()) => tracing::info!(account = %name, "token refreshed"),
        Err(e) => tracing::error!(account = %name, "token refreshed but not saved: {e}"),
    }
    Ok(updated)
}

async fn save_or_log(accounts: &Arc<Accounts>) {
    if let Err(e) = accounts.persist().await {
        tracing::error!("{e}");
    }
}

/// The reason a failure is permanent (§1.4), or `None` when it is transient.
pub fn classify(status: StatusCode, body: &str) -> Option<String> {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = json
        .get("error")
        .and_then(|e| {
            e.as_str()
                .map(str::to_owned)
                .or_else(|| e.get("code").and_then(Value::as_str).map(str::to_owned))
        })
        .or_else(|| json.get("code").and_then(Value::as_str).map(str::to_owned));
    match code.as_deref() {
        Some(
            c @ ("refresh_token_expired" | "refresh_token_reused" | "refresh_token_invalidated"),
        ) => Some(c.to_owned()),
        _ if status == StatusCode::UNAUTHORIZED => {
            Some(code.unwrap_or_else(|| "401 from the auth server".into()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_the_official_client() {
        let permanent = |s: u16, b: &str| classify(StatusCode::from_u16(s).unwrap(), b);
        assert_eq!(
            permanent(401, r#"{"error":{"code":"refresh_token_reused"}}"#).as_deref(),
            Some("refresh_token_reused")
        );
        assert_eq!(
            permanent(400, r#"{"error":"refresh_token_expired"}"#).as_deref(),
            Some("refresh_token_expired")
        );
        assert_eq!(
            permanent(400, r#"{"code":"refresh_token_invalidated"}"#).as_deref(),
            Some("refresh_token_invalidated")
        );
        assert!(permanent(401, "").is_some(), "any 401 is permanent");
        assert_eq!(permanent(500, r#"{"error":"server_error"}"#), None);
        assert_eq!(permanent(503, ""), None);
        assert_eq!(permanent(400, r#"{"error":"invalid_request"}"#), None);
    }
}
