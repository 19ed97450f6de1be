//! The HTTP listener: accepts connections up to a cap and serves each with hyper (HTTP/1.1 and
//! HTTP/2), with the limits a slow or idle client must not escape:
//! - a request head (from its first byte to the blank line) must arrive within
//!   `header_timeout_seconds`, or the connection is closed;
//! - a connection with no request in progress is closed after `idle_timeout_seconds` (HTTP/1
//!   keep-alive and HTTP/2 alike; HTTP/2 pings do not count as use);
//! - at most `max_connections` are open: beyond that, accepting pauses (the kernel's backlog
//!   holds the rest) so descriptors stay free for the backend, the state files and the
//!   control socket; accept errors are logged at most once per 10 s.
//!
//! hyper answers a request it cannot parse itself, with an empty body; those answers are
//! rewritten as the OpenAI-shaped JSON every other error has (see [`Guarded`]).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Descriptors kept free of client connections: state files, the control socket and its
/// clients, logs, the resolver.
const RESERVED_DESCRIPTORS: u64 = 128;
/// Accept errors (out of descriptors, …) are logged at most this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// The listener's limits (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn from_config(server: &crate::config::ServerConfig) -> Self {
        let max_connections = if server.max_connections == 0 {
            auto_max_connections()
        } else {
            server.max_connections
        };
        Self {
            max_connections,
            header_timeout: Duration::from_secs(server.header_timeout_seconds.max(1)),
            idle_timeout: Duration::from_secs(server.idle_timeout_seconds.max(1)),
        }
    }
}

/// Raises the soft descriptor limit to the hard one and leaves room for the backend: each
/// client connection may need one upstream connection, and some descriptors are reserved.
pub fn auto_max_connections() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    };
    let usable = soft.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(usable.clamp(16, 1 << 20)).unwrap_or(16)
}

/// Serves `app` on `listener` until `stop`, then lets open connections finish their requests
/// (each is told to close once idle); returns when all have closed.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    serve_shared(listener, app, limits, slots, stop).await;
}

