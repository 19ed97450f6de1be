//! Import of the official client's `~/.codex/auth.json` (protocol §1.5).

use serde::Deserialize;

use crate::accounts::Account;

#[derive(Deserialize)]
struct AuthJson {
    #[serde(default)]
    auth_mode: Option<String>,
    #[serde(default)]
    tokens: Option<AuthTokens>,
}

#[derive(Deserialize)]
struct AuthTokens {
    id_token: String,
    access_token: String,
    refresh_token: String,
    #[serde(default)]
    account_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("not a Codex auth.json: {0}")]
    Invalid(String),
    #[error("this auth.json holds an API key (auth_mode `{0}`), not a ChatGPT sign-in")]
    NotChatGpt(String),
    #[error("the tokens name no ChatGPT account (no chatgpt_account_id claim)")]
    NoAccount,
}

/// An account from the text of an `auth.json`; claims come from its id token.
pub fn from_auth_json(text: &str) -> Result<Account, ImportError> {
    // The reason never quotes the file: it holds tokens.
    let parsed: AuthJson = serde_json::from_str(text)
        .map_err(|e| ImportError::Invalid(format!("line {}, column {}", e.line(), e.column())))?;
    if let Some(mode) = parsed
        .auth_mode
        .as_deref()
        .filter(|m| !m.starts_with("chatgpt"))
    {
        return Err(ImportError::NotChatGpt(mode.to_owned()));
    }
    let tokens = parsed
        .tokens
        .ok_or_else(|| ImportError::NotChatGpt("apikey".into()))?;
    super::account_from_tokens(
        tokens.id_token,
        tokens.access_token,
        tokens.refresh_token,
        tokens.account_id,
        None,
    )
    .ok_or(ImportError::NoAccount)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn jwt(payload: &str) -> String {
        format!("h.{}.s", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn imports_a_chatgpt_sign_in() {
        let id = jwt(
            r#"{"email":"u@example.com","https://api.openai.com/auth":{"chatgpt_account_id":"3f0c","chatgpt_plan_type":"plus"}}"#,
        );
        let access =
            jwt(r#"{"exp":1786000000,"https://api.openai.com/auth":{"chatgpt_plan_type":"pro"}}"#);
        let text = format!(
            r#"{{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":{{"id_token":"{id}","access_token":"{access}","refresh_token":"rt_x","account_id":"3f0c"}},"last_refresh":"2026-08-07T10:11:12.123Z"}}"#
        );
        let account = from_auth_json(&text).unwrap();
        assert_eq!(account.chatgpt_account_id, "3f0c");
        assert_eq!(account.email.as_deref(), Some("u@example.com"));
        assert_eq!(account.plan.as_deref(), Some("pro"));
        assert_eq!(account.tokens.refresh_token.expose(), "rt_x");
    }

    #[test]
    fn refuses_api_keys_and_garbage_without_echoing_it() {
        assert_eq!(
            from_auth_json(r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-secret"}"#),
            Err(ImportError::NotChatGpt("apikey".into()))
        );
        let err = from_auth_json(r#"{"tokens": "sk-secret"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("sk-secret"), "{err}");
    }
}
