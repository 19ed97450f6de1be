//! `accounts list|enable|disable|label|refresh`.

use codex_proxy_proto::{ErrorKind, ErrorReply, Response};

use super::views::{self, error};
use crate::accounts::{Account, AccountState, ResolveError};
use crate::app::AppState;
use crate::clock::unix_now;

/// The longest label accepted.
const MAX_LABEL: usize = 64;

pub fn list(state: &AppState) -> Response {
    Response::Accounts {
        accounts: views::accounts(state, unix_now()),
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
    match state.accounts().get(id) {
        Some(a) => Response::Account {
            account: views::one(state, &a, unix_now()),
            message,
        },
        None => error(
            ErrorKind::NotFound,
            format!("account {id} was removed meanwhile"),
        ),
    }
}

/// Changes one account the transactional way: saved first, then in memory; when the write
/// fails nothing changed and the error says why.
async fn change<R: Send + 'static>(
    state: &AppState,
    id: &str,
    f: impl Fn(&mut Account) -> R + Send + 'static,
) -> Result<Option<R>, ErrorReply> {
    let id = id.to_owned();
    state
        .accounts()
        .transact(move |list| list.iter_mut().find(|a| a.id == id).map(&f))
        .await
        .map_err(|e| ErrorReply::new(ErrorKind::Failed, format!("{e}; nothing was changed")))
}

pub async fn set_enabled(state: &AppState, query: &str, enabled: bool) -> Response {
    let id = match resolve(state, query) {
        Ok(id) => id,
        Err(e) => return Response::Error(e),
    };
    let outcome = change(state, &id, move |a| match (a.state, enabled) {
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
    })
    .await;
    match outcome {
        Err(e) => Response::Error(e),
        Ok(Some(Ok(message))) => {
            tracing::info!(account = %id, "{message}");
            changed(state, &id, message)
        }
        Ok(Some(Err(message))) => error(ErrorKind::Invalid, message),
        Ok(None) => error(ErrorKind::NotFound, format!("no account {query}")),
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
    let new_label = label.map(str::to_owned);
    if let Err(e) = change(state, &id, move |a| a.label.clone_from(&new_label)).await {
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
    // A forced refresh: the person asked for new tokens, however long the old ones last.
    let stale = account.tokens.access_token.expose().to_owned();
    if let Err(e) = state
        .refresher()
        .fresh(&id, crate::auth::Need::Replacing(&stale))
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
