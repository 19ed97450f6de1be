//! The Ollama API: `POST /api/chat` and `/api/generate` (NDJSON streams or one object),
//! `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `GET /api/version`, and Ollama's error
//! shape (`{"error": "…"}`) for all of them.
//!
//! A request is parsed, made a Chat Completions request (`translate::ollama`), translated and
//! run by the engine like every other surface; its events are rendered as Ollama's
//! (`translate::ollama::render`).
//!
//! Ollama's clients send no API key. A request without one is answered when it comes from this
//! machine (`[ollama] require_key = false`, the default); a key, when sent, is checked as
//! everywhere else.

use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{self, ClientKey};
use super::body::JsonBody;
use super::history;
use super::listen::Peer;
use super::rendered::{self, Continued, Continuing, Reader, Ready, Rendered};
use super::{ApiError, AppState};
use crate::models;
use crate::requests::Observed;
use crate::translate::ollama::render::{self, Mode, Surface, Writer};
use crate::translate::ollama::{self as wire, OllamaChat, OllamaGenerate, Thinking};
use crate::upstream::wire::{Failure, Usage};

/// The Ollama API version codex-proxy answers with: the API level it speaks (`think`, tools,
/// structured output), which clients read to decide what to offer.
pub const OLLAMA_VERSION: &str = "0.13.0";

/// A fixed time for every model (the backend publishes none).
const MODIFIED_AT: &str = "2026-01-01T00:00:00Z";

/// `GET /` and `HEAD /` on the Ollama listener: the probe Ollama's clients make.
pub async fn running() -> &'static str {
    "Ollama is running"
}

/// Who may use the Ollama routes: a client with a valid key; without a key, one on this machine
/// unless `[ollama] require_key` is set. Also answers 404 while `[ollama] enabled = false`.
pub async fn ollama_access(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let config = state.config();
    if !config.ollama.enabled {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            "The Ollama API is turned off ([ollama] enabled = false).",
        )
        .into_response();
    }
    let client = match auth::identify(&state, request.headers(), None) {
        Ok(Some(client)) => client,
        Ok(None) => {
            let peer = request.extensions().get::<Peer>().copied();
            let origin = request
                .headers()
                .get(axum::http::header::ORIGIN)
                .map(|v| v.to_str().unwrap_or("(not text)"));
            if let Some(origin) = origin
                && !page_may_ask(origin, &config.server.cors_origins)
            {
                // A web page in the user's browser is on this machine too: without the key,
                // only the pages the user named may spend their quota.
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_request_error",
                    "origin_not_allowed",
                    format!(
                        "A web page from {} may not use the Ollama API without the API key. \
                         Add its origin to [server] cors_origins, or send the key.",
                        crate::api_error::quoted(origin)
                    ),
                )
                .into_response();
            }
            if let Err(why) = keyless(config.ollama.require_key, peer) {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    "invalid_api_key",
                    format!(
                        "Missing API key ({why}). Ollama's clients send $OLLAMA_API_KEY as \
                         `Authorization: Bearer KEY`; `codexctl key show` prints the key."
                    ),
                )
                .into_response();
            }
            ClientKey::KEYLESS
        }
        Err(refused) => return refused.into_response(),
    };
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// Whether a request without a key is answered: from this machine, unless keys are required.
/// A request whose peer is unknown is not from this machine.
fn keyless(require_key: bool, peer: Option<Peer>) -> Result<(), &'static str> {
    if require_key {
        return Err("[ollama] require_key is set");
    }
    if peer.is_some_and(Peer::is_loopback) {
        Ok(())
    } else {
        Err("without a key only clients on this machine are answered")
    }
}

