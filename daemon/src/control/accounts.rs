//! `accounts list|enable|disable|label|refresh`.

use codex_proxy_proto::{ErrorKind, ErrorReply, Response};

use super::views::{self, error};
use crate::accounts::{AccountState, ResolveError};
use crate::clock::unix_now;
use crate::server::AppState;

/// The longest label accepted.
const MAX_LABEL: usize = 64;

pub fn list(state: &AppState) -> Response {
    let now = unix_now();
    let pinned = state.accounts().pinned();
    Response::Accounts {
        accounts: state
            .accounts()
            .all()
            .iter()
            .map(|a| views::account(a, pinned.as_deref(), now))
            .collect(),
    }
}

/// Our id for an account reference, or the error to answer.
pub fn resolve(state: &AppState, query: &str) -> Result<String, ErrorReply> {
    state.accounts().resolve(query).map_err(|e| {
        let kind = match e {
            ResolveError::NotFound(_) => ErrorKind::NotFound,
            ResolveError::Ambiguous(..) => ErrorKind::Ambiguous,
        };
        ErrorReply::new(kind, e.to_string())
    })
}

/// The account as it is now, with `message`.
pub fn changed(state: &AppState, id: &str, message: String) -> Response {
    let pinned = state.accounts().pinned();
    match state.accounts().get(id) {
        Some(a) => Response::Account {
            account: views::account(&a, pinned.as_deref(), unix_now()),
            message,
        },
        None => error(
            ErrorKind::NotFound,
            format!("account {id} was removed meanwhile"),
        ),
    }
}

async fn save(state: &AppState) -> Result<(), ErrorReply> {
    state.accounts().persist().await.map_err(|e| {
        ErrorReply::new(
            ErrorKind::Failed,
            format!("cannot save the accounts: {e:#}"),
        )
    })
}

pub async fn set_enabled(state: &AppState, query: &str, enabled: bool) -> Response {
    let id = match resolve(state, query) {
        Ok(id) => id,
        Err(e) => return Response::Error(e),
    };
    let outcome = state.accounts().update(&id, |a| match (a.state, enabled) {
        (AccountState::NeedsLogin, true) => Err(format!(
            "{} needs a new sign-in, not enabling: run `codexctl login`",
            a.display_name()
        )),
        (_, true) => {
            a.state = AccountState::Active;
            Ok(format!("{} enabled", a.display_name()))
        }
        (_, false) => {
            a.state = AccountState::Disabled;
            Ok(format!(
                "{} disabled: no new requests go to it (running ones finish)",
                a.display_name()
            ))
        }
    });
    match outcome {
        Some(Ok(message)) => {
            if let Err(e) = save(state).await {
                return Response::Error(e);
            }
            tracing::info!(account = %id, "{message}");
            changed(state, &id, message)
        }
        Some(Err(message)) => error(ErrorKind::Invalid, message),
        None => error(ErrorKind::NotFound, format!("no account {query}")),
    }
}

pub async fn label(state: &AppState, query: &str, label: Option<&str>) -> Response {
    let id = match resolve(state, query) {
        Ok(id) => id,
        Err(e) => return Response::Error(e),
    };
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    if let Some(label) = label {
        if label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
            return error(
                ErrorKind::Invalid,
                format!("a label is at most {MAX_LABEL} printable characters"),
            );
        }
        // A label is also a way to name the account: it must name only this one.
        if let Ok(other) = state.accounts().resolve(label)
            && other != id
        {
            return error(
                ErrorKind::Invalid,
                format!("`{label}` already names account {other}; choose another label"),
            );
        }
    }
    state
        .accounts()
        .update(&id, |a| a.label = label.map(str::to_owned));
    if let Err(e) = save(state).await {
        return Response::Error(e);
    }
    let message = match label {
        Some(l) => format!("{id} is now labelled `{l}`"),
        None => format!("{id} has no label now"),
    };
    changed(state, &id, message)
}

/// Refreshes the tokens now (even if still valid) and the quota.
pub async fn refresh(state: &AppState, query: &str) -> Response {
    let id = match resolve(state, query) {
        Ok(id) => id,
        Err(e) => return Response::Error(e),
    };
    let Some(account) = state.accounts().get(&id) else {
        return error(ErrorKind::NotFound, format!("no account {query}"));
    };
    if account.state == AccountState::NeedsLogin {
        return error(
            ErrorKind::Invalid,
            format!(
                "{} needs a new sign-in; run `codexctl login`",
                account.display_name()
            ),
        );
    }
    let margin = state.config().auth.refresh_margin_seconds as i64;
    let stale = account.tokens.access_token.expose().to_owned();
    if let Err(e) = crate::auth::fresh_account(
        state.accounts(),
        state.upstream(),
        &id,
        margin,
        Some(&stale),
    )
    .await
    {
        return error(ErrorKind::Failed, e.to_string());
    }
    let message = match crate::schedulers::refresh_quota(state, &id).await {
        Ok(()) => format!("{} refreshed: new tokens and quota", account.display_name()),
        Err(e) => format!(
            "{}: new tokens, but the quota could not be read ({e})",
            account.display_name()
        ),
    };
    changed(state, &id, message)
}
