//! The Responses WebSocket (§5.4): `GET {base}/codex/responses` upgraded, with the request
//! headers of an HTTP turn plus `OpenAI-Beta: responses_websockets=…`. Each turn is one
//! `response.create` text frame; the answer is the SSE events' JSON, one text frame each,
//! after a `codex.rate_limits` frame; a failure that HTTP would answer with a status comes as
//! a wrapped error frame (`{"type":"error","status":…,"error":…,"headers":…}`).
//!
//! Sockets are kept per (account, conversation) and reused for that conversation's turns, one
//! turn at a time each (a concurrent turn opens another, up to [`MAX_PER_ACCOUNT`] per
//! account, beyond which it goes over HTTP). An idle socket is closed after [`IDLE_CLOSE`], and
//! none is used once it is [`RENEW_AFTER`] old (the backend ends them at 60 minutes). A socket
//! that broke, or whose turn did not end, is never reused.
//!
//! No `permessage-deflate`: the WebSocket library has none (RFC 7692 makes it optional).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

use super::client::UpstreamError;
use super::incremental::{Chain, Shape, TurnOutput};
use super::large_frame::LargeFrame;
use super::reasoning::KeptReasoning;
use crate::buffers::LargeBuffers;

/// The `OpenAI-Beta` value of the handshake.
pub const BETA: &str = "responses_websockets=2026-02-06";
/// Sockets open at once per account (idle and busy).
pub const MAX_PER_ACCOUNT: usize = 16;
/// An idle socket is closed after this.
pub const IDLE_CLOSE: Duration = Duration::from_secs(10 * 60);
/// A socket this old is not used for a new turn (the backend's limit is 60 minutes).
pub const RENEW_AFTER: Duration = Duration::from_secs(55 * 60);
/// After a refused handshake, `auto` goes over HTTP for this long before trying again.
pub const FALLBACK_FOR: Duration = Duration::from_secs(10 * 60);
/// The largest frame accepted from the backend.
const MAX_FRAME: usize = 64 << 20;

/// Whatever the socket runs over: TCP or a proxy's tunnel, with or without TLS.
pub use super::http::Io;
use super::http::Route;

type Socket = WebSocketStream<Box<dyn Io>>;

/// A turn's frame: a small one goes through tungstenite, a large one straight to the socket
/// (see [`LargeFrame`]).
#[derive(Debug)]
pub enum Outgoing {
    Text(tungstenite::Utf8Bytes),
    Large(LargeFrame),
}

impl From<String> for Outgoing {
    fn from(text: String) -> Self {
        Self::Text(text.into())
    }
}

/// Why a socket could not be had: the caller goes over HTTP instead (`auto`), or reports it.
#[derive(Debug)]
pub enum Unavailable {
    /// The backend or the way to it does not do WebSockets (426, a proxy, a refused
    /// handshake): HTTP will do.
    NoSockets(String),
    /// The account has [`MAX_PER_ACCOUNT`] sockets open.
    Full,
    /// The handshake was answered like a request (401, 429, 403): the engine handles it as
    /// it would the HTTP answer.
    Refused(UpstreamError),
}

/// One open socket, counted against its account while it lives.
pub struct Conn {
    socket: Socket,
    pool: Arc<Pool>,
    account: String,
    conversation: String,
    key: String,
    opened: Instant,
    used: Instant,
    /// The upgrade's response headers (`x-models-etag`, `openai-model`, …).
    pub headers: HeaderMap,
    /// The turn's first event, read by [`Conn::opening`].
    first: Option<Bytes>,
    /// The turn's terminal event has come: the socket may serve the next turn.
    ended: bool,
    /// The longest silence inside a turn.
    idle_timeout: Duration,
    /// The last turn, when it completed: the next may send only its new items.
    chain: Option<Chain>,
    /// The turn under way: its request, and what the backend answered so far.
    turn: Option<TurnSeen>,
}

/// What a turn under way has shown of itself.
#[derive(Debug)]
struct TurnSeen {
    shape: Shape,
    output: TurnOutput,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("account", &self.account)
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut inner = self.pool.lock();
        if let Some(count) = inner.open.get_mut(&self.account) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.open.remove(&self.account);
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Idle sockets by (account, conversation) key.
    idle: HashMap<String, Vec<Conn>>,
    /// Open sockets per account.
    open: HashMap<String, usize>,
    /// `auto` goes over HTTP until then.
    fallback_until: Option<Instant>,
}

