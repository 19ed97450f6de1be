//! `GET /health`: liveness and readiness, never secrets. Always 200 while the daemon runs (a
//! probe that restarted it for a failing disk would lose the tokens held in memory); `status`
//! says `degraded` and `problems` says why when the state cannot be saved.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use crate::clock::{unix_now, utc_clock};

#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_seconds: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let saving = state.accounts().save_health();
    let mut problems = Vec::new();
    if let Some(failure) = &saving.failure {
        problems.push(format!(
            "cannot save the state since {} ({} attempts): {}",
            utc_clock(failure.since, unix_now()),
            failure.attempts,
            failure.error
        ));
    }
    if !saving.unsaved_tokens.is_empty() {
        problems.push(format!(
            "the new tokens of {} account(s) are only in memory; stopping now would lose those sign-ins",
            saving.unsaved_tokens.len()
        ));
    }
    Json(Health {
        status: if problems.is_empty() {
            "ok"
        } else {
            "degraded"
        },
        version: crate::VERSION,
        uptime_seconds: state.uptime().as_secs(),
        problems,
    })
}
