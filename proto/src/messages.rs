//! Every message of the control protocol. Fields are added only with `#[serde(default)]` (a
//! minor version bump); removing or changing one is a major bump.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ProtocolVersion;

/// A secret crossing the socket toward the daemon (an OAuth code, a pasted redirect URL, an
/// `auth.json`) or the API key toward its owner. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(<redacted>)")
    }
}

/// The client's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: ProtocolVersion,
    /// Who is asking, for the daemon's log (`codexctl 0.1.0`).
    pub client: String,
}

/// The daemon's first frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerHello {
    Welcome(Welcome),
    /// The daemon will not talk to this peer (permission, protocol); it closes after this.
    Refused(ErrorReply),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: ProtocolVersion,
    pub daemon_version: String,
}

/// Account rotation strategies (`[auth] rotation_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    LeastUsed,
    RoundRobin,
    Sticky,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeastUsed => "least_used",
            Self::RoundRobin => "round_robin",
            Self::Sticky => "sticky",
        }
    }
}

/// What a client asks. `account` fields take our id, the ChatGPT account id, the email or the
/// label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Streams a [`Response::Status`] every `interval_ms` until the client hangs up.
    WatchStatus {
        interval_ms: u64,
    },
    Accounts,
    AccountEnable {
        account: String,
    },
    AccountDisable {
        account: String,
    },
    /// Sets (or with `None` clears) an account's label.
    AccountLabel {
        account: String,
        label: Option<String>,
    },
    /// Refreshes the account's tokens and quota now.
    AccountRefresh {
        account: String,
    },
    /// Revokes the account's refresh token (best effort) and forgets the account.
    Logout {
        account: String,
    },
    /// Starts a browser login whose callback comes to `http://localhost:{callback_port}`.
    LoginBrowser {
        callback_port: u16,
    },
    /// Completes it with what the callback received.
    LoginBrowserComplete {
        state: String,
        code: Sensitive,
    },
    /// Completes a browser login from the whole redirect URL (`login --paste`).
    LoginPaste {
        url: Sensitive,
    },
    /// Device-code login: streams [`Response::DeviceCode`], then the outcome.
    LoginDevice,
    /// Imports a Codex `auth.json` (its text).
    LoginImport {
        auth_json: Sensitive,
    },
    RotateStrategy {
        strategy: Strategy,
    },
    /// Moves the sticky / round-robin position to the next account.
    RotateNext,
    RotatePin {
        account: String,
    },
    RotateUnpin,
    Usage,
    /// Usage over time: 5-minute buckets of the last day, or (`daily`) days of the last 30.
    UsageHistory {
        #[serde(default)]
        daily: bool,
    },
    /// The most recent requests, newest first (at most `limit`; only failures with `failed`;
    /// only one surface with `surface`).
    Requests {
        limit: u32,
        #[serde(default)]
        failed: bool,
        #[serde(default)]
        surface: Option<String>,
    },
    KeyShow,
    KeyRotate,
    /// Re-reads the config file (as SIGHUP does).
    Reload,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Status(StatusReport),
    Accounts {
        accounts: Vec<AccountView>,
    },
    /// One account after a change to it.
    Account {
        account: AccountView,
        message: String,
    },
    LoginStarted {
        authorize_url: String,
        redirect_uri: String,
        state: String,
    },
    /// Not final: show these to the person; the outcome follows.
    DeviceCode {
        user_code: String,
        verification_url: String,
        expires_in_seconds: u64,
    },
    LoggedIn {
        account: AccountView,
        /// The account was known; its tokens were replaced in place.
        replaced: bool,
    },
    LoggedOut {
        account: AccountView,
    },
    Rotation(RotationView),
    Usage(UsageReport),
    UsageHistory(UsageHistoryView),
    Requests {
        requests: Vec<RequestView>,
    },
    Key {
        key: Sensitive,
        /// `generated` (kept in state; `key rotate` works) or `configured` (`server.api_keys`).
        source: String,
    },
    Reloaded(ReloadReport),
    Error(ErrorReply),
}