/// The sockets kept for reuse, where their turns' reasoning is kept, and the buffers of large
/// frames kept for the next (a fresh megabyte's pages fault in as they are written).
#[derive(Default)]
pub struct Pool {
    inner: Mutex<Inner>,
    reasoning: Arc<KeptReasoning>,
    frames: Arc<LargeBuffers>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

/// Sockets are kept per account, conversation and token: a socket is signed in with the token
/// of its handshake, so one from before a refresh is not reused.
fn key(account: &str, conversation: &str, token: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    format!("{account}\n{conversation}\n{:016x}", h.finish())
}

impl Pool {
    /// The reasoning kept for the conversations, which HTTP turns share.
    pub fn reasoning(&self) -> &Arc<KeptReasoning> {
        &self.reasoning
    }

    /// The buffers large frames are written into.
    pub fn frames(&self) -> &Arc<LargeBuffers> {
        &self.frames
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `auto` should go over HTTP now (a handshake was refused lately).
    pub fn falling_back(&self) -> bool {
        self.lock()
            .fallback_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Remembers that sockets are refused, for [`FALLBACK_FOR`].
    pub fn fall_back(&self) {
        self.lock().fallback_until = Some(Instant::now() + FALLBACK_FOR);
    }

    /// An idle socket of this conversation, still young enough.
    fn take_idle(&self, account: &str, conversation: &str, token: &str) -> Option<Conn> {
        let expired = {
            let mut inner = self.lock();
            let expired = purge(&mut inner);
            let conn = inner
                .idle
                .get_mut(&key(account, conversation, token))
                .and_then(Vec::pop);
            if let Some(conn) = conn {
                drop(inner);
                drop(expired);
                return Some(conn);
            }
            expired
        };
        // Closed outside the lock (their `Drop` takes it).
        drop(expired);
        None
    }

    /// Counts a new socket for `account`, unless it has its share of sockets in use: at its
    /// share, the account's longest-idle socket (another conversation's) is closed to make
    /// room — a person's many short conversations would otherwise leave the newest ones on
    /// HTTP until the idle ones time out.
    fn reserve(&self, account: &str) -> bool {
        let closed = {
            let mut inner = self.lock();
            let count = inner.open.entry(account.to_owned()).or_default();
            if *count < MAX_PER_ACCOUNT {
                *count += 1;
                return true;
            }
            let oldest = inner
                .idle
                .iter()
                .flat_map(|(key, conns)| conns.iter().enumerate().map(move |(i, c)| (key, i, c)))
                .filter(|(_, _, c)| c.account == account)
                .min_by_key(|(_, _, c)| c.used)
                .map(|(key, i, _)| (key.clone(), i));
            let Some((key, i)) = oldest else {
                return false;
            };
            let conns = inner.idle.get_mut(&key);
            let closed = conns.map(|conns| conns.swap_remove(i));
            if inner.idle.get(&key).is_some_and(Vec::is_empty) {
                inner.idle.remove(&key);
            }
            closed
        };
        // Closed outside the lock (its `Drop` takes it and gives its count back).
        drop(closed);
        let mut inner = self.lock();
        let count = inner.open.entry(account.to_owned()).or_default();
        if *count >= MAX_PER_ACCOUNT {
            return false;
        }
        *count += 1;
        true
    }

    fn unreserve(&self, account: &str) {
        let mut inner = self.lock();
        if let Some(count) = inner.open.get_mut(account) {
            *count = count.saturating_sub(1);
        }
    }

    /// Puts a socket whose turn ended back for the conversation's next turn.
    fn put_back(&self, mut conn: Conn) {
        conn.used = Instant::now();
        let mut inner = self.lock();
        inner.idle.entry(conn.key.clone()).or_default().push(conn);
    }

    /// Closes idle sockets that waited too long or are too old.
    pub fn purge(&self) {
        let expired = purge(&mut self.lock());
        drop(expired);
    }
}

/// Takes the expired idle sockets out (to be dropped once the lock is released).
fn purge(inner: &mut Inner) -> Vec<Conn> {
    let now = Instant::now();
    let mut expired = Vec::new();
    inner.idle.retain(|_, conns| {
        let (keep, old): (Vec<Conn>, Vec<Conn>) =
            std::mem::take(conns).into_iter().partition(|c| {
                now.duration_since(c.used) < IDLE_CLOSE
                    && now.duration_since(c.opened) < RENEW_AFTER
            });
        expired.extend(old);
        *conns = keep;
        !conns.is_empty()
    });
    expired
}

/// How to reach the socket endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `ws://…/codex/responses` or `wss://…`.
    pub uri: Uri,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    /// The longest silence inside a turn (`upstream.idle_timeout_seconds`).
    pub idle_timeout: Duration,
    /// The proxy sockets go through, as HTTP requests to the backend do; `None`: straight.
    pub route: Option<Route>,
}

impl Endpoint {
    /// From the HTTP responses URI; the TLS config offers only HTTP/1.1 (an upgrade needs it).
    pub fn new(
        responses: &Uri,
        tls: &rustls::ClientConfig,
        connect_timeout: Duration,
        idle_timeout: Duration,
        route: Option<Route>,
    ) -> anyhow::Result<Self> {
        let secure = responses.scheme_str() == Some("https");
        let text = responses.to_string();
        let uri: Uri = if secure {
            text.replacen("https://", "wss://", 1)
        } else {
            text.replacen("http://", "ws://", 1)
        }
        .parse()?;
        let tls = secure.then(|| {
            let mut config = tls.clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        });
        Ok(Self {
            uri,
            tls,
            connect_timeout,
            idle_timeout,
            route,
        })
    }
}

/// Opens a socket for `account`'s conversation with `headers` (the turn's, with the beta).
async fn connect(
    endpoint: &Endpoint,
    mut headers: HeaderMap,
) -> Result<(Socket, HeaderMap), Unavailable> {
    let host = endpoint
        .uri
        .host()
        .ok_or_else(|| Unavailable::NoSockets("no host".into()))?
        .to_owned();
    let port = endpoint
        .uri
        .port_u16()
        .unwrap_or(if endpoint.tls.is_some() { 443 } else { 80 });
    let no_sockets = |e: &dyn std::fmt::Display| Unavailable::NoSockets(e.to_string());
    let open = async {
        let stream: Box<dyn Io> = match &endpoint.route {
            // Through the proxy that HTTP requests to the backend go through.
            Some(route) => route.open(&host, port).await.map_err(|e| no_sockets(&e))?,
            None => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| no_sockets(&e))?;
                let _ = tcp.set_nodelay(true);
                Box::new(tcp)
            }
        };
        let io: Box<dyn Io> = match &endpoint.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| no_sockets(&e))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, stream)
                    .await
                    .map_err(|e| no_sockets(&e))?;
                Box::new(tls)
            }
            None => stream,
        };
        let mut request = tungstenite::handshake::client::Request::builder()
            .method("GET")
            .uri(endpoint.uri.clone())
            .header("host", authority(&endpoint.uri))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header(
                "sec-websocket-key",
                tungstenite::handshake::client::generate_key(),
            )
            .body(())
            .map_err(|e| no_sockets(&e))?;
        headers.insert(
            HeaderName::from_static("openai-beta"),
            HeaderValue::from_static(BETA),
        );
        request.headers_mut().extend(headers);
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        tokio_tungstenite::client_async_with_config(request, io, Some(config))
            .await
            .map_err(handshake_failure)
    };
    let (socket, response) = tokio::time::timeout(endpoint.connect_timeout, open)
        .await
        .map_err(|_| Unavailable::NoSockets("the handshake took too long".into()))??;
    Ok((socket, response.headers().clone()))
}

