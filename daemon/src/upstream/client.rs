//! The shared HTTP client for the Codex backend: one reqwest client (rustls, HTTP/2 where the
//! server offers it, keep-alive, `TCP_NODELAY`), the identity headers, zstd bodies. The
//! Responses call, the one made per chat request, goes on hyper's client directly when no proxy
//! applies ([`super::direct`]); both share one TLS configuration.

use std::pin::Pin;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rustls_platform_verifier::BuilderVerifierExt;

use super::direct::{self, Direct};
use super::identity::Identity;
use super::sse::SseDecoder;
use super::wire::ResponsesRequest;
use crate::accounts::Account;
use crate::config::Config;

/// Bodies above this size are compressed off the async threads.
const COMPRESS_INLINE_MAX: usize = 256 << 10;
/// Error bodies are read up to this size (enough for any JSON error or Cloudflare page).
const ERROR_BODY_MAX: usize = 64 << 10;

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
    #[error("the Codex backend did not answer in time")]
    Timeout,
}

impl UpstreamError {
    fn from_reqwest(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else {
            // reqwest's message names the URL, never our headers.
            Self::Transport(
                std::error::Error::source(error)
                    .map_or_else(|| error.to_string(), |s| format!("{error}: {s}")),
            )
        }
    }
}

#[derive(Debug)]
pub struct Upstream {
    http: reqwest::Client,
    /// Parsed once: it is used on every request.
    responses_url: reqwest::Url,
    /// The same, for the direct client.
    responses_uri: axum::http::Uri,
    /// The Responses call's client when no proxy applies to the backend.
    direct: Option<Direct>,
    models_url: String,
    usage_url: String,
    auth_url: String,
    compress: bool,
    /// Replaced whole when the appcast or a reload changes it; readers clone the `Arc`.
    identity: std::sync::RwLock<std::sync::Arc<Identity>>,
    cookies: Option<std::sync::Arc<super::cookies::CloudflareCookies>>,
}

impl Upstream {
    pub fn new(config: &Config, identity: Identity) -> anyhow::Result<Self> {
        Self::with_cookies(config, identity, None)
    }

    /// As [`new`](Self::new), keeping the backend's Cloudflare cookies in `cookies`.
    pub fn with_cookies(
        config: &Config,
        identity: Identity,
        cookies: Option<std::sync::Arc<super::cookies::CloudflareCookies>>,
    ) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS provider; ring is ours (installing twice is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let upstream = &config.upstream;
        // The system's trust store, loaded once for both clients.
        let mut tls = rustls::ClientConfig::builder()
            .with_platform_verifier()
            .map_err(|e| anyhow::anyhow!("cannot load the system's TLS trust store: {e}"))?
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .connect_timeout(Duration::from_secs(upstream.connect_timeout_seconds))
            // Per read, so it bounds the silence inside a stream, not the whole response.
            .read_timeout(Duration::from_secs(upstream.idle_timeout_seconds))
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(true)
            .tcp_nodelay(true)
            // Identity headers are set per request (reqwest sends no User-Agent of its own).
            .redirect(reqwest::redirect::Policy::none());
        if let Some(proxy) = &upstream.proxy {
            // An explicit proxy replaces HTTPS_PROXY/ALL_PROXY/NO_PROXY, which apply otherwise.
            builder = builder.proxy(
                reqwest::Proxy::all(proxy.expose())
                    .map_err(|_| anyhow::anyhow!("upstream.proxy is not usable"))?,
            );
        }
        let http = builder.build()?;
        let base = upstream.base_url.as_str();
        let responses_url = format!("{base}/codex/responses");
        let responses_uri: axum::http::Uri = responses_url.parse()?;
        let direct = Direct::applies(upstream, &responses_uri)
            .then(|| Direct::new(upstream, std::sync::Arc::new(tls)));
        Ok(Self {
            http,
            responses_url: reqwest::Url::parse(&responses_url)?,
            responses_uri,
            direct,
            models_url: format!("{base}/codex/models"),
            // `/wham/usage` under a `…/backend-api` base, `/api/codex/usage` otherwise (§5.2).
            usage_url: if base.contains("/backend-api") {
                format!("{base}/wham/usage")
            } else {
                format!("{base}/api/codex/usage")
            },
            auth_url: upstream.auth_url.as_str().to_owned(),
            compress: upstream.compress_requests,
            identity: std::sync::RwLock::new(std::sync::Arc::new(identity)),
            cookies,
        })
    }

