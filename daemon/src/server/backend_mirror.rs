//! The Codex backend's own paths, mirrored (codex-protocol.md §5), so that a client written for
//! the backend — the Codex CLI with `base_url = "…/backend-api/codex"` — can point straight at
//! codex-proxy: `/backend-api/codex/responses` (HTTP and WebSocket, the same handlers as
//! `/v1/responses`), `/backend-api/codex/responses/compact`, `/backend-api/codex/models` (the
//! catalog in the backend's shape, with its ETag) and `/backend-api/wham/usage` (the quota of
//! the whole pool). The API key is the bearer token here as everywhere.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::ClientKey;
use super::body::{JsonBody, MAX_BODY_BYTES};
use super::responses::{prepare_parsed, start_turn};
use super::{ApiError, AppState};
use crate::clock::unix_now;
use crate::engine::{self, Call};
use crate::translate::responses as rewrite;

/// `POST …/responses/compact` (§5.3): the conversation compacted by the backend, one JSON
/// answer, on the engine like every turn.
pub async fn compact(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    observed: Option<Extension<crate::requests::Observed>>,
    body: JsonBody,
) -> Response {
    match run_compact(&state, client, observed.map(|Extension(o)| o), body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn run_compact(
    state: &AppState,
    client: ClientKey,
    observed: Option<crate::requests::Observed>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let in_flight = state.track_request();
    let JsonBody { bytes, reservation } = body;
    let object = rewrite::parse(&bytes)?;
    drop(bytes);
    let head = rewrite::head(&object)?;
    let mut prepared = prepare_parsed(state, client, object, &head, None, true)?;
    prepared.observed = observed;
    let turn = start_turn(
        state,
        &mut prepared,
        Call::Compact,
        std::time::Duration::ZERO,
        in_flight,
    )
    .await?;
    drop(reservation);
    let mut turn = turn;
    let Some(mut answer) = turn.streams.pop() else {
        return Err(ApiError::internal("the engine started no compaction"));
    };
    let body = answer
        .read_json(MAX_BODY_BYTES)
        .await
        .map_err(|e| engine::EngineError::from(e.failure()).to_api_error())?;
    drop(turn.guard);
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Bytes::from(body),
    )
        .into_response();
    if !prepared.ignored.is_empty()
        && let Ok(value) = HeaderValue::from_str(&prepared.ignored.join(", "))
    {
        response
            .headers_mut()
            .insert("x-codex-proxy-ignored-params", value);
    }
    Ok(response)
}

/// `GET /backend-api/codex/models` (and `/v1/models?client_version=…`, which is how the Codex
/// CLI asks): the catalog as the backend gives it, with its ETag; 304 when unchanged.
pub async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let catalog = state.catalog();
    let etag = catalog
        .etag
        .clone()
        .unwrap_or_else(|| format!("\"codex-proxy-{}\"", catalog.models.len()));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| given == etag)
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        catalog.backend_json(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `/v1/models`: OpenAI's list, the backend's shape when the Codex CLI asks
/// (`?client_version=…`), Anthropic's when an Anthropic client asks (`anthropic-version`).
pub async fn v1_models(
    state: State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if query.contains_key("client_version") {
        return models(state, headers).await;
    }
    if headers.contains_key("anthropic-version") {
        return super::models::anthropic_list(state).await.into_response();
    }
    if super::gemini::asks_as_gemini(&headers) {
        return super::gemini::list(state).await.into_response();
    }
    super::models::list(state).await.into_response()
}

/// `GET /backend-api/wham/usage` (§5.2): the quota of the whole pool, as one account's.
pub async fn usage(State(state): State<AppState>) -> Response {
    let now = unix_now();
    let (pool, plan) = state.accounts().pooled_quota(now);
    axum::Json(pool.usage_json(plan.as_deref().unwrap_or("plus"), now)).into_response()
}
