//! The HTTP surface: routes, shared state, API-key checks.

mod accounts_route;
mod auth;
mod backend_mirror;
pub mod body;
mod chat;
pub mod dashboard;
mod errors;
mod fingerprint;
mod gemini;
mod health;
mod history;
mod host;
mod images;
pub mod listen;
mod messages;
mod metrics_route;
mod models;
mod observe;
mod ollama;
mod rendered;
mod responses;
mod responses_ws;
mod sse;
mod tool_calls;

use axum::Router;
use axum::routing::{any, get, post};

pub use crate::api_error::ApiError;
pub use crate::app::AppState;

/// Which listener a router serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// `[server]`: every API, the dashboard.
    Main,
    /// `[ollama] listen`: the Ollama API and the OpenAI routes (as Ollama serves both on its
    /// port), `GET /` answering Ollama's probe; no dashboard.
    Ollama,
}

/// The main listener's routes.
pub fn router(state: AppState) -> Router {
    build(state, Listener::Main)
}

/// The routes of the Ollama listener (`[ollama] listen`).
pub fn ollama_router(state: AppState) -> Router {
    build(state, Listener::Ollama)
}

fn build(state: AppState, listener: Listener) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/images/generations", post(images::generations))
        .route("/v1/images/edits", post(images::edits))
        .route(
            "/v1/responses",
            post(responses::create).get(responses_ws::upgrade),
        )
        .route(
            "/v1/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(responses::input_items),
        )
        .route("/v1/responses/compact", post(backend_mirror::compact))
        .route(
            "/backend-api/codex/responses",
            post(responses::create).get(responses_ws::upgrade),
        )
        .route(
            "/backend-api/codex/responses/compact",
            post(backend_mirror::compact),
        )
        .route("/backend-api/codex/models", get(backend_mirror::models))
        .route("/backend-api/wham/usage", get(backend_mirror::usage))
        .route("/v1/models", get(backend_mirror::v1_models))
        .route("/v1/models/{id}", get(models::get))
        .route("/debug/fingerprint", get(fingerprint::fingerprint))
        .route("/auth/accounts", get(accounts_route::list))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));
    // Anthropic's surface: the same auth, and every error in Anthropic's shape.
    let anthropic = Router::new()
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .layer(axum::middleware::map_response(messages::anthropic_errors));
    // Ollama's surface: its own access rule (no key from this machine) and error shape.
    let ollama = Router::new()
        .route("/api/version", get(ollama::version))
        .route("/api/tags", get(ollama::tags))
        .route("/api/ps", get(ollama::ps))
        .route("/api/show", post(ollama::show))
        .route("/api/chat", post(ollama::chat))
        .route("/api/generate", post(ollama::generate))
        .route("/api/{*rest}", any(ollama::unsupported))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ollama::ollama_access,
        ))
        .layer(axum::middleware::map_response(ollama::ollama_errors));
    // Gemini's surface: its key may come as `?key=`, and every error in Google's shape. Under
    // `/v1` too (Google's Python SDK's default), where `POST /v1/models/{model}:{method}` sits
    // beside OpenAI's `GET /v1/models/{id}`.
    let gemini = Router::new()
        .route("/v1beta/models", get(gemini::list))
        .route("/v1beta/models/{id}", get(gemini::get).post(gemini::action))
        .route("/v1/models/{id}", post(gemini::action))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gemini::gemini_access,
        ))
        .layer(axum::middleware::map_response(gemini::gemini_errors));
    let cors = cors_layer(&state.config().server.cors_origins);
    let mut app = Router::new()
        .route("/health", get(health::health))
        // Its own key check: an API key, or the scraper's [metrics] token.
        .route("/metrics", get(metrics_route::metrics))
        // Claude Code's connectivity probe (HEAD), before any key is involved.
        .route("/api/hello", get(messages::hello))
        .merge(api)
        .merge(anthropic)
        .merge(ollama)
        .merge(gemini);
    if listener == Listener::Ollama {
        app = app.route("/", get(ollama::running));
    }
    let app = app
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(axum::middleware::map_response(errors::json_errors));
    // The dashboard's pages answer in HTML, errors too, so it comes after the JSON layer.
    let app = match listener {
        Listener::Main => app.merge(dashboard::router(&state)),
        Listener::Ollama => app,
    };
    let app = app
        // Every request recorded (the request log), with the body the client finally got.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ));
    // Browsers' preflights (which carry no API key) are answered before auth; the Host check
    // comes first of all, so a rebinding page gets nothing, not even a preflight.
    let app = match cors {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        host::check_host,
    ))
    .with_state(state)
}

/// CORS for the browser origins in `server.cors_origins`; none configured means no CORS headers.
fn cors_layer(origins: &[crate::config::CorsOrigin]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o.as_str() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.as_str()).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("anthropic-version"),
                HeaderName::from_static("anthropic-beta"),
                HeaderName::from_static("x-goog-api-key"),
            ])
            .expose_headers([
                HeaderName::from_static("x-codex-proxy-ignored-params"),
                HeaderName::from_static("x-codex-proxy-ignored-betas"),
                header::RETRY_AFTER,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
