//! Backend failures, classified (protocol §4.1, §4.2): what the engine decides on (fail over,
//! cool down, retry) and what each surface renders in its own shape. Nothing here knows HTTP
//! responses to clients.

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::client::UpstreamError;
use super::wire::Failure;

impl UpstreamError {
    /// What this error means for the request.
    pub fn failure(&self) -> UpstreamFailure {
        match self {
            Self::Status {
                status,
                headers,
                body,
            } => from_status(*status, headers, body),
            Self::Transport(message) => UpstreamFailure::Unreachable {
                message: message.clone(),
                retryable: true,
            },
            Self::Tls(message) => UpstreamFailure::Unreachable {
                message: format!("the TLS connection failed: {message}"),
                retryable: false,
            },
            Self::Timeout => UpstreamFailure::Timeout,
        }
    }
}

/// What went wrong at the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The account's ChatGPT usage limit for Codex (429 `usage_limit_reached`).
    UsageLimit {
        resets_at: Option<i64>,
        plan: Option<String>,
    },
    /// The plan does not include Codex; `message` is the backend's, when it gave one.
    NotIncluded {
        message: Option<String>,
    },
    /// Requests are being rate limited (not a spent quota).
    RateLimited {
        message: String,
        retry_after: Option<u64>,
    },
    /// The backend refused the request itself (400s, policy codes, context length).
    Invalid {
        message: String,
        code: Option<&'static str>,
        param: Option<String>,
    },
    InsufficientQuota {
        message: String,
    },
    /// The account's sign-in was rejected (401).
    Unauthorized,
    /// Cloudflare refused the connection (403 page).
    Blocked,
    Forbidden {
        message: String,
    },
    /// The model is at capacity; `message` is the backend's, when it gave one.
    Overloaded {
        message: Option<String>,
    },
    /// 504 from the backend.
    GatewayTimeout,
    /// No answer in time.
    Timeout,
    /// The backend could not be reached (connection, TLS, proxy).
    Unreachable {
        message: String,
        retryable: bool,
    },
    /// Anything else: a 5xx, an unknown stream failure code.
    Other {
        status: Option<u16>,
        message: String,
    },
}

impl UpstreamFailure {
    /// A failure that says nothing about the request and may go better on another attempt or
    /// account: 5xx answers (but an overloaded model's), broken connections, timeouts.
    pub fn is_backend_fault(&self) -> bool {
        match self {
            Self::Timeout | Self::GatewayTimeout => true,
            Self::Unreachable { retryable, .. } => *retryable,
            Self::Other { status, .. } => status.is_some_and(|s| s >= 500),
            _ => false,
        }
    }
}

/// The error body's `detail` / `error.message`, `error.type`, `error.code`, `error.param`,
/// `error.resets_at`, `error.plan_type`, read in one parse.
#[derive(Debug, Default)]
struct Body {
    message: Option<String>,
    kind: Option<String>,
    code: Option<String>,
    param: Option<String>,
    resets_at: Option<i64>,
    plan: Option<String>,
}

fn read_body(body: &str) -> Body {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return Body::default();
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let error = json.get("error");
    Body {
        message: text(json.get("detail")).or_else(|| text(json.pointer("/error/message"))),
        kind: text(error.and_then(|e| e.get("type"))),
        code: text(error.and_then(|e| e.get("code"))),
        param: text(error.and_then(|e| e.get("param"))),
        resets_at: error
            .and_then(|e| e.get("resets_at"))
            .and_then(Value::as_i64),
        plan: text(error.and_then(|e| e.get("plan_type"))),
    }
}

/// The first 300 characters of `text`, trimmed.
pub fn shorten(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.chars().count() > 300 {
        format!("{}…", trimmed.chars().take(300).collect::<String>())
    } else {
        trimmed.to_owned()
    }
}

/// A non-2xx answer to a request.
pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &str) -> UpstreamFailure {
    let fields = read_body(body);
    let message_or = |fallback: &str| {
        fields
            .message
            .clone()
            .unwrap_or_else(|| fallback.to_owned())
    };
    match status.as_u16() {
        429 if fields.kind.as_deref() == Some("usage_limit_reached") => {
            UpstreamFailure::UsageLimit {
                resets_at: fields.resets_at,
                plan: fields.plan.clone(),
            }
        }
        429 if fields.kind.as_deref() == Some("usage_not_included") => {
            UpstreamFailure::NotIncluded { message: None }
        }
        429 => UpstreamFailure::RateLimited {
            message: message_or("The Codex backend is rate limiting requests."),
            retry_after: headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        },
        400 => UpstreamFailure::Invalid {
            message: message_or("The Codex backend rejected the request."),
            code: match fields.code.as_deref() {
                Some("context_length_exceeded") => Some("context_length_exceeded"),
                Some("cyber_policy") => Some("cyber_policy"),
                Some("previous_response_not_found") => Some("previous_response_not_found"),
                // Reasoning encrypted by another account (a conversation that moved).
                Some("invalid_encrypted_content") => Some("invalid_encrypted_content"),
                _ => None,
            },
            param: fields.param.clone(),
        },
        401 => UpstreamFailure::Unauthorized,
        403 if body.contains("Cloudflare") => UpstreamFailure::Blocked,
        403 => UpstreamFailure::Forbidden {
            message: shorten(&message_or(body)),
        },
        503 if matches!(
            fields.code.as_deref(),
            Some("server_is_overloaded" | "slow_down")
        ) =>
        {
            UpstreamFailure::Overloaded { message: None }
        }
        504 => UpstreamFailure::GatewayTimeout,
        other => UpstreamFailure::Other {
            status: Some(other),
            message: format!(
                "The Codex backend failed ({other}): {}",
                shorten(&message_or(body))
            ),
        },
    }
}

