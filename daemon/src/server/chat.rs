//! `POST /v1/chat/completions`: translate, send upstream, stream back as OpenAI does.
//!
//! Each choice owns its upstream stream; the response body owns the choices. A client that
//! disconnects drops the body, which drops every upstream request at once.

use std::collections::VecDeque;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};

use super::auth::ClientKey;
use super::body::JsonBody;
use super::history;
use super::{ApiError, AppState};
use crate::clock::unix_now;
use crate::engine::{self, ConversationId, TurnGuard, TurnRequest, fingerprint};
use crate::models;
use crate::requests::Observed;
use crate::translate::chat::{
    AssistantMessage, ChatChunk, ChatCompletion, ChatRequest, ChatUsage, ChunkChoice,
    CompletionChoice, Delta, FinishReason, UsageField,
};
use crate::translate::held::Held;
use crate::translate::request::{self, Context};
use crate::translate::stream::{Assembler, Emit, Failure, Sink, StreamTranslator, wire_usage};
use crate::upstream::wire::StreamEvent;
use crate::upstream::{EventStream, WireBody};

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    observed: Option<Extension<Observed>>,
    body: JsonBody,
) -> Response {
    match handle(&state, client, observed.map(|Extension(o)| o), body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Bodies above this size are parsed, translated and encoded off the async workers, so a
/// large one never stalls other requests.
const OFF_WORKER_BYTES: usize = 256 << 10;

/// A chat request made ready for the backend; the client's body is gone by then.
struct Prepared {
    model: String,
    conversation: ConversationId,
    session: String,
    wire: WireBody,
    n: u32,
    lite: bool,
    stream: bool,
    include_usage: bool,
    stop: Vec<String>,
    ignored: Vec<String>,
}

/// The conversation a chat request belongs to: a fingerprint of its model, system prompt,
/// first user message and `prompt_cache_key`.
fn conversation(client: ClientKey, model: &str, chat: &ChatRequest) -> ConversationId {
    let (system, first_user) = request::conversation_seed(chat);
    fingerprint(
        client.0,
        model,
        &system,
        &first_user,
        chat.prompt_cache_key.as_deref(),
    )
}

impl Prepared {
    fn new(
        model: &str,
        conversation: ConversationId,
        session: String,
        wire: WireBody,
        translated: request::Translated,
    ) -> Self {
        Self {
            model: model.to_owned(),
            conversation,
            session,
            wire,
            n: translated.n,
            lite: translated.lite,
            stream: translated.stream,
            include_usage: translated.include_usage,
            stop: translated.stop,
            ignored: translated.ignored,
        }
    }
}

/// Parse, resolve, translate and encode: CPU work in proportion to the body — or, for a
/// large request continuing its conversation's last one, to the messages it adds.
fn prepare(state: &AppState, client: ClientKey, body: Bytes) -> Result<Prepared, ApiError> {
    if body.len() >= history::KEEP_FROM
        && let Some(prepared) = prepare_outlined(state, client, &body)?
    {
        return Ok(prepared);
    }
    let chat: ChatRequest = super::body::parse_json(&body)?;
    // The parsed request holds everything now; the raw bytes go at once.
    drop(body);
    let config = state.config();
    let catalog = state.catalog();
    if chat.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return Err(ApiError::invalid(
            "'model' is empty: name a model (GET /v1/models lists them), or leave the field out \
             to use the configured default.",
            Some("model"),
        ));
    }
    let resolved = models::resolve(
        chat.model.as_deref(),
        &catalog,
        &config.model.aliases,
        &config.model.default,
    )?;
    let conversation = conversation(client, &resolved.model.slug, &chat);
    let session = state.conversations().key_for(conversation);
    let mut translated = request::translate(
        chat,
        &Context {
            model: &resolved,
            config: &config.model,
            prompt_cache_key: session.clone(),
        },
    )?;
    translated.body.client_metadata = state.client_metadata(&session);
    let wire = state
        .upstream()
        .encode(&translated.body)
        .map_err(ApiError::not_encoded)?;
    Ok(Prepared::new(
        &resolved.model.slug,
        conversation,
        session,
        wire,
        translated,
    ))
}

/// A large request, read in outline: when it continues the one kept for its conversation,
/// only the messages after the kept ones are read and translated, and the kept body's items
/// are copied; either way its translation is kept for the next turn. `None` leaves the request
/// to the whole reading (a body that does not read in outline or in parts, a Responses-Lite
/// model, whose history begins with the instructions): it then says what is wrong, if anything.
fn prepare_outlined(
    state: &AppState,
    client: ClientKey,
    body: &[u8],
) -> Result<Option<Prepared>, ApiError> {
    const SURFACE: &str = "chat";
    let Some(outline) = history::outline(body, "messages", &history::AsWritten) else {
        return Ok(None);
    };
    let key = outline.key(client.0, SURFACE, "");
    let Some(history::Resumed {
        request: chat,
        translator: earlier,
        kept,
        keeping,
    }) = outline.resume::<ChatRequest, _, request::History>(state, key, SURFACE, |chat, tail| {
        chat.messages = tail;
    })
    else {
        return Ok(None);
    };
    let config = state.config();
    let catalog = state.catalog();
    if chat.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return Ok(None);
    }
    let resolved = models::resolve(
        chat.model.as_deref(),
        &catalog,
        &config.model.aliases,
        &config.model.default,
    )?;
    if resolved.model.lite {
        return Ok(None);
    }
    let conversation = match &kept {
        Some(kept) => kept.conversation,
        None => conversation(client, &resolved.model.slug, &chat),
    };
    let session = state.conversations().key_for(conversation);
    let (mut translated, history) = request::translate_after(
        chat,
        &Context {
            model: &resolved,
            config: &config.model,
            prompt_cache_key: session.clone(),
        },
        earlier,
    )?;
    translated.body.client_metadata = state.client_metadata(&session);
    let earlier = kept.as_ref().map(|k| &k.items);
    let wire = state
        .upstream()
        .encode_after(&translated.body, earlier)
        .map_err(ApiError::not_encoded)?;
    drop(kept);
    keeping.keep(state, (config, catalog), history, &wire, conversation);
    Ok(Some(Prepared::new(
        &resolved.model.slug,
        conversation,
        session,
        wire,
        translated,
    )))
}

