//! `/__fake/…`: scripting and inspection over HTTP, for the standalone binary (demos,
//! benchmarks, manual testing). Tests in Rust use the [`FakeUpstream`](super::FakeUpstream)
//! methods instead.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::script::Script;
use super::{Shared, oauth};

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/script", post(enqueue))
        .route("/rule", post(rule))
        .route("/default", post(set_default))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/accounts", get(accounts))
        .route("/usage", post(usage))
        .route("/device/approve", post(approve_device))
}

async fn enqueue(State(shared): State<Arc<Shared>>, Json(script): Json<Script>) -> StatusCode {
    shared.with(|inner| inner.queue.push_back(script));
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Rule {
    marker: String,
    script: Script,
}

async fn rule(State(shared): State<Arc<Shared>>, Json(rule): Json<Rule>) -> StatusCode {
    shared.with(|inner| inner.rules.push((rule.marker, rule.script)));
    StatusCode::NO_CONTENT
}

async fn set_default(
    State(shared): State<Arc<Shared>>,
    Json(script): Json<Option<Script>>,
) -> StatusCode {
    shared.with(|inner| inner.default_script = script);
    StatusCode::NO_CONTENT
}

async fn requests(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.with(|inner| serde_json::to_value(&inner.records).unwrap_or_default()))
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.with(|inner| inner.records.clear());
    StatusCode::NO_CONTENT
}

/// Every account with a freshly minted token set and the matching `auth.json`.
async fn accounts(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let count = shared.with(|inner| inner.accounts.len());
    let list: Vec<Value> = (0..count)
        .filter_map(|i| {
            let tokens = oauth::issue_tokens(&shared, i)?;
            let account = shared.with(|inner| inner.accounts.get(i).cloned())?;
            Some(json!({
                "index": i,
                "email": account.email,
                "plan": account.plan,
                "account_id": account.account_id,
                "limits": account.limits,
                "auth_json": tokens.auth_json(),
            }))
        })
        .collect();
    Json(Value::Array(list))
}

#[derive(Deserialize)]
struct UsageSet {
    account: usize,
    primary: f64,
    secondary: f64,
}

async fn usage(State(shared): State<Arc<Shared>>, Json(set): Json<UsageSet>) -> StatusCode {
    shared.with(|inner| match inner.accounts.get_mut(set.account) {
        Some(acc) => {
            acc.limits.primary_used_percent = set.primary;
            acc.limits.secondary_used_percent = set.secondary;
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    })
}

#[derive(Deserialize)]
struct Approve {
    user_code: String,
    #[serde(default)]
    account: usize,
}

async fn approve_device(
    State(shared): State<Arc<Shared>>,
    Json(approve): Json<Approve>,
) -> StatusCode {
    if oauth::decide_device(&shared, &approve.user_code, Some(approve.account)) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}
