//! The Responses call on hyper's pooled client, without reqwest's per-request layers.
//!
//! reqwest wraps every request in layers the Responses call never uses: its redirect layer
//! re-parses the URL (we follow no redirects), its retry layer clones the request's headers
//! before the first attempt, and the builder merges our header map into its own. Together
//! that was about a tenth of the daemon's instructions per request. This client is the one
//! under reqwest (hyper-util's pool over the same rustls connector and trust store), given
//! the request whole. It is used only when no proxy applies to the backend; reqwest, which
//! speaks HTTP, HTTPS and SOCKS proxies, carries everything else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Request, Response, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::client::UpstreamError;
use crate::config::UpstreamConfig;

pub struct Direct {
    client: Client<Timed, Full<Bytes>>,
    /// The longest silence: before the answer's head, and between reads of its body.
    read_timeout: Duration,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl Direct {
    /// Whether a request to `uri` goes straight to the backend: no `upstream.proxy`, and no
    /// proxy from the environment (`HTTPS_PROXY`, `ALL_PROXY`, … less `NO_PROXY`) as reqwest
    /// reads it.
    pub fn applies(config: &UpstreamConfig, uri: &Uri) -> bool {
        config.proxy.is_none()
            && hyper_util::client::proxy::matcher::Matcher::from_system()
                .intercept(uri)
                .is_none()
    }

    /// The settings reqwest's client has (see `Upstream::with_cookies`), on the same TLS
    /// configuration.
    pub fn new(config: &UpstreamConfig, tls: Arc<rustls::ClientConfig>) -> Self {
        let mut http = HttpConnector::new();
        // The connector below does TLS for `https://`; this one must let those through.
        http.enforce_http(false);
        http.set_nodelay(true);
        // reqwest's defaults: dead peers are noticed on idle pooled connections.
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        let connector = Timed {
            inner: HttpsConnector::from((http, tls)),
            limit: Duration::from_secs(config.connect_timeout_seconds),
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(true)
            .build(connector);
        Self {
            client,
            read_timeout: Duration::from_secs(config.idle_timeout_seconds),
        }
    }

    /// POSTs `body` with `headers` (hyper adds `Host` and `Content-Length`); returns once the
    /// head of the answer is in.
    pub async fn post(
        &self,
        uri: &Uri,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        match tokio::time::timeout(self.read_timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            // Named like reqwest's errors: which URL could not be reached.
            Ok(Err(error)) => Err(match transport(&error) {
                UpstreamError::Transport(message) => {
                    UpstreamError::Transport(format!("POST {uri}: {message}"))
                }
                other => other,
            }),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }

    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
}

/// The connector with `connect_timeout_seconds` over the whole of connecting — TCP and the TLS
/// handshake — as reqwest bounds it (hyper's own timeout covers only TCP).
#[derive(Clone)]
struct Timed {
    inner: HttpsConnector<HttpConnector>,
    limit: Duration,
}

type Connecting = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Future;

impl tower_service::Service<Uri> for Timed {
    type Response = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Response;
    type Error = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting: Connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting to the backend timed out",
                )
                .into()),
            }
        })
    }
}

/// The next piece of an answer's body; `None` at its end. Trailers are skipped.
pub async fn next_chunk(
    body: &mut Incoming,
    read_timeout: Duration,
) -> Option<Result<Bytes, UpstreamError>> {
    loop {
        match tokio::time::timeout(read_timeout, body.frame()).await {
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

/// A transport error as the reqwest path reports it: a timed-out connect is a timeout;
/// otherwise the error and its causes (they name hosts and addresses, never our headers).
fn transport(error: &(dyn std::error::Error + 'static)) -> UpstreamError {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        if inner
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return UpstreamError::Timeout;
        }
        let text = inner.to_string();
        // Layers often repeat their cause's message; say it once.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    UpstreamError::Transport(message)
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
    fn a_timed_out_connect_is_a_timeout() {
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let error = Layer("client error (Connect)", Some(Box::new(timed_out)));
        assert!(matches!(transport(&error), UpstreamError::Timeout));
    }
}
