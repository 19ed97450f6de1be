//! What the surfaces that go through the Chat Completions translation (Ollama's, Gemini's)
//! share: a request made ready ([`prepare`]: its conversation, its calls' ids restored,
//! translated and encoded), its turn started ([`start`]), and its events read into the
//! surface's writer for the answer: one JSON object, or a stream of pieces the writer frames
//! itself (Ollama's NDJSON lines, Gemini's SSE chunks or JSON array) — streams without a
//! comment syntax for keep-alives.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::auth::ClientKey;
use super::body::JsonBody;
use super::history::Keeping;
use super::{ApiError, AppState};
use crate::engine::histories::Kept;
use crate::engine::{self, ConversationId, TurnGuard, TurnRequest};
use crate::models::Resolved;
use crate::requests::Observed;
use crate::translate::chat::ChatRequest;
use crate::translate::messages::tokens;
use crate::translate::output::{OutputEvent, OutputSink, OutputTranslator};
use crate::translate::request::{self, Context};
use crate::translate::stream::StreamTranslator;
use crate::upstream::EventStream;
use crate::upstream::WireBody;
use crate::upstream::wire::ResponsesRequest;
use crate::upstream::wire::{Failure, StreamEvent, Usage};

/// Bodies above this size are parsed, translated and encoded off the async workers.
const OFF_WORKER_BYTES: usize = 256 << 10;

/// A request made ready for the backend.
pub struct Ready {
    /// The catalog model it runs on (usage is counted under it).
    pub model: String,
    pub conversation: ConversationId,
    pub session: String,
    pub wire: WireBody,
    pub lite: bool,
    /// Stop sequences, applied here.
    pub stop: Vec<String>,
    /// Accepted but without effect (`x-codex-proxy-ignored-params`).
    pub ignored: Vec<String>,
    /// The input's estimated tokens, counted if they are asked for.
    pub estimate: tokens::Estimate,
}

/// What a large request of a surface made a Chat Completions one leaves for its conversation's
/// next: the surface's own state `H` after its last message, the calls restored, the Chat
/// translation's history.
#[derive(Debug, Clone, Default)]
pub struct Continued<H> {
    pub surface: H,
    calls: super::tool_calls::Restored,
    chat: request::History,
}

/// A large request read in outline and resumed (see [`super::history`]): where its surface's
/// translation left off, the kept translation it continues, where its own is kept.
pub type Continuing<H> = (Continued<H>, Option<Kept>, Keeping);

