//! Login flows (protocol §1.2, §1.3, §1.5) as daemon operations: the daemon does every exchange
//! with the auth server; `codexctl` only does the human part (open a browser, show a code, relay
//! a callback or a pasted URL).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

use super::import::{self, ImportError};
use super::refresh::CLIENT_ID;
use crate::accounts::{Account, Accounts, Secret};
use crate::upstream::Upstream;

/// The scopes the official client asks for (§1.2).
pub const SCOPE: &str =
    "openid profile email offline_access api.connectors.read api.connectors.invoke";
/// The callback ports on the auth server's allow-list (§1.1).
pub const CALLBACK_PORT: u16 = 1455;
pub const FALLBACK_CALLBACK_PORT: u16 = 1457;
/// A browser login not completed within this time is forgotten.
pub const LOGIN_TTL: Duration = Duration::from_secs(15 * 60);
/// The device code is valid this long (§1.3).
pub const DEVICE_TTL: Duration = Duration::from_secs(15 * 60);
const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error(
        "no login is waiting for this callback (it expired after 15 minutes, or was already completed); start again"
    )]
    UnknownState,
    #[error("the sign-in was refused: {0}")]
    Denied(String),
    #[error("that is not the redirect URL of a sign-in: {0}")]
    BadUrl(String),
    #[error("the auth server refused the code: {0}")]
    Exchange(String),
    #[error("cannot reach the auth server: {0}")]
    Unreachable(String),
    #[error("device code login is not enabled for this account or server")]
    DeviceUnavailable,
    #[error("the device code expired before it was approved; start again")]
    DeviceExpired,
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("the tokens name no ChatGPT account")]
    NoAccount,
    #[error("no account {0}")]
    UnknownAccount(String),
    #[error("cannot save the account: {0}")]
    Save(String),
}

/// A browser login waiting for its callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowserLogin {
    pub state: String,
    pub authorize_url: String,
    pub redirect_uri: String,
}

#[derive(Debug)]
struct Pending {
    verifier: Secret,
    redirect_uri: String,
    started: Instant,
}

/// A device login: show `user_code` and `verification_url` to the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLogin {
    pub device_auth_id: String,
    pub user_code: String,
    pub verification_url: String,
    pub interval_seconds: u64,
}

/// The account a login produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginOutcome {
    pub account_id: String,
    pub email: Option<String>,
    pub plan: Option<String>,
    /// The account was known and its tokens were replaced in place.
    pub replaced: bool,
}

/// At most this many browser logins wait at once; a new one evicts the oldest.
const MAX_PENDING: usize = 32;

#[derive(Debug)]
pub struct Logins {
    pending: Mutex<HashMap<String, Pending>>,
    ttl: Duration,
}

impl Default for Logins {
    fn default() -> Self {
        Self::with_ttl(LOGIN_TTL)
    }
}

fn random_b64<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    // Without an OS random source no login can be secure: refuse loudly.
    getrandom::fill(&mut bytes).expect("OS random number generator");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE (§1.2): 64 random bytes as the verifier, base64url(SHA-256) as the S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = random_b64::<64>();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

