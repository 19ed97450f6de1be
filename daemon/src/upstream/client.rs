//! The calls to the Codex backend and the auth server: the identity headers, zstd bodies,
//! bounded answers, Cloudflare cookies — on the one HTTP client of [`super::http`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use bytes::Bytes;
use rustls_platform_verifier::BuilderVerifierExt;

use super::http::{Body, Http};
use super::identity::Identity;
use super::large_frame::LargeFrame;
use super::sse::SseDecoder;
use super::websocket::Outgoing;
use super::wire::ResponsesRequest;
use super::written::{Items, Written};
use crate::accounts::Account;
use crate::buffers::LargeBuffers;
use crate::config::Config;

/// Error bodies are read up to this size (enough for any JSON error or Cloudflare page).
const ERROR_BODY_MAX: usize = 64 << 10;
/// The appcast feed's whole exchange is bounded by this.
const FEED_TIMEOUT_SECONDS: u64 = 60;
/// The model catalog is refused beyond this size (the real one is tens of KiB).
const CATALOG_MAX: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the Codex backend answered {status}")]
    Status {
        status: StatusCode,
        headers: HeaderMap,
        body: String,
    },
    #[error("cannot reach the Codex backend: {0}")]
    Transport(String),
    /// The TLS connection failed: a certificate that does not verify, a refused handshake.
    /// Retrying does not help.
    #[error("the TLS connection to the Codex backend failed: {0}")]
    Tls(String),
    #[error("the Codex backend did not answer in time")]
    Timeout,
}

/// An auth-server call that got no answer: what happened, naming the URL. (Its callers say
/// "cannot reach the auth server"; [`UpstreamError`] speaks of the Codex backend.)
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthUnreachable(String);

#[derive(Debug)]
pub struct Upstream {
    http: Http,
    /// Parsed once: it is used on every request.
    responses_uri: Uri,
    compact_uri: Uri,
    models_url: String,
    usage_url: String,
    auth_url: String,
    compress: bool,
    /// Replaced whole when the appcast or a reload changes it; readers clone the `Arc`.
    identity: std::sync::RwLock<Arc<Identity>>,
    cookies: Option<Arc<super::cookies::CloudflareCookies>>,
    /// The installation's id (state), which compaction requests carry as a header (§5.3).
    installation_id: std::sync::OnceLock<String>,
    transport: crate::config::Transport,
    /// The Responses WebSocket: where, and the sockets kept for reuse.
    ws_endpoint: super::websocket::Endpoint,
    ws: Arc<super::websocket::Pool>,
}

impl Upstream {
    pub fn new(config: &Config, identity: Identity) -> anyhow::Result<Self> {
        Self::with_cookies(config, identity, None)
    }

    /// As [`new`](Self::new), keeping the backend's Cloudflare cookies in `cookies`.
    pub fn with_cookies(
        config: &Config,
        identity: Identity,
        cookies: Option<Arc<super::cookies::CloudflareCookies>>,
    ) -> anyhow::Result<Self> {
        // ring is the process's TLS provider (installing twice is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let upstream = &config.upstream;
        // The system's trust store.
        let mut tls = rustls::ClientConfig::builder()
            .with_platform_verifier()
            .map_err(|e| anyhow::anyhow!("cannot load the system's TLS trust store: {e}"))?
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let base = upstream.base_url.as_str();
        let responses_uri: Uri = format!("{base}/codex/responses").parse()?;
        let http = Http::new(upstream, Arc::new(tls.clone()))?;
        let ws_endpoint = super::websocket::Endpoint::new(
            &responses_uri,
            &tls,
            Duration::from_secs(upstream.connect_timeout_seconds),
            Duration::from_secs(upstream.idle_timeout_seconds),
            http.route(&responses_uri),
        )?;
        Ok(Self {
            http,
            responses_uri,
            compact_uri: format!("{base}/codex/responses/compact").parse()?,
            models_url: format!("{base}/codex/models"),
            // `/wham/usage` under a `…/backend-api` base, `/api/codex/usage` otherwise (§5.2).
            usage_url: if base.contains("/backend-api") {
                format!("{base}/wham/usage")
            } else {
                format!("{base}/api/codex/usage")
            },
            auth_url: upstream.auth_url.as_str().to_owned(),
            compress: upstream.compress_requests,
            identity: std::sync::RwLock::new(Arc::new(identity)),
            cookies,
            installation_id: std::sync::OnceLock::new(),
            transport: upstream.transport,
            ws_endpoint,
            ws: Arc::default(),
        })
    }

    /// The sockets kept for reuse (closed when idle by [`websocket::Pool::purge`]).
    ///
    /// [`websocket::Pool::purge`]: super::websocket::Pool::purge
    pub fn sockets(&self) -> &super::websocket::Pool {
        &self.ws
    }

