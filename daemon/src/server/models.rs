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

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let config = state.config();
    let config = &config.model;
    models::resolve(
        Some(&id),
        &state.catalog(),
        &config.aliases,
        &config.default,
    )?;
    Ok(Json(object(id)))
}