/// Translates a surface's request, made a Chat Completions one, for `resolved`: the
/// conversation is known by its system prompt and first user message, calls the client sent
/// back without ids get the backend's ids again (`made_up` are the ids the surface invented),
/// `adjust` may add what the Chat translation has no words for (a hosted tool). A large
/// request read in outline and resumed comes `continuing`: `chat` holds the messages after the
/// kept translation's (all of them when nothing is kept), translated by the surface from
/// `continued.surface`'s state on, which is kept with the rest for the next turn.
#[allow(clippy::too_many_arguments)]
pub fn prepare<H: Default + Send + Sync + 'static>(
    state: &AppState,
    client: ClientKey,
    resolved: &Resolved,
    mut chat: ChatRequest,
    made_up: &[String],
    mut ignored: Vec<String>,
    adjust: impl FnOnce(&mut ResponsesRequest, bool, &mut Vec<String>),
    continuing: Option<Continuing<H>>,
) -> Result<Ready, ApiError> {
    let (continued, kept, keeping) = match continuing {
        Some((continued, kept, keeping)) => (continued, kept, Some(keeping)),
        None => (Continued::default(), None, None),
    };
    let Continued {
        surface,
        mut calls,
        chat: history,
    } = continued;
    // Everything the conversation is told by is in the key and the kept messages.
    let conversation = match &kept {
        Some(kept) => kept.conversation,
        None => {
            let (system, first_user) = request::conversation_seed(&chat);
            engine::fingerprint(client.0, &resolved.model.slug, &system, &first_user, None)
        }
    };
    let session = state.conversations().key_for(conversation);
    super::tool_calls::restore(state, conversation, &mut chat, made_up, &mut calls);
    let (config, catalog) = (state.config(), state.catalog());
    let (mut translated, history) = request::translate_after(
        chat,
        &Context {
            model: resolved,
            config: &config.model,
            prompt_cache_key: session.clone(),
        },
        history,
    )?;
    adjust(&mut translated.body, translated.lite, &mut ignored);
    translated.body.client_metadata = state.client_metadata(&session);
    ignored.append(&mut translated.ignored);
    let members = tokens::members(&translated.body);
    let earlier = kept.map(|kept| kept.items);
    let wire = state
        .upstream()
        .encode_after(&translated.body, earlier.as_ref())
        .map_err(ApiError::not_encoded)?;
    drop(earlier);
    if let Some(keeping) = keeping {
        keeping.keep(
            state,
            (config, catalog),
            Continued {
                surface,
                calls,
                chat: history,
            },
            &wire,
            conversation,
        );
    }
    // The items are counted only if they may be asked for (stop sequences, no usage from the
    // backend, countTokens): from the items written, the kept ones with the new.
    let items = wire
        .written()
        .map(|w| w.items().clone())
        .unwrap_or_default();
    let estimate = tokens::Estimate::later(members, items);
    if !translated.stop.is_empty() {
        // A stop sequence that ends the answer reports the estimate: counted here, off the
        // async workers when the request is large, not while the answer streams.
        estimate.get();
    }
    Ok(Ready {
        model: resolved.model.slug.clone(),
        conversation,
        session,
        wire,
        lite: translated.lite,
        stop: translated.stop,
        ignored,
        estimate,
    })
}

/// Runs `prepare` on the body: off the async workers when the body is large. Gives back the
/// body's memory reservation, to hold until the request has gone upstream.
pub async fn prepared<T: Send + 'static>(
    state: &AppState,
    body: JsonBody,
    prepare: impl FnOnce(&AppState, &[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<(T, super::body::Reservation), ApiError> {
    let JsonBody { bytes, reservation } = body;
    let ready = if bytes.len() > OFF_WORKER_BYTES {
        let owned = state.clone();
        tokio::task::spawn_blocking(move || prepare(&owned, &bytes))
            .await
            .map_err(|e| ApiError::internal(format!("Preparing the request failed: {e}")))??
    } else {
        prepare(state, &bytes)?
    };
    Ok((ready, reservation))
}

/// Starts the request's turn: one response, on an account of the pool.
pub async fn start(
    state: &AppState,
    ready: &Ready,
    in_flight: crate::app::InFlight,
    observed: Option<&Observed>,
) -> Result<engine::Turn, ApiError> {
    let first_within = Duration::from_secs(state.config().server.keepalive_seconds);
    let turn = engine::start(
        state,
        &TurnRequest {
            conversation: ready.conversation,
            session: &ready.session,
            wire: &ready.wire,
            lite: ready.lite,
            fan_out: 1,
            model: &ready.model,
            prefer: None,
            first_event_within: first_within,
            call: engine::Call::Responses,
            observed,
        },
        in_flight,
    )
    .await?;
    Ok(turn)
}

/// A surface's writer, as the reader drives it.
pub trait Rendered: OutputSink + Send + 'static {
    /// A stop sequence ended the answer.
    fn stopped(&self) -> bool;
    /// The answer ended or failed.
    fn is_done(&self) -> bool;
    fn failure(&self) -> Option<&Failure>;
    fn usage(&self) -> Option<&Usage>;
    /// Ends the answer a stop sequence cut short.
    fn finish_stopped(&mut self);
    /// The answer's tool calls as the backend made them: id, name, arguments.
    fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &str)>;
    /// The next framed piece of a stream, if one is ready.
    fn take_piece(&mut self) -> Option<Bytes>;
    /// Whether a piece is ready.
    fn has_piece(&self) -> bool;
    /// The failure, framed as the stream's last piece.
    fn error_piece(&mut self, error: &ApiError) -> Bytes;
    /// What closes a stream that ended well (a JSON array's `]`).
    fn end_piece(&mut self) -> Option<Bytes>;
    /// The whole answer (not streamed).
    fn whole(&self) -> Value;
}