    /// Whether turns go over the WebSocket now (so their bodies are not compressed).
    fn sockets_first(&self) -> bool {
        use crate::config::Transport;
        match self.transport {
            Transport::Http => false,
            Transport::Websocket => true,
            Transport::Auto => !self.ws.falling_back(),
        }
    }

    /// Sets the installation id (once, at start).
    pub fn set_installation_id(&self, id: &str) {
        let _ = self.installation_id.set(id.to_owned());
    }

    /// The identity headers' values now.
    pub fn identity(&self) -> Arc<Identity> {
        self.identity
            .read()
            .map_or_else(|p| p.into_inner().clone(), |i| i.clone())
    }

    /// Replaces the identity; returns whether it changed.
    pub fn set_identity(&self, identity: Identity) -> bool {
        let mut slot = self
            .identity
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = **slot != identity;
        *slot = Arc::new(identity);
        changed
    }

    /// The headers every backend request carries (§2.2). `session` is the conversation's id.
    pub fn headers(&self, account: &Account, session: &str) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(16);
        if let Ok(mut bearer) =
            HeaderValue::from_str(&format!("Bearer {}", account.tokens.access_token.expose()))
        {
            // Never indexed by HTTP/2 header compression, never shown by `Debug`.
            bearer.set_sensitive(true);
            headers.insert(axum::http::header::AUTHORIZATION, bearer);
        }
        if let Ok(session) = HeaderValue::from_str(session) {
            // One value, shared by the three headers that carry the conversation id.
            for name in ["session-id", "thread-id", "x-client-request-id"] {
                headers.insert(HeaderName::from_static(name), session.clone());
            }
        }
        let mut put = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put("chatgpt-account-id", &account.chatgpt_account_id);
        if account.fedramp {
            put("x-openai-fedramp", "true");
        }
        let identity = self.identity();
        put("originator", &identity.originator);
        put("user-agent", &identity.user_agent);
        put("version", &identity.version);
        put("x-codex-window-id", &format!("{session}:0"));
        if let Some(cookie) = self.cookies.as_ref().and_then(|jar| jar.header()) {
            headers.insert(axum::http::header::COOKIE, cookie);
        }
        headers
    }

    /// Keeps the Cloudflare cookies of a backend response (any status).
    fn keep_cookies(&self, headers: &HeaderMap) {
        if let Some(jar) = &self.cookies {
            jar.store(headers.get_all(axum::http::header::SET_COOKIE).iter());
        }
    }

    /// The request body, serialised. Work in proportion to the body: a caller with a large one
    /// runs this off the async workers.
    pub fn encode(&self, body: &ResponsesRequest) -> Result<WireBody, UpstreamError> {
        self.encode_after(body, None)
    }

    /// [`encode`](Self::encode), the items of `earlier` (a body's encoded here, whose
    /// history `body.input` continues) first, shared as they are: a conversation's history is
    /// not translated and written again on every turn.
    pub fn encode_after(
        &self,
        body: &ResponsesRequest,
        earlier: Option<&Items>,
    ) -> Result<WireBody, UpstreamError> {
        let written =
            Written::write(body, earlier).map_err(|e| UpstreamError::Transport(e.to_string()))?;
        Ok(WireBody {
            json: Arc::default(),
            written: Some(written),
            compressed: Arc::default(),
        })
    }

    /// A body written in parts (a pass-through surface's continued one, or one without its
    /// reasoning), made ready as [`encode_after`](Self::encode_after) makes one.
    pub fn encode_written(&self, written: Written) -> WireBody {
        WireBody {
            json: Arc::default(),
            written: Some(written),
            compressed: Arc::default(),
        }
    }

    /// A body already serialised (a pass-through surface's), made ready as [`encode`] does.
    /// It is compressed when, and if, it goes over HTTP: a socket's frames go as they are.
    ///
    /// [`encode`]: Self::encode
    pub fn encode_json(&self, json: Vec<u8>) -> Result<WireBody, UpstreamError> {
        Ok(WireBody {
            json: Arc::new(std::sync::OnceLock::from(Bytes::from(json))),
            written: None,
            compressed: Arc::default(),
        })
    }

    /// Starts `POST /codex/responses`; returns once the backend answered 200 (or an error).
    pub async fn responses(
        &self,
        account: &Account,
        session: &str,
        lite: bool,
        body: &WireBody,
    ) -> Result<EventStream, UpstreamError> {
        if let Some(stream) = self.socket_turn(account, session, lite, body).await? {
            return Ok(stream);
        }
        self.post_turn(account, session, lite, body, false).await
    }

    /// A turn over the conversation's WebSocket, or `None` when it goes over HTTP (the
    /// transport is HTTP, the body was compressed for HTTP, the account has all its sockets
    /// busy, or `auto` found no socket to be had).
    async fn socket_turn(
        &self,
        account: &Account,
        session: &str,
        lite: bool,
        body: &WireBody,
    ) -> Result<Option<EventStream>, UpstreamError> {
        use super::websocket::{self, Opening, Unavailable};
        use crate::config::Transport;
        if !self.sockets_first() {
            return Ok(None);
        }
        // A socket kept from the conversation's last turn may have been closed by the backend
        // meanwhile: then once more on a new one, before anything reached the client.
        for fresh in [false, true] {
            let headers = self.headers(account, session);
            let owner = websocket::Owner {
                account: &account.id,
                conversation: session,
                token: account.tokens.access_token.expose(),
            };
            let got = if fresh {
                websocket::open(&self.ws, &self.ws_endpoint, owner, headers)
                    .await
                    .map(|conn| (conn, false))
            } else {
                websocket::checkout(&self.ws, &self.ws_endpoint, owner, headers).await
            };
            let (mut conn, reused) = match got {
                Ok(got) => got,
                Err(Unavailable::Full) => return Ok(None),
                Err(Unavailable::Refused(error)) => return Err(error),
                Err(Unavailable::NoSockets(why)) => {
                    if self.transport == Transport::Websocket {
                        return Err(UpstreamError::Transport(format!(
                            "the WebSocket handshake failed: {why}"
                        )));
                    }
                    tracing::warn!(
                        "the backend's WebSocket is not available ({why}); turns go over HTTP for {} minutes",
                        websocket::FALLBACK_FOR.as_secs() / 60
                    );
                    self.ws.fall_back();
                    return Ok(None);
                }
            };
            let kept = self.ws.reasoning().kept(&account.id, session);
            let (frame, shape, incremental) =
                plan_frame(body, conn.chain(), kept.clone(), lite, self.ws.frames()).await?;
            let mut opening = match conn.send(frame, shape.clone()).await {
                Ok(()) => conn.opening().await,
                Err(e) => Err(e),
            };
            // The backend lost the previous response (or never had it): the whole input at
            // once, before the client has seen a byte.
            if incremental
                && let Ok(Opening::Error(error)) = &opening
                && websocket::previous_response_unknown(error)
            {
                tracing::debug!(
                    "the backend did not know the previous response; sending the whole turn"
                );
                let (whole, _, _) = plan_frame(body, None, kept, lite, self.ws.frames()).await?;
                opening = match conn.send(whole, shape).await {
                    Ok(()) => conn.opening().await,
                    Err(e) => Err(e),
                };
            }
            match opening {
                Ok(Opening::Began(quota)) => {
                    self.keep_cookies(&conn.headers);
                    let mut headers = conn.headers.clone();
                    headers.extend(quota);
                    return Ok(Some(EventStream {
                        headers,
                        body: None,
                        decoder: SseDecoder::default(),
                        peeked: std::collections::VecDeque::new(),
                        current: None,
                        socket: Some(conn),
                        turn: None,
                    }));
                }
                // The socket has served its time: the turn again on a new one.
                Ok(Opening::Error(error)) if websocket::socket_expired(&error) && !fresh => {
                    tracing::debug!("the backend's socket reached its limit; opening a new one");
                }
                // The turn ended there; the socket serves the next one.
                Ok(Opening::Error(error)) => {
                    conn.release();
                    return Err(error);
                }
                Err(_) if reused => {}
                Err(error) => return Err(error),
            }
        }
        Err(UpstreamError::Transport(
            "the WebSocket closed before the response began".into(),
        ))
    }

    /// `POST /codex/responses/compact` (§5.3): a unary JSON answer, read with
    /// [`EventStream::read_json`].
    pub async fn compact(
        &self,
        account: &Account,
        session: &str,
        lite: bool,
        body: &WireBody,
    ) -> Result<EventStream, UpstreamError> {
        self.post_turn(account, session, lite, body, true).await
    }

    async fn post_turn(
        &self,
        account: &Account,
        session: &str,
        lite: bool,
        body: &WireBody,
        compact: bool,
    ) -> Result<EventStream, UpstreamError> {
        let mut headers = self.headers(account, session);
        let mut put = |name: &'static str, value: &'static str| {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        };
        put(
            "accept",
            if compact {
                "application/json"
            } else {
                "text/event-stream"
            },
        );
        put("content-type", "application/json");
        if lite {
            put("x-openai-internal-codex-responses-lite", "true");
        }
        let (bytes, zstd) = self.http_body(account, session, body, compact).await?;
        if zstd {
            put("content-encoding", "zstd");
        }
        if compact
            && let Some(id) = self.installation_id.get()
            && let Ok(id) = HeaderValue::from_str(id)
        {
            headers.insert(HeaderName::from_static("x-codex-installation-id"), id);
        }
        let uri = if compact {
            &self.compact_uri
        } else {
            &self.responses_uri
        };
        let response = self.http.send(Method::POST, uri, headers, bytes).await?;
        let (head, body) = response.into_parts();
        self.keep_cookies(&head.headers);
        let mut body = self.http.body(body);
        if !head.status.is_success() {
            return Err(UpstreamError::Status {
                status: head.status,
                headers: head.headers,
                body: body.read_lossy(ERROR_BODY_MAX).await,
            });
        }
        // What the turn answers is watched for reasoning to put back in the conversation's
        // next turns, as on a socket.
        let turn = (!compact).then(|| {
            Box::new(HttpTurn {
                reasoning: self.ws.reasoning().clone(),
                account: account.id.clone(),
                conversation: session.to_owned(),
                output: super::incremental::TurnOutput::for_reasoning(),
            })
        });
        Ok(EventStream {
            headers: head.headers,
            body: Some(body),
            decoder: SseDecoder::default(),
            peeked: std::collections::VecDeque::new(),
            current: None,
            socket: None,
            turn,
        })
    }

    /// What an HTTP turn sends: the body with the reasoning kept for the conversation on this
    /// account put back where the client left it out (a Responses turn, as on a socket), then
    /// zstd-compressed when the daemon compresses (level 3, as the official client) and the
    /// body is not small ([`COMPRESS_FROM`]). Large
    /// bodies are prepared off the async workers; a body sent again unchanged (another
    /// attempt, another account) is compressed once.
    async fn http_body(
        &self,
        account: &Account,
        session: &str,
        body: &WireBody,
        compact: bool,
    ) -> Result<(Bytes, bool), UpstreamError> {
        let kept = if compact {
            None
        } else {
            self.ws.reasoning().kept(&account.id, session)
        };
        let compress = self.compress;
        let inline = body.len() <= INLINE_PLAN_BYTES;
        if kept.is_none() && (body.len() < COMPRESS_FROM || (!compress && inline)) {
            return Ok((body.json(), false));
        }
        let body = body.clone();
        let prepare = move || -> Result<(Bytes, bool), UpstreamError> {
            let replayed = kept
                .as_deref()
                .and_then(|kept| super::incremental::with_reasoning(&body.json(), kept));
            let size = replayed.as_ref().map_or(body.len(), String::len);
            match (replayed, compress && size >= COMPRESS_FROM) {
                (Some(json), true) => Ok((Bytes::from(zstd_compress(json.as_bytes())?), true)),
                (Some(json), false) => Ok((Bytes::from(json), false)),
                (None, true) => {
                    if let Some(done) = body.compressed.get() {
                        return Ok((done.clone(), true));
                    }
                    let done = Bytes::from(zstd_compress(&body.json())?);
                    Ok((body.compressed.get_or_init(|| done).clone(), true))
                }
                (None, false) => Ok((body.json(), false)),
            }
        };
        if inline {
            return prepare();
        }
        tokio::task::spawn_blocking(prepare)
            .await
            .map_err(|e| UpstreamError::Transport(format!("cannot prepare the request: {e}")))?
    }

    /// A bounded call (everything but the Responses stream): the request and its answer's
    /// body within `timeout` together.
    async fn call<T>(
        &self,
        timeout: Duration,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        read: impl AsyncFnOnce(StatusCode, &HeaderMap, Body) -> Result<T, UpstreamError>,
    ) -> Result<T, UpstreamError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| UpstreamError::Transport(format!("not a usable URL: {url}")))?;
        let exchange = async {
            let response = self.http.send(method, &uri, headers, body).await?;
            let (head, incoming) = response.into_parts();
            read(head.status, &head.headers, self.http.body(incoming)).await
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout))
    }

    /// POSTs JSON to the auth server (refresh, revoke), with the originator and User-Agent the
    /// official client sends there. Returns the status and (bounded) body.
    pub async fn auth_post(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<(StatusCode, String), AuthUnreachable> {
        self.auth_request(path, "application/json", body.to_string(), timeout)
            .await
    }

    async fn auth_request(
        &self,
        path: &str,
        content_type: &'static str,
        body: String,
        timeout: Duration,
    ) -> Result<(StatusCode, String), AuthUnreachable> {
        let identity = self.identity();
        let mut headers = HeaderMap::with_capacity(3);
        for (name, value) in [
            ("originator", identity.originator.as_str()),
            ("user-agent", identity.user_agent.as_str()),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        let url = format!("{}{path}", self.auth_url);
        self.call(
            timeout,
            Method::POST,
            &url,
            headers,
            Bytes::from(body),
            async |status, _, mut body| Ok((status, body.read_lossy(ERROR_BODY_MAX).await)),
        )
        .await
        .map_err(|e| {
            AuthUnreachable(match e {
                UpstreamError::Transport(message) | UpstreamError::Tls(message) => message,
                UpstreamError::Timeout => {
                    format!("POST {url}: no answer within {} s", timeout.as_secs())
                }
                // The reader above takes every status as an answer.
                UpstreamError::Status { status, .. } => format!("POST {url}: {status}"),
            })
        })
    }

    /// POSTs a form to the auth server (the authorization-code exchange is a form post, §1.2).
    pub async fn auth_form_post(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(StatusCode, String), AuthUnreachable> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.auth_request(path, "application/x-www-form-urlencoded", body, timeout)
            .await
    }

    /// `GET /wham/usage` (§5.2): the account's plan and quota windows.
    pub async fn usage(&self, account: &Account) -> Result<serde_json::Value, UpstreamError> {
        let mut headers = HeaderMap::new();
        for name in [
            "authorization",
            "chatgpt-account-id",
            "x-openai-fedramp",
            "user-agent",
            "cookie",
        ] {
            if let Some(value) = self.headers(account, "").get(name) {
                headers.insert(HeaderName::from_static(name), value.clone());
            }
        }
        let body = self
            .call(
                Duration::from_secs(10),
                Method::GET,
                &self.usage_url,
                headers,
                Bytes::new(),
                async |status, headers, mut body| {
                    self.keep_cookies(headers);
                    let text = body.read_lossy(ERROR_BODY_MAX).await;
                    if status.is_success() {
                        Ok(text)
                    } else {
                        Err(UpstreamError::Status {
                            status,
                            headers: headers.clone(),
                            body: text,
                        })
                    }
                },
            )
            .await?;
        serde_json::from_str(&body)
            .map_err(|_| UpstreamError::Transport("the usage answer did not parse".into()))
    }

    /// Saves the Cloudflare cookies if they changed (off the async threads).
    pub async fn save_cookies(&self) {
        let Some(jar) = self.cookies.clone() else {
            return;
        };
        match tokio::task::spawn_blocking(move || jar.save_if_changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot save cookies: {e:#}"),
            Err(e) => tracing::warn!("cannot save cookies: {e}"),
        }
    }

    /// The auth server's base URL (the issuer).
    pub fn auth_url(&self) -> &str {
        &self.auth_url
    }

    /// `GET /codex/models?client_version=…`; `Ok(None)` when the catalog is unchanged (304).
    pub async fn models(
        &self,
        account: &Account,
        etag: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, UpstreamError> {
        let url = format!(
            "{}?client_version={}",
            self.models_url,
            url::form_urlencoded::byte_serialize(self.identity().version.as_bytes())
                .collect::<String>()
        );
        let mut headers = self.headers(account, &uuid::Uuid::now_v7().to_string());
        if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            headers.insert(axum::http::header::IF_NONE_MATCH, etag);
        }
        self.call(
            Duration::from_secs(10),
            Method::GET,
            &url,
            headers,
            Bytes::new(),
            async |status, headers, mut body| {
                self.keep_cookies(headers);
                if status == StatusCode::NOT_MODIFIED {
                    return Ok(None);
                }
                if !status.is_success() {
                    return Err(UpstreamError::Status {
                        status,
                        headers: headers.clone(),
                        body: body.read_lossy(ERROR_BODY_MAX).await,
                    });
                }
                let etag = headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(Some((body.read_to_end(CATALOG_MAX).await?, etag)))
            },
        )
        .await
    }
}

/// Bodies smaller than this go uncompressed: zstd would save at most a few hundred bytes of
/// them and spends more on its tables than on the bytes (a fifth of the daemon's CPU for a
/// short chat request over HTTP, measured with `perf`); the backend takes either.
pub const COMPRESS_FROM: usize = 4 << 10;

/// A Responses request body ready to send, as often as attempts and choices need it.
#[derive(Debug, Clone)]
pub struct WireBody {
    /// The whole body: a pass-through surface's as it came, one written here once it is
    /// needed whole (over HTTP, or a socket's whole turn).
    json: Arc<std::sync::OnceLock<Bytes>>,
    /// The body in parts, when this daemon wrote it: cut into a socket's frame without
    /// being read, and without the whole being made when only new items go.
    written: Option<Written>,
    /// The body zstd-compressed, once an HTTP turn needed it.
    compressed: Arc<std::sync::OnceLock<Bytes>>,
}

impl WireBody {
    /// The body in parts, when this daemon wrote it.
    pub fn written(&self) -> Option<&Written> {
        self.written.as_ref()
    }

    /// The whole body, as it goes out over HTTP uncompressed (made once, if it was written
    /// in parts: CPU in proportion to the body).
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| {
                self.written
                    .as_ref()
                    .map_or_else(Bytes::new, |w| Bytes::from(w.to_json()))
            })
            .clone()
    }

    /// The whole body's length, without making it.
    pub fn len(&self) -> usize {
        match (&self.written, self.json.get()) {
            (_, Some(json)) => json.len(),
            (Some(written), None) => written.len(),
            (None, None) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An HTTP turn under way: its answer watched for reasoning to keep.
struct HttpTurn {
    reasoning: Arc<super::reasoning::KeptReasoning>,
    account: String,
    conversation: String,
    output: super::incremental::TurnOutput,
}

impl HttpTurn {
    /// Notes an event; at `response.completed`, keeps the turn's reasoning for the
    /// conversation on this account.
    fn observe(&mut self, event: &[u8]) {
        let Some(kind) = super::websocket::event_type(event) else {
            return;
        };
        if !matches!(
            kind.as_ref(),
            "response.output_item.done" | "response.completed"
        ) {
            return;
        }
        self.output.observe(&kind, event);
        if self.output.completed {
            let kept = std::mem::take(&mut self.output.kept);
            self.reasoning.keep(&self.account, &self.conversation, kept);
        }
    }
}

fn zstd_compress(json: &[u8]) -> Result<Vec<u8>, UpstreamError> {
    // One compression context per thread, reused: creating one costs more than compressing a
    // typical request.
    thread_local! {
        static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    ZSTD.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Compressor::new(3)?);
        }
        match cell.as_mut() {
            Some(compressor) => compressor.compress(json),
            None => zstd::bulk::compress(json, 3),
        }
    })
    .map_err(|e| UpstreamError::Transport(format!("zstd: {e}")))
}