async fn handle(
    state: &AppState,
    client: ClientKey,
    observed: Option<Observed>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let in_flight = state.track_request();
    let JsonBody { bytes, reservation } = body;
    let prepared = if bytes.len() > OFF_WORKER_BYTES {
        let owned = state.clone();
        tokio::task::spawn_blocking(move || prepare(&owned, client, bytes))
            .await
            .map_err(|e| ApiError::internal(format!("Preparing the request failed: {e}")))??
    } else {
        prepare(state, client, bytes)?
    };
    let config = state.config();
    let turn = engine::start(
        state,
        &TurnRequest {
            conversation: prepared.conversation,
            session: &prepared.session,
            wire: &prepared.wire,
            lite: prepared.lite,
            fan_out: prepared.n,
            model: &prepared.model,
            prefer: None,
            first_event_within: Duration::from_secs(config.server.keepalive_seconds),
            call: engine::Call::Responses,
            observed: observed.as_ref(),
        },
        in_flight,
    )
    .await?;
    let Prepared {
        model,
        wire,
        stream,
        include_usage,
        stop,
        ignored,
        ..
    } = prepared;
    // Sent: the request's memory goes back (to the budget, and after a large one to the system).
    drop(wire);
    drop(reservation);
    let streams = turn.streams;
    let guard = turn.guard;

    let want_usage = include_usage || !stream;
    let choices: Vec<Choice> = streams
        .into_iter()
        .enumerate()
        .map(|(index, events)| {
            Choice::new(
                index as u32,
                events,
                StreamTranslator::new(config.model.reasoning_output, &stop),
                want_usage,
            )
        })
        .collect();
    let ignored = ignored.join(", ");
    let keepalive = Duration::from_secs(config.server.keepalive_seconds);
    let mut response = if stream {
        stream_response(choices, model, include_usage, keepalive, guard).await?
    } else {
        complete(choices, model, guard).await?
    };
    if !ignored.is_empty()
        && let Ok(value) = HeaderValue::from_str(&ignored)
    {
        response
            .headers_mut()
            .insert("x-codex-proxy-ignored-params", value);
    }
    Ok(response)
}

/// A stream failure, as the client is told it.
fn failure_error(failure: &Failure) -> ApiError {
    let mut error = engine::stream_failure(failure);
    if error.code == Some("context_length_exceeded") && error.param.is_none() {
        error.param = Some("messages".into());
    }
    error
}

/// One choice: its upstream events through its own translator.
struct Choice {
    index: u32,
    events: EventStream,
    translator: StreamTranslator,
    /// Keep reading after a stop sequence to learn the usage.
    want_usage: bool,
    finished: bool,
    pending: VecDeque<Emit>,
    /// Reused for every event, so translating allocates no vector per event.
    scratch: Vec<Emit>,
    /// Non-streamed: deltas wait for their done item (which repeats them) instead of being read.
    held: Option<Held>,
}

