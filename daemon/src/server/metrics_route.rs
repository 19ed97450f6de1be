//! `GET /metrics`: the Prometheus metrics, for a scraper holding an API key or the
//! `[metrics] token`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::constant_time_eq;
use super::{ApiError, AppState};

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let config = state.config();
    if !config.metrics.enabled {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            "Metrics are off ([metrics] enabled = false).",
        )
        .into_response();
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .unwrap_or_default();
    // Every candidate is compared in full, whichever matches.
    let mut allowed = false;
    if let Some(token) = &config.metrics.token {
        allowed |= constant_time_eq(given.as_bytes(), token.expose().as_bytes());
    }
    for key in state.api_keys().iter() {
        allowed |= constant_time_eq(given.as_bytes(), key.expose().as_bytes());
    }
    if given.is_empty() || !allowed {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Metrics need `Authorization: Bearer KEY`: an API key, or the [metrics] token.",
        )
        .into_response();
    }
    let text = crate::metrics::metrics().render(&state);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
