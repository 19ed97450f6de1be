//! Why a turn could not start or finish, in terms of the pool and the backend. Surfaces render it:
//! [`EngineError::to_api_error`] gives the status, type, code and message a client is told
//! (OpenAI's vocabulary, which the other surfaces map onto their own shapes).

use axum::http::StatusCode;

use crate::api_error::ApiError;
use crate::clock::{human_duration, unix_now, utc_clock};
use crate::upstream::errors::UpstreamFailure;

#[derive(Debug, Clone)]
pub enum EngineError {
    /// No account is signed in.
    NoAccount,
    /// Signed-in accounts whose sign-in ended (name and reason), and no other to serve.
    NeedsLogin(Vec<String>),
    /// Every account is disabled.
    AllDisabled,
    /// Every usable account is cooling down after its usage limit.
    AllLimited { resets_at: Option<i64> },
    /// No slot freed up within `queue_timeout_seconds`.
    QueueTimeout {
        per_account: usize,
        waited_secs: u64,
    },
    /// The backend kept failing this account; it is left alone for a while.
    CircuitOpen {
        account: String,
        failures: u32,
        last_error: String,
        retry_in_secs: u64,
    },
    /// A token refresh failed; `needs_login` when the sign-in is over.
    Auth { needs_login: bool, message: String },
    /// What the backend answered.
    Upstream(UpstreamFailure),
}

impl From<UpstreamFailure> for EngineError {
    fn from(failure: UpstreamFailure) -> Self {
        Self::Upstream(failure)
    }
}

/// The usage-limit error: 429 with the reset time in words and in `Retry-After`.
/// A `response.failed` (or broken stream) after the response began, as a client is told it:
/// the same classification and wording as a failure before it began.
pub fn stream_failure(failure: &crate::upstream::wire::Failure) -> ApiError {
    EngineError::from(crate::upstream::errors::from_failure(failure)).to_api_error()
}

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

impl EngineError {
    /// What a client is told.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::NoAccount => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "no_account",
                "No ChatGPT account is signed in to codex-proxy; add one with `codexctl login`.",
            ),
            Self::NeedsLogin(names) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "account_needs_login",
                format!(
                    "The sign-in of {} has ended and no other account can serve; sign in again \
                     with `codexctl login`.",
                    names.join(", ")
                ),
            ),
            Self::AllDisabled => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "accounts_disabled",
                "Every account is disabled; enable one with `codexctl accounts enable ID`.",
            ),
            Self::AllLimited { resets_at } => usage_limit(*resets_at, None),
            Self::QueueTimeout {
                per_account,
                waited_secs,
            } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "queue_timeout",
                format!(
                    "Every account is busy ({per_account} requests each at most); waited \
                     {waited_secs} s for a free slot. Try again, or raise [auth] \
                     max_concurrent_per_account."
                ),
            )
            .retry_after(1),
            Self::CircuitOpen {
                account,
                failures,
                last_error,
                retry_in_secs,
            } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_error",
                "upstream_unavailable",
                format!(
                    "The Codex backend failed the last {failures} requests on account {account} \
                     ({last_error}); codex-proxy holds off for {retry_in_secs} s before trying \
                     it again."
                ),
            )
            .retry_after(*retry_in_secs),
            Self::Auth {
                needs_login: true,
                message,
            } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "account_needs_login",
                message.clone(),
            ),
            Self::Auth { message, .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "token_refresh_failed",
                message.clone(),
            ),
            Self::Upstream(failure) => upstream(failure),
        }
    }
}

fn upstream(failure: &UpstreamFailure) -> ApiError {
    match failure {
        UpstreamFailure::UsageLimit { resets_at, plan } => usage_limit(*resets_at, plan.as_deref()),
        UpstreamFailure::NotIncluded { message } => ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "usage_not_included",
            message.clone().unwrap_or_else(|| {
                "This ChatGPT plan does not include Codex; it needs Plus, Pro, Business, \
                 Enterprise or Edu."
                    .into()
            }),
        ),
        UpstreamFailure::RateLimited {
            message,
            retry_after,
        } => {
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                message.clone(),
            );
            match retry_after {
                Some(seconds) => error.retry_after(*seconds),
                None => error,
            }
        }
        UpstreamFailure::Invalid {
            message,
            code,
            param,
        } => {
            let mut error = ApiError::invalid(message.clone(), param.as_deref());
            error.code = *code;
            error
        }
        UpstreamFailure::InsufficientQuota { message } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "insufficient_quota",
            message.clone(),
        ),
        UpstreamFailure::Unauthorized => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unauthorized",
            "The ChatGPT account's sign-in was rejected by the Codex backend (expired or revoked). \
             Sign in again with `codexctl login`.",
        ),
        UpstreamFailure::Blocked => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_blocked",
            "Access blocked by Cloudflare: this usually happens when connecting from a restricted \
             region or network (upstream 403).",
        ),
        UpstreamFailure::Forbidden { message } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_forbidden",
            format!("The Codex backend refused the account (403): {message}"),
        ),
        UpstreamFailure::Overloaded { message } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "server_overloaded",
            message
                .clone()
                .unwrap_or_else(|| "The selected model is at capacity; try again shortly.".into()),
        )
        .retry_after(5),
        UpstreamFailure::GatewayTimeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            "The Codex backend timed out (504).",
        ),
        UpstreamFailure::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            "The Codex backend did not answer in time.",
        ),
        UpstreamFailure::Unreachable { message, .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unreachable",
            format!("Cannot reach the Codex backend: {message}"),
        ),
        UpstreamFailure::Other { message, .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_error",
            message.clone(),
        ),
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        error.to_api_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::errors::from_status;
    use axum::http::HeaderMap;

    fn render(status: StatusCode, body: &str) -> ApiError {
        EngineError::from(from_status(status, &HeaderMap::new(), body)).to_api_error()
    }

    #[test]
    fn usage_limit_says_when_and_sets_retry_after() {
        let at = unix_now() + 3600;
        let body = format!(
            r#"{{"error":{{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_at":{at},"resets_in_seconds":3600}}}}"#
        );
        let e = render(StatusCode::TOO_MANY_REQUESTS, &body);
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
    fn statuses_render_as_clear_errors() {
        let e = render(
            StatusCode::BAD_REQUEST,
            r#"{"detail":"Instructions are required"}"#,
        );
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (400, "Instructions are required")
        );
        let e = render(
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"too long","type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(
            (e.code, e.param.as_deref()),
            (Some("context_length_exceeded"), Some("input"))
        );
        let e = render(StatusCode::UNAUTHORIZED, r#"{"detail":"Unauthorized"}"#);
        assert_eq!(
            (e.status.as_u16(), e.code),
            (502, Some("upstream_unauthorized"))
        );
        assert!(e.message.contains("codexctl login"));
        let e = render(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":{"code":"server_is_overloaded","message":"busy"}}"#,
        );
        assert_eq!((e.status.as_u16(), e.retry_after), (503, Some(5)));
        let e = render(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":{"message":"boom"}}"#,
        );
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (502, "The Codex backend failed (500): boom")
        );
        assert_eq!(render(StatusCode::GATEWAY_TIMEOUT, "").status.as_u16(), 504);
        let e = render(
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"error":{"type":"usage_not_included","message":"x"}}"#,
        );
        assert_eq!(e.status.as_u16(), 403);
    }
}
