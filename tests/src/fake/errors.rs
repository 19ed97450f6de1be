//! Error bodies in the shapes the real services use.
//!
//! The Codex backend answers its own checks with `{"detail": "…"}`; errors raised by the
//! Responses engine behind it use the OpenAI shape `{"error":{message,type,param,code}}`.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A refused request: the response to send and a one-line reason for the recording.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: StatusCode,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Rejection {
    /// `{"detail": msg}`: the backend's own checks.
    pub fn detail(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "detail": message.into() }),
            headers: Vec::new(),
        }
    }

    /// The OpenAI error shape, as the Responses engine answers.
    pub fn api(
        status: StatusCode,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        Self {
            status,
            body: json!({"error": {
                "message": message.into(),
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }}),
            headers: Vec::new(),
        }
    }

    /// A 400 for a check the real backend may not make but the official client always
    /// satisfies; the prefix makes clear in test output that the fake, not OpenAI, said it.
    pub fn strict(message: impl Into<String>) -> Self {
        Self::detail(
            StatusCode::BAD_REQUEST,
            format!("fake-upstream strict: {}", message.into()),
        )
    }

    /// 401 as the backend answers a missing or bad bearer token.
    pub fn unauthorized() -> Self {
        Self::detail(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    /// 401 for an expired access token, with the `x-error-json` header the client decodes.
    pub fn token_expired() -> Self {
        use base64::Engine;
        let error_json = json!({"error": {"code": "token_expired"}}).to_string();
        Self {
            status: StatusCode::UNAUTHORIZED,
            body: json!({"error": {
                "message": "Provided authentication token is expired. Please try signing in again.",
                "type": null,
                "code": "token_expired",
                "param": null,
            }, "status": 401}),
            headers: vec![(
                "x-error-json",
                base64::engine::general_purpose::STANDARD.encode(error_json),
            )],
        }
    }

    /// What goes into the recording.
    pub fn reason(&self) -> String {
        let text = self
            .body
            .get("detail")
            .and_then(Value::as_str)
            .or_else(|| self.body.pointer("/error/message").and_then(Value::as_str))
            .or_else(|| self.body.get("error_description").and_then(Value::as_str))
            .or_else(|| self.body.get("error").and_then(Value::as_str));
        format!("{} {}", self.status.as_u16(), text.unwrap_or(""))
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}

pub fn detail(status: StatusCode, message: &str) -> Response {
    Rejection::detail(status, message).into_response()
}