/// A `response.failed` (or a stream that broke or ended early).
pub fn from_failure(failure: &Failure) -> UpstreamFailure {
    let message = failure.message.clone();
    match failure.code.as_deref() {
        Some("context_length_exceeded") => UpstreamFailure::Invalid {
            message,
            code: Some("context_length_exceeded"),
            param: None,
        },
        Some("insufficient_quota") => UpstreamFailure::InsufficientQuota { message },
        Some("usage_not_included") => UpstreamFailure::NotIncluded {
            message: Some(message),
        },
        Some("usage_limit_reached") => UpstreamFailure::UsageLimit {
            resets_at: failure.resets_at,
            plan: None,
        },
        Some(code @ ("cyber_policy" | "invalid_prompt" | "bio_policy")) => {
            UpstreamFailure::Invalid {
                message,
                code: Some(match code {
                    "cyber_policy" => "cyber_policy",
                    "bio_policy" => "bio_policy",
                    _ => "invalid_prompt",
                }),
                param: None,
            }
        }
        Some("server_is_overloaded" | "slow_down") => UpstreamFailure::Overloaded {
            message: Some(message),
        },
        Some("rate_limit_exceeded") => UpstreamFailure::RateLimited {
            retry_after: retry_delay(&message),
            message,
        },
        _ => UpstreamFailure::Other {
            status: None,
            message,
        },
    }
}

/// "Please try again in 11.054s" / "28ms" / "35 seconds" → whole seconds, rounded up.
fn retry_delay(message: &str) -> Option<u64> {
    let rest = message.split("try again in ").nth(1)?;
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let value: f64 = number.parse().ok()?;
    let unit = rest[number.len()..].trim_start();
    let seconds = if unit.starts_with("ms") {
        value / 1000.0
    } else {
        value
    };
    Some(seconds.ceil().max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let h = HeaderMap::new();
        let body = r#"{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_at":1700003600,"resets_in_seconds":3600}}"#;
        assert_eq!(
            from_status(StatusCode::TOO_MANY_REQUESTS, &h, body),
            UpstreamFailure::UsageLimit {
                resets_at: Some(1_700_003_600),
                plan: Some("plus".into())
            }
        );
        assert_eq!(
            from_status(
                StatusCode::BAD_REQUEST,
                &h,
                r#"{"detail":"Instructions are required"}"#
            ),
            UpstreamFailure::Invalid {
                message: "Instructions are required".into(),
                code: None,
                param: None
            }
        );
        assert_eq!(
            from_status(
                StatusCode::BAD_REQUEST,
                &h,
                r#"{"error":{"message":"too long","type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}"#
            ),
            UpstreamFailure::Invalid {
                message: "too long".into(),
                code: Some("context_length_exceeded"),
                param: Some("input".into())
            }
        );
        assert_eq!(
            from_status(StatusCode::UNAUTHORIZED, &h, r#"{"detail":"x"}"#),
            UpstreamFailure::Unauthorized
        );
        assert_eq!(
            from_status(
                StatusCode::FORBIDDEN,
                &h,
                "<html><title>Attention Required! | Cloudflare</title>blocked</html>"
            ),
            UpstreamFailure::Blocked
        );
        let overloaded = from_status(
            StatusCode::SERVICE_UNAVAILABLE,
            &h,
            r#"{"error":{"code":"server_is_overloaded","message":"busy"}}"#,
        );
        assert_eq!(overloaded, UpstreamFailure::Overloaded { message: None });
        assert!(!overloaded.is_backend_fault());
        let boom = from_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            &h,
            r#"{"error":{"message":"boom"}}"#,
        );
        assert_eq!(
            boom,
            UpstreamFailure::Other {
                status: Some(500),
                message: "The Codex backend failed (500): boom".into()
            }
        );
        assert!(boom.is_backend_fault());
        assert_eq!(
            from_status(StatusCode::GATEWAY_TIMEOUT, &h, ""),
            UpstreamFailure::GatewayTimeout
        );
        assert_eq!(
            from_status(
                StatusCode::TOO_MANY_REQUESTS,
                &h,
                r#"{"error":{"type":"usage_not_included","message":"x"}}"#
            ),
            UpstreamFailure::NotIncluded { message: None }
        );
    }

    #[test]
    fn failures_are_classified_by_code() {
        let f = |code: &str, message: &str| {
            from_failure(&Failure {
                code: Some(code.into()),
                message: message.into(),
                resets_at: None,
            })
        };
        assert!(matches!(
            f("context_length_exceeded", "too long"),
            UpstreamFailure::Invalid {
                code: Some("context_length_exceeded"),
                ..
            }
        ));
        assert!(matches!(
            f("cyber_policy", "flagged"),
            UpstreamFailure::Invalid {
                code: Some("cyber_policy"),
                ..
            }
        ));
        assert!(matches!(
            f("server_is_overloaded", "busy"),
            UpstreamFailure::Overloaded { .. }
        ));
        assert!(matches!(
            f(
                "rate_limit_exceeded",
                "Rate limit reached. Please try again in 11.054s."
            ),
            UpstreamFailure::RateLimited {
                retry_after: Some(12),
                ..
            }
        ));
        assert!(matches!(
            f("rate_limit_exceeded", "Please try again in 28ms."),
            UpstreamFailure::RateLimited {
                retry_after: Some(1),
                ..
            }
        ));
        assert!(matches!(
            f("usage_limit_reached", "limit"),
            UpstreamFailure::UsageLimit { .. }
        ));
        assert!(matches!(
            f("mystery", "??"),
            UpstreamFailure::Other { status: None, .. }
        ));
    }
}
