//! `POST /v1/responses` (stream and non-stream), `GET` / `DELETE /v1/responses/{id}`: OpenAI's
//! Responses API as a faithful pass-through to the backend (see [`crate::translate::responses`]),
//! on the engine like every surface. The backend's events go back as they came, each with its
//! `event:` line; the daemon only watches them for the output items, the usage and the end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::auth::ClientKey;
use super::body::JsonBody;
use super::{ApiError, AppState, history};
use crate::clock::unix_now;
use crate::engine::store::{Missing, ResponseStore, StoredResponse, item_id_of};
use crate::engine::{self, ConversationId, TurnGuard, TurnRequest, fingerprint, named};
use crate::models;
use crate::requests::Observed;
use crate::translate::raw::{RawObject, to_raw};
use crate::translate::responses::{self as rewrite, Context};
use crate::upstream::wire::{Failure, Usage, leading_type};
use crate::upstream::written::Written;
use crate::upstream::{EventStream, WireBody};

/// Bodies above this size are rewritten and encoded off the async workers.
const OFF_WORKER_BYTES: usize = 256 << 10;

pub async fn create(
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

/// A request made ready for the backend.
pub(super) struct Prepared {
    pub model: String,
    pub conversation: ConversationId,
    pub session: String,
    pub wire: WireBody,
    pub lite: bool,
    pub stream: bool,
    /// Kept in the daemon's store (`store` true, OpenAI's default).
    pub keep: bool,
    pub previous: Option<String>,
    pub prefer: Option<String>,
    pub input: Vec<Box<RawValue>>,
    pub ignored: Vec<String>,
    /// The body before encoding, kept while it replays encrypted reasoning (see [`start_turn`]).
    pub json: Option<Bytes>,
    /// The request as the request log observes it.
    pub observed: Option<Observed>,
}

impl Prepared {
    /// The turn the engine runs for this request.
    pub(super) fn turn(&self, call: engine::Call, first_event_within: Duration) -> TurnRequest<'_> {
        TurnRequest {
            conversation: self.conversation,
            session: &self.session,
            wire: &self.wire,
            lite: self.lite,
            fan_out: 1,
            model: &self.model,
            prefer: self.prefer.as_deref(),
            first_event_within,
            call,
            observed: self.observed.as_ref(),
        }
    }
}

fn prepare(state: &AppState, client: ClientKey, body: &[u8]) -> Result<Prepared, ApiError> {
    if body.len() >= history::KEEP_FROM
        && let Some(prepared) = prepare_outlined(state, client, body)?
    {
        return Ok(prepared);
    }
    let object = rewrite::parse(body)?;
    let head = rewrite::head(&object)?;
    prepare_parsed(state, client, object, &head, None, false)
}

/// What a conversation's rewritten items so far are kept with, to continue from.
#[derive(Clone, Default)]
struct Continued {
    /// Its items make the Responses-Lite layout (an `additional_tools` item).
    lite: bool,
}

/// Responses requests digested as written, but for `client_metadata`, by its entries in the
/// order of their keys: the Codex CLI writes it from a hash map, its keys in another order
/// every request (what the backend is sent is the request's own, as written).
struct AsSent;

impl history::Reading for AsSent {
    fn member(&self, name: &str, raw: &RawValue, digest: &mut xxhash_rust::xxh3::Xxh3) {
        use std::hash::Hash;
        name.hash(digest);
        let entries = (name == "client_metadata")
            .then(|| {
                serde_json::from_str::<
                    std::collections::BTreeMap<std::borrow::Cow<'_, str>, &RawValue>,
                >(raw.get())
                .ok()
            })
            .flatten();
        match entries {
            Some(entries) => {
                1u8.hash(digest);
                for (key, value) in entries {
                    (key.as_ref(), value.get()).hash(digest);
                }
            }
            None => (0u8, raw.get()).hash(digest),
        }
    }
}