/// [`serve`] with connection slots shared with other listeners: `max_connections` bounds the
/// daemon's connections, whichever port they came in on.
pub async fn serve_shared(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    slots: Arc<tokio::sync::Semaphore>,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    let mut accept_errors = RateLimitedLog::default();
    let mut full_since: Option<Instant> = None;
    loop {
        // At the cap, wait for a connection to close before accepting another.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if full_since.is_none() {
                    full_since = Some(Instant::now());
                    tracing::warn!(
                        "{} connections open (server.max_connections); new ones wait",
                        limits.max_connections
                    );
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        if let Some(since) = full_since.take() {
            tracing::info!(
                "below the connection cap again after {} ms",
                since.elapsed().as_millis()
            );
        }
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_connection_error(&e) {
                        accept_errors.log(&e);
                        // Out of descriptors: give running requests a moment to free some.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        // Small SSE frames must not wait for Nagle.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        connections.spawn(connection(
            tcp,
            Peer(peer),
            app.clone(),
            limits,
            stop.clone(),
            slot,
        ));
    }
    connections.close();
    connections.wait().await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[derive(Debug, Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn log(&mut self, e: &io::Error) {
        if self
            .last
            .is_some_and(|last| last.elapsed() < ACCEPT_ERROR_LOG_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        let more = match self.suppressed {
            0 => String::new(),
            n => format!(" ({n} more since the last report)"),
        };
        tracing::warn!("cannot accept a connection: {e}{more}");
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// The address a request came from (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

impl Peer {
    /// From this machine (IPv4-mapped loopback included).
    pub fn is_loopback(self) -> bool {
        match self.0.ip() {
            std::net::IpAddr::V4(ip) => ip.is_loopback(),
            std::net::IpAddr::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        }
    }
}

/// One client connection, with its watchdog.
async fn connection(
    tcp: TcpStream,
    peer: Peer,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Guarded::new(tcp, activity.clone()));
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let mut app = app.clone();
            request.extensions_mut().insert(peer);
            // Counts the request as in progress until its response body is done or dropped.
            let busy = Busy::new(activity.clone());
            async move {
                let response =
                    tower_service::Service::call(&mut app, request.map(Body::new)).await?;
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(256);
    // With upgrades: the Responses WebSocket takes its connection over after the handshake
    // (this loop then ends; the socket has its own idle bound).
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            () = stop.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(activity.next_check(&limits)) => match activity.verdict(&limits) {
                Verdict::Fine => {}
                Verdict::Idle if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Verdict::Idle => {}
                Verdict::SlowHead => {
                    tracing::debug!(
                        "closing a connection whose request head took over {} s",
                        limits.header_timeout.as_secs()
                    );
                    return;
                }
            },
        }
    }
}

/// What a connection is doing, shared by its IO, its service and its watchdog.
#[derive(Debug)]
struct Activity {
    born: Instant,
    /// Requests whose response is not finished.
    busy: AtomicUsize,
    /// Milliseconds since `born` when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds since `born` when bytes of a new request head arrived on an idle
    /// HTTP/1 connection (0: none).
    head_since: AtomicU64,
    http2: AtomicBool,
    /// The bytes read so far, until the protocol is known.
    seen: AtomicU64,
}

enum Verdict {
    Fine,
    Idle,
    SlowHead,
}

impl Activity {
    fn new() -> Self {
        Self {
            born: Instant::now(),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            seen: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// Bytes arrived.
    fn read(&self, bytes: &[u8]) {
        let seen = self.seen.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        // HTTP/2's preface starts `PRI `, which no HTTP/1 method does.
        if seen == 0 && bytes.starts_with(b"PRI ") {
            self.http2.store(true, Ordering::Release);
        }
        if !self.http2.load(Ordering::Acquire) && !self.is_busy() {
            let _ = self.head_since.compare_exchange(
                0,
                self.now(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// How long the watchdog may sleep: until the idle or head deadline, but at most half the
    /// head timeout (a head that starts meanwhile wakes nobody) and at least a little.
    fn next_check(&self, limits: &Limits) -> Duration {
        let now = self.now();
        let head = self.head_since.load(Ordering::Acquire);
        let deadline = if self.is_busy() {
            now + limits.idle_timeout.as_millis() as u64
        } else if head != 0 {
            head + limits.header_timeout.as_millis() as u64
        } else {
            self.idle_since.load(Ordering::Acquire) + limits.idle_timeout.as_millis() as u64
        };
        Duration::from_millis(deadline.saturating_sub(now) + 1)
            .min(limits.header_timeout / 2)
            .max(Duration::from_millis(50))
    }

    fn verdict(&self, limits: &Limits) -> Verdict {
        if self.is_busy() {
            return Verdict::Fine;
        }
        let now = self.now();
        let head = self.head_since.load(Ordering::Acquire);
        if head != 0 {
            return if now.saturating_sub(head) >= limits.header_timeout.as_millis() as u64 {
                Verdict::SlowHead
            } else {
                Verdict::Fine
            };
        }
        let idle = now.saturating_sub(self.idle_since.load(Ordering::Acquire));
        if idle >= limits.idle_timeout.as_millis() as u64 {
            Verdict::Idle
        } else {
            Verdict::Fine
        }
    }
}

/// A request in progress: from its complete head until its response body ends or is dropped.
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        activity.head_since.store(0, Ordering::Release);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::Release);
        activity.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until it is done.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, watching what passes: bytes read feed the watchdog, and hyper's
/// own answer to a request it could not parse (written while no request is in progress, empty,
/// `connection: close`) is replaced by an OpenAI-shaped JSON error.
struct Guarded {
    tcp: TcpStream,
    activity: Arc<Activity>,
    /// Our replacement for hyper's error answer, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
    /// hyper's error answer was replaced: whatever else it writes is dropped.
    replaced: bool,
}

impl Guarded {
    fn new(tcp: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            tcp,
            activity,
            replacement: None,
            replaced: false,
        }
    }

    /// Writes what is left of the replacement; ready once all of it is out.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            if *written == bytes.len() {
                self.replacement = None;
                break;
            }
            let n = std::task::ready!(Pin::new(&mut self.tcp).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result
            && buf.filled().len() > before
        {
            self.activity.read(&buf.filled()[before..]);
        }
        result
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replaced {
            std::task::ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if !this.activity.is_busy()
            && !this.activity.http2.load(Ordering::Acquire)
            && let Some(json) = replacement_for(buf)
        {
            this.replacement = Some((json, 0));
            this.replaced = true;
            std::task::ready!(this.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.replaced || (first.is_some_and(|b| replacement_for(b).is_some())) {
            // Rare: hyper's own error answer. Handled through the plain path.
            let Some(first) = first else {
                return Poll::Ready(Ok(0));
            };
            return Pin::new(this).poll_write(cx, first);
        }
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The JSON answer to send instead of `head`, when `head` is hyper's own empty answer to a
/// request it could not parse: `HTTP/1.1 4xx …`, `connection: close`, `content-length: 0`.
fn replacement_for(head: &[u8]) -> Option<Vec<u8>> {
    // Every response head passes here: the status rules out almost all of them at once.
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    if !matches!(rest.first(), Some(b'4' | b'5')) {
        return None;
    }
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    let end = memchr::memmem::find(head, b"\r\n\r\n")?;
    let fields = &head[..end];
    let has = |field: &[u8]| {
        fields
            .split(|b| *b == b'\n')
            .any(|line| line.trim_ascii().eq_ignore_ascii_case(field))
    };
    if !(400..600).contains(&status) || !has(b"connection: close") || !has(b"content-length: 0") {
        return None;
    }
    let (reason, code, message) = match status {
        431 => (
            "Request Header Fields Too Large",
            "request_header_fields_too_large",
            "The request's headers are too large or too many (at most 100 headers, about 400 KiB).",
        ),
        414 => (
            "URI Too Long",
            "uri_too_long",
            "The request's URL is too long.",
        ),
        505 => (
            "HTTP Version Not Supported",
            "http_version_not_supported",
            "Only HTTP/1.1 and HTTP/2 are supported.",
        ),
        _ => (
            "Bad Request",
            "invalid_http_request",
            "The request is not valid HTTP: its request line or a header could not be read.",
        ),
    };
    let body = super::ApiError::new(
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_REQUEST),
        "invalid_request_error",
        code,
        message,
    )
    .body_json()
    .to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_empty_error_answers_are_replaced() {
        let hyper431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 14:38:38 GMT\r\n\r\n";
        let replaced = String::from_utf8(replacement_for(hyper431).unwrap()).unwrap();
        let (head, body) = replaced.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "request_header_fields_too_large");
        assert_eq!(json["error"]["type"], "invalid_request_error");

        let hyper400 = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert!(
            String::from_utf8(replacement_for(hyper400).unwrap())
                .unwrap()
                .contains("invalid_http_request")
        );
        // Anything else passes untouched: our own responses, bodies, partial heads.
        for other in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 94\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            b"data: HTTP/1.1 400\r\n\r\n",
            b"0\r\n\r\n",
            b"",
        ] {
            assert_eq!(replacement_for(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