impl Choice {
    fn new(
        index: u32,
        events: EventStream,
        translator: StreamTranslator,
        want_usage: bool,
    ) -> Self {
        Self {
            index,
            events,
            translator,
            want_usage,
            finished: false,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            held: None,
        }
    }

    async fn next(&mut self) -> Option<Emit> {
        loop {
            if let Some(emit) = self.pending.pop_front() {
                return Some(emit);
            }
            if self.finished {
                return None;
            }
            let mut out = std::mem::take(&mut self.scratch);
            self.step(&mut out).await;
            self.pending.extend(out.drain(..));
            self.scratch = out;
        }
    }

    /// Reads and translates one upstream event into `out`; `false` once the choice is over.
    async fn step(&mut self, out: &mut impl Sink) -> bool {
        if self.finished {
            return false;
        }
        match self.events.next().await {
            Some(Ok(data)) => match &mut self.held {
                Some(held) if held.takes(data) => {
                    held.hold(self.events.event_bytes(), &mut self.translator, out);
                }
                Some(held) => held.push(data, &mut self.translator, out),
                None => {
                    let translator = &mut self.translator;
                    StreamEvent::with(data, StreamTranslator::ignores, |event| {
                        translator.push(event, out);
                    });
                }
            },
            Some(Err(error)) => {
                out.emit(Emit::Failed(Failure {
                    code: None,
                    message: format!("The upstream stream broke: {error}"),
                    resets_at: None,
                }));
                self.finished = true;
            }
            None => {
                match &mut self.held {
                    Some(held) => held.eof(&mut self.translator, out),
                    None => self.translator.eof(out),
                }
                self.finished = true;
            }
        }
        if self.translator.is_terminal() {
            // The response is over: end the upstream request cleanly rather than reset it.
            self.events.finish();
            self.finished = true;
        } else if self.translator.stopped_by_sequence() && !self.want_usage {
            // Stopped early: dropping the events resets the request, so generation stops.
            self.finished = true;
        }
        true
    }

    fn into_stream(self) -> BoxStream<'static, (u32, Emit)> {
        // Boxed, so each step moves a pointer rather than the whole choice.
        stream::unfold(Box::new(self), |mut choice| async move {
            let emit = choice.next().await?;
            Some(((choice.index, emit), choice))
        })
        .boxed()
    }
}