/// A large request, read in outline (see [`history`]): when it continues the one kept for its
/// conversation, only its new items are read and rewritten, and the kept items go on as they
/// were written; either way its items are kept for the next turn. Only the plain case: a
/// request that continues no stored response (`previous_response_id`) and references no item
/// (an `item_reference` is resolved from the store as it is at the time). `None` leaves the
/// request to the whole reading, which says what is wrong, if anything.
fn prepare_outlined(
    state: &AppState,
    client: ClientKey,
    body: &[u8],
) -> Result<Option<Prepared>, ApiError> {
    const SURFACE: &str = "responses";
    if memchr::memmem::find(body, br#""item_reference""#).is_some() {
        return Ok(None);
    }
    let Some(outline) = history::outline(body, "input", &AsSent) else {
        return Ok(None);
    };
    let first_item = outline
        .history
        .first()
        .map(|item| item.get().to_owned())
        .unwrap_or_default();
    let key = outline.key(client.0, SURFACE, "");
    let mut tail: Vec<Box<RawValue>> = Vec::new();
    let Some(history::Resumed {
        request: object,
        translator: earlier,
        kept,
        keeping,
    }) = outline.resume::<RawObject, _, Continued>(state, key, SURFACE, |_, items| {
        tail = items;
    })
    else {
        return Ok(None);
    };
    let mut head = rewrite::head(&object)?;
    if head.previous_response_id.is_some() {
        return Ok(None);
    }
    head.first_item = first_item;
    let (config, catalog) = (state.config(), state.catalog());
    let resolved = resolve(&config, &catalog, &head)?;
    let (conversation, session) = conversation(state, client, &head, None, &resolved.model.slug);
    let keep = head.store && state.responses().enabled();
    let first = kept.as_ref().map_or(0, |kept| kept.messages.len());
    let parts = rewrite::rewrite_parts(
        object,
        Some((first, tail)),
        &Context {
            model: &resolved.model.slug,
            suffix_effort: resolved.suffix_effort.as_deref(),
            history: Vec::new(),
            session: &session,
            keep,
            compact: false,
        },
        // No item is a reference (above).
        &|_| None,
    )?;
    // The rewritten members and new items, the kept items before them.
    let members: Vec<(&str, &str)> = parts
        .members
        .0
        .iter()
        .filter(|(name, _)| name != "input")
        .map(|(name, raw)| (name.as_str(), raw.get()))
        .collect();
    let items: Vec<&str> = parts.input.iter().map(|item| item.get()).collect();
    let earlier_items = kept.map(|kept| kept.items);
    let written = Written::from_raw(&members, &items, earlier_items.as_ref())
        .map_err(ApiError::not_encoded)?;
    let wire = state.upstream().encode_written(written);
    let lite = earlier.lite || parts.lite;
    // The store keeps what the request sent: all its items (it continues no stored response).
    let input = match wire.written() {
        Some(written) if keep => written
            .items()
            .iter()
            .filter_map(|item| RawValue::from_string(item.to_owned()).ok())
            .collect(),
        _ => Vec::new(),
    };
    keeping.keep(
        state,
        (config, catalog),
        Continued { lite },
        &wire,
        conversation,
    );
    Ok(Some(Prepared {
        model: resolved.model.slug.clone(),
        conversation,
        session,
        wire,
        lite,
        stream: head.stream,
        keep,
        prefer: None,
        previous: None,
        input,
        ignored: parts.ignored,
        // A retry without reasoning takes it out of the written items (see `start_turn`).
        json: None,
        observed: None,
    }))
}

/// The model a request names (or the configured default).
fn resolve(
    config: &crate::config::Config,
    catalog: &models::Catalog,
    head: &rewrite::Head,
) -> Result<models::Resolved, ApiError> {
    models::resolve(
        head.model.as_deref(),
        catalog,
        &config.model.aliases,
        &config.model.default,
    )
}

/// The conversation a request belongs to, and its session key: named by its
/// `prompt_cache_key`, else the chain it continues, else a fingerprint of its start.
fn conversation(
    state: &AppState,
    client: ClientKey,
    head: &rewrite::Head,
    previous: Option<&StoredResponse>,
    model: &str,
) -> (ConversationId, String) {
    match (&head.prompt_cache_key, previous) {
        (Some(key), _) => {
            let id = named(client.0, key);
            (id, state.conversations().open(id, Some(key)))
        }
        (None, Some(previous)) => (previous.conversation, previous.session.clone()),
        (None, None) => {
            let id = fingerprint(
                client.0,
                model,
                head.instructions.as_deref().unwrap_or_default(),
                &head.first_item,
                None,
            );
            (id, state.conversations().key_for(id))
        }
    }
}

