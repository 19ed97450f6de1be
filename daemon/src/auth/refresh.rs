//! Token refresh (protocol §1.4): before expiry, single-flight per account, new tokens persisted
//! before they are used; permanent failures put the account in `needs_login`, never in a loop.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::jwt;
use crate::accounts::{Account, AccountState, Accounts, Secret};
use crate::clock::unix_now;
use crate::upstream::Upstream;

/// The official client's OAuth client id (§1.1).
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

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

#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The account with an access token good for at least `margin` seconds, refreshing if needed.
/// With `stale`, refreshes only if the account still holds that token (the backend rejected
/// it); concurrent callers share one refresh.
pub async fn fresh_account(
    accounts: &Accounts,
    upstream: &Upstream,
    id: &str,
    margin: i64,
    stale: Option<&str>,
) -> Result<Account, AuthError> {
    let needs = |account: &Account| match stale {
        Some(token) => account.tokens.access_token.expose() == token,
        None => account
            .access_expires_at()
            .is_some_and(|exp| exp - margin <= unix_now()),
    };
    let account = accounts
        .get(id)
        .ok_or_else(|| AuthError::Gone(id.to_owned()))?;
    if !needs(&account) {
        return Ok(account);
    }
    let lock = accounts.refresh_lock(id);
    let _single_flight = lock.lock().await;
    // Whoever held the lock before us may have refreshed already — or found the refresh token
    // dead, in which case asking again would only repeat the refusal.
    let account = accounts
        .get(id)
        .ok_or_else(|| AuthError::Gone(id.to_owned()))?;
    if account.state == AccountState::NeedsLogin {
        return Err(AuthError::NeedsLogin {
            account: account.display_name().to_owned(),
            reason: "an earlier refresh was refused".into(),
        });
    }
    if !needs(&account) {
        return Ok(account);
    }
    refresh_now(accounts, upstream, &account).await
}

/// One refresh call; the new tokens are on disk before this returns them.
pub async fn refresh_now(
    accounts: &Accounts,
    upstream: &Upstream,
    account: &Account,
) -> Result<Account, AuthError> {
    let name = account.display_name().to_owned();
    let body = json!({
        "client_id": CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": account.tokens.refresh_token.expose(),
    });
    let transient = |reason: String| AuthError::Transient {
        account: name.clone(),
        reason,
    };
    let (status, text) = upstream
        .auth_post("/oauth/token", &body, REFRESH_TIMEOUT)
        .await
        .map_err(|e| transient(e.to_string()))?;
    if !status.is_success() {
        return match classify(status, &text) {
            Some(reason) => {
                tracing::warn!(account = %name, "refresh refused ({reason}); the account needs a new login");
                accounts.update(&account.id, |a| a.state = AccountState::NeedsLogin);
                if let Err(e) = accounts.persist().await {
                    tracing::error!("cannot save accounts: {e:#}");
                }
                Err(AuthError::NeedsLogin {
                    account: name,
                    reason,
                })
            }
            None => Err(transient(format!("the auth server answered {status}"))),
        };
    }
    let tokens: TokenResponse = serde_json::from_str(&text)
        .map_err(|_| transient("the auth server's answer did not parse".into()))?;
    let now = unix_now();
    let updated = accounts
        .update(&account.id, |a| {
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
            a.clone()
        })
        .ok_or_else(|| AuthError::Gone(account.id.clone()))?;
    // A rotated refresh token exists only in memory until this write: a crash before it would
    // lose the account, so nothing uses the new tokens until they are on disk.
    accounts
        .persist()
        .await
        .map_err(|e| transient(format!("cannot save the new tokens: {e:#}")))?;
    tracing::info!(account = %name, "token refreshed");
    Ok(updated)
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
