//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::models;

/// A fixed creation time: the backend publishes none.
const CREATED: i64 = 1_767_225_600; // 2026-01-01

#[derive(Debug, Serialize)]
pub struct ModelObject {
    id: String,
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelObject>,
}

fn object(id: String) -> ModelObject {
    ModelObject {
        id,
        object: "model",
        created: CREATED,
        owned_by: "openai",
    }
}

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let ids = models::listed_ids(&state.catalog(), &state.config().model.aliases);
    Json(ModelList {
        object: "list",
        data: ids.into_iter().map(object).collect(),
    })
}

/// Anthropic's model list: every id `/v1/models` lists, with the catalog's display names.
pub async fn anthropic_list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let catalog = state.catalog();
    let config = state.config();
    let ids = models::listed_ids(&catalog, &config.model.aliases);
    let data: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let resolved = models::resolve(Some(id), &catalog, &config.model.aliases, id).ok();
            let display = resolved.as_ref().map_or_else(
                || id.clone(),
                |r| match &r.suffix_effort {
                    Some(effort) => format!("{} ({effort})", r.model.display_name),
                    None => r.model.display_name.clone(),
                },
            );
            let mut model = serde_json::json!({
                "type": "model",
                "id": id,
                "display_name": display,
                "created_at": "2026-01-01T00:00:00Z",
            });
            // The window, as Anthropic's model list gives it (Claude Code reads it for models
            // it does not know).
            if let Some(r) = resolved.filter(|r| r.model.context_window > 0) {
                model["max_input_tokens"] = r.model.context_window.into();
            }
            model
        })
        .collect();
    Json(serde_json::json!({
        "data": data,
        "has_more": false,
        "first_id": ids.first(),
        "last_id": ids.last(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if super::gemini::asks_as_gemini(&headers) {
        return Ok(super::gemini::get(State(state), Path(id))
            .await?
            .into_response());
    }
    let config = state.config();
    let config = &config.model;
    let catalog = state.catalog();
    let resolved = match models::resolve(Some(&id), &catalog, &config.aliases, &config.default) {
        Ok(resolved) => resolved,
        // Anthropic clients may ask for a Claude name: it is what [model.claude] maps it to.
        Err(error) => match config.claude.target(&id) {
            Some(target) if headers.contains_key("anthropic-version") => {
                models::resolve(Some(target), &catalog, &config.aliases, &config.default)?
            }
            _ => return Err(error),
        },
    };
    if headers.contains_key("anthropic-version") {
        return Ok(Json(serde_json::json!({
            "type": "model",
            "id": id,
            "display_name": resolved.model.display_name,
            "created_at": "2026-01-01T00:00:00Z",
            "max_input_tokens": resolved.model.context_window,
        }))
        .into_response());
    }
    Ok(Json(object(id)).into_response())
}