    /// The identity headers' values now.
    pub fn identity(&self) -> std::sync::Arc<Identity> {
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
        *slot = std::sync::Arc::new(identity);
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

    /// Starts `POST /codex/responses`; returns once the backend answered 200 (or an error).
    pub async fn responses(
        &self,
        account: &Account,
        session: &str,
        lite: bool,
        body: &ResponsesRequest,
    ) -> Result<EventStream, UpstreamError> {
        let json = serde_json::to_vec(body).map_err(|e| UpstreamError::Transport(e.to_string()))?;
        let mut headers = self.headers(account, session);
        let mut put = |name: &'static str, value: &'static str| {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        };
        put("accept", "text/event-stream");
        put("content-type", "application/json");
        if lite {
            put("x-openai-internal-codex-responses-lite", "true");
        }
        let body = if self.compress {
            put("content-encoding", "zstd");
            compress(json).await?
        } else {
            json
        };
        let Some(direct) = &self.direct else {
            return self.responses_via_reqwest(headers, body).await;
        };
        let response = direct.post(&self.responses_uri, headers, body).await?;
        let (head, body) = response.into_parts();
        self.keep_cookies(&head.headers);
        let mut body = Body::Direct {
            body,
            read_timeout: direct.read_timeout(),
        };
        if !head.status.is_success() {
            return Err(UpstreamError::Status {
                status: head.status,
                headers: head.headers,
                body: body.read_limited().await,
            });
        }
        Ok(EventStream {
            headers: head.headers,
            body,
            decoder: SseDecoder::default(),
        })
    }

    /// [`Self::responses`] through reqwest (a proxy applies).
    async fn responses_via_reqwest(
        &self,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<EventStream, UpstreamError> {
        let response = self
            .http
            .post(self.responses_url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let status = response.status();
        self.keep_cookies(response.headers());
        let headers = response.headers().clone();
        let mut body = Body::Reqwest(Box::pin(response.bytes_stream()));
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status,
                headers,
                body: body.read_limited().await,
            });
        }
        Ok(EventStream {
            headers,
            body,
            decoder: SseDecoder::default(),
        })
    }

    /// POSTs JSON to the auth server (refresh, revoke), with the originator and User-Agent the
    /// official client sends there. Returns the status and (bounded) body.
    pub async fn auth_post(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<(StatusCode, String), UpstreamError> {
        self.auth_request(path, "application/json", body.to_string(), timeout)
            .await
    }

    async fn auth_request(
        &self,
        path: &str,
        content_type: &str,
        body: String,
        timeout: Duration,
    ) -> Result<(StatusCode, String), UpstreamError> {
        let identity = self.identity();
        let response = self
            .http
            .post(format!("{}{path}", self.auth_url))
            .header("originator", &identity.originator)
            .header("user-agent", &identity.user_agent)
            .header("content-type", content_type)
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let status = response.status();
        Ok((status, read_limited(response).await))
    }

    /// POSTs a form to the auth server (the authorization-code exchange is a form post, §1.2).
    pub async fn auth_form_post(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(StatusCode, String), UpstreamError> {
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
        let response = self
            .http
            .get(&self.usage_url)
            .headers(headers)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let status = response.status();
        self.keep_cookies(response.headers());
        let headers = response.headers().clone();
        let body = read_limited(response).await;
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status,
                headers,
                body,
            });
        }
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
        let mut request = self
            .http
            .get(format!(
                "{}?client_version={}",
                self.models_url,
                url::form_urlencoded::byte_serialize(self.identity().version.as_bytes())
                    .collect::<String>()
            ))
            .headers(self.headers(account, &uuid::Uuid::now_v7().to_string()))
            .timeout(Duration::from_secs(10));
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let status = response.status();
        self.keep_cookies(response.headers());
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let headers = response.headers().clone();
        if !status.is_success() {
            return Err(UpstreamError::Status {
                status,
                headers,
                body: read_limited(response).await,
            });
        }
        let etag = headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        Ok(Some((body.to_vec(), etag)))
    }
}