/// Whether a page of this origin may use the Ollama API without a key: pages served from this
/// machine, the desktop apps' own schemes (no web page can claim those), and the origins in
/// `[server] cors_origins`. Not `null` (a sandboxed frame of any page sends that).
fn page_may_ask(origin: &str, allowed: &[crate::config::CorsOrigin]) -> bool {
    if allowed
        .iter()
        .any(|a| a.as_str() == "*" || a.as_str() == origin)
    {
        return true;
    }
    if ["app://", "tauri://", "vscode-webview://", "file://"]
        .iter()
        .any(|scheme| origin.starts_with(scheme))
    {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.split(':').next().unwrap_or_default(),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_pages_and_named_origins_go_without_a_key() {
        let none: Vec<crate::config::CorsOrigin> = Vec::new();
        for local in [
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "https://app.localhost",
            "http://[::1]:5173",
            "app://obsidian.md",
            "tauri://localhost",
        ] {
            assert!(page_may_ask(local, &none), "{local}");
        }
        for foreign in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "null",
            "chrome-extension://abcdef",
        ] {
            assert!(!page_may_ask(foreign, &none), "{foreign}");
        }
        let named: Vec<crate::config::CorsOrigin> =
            serde_json::from_value(serde_json::json!(["https://chat.example"])).unwrap();
        assert!(page_may_ask("https://chat.example", &named));
        assert!(!page_may_ask("https://other.example", &named));
    }

    #[test]
    fn only_this_machine_goes_without_a_key() {
        let peer = |addr: &str| Some(Peer(addr.parse().unwrap()));
        assert!(keyless(false, peer("127.0.0.1:5000")).is_ok());
        assert!(keyless(false, peer("[::1]:5000")).is_ok());
        assert!(keyless(false, peer("[::ffff:127.0.0.1]:5000")).is_ok());
        assert!(keyless(false, peer("192.168.1.20:5000")).is_err());
        assert!(keyless(false, peer("[::ffff:10.0.0.1]:5000")).is_err());
        assert!(keyless(false, None).is_err());
        assert!(keyless(true, peer("127.0.0.1:5000")).is_err());
    }
}

/// The last layer of the Ollama routes: every error, whoever made it, as Ollama's
/// `{"error": "…"}` with its status.
pub async fn ollama_errors(response: Response) -> Response {
    super::errors::reshape(response, |_, message, _| {
        render::error_body(message).to_string()
    })
    .await
}

/// `GET /api/version`.
pub async fn version() -> axum::Json<Value> {
    axum::Json(json!({ "version": OLLAMA_VERSION }))
}

fn details() -> Value {
    json!({
        "parent_model": "",
        "format": "codex",
        "family": "gpt",
        "families": ["gpt"],
        "parameter_size": "",
        "quantization_level": "",
    })
}