fn authority(uri: &Uri) -> String {
    uri.authority()
        .map_or_else(String::new, |a| a.as_str().to_owned())
}

/// A refused handshake: answered like a request (401, 403, 429 — the engine's business), or
/// a backend without sockets.
fn handshake_failure(error: tungstenite::Error) -> Unavailable {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            if matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
            ) {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Unavailable::Refused(UpstreamError::Status {
                    status,
                    headers: response.headers().clone(),
                    body,
                })
            } else {
                Unavailable::NoSockets(format!("the handshake was answered {status}"))
            }
        }
        other => Unavailable::NoSockets(other.to_string()),
    }
}

/// Whose socket: the account, the conversation, and the access token it signs in with.
#[derive(Clone, Copy)]
pub struct Owner<'a> {
    pub account: &'a str,
    pub conversation: &'a str,
    pub token: &'a str,
}

impl std::fmt::Debug for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Owner")
            .field("account", &self.account)
            .field("conversation", &self.conversation)
            .finish_non_exhaustive()
    }
}

/// A socket for one turn: an idle one of the conversation, else a new one.
pub async fn checkout(
    pool: &Arc<Pool>,
    endpoint: &Endpoint,
    owner: Owner<'_>,
    headers: HeaderMap,
) -> Result<(Conn, bool), Unavailable> {
    if let Some(conn) = pool.take_idle(owner.account, owner.conversation, owner.token) {
        return Ok((conn, true));
    }
    open(pool, endpoint, owner, headers)
        .await
        .map(|conn| (conn, false))
}

