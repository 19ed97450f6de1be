//! Upstream failures → errors a client can act on (protocol §4.1, §4.2; PRODUCT §4.1).

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::clock::{human_duration, unix_now, utc_clock};
use crate::server::ApiError;
use crate::translate::stream::Failure;

/// The usage-limit error: 429 with the reset time in words and in `Retry-After`.
pub fn usage_limit(resets_at: Option<i64>, plan: Option<&str>) -> ApiError {
    let now = unix_now();
    let plan = plan.map(|p| format!(" ({p} plan)")).unwrap_or_default();
    let (message, retry) = match resets_at.filter(|t| *t > now) {
        Some(at) => (
            format!(
                "The ChatGPT usage limit for Codex was reached{plan}; it resets at {} (in {}).",
                utc_clock(at, now),
                human_duration(at - now)
            ),
            Some((at - now) as u64),
        ),
        None => (
            format!("The ChatGPT usage limit for Codex was reached{plan}; try again later."),
            None,
        ),
    };
    let error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "usage_limit_reached",
        message,
    );
    match retry {
        Some(seconds) => error.retry_after(seconds),
        None => error,
    }
}

/// A 429 body of type `usage_limit_reached` (the account is out of quota, not just busy).
pub fn is_usage_limit(body: &str) -> bool {
    fields(body).1.as_deref() == Some("usage_limit_reached")
}

/// A 503 saying the model is at capacity (`server_is_overloaded` / `slow_down`).
pub fn is_overloaded(body: &str) -> bool {
    matches!(
        fields(body).2.as_deref(),
        Some("server_is_overloaded" | "slow_down")
    )
}

/// The `resets_at` of a usage-limit body.
pub fn usage_limit_resets_at(body: &str) -> Option<i64> {
    fields(body)
        .3
        .as_ref()
        .and_then(|e| e.get("resets_at"))
        .and_then(Value::as_i64)
}

/// Reads `detail`, `error.message`, `error.type`, `error.code` from an upstream error body.
fn fields(
    body: &str,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Value>,
) {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let message = text(json.get("detail")).or_else(|| text(json.pointer("/error/message")));
    (
        message,
        text(json.pointer("/error/type")),
        text(json.pointer("/error/code")),
        json.get("error").cloned(),
    )
}

fn shorten(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.chars().count() > 300 {
        format!("{}…", trimmed.chars().take(300).collect::<String>())
    } else {
        trimmed.to_owned()
    }
}

/// A non-2xx upstream answer before anything reached the client.
pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &str) -> ApiError {
    let (message, kind, code, error) = fields(body);
    let message_or = |fallback: &str| message.clone().unwrap_or_else(|| fallback.to_owned());
    match status.as_u16() {
        429 if kind.as_deref() == Some("usage_limit_reached") => {
            let resets_at = error
                .as_ref()
                .and_then(|e| e.get("resets_at"))
                .and_then(Value::as_i64);
            let plan = error
                .as_ref()
                .and_then(|e| e.get("plan_type"))
                .and_then(Value::as_str);
            usage_limit(resets_at, plan)
        }
        429 if kind.as_deref() == Some("usage_not_included") => ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "usage_not_included",
            "This ChatGPT plan does not include Codex; it needs Plus, Pro, Business, Enterprise or Edu.",
        ),
        429 => {
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                message_or("The Codex backend is rate limiting requests."),
            );
            match headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
            {
                Some(seconds) => error.retry_after(seconds),
                None => error,
            }
        }
        400 => {
            let mut error =
                ApiError::invalid(message_or("The Codex backend rejected the request."), None);
            error.code = match code.as_deref() {
                Some("context_length_exceeded") => Some("context_length_exceeded"),
                Some("cyber_policy") => Some("cyber_policy"),
                _ => None,
            };
            error.param = error.param.or_else(|| error_param(body));
            error
        }
        401 => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unauthorized",
            "The ChatGPT account's sign-in was rejected by the Codex backend (expired or revoked). \
             Sign in again with `codexctl login`.",
        ),
        403 if body.contains("Cloudflare") => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_blocked",
            "Access blocked by Cloudflare: this usually happens when connecting from a restricted \
             region or network (upstream 403).",
        ),
        403 => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_forbidden",
            format!(
                "The Codex backend refused the account (403): {}",
                shorten(&message_or(body))
            ),
        ),
        503 if matches!(code.as_deref(), Some("server_is_overloaded" | "slow_down")) => {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "server_overloaded",
                "The selected model is at capacity; try again shortly.",
            )
            .retry_after(5)
        }
        504 => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            "The Codex backend timed out (504).",
        ),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_error",
            format!(
                "The Codex backend failed ({other}): {}",
                shorten(&message_or(body))
            ),
        ),
    }
}

