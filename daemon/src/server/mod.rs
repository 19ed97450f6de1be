//! The HTTP surface. Routes are added here as the gateway grows.

mod errors;
mod health;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::get;

pub use errors::ApiError;

use crate::config::Loaded;

/// Shared, read-mostly state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
}

impl AppState {
    pub fn new(_loaded: &Loaded) -> Self {
        Self {
            inner: Arc::new(Inner {
                started: Instant::now(),
            }),
        }
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .with_state(state)
}