/// zstd level 3, as the official client; large bodies are compressed off the async threads.
async fn compress(json: Vec<u8>) -> Result<Vec<u8>, UpstreamError> {
    let inline = json.len() <= COMPRESS_INLINE_MAX;
    let encode = move || {
        // One compression context per thread, reused: creating one costs more than
        // compressing a typical request.
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
                Some(compressor) => compressor.compress(&json),
                None => zstd::bulk::compress(&json, 3),
            }
        })
        .map_err(|e| UpstreamError::Transport(format!("zstd: {e}")))
    };
    if inline {
        encode()
    } else {
        tokio::task::spawn_blocking(encode)
            .await
            .map_err(|e| UpstreamError::Transport(format!("zstd: {e}")))?
    }
}

impl Upstream {
    /// `GET` a public feed (the appcast): no account, no identity headers, at most `max` bytes.
    pub async fn fetch_feed(&self, url: &str, max: usize) -> Result<String, String> {
        let response = self
            .http
            .get(url)
            .header(
                "user-agent",
                concat!("codex-proxy/", env!("CARGO_PKG_VERSION")),
            )
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e).to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.map_err(|e| format!("read failed: {e}"))?);
            if body.len() > max {
                return Err(format!("larger than {max} bytes"));
            }
        }
        String::from_utf8(body).map_err(|_| "not UTF-8".to_owned())
    }
}

async fn read_limited(response: reqwest::Response) -> String {
    Body::Reqwest(Box::pin(response.bytes_stream()))
        .read_limited()
        .await
}

/// An answer's body, from whichever client made the request.
enum Body {
    Reqwest(Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>),
    Direct {
        body: hyper::body::Incoming,
        read_timeout: Duration,
    },
}

impl Body {
    /// The next read; `None` at the end.
    async fn next(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        match self {
            Self::Reqwest(stream) => Some(
                stream
                    .next()
                    .await?
                    .map_err(|e| UpstreamError::from_reqwest(&e)),
            ),
            Self::Direct { body, read_timeout } => direct::next_chunk(body, *read_timeout).await,
        }
    }

    /// The body as text, up to [`ERROR_BODY_MAX`] bytes (an error's explanation).
    async fn read_limited(&mut self) -> String {
        let mut body = Vec::new();
        while let Some(Ok(chunk)) = self.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_MAX {
                body.truncate(ERROR_BODY_MAX);
                break;
            }
        }
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// The events of one streamed response. Dropping it closes the upstream request.
pub struct EventStream {
    pub headers: HeaderMap,
    body: Body,
    /// Hands out the events of each read as slices of it, one by one.
    decoder: SseDecoder,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// The `data` of the next event (parse it with [`StreamEvent::with`]), borrowed from the
    /// read it came in; `None` when the body ended.
    pub async fn next(&mut self) -> Option<Result<&[u8], UpstreamError>> {
        while !self.decoder.advance() {
            match self.body.next().await? {
                Ok(chunk) => {
                    if let Err(e) = self.decoder.feed(chunk) {
                        return Some(Err(UpstreamError::Transport(e.to_string())));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(self.decoder.event()))
    }
}