impl Upstream {
    /// `GET` a public feed (the appcast): no account, no identity headers, at most `max` bytes.
    pub async fn fetch_feed(&self, url: &str, max: usize) -> Result<String, String> {
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(
            axum::http::header::USER_AGENT,
            HeaderValue::from_static(concat!("codex-proxy/", env!("CARGO_PKG_VERSION"))),
        );
        let body = self
            .call(
                Duration::from_secs(FEED_TIMEOUT_SECONDS),
                Method::GET,
                url,
                headers,
                Bytes::new(),
                async |status, headers, mut body| {
                    if !status.is_success() {
                        return Err(UpstreamError::Status {
                            status,
                            headers: headers.clone(),
                            body: String::new(),
                        });
                    }
                    body.read_to_end(max).await
                },
            )
            .await
            // Said of the feed, not of the Codex backend (which `UpstreamError` names).
            .map_err(|e| match e {
                UpstreamError::Status { status, .. } => format!("HTTP {status}"),
                // The caller names the URL.
                UpstreamError::Transport(message) | UpstreamError::Tls(message) => message
                    .strip_prefix(&format!("GET {url}: "))
                    .map_or_else(|| message.clone(), str::to_owned),
                UpstreamError::Timeout => {
                    format!("no answer within {FEED_TIMEOUT_SECONDS} seconds")
                }
            })?;
        String::from_utf8(body).map_err(|_| "not UTF-8".to_owned())
    }
}

