//! The ChatGPT accounts the fake knows, their quota windows, and the tokens it mints for them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::util::{now, random_hex, random_token};
use super::{CLIENT_ID, jwt};

/// One ChatGPT account (workspace) with a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// `chatgpt_account_id`: what the `ChatGPT-Account-ID` header carries.
    pub account_id: String,
    pub user_id: String,
    pub email: String,
    pub plan: String,
    pub fedramp: bool,
    pub limits: Limits,
}

/// Quota windows as the backend reports them in `x-codex-*` headers and `/wham/usage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    pub primary_used_percent: f64,
    pub primary_window_minutes: u64,
    pub primary_reset_at: i64,
    pub secondary_used_percent: f64,
    pub secondary_window_minutes: u64,
    pub secondary_reset_at: i64,
    pub has_credits: bool,
    pub unlimited_credits: bool,
    pub credits_balance: String,
}

impl Limits {
    pub fn fresh() -> Self {
        let now = now();
        Self {
            primary_used_percent: 0.0,
            primary_window_minutes: 300,
            primary_reset_at: now + 300 * 60,
            secondary_used_percent: 0.0,
            secondary_window_minutes: 10_080,
            secondary_reset_at: now + 10_080 * 60,
            has_credits: false,
            unlimited_credits: false,
            credits_balance: String::new(),
        }
    }

    /// The earliest reset of an exhausted window, if a window is exhausted right now.
    pub fn exhausted_until(&self) -> Option<i64> {
        let now = now();
        let primary = (self.primary_used_percent >= 100.0 && self.primary_reset_at > now)
            .then_some(self.primary_reset_at);
        let secondary = (self.secondary_used_percent >= 100.0 && self.secondary_reset_at > now)
            .then_some(self.secondary_reset_at);
        match (primary, secondary) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The `x-codex-*` rate-limit headers of §4.3.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "x-codex-primary-used-percent",
                format!("{:.1}", self.primary_used_percent),
            ),
            (
                "x-codex-primary-window-minutes",
                self.primary_window_minutes.to_string(),
            ),
            (
                "x-codex-primary-reset-at",
                self.primary_reset_at.to_string(),
            ),
            (
                "x-codex-secondary-used-percent",
                format!("{:.1}", self.secondary_used_percent),
            ),
            (
                "x-codex-secondary-window-minutes",
                self.secondary_window_minutes.to_string(),
            ),
            (
                "x-codex-secondary-reset-at",
                self.secondary_reset_at.to_string(),
            ),
            ("x-codex-credits-has-credits", self.has_credits.to_string()),
            (
                "x-codex-credits-unlimited",
                self.unlimited_credits.to_string(),
            ),
            ("x-codex-credits-balance", self.credits_balance.clone()),
        ]
    }
}

impl Account {
    pub fn new(email: &str, plan: &str) -> Self {
        Self {
            account_id: uuid::Uuid::new_v4().to_string(),
            user_id: format!("user-{}", random_token::<18>()),
            email: email.to_owned(),
            plan: plan.to_owned(),
            fedramp: false,
            limits: Limits::fresh(),
        }
    }

    fn auth_claim(&self) -> Value {
        json!({
            "chatgpt_account_id": self.account_id,
            "chatgpt_plan_type": self.plan,
            "chatgpt_user_id": self.user_id,
            "user_id": self.user_id,
        })
    }

    /// The access token: what goes in `Authorization: Bearer` to the backend.
    pub fn access_token(&self, secret: &[u8], issuer: &str, ttl_seconds: i64) -> String {
        let now = now();
        let mut auth = self.auth_claim();
        auth["chatgpt_compute_residency"] = json!("no_constraint");
        jwt::sign(
            secret,
            &json!({
                "iss": format!("{issuer}/"),
                "aud": ["https://api.openai.com/v1"],
                "client_id": CLIENT_ID,
                "sub": format!("auth0|{}", self.user_id),
                "iat": now,
                "nbf": now,
                "exp": now + ttl_seconds,
                "jti": uuid::Uuid::new_v4().to_string(),
                "scp": ["openid", "profile", "email", "offline_access"],
                "session_id": format!("authsess_{}", random_hex(12)),
                "https://api.openai.com/auth": auth,
                "https://api.openai.com/profile": {"email": self.email, "email_verified": true},
            }),
        )
    }

    /// The id token: identity claims the client reads at login (§1.6).
    pub fn id_token(&self, secret: &[u8], issuer: &str) -> String {
        let now = now();
        let mut auth = self.auth_claim();
        auth["chatgpt_account_is_fedramp"] = json!(self.fedramp);
        auth["organizations"] = json!([{
            "id": format!("org-{}", random_hex(12)), "is_default": true, "role": "owner", "title": "Personal"
        }]);
        auth["completed_platform_onboarding"] = json!(false);
        auth["is_org_owner"] = json!(true);
        jwt::sign(
            secret,
            &json!({
                "iss": format!("{issuer}/"),
                "aud": [CLIENT_ID],
                "sub": format!("auth0|{}", self.user_id),
                "iat": now,
                "auth_time": now,
                "exp": now + 3600,
                "email": self.email,
                "email_verified": true,
                "https://api.openai.com/auth": auth,
            }),
        )
    }
}

/// A full token response, as `/oauth/token` returns it and `auth.json` stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: String,
    pub account_id: String,
}

impl TokenSet {
    /// The `~/.codex/auth.json` document for these tokens (§1.5).
    pub fn auth_json(&self) -> Value {
        json!({
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": self.id_token,
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "account_id": self.account_id,
            },
            "last_refresh": "2026-08-07T10:11:12.123456789Z",
        })
    }
}

pub fn new_refresh_token() -> String {
    format!("rt_{}", random_token::<32>())
}

/// The accounts every fake starts with: distinct plans, so tests can tell them apart.
pub fn seed_accounts() -> Vec<Account> {
    vec![
        Account::new("alice@example.com", "plus"),
        Account::new("bob@example.com", "pro"),
        Account::new("carol@example.com", "team"),
    ]
}
