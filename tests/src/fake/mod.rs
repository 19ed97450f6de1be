//! A strict fake of everything codex-proxy talks to: the Codex backend (`/backend-api/…`), the
//! OpenAI auth server (`/oauth/…`, device code), and the Codex Desktop appcast feed — on one
//! loopback port, following `shared/codex-protocol.md`.
//!
//! Strict means: a request the real backend would reject gets the real backend's error, so the
//! daemon's bugs cannot hide behind a lenient fake. Where the real behaviour is unknown but the
//! official client always does something (identity headers), the fake checks it too and says so
//! in its error (`fake-upstream strict: …`); [`FakeUpstream::set_strict_identity`] turns that off.
//!
//! The fake has its own wire types and never shares code with the daemon, so a misunderstanding
//! of the protocol cannot hide on both sides at once.

mod accounts;
mod admin;
mod appcast;
mod catalog;
mod errors;
mod gate;
mod jwt;
mod models;
mod oauth;
mod record;
mod responses;
mod script;
mod sse;
pub mod tls;
mod usage;
mod util;
mod validate;
pub mod websocket;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::Value;

pub use accounts::{Account, Limits, TokenSet};
pub use jwt::decode_claims;
pub use oauth::RefreshState;
pub use record::Recorded;
pub use script::{Ending, OutputItem, Reply, Script, Usage, n_deltas, word_deltas};

/// The official client's OAuth client id (§1.1).
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
pub const RESPONSES_PATH: &str = "/backend-api/codex/responses";
pub const COMPACT_PATH: &str = "/backend-api/codex/responses/compact";
pub const MODELS_PATH: &str = "/backend-api/codex/models";
pub const USAGE_PATH: &str = "/backend-api/wham/usage";
pub const TOKEN_PATH: &str = "/oauth/token";

/// Largest request body accepted (after which the fake answers 413).
const MAX_BODY: usize = 32 << 20;

/// Knobs for a fake instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// Port to bind on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Check identity headers the official client always sends.
    pub strict_identity: bool,
    /// Serve HTTPS (HTTP/2 or HTTP/1.1 by ALPN, as the real backend) with the test
    /// certificate for 127.0.0.1; clients trust it through [`tls::CA_PEM`].
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            port: 0,
            strict_identity: true,
            tls: false,
        }
    }
}

/// A running fake upstream. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// State shared by all handlers. The lock is never held across an `.await`.
#[derive(Debug)]
pub struct Shared {
    /// Signs tokens and encrypted reasoning; new per instance.
    secret: [u8; 32],
    /// `http://127.0.0.1:PORT`: the auth issuer and the root of every URL.
    origin: String,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    strict_identity: bool,
    accounts: Vec<Account>,
    records: Vec<Recorded>,
    // Scripting.
    queue: VecDeque<Script>,
    rules: Vec<(String, Script)>,
    default_script: Option<Script>,
    usage_per_request: (f64, f64),
    cache_min_tokens: u64,
    /// Last prompt size per (account, prompt_cache_key): the prompt cache.
    prompt_cache: HashMap<(String, String), u64>,
    catalog_revision: u64,
    appcast: (String, String),
    appcast_down: bool,
    /// Handshakes on the WebSocket are answered 426 (the backend without sockets).
    websocket_refused: bool,
    /// WebSocket handshakes accepted so far.
    websockets_opened: usize,
    /// Raised to make every socket forget the responses it could chain on.
    websocket_forget: u64,
    /// Turns a socket serves before it answers `websocket_connection_limit_reached` and
    /// closes (the backend's 60 minutes, in turns).
    websocket_turn_limit: Option<usize>,
    /// Each socket pings the client before it answers a turn.
    websocket_ping: bool,
    /// Pongs the sockets received.
    websocket_pongs: usize,
    /// Sockets accepted from now on never read a frame (a backend that stopped reading).
    websocket_stall: bool,
    // Auth server.
    auth: oauth::AuthState,
}