impl Response {
    /// Whether this ends the request (everything but the progress of a waiting command).
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::DeviceCode { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No account matches.
    NotFound,
    /// More than one account matches.
    Ambiguous,
    /// The request cannot be done as asked (bad value, wrong state).
    Invalid,
    /// It was tried and failed (auth server, backend, disk).
    Failed,
    PermissionDenied,
    ProtocolMismatch,
    /// The frame was too large or malformed.
    BadFrame,
    /// Too many connections are open (from this user, or in all); try again shortly (1.1).
    Busy,
    /// A kind this client does not know (a newer daemon).
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    /// For a person: what went wrong and what to do.
    pub message: String,
}

impl ErrorReply {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub daemon_version: String,
    pub protocol: ProtocolVersion,
    pub pid: u32,
    pub uptime_seconds: u64,
    /// `http://127.0.0.1:8080`.
    pub listen: String,
    /// `system` or `user`.
    pub mode: String,
    pub config_file: Option<String>,
    pub state_dir: String,
    pub strategy: Strategy,
    /// The pinned account's id.
    pub pinned: Option<String>,
    /// Requests being served now.
    pub in_flight: u64,
    /// Requests waiting for a free account slot (1.2).
    #[serde(default)]
    pub queued: u64,
    /// The daemon's clock (Unix seconds), for "resets in".
    pub now: i64,
    pub accounts: Vec<AccountView>,
    /// Set while saving the accounts fails (1.1).
    #[serde(default)]
    pub save_failure: Option<SaveFailure>,
    /// Accounts whose newest tokens are only in memory: stopping the daemon now would lose
    /// their sign-in (1.1).
    #[serde(default)]
    pub unsaved_tokens: Vec<String>,
}

/// Writes of the state directory have been failing since `since` (1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveFailure {
    pub since: i64,
    pub attempts: u32,
    pub error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    Active,
    CoolingDown,
    NeedsLogin,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: String,
    pub chatgpt_account_id: String,
    pub email: Option<String>,
    pub label: Option<String>,
    pub plan: Option<String>,
    pub state: AccountState,
    /// Set while cooling down.
    pub cooldown_until: Option<i64>,
    pub pinned: bool,
    /// The short (about five hours) quota window.
    pub primary: Option<QuotaWindow>,
    /// The long (weekly) window.
    pub secondary: Option<QuotaWindow>,
    pub quota_updated_at: Option<i64>,
    pub requests: u64,
    pub last_refresh: Option<i64>,
    pub token_expires_at: Option<i64>,
    /// Why the account needs a new login (1.1).
    #[serde(default)]
    pub login_reason: Option<String>,
    /// A token refresh started then and did not finish: the daemon stopped mid-exchange. The
    /// next refresh tells whether the sign-in survived (1.1).
    #[serde(default)]
    pub refresh_interrupted_at: Option<i64>,
}

impl AccountView {
    /// Label, else email, else id.
    pub fn name(&self) -> &str {
        self.label
            .as_deref()
            .or(self.email.as_deref())
            .unwrap_or(&self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuotaWindow {
    pub used_percent: f64,
    pub window_minutes: u64,
    pub resets_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationView {
    pub strategy: Strategy,
    pub pinned: Option<String>,
    /// The account a new request would go to now, if any is usable.
    pub next: Option<String>,
    pub message: String,
}

/// Usage over time, oldest bucket first (buckets without traffic are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageHistoryView {
    pub step_seconds: i64,
    pub buckets: Vec<HistoryBucket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryBucket {
    /// Unix seconds (UTC), a multiple of `step_seconds`.
    pub start: i64,
    pub rows: Vec<HistoryRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub account: String,
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

/// One request as the daemon recorded it: never a prompt, a key or a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    /// When it ended, Unix milliseconds.
    pub at_ms: i64,
    /// `chat`, `responses`, `messages`, `count_tokens`, `compact`, `models`, `backend`, `other`.
    pub surface: String,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub account: Option<String>,
    pub status: u16,
    pub duration_ms: u64,
    /// Until the first byte of the body reached the client.
    pub first_byte_ms: Option<u64>,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Why it failed (an error status, or a failure after the response began).
    pub error: Option<String>,
}

impl RequestView {
    /// It failed: an error status, or a failure after the response began.
    pub fn failed(&self) -> bool {
        self.status >= 400 || self.error.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub accounts: Vec<AccountUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUsage {
    pub id: String,
    pub name: String,
    pub requests: u64,
    pub models: BTreeMap<String, ModelUsage>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    pub responses: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

impl ModelUsage {
    /// Share of input tokens served from the prompt cache.
    pub fn cache_hit_rate(&self) -> f64 {
        if self.input_tokens == 0 {
            0.0
        } else {
            self.cached_tokens as f64 / self.input_tokens as f64
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub config_file: Option<String>,
    /// Settings now in effect (`server.api_keys`, `auth.rotation_strategy`, …).
    pub applied: Vec<String>,
    /// Settings that changed but take effect only after a restart.
    pub restart_needed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes_are_stable() {
        let request = Request::AccountLabel {
            account: "work".into(),
            label: Some("Work".into()),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"request": "account_label", "account": "work", "label": "Work"})
        );
        assert_eq!(
            serde_json::to_value(Request::Status).unwrap(),
            serde_json::json!({"request": "status"})
        );
        let error = Response::Error(ErrorReply::new(ErrorKind::NotFound, "no account x"));
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({"response": "error", "kind": "not_found", "message": "no account x"})
        );
        let hello: ServerHello = serde_json::from_value(serde_json::json!({
            "type": "welcome", "protocol": {"major": 1, "minor": 7}, "daemon_version": "9.9.9",
            "a_field_from_the_future": true
        }))
        .unwrap();
        assert!(matches!(hello, ServerHello::Welcome(w) if w.protocol.minor == 7));
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let request = Request::LoginPaste {
            url: Sensitive::new("http://localhost:1455/auth/callback?code=SECRET&state=s"),
        };
        assert!(!format!("{request:?}").contains("SECRET"));
        let key = Response::Key {
            key: Sensitive::new("codex-proxy-SECRET"),
            source: "generated".into(),
        };
        assert!(!format!("{key:?}").contains("SECRET"));
    }
}