/// A stable digest per name, in the shape Ollama gives (64 hex digits).
fn digest(name: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(name.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /api/tags`: every model and alias `/v1/models` lists, with Ollama's `:latest` tag.
pub async fn tags(State(state): State<AppState>) -> axum::Json<Value> {
    let ids = models::listed_ids(&state.catalog(), &state.config().model.aliases);
    let models: Vec<Value> = ids
        .iter()
        .map(|id| {
            let name = wire::tagged(id);
            json!({
                "name": name,
                "model": name,
                "modified_at": MODIFIED_AT,
                "size": 0,
                "digest": digest(id),
                "details": details(),
            })
        })
        .collect();
    axum::Json(json!({ "models": models }))
}

/// `GET /api/ps`: the models that answer now — every listed one (nothing is loaded or
/// unloaded; there is no memory to report).
pub async fn ps(State(state): State<AppState>) -> axum::Json<Value> {
    let catalog = state.catalog();
    let config = state.config();
    let ids = models::listed_ids(&catalog, &config.model.aliases);
    let models: Vec<Value> = ids
        .iter()
        .map(|id| {
            let name = wire::tagged(id);
            let window = models::resolve(
                Some(id),
                &catalog,
                &config.model.aliases,
                &config.model.default,
            )
            .map_or(0, |r| r.model.context_window);
            json!({
                "name": name,
                "model": name,
                "size": 0,
                "digest": digest(id),
                "details": details(),
                "size_vram": 0,
                "context_length": window,
            })
        })
        .collect();
    axum::Json(json!({ "models": models }))
}

#[derive(Debug, serde::Deserialize)]
struct ShowRequest {
    #[serde(default)]
    model: Option<String>,
    /// The old name of `model`.
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/show`: what a model can do (`capabilities`) and its context window
/// (`model_info`), which clients read to offer tools, thinking and images.
pub async fn show(State(state): State<AppState>, body: JsonBody) -> Result<Response, ApiError> {
    let req: ShowRequest = super::body::parse_json(&body.bytes)?;
    let requested = req
        .model
        .or(req.name)
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("model: Field required", Some("model")))?;
    let resolved = resolve(&state, &requested)?;
    let model = &resolved.model;
    let mut capabilities = vec!["completion", "tools", "vision"];
    if !model.efforts.is_empty() {
        capabilities.push("thinking");
    }
    let efforts = model.efforts.join(", ");
    Ok(axum::Json(json!({
        "license": "",
        "modelfile": format!("# {} ({}) on the Codex backend, through codex-proxy\n", model.display_name, model.slug),
        "parameters": format!("num_ctx {}", model.context_window),
        "template": "",
        "details": details(),
        "model_info": {
            "general.architecture": "gpt",
            "general.basename": model.slug,
            "general.name": model.display_name,
            "gpt.context_length": model.context_window,
            "codex.reasoning_efforts": efforts,
            "codex.default_reasoning_effort": model.default_effort,
        },
        "capabilities": capabilities,
        "modified_at": MODIFIED_AT,
    }))
    .into_response())
}

/// The catalog model an Ollama name stands for (its `:latest` tag taken off).
fn resolve(state: &AppState, name: &str) -> Result<models::Resolved, ApiError> {
    let config = state.config();
    let catalog = state.catalog();
    let untagged = wire::untagged(name);
    models::resolve(
        Some(untagged),
        &catalog,
        &config.model.aliases,
        &config.model.default,
    )
    .map_err(|mut error| {
        if error.status == StatusCode::NOT_FOUND {
            error.message = format!(
                "model '{}' not found (GET /api/tags lists the models)",
                crate::api_error::quoted(name)
            );
        }
        error
    })
}

/// `/api/embed`, `/api/pull` and the other model-management endpoints: a clear answer instead
/// of a bare 404.
pub async fn unsupported(uri: axum::http::Uri) -> ApiError {
    let path = uri.path();
    let why = match path {
        "/api/embed" | "/api/embeddings" => {
            "codex-proxy serves the Codex models, which make no embeddings"
        }
        "/api/pull" | "/api/push" | "/api/create" | "/api/copy" | "/api/delete" => {
            "the models live on the Codex backend: there is nothing to pull, push, create, copy \
             or delete (GET /api/tags lists them)"
        }
        _ => "codex-proxy does not serve this part of the Ollama API",
    };
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "invalid_request_error",
        "not_implemented",
        format!("{path}: {why}"),
    )
}

/// A request made ready for the backend.
struct Prepared {
    /// The name the client asked for, echoed in every line.
    requested: String,
    ready: Ready,
    stream: bool,
    thinking: Thinking,
}

enum Parsed {
    Chat(OllamaChat),
    Generate(OllamaGenerate),
}

impl Parsed {
    fn model(&self) -> &str {
        match self {
            Parsed::Chat(c) => &c.model,
            Parsed::Generate(g) => &g.model,
        }
    }

    /// Ollama's way to load (or, with `keep_alive: 0`, unload) a model: a chat without
    /// messages, a generate without prompt or images. Answered at once: nothing is loaded here.
    fn load_only(&self) -> Option<&'static str> {
        let (empty, keep_alive) = match self {
            Parsed::Chat(c) => (c.messages.is_empty(), c.keep_alive.as_ref()),
            Parsed::Generate(g) => (
                g.prompt.as_deref().is_none_or(|p| p.trim().is_empty())
                    && g.images.as_ref().is_none_or(Vec::is_empty),
                g.keep_alive.as_ref(),
            ),
        };
        if !empty {
            return None;
        }
        let unload = match keep_alive {
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(Value::String(s)) => {
                let digits = s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic());
                digits.parse::<f64>().is_ok_and(|n| n == 0.0)
            }
            _ => false,
        };
        Some(if unload { "unload" } else { "load" })
    }
}