/// Bodies up to this size are cut on the async workers; larger ones on the blocking pool.
const INLINE_PLAN_BYTES: usize = 256 * 1024;

type Planned = (Outgoing, Option<super::incremental::Shape>, bool);

/// The frame of a turn on a socket whose last completed turn was `chain`: only the new items
/// with `previous_response_id` when the request continues it, else the whole body. Also the
/// request's shape, for the next turn to build on (`None` when the body is not one to cut),
/// and whether the frame is incremental.
async fn plan_frame(
    body: &WireBody,
    chain: Option<&super::incremental::Chain>,
    kept: Option<Arc<Vec<super::incremental::Kept>>>,
    lite: bool,
    frames: &Arc<LargeBuffers>,
) -> Result<Planned, UpstreamError> {
    /// `frames`: where a large frame is written (`None`: a new string).
    fn plan(
        body: &WireBody,
        chain: Option<&super::incremental::Chain>,
        kept: Option<&[super::incremental::Kept]>,
        lite: bool,
        frames: Option<&Arc<LargeBuffers>>,
    ) -> Result<Planned, UpstreamError> {
        use super::incremental;
        // Responses Lite's header travels in `client_metadata` on a socket (§5.4).
        const LITE: [(&str, &str); 1] = [(
            "ws_request_header_x_openai_internal_codex_responses_lite",
            "true",
        )];
        let metadata: &[(&str, &str)] = if lite { &LITE } else { &[] };
        // A body written here is cut where the writer put its parts; any other is read.
        let mut head = String::new();
        let json;
        let read = match body.written() {
            Some(written) => written.outline(&mut head),
            None => {
                json = body.json();
                incremental::parse(&json).map(|parsed| {
                    let shape = incremental::shape(&parsed);
                    (parsed, shape)
                })
            }
        };
        let Some((parsed, shape)) = read else {
            if lite {
                return Err(UpstreamError::Transport(
                    "the request body is not a JSON object".into(),
                ));
            }
            let frame = super::websocket::create_frame(&body.json())?;
            return Ok((frame.into(), None, false));
        };
        let Some(frames) = frames else {
            let (frame, incremental) =
                incremental::next_frame(&parsed, &shape, chain, kept, metadata);
            return Ok((frame.into(), Some(shape), incremental));
        };
        // An empty buffer is text already; the frame is written into it, and goes from there
        // to the socket, which gives it back once the frame is on its way.
        let out = String::from_utf8(frames.take(body.len() + 256)).unwrap_or_default();
        let (frame, incremental) =
            incremental::next_frame_into(&parsed, &shape, chain, kept, metadata, out);
        let frame = Outgoing::Large(LargeFrame::new(frame, frames));
        Ok((frame, Some(shape), incremental))
    }
    // A body written here that continues the chain is cut without being read, into a frame
    // of its new items: work in proportion to those. A whole frame of a large body is made
    // off the workers.
    let continues = || {
        let (Some(written), Some(chain)) = (body.written(), chain) else {
            return false;
        };
        let mut head = String::new();
        written.outline(&mut head).is_some_and(|(parsed, shape)| {
            super::incremental::continues(chain, &shape, &parsed).is_some()
        })
    };
    if body.len() <= INLINE_PLAN_BYTES || continues() {
        return plan(body, chain, kept.as_deref().map(Vec::as_slice), lite, None);
    }
    let (body, chain, frames) = (body.clone(), chain.cloned(), Arc::clone(frames));
    tokio::task::spawn_blocking(move || {
        plan(
            &body,
            chain.as_ref(),
            kept.as_deref().map(Vec::as_slice),
            lite,
            Some(&frames),
        )
    })
    .await
    .map_err(|e| UpstreamError::Transport(format!("cannot prepare the turn: {e}")))?
}

