//! Checks every backend endpoint makes before looking at the body: bearer token, account
//! header, and (strictly) the identity headers of §2.2.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;

use super::accounts::Account;
use super::jwt::{self, JwtError};
use super::{Incoming, Rejection, Shared};

/// The account a valid request acts for.
pub fn authenticate(shared: &Arc<Shared>, req: &Incoming) -> Result<Account, Rejection> {
    let token = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .ok_or_else(Rejection::unauthorized)?;
    let claims = match jwt::verify(&shared.secret, token) {
        Ok(claims) => claims,
        Err(JwtError::Expired) => return Err(Rejection::token_expired()),
        Err(JwtError::Malformed | JwtError::BadSignature) => return Err(Rejection::unauthorized()),
    };
    // An id_token is a valid JWT too, but not for the API: its audience is the OAuth client.
    let for_api = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|aud| aud.iter().any(|a| a == "https://api.openai.com/v1"));
    if !for_api {
        return Err(Rejection::unauthorized());
    }
    let token_account = claims
        .pointer("/https:~1~1api.openai.com~1auth/chatgpt_account_id")
        .and_then(Value::as_str)
        .ok_or_else(Rejection::unauthorized)?;
    let account = shared
        .with(|inner| {
            inner
                .accounts
                .iter()
                .find(|a| a.account_id == token_account)
                .cloned()
        })
        .ok_or_else(Rejection::unauthorized)?;

    match req.header("chatgpt-account-id") {
        Some(id) if id == account.account_id => {}
        Some(_) => {
            return Err(Rejection::detail(
                StatusCode::FORBIDDEN,
                "The ChatGPT-Account-ID header does not match the signed-in account.",
            ));
        }
        None => return Err(Rejection::strict("ChatGPT-Account-ID header missing")),
    }
    Ok(account)
}

/// Identity headers the official client always sends (§2.2). Returns the client version.
pub fn check_identity(shared: &Arc<Shared>, req: &Incoming) -> Result<String, Rejection> {
    let strict = shared.with(|inner| inner.strict_identity);
    let version = req.header("version").unwrap_or_default().to_owned();
    if !strict {
        return Ok(version);
    }
    let originator = req
        .header("originator")
        .filter(|o| !o.trim().is_empty())
        .ok_or_else(|| Rejection::strict("originator header missing"))?;
    let user_agent = req.header("user-agent").unwrap_or_default();
    let prefix = format!("{originator}/");
    let Some(rest) = user_agent.strip_prefix(&prefix) else {
        return Err(Rejection::strict(format!(
            "User-Agent `{user_agent}` does not start with `{originator}/` (format \
             `{{originator}}/{{version}} ({{os}} {{os_version}}; {{arch}}) {{terminal}}`)"
        )));
    };
    // `{version} ({os} {os_version}; {arch})…`
    let well_formed = rest.split_once(" (").is_some_and(|(v, tail)| {
        super::util::parse_version(v).is_some() && tail.contains("; ") && tail.contains(')')
    });
    if !well_formed {
        return Err(Rejection::strict(format!(
            "User-Agent `{user_agent}` is not `{{originator}}/{{version}} ({{os}} {{os_version}}; {{arch}}) …`"
        )));
    }
    if super::util::parse_version(&version).is_none() {
        return Err(Rejection::strict(
            "version header missing or not a version number",
        ));
    }
    Ok(version)
}

/// Both checks, in the order the backend makes them.
pub fn admit(shared: &Arc<Shared>, req: &Incoming) -> Result<(Account, String), Rejection> {
    let account = authenticate(shared, req)?;
    let version = check_identity(shared, req)?;
    Ok((account, version))
}