/// What a request comes to: a turn to run, or a model load answered at once.
enum Outcome {
    Turn(Prepared),
    Loaded {
        requested: String,
        reason: &'static str,
    },
}

/// The answer to a load or unload: done at once, in the endpoint's shape.
fn loaded(surface: Surface, requested: &str, reason: &str) -> Response {
    let created_at = crate::clock::rfc3339_ms(crate::clock::unix_now_ms());
    let body = match surface {
        Surface::Chat => json!({"model": requested, "created_at": created_at,
            "message": {"role": "assistant", "content": ""}, "done_reason": reason, "done": true}),
        Surface::Generate => json!({"model": requested, "created_at": created_at,
            "response": "", "done_reason": reason, "done": true}),
    };
    axum::Json(body).into_response()
}

/// Parse, resolve, translate and encode: CPU work in proportion to the body — or, for a large
/// chat continuing its conversation's last, to the messages it adds.
fn prepare(
    state: &AppState,
    client: ClientKey,
    surface: Surface,
    body: &[u8],
) -> Result<Outcome, ApiError> {
    if surface == Surface::Chat
        && body.len() >= history::KEEP_FROM
        && let Some(prepared) = prepare_outlined(state, client, body)?
    {
        return Ok(Outcome::Turn(prepared));
    }
    let parsed = match surface {
        Surface::Chat => Parsed::Chat(super::body::parse_json(body)?),
        Surface::Generate => Parsed::Generate(super::body::parse_json(body)?),
    };
    let requested = parsed.model().trim().to_owned();
    if requested.is_empty() {
        return Err(ApiError::invalid("model is required", Some("model")));
    }
    let resolved = resolve(state, &requested)?;
    if let Some(reason) = parsed.load_only() {
        return Ok(Outcome::Loaded { requested, reason });
    }
    let translated = match parsed {
        Parsed::Chat(req) => wire::chat(req, &resolved.model.efforts)?,
        Parsed::Generate(req) => wire::generate(req, &resolved.model.efforts)?,
    };
    turn(state, client, &resolved, requested, translated, None).map(Outcome::Turn)
}

/// A request made a Chat Completions one, made ready: translated, encoded, and — when it is a
/// large chat read in outline — kept for its conversation's next turn.
fn turn(
    state: &AppState,
    client: ClientKey,
    resolved: &models::Resolved,
    requested: String,
    translated: wire::Translated,
    continuing: Option<Continuing<wire::History>>,
) -> Result<Prepared, ApiError> {
    let wire::Translated {
        chat,
        stream,
        thinking,
        ignored,
        made_up_ids,
    } = translated;
    let ready = rendered::prepare(
        state,
        client,
        resolved,
        chat,
        &made_up_ids,
        ignored,
        |_, _, _| {},
        continuing,
    )?;
    Ok(Prepared {
        requested,
        ready,
        stream,
        thinking,
    })
}

/// A large `/api/chat` request, read in outline: when it continues the one kept for its
/// conversation (the same members, its messages beginning with the kept ones), only the
/// messages after the kept ones are read and translated, and the kept body's items are copied;
/// either way its translation is kept for the next turn. `None` leaves the request to the
/// whole reading (a body that does not read in outline or in parts, a model load, a
/// Responses-Lite model): it then says what is wrong, if anything.
fn prepare_outlined(
    state: &AppState,
    client: ClientKey,
    body: &[u8],
) -> Result<Option<Prepared>, ApiError> {
    const SURFACE: &str = "ollama";
    let Some(outline) = history::outline(body, "messages", &history::AsWritten) else {
        return Ok(None);
    };
    let key = outline.key(client.0, SURFACE, "");
    let Some(history::Resumed {
        request: req,
        translator: mut continued,
        kept,
        keeping,
    }) = outline.resume::<OllamaChat, wire::Message, Continued<wire::History>>(
        state,
        key,
        SURFACE,
        |req, tail| req.messages = tail,
    )
    else {
        return Ok(None);
    };
    let requested = req.model.trim().to_owned();
    if requested.is_empty() || req.messages.is_empty() {
        return Ok(None);
    }
    let resolved = resolve(state, &requested)?;
    if resolved.model.lite {
        return Ok(None);
    }
    let translated = wire::chat_after(req, &resolved.model.efforts, &mut continued.surface)?;
    let continuing = Some((continued, kept, keeping));
    turn(state, client, &resolved, requested, translated, continuing).map(Some)
}

