//! The Anthropic Messages API: `POST /v1/messages` (streamed and not), `POST
//! /v1/messages/count_tokens`, `HEAD /api/hello`, and Anthropic's error shape for all of them.
//!
//! A request is parsed and translated (`translate::messages`), run by the engine like every
//! other surface, and its events rendered as Anthropic's (`translate::messages::render`).

use std::hash::Hash;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use xxhash_rust::xxh3::Xxh3;

use super::auth::ClientKey;
use super::body::JsonBody;
use super::{ApiError, AppState, history};
use crate::engine::{self, ConversationId, TurnGuard, TurnRequest};
use crate::requests::Observed;
use crate::translate::messages::render::{self, Mode, Writer};
use crate::translate::messages::request::{self, Context, Translated};
use crate::translate::messages::{Block, Content, MessagesRequest, tokens};
use crate::translate::output::OutputTranslator;
use crate::translate::stream::StreamTranslator;
use crate::upstream::errors as upstream_errors;
use crate::upstream::wire::{Failure, InputItem, StreamEvent};
use crate::upstream::written::Items;
use crate::upstream::{EventStream, WireBody};

/// Bodies above this size are parsed, translated and encoded off the async workers.
const OFF_WORKER_BYTES: usize = 256 << 10;

/// `anthropic-beta` flags whose behaviour codex-proxy has (everything else is accepted and
/// ignored, and listed in `x-codex-proxy-ignored-betas`).
const KNOWN_BETAS: &[&str] = &[
    "claude-code-20250219",
    "interleaved-thinking-2025-05-14",
    "fine-grained-tool-streaming-2025-05-14",
    "effort-2025-11-24",
    "token-counting-2024-11-01",
];

/// `HEAD /api/hello` (and GET): Claude Code's connectivity probe.
pub async fn hello() -> StatusCode {
    StatusCode::OK
}

pub async fn create(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    observed: Option<Extension<Observed>>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    let ignored_betas = ignored_betas(&headers);
    let observed = observed.map(|Extension(o)| o);
    let mut response = match handle(&state, client, &headers, observed.as_ref(), body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if let Some(value) = ignored_betas {
        response
            .headers_mut()
            .insert("x-codex-proxy-ignored-betas", value);
    }
    response
}

pub async fn count_tokens(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    let result = (|| {
        let prepared = prepare(&state, client, &headers, &body.bytes, false)?;
        Ok::<_, ApiError>(prepared.estimate)
    })();
    match result {
        Ok(tokens) => axum::Json(serde_json::json!({"input_tokens": tokens})).into_response(),
        Err(error) => error.into_response(),
    }
}

fn ignored_betas(headers: &HeaderMap) -> Option<HeaderValue> {
    let list: Vec<&str> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty() && !KNOWN_BETAS.contains(b))
        .collect();
    (!list.is_empty())
        .then(|| HeaderValue::from_str(&list.join(", ")).ok())
        .flatten()
}

/// A request made ready for the backend.
struct Prepared {
    /// The name the client asked for, echoed in the answer.
    requested: String,
    model: String,
    conversation: ConversationId,
    session: String,
    translated: Translated,
    estimate: u64,
    /// The model's context window, for Anthropic's wording of an overflow.
    window: u64,
    /// The body, when preparing wrote it (a large request, kept to continue from).
    wire: Option<WireBody>,
    /// The items of the earlier turns `translated` continues (its input holds only the new
    /// messages'), when it continues them.
    earlier: Option<Items>,
}

/// The conversation a request belongs to: Claude Code's session id (header, else the one in
/// `metadata.user_id`), else a fingerprint of model, system prompt and first user message.
fn conversation(
    client: ClientKey,
    headers: &HeaderMap,
    req: &MessagesRequest,
    model: &str,
) -> ConversationId {
    let header = session_header(headers).map(str::to_owned);
    let from_metadata = || {
        let user_id = req.metadata.as_ref()?.user_id.as_deref()?.trim();
        if user_id.is_empty() {
            return None;
        }
        // Current Claude Code: a JSON string with `session_id`; older: `…_session_<uuid>`.
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(user_id)
            && let Some(session) = map.get("session_id").and_then(|v| v.as_str())
        {
            return Some(session.to_owned());
        }
        Some(match user_id.rsplit_once("_session_") {
            Some((_, session)) => session.to_owned(),
            None => user_id.to_owned(),
        })
    };
    if let Some(session) = header.or_else(from_metadata) {
        return engine::named(client.0, &format!("claude:{session}"));
    }
    let system = request::system_texts(req.system.as_ref()).unwrap_or_default();
    let first_user = req
        .messages
        .iter()
        .find(|m| m.role == "user")
        .map(|m| match &m.content {
            Content::Text(text) => text.clone(),
            Content::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        })
        .unwrap_or_default();
    engine::fingerprint(client.0, model, &system, &first_user, None)
}