fn completion_id(response_id: Option<&str>) -> String {
    match response_id {
        Some(id) => format!("chatcmpl-{}", id.strip_prefix("resp_").unwrap_or(id)),
        None => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// Non-streamed: the same translation, assembled.
async fn complete(
    choices: Vec<Choice>,
    model: String,
    mut guard: TurnGuard,
) -> Result<Response, ApiError> {
    let runs = choices.into_iter().map(|mut choice| async move {
        let mut assembled = Assembler::default();
        choice.held = Some(Held::default());
        while choice.step(&mut assembled).await {}
        (
            choice.index,
            assembled,
            choice.translator.response_id.clone(),
        )
    });
    let results = futures_util::future::join_all(runs).await;
    let mut usage = ChatUsage::default();
    let mut out = Vec::with_capacity(results.len());
    let mut id = None;
    for (index, assembled, response_id) in results {
        if let Some(failure) = &assembled.failure {
            return Err(failure_error(failure));
        }
        id = id.or(response_id);
        if let Some(u) = &assembled.usage {
            usage.add(u);
        }
        let tool_calls = assembled.tool_calls();
        let content =
            (!assembled.content.is_empty() || tool_calls.is_empty()).then_some(assembled.content);
        out.push(CompletionChoice {
            index,
            message: AssistantMessage {
                role: "assistant",
                content,
                reasoning_content: (!assembled.reasoning.is_empty()).then_some(assembled.reasoning),
                refusal: assembled.refusal,
                tool_calls,
                annotations: Vec::new(),
            },
            logprobs: None,
            finish_reason: assembled.finish.unwrap_or(FinishReason::Stop),
        });
    }
    guard.add_usage(&wire_usage(&usage));
    // The response is complete: the slot goes back before it is rendered.
    guard.release_slot();
    drop(guard);
    let completion = ChatCompletion {
        id: completion_id(id.as_deref()),
        object: "chat.completion",
        created: unix_now(),
        model,
        system_fingerprint: None,
        choices: out,
        usage,
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        completion.to_json(),
    )
        .into_response())
}

/// Streamed: chunks exactly as OpenAI sends them. The status line waits up to `keepalive` for
/// the first output, so an early failure can still be a proper HTTP error; after that the stream
/// starts anyway, and a `: keepalive` comment goes out after every `keepalive` of silence.
async fn stream_response(
    choices: Vec<Choice>,
    model: String,
    include_usage: bool,
    keepalive: Duration,
    guard: TurnGuard,
) -> Result<Response, ApiError> {
    let count = choices.len() as u32;
    let mut merged: SelectAll<BoxStream<'static, (u32, Emit)>> =
        stream::select_all(choices.into_iter().map(Choice::into_stream));

    // Until something reaches the client, a failure is still an HTTP error.
    let first = match tokio::time::timeout(keepalive, merged.next()).await {
        Ok(Some((_, Emit::Failed(failure)))) => {
            return Err(failure_error(&failure));
        }
        Ok(first) => first,
        Err(_elapsed) => None,
    };

    let writer = ChunkWriter::new(completion_id(None), unix_now(), model, include_usage);
    let mut pending = VecDeque::new();
    if first.is_none() {
        pending.push_back(Bytes::from_static(super::sse::KEEPALIVE_COMMENT));
    }
    for index in 0..count {
        // The first chunk of every choice carries the role, as OpenAI's does.
        let delta = Delta {
            role: Some("assistant"),
            content: Some(String::new()),
            refusal: Some(None),
            ..Delta::default()
        };
        writer.chunk(index, delta, None, &mut pending);
    }
    let body = SseBody {
        keepalive,
        merged,
        first,
        writer,
        pending,
        done: false,
        guard: Some(guard),
    };
    Ok(super::sse::response(body))
}

/// Renders `chat.completion.chunk`s. Everything but the choice is the same on every chunk of
/// a stream, so it is serialised once (as serde writes it) and each chunk splices its choice in.
struct ChunkWriter {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
    usage: ChatUsage,
    /// `data: {"id":…,"choices":[` and `],…}\n\n` around every chunk's one choice.
    frame: (Vec<u8>, Vec<u8>),
}

impl ChunkWriter {
    fn new(id: String, created: i64, model: String, include_usage: bool) -> Self {
        let mut writer = Self {
            id,
            created,
            model,
            include_usage,
            usage: ChatUsage::default(),
            frame: (Vec::new(), Vec::new()),
        };
        writer.frame = writer.split_frame();
        writer
    }

    fn template(&self) -> ChatChunk<'_> {
        ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: None,
            choices: &[],
            usage: if self.include_usage {
                UsageField::Null
            } else {
                UsageField::Absent
            },
        }
    }

    /// The template chunk with no choices, cut where its `[]` is. Strings inside it are
    /// escaped, so the last `"choices":[` is the field itself.
    fn split_frame(&self) -> (Vec<u8>, Vec<u8>) {
        let whole = sse_data(&self.template());
        let marker: &[u8] = b"\"choices\":[";
        let cut = whole
            .windows(marker.len())
            .rposition(|w| w == marker)
            .map_or(whole.len(), |at| at + marker.len());
        (whole[..cut].to_vec(), whole[cut..].to_vec())
    }

    fn chunk(
        &self,
        index: u32,
        delta: Delta,
        finish_reason: Option<FinishReason>,
        out: &mut VecDeque<Bytes>,
    ) {
        let (head, tail) = &self.frame;
        let mut buf = Vec::with_capacity(head.len() + tail.len() + 96);
        buf.extend_from_slice(head);
        // Serialising our own types cannot fail; an empty object keeps the stream well-formed.
        let written = match (&delta, finish_reason) {
            // Almost every chunk: text only. Written as serde writes the whole choice (tested).
            (
                Delta {
                    role: None,
                    content: Some(text),
                    reasoning_content: None,
                    refusal: None,
                    tool_calls: None,
                },
                None,
            ) => {
                buf.extend_from_slice(b"{\"index\":");
                // Into the buffer, without a string of its own.
                let _ = std::io::Write::write_fmt(&mut buf, format_args!("{index}"));
                buf.extend_from_slice(b",\"delta\":{\"content\":");
                crate::json_text::quote_into(&mut buf, text);
                buf.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}");
                Ok(())
            }
            _ => serde_json::to_writer(
                &mut buf,
                &ChunkChoice {
                    index,
                    delta,
                    logprobs: None,
                    finish_reason,
                },
            ),
        };
        if written.is_err() {
            buf.truncate(head.len());
            buf.extend_from_slice(b"{}");
        }
        buf.extend_from_slice(tail);
        out.push_back(Bytes::from(buf));
    }

    /// Renders one emit; returns true when the stream must end (an error after the first byte).
    fn render(&mut self, (index, emit): (u32, Emit), out: &mut VecDeque<Bytes>) -> bool {
        match emit {
            Emit::Delta(delta) => self.chunk(index, delta, None, out),
            Emit::Finish(reason) => self.chunk(index, Delta::default(), Some(reason), out),
            Emit::Usage(usage) => self.usage.add(&usage),
            Emit::Failed(failure) => {
                out.push_back(sse_data(&failure_error(&failure).body_json()));
                out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                return true;
            }
        }
        false
    }

    fn finish(&mut self, out: &mut VecDeque<Bytes>) {
        if self.include_usage {
            let chunk = ChatChunk {
                usage: UsageField::Present(self.usage.clone()),
                ..self.template()
            };
            out.push_back(sse_data(&chunk));
        }
        out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    }
}

