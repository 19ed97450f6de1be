//! The daemon's one HTTP client for the backend, the auth server and the appcast: hyper-util's
//! pooled client over rustls (the system's trust store, HTTP/2 where the server offers it,
//! keep-alive, `TCP_NODELAY`), so every call shares one pool and its HTTP/2 connections (calls
//! made at the same moment before a connection is up each open one, as in any hyper client).
//!
//! Proxies, from `upstream.proxy` or the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! less `NO_PROXY`): an `http://` or `https://` proxy tunnels HTTPS with `CONNECT` and is sent
//! plain-HTTP requests in absolute form (`Proxy-Authorization` from the proxy URL's
//! credentials either way); a `socks5://` proxy is given the address resolved here,
//! `socks5h://` the host name; `socks4://` and `socks4a://` likewise.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::{SocksV4, SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use super::client::UpstreamError;
use crate::config::UpstreamConfig;

/// The variables hyper-util's matcher reads for proxies (`NO_PROXY` only narrows them).
const PROXY_VARIABLES: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;
/// A connection straight to a host (TLS or not), or through a SOCKS proxy.
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

pub struct Http {
    client: Client<Connector, Full<Bytes>>,
    /// The client's connector, for streams that are not HTTP requests (a WebSocket).
    connector: Connector,
    /// The longest silence: before an answer's head, and between reads of its body.
    read_timeout: Duration,
    /// Which proxy takes which request; `None` when none is configured at all.
    proxies: Option<Arc<Matcher>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The matcher's own `Debug` hides the proxies' credentials.
        f.debug_struct("Http")
            .field("read_timeout", &self.read_timeout)
            .field("proxies", &self.proxies)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// The client for `config` (timeouts, proxy) over `tls`, whose ALPN offers h2 and http/1.1.
    pub fn new(config: &UpstreamConfig, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        let proxies = match &config.proxy {
            // An explicit proxy takes every request; the environment's variables do not apply.
            Some(proxy) => {
                let matcher = Matcher::builder().all(proxy.expose()).build();
                // Never fall back to going direct when the proxy's URL cannot be used.
                for probe in ["http://a.invalid/", "https://a.invalid/"] {
                    if matcher.intercept(&Uri::from_static(probe)).is_none() {
                        anyhow::bail!("upstream.proxy is not usable as a proxy URL");
                    }
                }
                Some(matcher)
            }
            // Looked up per connection and request only when some proxy variable is set.
            None => PROXY_VARIABLES
                .iter()
                .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
                .then(Matcher::from_system),
        }
        .map(Arc::new);
        let mut http = HttpConnector::new();
        // The TLS layers above do `https://`, and proxies have their own schemes.
        http.enforce_http(false);
        http.set_nodelay(true);
        // Dead peers are noticed on idle pooled connections.
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        // A proxy is spoken to in HTTP/1.1 (`CONNECT` and forwarding), also over TLS.
        let mut to_proxy = (*tls).clone();
        to_proxy.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = Connector {
            direct: HttpsConnector::from((http.clone(), tls.clone())),
            to_proxy: HttpsConnector::from((http.clone(), Arc::new(to_proxy))),
            http,
            tls,
            proxies: proxies.clone(),
            limit: Duration::from_secs(config.connect_timeout_seconds),
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(true)
            .build(connector.clone());
        Ok(Self {
            client,
            connector,
            read_timeout: Duration::from_secs(config.idle_timeout_seconds),
            proxies,
        })
    }

    /// Sends a request (hyper adds `Host` and `Content-Length`); returns once the head of the
    /// answer is in, or after `read_timeout` of silence.
    pub async fn send(
        &self,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if let Some(auth) = self.forwarding_auth(uri) {
            headers.insert(header::PROXY_AUTHORIZATION, auth);
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        let method = request.method().clone();
        match tokio::time::timeout(self.read_timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            // Which URL could not be reached (never our headers: they are not in the errors).
            Ok(Err(error)) => Err(match transport(&error) {
                UpstreamError::Transport(message) => {
                    UpstreamError::Transport(format!("{method} {uri}: {message}"))
                }
                UpstreamError::Tls(message) => {
                    UpstreamError::Tls(format!("{method} {uri}: {message}"))
                }
                other => other,
            }),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    /// The reader of an answer's body.
    pub fn body(&self, incoming: Incoming) -> Body {
        Body {
            incoming,
            read_timeout: self.read_timeout,
        }
    }

    /// The proxy requests to `uri` go through, as a way to open byte streams to its host (a
    /// WebSocket's); `None` when they go straight.
    pub fn route(&self, uri: &Uri) -> Option<Route> {
        let proxy = self.proxies.as_ref()?.intercept(uri)?;
        Some(Route {
            connector: self.connector.clone(),
            proxy,
        })
    }

    /// A plain-HTTP request through an HTTP proxy carries the proxy's credentials itself (an
    /// HTTPS one carries them in its tunnel's `CONNECT`).
    fn forwarding_auth(&self, uri: &Uri) -> Option<HeaderValue> {
        if uri.scheme() != Some(&axum::http::uri::Scheme::HTTP) {
            return None;
        }
        let proxy = self.proxies.as_ref()?.intercept(uri)?;
        matches!(proxy.uri().scheme_str(), Some("http" | "https"))
            .then(|| proxy.basic_auth().cloned())
            .flatten()
    }
}

/// An answer's body, read piece by piece, each read bounded by the idle timeout.
pub struct Body {
    incoming: Incoming,
    read_timeout: Duration,
}

impl Body {
    /// The next piece; `None` at the end. Trailers are skipped.
    pub async fn next(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        loop {
            match tokio::time::timeout(self.read_timeout, self.incoming.frame()).await {
                Err(_) => return Some(Err(UpstreamError::Timeout)),
                Ok(None) => return None,
                Ok(Some(Err(error))) => return Some(Err(transport(&error))),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
            }
        }
    }

    /// The whole body, or an error when it is longer than `max` bytes.
    pub async fn read_to_end(&mut self, max: usize) -> Result<Vec<u8>, UpstreamError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > max {
                return Err(UpstreamError::Transport(format!(
                    "the answer is larger than {max} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The body as text, up to `max` bytes and as far as it could be read (an error's
    /// explanation).
    pub async fn read_lossy(&mut self, max: usize) -> String {
        let mut body = Vec::new();
        while let Some(Ok(chunk)) = self.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= max {
                body.truncate(max);
                break;
            }
        }
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// A byte stream, whatever carries it.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// A proxy, and how to reach it.
#[derive(Clone)]
pub struct Route {
    connector: Connector,
    proxy: Intercept,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The proxy's scheme only: its URL may hold credentials.
        f.debug_struct("Route")
            .field("proxy", &self.proxy.uri().scheme_str())
            .finish_non_exhaustive()
    }
}

impl Route {
    /// A byte stream to `host:port` through the proxy — a `CONNECT` tunnel through an HTTP(S)
    /// proxy (with the URL's credentials), a SOCKS connection — within the connect timeout.
    /// What goes inside (TLS to the host, a WebSocket) is the caller's.
    pub async fn open(&self, host: &str, port: u16) -> Result<Box<dyn Io>, BoxError> {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        // The port given always, so neither proxy kind assumes one from the scheme.
        let dst: Uri = format!("https://{host}:{port}").parse()?;
        let connector = &self.connector;
        let opening: Connecting<Box<dyn Io>> = match connector.socks(&self.proxy) {
            Some(mut socks) => {
                let connecting = socks.call(dst);
                Box::pin(async move { Ok(Box::new(connecting.await?.into_inner()) as Box<dyn Io>) })
            }
            None => {
                let connecting = connector.tunnel(&self.proxy).call(dst);
                Box::pin(
                    async move { Ok(Box::new(TokioIo::new(connecting.await?)) as Box<dyn Io>) },
                )
            }
        };
        within(self.connector.limit, opening).await
    }
}

/// `connecting`, or a timeout after `limit`.
async fn within<T>(limit: Duration, connecting: Connecting<T>) -> Result<T, BoxError> {
    match tokio::time::timeout(limit, connecting).await {
        Ok(connected) => connected,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connecting to the backend timed out",
        )
        .into()),
    }
}

/// Connects to a destination, through its proxy if one applies, within `connect_timeout_seconds`
/// (TCP, the proxy's handshake and TLS together).
#[derive(Clone)]
struct Connector {
    direct: HttpsConnector<HttpConnector>,
    /// To an HTTP(S) proxy itself: TLS for `https://` proxies, ALPN http/1.1 only.
    to_proxy: HttpsConnector<HttpConnector>,
    /// TCP to a SOCKS proxy.
    http: HttpConnector,
    tls: Arc<rustls::ClientConfig>,
    proxies: Option<Arc<Matcher>>,
    limit: Duration,
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Connecting<Conn>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Every connection is its own future; nothing here waits.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let limit = self.limit;
        let proxy = self.proxies.as_ref().and_then(|m| m.intercept(&dst));
        let connecting = match proxy {
            None => {
                let connecting = self.direct.call(dst);
                Box::pin(async move { Ok(Conn::Plain(connecting.await?)) })
            }
            Some(proxy) => self.via(&proxy, dst),
        };
        Box::pin(within(limit, connecting))
    }
}

impl Connector {
    fn via(&mut self, proxy: &Intercept, dst: Uri) -> Connecting<Conn> {
        let https = dst.scheme() == Some(&axum::http::uri::Scheme::HTTPS);
        if let Some(socks) = self.socks(proxy) {
            let connecting = HttpsConnector::from((socks, self.tls.clone())).call(dst);
            return Box::pin(async move { Ok(Conn::Plain(connecting.await?)) });
        }
        if https {
            let connecting = HttpsConnector::from((self.tunnel(proxy), self.tls.clone())).call(dst);
            Box::pin(async move { Ok(Conn::Tunnel(Box::new(connecting.await?))) })
        } else {
            // Plain HTTP goes to the proxy as absolute-form requests.
            let connecting = self.to_proxy.call(proxy.uri().clone());
            Box::pin(async move { Ok(Conn::Forward(connecting.await?)) })
        }
    }

    /// The connector to a SOCKS proxy; `None` when the proxy is not one.
    fn socks(&self, proxy: &Intercept) -> Option<SocksDestination> {
        let scheme = proxy.uri().scheme_str()?;
        matches!(scheme, "socks5" | "socks5h" | "socks4" | "socks4a").then(|| SocksDestination {
            http: self.http.clone(),
            proxy: with_default_port(proxy.uri(), 1080),
            v5: scheme.starts_with("socks5"),
            auth: proxy
                .raw_auth()
                .map(|(user, pass)| (user.to_owned(), pass.to_owned())),
            resolve: matches!(scheme, "socks5" | "socks4"),
        })
    }

    /// The connector of `CONNECT` tunnels through an HTTP(S) proxy.
    fn tunnel(&self, proxy: &Intercept) -> Tunnel<HttpsConnector<HttpConnector>> {
        let tunnel = Tunnel::new(proxy.uri().clone(), self.to_proxy.clone());
        match proxy.basic_auth() {
            Some(auth) => tunnel.with_auth(auth.clone()),
            None => tunnel,
        }
    }
}

/// `uri` with `port` when it names none.
fn with_default_port(uri: &Uri, port: u16) -> Uri {
    if uri.port().is_some() {
        return uri.clone();
    }
    let host = uri.host().unwrap_or_default();
    let scheme = uri.scheme_str().unwrap_or("socks5");
    format!("{scheme}://{host}:{port}")
        .parse()
        .unwrap_or_else(|_| uri.clone())
}

/// A SOCKS proxy's connector, given the destination's port always (hyper-util assumes 443),
/// and its address resolved here when the proxy's scheme says so (hyper-util would resolve it
/// with a blocking call). The TLS above still verifies the host name.
#[derive(Clone)]
struct SocksDestination {
    /// TCP to the proxy.
    http: HttpConnector,
    proxy: Uri,
    v5: bool,
    auth: Option<(String, String)>,
    resolve: bool,
}

impl Service<Uri> for SocksDestination {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let this = self.clone();
        let to_proxy = self.http.call(self.proxy.clone());
        Box::pin(async move {
            let host = dst.host().ok_or("the URL has no host")?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let https = dst.scheme() == Some(&axum::http::uri::Scheme::HTTPS);
            let port = dst.port_u16().unwrap_or(if https { 443 } else { 80 });
            let target = if this.resolve {
                let address: SocketAddr = tokio::net::lookup_host((host, port))
                    .await?
                    .next()
                    .ok_or_else(|| format!("{host} has no address"))?;
                address.to_string()
            } else if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let target: Uri = format!("http://{target}").parse()?;
            // Connected here, so that a failure keeps its cause (hyper-util's SOCKS errors
            // keep none).
            let connected = Given(Some(to_proxy.await?));
            let shaken = if this.v5 {
                let mut v5 = SocksV5::new(this.proxy, connected);
                if let Some((user, pass)) = this.auth {
                    v5 = v5.with_auth(user, pass);
                }
                v5.call(target).await
            } else {
                SocksV4::new(this.proxy, connected).call(target).await
            };
            shaken.map_err(|e| e.to_string().into())
        })
    }
}

/// A connector that hands out the one connection it was given.
struct Given(Option<TokioIo<TcpStream>>);

impl Service<Uri> for Given {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        std::future::ready(
            self.0
                .take()
                .ok_or_else(|| std::io::Error::other("the SOCKS connection was used twice")),
        )
    }
}

/// One pooled connection, however it was made.
enum Conn {
    /// Straight to the destination, or through a SOCKS proxy.
    Plain(Stream),
    /// To an HTTP proxy that is sent absolute-form requests.
    Forward(Stream),
    /// TLS to the destination inside a `CONNECT` tunnel through an HTTP(S) proxy.
    Tunnel(Box<MaybeHttpsStream<Stream>>),
}

macro_rules! each {
    ($self:ident, $io:ident => $body:expr) => {
        match $self.get_mut() {
            Conn::Plain($io) | Conn::Forward($io) => $body,
            Conn::Tunnel(boxed) => {
                let $io = &mut **boxed;
                $body
            }
        }
    };
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        each!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        each!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        each!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(io) | Self::Forward(io) => io.is_write_vectored(),
            Self::Tunnel(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Self::Plain(io) => io.connected(),
            // Absolute-form requests, never HTTP/2 (the proxy was offered http/1.1 only).
            Self::Forward(io) => io.connected().proxy(true),
            Self::Tunnel(io) => io.connected(),
        }
    }
}

/// A transport error: a timed-out connect is a timeout, a TLS failure (a certificate that does
/// not verify, a refused handshake) is not transient; otherwise the error and its causes (they
/// name hosts and addresses, never our headers).
fn transport(error: &(dyn std::error::Error + 'static)) -> UpstreamError {
    let mut message = error.to_string();
    let mut cause = error.source();
    let mut tls = false;
    while let Some(inner) = cause {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return UpstreamError::Timeout;
            }
            // An io::Error's source skips the error it wraps; rustls's is in there.
            tls |= io
                .get_ref()
                .is_some_and(|wrapped| wrapped.downcast_ref::<rustls::Error>().is_some());
        }
        tls |= inner.downcast_ref::<rustls::Error>().is_some();
        let text = inner.to_string();
        // Layers often repeat their cause's message; say it once.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    if tls {
        UpstreamError::Tls(message)
    } else {
        UpstreamError::Transport(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<dyn std::error::Error + 'static>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref()
        }
    }

    #[test]
    fn transport_errors_name_their_causes_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Layer(
            "client error (Connect)",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(refused)),
            ))),
        );
        match transport(&error) {
            UpstreamError::Transport(m) => {
                assert_eq!(m, "client error (Connect): tcp connect error: refused");
            }
            other => panic!("{other:?}"),
        }
        let repeated = Layer(
            "tcp connect error: refused",
            Some(Box::new(Layer("refused", None))),
        );
        assert!(
            matches!(transport(&repeated), UpstreamError::Transport(m) if m == "tcp connect error: refused")
        );
    }

    #[test]
    fn a_certificate_failure_is_a_tls_error() {
        let bad = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let error = Layer("client error (Connect)", Some(Box::new(bad)));
        assert!(matches!(transport(&error), UpstreamError::Tls(m) if m.contains("certificate")));
    }

    #[test]
    fn a_timed_out_connect_is_a_timeout() {
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let error = Layer("client error (Connect)", Some(Box::new(timed_out)));
        assert!(matches!(transport(&error), UpstreamError::Timeout));
    }

    #[test]
    fn socks_proxies_get_their_default_port() {
        let uri = Uri::from_static("socks5h://proxy.local");
        assert_eq!(
            with_default_port(&uri, 1080).to_string(),
            "socks5h://proxy.local:1080/"
        );
        let uri = Uri::from_static("socks5://proxy.local:9050");
        assert_eq!(with_default_port(&uri, 1080), uri);
    }

    fn tls() -> Arc<rustls::ClientConfig> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    }

    fn client(proxy: &str) -> Http {
        let config = UpstreamConfig {
            proxy: Some(proxy.to_owned().try_into().unwrap()),
            ..UpstreamConfig::default()
        };
        Http::new(&config, tls()).unwrap()
    }

    #[test]
    fn a_proxy_url_the_matcher_cannot_use_stops_the_daemon() {
        // A URL the config accepts (the url crate encodes the space) but `http::Uri` refuses:
        // going direct instead would bypass the proxy the user asked for.
        let proxy = "http://us er:pw@proxy.local:3128".to_owned();
        let config = UpstreamConfig {
            proxy: Some(proxy.try_into().unwrap()),
            ..UpstreamConfig::default()
        };
        let error = Http::new(&config, tls()).unwrap_err().to_string();
        assert_eq!(error, "upstream.proxy is not usable as a proxy URL");
    }

    #[tokio::test]
    async fn plain_http_through_an_http_proxy_carries_its_credentials() {
        let http = client("http://user:p%40ss@proxy.local:3128");
        let auth = http
            .forwarding_auth(&Uri::from_static("http://backend.local/x"))
            .unwrap();
        assert_eq!(auth, "Basic dXNlcjpwQHNz"); // user:p@ss
        assert!(auth.is_sensitive());
        // HTTPS carries them in the tunnel's CONNECT; SOCKS in its own handshake.
        assert!(
            http.forwarding_auth(&Uri::from_static("https://backend.local/x"))
                .is_none()
        );
        let socks = client("socks5://user:pw@proxy.local:1080");
        assert!(
            socks
                .forwarding_auth(&Uri::from_static("http://backend.local/x"))
                .is_none()
        );
        // Debug never shows them.
        let shown = format!("{http:?}");
        assert!(
            !shown.contains("p%40ss") && !shown.contains("dXNlcjpwQHNz"),
            "{shown}"
        );
    }
}