impl Shared {
    /// Runs `f` with the state locked. Never call across an `.await`.
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard: MutexGuard<'_, Inner> = match self.inner.lock() {
            Ok(guard) => guard,
            // A panicking test thread must not take every later assertion down with it.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    fn issuer(&self) -> &str {
        &self.origin
    }

    /// Records an incoming request and returns its sequence number.
    fn record(
        &self,
        req: &Incoming,
        body: Option<Value>,
        form: Option<BTreeMap<String, String>>,
    ) -> usize {
        self.with(|inner| {
            let seq = inner.records.len();
            inner.records.push(Recorded {
                seq,
                method: req.method.to_string(),
                version: format!("{:?}", req.version),
                path: req.uri.path().to_owned(),
                query: req.uri.query().map(str::to_owned),
                headers: header_map(&req.headers),
                body_bytes: req.body.len(),
                body,
                form,
                status: 0,
                rejection: None,
                account_id: None,
                client_hung_up: false,
                completed: false,
                resolved_input: None,
            });
            seq
        })
    }

    fn set_outcome(
        &self,
        seq: usize,
        status: u16,
        rejection: Option<String>,
        account: Option<&str>,
    ) {
        self.with(|inner| {
            if let Some(rec) = inner.records.get_mut(seq) {
                rec.status = status;
                rec.rejection = rejection;
                if account.is_some() {
                    rec.account_id = account.map(str::to_owned);
                }
            }
        });
    }
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

/// The parts of a request every handler needs.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub method: Method,
    pub version: axum::http::Version,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Every handler takes the whole request: the recording needs all of it.