/// `POST /api/chat`.
pub async fn chat(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    observed: Option<Extension<Observed>>,
    body: JsonBody,
) -> Response {
    answer(&state, client, Surface::Chat, observed, body).await
}

/// `POST /api/generate`.
pub async fn generate(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    observed: Option<Extension<Observed>>,
    body: JsonBody,
) -> Response {
    answer(&state, client, Surface::Generate, observed, body).await
}

async fn answer(
    state: &AppState,
    client: ClientKey,
    surface: Surface,
    observed: Option<Extension<Observed>>,
    body: JsonBody,
) -> Response {
    let observed = observed.map(|Extension(o)| o);
    match handle(state, client, surface, observed.as_ref(), body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    client: ClientKey,
    surface: Surface,
    observed: Option<&Observed>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let in_flight = state.track_request();
    let (outcome, reservation) = rendered::prepared(state, body, move |state, bytes| {
        prepare(state, client, surface, bytes)
    })
    .await?;
    let prepared = match outcome {
        Outcome::Turn(prepared) => prepared,
        Outcome::Loaded { requested, reason } => return Ok(loaded(surface, &requested, reason)),
    };
    let turn = rendered::start(state, &prepared.ready, in_flight, observed).await?;
    let Prepared {
        requested,
        ready,
        stream,
        thinking,
    } = prepared;
    let Ready {
        conversation,
        wire,
        stop,
        ignored,
        estimate,
        ..
    } = ready;
    // Sent: the request's memory goes back.
    drop(wire);
    drop(reservation);
    let Some(events) = turn.streams.into_iter().next() else {
        return Err(ApiError::internal("the engine started no response"));
    };
    let mode = if stream { Mode::Stream } else { Mode::Whole };
    let keepalive = Duration::from_secs(state.config().server.keepalive_seconds);
    let writer = Writer::new(surface, mode, requested, thinking, &stop, estimate);
    let remember = (surface == Surface::Chat).then(|| (state.clone(), conversation));
    let reader = Reader::new(events, writer, remember);
    let mut response = if stream {
        rendered::stream(reader, keepalive, turn.guard, "application/x-ndjson").await?
    } else {
        rendered::complete(reader, turn.guard).await?
    };
    if !ignored.is_empty()
        && let Ok(value) = HeaderValue::from_str(&ignored.join(", "))
    {
        response
            .headers_mut()
            .insert("x-codex-proxy-ignored-params", value);
    }
    Ok(response)
}

impl Rendered for Writer {
    fn stopped(&self) -> bool {
        Writer::stopped(self)
    }
    fn is_done(&self) -> bool {
        Writer::is_done(self)
    }
    fn failure(&self) -> Option<&Failure> {
        Writer::failure(self)
    }
    fn usage(&self) -> Option<&Usage> {
        Writer::usage(self)
    }
    fn finish_stopped(&mut self) {
        Writer::finish_stopped(self);
    }
    fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.calls()
    }
    fn take_piece(&mut self) -> Option<Bytes> {
        self.lines().pop_front()
    }
    fn has_piece(&self) -> bool {
        self.has_lines()
    }
    /// An `{"error": …}` line: Ollama's clients raise it.
    fn error_piece(&mut self, error: &ApiError) -> Bytes {
        let mut line = render::error_body(&error.message).to_string();
        line.push('\n');
        Bytes::from(line)
    }
    fn end_piece(&mut self) -> Option<Bytes> {
        None
    }
    fn whole(&self) -> Value {
        Writer::whole(self)
    }
}
