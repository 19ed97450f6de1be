//! The Gemini API: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`
//! (SSE with `alt=sse`, else a streamed JSON array) and `:countTokens`, `GET /v1beta/models`
//! and `GET /v1beta/models/{model}` — and the same under `/v1`, where Google's Python SDK goes
//! by default. The key comes as `x-goog-api-key`, `?key=` or a bearer token; errors are
//! Google's `{"error": {"code", "message", "status"}}`.
//!
//! A request is parsed, made a Chat Completions request (`translate::gemini`), translated and
//! run by the engine like every other surface; its events are rendered as Gemini's
//! (`translate::gemini::render`).

use std::collections::HashMap;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{self, ClientKey};
use super::body::JsonBody;
use super::history;
use super::rendered::{self, Continued, Continuing, Reader, Ready, Rendered};
use super::{ApiError, AppState};
use crate::models;
use crate::requests::Observed;
use crate::translate::gemini::render::{self, Mode, Writer};
use crate::translate::gemini::{self as wire, CountTokensRequest, GenerateContentRequest};
use crate::upstream::wire::{Failure, ResponsesRequest, Tool, Usage};

/// The methods every model supports.
const METHODS: [&str; 3] = ["generateContent", "streamGenerateContent", "countTokens"];

/// The key of a Gemini request: `x-goog-api-key` (or a bearer token), or `?key=` in the query as
/// Google's REST examples send it.
pub async fn gemini_access(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let query_key = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .ok()
        .and_then(|Query(mut q)| q.remove("key"));
    match auth::identify(&state, request.headers(), query_key.as_deref()) {
        Ok(Some(client)) => {
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Ok(None) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Missing API key: send it as `x-goog-api-key: KEY` (Google's SDKs do, given \
             api_key=KEY) or `?key=KEY`; `codexctl key show` prints it.",
        )
        .into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// The last layer of the Gemini routes: every error, whoever made it, in Google's shape.
pub async fn gemini_errors(response: Response) -> Response {
    super::errors::reshape(response, |status, message, _| {
        render::error_body(status.as_u16(), message).to_string()
    })
    .await
}

/// One model as Gemini lists it.
fn model_json(id: &str, resolved: Option<&models::Resolved>) -> Value {
    let mut model = json!({
        "name": format!("models/{id}"),
        "baseModelId": id,
        "version": "codex",
        "displayName": id,
        "description": "A Codex model through codex-proxy",
        "supportedGenerationMethods": METHODS,
    });
    if let Some(resolved) = resolved {
        model["displayName"] = match &resolved.suffix_effort {
            Some(effort) => format!("{} ({effort})", resolved.model.display_name),
            None => resolved.model.display_name.clone(),
        }
        .into();
        if resolved.model.context_window > 0 {
            model["inputTokenLimit"] = resolved.model.context_window.into();
        }
        model["thinking"] = (!resolved.model.efforts.is_empty()).into();
    }
    model
}

/// The model a request names: a catalog model or alias, else a Gemini model's configured
/// target (`[model.gemini]`).
fn resolve(state: &AppState, name: &str) -> Result<models::Resolved, ApiError> {
    let config = state.config();
    let (catalog, model) = (state.catalog(), &config.model);
    let requested = wire::model_name(name);
    models::resolve(Some(requested), &catalog, &model.aliases, &model.default)
        .or_else(|error| match model.gemini.target(requested) {
            Some(target) => models::resolve(Some(target), &catalog, &model.aliases, &model.default),
            None => Err(error),
        })
        .map_err(|mut error| {
            if error.status == StatusCode::NOT_FOUND {
                error.message = format!(
                    "models/{} is not found (GET /v1beta/models lists the models)",
                    crate::api_error::quoted(wire::model_name(name))
                );
            }
            error
        })
}

/// `GET /v1beta/models`: every model and alias `/v1/models` lists.
pub async fn list(State(state): State<AppState>) -> axum::Json<Value> {
    let catalog = state.catalog();
    let config = state.config();
    let models: Vec<Value> = models::listed_ids(&catalog, &config.model.aliases)
        .iter()
        .map(|id| {
            let resolved = models::resolve(
                Some(id),
                &catalog,
                &config.model.aliases,
                &config.model.default,
            )
            .ok();
            model_json(id, resolved.as_ref())
        })
        .collect();
    axum::Json(json!({ "models": models }))
}

/// `GET /v1beta/models/{model}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let resolved = resolve(&state, &name)?;
    Ok(axum::Json(model_json(
        wire::model_name(&name),
        Some(&resolved),
    )))
}

/// `POST …/models/{model}:{method}`.
pub async fn action(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    observed: Option<Extension<Observed>>,
    Path(target): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: JsonBody,
) -> Response {
    let observed = observed.map(|Extension(o)| o);
    let Some((model, method)) = target.rsplit_once(':') else {
        return not_found(&target).into_response();
    };
    let sse = query.get("alt").is_some_and(|alt| alt == "sse");
    let result = match method {
        "generateContent" if sse => {
            generate(&state, client, model, Framing::Sse, observed.as_ref(), body).await
        }
        "generateContent" => {
            generate(
                &state,
                client,
                model,
                Framing::Whole,
                observed.as_ref(),
                body,
            )
            .await
        }
        "streamGenerateContent" => {
            let framing = if sse { Framing::Sse } else { Framing::Array };
            generate(&state, client, model, framing, observed.as_ref(), body).await
        }
        "countTokens" => count_tokens(&state, client, model, &body.bytes),
        _ => Err(not_found(&target)),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn not_found(target: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        format!(
            "models/{}: unknown method; the methods are {}",
            crate::api_error::quoted(target),
            METHODS.join(", ")
        ),
    )
}

/// How a `generateContent` answer goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// One response.
    Whole,
    /// `alt=sse`: `data: {chunk}` events.
    Sse,
    /// Without `alt=sse`: one JSON array, its elements streamed as they come.
    Array,
}

/// A request made ready for the backend.
struct Prepared {
    /// The name the client asked for, echoed as `modelVersion`.
    requested: String,
    ready: Ready,
    thoughts: bool,
}

/// Resolve, translate and encode: CPU work in proportion to the body.
fn prepare(
    state: &AppState,
    client: ClientKey,
    name: &str,
    req: GenerateContentRequest,
) -> Result<Prepared, ApiError> {
    let resolved = resolve(state, name)?;
    let requested = wire::model_name(name).to_owned();
    let translated = wire::translate(req, &resolved.model.slug, &resolved.model.efforts)?;
    turn(state, client, &resolved, requested, translated, None)
}

/// A request made a Chat Completions one, made ready: translated, encoded, and — when it is a
/// large one read in outline — kept for its conversation's next turn.
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
        thoughts,
        web_search,
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
        with_search(web_search),
        continuing,
    )?;
    Ok(Prepared {
        requested,
        ready,
        thoughts,
    })
}