impl<S: Send + Sync> axum::extract::FromRequest<S> for Incoming {
    type Rejection = axum::response::Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = Bytes::from_request(
            axum::extract::Request::from_parts(parts.clone(), body),
            state,
        )
        .await
        .map_err(axum::response::IntoResponse::into_response)?;
        Ok(Self {
            method: parts.method,
            version: parts.version,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl FakeUpstream {
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> std::io::Result<Self> {
        crate::init_tls();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            secret: util::random_bytes::<32>(),
            origin: format!("{}://{addr}", if options.tls { "https" } else { "http" }),
            inner: Mutex::new(Inner {
                strict_identity: options.strict_identity,
                accounts: accounts::seed_accounts(),
                records: Vec::new(),
                queue: VecDeque::new(),
                rules: Vec::new(),
                default_script: None,
                usage_per_request: (0.0, 0.0),
                cache_min_tokens: 1024,
                prompt_cache: HashMap::new(),
                catalog_revision: 0,
                appcast: ("26.318.11754".into(), "2026.1118".into()),
                appcast_down: false,
                websocket_refused: false,
                websockets_opened: 0,
                websocket_forget: 0,
                websocket_turn_limit: None,
                websocket_ping: false,
                websocket_pongs: 0,
                websocket_stall: false,
                auth: oauth::AuthState::new(),
            }),
        });
        let app = router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        if options.tls {
            tokio::spawn(tls::serve(listener, app, stopped));
            return Ok(Self {
                addr,
                shared,
                stop: Some(stop),
            });
        }
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(err) = server.await {
                tracing::error!("fake upstream stopped: {err}");
            }
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What `[upstream] base_url` should be.
    pub fn base_url(&self) -> String {
        format!("{}/backend-api", self.shared.origin)
    }

    /// What `[upstream] auth_url` should be (also the token issuer).
    pub fn auth_url(&self) -> String {
        self.shared.origin.clone()
    }

    /// What `[appcast] url` should be.
    pub fn appcast_url(&self) -> String {
        format!("{}/appcast.xml", self.shared.origin)
    }

    /// A `[upstream]` config section pointing at this fake.
    pub fn config_toml(&self) -> String {
        format!(
            "[upstream]\nbase_url = \"{}\"\nauth_url = \"{}\"\n\n[appcast]\nurl = \"{}\"\n",
            self.base_url(),
            self.auth_url(),
            self.appcast_url()
        )
    }

    // ---- accounts and tokens ----

    pub fn accounts(&self) -> Vec<Account> {
        self.shared.with(|inner| inner.accounts.clone())
    }

    pub fn account(&self, index: usize) -> Account {
        self.accounts()
            .into_iter()
            .nth(index)
            .expect("fake account index in range")
    }

    /// Adds an account; returns its index.
    pub fn add_account(&self, email: &str, plan: &str) -> usize {
        self.shared.with(|inner| {
            inner.accounts.push(Account::new(email, plan));
            inner.accounts.len() - 1
        })
    }

    /// Mints a fresh token set for account `index`, as a completed login would.
    pub fn issue_tokens(&self, index: usize) -> TokenSet {
        oauth::issue_tokens(&self.shared, index).expect("fake account index in range")
    }

    /// A daemon `accounts.json` holding these accounts, each with fresh tokens.
    pub fn accounts_json(&self, indices: &[usize]) -> Value {
        let list: Vec<Value> = indices
            .iter()
            .map(|&i| {
                let tokens = self.issue_tokens(i);
                let account = self.account(i);
                serde_json::json!({
                    "id": format!("acct_{i}"),
                    "chatgpt_account_id": tokens.account_id,
                    "email": account.email,
                    "plan": account.plan,
                    "tokens": {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token, "id_token": tokens.id_token},
                })
            })
            .collect();
        serde_json::json!({"schema_version": 1, "accounts": list})
    }

    /// Access tokens minted from now on live this long (default one hour).
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.shared
            .with(|inner| inner.auth.access_ttl = ttl.as_secs() as i64);
    }

    /// Sets an account's quota windows (percent used, 0–100).
    pub fn set_usage(&self, index: usize, primary_used: f64, secondary_used: f64) {
        self.shared.with(|inner| {
            if let Some(acc) = inner.accounts.get_mut(index) {
                acc.limits.primary_used_percent = primary_used;
                acc.limits.secondary_used_percent = secondary_used;
            }
        });
    }

    /// Replaces an account's limits entirely.
    pub fn set_limits(&self, index: usize, limits: Limits) {
        self.shared.with(|inner| {
            if let Some(acc) = inner.accounts.get_mut(index) {
                acc.limits = limits;
            }
        });
    }

    /// Each successful `/responses` call adds this much to the account's windows.
    pub fn set_usage_per_request(&self, primary: f64, secondary: f64) {
        self.shared
            .with(|inner| inner.usage_per_request = (primary, secondary));
    }

    /// Smallest prompt (tokens) the prompt cache serves; the real threshold is 1024.
    pub fn set_cache_min_tokens(&self, tokens: u64) {
        self.shared.with(|inner| inner.cache_min_tokens = tokens);
    }

    // ---- scripting ----

    /// The next `/responses` request (not matched by a rule) gets this script.
    pub fn enqueue(&self, script: Script) {
        self.shared.with(|inner| inner.queue.push_back(script));
    }

    /// Every `/responses` request whose body contains `marker` gets this script.
    pub fn on_input_containing(&self, marker: &str, script: Script) {
        self.shared
            .with(|inner| inner.rules.push((marker.to_owned(), script)));
    }

    /// Requests with no rule and an empty queue get this script (instead of the echo).
    pub fn set_default(&self, script: Option<Script>) {
        self.shared.with(|inner| inner.default_script = script);
    }

    /// Check identity headers the official client always sends (default on).
    pub fn set_strict_identity(&self, strict: bool) {
        self.shared.with(|inner| inner.strict_identity = strict);
    }

    /// Changes the model catalog (and so its ETag).
    pub fn bump_catalog(&self) {
        self.shared.with(|inner| inner.catalog_revision += 1);
    }

    pub fn set_appcast(&self, short_version: &str, build: &str) {
        self.shared
            .with(|inner| inner.appcast = (short_version.to_owned(), build.to_owned()));
    }

    /// The feed answers 503 while `down`, as a CDN outage would.
    pub fn set_appcast_down(&self, down: bool) {
        self.shared.with(|inner| inner.appcast_down = down);
    }

    // ---- auth server knobs ----

    /// Which account the next browser authorizations sign in.
    pub fn set_login_account(&self, index: usize) {
        self.shared.with(|inner| inner.auth.login_account = index);
    }

    /// The next `/oauth/authorize` redirects back with `error` instead of a code.
    pub fn deny_next_authorize(&self, error: &str, description: &str) {
        self.shared
            .with(|inner| inner.auth.deny_next = Some((error.to_owned(), description.to_owned())));
    }

    /// Allows `http://localhost:PORT/auth/callback` besides 1455 and 1457 (for tests).
    pub fn allow_redirect_port(&self, port: u16) {
        self.shared
            .with(|inner| inner.auth.extra_ports.insert(port));
    }

    /// The next `n` calls to `/oauth/token` fail with `status` (transient-failure tests).
    pub fn fail_next_token_requests(&self, n: usize, status: u16) {
        self.shared
            .with(|inner| inner.auth.failures.extend(std::iter::repeat_n(status, n)));
    }

    /// `/oauth/token` waits this long before it answers.
    pub fn set_token_delay(&self, delay: Duration) {
        self.shared
            .with(|inner| inner.auth.token_delay_ms = delay.as_millis() as u64);
    }

    /// Refresh-token exchanges the auth server received.
    pub fn refresh_requests(&self) -> usize {
        self.requests_to(TOKEN_PATH)
            .iter()
            .filter(|r| {
                r.body
                    .as_ref()
                    .is_some_and(|b| b["grant_type"] == "refresh_token")
            })
            .count()
    }

    /// What the auth server thinks of `token`: `Active` is the one live refresh token of its
    /// account; `Rotated` was exchanged already (presenting it again is reuse).
    pub fn refresh_token_state(&self, token: &str) -> Option<RefreshState> {
        oauth::refresh_state(&self.shared, token)
    }

    /// Marks every live refresh token of the account as expired / invalidated.
    pub fn expire_refresh_tokens(&self, index: usize) {
        oauth::set_refresh_state(&self.shared, index, RefreshState::Expired);
    }

    /// As if another client had refreshed: the account's current refresh tokens become "used",
    /// and presenting one is reuse (`refresh_token_reused`).
    pub fn rotate_refresh_tokens(&self, index: usize) {
        oauth::set_refresh_state(&self.shared, index, RefreshState::Rotated);
    }

    pub fn invalidate_refresh_tokens(&self, index: usize) {
        oauth::set_refresh_state(&self.shared, index, RefreshState::Revoked);
    }

    /// A user approves device code `user_code` for account `index`.
    pub fn approve_device_code(&self, user_code: &str, index: usize) -> bool {
        oauth::decide_device(&self.shared, user_code, Some(index))
    }

    /// A user declines device code `user_code`.
    pub fn decline_device_code(&self, user_code: &str) -> bool {
        oauth::decide_device(&self.shared, user_code, None)
    }

    /// The polling interval the device flow announces (seconds; the real server says 5).
    pub fn set_device_interval(&self, seconds: u64) {
        self.shared
            .with(|inner| inner.auth.device_interval = seconds);
    }

    pub fn set_device_code_enabled(&self, enabled: bool) {
        self.shared
            .with(|inner| inner.auth.device_enabled = enabled);
    }

    /// User codes issued so far, oldest first.
    pub fn device_user_codes(&self) -> Vec<String> {
        self.shared.with(|inner| {
            inner
                .auth
                .device
                .values()
                .map(|d| d.user_code.clone())
                .collect()
        })
    }

    // ---- recording ----

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.with(|inner| inner.records.clone())
    }

