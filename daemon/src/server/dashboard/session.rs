//! Dashboard sessions: random tokens in an `HttpOnly` cookie, each with its own CSRF token;
//! bounded in number and in time; sign-in failures rate limited.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::server::auth::constant_time_eq;

pub const COOKIE: &str = "codex_proxy_session";
pub const CLEAR_COOKIE: &str =
    "codex_proxy_session=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0";
/// Sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 64;
/// Failed sign-ins allowed per window, across all clients.
const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Why a dashboard request is refused.
#[derive(Debug)]
pub enum Denied {
    /// `[dashboard] enabled = false`.
    Off,
    /// No live session.
    SignIn,
    Forbidden(&'static str),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Self::Off => (StatusCode::NOT_FOUND, "Not found").into_response(),
            Self::SignIn => (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "sign in at /dashboard/signin"})),
            )
                .into_response(),
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, why).into_response(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    expires: Instant,
    opened: Instant,
    /// A digest of the secret it signed in with: when that key is rotated away (or the
    /// password changed) the session ends with it.
    secret: [u8; 32],
    /// Set while this session rotates the key itself.
    rotating: bool,
}

/// The digest a session keeps of its secret.
pub fn digest(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

/// Whether the secret a session signed in with still signs in.
fn secret_current(state: &AppState, secret: &[u8; 32]) -> bool {
    if let Some(password) = &state.config().dashboard.password {
        return constant_time_eq(&digest(password.expose()), secret);
    }
    let mut current = false;
    for key in state.api_keys().iter() {
        current |= constant_time_eq(&digest(key.expose()), secret);
    }
    current
}

#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    failures: Mutex<VecDeque<Instant>>,
    devices: std::sync::Arc<super::device::DeviceLogins>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator does not fail on the platforms this runs on.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The cookie that carries a new session; `Secure` when the page was served over TLS (by a
/// TLS-terminating proxy in front of the daemon: the browser's `Origin` says `https`).
pub fn cookie(token: &str, hours: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{}",
        hours * 3600,
        if secure { "; Secure" } else { "" }
    )
}

/// The page that sent the request was served over TLS.
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| origin.starts_with("https://"))
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The request comes from a page of this origin: its `Origin` is `http://` + its `Host`.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        _ => false,
    }
}

/// The sign-in secret: the `[dashboard] password` when set, else any API key.
pub fn key_matches(state: &AppState, given: &str) -> bool {
    if given.is_empty() {
        return false;
    }
    if let Some(password) = &state.config().dashboard.password {
        return constant_time_eq(given.as_bytes(), password.expose().as_bytes());
    }
    let mut matched = false;
    for key in state.api_keys().iter() {
        matched |= constant_time_eq(given.as_bytes(), key.expose().as_bytes());
    }
    matched
}

impl Sessions {
    /// Device-code logins started from the page.
    pub fn devices(&self) -> &std::sync::Arc<super::device::DeviceLogins> {
        &self.devices
    }

    /// A new session for one who signed in with `secret`; returns its token (the cookie's
    /// value).
    pub fn open(&self, hours: u64, secret: &str) -> String {
        let token = random_hex();
        let now = Instant::now();
        let mut open = lock(&self.open);
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.opened)
                .map(|(t, _)| t.clone())
        {
            open.remove(&oldest);
        }
        open.insert(
            token.clone(),
            Session {
                csrf: random_hex(),
                expires: now + Duration::from_secs(hours * 3600),
                opened: now,
                secret: digest(secret),
                rotating: false,
            },
        );
        token
    }

    /// The request's live session, if it has one: not expired, and its secret still the
    /// key (or password) — a session whose key was rotated away ends here.
    pub fn session(&self, state: &AppState, headers: &HeaderMap) -> Option<Session> {
        let token = token_of(headers)?;
        let open = lock(&self.open);
        open.get(&token)
            .filter(|s| {
                s.expires > Instant::now() && (s.rotating || secret_current(state, &s.secret))
            })
            .cloned()
    }

    /// The request's session rotates the key: it stays open meanwhile, and afterwards stands
    /// for the new key ([`Rotation::done`]); dropped without that (the rotation failed, or
    /// the request went away) it keeps the old one.
    pub fn rotation(&self, headers: &HeaderMap) -> Rotation<'_> {
        let token = token_of(headers);
        let rotation = Rotation {
            sessions: self,
            token,
        };
        rotation.set(|s| s.rotating = true);
        rotation
    }

    pub fn close(&self, headers: &HeaderMap) {
        if let Some(token) = token_of(headers) {
            lock(&self.open).remove(&token);
        }
    }

    /// A state-changing request: a session, a same-origin `Origin`, and the session's CSRF
    /// token in `x-csrf-token`.
    pub fn check_change(&self, state: &AppState, headers: &HeaderMap) -> Result<Session, Denied> {
        let Some(session) = self.session(state, headers) else {
            return Err(Denied::SignIn);
        };
        if !same_origin(headers) {
            return Err(Denied::Forbidden("Cross-origin request refused."));
        }
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), session.csrf.as_bytes()) {
            return Err(Denied::Forbidden("Missing or wrong CSRF token."));
        }
        Ok(session)
    }

    /// Seconds to wait before the next sign-in attempt, when failures hit the limit.
    pub fn throttled(&self) -> Option<u64> {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            failures.pop_front();
        }
        (failures.len() >= MAX_FAILURES).then(|| {
            let oldest = failures.front().copied().unwrap_or(now);
            FAILURE_WINDOW
                .saturating_sub(now.duration_since(oldest))
                .as_secs()
                .max(1)
        })
    }

    pub fn failed_attempt(&self) {
        let mut failures = lock(&self.failures);
        failures.push_back(Instant::now());
        while failures.len() > MAX_FAILURES {
            failures.pop_front();
        }
    }
}

/// A session's own key rotation under way.
#[derive(Debug)]
pub struct Rotation<'a> {
    sessions: &'a Sessions,
    token: Option<String>,
}

impl Rotation<'_> {
    fn set(&self, f: impl FnOnce(&mut Session)) {
        if let Some(token) = &self.token
            && let Some(session) = lock(&self.sessions.open).get_mut(token)
        {
            f(session);
        }
    }

    /// The key is now `new`: the session stands for it.
    pub fn done(self, new: &str) {
        self.set(|s| s.secret = digest(new));
    }
}

impl Drop for Rotation<'_> {
    fn drop(&mut self) {
        self.set(|s| s.rotating = false);
    }
}
