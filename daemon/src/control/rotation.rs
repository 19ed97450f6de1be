//! `rotate strategy|next|pin|unpin`. Changes last until the daemon restarts; the config's
//! `auth.rotation_strategy` is the lasting setting.

use codex_proxy_proto::{ErrorKind, Response, RotationView, Strategy};

use super::views::{self, error};
use crate::app::AppState;
use crate::clock::unix_now;
use crate::config::RotationStrategy;

fn view(state: &AppState, message: String) -> Response {
    let accounts = state.accounts();
    Response::Rotation(RotationView {
        strategy: views::strategy(accounts.strategy()),
        pinned: accounts.pinned(),
        next: accounts.preview(unix_now()).map(|a| a.id),
        message,
    })
}

pub fn set_strategy(state: &AppState, strategy: Strategy) -> Response {
    state
        .accounts()
        .set_strategy(views::rotation_strategy(strategy));
    tracing::info!("rotation strategy set to {}", strategy.as_str());
    view(
        state,
        format!(
            "strategy is now {} until the daemon restarts (set auth.rotation_strategy in the config to keep it)",
            strategy.as_str()
        ),
    )
}

pub fn next(state: &AppState) -> Response {
    let accounts = state.accounts();
    if accounts.strategy() == RotationStrategy::LeastUsed {
        return error(
            ErrorKind::Invalid,
            "least_used picks the account with the most quota left, so there is no position to move; \
             use `codexctl rotate pin ID`, or switch with `codexctl rotate strategy sticky`",
        );
    }
    accounts.rotate_next();
    let message = match accounts.preview(unix_now()) {
        Some(a) => format!("new requests now go to {}", a.display_name()),
        None => "no account is usable right now".to_owned(),
    };
    view(state, message)
}

pub fn pin(state: &AppState, query: &str) -> Response {
    let id = match super::accounts::resolve(state, query) {
        Ok(id) => id,
        Err(e) => return Response::Error(e),
    };
    state.accounts().pin(Some(id.clone()));
    let message = match state.accounts().get(&id) {
        Some(a) if a.status(unix_now()) == crate::accounts::Status::Active => {
            format!(
                "{} is pinned: it serves every request while it can",
                a.display_name()
            )
        }
        Some(a) => format!(
            "{} is pinned, but not usable now; other accounts serve until it is",
            a.display_name()
        ),
        None => format!("{id} is pinned"),
    };
    tracing::info!(account = %id, "account pinned");
    view(state, message)
}

pub fn unpin(state: &AppState) -> Response {
    let was = state.accounts().pinned();
    state.accounts().pin(None);
    let message = match was {
        Some(id) => format!("{id} is no longer pinned"),
        None => "no account was pinned".to_owned(),
    };
    view(state, message)
}
