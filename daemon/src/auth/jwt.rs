//! The JWT claims the client reads (protocol §1.6). Signatures are not verified — the official
//! client does not either; the backend does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// What the daemon needs from an account's tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub email: Option<String>,
    pub chatgpt_account_id: Option<String>,
    pub user_id: Option<String>,
    pub plan: Option<String>,
    pub fedramp: bool,
    pub expires_at: Option<i64>,
}

/// The payload of a JWT, or `None` when it is not one.
pub fn payload(token: &str) -> Option<Value> {
    payload_as(token)
}

/// The payload of a JWT read as `T`, or `None` when it is not one (or not a `T`).
fn payload_as<T: serde::de::DeserializeOwned>(token: &str) -> Option<T> {
    let part = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Only the `exp` claim of a token (read on every request, so no other claim is built).
pub fn expires_at(token: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Expiry {
        exp: Option<Value>,
    }
    payload_as::<Expiry>(token)?
        .exp
        .as_ref()
        .and_then(Value::as_i64)
}

const AUTH: &str = "https://api.openai.com/auth";
const PROFILE: &str = "https://api.openai.com/profile";

/// Claims from the id token (identity) and the access token (plan, expiry).
pub fn claims(id_token: Option<&str>, access_token: &str) -> Claims {
    let id = id_token.and_then(payload).unwrap_or(Value::Null);
    let access = payload(access_token).unwrap_or(Value::Null);
    let text = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let auth = |v: &Value, key: &str| {
        v.get(AUTH)
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Claims {
        email: text(&id, "/email")
            .or_else(|| {
                id.get(PROFILE)
                    .and_then(|p| p.get("email"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .or_else(|| {
                access
                    .get(PROFILE)
                    .and_then(|p| p.get("email"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
        chatgpt_account_id: auth(&id, "chatgpt_account_id")
            .or_else(|| auth(&access, "chatgpt_account_id")),
        user_id: auth(&id, "chatgpt_user_id")
            .or_else(|| auth(&id, "user_id"))
            .or_else(|| auth(&access, "chatgpt_user_id")),
        // The plan comes from the access token (§1.2); the id token's is a fallback.
        plan: auth(&access, "chatgpt_plan_type").or_else(|| auth(&id, "chatgpt_plan_type")),
        fedramp: id
            .get(AUTH)
            .and_then(|a| a.get("chatgpt_account_is_fedramp"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        expires_at: access.get("exp").and_then(Value::as_i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &Value) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.sig",
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    #[test]
    fn reads_identity_and_expiry() {
        let id = jwt(
            &serde_json::json!({"email": "u@example.com", "https://api.openai.com/auth": {
            "chatgpt_account_id": "acc-1", "chatgpt_plan_type": "plus", "chatgpt_user_id": "user-1", "chatgpt_account_is_fedramp": true}}),
        );
        let access = jwt(
            &serde_json::json!({"exp": 1_786_000_000, "https://api.openai.com/auth": {"chatgpt_plan_type": "pro"}}),
        );
        let c = claims(Some(&id), &access);
        assert_eq!(c.email.as_deref(), Some("u@example.com"));
        assert_eq!(c.chatgpt_account_id.as_deref(), Some("acc-1"));
        assert_eq!(c.user_id.as_deref(), Some("user-1"));
        assert_eq!(
            c.plan.as_deref(),
            Some("pro"),
            "the access token's plan wins"
        );
        assert!(c.fedramp);
        assert_eq!(c.expires_at, Some(1_786_000_000));
        assert_eq!(expires_at(&access), Some(1_786_000_000));
        assert_eq!(expires_at("not-a-jwt"), None);
    }

    #[test]
    fn tolerates_non_jwts() {
        assert_eq!(claims(None, "opaque-token"), Claims::default());
        assert_eq!(payload("a.!!!.c"), None);
    }
}
