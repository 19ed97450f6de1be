//! `GET /backend-api/wham/usage` (§5.2).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::util::now;
use super::{Incoming, Shared, gate};

pub async fn handle(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let seq = shared.record(&req, None, None);
    // `/wham/usage` carries auth and the Codex User-Agent but no originator: only auth is checked.
    let account = match gate::authenticate(&shared, &req) {
        Ok(account) => account,
        Err(rejection) => {
            shared.set_outcome(
                seq,
                rejection.status.as_u16(),
                Some(rejection.reason()),
                None,
            );
            return rejection.into_response();
        }
    };
    shared.set_outcome(seq, 200, None, Some(&account.account_id));
    let l = &account.limits;
    let now = now();
    let window = |used: f64, minutes: u64, reset_at: i64| {
        json!({
            "used_percent": used.round() as i64,
            "limit_window_seconds": minutes * 60,
            "reset_after_seconds": (reset_at - now).max(0),
            "reset_at": reset_at,
        })
    };
    let exhausted = l.exhausted_until().is_some();
    Json(json!({
        "plan_type": account.plan,
        "rate_limit": {
            "allowed": !exhausted,
            "limit_reached": exhausted,
            "primary_window": window(l.primary_used_percent, l.primary_window_minutes, l.primary_reset_at),
            "secondary_window": window(l.secondary_used_percent, l.secondary_window_minutes, l.secondary_reset_at),
        },
        "credits": {"has_credits": l.has_credits, "unlimited": l.unlimited_credits, "balance": l.credits_balance},
        "spend_control": {"reached": false, "individual_limit": null},
        "additional_rate_limits": [],
        "rate_limit_reached_type": if exhausted { json!({"type": "rate_limit_reached"}) } else { json!(null) },
        "rate_limit_reset_credits": null,
    }))
    .into_response()
}
