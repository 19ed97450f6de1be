//! An error answered to an API client: status, OpenAI-style `type` and `code`, message, the
//! parameter at fault and a `Retry-After`. OpenAI's JSON shape is how it renders by default
//! ([`IntoResponse`]); a surface with its own error shape maps these fields onto it.

use std::borrow::Cow;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The longest message an error carries (client input it quotes is cut shorter still).
const MAX_MESSAGE: usize = 1024;
/// The longest piece of client input an error quotes.
const MAX_QUOTED: usize = 120;

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// Client input as an error quotes it: short enough that a huge value is not echoed back.
pub fn quoted(input: &str) -> Cow<'_, str> {
    cut(input, MAX_QUOTED)
}

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// 400 `invalid_request_error`, naming the offending parameter.
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: bounded(message.into()),
            kind: "invalid_request_error",
            param: param.map(|p| quoted(p).into_owned()),
            code: None,
            retry_after: None,
        }
    }

    /// 404 `model_not_found`, listing what the client can use instead.
    pub fn model_not_found(requested: &str, available: &[&str]) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: bounded(format!(
                "The model '{}' does not exist or is not available through codex-proxy. \
                 Available: {}.",
                quoted(requested),
                available.join(", ")
            )),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
            retry_after: None,
        }
    }

    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: bounded(message.into()),
            kind,
            param: None,
            code: Some(code),
            retry_after: None,
        }
    }

    /// 500: the daemon itself failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal",
            message,
        )
    }

    /// A translated request that could not be written for the backend.
    pub fn not_encoded(error: impl std::fmt::Display) -> Self {
        Self::internal(format!(
            "The request could not be encoded for the backend: {error}"
        ))
    }

    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The error object as OpenAI streams it after the first byte.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body_json())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

fn bounded(message: String) -> String {
    match cut(&message, MAX_MESSAGE) {
        Cow::Borrowed(_) => message,
        Cow::Owned(cut) => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_quotes_are_bounded_at_character_boundaries() {
        let huge = "é".repeat(10_000);
        let e = ApiError::model_not_found(&huge, &["gpt-5.5"]);
        assert!(e.message.len() < 400, "{}", e.message.len());
        assert!(e.message.contains('…') && e.message.contains("gpt-5.5"));
        let e = ApiError::invalid(huge.clone(), Some(&huge));
        assert!(e.message.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(e.param.unwrap().len() <= MAX_QUOTED + '…'.len_utf8());
        assert_eq!(quoted("short"), "short");
    }
}
