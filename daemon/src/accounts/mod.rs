//! Accounts and their tokens, owned by the daemon and kept in `accounts.json` in the state
//! directory (0600, replaced atomically). Tokens only ever live in [`Secret`], whose `Debug`
//! hides them.

pub mod breaker;
mod disk;
mod quota;
mod store;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use disk::{SaveError, SaveFailure, SaveHealth};
pub use quota::{Member, Pooled, Quota, Window, pooled};
pub use store::{Accounts, PickError, ResolveError, StoreError};

pub const ACCOUNTS_FILE: &str = "accounts.json";
/// 2: quota, cool-down, request counts, last refresh. Version 1 files load unchanged.
pub const SCHEMA_VERSION: u32 = 2;

/// A token or key. Never printed: `Debug` shows only that it exists.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<Secret>,
}

/// The stored state; "cooling down" is derived from [`Account::cooldown_until`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    #[default]
    Active,
    NeedsLogin,
    Disabled,
}

/// The state a person sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    Active,
    CoolingDown { until: i64 },
    NeedsLogin,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Our id (`codexctl accounts list`).
    pub id: String,
    /// What the `ChatGPT-Account-ID` header carries.
    pub chatgpt_account_id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub fedramp: bool,
    #[serde(default)]
    pub state: AccountState,
    pub tokens: Tokens,
    /// Unix seconds of the last successful refresh.
    #[serde(default)]
    pub last_refresh: Option<i64>,
    /// Saved just before a refresh exchange and cleared with its outcome. Found set when no
    /// refresh is running, it means the daemon stopped mid-exchange (kill -9, OOM, power loss):
    /// the auth server may have retired the saved refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_started_at: Option<i64>,
    /// Why the account needs a new login, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_reason: Option<String>,
    /// A usage limit was hit; not used for new requests before this time.
    #[serde(default)]
    pub cooldown_until: Option<i64>,
    #[serde(default)]
    pub quota: Quota,
    /// Requests served since the account was added.
    #[serde(default)]
    pub requests: u64,
    /// Token counts per model, from the usage of completed responses.
    #[serde(default)]
    pub usage: std::collections::BTreeMap<String, ModelUsage>,
}

/// What one model consumed on one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    pub responses: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Account {
    pub fn status(&self, now: i64) -> Status {
        match self.state {
            AccountState::NeedsLogin => Status::NeedsLogin,
            AccountState::Disabled => Status::Disabled,
            AccountState::Active => match self.cooldown_until {
                Some(until) if until > now => Status::CoolingDown { until },
                _ => Status::Active,
            },
        }
    }

    /// Expiry of the access token (from its `exp` claim).
    pub fn access_expires_at(&self) -> Option<i64> {
        crate::auth::jwt::expires_at(self.tokens.access_token.expose())
    }

    /// A name for logs and messages: label, else email, else id. Never a token.
    pub fn display_name(&self) -> &str {
        self.label
            .as_deref()
            .or(self.email.as_deref())
            .unwrap_or(&self.id)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AccountsFile {
    pub schema_version: u32,
    #[serde(default)]
    pub accounts: Vec<Account>,
}
