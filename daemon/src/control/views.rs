//! The daemon's accounts as the control protocol shows them (never a token).

use codex_proxy_proto as proto;

use crate::accounts::{Account, Status, Window};
use crate::config::RotationStrategy;

/// `interrupted_at`: when a refresh of it started that did not finish
/// ([`crate::auth::Refresher::interrupted_at`]).
pub fn account(
    a: &Account,
    pinned: Option<&str>,
    now: i64,
    interrupted_at: Option<i64>,
) -> proto::AccountView {
    let (state, cooldown_until) = match a.status(now) {
        Status::Active => (proto::AccountState::Active, None),
        Status::CoolingDown { until } => (proto::AccountState::CoolingDown, Some(until)),
        Status::NeedsLogin => (proto::AccountState::NeedsLogin, None),
        Status::Disabled => (proto::AccountState::Disabled, None),
    };
    let window = |w: Option<Window>| {
        w.map(|w| proto::QuotaWindow {
            used_percent: w.used_percent,
            window_minutes: w.window_minutes,
            resets_at: w.resets_at,
        })
    };
    proto::AccountView {
        id: a.id.clone(),
        chatgpt_account_id: a.chatgpt_account_id.clone(),
        email: a.email.clone(),
        label: a.label.clone(),
        plan: a.plan.clone(),
        state,
        cooldown_until,
        pinned: pinned == Some(a.id.as_str()),
        primary: window(a.quota.primary),
        secondary: window(a.quota.secondary),
        quota_updated_at: a.quota.updated_at,
        requests: a.requests,
        last_refresh: a.last_refresh,
        token_expires_at: a.access_expires_at(),
        login_reason: a.login_reason.clone(),
        refresh_interrupted_at: interrupted_at,
    }
}

/// Every account as the control protocol shows it.
pub fn accounts(state: &crate::app::AppState, now: i64) -> Vec<proto::AccountView> {
    let pinned = state.accounts().pinned();
    state
        .accounts()
        .all()
        .iter()
        .map(|a| {
            account(
                a,
                pinned.as_deref(),
                now,
                state.refresher().interrupted_at(a),
            )
        })
        .collect()
}

/// One account as the control protocol shows it.
pub fn one(state: &crate::app::AppState, a: &Account, now: i64) -> proto::AccountView {
    let pinned = state.accounts().pinned();
    account(
        a,
        pinned.as_deref(),
        now,
        state.refresher().interrupted_at(a),
    )
}

pub fn strategy(s: RotationStrategy) -> proto::Strategy {
    match s {
        RotationStrategy::LeastUsed => proto::Strategy::LeastUsed,
        RotationStrategy::RoundRobin => proto::Strategy::RoundRobin,
        RotationStrategy::Sticky => proto::Strategy::Sticky,
    }
}

pub fn rotation_strategy(s: proto::Strategy) -> RotationStrategy {
    match s {
        proto::Strategy::LeastUsed => RotationStrategy::LeastUsed,
        proto::Strategy::RoundRobin => RotationStrategy::RoundRobin,
        proto::Strategy::Sticky => RotationStrategy::Sticky,
    }
}

pub fn error(kind: proto::ErrorKind, message: impl Into<String>) -> proto::Response {
    proto::Response::Error(proto::ErrorReply::new(kind, message))
}