/// A new socket, counted against the account.
pub async fn open(
    pool: &Arc<Pool>,
    endpoint: &Endpoint,
    owner: Owner<'_>,
    headers: HeaderMap,
) -> Result<Conn, Unavailable> {
    let Owner {
        account,
        conversation,
        token,
    } = owner;
    if !pool.reserve(account) {
        return Err(Unavailable::Full);
    }
    match connect(endpoint, headers).await {
        Ok((socket, headers)) => {
            let now = Instant::now();
            Ok(Conn {
                socket,
                pool: pool.clone(),
                account: account.to_owned(),
                conversation: conversation.to_owned(),
                key: key(account, conversation, token),
                opened: now,
                used: now,
                headers,
                first: None,
                ended: false,
                idle_timeout: endpoint.idle_timeout,
                chain: None,
                turn: None,
            })
        }
        Err(e) => {
            pool.unreserve(account);
            Err(e)
        }
    }
}

/// What the socket said first after a `response.create`.
#[derive(Debug)]
pub enum Opening {
    /// The response began (its first event waits in [`Conn::event`]); the quota the backend
    /// sent before it, as `x-codex-*` headers.
    Began(HeaderMap),
    /// An error frame: the HTTP answer it stands for.
    Error(UpstreamError),
}

impl Conn {
    /// The conversation's last completed turn on this socket, if any.
    pub fn chain(&self) -> Option<&Chain> {
        self.chain.as_ref()
    }

    /// Sends one `response.create` frame for a request of `shape` (`None`: not to be built
    /// on). Until this turn completes, nothing builds on the socket's earlier turns.
    pub async fn send(
        &mut self,
        frame: Outgoing,
        shape: Option<Shape>,
    ) -> Result<(), UpstreamError> {
        self.ended = false;
        self.chain = None;
        self.turn = shape.map(|shape| TurnSeen {
            shape,
            output: TurnOutput::for_chain(),
        });
        let broke = |e: &dyn std::fmt::Display| {
            UpstreamError::Transport(format!("the WebSocket broke: {e}"))
        };
        let socket = &mut self.socket;
        let sent = async move {
            match frame {
                Outgoing::Text(text) => socket
                    .send(Message::Text(text))
                    .await
                    .map_err(|e| broke(&e)),
                Outgoing::Large(frame) => {
                    // What tungstenite has still to send (a pong it owes) goes first; a turn
                    // dropped half-way through drops this socket with it.
                    socket.flush().await.map_err(|e| broke(&e))?;
                    frame
                        .write_to(socket.get_mut())
                        .await
                        .map_err(|e| broke(&e))
                }
            }
        };
        // A backend that stops reading is silent too: as over HTTP, the frame must be on its
        // way within the idle timeout. The socket, left mid-frame, is not used again (the turn
        // has not ended, so it is not put back).
        tokio::time::timeout(self.idle_timeout, sent)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// The first frames of a turn, up to its first event.
    pub async fn opening(&mut self) -> Result<Opening, UpstreamError> {
        let mut quota = HeaderMap::new();
        loop {
            let Some(frame) = self.frame().await? else {
                return Err(UpstreamError::Transport(
                    "the WebSocket closed before the response began".into(),
                ));
            };
            match frame_kind(&frame) {
                Frame::RateLimits(headers) => quota.extend(headers),
                Frame::Error(error) => {
                    // An error frame ends the turn; the socket serves the next.
                    self.ended = true;
                    return Ok(Opening::Error(error));
                }
                Frame::Event => {
                    self.observe(&frame);
                    self.first = Some(frame);
                    return Ok(Opening::Began(quota));
                }
            }
        }
    }

    /// The next event of the turn; `None` when the socket closed. An error frame mid-turn is
    /// a transport error (the client has seen output already).
    pub async fn event(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        loop {
            match self.frame().await {
                Err(e) => return Some(Err(e)),
                Ok(None) => return None,
                Ok(Some(frame)) => match frame_kind(&frame) {
                    Frame::RateLimits(_) => {}
                    Frame::Error(error) => {
                        return Some(Err(UpstreamError::Transport(format!(
                            "the backend ended the response: {}",
                            error_message(&error)
                        ))));
                    }
                    Frame::Event => {
                        self.observe(&frame);
                        return Some(Ok(frame));
                    }
                },
            }
        }
    }

    /// The next text frame; `None` on close.
    async fn frame(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        loop {
            let next = tokio::time::timeout(self.idle_timeout, self.socket.next())
                .await
                .map_err(|_| UpstreamError::Timeout)?;
            match next {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(text))) => return Ok(Some(Bytes::from(text))),
                Some(Ok(Message::Binary(_))) => {
                    return Err(UpstreamError::Transport(
                        "the backend sent a binary WebSocket frame".into(),
                    ));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => {
                    return Err(UpstreamError::Transport(format!(
                        "the WebSocket broke: {e}"
                    )));
                }
            }
        }
    }

