//! Every API request observed: an [`Observed`] in the request's extensions for the surface and
//! the engine to fill in, and the response body wrapped so the record is finished when the
//! client has the whole body or has gone — a stream is recorded when it ends, not when it
//! starts. Error bodies are read (they are small) for their message.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};

use super::AppState;
use crate::requests::{Finished, Observed};

/// The longest error body read for its message.
const MAX_ERROR_BODY: usize = 64 << 10;

pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    // Probes, health checks, scrapes and the dashboard's own pages are not requests of a
    // client's.
    if matches!(path.as_str(), "/" | "/health" | "/api/hello" | "/metrics")
        || path.starts_with("/dashboard")
    {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let observed = Observed::default();
    request.extensions_mut().insert(observed.clone());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    // A WebSocket: each of its turns is recorded as a request of its own.
    if status == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let (parts, body) = response.into_parts();
    // An error's body is small JSON: read for its message, then sent as it was.
    let (body, error) = if status.is_client_error() || status.is_server_error() {
        let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let error = error_message(&bytes).or_else(|| {
            Some(
                status
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_owned(),
            )
        });
        (Body::from(bytes), error)
    } else {
        (body, None)
    };
    let watched = Watched {
        inner: Some(body),
        state,
        observed,
        method,
        path,
        status: status.as_u16(),
        started,
        first_byte: None,
        error,
    };
    Response::from_parts(parts, Body::new(watched))
}

/// The `error.message` of an OpenAI- or Anthropic-shaped error body.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .pointer("/error/message")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// A response body that finishes its request's record when it is done or dropped.
struct Watched {
    inner: Option<Body>,
    state: AppState,
    observed: Observed,
    method: String,
    path: String,
    status: u16,
    started: Instant,
    first_byte: Option<Instant>,
    error: Option<String>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && self.first_byte.is_none()
            && frame.data_ref().is_some_and(|d| !d.is_empty())
        {
            self.first_byte = Some(Instant::now());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // The surface's body first: its turn guard adds the usage as it goes.
        drop(self.inner.take());
        self.state.requests().finish(
            &self.observed,
            Finished {
                method: &self.method,
                path: &self.path,
                status: self.status,
                started: self.started,
                first_byte: self.first_byte,
                error: self.error.take(),
            },
        );
    }
}
