//! Server-sent events out: the response every streamed surface answers with.

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::ApiError;

/// Sent after every `keepalive_seconds` of silence, so proxies and clients keep the stream.
pub const KEEPALIVE_COMMENT: &[u8] = b": keepalive\n\n";

/// A surface's stream: its next frame, or `None` at the end.
pub trait Frames: Send + 'static {
    fn next_frame(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
}

/// `200 text/event-stream` with `source`'s frames as the body, unbuffered by proxies.
pub fn response(source: impl Frames) -> Response {
    response_as(source, "text/event-stream")
}

/// `200` with `source`'s frames as a body of this type (e.g. NDJSON), unbuffered by proxies.
pub fn response_as(source: impl Frames, content_type: &'static str) -> Response {
    let body = stream::unfold(source, |mut source| async move {
        let bytes = source.next_frame().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(bytes), source))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| ApiError::internal(e.to_string()).into_response())
}