/// The events of one streamed response. Dropping it closes the upstream request (an HTTP/2
/// stream is reset, an HTTP/1.1 connection closed): the way to stop a response the client no
/// longer wants. A response that has ended is closed with [`finish`](Self::finish) instead.
pub struct EventStream {
    pub headers: HeaderMap,
    /// `None` once the body has ended (or been handed to [`finish`](Self::finish)'s task).
    body: Option<Body>,
    /// Hands out the events of each read as slices of it, one by one.
    decoder: SseDecoder,
    /// Events read ahead by [`Self::first_failure`], handed out again by [`Self::next`].
    peeked: std::collections::VecDeque<Bytes>,
    /// The peeked event [`Self::next`] gave last; over a socket, the event it gave last.
    current: Option<Bytes>,
    /// The turn's WebSocket, when it came over one (then `body` is `None`): put back for the
    /// conversation's next turn by [`Self::finish`], closed when dropped before.
    socket: Option<super::websocket::Conn>,
    /// An HTTP turn's watch for reasoning to keep (a socket's own does that over a socket).
    turn: Option<Box<HttpTurn>>,
}

/// What [`EventStream::finish`] reads after the terminal event at most, and for how long.
const FINISH_MAX: usize = 64 * 1024;
const FINISH_WITHIN: Duration = Duration::from_secs(5);

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// The `data` of the next event (parse it with [`StreamEvent::with`]), borrowed from the
    /// read it came in; `None` when the body ended.
    pub async fn next(&mut self) -> Option<Result<&[u8], UpstreamError>> {
        if !self.peeked.is_empty() {
            return self.replay();
        }
        if self.socket.is_some() {
            return self.next_frame().await;
        }
        if self.current.is_some() {
            self.current = None;
        }
        // The loop of `read`, written out: this runs for every event, and a nested future
        // costs each of them.
        while !self.decoder.advance() {
            let body = self.body.as_mut()?;
            match body.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = self.decoder.feed(chunk) {
                        return Some(Err(UpstreamError::Transport(e.to_string())));
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.body = None;
                    return None;
                }
            }
        }
        let event = self.decoder.event();
        if let Some(turn) = self.turn.as_mut() {
            turn.observe(event);
        }
        Some(Ok(event))
    }

    /// The next event of a turn on a socket.
    async fn next_frame(&mut self) -> Option<Result<&[u8], UpstreamError>> {
        let conn = self.socket.as_mut()?;
        match conn.event().await {
            Some(Ok(event)) => Some(Ok(&self.current.insert(event)[..])),
            Some(Err(error)) => {
                self.socket = None;
                Some(Err(error))
            }
            None => {
                self.socket = None;
                None
            }
        }
    }

    /// An event read ahead, handed out again.
    #[cold]
    fn replay(&mut self) -> Option<Result<&[u8], UpstreamError>> {
        let event = self.peeked.pop_front()?;
        if let Some(turn) = self.turn.as_mut() {
            turn.observe(&event);
        }
        Some(Ok(&self.current.insert(event)[..]))
    }

    /// The next event from the body, past any read ahead (for [`Self::first_failure`]).
    async fn read(&mut self) -> Option<Result<&[u8], UpstreamError>> {
        if self.socket.is_some() {
            return self.next_frame().await;
        }
        while !self.decoder.advance() {
            let body = self.body.as_mut()?;
            match body.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = self.decoder.feed(chunk) {
                        return Some(Err(UpstreamError::Transport(e.to_string())));
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.body = None;
                    return None;
                }
            }
        }
        Some(Ok(self.decoder.event()))
    }

    /// Ends a response whose terminal event has been read by reading its body to the end, so
    /// the request closes as HTTP means it to: an HTTP/1.1 connection goes back to the pool
    /// and an HTTP/2 stream ends with the backend's END_STREAM, not with our RST_STREAM. (Reset
    /// streams are what servers count against "rapid reset" floods, and h2 closes a connection
    /// whose late frames for streams it reset add up to 1 024 — with every stream on it.)
    /// What has already arrived is read now; the rest, normally nothing or one empty frame, by
    /// a task, for at most 5 s and 64 KiB, after which the stream is reset after all.
    pub fn finish(&mut self) {
        if let Some(conn) = self.socket.take() {
            conn.release();
            return;
        }
        let Some(mut body) = self.body.take() else {
            return;
        };
        let mut left = FINISH_MAX;
        loop {
            match futures_util::FutureExt::now_or_never(body.next()) {
                // The end: nothing to reset.
                Some(None) => return,
                Some(Some(Ok(chunk))) if chunk.len() <= left => left -= chunk.len(),
                // More than a response's end, or broken: stop it.
                Some(Some(_)) => return,
                None => break,
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = tokio::time::timeout(FINISH_WITHIN, async move {
                while let Some(Ok(chunk)) = body.next().await {
                    left = match left.checked_sub(chunk.len()) {
                        Some(left) => left,
                        None => return,
                    };
                }
            })
            .await;
        });
    }

    /// Reads ahead to the first event after `response.created` / `response.in_progress` and
    /// keeps what it read for [`Self::next`]: a response that fails before any output is
    /// reported as that failure, a body that breaks or ends before its first output as a
    /// transport error. Cancel-safe: dropped while waiting, no event is lost.
    pub async fn first_failure(&mut self) -> Result<Option<super::wire::Failure>, UpstreamError> {
        use super::wire::{Failure, StreamEvent, leading_type};
        // The opening events, then the first that says something.
        for _ in 0..4 {
            let data = match self.read().await {
                Some(Ok(data)) => data,
                Some(Err(error)) => return Err(error),
                None => {
                    return Err(UpstreamError::Transport(
                        "the response ended before its first output".into(),
                    ));
                }
            };
            // The type is usually first and plain; otherwise the event is parsed for it.
            let (opening, failure) = match leading_type(data) {
                Some("response.created" | "response.in_progress") => (true, None),
                Some(kind) if kind != "response.failed" => (false, None),
                _ => StreamEvent::with(
                    data,
                    |_| false,
                    |event| {
                        let failure = (event.kind == "response.failed").then(|| {
                            let error = event.response.and_then(|r| r.error).unwrap_or_default();
                            Failure {
                                code: error.code,
                                message: error
                                    .message
                                    .unwrap_or_else(|| "The upstream response failed.".into()),
                                resets_at: error.resets_at,
                            }
                        });
                        let opening = matches!(
                            event.kind.as_ref(),
                            "response.created" | "response.in_progress"
                        );
                        (opening, failure)
                    },
                )
                .unwrap_or((false, None)),
            };
            let bytes = match (&self.socket, &self.current) {
                (Some(_), Some(event)) => event.clone(),
                _ => self.decoder.event_bytes(),
            };
            self.peeked.push_back(bytes);
            if !opening {
                return Ok(failure);
            }
        }
        Ok(None)
    }

    /// A unary answer (compaction): the whole body, at most `max` bytes.
    pub async fn read_json(&mut self, max: usize) -> Result<Vec<u8>, UpstreamError> {
        let Some(body) = self.body.as_mut() else {
            return Ok(Vec::new());
        };
        let bytes = body.read_to_end(max).await;
        self.body = None;
        bytes
    }

    /// The data [`Self::next`] gave last, shared, to be read later.
    pub fn event_bytes(&self) -> Bytes {
        match &self.current {
            Some(event) => event.clone(),
            None => self.decoder.event_bytes(),
        }
    }
}