fn error_param(body: &str) -> Option<String> {
    let json: Value = serde_json::from_str(body).ok()?;
    json.pointer("/error/param")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A `response.failed` (or truncated stream) before the first byte reached the client (§4.2).
pub fn from_failure(failure: &Failure) -> ApiError {
    let message = failure.message.clone();
    match failure.code.as_deref() {
        Some("context_length_exceeded") => {
            let mut e = ApiError::invalid(message, Some("messages"));
            e.code = Some("context_length_exceeded");
            e
        }
        Some("insufficient_quota") => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "insufficient_quota",
            message,
        ),
        Some("usage_not_included") => ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "usage_not_included",
            message,
        ),
        Some(code @ ("cyber_policy" | "invalid_prompt" | "bio_policy")) => {
            let mut e = ApiError::invalid(message, None);
            e.code = Some(match code {
                "cyber_policy" => "cyber_policy",
                "bio_policy" => "bio_policy",
                _ => "invalid_prompt",
            });
            e
        }
        Some("server_is_overloaded" | "slow_down") => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "server_overloaded",
            message,
        )
        .retry_after(5),
        Some("rate_limit_exceeded") => {
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                message.clone(),
            );
            match retry_delay(&message) {
                Some(seconds) => error.retry_after(seconds),
                None => error,
            }
        }
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_error",
            message,
        ),
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
    fn usage_limit_says_when_and_sets_retry_after() {
        let at = unix_now() + 3600;
        let body = format!(
            r#"{{"error":{{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_at":{at},"resets_in_seconds":3600}}}}"#
        );
        let e = from_status(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), &body);
        assert_eq!(
            (e.status.as_u16(), e.code),
            (429, Some("usage_limit_reached"))
        );
        assert!(e.message.contains("resets at"), "{}", e.message);
        assert!(
            e.message.contains("(in 1h 0m)") || e.message.contains("(in 59m)"),
            "{}",
            e.message
        );
        assert!(e.message.contains("plus plan"));
        assert!((3590..=3600).contains(&e.retry_after.unwrap()));
    }

    #[test]
    fn statuses_map_to_clear_errors() {
        let h = HeaderMap::new();
        let e = from_status(
            StatusCode::BAD_REQUEST,
            &h,
            r#"{"detail":"Instructions are required"}"#,
        );
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (400, "Instructions are required")
        );
        let e = from_status(
            StatusCode::BAD_REQUEST,
            &h,
            r#"{"error":{"message":"too long","type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(
            (e.code, e.param.as_deref()),
            (Some("context_length_exceeded"), Some("input"))
        );
        let e = from_status(StatusCode::UNAUTHORIZED, &h, r#"{"detail":"Unauthorized"}"#);
        assert_eq!(
            (e.status.as_u16(), e.code),
            (502, Some("upstream_unauthorized"))
        );
        assert!(e.message.contains("codexctl login"));
        let e = from_status(
            StatusCode::FORBIDDEN,
            &h,
            "<html><title>Attention Required! | Cloudflare</title>blocked</html>",
        );
        assert_eq!(e.code, Some("upstream_blocked"));
        let e = from_status(
            StatusCode::SERVICE_UNAVAILABLE,
            &h,
            r#"{"error":{"code":"server_is_overloaded","message":"busy"}}"#,
        );
        assert_eq!((e.status.as_u16(), e.retry_after), (503, Some(5)));
        let e = from_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            &h,
            r#"{"error":{"message":"boom"}}"#,
        );
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (502, "The Codex backend failed (500): boom")
        );
        let e = from_status(StatusCode::GATEWAY_TIMEOUT, &h, "");
        assert_eq!(e.status.as_u16(), 504);
        let e = from_status(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            r#"{"error":{"type":"usage_not_included","message":"x"}}"#,
        );
        assert_eq!(e.status.as_u16(), 403);
    }

    #[test]
    fn failures_map_by_code() {
        let f = |code: &str, message: &str| {
            from_failure(&Failure {
                code: Some(code.into()),
                message: message.into(),
            })
        };
        assert_eq!(
            f("context_length_exceeded", "too long").status.as_u16(),
            400
        );
        assert_eq!(f("cyber_policy", "flagged").code, Some("cyber_policy"));
        assert_eq!(f("server_is_overloaded", "busy").status.as_u16(), 503);
        let e = f(
            "rate_limit_exceeded",
            "Rate limit reached. Please try again in 11.054s.",
        );
        assert_eq!((e.status.as_u16(), e.retry_after), (429, Some(12)));
        assert_eq!(
            f("rate_limit_exceeded", "Please try again in 28ms.").retry_after,
            Some(1)
        );
        assert_eq!(f("mystery", "??").status.as_u16(), 502);
    }
}
