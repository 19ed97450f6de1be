//! Tokens: claims, refresh (single-flight, persisted before use), import of Codex `auth.json`.

pub mod import;
pub mod jwt;
pub mod login;
pub mod refresh;

pub use refresh::{AuthError, Need, Refresher};

use crate::accounts::{Account, AccountState, Quota, Secret, Tokens};

/// An account from freshly obtained tokens; its identity comes from the id token's claims
/// (`account_id`, when the source names it, wins). `None` when no ChatGPT account is named.
pub fn account_from_tokens(
    id_token: String,
    access_token: String,
    refresh_token: String,
    account_id: Option<String>,
    last_refresh: Option<i64>,
) -> Option<Account> {
    let claims = jwt::claims(Some(&id_token), &access_token);
    Some(Account {
        id: String::new(),
        chatgpt_account_id: account_id.or(claims.chatgpt_account_id)?,
        email: claims.email,
        plan: claims.plan,
        label: None,
        user_id: claims.user_id,
        fedramp: claims.fedramp,
        state: AccountState::Active,
        tokens: Tokens {
            access_token: Secret::new(access_token),
            refresh_token: Secret::new(refresh_token),
            id_token: Some(Secret::new(id_token)),
        },
        last_refresh,
        refresh_started_at: None,
        login_reason: None,
        cooldown_until: None,
        quota: Quota::default(),
        requests: 0,
        usage: Default::default(),
    })
}