/// Adds the backend's web search to a translated body when the request asked for Google's.
fn with_search(web_search: bool) -> impl FnOnce(&mut ResponsesRequest, bool, &mut Vec<String>) {
    move |body, lite, ignored| {
        if !web_search {
            return;
        }
        match body.tools.as_mut() {
            Some(tools) => tools.push(Tool::WebSearch {}),
            None if !lite => body.tools = Some(vec![Tool::WebSearch {}]),
            None => ignored.push("tools.googleSearch".into()),
        }
    }
}

/// A large request, read in outline: when it continues the one kept for its conversation
/// (the same model and members, its contents beginning with the kept ones), only the contents
/// after the kept ones are read and translated, and the kept body's items are copied; either
/// way its translation is kept for the next turn. `None` leaves the request to the whole
/// reading (a body that does not read in outline or in parts, a Responses-Lite model): it
/// then says what is wrong, if anything.
fn prepare_outlined(
    state: &AppState,
    client: ClientKey,
    name: &str,
    body: &[u8],
) -> Result<Option<Prepared>, ApiError> {
    const SURFACE: &str = "gemini";
    let Some(outline) = history::outline(body, "contents", &history::AsWritten) else {
        return Ok(None);
    };
    let requested = wire::model_name(name).to_owned();
    let key = outline.key(client.0, SURFACE, &requested);
    let Some(history::Resumed {
        request: req,
        translator: mut continued,
        kept,
        keeping,
    }) = outline.resume::<GenerateContentRequest, wire::Content, Continued<wire::History>>(
        state,
        key,
        SURFACE,
        |req, tail| req.contents = tail,
    )
    else {
        return Ok(None);
    };
    let resolved = resolve(state, name)?;
    if resolved.model.lite {
        return Ok(None);
    }
    let translated = wire::translate_after(
        req,
        &resolved.model.slug,
        &resolved.model.efforts,
        &mut continued.surface,
    )?;
    let continuing = Some((continued, kept, keeping));
    turn(state, client, &resolved, requested, translated, continuing).map(Some)
}

/// `:countTokens`: the local estimate of what the request would send (nothing goes upstream).
fn count_tokens(
    state: &AppState,
    client: ClientKey,
    name: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let req: CountTokensRequest = super::body::parse_json(body)?;
    let req = match req.generate_content_request {
        Some(inner) => inner,
        None => GenerateContentRequest {
            contents: req.contents,
            ..GenerateContentRequest::default()
        },
    };
    let prepared = prepare(state, client, name, req)?;
    Ok(axum::Json(json!({ "totalTokens": prepared.ready.estimate.get() })).into_response())
}