impl Logins {
    /// Browser logins not completed within `ttl` are forgotten (the daemon uses [`LOGIN_TTL`]).
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            pending: Mutex::default(),
            ttl,
        }
    }

    /// Starts a browser login whose callback arrives at `http://localhost:{port}/auth/callback`.
    pub fn begin_browser(&self, upstream: &Upstream, port: u16) -> BrowserLogin {
        let (verifier, challenge) = pkce();
        let state = random_b64::<32>();
        let redirect_uri = format!("http://localhost:{port}/auth/callback");
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        // The exact parameters, in the official client's order (§1.2).
        url.append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", SCOPE)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("id_token_add_organizations", "true")
            .append_pair("codex_cli_simplified_flow", "true")
            .append_pair("state", &state)
            .append_pair("originator", &upstream.identity().originator);
        let authorize_url = format!("{}/oauth/authorize?{}", upstream.auth_url(), url.finish());
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.retain(|_, p| p.started.elapsed() < self.ttl);
        if pending.len() >= MAX_PENDING
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(
            state.clone(),
            Pending {
                verifier: Secret::new(verifier),
                redirect_uri: redirect_uri.clone(),
                started: Instant::now(),
            },
        );
        BrowserLogin {
            state,
            authorize_url,
            redirect_uri,
        }
    }

    /// Completes a browser login from its callback's `code` and `state`.
    pub async fn complete_browser(
        &self,
        accounts: &Arc<Accounts>,
        upstream: &Arc<Upstream>,
        state: &str,
        code: &str,
    ) -> Result<LoginOutcome, LoginError> {
        let pending = {
            let mut map = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.remove(state)
                .filter(|p| p.started.elapsed() < self.ttl)
                .ok_or(LoginError::UnknownState)?
        };
        finish(
            accounts,
            upstream,
            code.to_owned(),
            pending.redirect_uri,
            pending.verifier,
        )
        .await
    }

    /// Completes a browser login from the whole redirect URL a person pasted.
    pub async fn complete_paste(
        &self,
        accounts: &Arc<Accounts>,
        upstream: &Arc<Upstream>,
        pasted: &str,
    ) -> Result<LoginOutcome, LoginError> {
        let url = url::Url::parse(pasted.trim()).map_err(|e| LoginError::BadUrl(e.to_string()))?;
        let get = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(error) = get("error") {
            return Err(LoginError::Denied(denial(
                &error,
                get("error_description").as_deref(),
            )));
        }
        let (Some(code), Some(state)) = (get("code"), get("state")) else {
            return Err(LoginError::BadUrl("it has no `code` and `state`".into()));
        };
        // The callback may carry a suffix after the state (§1.2); the login is keyed by the state.
        let state = state.split('.').next().unwrap_or(&state).to_owned();
        self.complete_browser(accounts, upstream, &state, &code)
            .await
    }

    /// Starts a device-code login (§1.3).
    pub async fn begin_device(&self, upstream: &Upstream) -> Result<DeviceLogin, LoginError> {
        let (status, body) = upstream
            .auth_post(
                "/api/accounts/deviceauth/usercode",
                &json!({"client_id": CLIENT_ID}),
                AUTH_TIMEOUT,
            )
            .await
            .map_err(|e| LoginError::Unreachable(e.to_string()))?;
        if status == StatusCode::NOT_FOUND {
            return Err(LoginError::DeviceUnavailable);
        }
        if !status.is_success() {
            return Err(LoginError::Exchange(format!("{status}")));
        }
        let json: Value = serde_json::from_str(&body)
            .map_err(|_| LoginError::Exchange("unreadable answer".into()))?;
        let text = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_owned);
        let user_code = text("user_code")
            .or_else(|| text("usercode"))
            .ok_or_else(|| LoginError::Exchange("no user code".into()))?;
        let device_auth_id =
            text("device_auth_id").ok_or_else(|| LoginError::Exchange("no device id".into()))?;
        // The interval arrives as a string (§1.3).
        let interval_seconds = json
            .get("interval")
            .and_then(|v| {
                v.as_str()
                    .and_then(|s| s.trim().parse().ok())
                    .or_else(|| v.as_u64())
            })
            .unwrap_or(5);
        Ok(DeviceLogin {
            device_auth_id,
            user_code,
            verification_url: format!("{}/codex/device", upstream.auth_url()),
            interval_seconds,
        })
    }

    /// Polls until the person approves (then stores the account), declines, or the code expires.
    pub async fn wait_device(
        &self,
        accounts: &Arc<Accounts>,
        upstream: &Arc<Upstream>,
        device: &DeviceLogin,
    ) -> Result<LoginOutcome, LoginError> {
        let started = Instant::now();
        let interval = Duration::from_secs(device.interval_seconds.clamp(1, 60));
        let body = json!({"device_auth_id": device.device_auth_id, "user_code": device.user_code});
        loop {
            let (status, text) = upstream
                .auth_post("/api/accounts/deviceauth/token", &body, AUTH_TIMEOUT)
                .await
                .map_err(|e| LoginError::Unreachable(e.to_string()))?;
            match status.as_u16() {
                200..=299 => {
                    let grant: Value = serde_json::from_str(&text)
                        .map_err(|_| LoginError::Exchange("unreadable grant".into()))?;
                    let field = |k: &str| {
                        grant
                            .get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let redirect = format!("{}/deviceauth/callback", upstream.auth_url());
                    return finish(
                        accounts,
                        upstream,
                        field("authorization_code"),
                        redirect,
                        Secret::new(field("code_verifier")),
                    )
                    .await;
                }
                // Still pending (§1.3).
                403 | 404 => {}
                _ => {
                    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let error = json
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("refused");
                    return Err(LoginError::Denied(denial(
                        error,
                        json.get("error_description").and_then(Value::as_str),
                    )));
                }
            }
            if started.elapsed() + interval > DEVICE_TTL {
                return Err(LoginError::DeviceExpired);
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Imports a Codex `auth.json` (§1.5).
    pub async fn import(
        &self,
        accounts: &Arc<Accounts>,
        text: &str,
    ) -> Result<LoginOutcome, LoginError> {
        let account = import::from_auth_json(text)?;
        save(accounts, account).await
    }

    /// Signs an account out: revokes its refresh token (best effort) and forgets it.
    pub async fn logout(
        &self,
        accounts: &Arc<Accounts>,
        upstream: &Upstream,
        id: &str,
    ) -> Result<Account, LoginError> {
        let account = accounts
            .get(id)
            .ok_or_else(|| LoginError::UnknownAccount(id.to_owned()))?;
        let body = json!({
            "token": account.tokens.refresh_token.expose(),
            "token_type_hint": "refresh_token",
            "client_id": CLIENT_ID,
        });
        match upstream
            .auth_post("/oauth/revoke", &body, Duration::from_secs(10))
            .await
        {
            Ok((status, _)) if status.is_success() => {}
            Ok((status, _)) => {
                tracing::warn!(account = %account.display_name(), "revoking the refresh token failed ({status}); forgetting it anyway")
            }
            Err(e) => {
                tracing::warn!(account = %account.display_name(), "cannot revoke the refresh token ({e}); forgetting it anyway")
            }
        }
        accounts
            .remove(id)
            .await
            .map_err(|e| LoginError::Save(e.to_string()))?
            .ok_or_else(|| LoginError::UnknownAccount(id.to_owned()))
    }
}

fn denial(error: &str, description: Option<&str>) -> String {
    if description.is_some_and(|d| d.contains("missing_codex_entitlement")) {
        return "Codex is not enabled for this workspace".into();
    }
    match description {
        Some(d) => format!("{error}: {d}"),
        None => error.to_owned(),
    }
}

#[derive(Deserialize)]
struct CodeTokens {
    id_token: String,
    access_token: String,
    refresh_token: String,
}

/// The authorization-code exchange (§1.2): a form post; all three tokens are required.
async fn exchange_code(
    upstream: &Upstream,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<CodeTokens, LoginError> {
    let (status, text) = upstream
        .auth_form_post(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", CLIENT_ID),
                ("code_verifier", verifier),
            ],
            AUTH_TIMEOUT,
        )
        .await
        .map_err(|e| LoginError::Unreachable(e.to_string()))?;
    if !status.is_success() {
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let reason = json
            .get("error_description")
            .or_else(|| json.pointer("/error/message"))
            .or_else(|| json.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(LoginError::Exchange(format!("{status}: {reason}")));
    }
    serde_json::from_str(&text)
        .map_err(|_| LoginError::Exchange("the answer lacks id, access or refresh token".into()))
}

/// The code exchange and the save of its tokens, in a task of its own: once the auth server has
/// spent the code, its tokens are kept even if whoever asked has gone.
async fn finish(
    accounts: &Arc<Accounts>,
    upstream: &Arc<Upstream>,
    code: String,
    redirect_uri: String,
    verifier: Secret,
) -> Result<LoginOutcome, LoginError> {
    let (accounts, upstream) = (accounts.clone(), upstream.clone());
    tokio::spawn(async move {
        let tokens = exchange_code(&upstream, &code, &redirect_uri, verifier.expose()).await?;
        store(&accounts, tokens).await
    })
    .await
    .unwrap_or_else(|e| Err(LoginError::Save(format!("the login stopped: {e}"))))
}

/// Builds the account from fresh tokens and saves it (replacing an existing one in place).
async fn store(accounts: &Arc<Accounts>, tokens: CodeTokens) -> Result<LoginOutcome, LoginError> {
    let now = crate::clock::unix_now();
    let account = super::account_from_tokens(
        tokens.id_token,
        tokens.access_token,
        tokens.refresh_token,
        None,
        Some(now),
    )
    .ok_or(LoginError::NoAccount)?;
    save(accounts, account).await
}

async fn save(accounts: &Arc<Accounts>, account: Account) -> Result<LoginOutcome, LoginError> {
    let (email, plan) = (account.email.clone(), account.plan.clone());
    // On disk before anyone relies on it; when the write fails the login did not happen.
    let (account_id, replaced) = accounts
        .upsert(account)
        .await
        .map_err(|e| LoginError::Save(e.to_string()))?;
    tracing::info!(account = %email.as_deref().unwrap_or(&account_id), replaced, "signed in");
    Ok(LoginOutcome {
        account_id,
        email,
        plan,
        replaced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::upstream::Identity;

    #[test]
    fn the_pkce_verifier_never_shows_in_debug() {
        let config = Config::default();
        let upstream = Upstream::new(&config, Identity::new(&config.client_identity, None))
            .expect("upstream client");
        let logins = Logins::default();
        let login = logins.begin_browser(&upstream, CALLBACK_PORT);
        let verifier = logins
            .pending
            .lock()
            .expect("pending logins")
            .get(&login.state)
            .map(|p| p.verifier.expose().to_owned())
            .expect("the login is pending");
        assert!(verifier.len() >= 43);
        let shown = format!("{logins:?}");
        assert!(!shown.contains(&verifier), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