/// Claude Code's session id header.
fn session_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-claude-code-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The model a request names: a catalog model or alias, else a Claude model's configured
/// target.
fn resolve(
    config: &crate::config::Config,
    catalog: &crate::models::Catalog,
    requested: &str,
) -> Result<crate::models::Resolved, ApiError> {
    if requested.is_empty() {
        return Err(ApiError::invalid("model: Field required", Some("model")));
    }
    let model = &config.model;
    match crate::models::resolve(Some(requested), catalog, &model.aliases, &model.default) {
        Ok(resolved) => Ok(resolved),
        Err(error) => match model.claude.target(requested) {
            Some(target) => Ok(crate::models::resolve(
                Some(target),
                catalog,
                &model.aliases,
                &model.default,
            )?),
            None => Err(error),
        },
    }
}

/// Parse, resolve, translate: CPU work in proportion to the body — or, for a large request
/// continuing its conversation's last one, to the messages it adds.
fn prepare(
    state: &AppState,
    client: ClientKey,
    headers: &HeaderMap,
    body: &[u8],
    require_max_tokens: bool,
) -> Result<Prepared, ApiError> {
    // Token counts are one-offs: only requests that go out are kept to continue from.
    if require_max_tokens
        && body.len() >= history::KEEP_FROM
        && let Some(prepared) = prepare_outlined(state, client, headers, body)?
    {
        return Ok(prepared);
    }
    let req: MessagesRequest = super::body::parse_json(body)?;
    let config = state.config();
    let catalog = state.catalog();
    let requested = req.model.trim().to_owned();
    let resolved = resolve(&config, &catalog, &requested)?;
    let model = &config.model;
    let conversation = conversation(client, headers, &req, &resolved.model.slug);
    let session = state.conversations().key_for(conversation);
    let mut translated = request::translate(
        req,
        &Context {
            model: &resolved,
            config: model,
            prompt_cache_key: session.clone(),
            require_max_tokens,
        },
    )?;
    translated.body.client_metadata = state.client_metadata(&session);
    let estimate = tokens::estimate(&translated.body);
    Ok(Prepared {
        requested,
        model: resolved.model.slug.clone(),
        conversation,
        session,
        translated,
        estimate,
        window: resolved.model.context_window,
        wire: None,
        earlier: None,
    })
}

/// What a conversation's translation so far is kept as, to continue from.
#[derive(Clone, Default)]
struct Continued {
    history: request::History,
    /// The estimate for the items translated so far.
    tokens: u64,
    /// Of which their reasoning's.
    reasoning_tokens: u64,
}

/// Messages requests digested as the translation reads them: Claude Code's system prompt
/// without its per-request billing line, its messages without their moving cache marks.
struct AsTranslated;

impl history::Reading for AsTranslated {
    fn member(&self, name: &str, raw: &RawValue, digest: &mut Xxh3) {
        name.hash(digest);
        match (name, crate::translate::messages::digest::system(raw)) {
            ("system", Some(text)) => (1u8, text).hash(digest),
            _ => (0u8, raw.get()).hash(digest),
        }
    }

    fn message(&self, raw: &RawValue) -> u128 {
        crate::translate::messages::digest::message(raw.get())
    }
}