    /// Notes what an event says of the turn: its output items, its end.
    fn observe(&mut self, event: &[u8]) {
        let kind = event_type(event);
        self.ended = matches!(
            kind.as_deref(),
            Some("response.completed" | "response.failed" | "response.incomplete")
        );
        if let (Some(turn), Some(kind)) = (self.turn.as_mut(), kind) {
            turn.output.observe(&kind, event);
        }
    }

    /// The turn is over: when its terminal event came, the socket waits for the
    /// conversation's next turn (which may build on this one if it completed); otherwise
    /// (stopped early) it is closed, which stops the turn.
    pub fn release(mut self) {
        if !self.ended {
            return;
        }
        if let Some(TurnSeen { shape, output }) = self.turn.take()
            && output.completed
            && let Some(id) = output.response_id
        {
            self.pool
                .reasoning
                .keep(&self.account, &self.conversation, output.kept);
            self.chain = Some(Chain::new(id, shape, output.output));
        }
        let pool = self.pool.clone();
        pool.put_back(self);
    }
}

/// An event's type: read from its start when it is first (as the backend writes it).
pub(super) fn event_type(event: &[u8]) -> Option<Cow<'static, str>> {
    if let Some(kind) = super::wire::leading_type(event) {
        return Some(Cow::Borrowed(kind));
    }
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_slice::<Typed>(event)
        .ok()
        .map(|t| Cow::Owned(t.kind))
}

/// Whether a wrapped error says the socket has served its time (60 minutes): a new one serves
/// the turn.
pub fn socket_expired(error: &UpstreamError) -> bool {
    matches!(error, UpstreamError::Status { body, .. } if body.contains("websocket_connection_limit_reached"))
}

/// Whether a wrapped error says the backend does not know the previous response.
pub fn previous_response_unknown(error: &UpstreamError) -> bool {
    matches!(error, UpstreamError::Status { body, .. } if body.contains("previous_response_not_found"))
}

fn error_message(error: &UpstreamError) -> String {
    match error {
        UpstreamError::Status { status, body, .. } => format!("{status} {body}"),
        other => other.to_string(),
    }
}

/// `{"type":"response.create", …body}`: the body's members after the type.
pub fn create_frame(body: &[u8]) -> Result<String, UpstreamError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| UpstreamError::Transport("the request body is not UTF-8".into()))?;
    let rest = text
        .trim_start()
        .strip_prefix('{')
        .ok_or_else(|| UpstreamError::Transport("the request body is not a JSON object".into()))?;
    let mut frame = String::with_capacity(text.len() + 28);
    frame.push_str(r#"{"type":"response.create""#);
    if !rest.trim_start().starts_with('}') {
        frame.push(',');
    }
    frame.push_str(rest);
    Ok(frame)
}

enum Frame {
    Event,
    RateLimits(HeaderMap),
    Error(UpstreamError),
}