/// As [`prepare`], for a parsed request; `local` holds a WebSocket connection's own responses
/// (found first, and always kept there).
pub(super) fn prepare_parsed(
    state: &AppState,
    client: ClientKey,
    object: RawObject,
    head: &rewrite::Head,
    local: Option<&ResponseStore>,
    compact: bool,
) -> Result<Prepared, ApiError> {
    let (config, catalog) = (state.config(), state.catalog());
    let resolved = resolve(&config, &catalog, head)?;
    let now = unix_now();
    let global = state.responses();
    // The chain this request continues: its items, account and conversation.
    let (history, previous) = match &head.previous_response_id {
        Some(id) => {
            let not_found = || {
                let mut error = ApiError::invalid(
                    format!(
                        "Previous response with id '{}' not found.",
                        crate::api_error::quoted(id)
                    ),
                    Some("previous_response_id"),
                );
                error.code = Some("previous_response_not_found");
                error
            };
            let found = match local.and_then(|l| l.get(id, now)) {
                Some(found) => found,
                None => global.get(id, now).ok_or_else(not_found)?,
            };
            // A connection's chain may begin in the daemon's store: what the connection does
            // not hold comes from there.
            let history = match local {
                Some(local) => match local.partial_history(id, now) {
                    (items, None) => items,
                    (items, Some(earlier)) => {
                        let mut all = global
                            .history(&earlier, now)
                            .map_err(|Missing::Response(_)| not_found())?;
                        all.extend(items);
                        all
                    }
                },
                None => global
                    .history(id, now)
                    .map_err(|Missing::Response(_)| not_found())?,
            };
            (history, Some(found))
        }
        None => (Vec::new(), None),
    };
    let (conversation, session) = conversation(
        state,
        client,
        head,
        previous.as_deref(),
        &resolved.model.slug,
    );
    let keep = head.store && global.enabled() && !compact;
    // Encrypted reasoning comes back whenever the response is kept anywhere.
    let replayable = keep || local.is_some_and(ResponseStore::enabled);
    let rewritten = rewrite::rewrite(
        object,
        Context {
            model: &resolved.model.slug,
            suffix_effort: resolved.suffix_effort.as_deref(),
            history,
            session: &session,
            keep: replayable && !compact,
            compact,
        },
        &|item_id| {
            local
                .and_then(|l| l.item(item_id, now))
                .or_else(|| global.item(item_id, now))
        },
    )?;
    // Reasoning replayed from an account the turn may not land on: kept to send again without.
    let json = memchr::memmem::find(&rewritten.body, b"encrypted_content")
        .map(|_| Bytes::copy_from_slice(&rewritten.body));
    let wire = state
        .upstream()
        .encode_json(rewritten.body)
        .map_err(ApiError::not_encoded)?;
    Ok(Prepared {
        model: resolved.model.slug.clone(),
        conversation,
        session,
        wire,
        lite: rewritten.lite,
        stream: head.stream,
        keep,
        prefer: previous
            .as_ref()
            .map(|p| p.account.clone())
            .filter(|a| !a.is_empty()),
        previous: head.previous_response_id.clone(),
        input: rewritten.input,
        ignored: rewritten.ignored,
        json,
        observed: None,
    })
}

/// Starts the turn on the engine. Encrypted reasoning is bound to the account that made it: a
/// conversation that had to move (its account out of quota) finds the new account refusing
/// it (400 `invalid_encrypted_content`), and is then sent again, once, without its reasoning
/// items — the model loses what it had worked out, the conversation goes on. The conversation
/// remembers how far its history went then: its later turns leave the reasoning out up to
/// there before they go, and keep what the new account made after.
pub(super) async fn start_turn(
    state: &AppState,
    prepared: &mut Prepared,
    call: engine::Call,
    within: Duration,
    in_flight: crate::app::InFlight,
) -> Result<engine::Turn, ApiError> {
    let conversations = state.conversations();
    // The account the conversation runs on is out of quota (or signed out): another takes the
    // turn, which cannot read the reasoning — it goes without at once, not after a refusal.
    let bound = prepared
        .prefer
        .clone()
        .or_else(|| conversations.account(prepared.conversation));
    let moving = bound.is_some_and(|id| !state.accounts().takes_turns(&id, unix_now()));
    let before = if moving {
        usize::MAX
    } else {
        conversations.moved_at(prepared.conversation)
    };
    let mut moved = None;
    if before > 0
        && let Some((stripped, items)) = without_reasoning(state, prepared, before)?
    {
        prepared.wire = stripped;
        moved = moving.then_some(items);
    }
    let error = match engine::start(state, &prepared.turn(call, within), in_flight).await {
        Ok(turn) => {
            // Started: the copy kept for a second try would only hold memory while it streams.
            prepared.json = None;
            if let Some(items) = moved {
                conversations.moved(prepared.conversation, items);
            }
            return Ok(turn);
        }
        Err(error) => error,
    };
    let foreign = matches!(
        &error,
        engine::EngineError::Upstream(crate::upstream::errors::UpstreamFailure::Invalid {
            code: Some("invalid_encrypted_content"),
            ..
        })
    );
    if !foreign {
        prepared.json = None;
        return Err(error.into());
    }
    let Some((stripped, items)) = without_reasoning(state, prepared, usize::MAX)? else {
        prepared.json = None;
        return Err(error.into());
    };
    prepared.json = None;
    tracing::info!(
        "the conversation moved to an account that cannot read its reasoning; sending it \
         again without the reasoning items"
    );
    prepared.wire = stripped;
    // Known now, whatever becomes of the second try (a client gone while it starts included):
    // the next turn leaves that reasoning out before it goes.
    conversations.moved(prepared.conversation, items);
    Ok(engine::start(state, &prepared.turn(call, within), state.track_request()).await?)
}

