//! `login` (browser, paste, device, import) and `logout`: the daemon does every exchange with
//! the auth server; `codexctl` only does the human part.

use codex_proxy_proto::{ErrorKind, Response};

use super::Connection;
use super::views::{self, error};
use crate::app::AppState;
use crate::auth::login::{DEVICE_TTL, DeviceLogin, LoginError, LoginOutcome};
use crate::clock::unix_now;

fn failed(e: &LoginError) -> Response {
    let kind = match e {
        LoginError::UnknownState
        | LoginError::BadUrl(_)
        | LoginError::Import(_)
        | LoginError::NoAccount => ErrorKind::Invalid,
        LoginError::UnknownAccount(_) => ErrorKind::NotFound,
        _ => ErrorKind::Failed,
    };
    error(kind, e.to_string())
}

/// A new sign-in's quota is fetched before the answer, so `codexctl status` shows it at once.
const QUOTA_AT_LOGIN: std::time::Duration = std::time::Duration::from_secs(10);

async fn logged_in(state: &AppState, result: Result<LoginOutcome, LoginError>) -> Response {
    match result {
        Ok(outcome) => {
            let id = &outcome.account_id;
            match tokio::time::timeout(QUOTA_AT_LOGIN, crate::schedulers::refresh_quota(state, id))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(account = %id, "signed in; the quota could not be read yet: {e}")
                }
                Err(_) => {
                    tracing::warn!(account = %id, "signed in; the quota did not come within {} s", QUOTA_AT_LOGIN.as_secs())
                }
            }
            let Some(account) = state.accounts().get(&outcome.account_id) else {
                return error(ErrorKind::Failed, "the account vanished right after login");
            };
            Response::LoggedIn {
                account: views::one(state, &account, unix_now()),
                replaced: outcome.replaced,
            }
        }
        Err(e) => failed(&e),
    }
}

pub fn begin_browser(state: &AppState, port: u16) -> Response {
    if port == 0 {
        return error(ErrorKind::Invalid, "the callback port must not be 0");
    }
    let login = state.logins().begin_browser(state.upstream(), port);
    Response::LoginStarted {
        authorize_url: login.authorize_url,
        redirect_uri: login.redirect_uri,
        state: login.state,
    }
}

pub async fn complete_browser(state: &AppState, login_state: &str, code: &str) -> Response {
    let result = state
        .logins()
        .complete_browser(state.accounts(), state.upstream(), login_state, code)
        .await;
    logged_in(state, result).await
}

pub async fn paste(state: &AppState, url: &str) -> Response {
    let result = state
        .logins()
        .complete_paste(state.accounts(), state.upstream(), url)
        .await;
    logged_in(state, result).await
}

/// A device-code login waiting for a person to approve it.
#[derive(Debug)]
pub struct DeviceStarted {
    device: DeviceLogin,
    /// What to show the person: [`Response::DeviceCode`].
    pub shown: Response,
}

/// Asks the auth server for a device code.
pub async fn device_begin(state: &AppState) -> Result<DeviceStarted, Response> {
    let device = state
        .logins()
        .begin_device(state.upstream())
        .await
        .map_err(|e| failed(&e))?;
    let shown = Response::DeviceCode {
        user_code: device.user_code.clone(),
        verification_url: device.verification_url.clone(),
        expires_in_seconds: DEVICE_TTL.as_secs(),
    };
    Ok(DeviceStarted { device, shown })
}

/// Waits until the code is approved (or expires) and signs the account in.
pub async fn device_finish(state: &AppState, started: DeviceStarted) -> Response {
    let result = state
        .logins()
        .wait_device(state.accounts(), state.upstream(), &started.device)
        .await;
    logged_in(state, result).await
}

/// Streams the device code, then waits for approval; a client that hangs up cancels the wait.
pub async fn device(state: &AppState, conn: &mut Connection) -> bool {
    let started = match device_begin(state).await {
        Ok(started) => started,
        Err(refused) => return conn.send(&refused).await,
    };
    if !conn.send(&started.shown).await {
        return false;
    }
    tokio::select! {
        response = device_finish(state, started) => conn.send(&response).await,
        () = conn.closed() => {
            tracing::info!("device-code login abandoned by the client");
            false
        }
    }
}

pub async fn import(state: &AppState, auth_json: &str) -> Response {
    let result = state.logins().import(state.accounts(), auth_json).await;
    logged_in(state, result).await
}

pub async fn logout(state: &AppState, query: &str) -> Response {
    let id = match super::accounts::resolve(state, query) {
        Ok(id) => id,
        Err(e) => return Response::Error(e),
    };
    let pinned = state.accounts().pinned();
    match state
        .logins()
        .logout(state.accounts(), state.upstream(), &id)
        .await
    {
        Ok(account) => {
            tracing::info!(account = %account.display_name(), "signed out");
            Response::LoggedOut {
                account: views::account(&account, pinned.as_deref(), unix_now(), None),
            }
        }
        Err(e) => failed(&e),
    }
}
