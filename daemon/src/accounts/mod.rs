//! Accounts and their tokens, as kept in the state directory (`accounts.json`).
//!
//! This is the read side the gateway needs; logins, refresh and rotation write it (a later
//! milestone). Tokens only ever live in [`Secret`], whose `Debug` hides them.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const ACCOUNTS_FILE: &str = "accounts.json";
pub const SCHEMA_VERSION: u32 = 1;

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    #[default]
    Active,
    NeedsLogin,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub fedramp: bool,
    #[serde(default)]
    pub state: AccountState,
    pub tokens: Tokens,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AccountsFile {
    pub schema_version: u32,
    #[serde(default)]
    pub accounts: Vec<Account>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid accounts file: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "{path} has schema version {found}, newer than this codex-proxy understands ({SCHEMA_VERSION}); upgrade codex-proxy"
    )]
    TooNew { path: String, found: u32 },
}

/// Reads the accounts from the state directory; no file means no accounts yet.
pub fn load(state_dir: &Path) -> Result<Vec<Account>, StoreError> {
    let path = state_dir.join(ACCOUNTS_FILE);
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Read {
                path: shown,
                source,
            });
        }
    };
    // The reason names the JSON path, never a value: the file holds tokens.
    let de = &mut serde_json::Deserializer::from_str(&text);
    let file: AccountsFile = serde_path_to_error::deserialize(de).map_err(|e| {
        // serde's messages may quote the offending value; only "missing field" is safe to show.
        let what = e.inner().to_string();
        let what = what
            .split(" at line")
            .next()
            .filter(|m| m.starts_with("missing field"))
            .unwrap_or("invalid value");
        StoreError::Invalid {
            path: shown.clone(),
            reason: format!(
                "{what} at `{}` (line {}, column {})",
                e.path(),
                e.inner().line(),
                e.inner().column()
            ),
        }
    })?;
    if file.schema_version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: shown,
            found: file.schema_version,
        });
    }
    Ok(file.accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(ACCOUNTS_FILE),
            r#"{"schema_version":1,"accounts":[{"id":"a1","chatgpt_account_id":"acc","email":"u@example.com",
               "tokens":{"access_token":"eyJ.secret.x","refresh_token":"rt_secret"}}]}"#,
        )
        .unwrap();
        let accounts = load(dir.path()).unwrap();
        assert_eq!(accounts[0].state, AccountState::Active);
        let debug = format!("{accounts:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert_eq!(accounts[0].tokens.access_token.expose(), "eyJ.secret.x");
    }

    #[test]
    fn missing_file_is_no_accounts_and_errors_never_show_values() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        std::fs::write(
            dir.path().join(ACCOUNTS_FILE),
            r#"{"schema_version":1,"accounts":[{"id":"a","tokens":{"access_token":"tok_abc"}}]}"#,
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("accounts[0]") && !err.contains("tok_abc"),
            "{err}"
        );
        std::fs::write(dir.path().join(ACCOUNTS_FILE), r#"{"schema_version":9}"#).unwrap();
        assert!(
            load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("upgrade")
        );
    }
}