/// The prepared body without the reasoning among its first `before` items, encoded, and how
/// many items it has; `None` when there is none there. A body kept as JSON is kept so, for a
/// second pass.
fn without_reasoning(
    state: &AppState,
    prepared: &mut Prepared,
    before: usize,
) -> Result<Option<(WireBody, usize)>, ApiError> {
    let upstream = state.upstream();
    if let Some(written) = prepared.wire.written() {
        let items = written.items().len();
        return Ok(written
            .without_reasoning_before(before)
            .map(|written| (upstream.encode_written(written), items)));
    }
    let Some((json, items)) = prepared
        .json
        .as_ref()
        .and_then(|json| rewrite::without_reasoning(json, before))
    else {
        return Ok(None);
    };
    let wire = upstream
        .encode_json(json.clone())
        .map_err(ApiError::not_encoded)?;
    prepared.json = Some(Bytes::from(json));
    Ok(Some((wire, items)))
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
        tokio::task::spawn_blocking(move || prepare(&owned, client, &bytes))
            .await
            .map_err(|e| ApiError::internal(format!("Preparing the request failed: {e}")))??
    } else {
        let prepared = prepare(state, client, &bytes)?;
        drop(bytes);
        prepared
    };
    let keepalive = Duration::from_secs(state.config().server.keepalive_seconds);
    let mut prepared = prepared;
    prepared.observed = observed;
    let turn = start_turn(
        state,
        &mut prepared,
        engine::Call::Responses,
        keepalive,
        in_flight,
    )
    .await?;
    let Prepared {
        wire,
        stream,
        keep,
        previous,
        input,
        ignored,
        conversation,
        session,
        ..
    } = prepared;
    drop(wire);
    drop(reservation);
    let Some(events) = turn.streams.into_iter().next() else {
        return Err(ApiError::internal("the engine started no response"));
    };
    let keeper = Keeper {
        state: state.clone(),
        keep,
        local: None,
        account: turn.account.id.clone(),
        conversation,
        session,
        previous,
        input,
    };
    let mut response = if stream {
        stream_response(events, turn.guard, keeper, keepalive)
    } else {
        complete(events, turn.guard, keeper).await?
    };
    if !ignored.is_empty()
        && let Ok(value) = HeaderValue::from_str(&ignored.join(", "))
    {
        response
            .headers_mut()
            .insert("x-codex-proxy-ignored-params", value);
    }
    // The pool's quota, as the backend reports one account's: a Codex CLI status line shows
    // what is left of the whole pool.
    let (pool, _) = state.accounts().pooled_quota(unix_now());
    for (name, value) in pool.headers() {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// What a finished response needs to be kept.
pub(super) struct Keeper {
    pub state: AppState,
    /// Kept in the daemon's store.
    pub keep: bool,
    /// A WebSocket connection's own store, which keeps every response of the connection.
    pub local: Option<Arc<ResponseStore>>,
    pub account: String,
    pub conversation: ConversationId,
    pub session: String,
    pub previous: Option<String>,
    pub input: Vec<Box<RawValue>>,
}

impl Keeper {
    pub(super) fn keep(
        self,
        id: Option<String>,
        output: Vec<Box<RawValue>>,
        response: Box<RawValue>,
    ) {
        let Some(id) = id else {
            return;
        };
        let now = unix_now();
        let stored =
            |input: Vec<Box<RawValue>>, output: Vec<Box<RawValue>>, response| StoredResponse {
                id: id.clone(),
                created_at: now,
                account: self.account.clone(),
                conversation: self.conversation,
                session: self.session.clone(),
                previous: self.previous.clone(),
                input,
                output,
                response,
            };
        match (&self.local, self.keep) {
            (Some(local), true) => {
                local.put(
                    stored(self.input.clone(), output.clone(), response.clone()),
                    now,
                );
                self.state
                    .responses()
                    .put(stored(self.input.clone(), output, response), now);
            }
            (Some(local), false) => local.put(stored(self.input.clone(), output, response), now),
            (None, true) => self
                .state
                .responses()
                .put(stored(self.input.clone(), output, response), now),
            (None, false) => {}
        }
    }
}

/// What the daemon reads of the events it passes on.
#[derive(Default)]
pub(super) struct Watch {
    pub output: Vec<Box<RawValue>>,
    /// The terminal event's type and `response` object.
    pub terminal: Option<(String, Box<RawValue>)>,
    pub id: Option<String>,
    pub usage: Option<Usage>,
    pub failure: Option<Failure>,
}

#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct ItemDone {
    item: Box<RawValue>,
}

