//! `GET /debug/fingerprint`: the identity headers the daemon sends upstream, tokens and cookies
//! redacted.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::accounts::{Account, AccountState, Quota, Secret, Tokens};

pub async fn fingerprint(State(state): State<AppState>) -> Json<Value> {
    let upstream = state.upstream();
    // The real headers of the first account, or of a placeholder when there is none yet.
    let account = state.first_account().unwrap_or_else(|| Account {
        id: "(none)".into(),
        chatgpt_account_id: "(no account signed in)".into(),
        email: None,
        plan: None,
        label: None,
        user_id: None,
        fedramp: false,
        state: AccountState::Active,
        tokens: Tokens {
            access_token: Secret::new(String::new()),
            refresh_token: Secret::new(String::new()),
            id_token: None,
        },
        last_refresh: None,
        refresh_started_at: None,
        login_reason: None,
        cooldown_until: None,
        quota: Quota::default(),
        requests: 0,
        usage: Default::default(),
    });
    let headers: BTreeMap<String, String> = upstream
        .headers(&account, "<conversation id>")
        .iter()
        .map(|(name, value)| {
            let shown = if name == "authorization" {
                "Bearer <redacted>".to_owned()
            } else if value.is_sensitive() {
                "<redacted>".to_owned()
            } else {
                value.to_str().unwrap_or("<binary>").to_owned()
            };
            (name.as_str().to_owned(), shown)
        })
        .collect();
    let identity = upstream.identity();
    Json(json!({
        "originator": identity.originator,
        "version": identity.version,
        "user_agent": identity.user_agent,
        "compress_requests": state.config().upstream.compress_requests,
        "base_url": state.config().upstream.base_url.as_str(),
        "headers": headers,
    }))
}