async fn generate(
    state: &AppState,
    client: ClientKey,
    name: &str,
    framing: Framing,
    observed: Option<&Observed>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let in_flight = state.track_request();
    let name = name.to_owned();
    let (prepared, reservation) = rendered::prepared(state, body, move |state, bytes| {
        if bytes.len() >= history::KEEP_FROM
            && let Some(prepared) = prepare_outlined(state, client, &name, bytes)?
        {
            return Ok(prepared);
        }
        let req: GenerateContentRequest = super::body::parse_json(bytes)?;
        prepare(state, client, &name, req)
    })
    .await?;
    let turn = rendered::start(state, &prepared.ready, in_flight, observed).await?;
    let Prepared {
        requested,
        ready,
        thoughts,
    } = prepared;
    let Ready {
        conversation,
        wire,
        stop,
        ignored,
        estimate,
        ..
    } = ready;
    drop(wire);
    drop(reservation);
    let first_within = Duration::from_secs(state.config().server.keepalive_seconds);
    let Some(events) = turn.streams.into_iter().next() else {
        return Err(ApiError::internal("the engine started no response"));
    };
    let mode = match framing {
        Framing::Whole => Mode::Whole,
        Framing::Sse | Framing::Array => Mode::Stream,
    };
    let writer = Framed {
        writer: Writer::new(mode, requested, thoughts, &stop, estimate),
        framing,
        opened: false,
    };
    let reader = Reader::new(events, writer, Some((state.clone(), conversation)));
    let mut response = match framing {
        Framing::Whole => rendered::complete(reader, turn.guard).await?,
        Framing::Sse => {
            rendered::stream(reader, first_within, turn.guard, "text/event-stream").await?
        }
        Framing::Array => {
            rendered::stream(
                reader,
                first_within,
                turn.guard,
                "application/json; charset=UTF-8",
            )
            .await?
        }
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

/// The writer with its stream's framing: `data: …` events, or the elements of a JSON array.
struct Framed {
    writer: Writer,
    framing: Framing,
    /// The array's `[` went out.
    opened: bool,
}

impl Framed {
    /// A chunk's JSON, framed for the stream.
    fn frame(&mut self, chunk: &[u8]) -> Bytes {
        let mut buf = Vec::with_capacity(chunk.len() + 8);
        match self.framing {
            Framing::Array => {
                buf.extend_from_slice(if self.opened { b",\r\n" } else { b"[" });
                self.opened = true;
                buf.extend_from_slice(chunk);
            }
            Framing::Sse | Framing::Whole => {
                buf.extend_from_slice(b"data: ");
                buf.extend_from_slice(chunk);
                buf.extend_from_slice(b"\r\n\r\n");
            }
        }
        Bytes::from(buf)
    }
}

impl crate::translate::output::OutputSink for Framed {
    fn event(&mut self, event: crate::translate::output::OutputEvent<'_>) {
        self.writer.event(event);
    }
}

impl Rendered for Framed {
    fn stopped(&self) -> bool {
        self.writer.stopped()
    }
    fn is_done(&self) -> bool {
        self.writer.is_done()
    }
    fn failure(&self) -> Option<&Failure> {
        self.writer.failure()
    }
    fn usage(&self) -> Option<&Usage> {
        self.writer.usage()
    }
    fn finish_stopped(&mut self) {
        self.writer.finish_stopped();
    }
    fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.writer.calls()
    }
    fn take_piece(&mut self) -> Option<Bytes> {
        let chunk = self.writer.chunks().pop_front()?;
        Some(self.frame(&chunk))
    }
    fn has_piece(&self) -> bool {
        self.writer.has_chunks()
    }
    /// Google's error object as the last chunk (the SDKs raise it).
    fn error_piece(&mut self, error: &ApiError) -> Bytes {
        let body = render::error_body(error.status.as_u16(), &error.message).to_string();
        let mut piece = self.frame(body.as_bytes());
        if self.framing == Framing::Array {
            let mut closed = piece.to_vec();
            closed.push(b']');
            piece = Bytes::from(closed);
        }
        piece
    }
    fn end_piece(&mut self) -> Option<Bytes> {
        match (self.framing, self.opened) {
            (Framing::Array, true) => Some(Bytes::from_static(b"]")),
            (Framing::Array, false) => Some(Bytes::from_static(b"[]")),
            _ => None,
        }
    }
    fn whole(&self) -> Value {
        self.writer.whole()
    }
}

/// `GET /v1/models` and `GET /v1/models/{id}` asked with Google's key header (as Google's
/// Python SDK asks, under `/v1`): Gemini's shape.
pub fn asks_as_gemini(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key("x-goog-api-key")
}