#[derive(Deserialize)]
struct Terminal {
    response: Box<RawValue>,
}

#[derive(Deserialize, Default)]
struct Summary {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<crate::upstream::wire::ResponseError>,
}

impl Watch {
    /// The event's type; watches the events that matter. `None`: not an event.
    pub(super) fn observe(&mut self, data: &[u8]) -> Option<String> {
        let kind = match leading_type(data) {
            Some(kind) => kind.to_owned(),
            None => serde_json::from_slice::<Kind<'_>>(data)
                .ok()?
                .kind
                .into_owned(),
        };
        match kind.as_str() {
            "response.output_item.done" => {
                if let Ok(done) = serde_json::from_slice::<ItemDone>(data) {
                    self.output.push(done.item);
                }
            }
            "response.created" | "response.in_progress" if self.id.is_none() => {
                if let Ok(terminal) = serde_json::from_slice::<Terminal>(data) {
                    self.id = serde_json::from_str::<Summary>(terminal.response.get())
                        .ok()
                        .and_then(|s| s.id);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Ok(terminal) = serde_json::from_slice::<Terminal>(data) {
                    let summary: Summary =
                        serde_json::from_str(terminal.response.get()).unwrap_or_default();
                    self.id = summary.id.or(self.id.take());
                    self.usage = summary.usage;
                    if kind == "response.failed" {
                        let error = summary.error.unwrap_or_default();
                        self.failure = Some(Failure {
                            code: error.code,
                            message: error
                                .message
                                .unwrap_or_else(|| "The upstream response failed.".into()),
                            resets_at: error.resets_at,
                        });
                    }
                    self.terminal = Some((kind.clone(), terminal.response));
                }
            }
            _ => {}
        }
        Some(kind)
    }

    /// The response object a client is given whole: the terminal one, with the output items
    /// (when it came without them) and `output_text`.
    pub(super) fn response(&self) -> Box<RawValue> {
        let mut object: RawObject = self
            .terminal
            .as_ref()
            .and_then(|(_, r)| serde_json::from_str(r.get()).ok())
            .unwrap_or_default();
        let empty = object
            .get("output")
            .is_none_or(|o| o.get() == "[]" || o.get() == "null");
        if empty {
            object.set("output", to_raw(&self.output));
        }
        object.set("output_text", to_raw(&output_text(&self.output)));
        object.to_raw()
    }
}

/// The text of the output's messages, as the SDKs' `output_text` gives it.
fn output_text(items: &[Box<RawValue>]) -> String {
    #[derive(Deserialize)]
    struct Message {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        content: Vec<Part>,
    }
    #[derive(Deserialize)]
    struct Part {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        text: String,
    }
    let mut text = String::new();
    for item in items {
        if let Ok(message) = serde_json::from_str::<Message>(item.get())
            && message.kind == "message"
        {
            for part in message.content {
                if part.kind == "output_text" {
                    text.push_str(&part.text);
                }
            }
        }
    }
    text
}

/// Non-streamed: the whole response, read from the stream.
async fn complete(
    mut events: EventStream,
    mut guard: TurnGuard,
    keeper: Keeper,
) -> Result<Response, ApiError> {
    let mut watch = Watch::default();
    let mut broke = None;
    loop {
        match events.next().await {
            Some(Ok(data)) => {
                watch.observe(data);
                if watch.terminal.is_some() {
                    events.finish();
                    break;
                }
            }
            Some(Err(error)) => {
                broke = Some(error.to_string());
                break;
            }
            None => break,
        }
    }
    if let Some(usage) = &watch.usage {
        guard.add_usage(usage);
    }
    guard.release_slot();
    drop(guard);
    if let Some(failure) = &watch.failure {
        return Err(engine::stream_failure(failure));
    }
    if watch.terminal.is_none() {
        let message = match broke {
            Some(error) => format!("The upstream stream broke: {error}"),
            None => "The upstream stream closed before the response completed.".into(),
        };
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_error",
            message,
        ));
    }
    let response = watch.response();
    let body = Bytes::copy_from_slice(response.get().as_bytes());
    keeper.keep(
        watch.id.clone(),
        std::mem::take(&mut watch.output),
        response,
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Streamed: the backend's events as they come, each with its `event:` line; `: keepalive`
/// after every `keepalive` of silence; a stream that breaks ends with an `error` event.
fn stream_response(
    events: EventStream,
    guard: TurnGuard,
    keeper: Keeper,
    keepalive: Duration,
) -> Response {
    let body = Relay {
        events,
        keepalive,
        watch: Watch::default(),
        pending: VecDeque::new(),
        sent: 0,
        done: false,
        guard: Some(guard),
        keeper: Some(keeper),
    };
    super::sse::response(body)
}

struct Relay {
    events: EventStream,
    keepalive: Duration,
    watch: Watch,
    pending: VecDeque<Bytes>,
    /// Events passed on (the sequence number of an `error` event of ours).
    sent: u64,
    done: bool,
    /// The slot and the usage, until the response has ended.
    guard: Option<TurnGuard>,
    keeper: Option<Keeper>,
}

impl super::sse::Frames for Relay {
    fn next_frame(&mut self) -> impl Future<Output = Option<Bytes>> + Send {
        self.next()
    }
}

impl Relay {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.done {
                return None;
            }
            let read = tokio::time::timeout(self.keepalive, self.events.next()).await;
            match read {
                Err(_silence) => return Some(Bytes::from_static(super::sse::KEEPALIVE_COMMENT)),
                Ok(Some(Ok(data))) => {
                    let Some(kind) = self.watch.observe(data) else {
                        continue;
                    };
                    let mut frame = Vec::with_capacity(data.len() + kind.len() + 16);
                    frame.extend_from_slice(b"event: ");
                    frame.extend_from_slice(kind.as_bytes());
                    frame.extend_from_slice(b"\ndata: ");
                    frame.extend_from_slice(data);
                    frame.extend_from_slice(b"\n\n");
                    self.sent += 1;
                    if self.watch.terminal.is_some() {
                        self.events.finish();
                        self.end();
                    }
                    return Some(Bytes::from(frame));
                }
                Ok(Some(Err(error))) => {
                    self.error_event(&format!("The upstream stream broke: {error}"));
                    self.end();
                }
                Ok(None) => {
                    self.error_event("The upstream stream closed before the response completed.");
                    self.end();
                }
            }
        }
    }

    fn error_event(&mut self, message: &str) {
        if let Some(guard) = &self.guard {
            guard.failed(message);
        }
        let event = serde_json::json!({
            "type": "error",
            "code": "upstream_error",
            "message": message,
            "param": null,
            "sequence_number": self.sent,
        });
        self.pending
            .push_back(Bytes::from(format!("event: error\ndata: {event}\n\n")));
    }

    /// The response is over: count its usage, free the slot, keep it.
    fn end(&mut self) {
        self.done = true;
        if let Some(mut guard) = self.guard.take() {
            if let Some(usage) = &self.watch.usage {
                guard.add_usage(usage);
            }
            if let Some(failure) = &self.watch.failure {
                guard.failed(&failure.message);
            }
        }
        if let Some(keeper) = self.keeper.take()
            && self.watch.failure.is_none()
            && self.watch.terminal.is_some()
        {
            let response = self.watch.response();
            keeper.keep(
                self.watch.id.clone(),
                std::mem::take(&mut self.watch.output),
                response,
            );
        }
    }
}