fn sse_data<T: serde::Serialize>(value: &T) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    // Serialising our own types cannot fail; an empty object keeps the stream well-formed anyway.
    if serde_json::to_writer(&mut buf, value).is_err() {
        buf.extend_from_slice(b"{}");
    }
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

struct SseBody {
    keepalive: Duration,
    merged: SelectAll<BoxStream<'static, (u32, Emit)>>,
    first: Option<(u32, Emit)>,
    writer: ChunkWriter,
    pending: VecDeque<Bytes>,
    done: bool,
    /// The account's request slot, held until the client has the whole stream (or left);
    /// counts the usage once the stream is complete.
    guard: Option<TurnGuard>,
}

impl super::sse::Frames for SseBody {
    fn next_frame(&mut self) -> impl Future<Output = Option<Bytes>> + Send {
        self.next()
    }
}

impl SseBody {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.done {
                return None;
            }
            let item = match self.first.take() {
                Some(item) => Some(item),
                None => match tokio::time::timeout(self.keepalive, self.merged.next()).await {
                    Ok(item) => item,
                    Err(_silence) => {
                        return Some(Bytes::from_static(super::sse::KEEPALIVE_COMMENT));
                    }
                },
            };
            match item {
                Some(item) => {
                    if let (Emit::Failed(failure), Some(guard)) = (&item.1, &self.guard) {
                        guard.failed(&failure.message);
                    }
                    self.done = self.writer.render(item, &mut self.pending);
                }
                None => {
                    self.writer.finish(&mut self.pending);
                    if let Some(mut guard) = self.guard.take() {
                        guard.add_usage(&wire_usage(&self.writer.usage));
                    }
                    self.done = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spliced chunk is byte for byte what serialising the whole chunk gives.
    #[test]
    fn spliced_chunks_equal_whole_serialisation() {
        let tricky = r#"m"choices":["x\"#;
        for (id, model) in [
            ("chatcmpl-1", "gpt-5.5"),
            (tricky, tricky),
            ("chatcmpl-\u{e9}", "model \"quoted\""),
        ] {
            for include_usage in [false, true] {
                let writer =
                    ChunkWriter::new(id.into(), 1_700_000_000, model.into(), include_usage);
                for (delta, finish) in [
                    (
                        Delta {
                            content: Some("say \"hi\"\n".into()),
                            ..Delta::default()
                        },
                        None,
                    ),
                    (
                        Delta {
                            content: Some(String::new()),
                            ..Delta::default()
                        },
                        None,
                    ),
                    (
                        Delta {
                            content: Some("tail".into()),
                            ..Delta::default()
                        },
                        Some(FinishReason::Length),
                    ),
                    (
                        Delta {
                            role: Some("assistant"),
                            content: Some(String::new()),
                            refusal: Some(None),
                            ..Delta::default()
                        },
                        None,
                    ),
                    (
                        Delta {
                            reasoning_content: Some("think \u{1f600}".into()),
                            ..Delta::default()
                        },
                        None,
                    ),
                    (Delta::default(), Some(FinishReason::Stop)),
                ] {
                    for index in [0, 3, 17] {
                        let mut out = VecDeque::new();
                        writer.chunk(index, delta.clone(), finish, &mut out);
                        let choice = ChunkChoice {
                            index,
                            delta: delta.clone(),
                            logprobs: None,
                            finish_reason: finish,
                        };
                        let whole = sse_data(&ChatChunk {
                            choices: std::slice::from_ref(&choice),
                            ..writer.template()
                        });
                        assert_eq!(out[0], whole, "{id} {model} {include_usage}");
                    }
                }
            }
        }
    }
}