    /// Answers WebSocket handshakes 426 (`true`), as a backend without sockets would.
    pub fn refuse_websockets(&self, refused: bool) {
        self.shared.with(|inner| inner.websocket_refused = refused);
    }

    /// Every open socket forgets the responses it could chain on (the backend lost its
    /// state): the next `previous_response_id` is answered `previous_response_not_found`.
    pub fn forget_previous_responses(&self) {
        self.shared.with(|inner| inner.websocket_forget += 1);
    }

    /// Sockets serve `turns` turns, then answer the next with
    /// `websocket_connection_limit_reached` and close, as the backend does at 60 minutes.
    pub fn limit_websocket_turns(&self, turns: usize) {
        self.shared
            .with(|inner| inner.websocket_turn_limit = Some(turns));
    }

    /// Sockets ping the client before they answer each turn (`true`), as a server keeping
    /// a connection alive may.
    pub fn ping_websockets(&self, ping: bool) {
        self.shared.with(|inner| inner.websocket_ping = ping);
    }

    /// Sockets accepted from now on never read (`true`): a client's large frame stalls once
    /// the connection's buffers are full.
    pub fn stall_websockets(&self, stall: bool) {
        self.shared.with(|inner| inner.websocket_stall = stall);
    }

    /// Pongs the sockets received.
    pub fn websocket_pongs(&self) -> usize {
        self.shared.with(|inner| inner.websocket_pongs)
    }

    /// WebSocket handshakes accepted so far.
    pub fn websockets_opened(&self) -> usize {
        self.shared.with(|inner| inner.websockets_opened)
    }