/// `GET /v1/responses/{id}`: a kept response.
pub async fn retrieve(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.responses().get(&id, unix_now()) {
        Some(kept) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Bytes::copy_from_slice(kept.response.get().as_bytes()),
        )
            .into_response(),
        None => not_found(&id).into_response(),
    }
}

/// `GET /v1/responses/{id}/input_items`: what the kept response was given — its whole input, the
/// turns it continued included — as OpenAI lists it (`order` desc by default, `limit` 1–100,
/// `after` an item id).
pub async fn input_items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let now = unix_now();
    let store = state.responses();
    let Some(kept) = store.get(&id, now) else {
        return not_found(&id).into_response();
    };
    let mut items = match &kept.previous {
        Some(previous) => match store.history(previous, now) {
            Ok(items) => items,
            Err(Missing::Response(gone)) => {
                return ApiError::invalid(
                    format!(
                        "An earlier response of this conversation ({}) is no longer kept.",
                        crate::api_error::quoted(&gone)
                    ),
                    None,
                )
                .into_response();
            }
        },
        None => Vec::new(),
    };
    items.extend(kept.input.iter().cloned());
    let ascending = match query.get("order").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return ApiError::invalid(
                format!(
                    "Invalid 'order': '{}'. Use asc or desc.",
                    crate::api_error::quoted(other)
                ),
                Some("order"),
            )
            .into_response();
        }
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => {
            return ApiError::invalid("'limit' must be between 1 and 100.", Some("limit"))
                .into_response();
        }
    };
    if !ascending {
        items.reverse();
    }
    let ids: Vec<Option<String>> = items.iter().map(|item| item_id_of(item)).collect();
    let start = match query.get("after") {
        Some(after) => match ids
            .iter()
            .position(|id| id.as_deref() == Some(after.as_str()))
        {
            Some(at) => at + 1,
            None => {
                return ApiError::invalid(
                    format!(
                        "No item with id '{}' in this input.",
                        crate::api_error::quoted(after)
                    ),
                    Some("after"),
                )
                .into_response();
            }
        },
        None => 0,
    };
    let end = (start + limit).min(items.len());
    let page = items.get(start..end).unwrap_or_default();
    axum::Json(serde_json::json!({
        "object": "list",
        "data": page,
        "first_id": ids.get(start).cloned().flatten(),
        "last_id": end.checked_sub(1).and_then(|last| ids.get(last).cloned().flatten()),
        "has_more": end < items.len(),
    }))
    .into_response()
}