/// A large request, read in outline: when it continues the one kept for its conversation,
/// only the messages after the kept ones are read and translated, and the kept body's items
/// are copied; either way its translation is kept for the next turn. `None` leaves the request
/// to the whole reading (a body that does not read in outline or in parts, a Responses-Lite
/// model): it then says what is wrong, if anything.
fn prepare_outlined(
    state: &AppState,
    client: ClientKey,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<Prepared>, ApiError> {
    const SURFACE: &str = "messages";
    let Some(outline) = history::outline(body, "messages", &AsTranslated) else {
        return Ok(None);
    };
    let key = outline.key(client.0, SURFACE, session_header(headers).unwrap_or(""));
    let Some(history::Resumed {
        request: req,
        translator:
            Continued {
                history: earlier,
                tokens: mut earlier_tokens,
                reasoning_tokens: mut earlier_reasoning,
            },
        kept,
        keeping,
    }) = outline.resume::<MessagesRequest, _, Continued>(state, key, SURFACE, |req, tail| {
        req.messages = tail;
    })
    else {
        return Ok(None);
    };
    let config = state.config();
    let catalog = state.catalog();
    let requested = req.model.trim().to_owned();
    let resolved = resolve(&config, &catalog, &requested)?;
    if resolved.model.lite {
        return Ok(None);
    }
    // Everything the conversation is told by is in the key and the kept messages.
    let conversation = match &kept {
        Some(kept) => kept.conversation,
        None => conversation(client, headers, &req, &resolved.model.slug),
    };
    let session = state.conversations().key_for(conversation);
    let (mut translated, history) = request::translate_after(
        req,
        &Context {
            model: &resolved,
            config: &config.model,
            prompt_cache_key: session.clone(),
            require_max_tokens: true,
        },
        earlier,
    )?;
    translated.body.client_metadata = state.client_metadata(&session);
    let mut earlier = kept.map(|kept| kept.items);
    if !translated.keeps_earlier_reasoning {
        // The thinking moved to another account, which cannot read the kept reasoning.
        earlier = earlier.map(|items| items.without_reasoning());
        earlier_tokens -= earlier_reasoning;
        earlier_reasoning = 0;
    }
    // The history's text is counted once: the kept items' when they were new.
    let tokens = earlier_tokens + tokens::input(&translated.body.input);
    let reasoning_tokens = earlier_reasoning + tokens::reasoning(&translated.body.input);
    let estimate = tokens::members(&translated.body) + tokens;
    let wire = state
        .upstream()
        .encode_after(&translated.body, earlier.as_ref())
        .map_err(ApiError::not_encoded)?;
    let window = resolved.model.context_window;
    let model = resolved.model.slug.clone();
    keeping.keep(
        state,
        (config, catalog),
        Continued {
            history,
            tokens,
            reasoning_tokens,
        },
        &wire,
        conversation,
    );
    Ok(Some(Prepared {
        requested,
        model,
        conversation,
        session,
        translated,
        estimate,
        window,
        wire: Some(wire),
        earlier,
    }))
}

fn encode(state: &AppState, prepared: &Prepared) -> Result<WireBody, ApiError> {
    let upstream = state.upstream();
    match &prepared.earlier {
        Some(earlier) => upstream.encode_after(&prepared.translated.body, Some(earlier)),
        None => upstream.encode(&prepared.translated.body),
    }
    .map_err(ApiError::not_encoded)
}

async fn handle(
    state: &AppState,
    client: ClientKey,
    headers: &HeaderMap,
    observed: Option<&Observed>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let in_flight = state.track_request();
    let JsonBody { bytes, reservation } = body;
    let mut prepared = if bytes.len() > OFF_WORKER_BYTES {
        let owned = state.clone();
        let headers = headers.clone();
        tokio::task::spawn_blocking(move || prepare(&owned, client, &headers, &bytes, true))
            .await
            .map_err(|e| ApiError::internal(format!("Preparing the request failed: {e}")))??
    } else {
        let prepared = prepare(state, client, headers, &bytes, true)?;
        drop(bytes);
        prepared
    };
    let keepalive = Duration::from_secs(state.config().server.keepalive_seconds);
    // Reasoning given back goes to the account that made it, while that account is still here.
    let mut prefer = prepared
        .translated
        .reasoning_account
        .clone()
        .filter(|id| state.accounts().get(id).is_some());
    if prefer
        .as_deref()
        .is_some_and(|id| !state.accounts().takes_turns(id, crate::clock::unix_now()))
        && has_reasoning(&prepared)
    {
        // Its account is out of quota (or signed out): another takes the turn, which cannot read
        // the reasoning — it goes without at once, not after a refusal.
        tracing::info!(
            "the account that made this conversation's thinking takes no turns now; sending \
             the turn without its thinking blocks"
        );
        without_reasoning(&mut prepared);
        prefer = None;
    }
    let wire = match prepared.wire.take() {
        Some(wire) => wire,
        None => encode(state, &prepared)?,
    };
    let first = start(
        state,
        &prepared,
        &wire,
        prefer.as_deref(),
        keepalive,
        in_flight,
        observed,
    )
    .await;
    drop(wire);
    let turn = match first {
        Ok(turn) => turn,
        Err(error) if is_foreign_reasoning(&error) && has_reasoning(&prepared) => {
            // The conversation had to move to an account that cannot read its reasoning: the
            // turn goes again without it (the model re-thinks what it needs).
            tracing::info!(
                "the conversation moved to an account that cannot read its thinking blocks; \
                 sending it again without them"
            );
            without_reasoning(&mut prepared);
            let wire = encode(state, &prepared)?;
            start(
                state,
                &prepared,
                &wire,
                None,
                keepalive,
                state.track_request(),
                observed,
            )
            .await
            .map_err(|e| overflow(e.to_api_error(), prepared.estimate, prepared.window))?
        }
        Err(error) => {
            return Err(overflow(
                error.to_api_error(),
                prepared.estimate,
                prepared.window,
            ));
        }
    };
    drop(reservation);
    let Prepared {
        requested,
        translated,
        estimate,
        window,
        ..
    } = prepared;
    let Translated {
        body,
        stream,
        stop,
        thinking,
        prefill,
        ignored,
        ..
    } = translated;
    drop(body);
    let Some(events) = turn.streams.into_iter().next() else {
        return Err(ApiError::internal("the engine started no response"));
    };
    let mode = if stream { Mode::Stream } else { Mode::Whole };
    let writer = Writer::new(
        mode,
        requested,
        thinking,
        turn.account.id.clone(),
        estimate,
        &stop,
        prefill,
    );
    let reader = Reader {
        events,
        output: OutputTranslator::default(),
        writer,
        ended: false,
        estimate,
        window,
    };
    let mut response = if stream {
        stream_response(reader, keepalive, turn.guard).await?
    } else {
        complete(reader, turn.guard).await?
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

/// Encodes the prepared body and runs it on the engine.
async fn start(
    state: &AppState,
    prepared: &Prepared,
    wire: &WireBody,
    prefer: Option<&str>,
    keepalive: Duration,
    in_flight: crate::app::InFlight,
    observed: Option<&Observed>,
) -> Result<engine::Turn, engine::EngineError> {
    let request = TurnRequest {
        conversation: prepared.conversation,
        session: &prepared.session,
        wire,
        lite: prepared.translated.lite,
        fan_out: 1,
        model: &prepared.model,
        prefer,
        first_event_within: keepalive,
        call: engine::Call::Responses,
        observed,
    };
    engine::start(state, &request, in_flight).await
}

fn is_foreign_reasoning(error: &engine::EngineError) -> bool {
    matches!(
        error,
        engine::EngineError::Upstream(upstream_errors::UpstreamFailure::Invalid {
            code: Some("invalid_encrypted_content"),
            ..
        })
    )
}

/// Takes the reasoning out of the prepared request (its new items and the kept ones).
fn without_reasoning(prepared: &mut Prepared) {
    prepared
        .translated
        .body
        .input
        .retain(|item| !matches!(item, InputItem::Reasoning { .. }));
    prepared.earlier = prepared.earlier.as_ref().map(Items::without_reasoning);
    prepared.wire = None;
}

fn has_reasoning(prepared: &Prepared) -> bool {
    let input = &prepared.translated.body.input;
    input
        .iter()
        .any(|item| matches!(item, InputItem::Reasoning { .. }))
        || prepared.earlier.as_ref().is_some_and(Items::has_reasoning)
}

/// A stream failure, as the client is told it.
fn failure_error(failure: &Failure) -> ApiError {
    engine::stream_failure(failure)
}

/// A context overflow in Anthropic's words ("prompt is too long: N tokens > M maximum"), which
/// Claude Code recognises and answers by compacting the conversation.
fn overflow(mut error: ApiError, estimate: u64, window: u64) -> ApiError {
    if error.code == Some("context_length_exceeded") {
        error.message = format!(
            "prompt is too long: {} tokens > {window} maximum",
            estimate.max(window + 1)
        );
    }
    error
}

/// The upstream events of one turn, read into the writer.
struct Reader {
    events: EventStream,
    output: OutputTranslator,
    writer: Writer,
    ended: bool,
    /// The request's estimated size and the model's window, to word an overflow.
    estimate: u64,
    window: u64,
}

impl Reader {
    /// The failure the writer saw, as the client is told it.
    fn error(&self) -> Option<ApiError> {
        let failure = self.writer.failure()?;
        Some(overflow(failure_error(failure), self.estimate, self.window))
    }
}

impl Reader {
    /// Reads one upstream event; `false` once the response is over.
    async fn step(&mut self) -> bool {
        if self.ended {
            return false;
        }
        match self.events.next().await {
            Some(Ok(data)) => {
                let (output, writer) = (&mut self.output, &mut self.writer);
                StreamEvent::with(data, StreamTranslator::ignores, |event| {
                    output.push(event, writer);
                });
            }
            Some(Err(error)) => {
                use crate::translate::output::OutputSink;
                self.writer
                    .event(crate::translate::output::OutputEvent::Failed(Failure {
                        code: None,
                        message: format!("The upstream stream broke: {error}"),
                        resets_at: None,
                    }));
            }
            None => self.output.eof(&mut self.writer),
        }
        if self.writer.stopped() && !self.writer.is_done() {
            // A stop sequence: the answer ends here; dropping the events stops generation.
            self.writer.finish_stopped();
            self.ended = true;
        } else if self.output.is_terminal() || self.writer.is_done() {
            self.events.finish();
            self.ended = true;
        }
        !self.ended
    }
}

/// Not streamed: the whole message, or the failure as an HTTP error.
async fn complete(mut reader: Reader, mut guard: TurnGuard) -> Result<Response, ApiError> {
    while reader.step().await {}
    if let Some(error) = reader.error() {
        return Err(error);
    }
    if let Some(usage) = reader.writer.usage() {
        guard.add_usage(usage);
    }
    guard.release_slot();
    drop(guard);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        reader.writer.message().to_string(),
    )
        .into_response())
}

const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";

/// Streamed: the status waits up to `keepalive` for the first output, so an early failure is
/// still an HTTP error; after that a failure is an `error` event, and a `ping` goes out after
/// every `keepalive` of silence.
async fn stream_response(
    mut reader: Reader,
    keepalive: Duration,
    guard: TurnGuard,
) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + keepalive;
    while reader.writer.frames().is_empty() && reader.writer.failure().is_none() {
        match tokio::time::timeout_at(deadline, reader.step()).await {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    if reader.writer.frames().is_empty()
        && let Some(error) = reader.error()
    {
        return Err(error);
    }
    Ok(super::sse::response(SseBody {
        reader,
        keepalive,
        guard: Some(guard),
        done: false,
    }))
}

struct SseBody {
    reader: Reader,
    keepalive: Duration,
    /// The account's slot, held until the client has the whole stream (or left).
    guard: Option<TurnGuard>,
    done: bool,
}

impl super::sse::Frames for SseBody {
    fn next_frame(&mut self) -> impl Future<Output = Option<Bytes>> + Send {
        self.next()
    }
}

impl SseBody {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.reader.writer.frames().pop_front() {
                return Some(frame);
            }
            if self.done {
                return None;
            }
            if let Some(error) = self.reader.error() {
                let kind = if error
                    .code
                    .is_some_and(|c| render::OVERLOADED_CODES.contains(&c))
                {
                    "overloaded_error"
                } else {
                    render::error_type(error.status.as_u16())
                };
                let body = render::error_body(kind, &error.message);
                if let Some(guard) = self.guard.take() {
                    guard.failed(&error.message);
                }
                self.done = true;
                return Some(Bytes::from(format!("event: error\ndata: {body}\n\n")));
            }
            if self.reader.ended {
                if let Some(mut guard) = self.guard.take() {
                    if let Some(usage) = self.reader.writer.usage() {
                        guard.add_usage(usage);
                    }
                }
                self.done = true;
                continue;
            }
            match tokio::time::timeout(self.keepalive, self.reader.step()).await {
                Ok(_) => {}
                Err(_silence) => return Some(Bytes::from_static(PING)),
            }
        }
    }
}

/// The last layer of the Anthropic routes: every error, whoever made it (auth, body limits,
/// the handlers), in Anthropic's shape — `{"type":"error","error":{"type","message"}}` — with
/// Anthropic's statuses (an overloaded pool is 529).
pub async fn anthropic_errors(response: Response) -> Response {
    super::errors::reshape(response, |status, message, code| {
        let overloaded = *status == StatusCode::SERVICE_UNAVAILABLE
            && code.is_some_and(|c| render::OVERLOADED_CODES.contains(&c));
        let kind = if overloaded {
            *status = StatusCode::from_u16(529).unwrap_or(*status);
            "overloaded_error"
        } else {
            render::error_type(status.as_u16())
        };
        render::error_body(kind, message).to_string()
    })
    .await
}