/// The upstream events of one turn, read into the writer.
pub struct Reader<W> {
    events: EventStream,
    output: OutputTranslator,
    pub writer: W,
    ended: bool,
    /// Where the answer's tool calls are remembered: see [`super::tool_calls`].
    calls: Option<(AppState, ConversationId)>,
}

impl<W: Rendered> Reader<W> {
    pub fn new(
        events: EventStream,
        writer: W,
        remember_calls: Option<(AppState, ConversationId)>,
    ) -> Self {
        Self {
            events,
            output: OutputTranslator::default(),
            writer,
            ended: false,
            calls: remember_calls,
        }
    }

    /// The failure the writer saw, as the client is told it.
    pub fn error(&self) -> Option<ApiError> {
        self.writer.failure().map(engine::stream_failure)
    }

    /// Reads one upstream event; `false` once the answer is over.
    pub async fn step(&mut self) -> bool {
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
                self.writer.event(OutputEvent::Failed(Failure {
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
            if self.writer.failure().is_none()
                && let Some((state, conversation)) = self.calls.take()
            {
                super::tool_calls::remember(&state, conversation, self.writer.tool_calls());
            }
        }
        !self.ended
    }
}

/// Not streamed: the whole answer as JSON, or the failure as an HTTP error.
pub async fn complete<W: Rendered>(
    mut reader: Reader<W>,
    mut guard: TurnGuard,
) -> Result<Response, ApiError> {
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
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        reader.writer.whole().to_string(),
    )
        .into_response())
}

/// Streamed: the status waits up to `first_within` for the first piece, so an early failure is
/// still an HTTP error; after that a failure is the stream's last piece. These streams have no
/// comments, so a silence sends nothing.
pub async fn stream<W: Rendered>(
    mut reader: Reader<W>,
    first_within: Duration,
    guard: TurnGuard,
    content_type: &'static str,
) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + first_within;
    while !reader.writer.has_piece() && reader.writer.failure().is_none() {
        match tokio::time::timeout_at(deadline, reader.step()).await {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    if !reader.writer.has_piece()
        && let Some(error) = reader.error()
    {
        return Err(error);
    }
    Ok(super::sse::response_as(
        Pieces {
            reader,
            guard: Some(guard),
            done: false,
        },
        content_type,
    ))
}

struct Pieces<W> {
    reader: Reader<W>,
    /// The account's slot, held until the client has the whole answer (or left).
    guard: Option<TurnGuard>,
    done: bool,
}

impl<W: Rendered> super::sse::Frames for Pieces<W> {
    fn next_frame(&mut self) -> impl Future<Output = Option<Bytes>> + Send {
        self.next()
    }
}

impl<W: Rendered> Pieces<W> {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(piece) = self.reader.writer.take_piece() {
                return Some(piece);
            }
            if self.done {
                return None;
            }
            if let Some(error) = self.reader.error() {
                if let Some(guard) = self.guard.take() {
                    guard.failed(&error.message);
                }
                self.done = true;
                return Some(self.reader.writer.error_piece(&error));
            }
            if self.reader.ended {
                if let Some(mut guard) = self.guard.take()
                    && let Some(usage) = self.reader.writer.usage()
                {
                    guard.add_usage(usage);
                }
                self.done = true;
                if let Some(end) = self.reader.writer.end_piece() {
                    return Some(end);
                }
                continue;
            }
            self.reader.step().await;
        }
    }
}