/// `DELETE /v1/responses/{id}`: forgets a kept response.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if state.responses().delete(&id) {
        axum::Json(serde_json::json!({"id": id, "object": "response", "deleted": true}))
            .into_response()
    } else {
        not_found(&id).into_response()
    }
}

fn not_found(id: &str) -> ApiError {
    let mut error = ApiError::invalid(
        format!(
            "Response with id '{}' not found.",
            crate::api_error::quoted(id)
        ),
        None,
    );
    error.status = StatusCode::NOT_FOUND;
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key a large body is kept under, and whether two bodies' members read alike.
    fn members(body: &str) -> u128 {
        history::outline(body.as_bytes(), "input", &AsSent)
            .unwrap()
            .key(0, "responses", "")
    }

    #[test]
    fn client_metadata_is_read_by_its_entries_whatever_their_order() {
        let body = |metadata: &str| {
            format!(
                r#"{{"model":"m","client_metadata":{metadata},"input":[{{"type":"message","role":"user","content":"a"}}]}}"#
            )
        };
        let one = members(&body(r#"{"turn_id":"t1","session_id":"s"}"#));
        assert_eq!(one, members(&body(r#"{"session_id":"s","turn_id":"t1"}"#)));
        assert_eq!(
            one,
            members(&body(r#"{ "session_id": "s", "turn_id": "t1" }"#))
        );
        assert_ne!(one, members(&body(r#"{"session_id":"s","turn_id":"t2"}"#)));
        assert_ne!(one, members(&body(r#"{"session_id":"s"}"#)));
        // Other members are read as written.
        assert_ne!(
            members(r#"{"model":"m","text":{"a":1,"b":2},"input":[]}"#),
            members(r#"{"model":"m","text":{"b":2,"a":1},"input":[]}"#)
        );
    }
}