/// The frames that are not response events: the quota, and wrapped errors.
fn frame_kind(frame: &[u8]) -> Frame {
    match super::wire::leading_type(frame) {
        Some("codex.rate_limits") => Frame::RateLimits(rate_limit_headers(frame)),
        Some("error") => Frame::Error(wrapped_error(frame)),
        Some(_) => Frame::Event,
        // The type is not first: look.
        None => {
            let value: serde_json::Value = serde_json::from_slice(frame).unwrap_or_default();
            match value.get("type").and_then(serde_json::Value::as_str) {
                Some("codex.rate_limits") => Frame::RateLimits(rate_limit_headers(frame)),
                Some("error") => Frame::Error(wrapped_error(frame)),
                _ => Frame::Event,
            }
        }
    }
}

/// A `codex.rate_limits` frame as the `x-codex-*` headers an HTTP answer carries.
fn rate_limit_headers(frame: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(frame) else {
        return headers;
    };
    let limits = &value["rate_limits"];
    for window in ["primary", "secondary"] {
        let w = &limits[window];
        for (field, suffix) in [
            ("used_percent", "used-percent"),
            ("window_minutes", "window-minutes"),
            ("reset_at", "reset-at"),
        ] {
            let text = match &w[field] {
                serde_json::Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(format!("x-codex-{window}-{suffix}")),
                HeaderValue::from_str(&text),
            ) {
                headers.insert(name, value);
            }
        }
    }
    headers
}

/// A wrapped error frame as the HTTP answer it stands for.
fn wrapped_error(frame: &[u8]) -> UpstreamError {
    let value: serde_json::Value = serde_json::from_slice(frame).unwrap_or_default();
    let status = value
        .get("status")
        .or_else(|| value.get("status_code"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    if let Some(map) = value.get("headers").and_then(serde_json::Value::as_object) {
        for (name, v) in map {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_str(&text),
            ) {
                headers.insert(name, value);
            }
        }
    }
    let body = serde_json::json!({"error": value.get("error").cloned().unwrap_or_default()});
    UpstreamError::Status {
        status,
        headers,
        body: body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_frame_puts_the_type_first() {
        assert_eq!(
            create_frame(br#"{"model":"gpt-5.5","input":[]}"#).unwrap(),
            r#"{"type":"response.create","model":"gpt-5.5","input":[]}"#
        );
        assert_eq!(
            create_frame(b"{}").unwrap(),
            r#"{"type":"response.create"}"#
        );
        assert!(create_frame(b"[1]").is_err());
    }

    #[test]
    fn frames_are_told_apart() {
        let limits = br#"{"type":"codex.rate_limits","plan_type":"plus","rate_limits":{"allowed":true,"limit_reached":false,"primary":{"used_percent":42,"window_minutes":300,"reset_at":1700000000},"secondary":null}}"#;
        let Frame::RateLimits(headers) = frame_kind(limits) else {
            panic!("not read as rate limits");
        };
        assert_eq!(headers["x-codex-primary-used-percent"], "42");
        assert_eq!(headers["x-codex-primary-window-minutes"], "300");
        assert!(!headers.contains_key("x-codex-secondary-used-percent"));

        let error = br#"{"type":"error","status":429,"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","resets_at":1738888888},"headers":{"x-codex-primary-used-percent":"100.0","x-codex-primary-window-minutes":15}}"#;
        let Frame::Error(UpstreamError::Status {
            status,
            headers,
            body,
        }) = frame_kind(error)
        else {
            panic!("not read as an error");
        };
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["x-codex-primary-window-minutes"], "15");
        assert!(body.contains("usage_limit_reached"));
        // `status_code` is the other spelling.
        let Frame::Error(UpstreamError::Status { status, .. }) = frame_kind(
            br#"{"type":"error","status_code":400,"error":{"code":"previous_response_not_found"}}"#,
        ) else {
            panic!("not read as an error");
        };
        assert_eq!(status, StatusCode::BAD_REQUEST);

        assert!(matches!(
            frame_kind(br#"{"type":"response.created","response":{}}"#),
            Frame::Event
        ));
        assert!(matches!(
            frame_kind(br#"{"sequence_number":1,"type":"error","status":500,"error":{}}"#),
            Frame::Error(_)
        ));
    }

    #[test]
    fn event_types_are_read_wherever_they_are() {
        let kind = |e: &[u8]| event_type(e).map(|k| k.into_owned());
        assert_eq!(
            kind(br#"{"type":"response.completed","response":{}}"#).as_deref(),
            Some("response.completed")
        );
        assert_eq!(
            kind(br#"{"sequence_number":9,"type":"response.failed"}"#).as_deref(),
            Some("response.failed")
        );
        assert_eq!(kind(b"[]"), None);
    }
}