    /// Checks a tool loop of `turns` turns as issue 22 wants it upstream: all over one socket
    /// on one account, the first turn whole, every later one only the client's output for
    /// the last call (an item of type `output`) with `previous_response_id`, and the input the
    /// model saw holding every earlier call (of type `call`) with its reasoning right before it.
    /// Panics (a failed test) otherwise.
    pub fn assert_incremental_loop(&self, turns: usize, call: &str, output: &str) {
        let records: Vec<Recorded> = self
            .requests_to(RESPONSES_PATH)
            .into_iter()
            .filter(|r| r.method == "WS")
            .collect();
        assert_eq!(records.len(), turns, "turns over the socket");
        assert_eq!(self.websockets_opened(), 1);
        let account = records[0].account_id.clone();
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.status, 200, "turn {i}: {:?}", record.rejection);
            assert_eq!(record.account_id, account, "turn {i} moved");
            let sent = record.body.clone().unwrap_or_default();
            if i == 0 {
                assert!(sent.get("previous_response_id").is_none());
                continue;
            }
            assert!(
                sent["previous_response_id"].is_string(),
                "turn {i} was sent whole"
            );
            let input = sent["input"].as_array().cloned().unwrap_or_default();
            assert_eq!(input.len(), 1, "turn {i}: {input:?}");
            assert_eq!(input[0]["type"], output, "turn {i}: {input:?}");
            let full = record
                .full_input()
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let calls: Vec<usize> = full
                .iter()
                .enumerate()
                .filter(|(_, item)| item["type"] == call)
                .map(|(at, _)| at)
                .collect();
            assert_eq!(calls.len(), i, "turn {i}");
            for at in calls {
                assert!(at > 0, "turn {i}: a call with nothing before it");
                assert_eq!(full[at - 1]["type"], "reasoning", "turn {i}, item {at}");
            }
        }
    }

    /// Requests to one path (e.g. [`RESPONSES_PATH`]).
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.shared.with(|inner| {
            inner
                .records
                .iter()
                .filter(|r| r.path == path)
                .cloned()
                .collect()
        })
    }

    pub fn clear_requests(&self) {
        self.shared.with(|inner| inner.records.clear());
    }

    /// Polls until `n` requests to `path` were recorded, or panics after `timeout`.
    pub async fn wait_for_requests(
        &self,
        path: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self.requests_to(path);
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {timeout:?} for {n} requests to {path}, saw {}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Polls until the response to request `seq` has ended: `Some(true)` when its whole body
    /// was delivered, `Some(false)` when the client hung up first, `None` after `timeout`.
    pub async fn wait_for_end(&self, seq: usize, timeout: Duration) -> Option<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let ended = self.shared.with(|inner| {
                let r = inner.records.get(seq)?;
                (r.completed || r.client_hung_up).then_some(r.completed && !r.client_hung_up)
            });
            if ended.is_some() {
                return ended;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// Polls until request `seq` is known to have been hung up on by the client.
    pub async fn wait_for_hangup(&self, seq: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            let hung_up = self
                .shared
                .with(|inner| inner.records.get(seq).is_some_and(|r| r.client_hung_up));
            if hung_up {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            RESPONSES_PATH,
            post(responses::handle).get(websocket::upgrade),
        )
        .route(COMPACT_PATH, post(responses::compact))
        .route(MODELS_PATH, get(models::handle))
        .route(USAGE_PATH, get(usage::handle))
        .route("/oauth/authorize", get(oauth::authorize))
        .route(TOKEN_PATH, post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        .route(
            "/api/accounts/deviceauth/usercode",
            post(oauth::device_usercode),
        )
        .route("/api/accounts/deviceauth/token", post(oauth::device_token))
        .route(
            "/codex/device",
            get(oauth::device_page).post(oauth::device_page_submit),
        )
        .route("/appcast.xml", get(appcast::handle))
        .nest("/__fake", admin::router())
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

async fn unknown(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    req: Incoming,
) -> axum::response::Response {
    let seq = shared.record(&req, None, None);
    shared.set_outcome(seq, 404, Some("no such endpoint".into()), None);
    errors::detail(axum::http::StatusCode::NOT_FOUND, "Not Found")
}

pub(crate) use errors::Rejection;
