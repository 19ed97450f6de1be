//! `GET /auth/accounts`: every account with its plan, state and quota — never a token.

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::AppState;
use crate::accounts::{AccountState, Window};
use crate::clock::unix_now;

fn window(w: Option<Window>, now: i64) -> Value {
    match w {
        None => Value::Null,
        Some(w) => json!({
            "used_percent": w.used_percent,
            "window_minutes": w.window_minutes,
            "resets_at": w.resets_at,
            "resets_in_seconds": w.resets_at.map(|t| (t - now).max(0)),
        }),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    /// Fetch every active account's quota from the backend first (unless it is fresh).
    #[serde(default)]
    refresh: bool,
}

/// Quota learned this recently is not fetched again for `?refresh=true`: a page that polls with
/// it must not turn into a request to the backend per account per call.
const FRESH_QUOTA_SECONDS: i64 = 30;

pub async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Json<Value> {
    if query.refresh {
        let now = unix_now();
        let ids: Vec<String> = state
            .accounts()
            .all()
            .into_iter()
            .filter(|a| a.state == AccountState::Active)
            .filter(|a| {
                a.quota
                    .updated_at
                    .is_none_or(|t| now - t >= FRESH_QUOTA_SECONDS)
            })
            .map(|a| a.id)
            .collect();
        let fetches = ids
            .iter()
            .map(|id| crate::schedulers::refresh_quota(&state, id));
        for (id, result) in ids
            .iter()
            .zip(futures_util::future::join_all(fetches).await)
        {
            if let Err(e) = result {
                tracing::warn!(account = %id, "cannot fetch quota: {e}");
            }
        }
    }
    let now = unix_now();
    let accounts: Vec<Value> = state
        .accounts()
        .all()
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "email": a.email,
                "label": a.label,
                "plan": a.plan,
                "status": a.status(now),
                "quota": {
                    "primary": window(a.quota.primary, now),
                    "secondary": window(a.quota.secondary, now),
                    "updated_at": a.quota.updated_at,
                },
                "requests": a.requests,
                "usage": a.usage,
                "last_refresh": a.last_refresh,
                "token_expires_at": a.access_expires_at(),
                "login_reason": a.login_reason,
                "refresh_interrupted_at": state.refresher().interrupted_at(a),
            })
        })
        .collect();
    Json(json!({"strategy": state.accounts().strategy(), "accounts": accounts}))
}
