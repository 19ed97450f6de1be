//! The HTTP surface's own errors: unknown paths and methods, and the framework's rejections
//! rewritten as OpenAI-shaped JSON.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::api_error::{ApiError, quoted};

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        format!("Unknown endpoint: {method} {}", quoted(uri.path())),
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!("{method} is not allowed on {}", quoted(uri.path())),
    )
}

/// The last layer: an error response that is not JSON yet (the framework's own rejections:
/// a path that does not decode, a query string that does not parse) becomes OpenAI-shaped
/// JSON with the same status, quoting the framework's reason.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let reason = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (kind, code) = match status.as_u16() {
        404 => ("invalid_request_error", "not_found"),
        405 => ("invalid_request_error", "method_not_allowed"),
        408 => ("invalid_request_error", "request_timeout"),
        413 => ("invalid_request_error", "request_too_large"),
        415 => ("invalid_request_error", "unsupported_media_type"),
        400..=499 => ("invalid_request_error", "invalid_request"),
        _ => ("server_error", "internal"),
    };
    let message = if reason.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("The request failed")
            .to_owned()
    } else {
        reason
    };
    let mut json = ApiError::new(status, kind, code, message).into_response();
    if let Some(retry) = retry_after {
        json.headers_mut().insert(header::RETRY_AFTER, retry);
    }
    json.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    json
}

/// Rewrites an error response in a surface's own shape, whoever made it (auth, body limits,
/// the handlers): `render` gets the status (which it may change), the message and the error
/// code, read from OpenAI's and Anthropic's `{"error": {"message", "code"}}`, Ollama's
/// `{"error": "…"}` or plain text, and returns the new JSON body. Other responses pass.
pub async fn reshape(
    response: Response,
    render: impl FnOnce(&mut StatusCode, &str, Option<&str>) -> String,
) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let parsed = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let message = match error {
        Some(serde_json::Value::String(message)) => Some(message.clone()),
        Some(error) => error
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned),
        None => None,
    }
    .unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        }
    });
    let code = error.and_then(|e| e.get("code")).and_then(|c| c.as_str());
    let body = render(&mut parts.status, &message, code);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_text_errors_become_json_with_their_status() {
        let plain = (StatusCode::BAD_REQUEST, "Invalid URL: bad escape").into_response();
        let json = json_errors(plain).await;
        assert_eq!(json.status(), 400);
        let body = axum::body::to_bytes(json.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "Invalid URL: bad escape");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let ok = json_errors((StatusCode::OK, "fine").into_response()).await;
        assert_eq!(ok.status(), 200);
    }
}
