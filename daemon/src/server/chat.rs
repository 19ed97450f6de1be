//! `POST /v1/chat/completions`: translate, send upstream, stream back as OpenAI does.
//!
//! Each choice owns its upstream stream; the response body owns the choices. A client that
//! disconnects drops the body, which drops every upstream request at once.

use std::collections::VecDeque;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

use super::auth::ClientKey;
use super::body::JsonBody;
use super::conversations::fingerprint;
use super::{ApiError, AppState};
use crate::accounts::{Account, AccountState, PickError, Quota};
use crate::auth::{AuthError, Need};
use crate::clock::unix_now;
use crate::models;
use crate::translate::chat::{
    AssistantMessage, ChatChunk, ChatCompletion, ChatRequest, ChatUsage, ChunkChoice,
    CompletionChoice, Delta, FinishReason, UsageField,
};
use crate::translate::held::Held;
use crate::translate::request::{self, Context};
use crate::translate::stream::{Assembler, Emit, Failure, Sink, StreamTranslator};
use crate::upstream::errors as upstream_errors;
use crate::upstream::wire::StreamEvent;
use crate::upstream::{EventStream, UpstreamError, WireBody};

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    body: JsonBody,
) -> Response {
    match handle(&state, client, body).await {
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
    session: String,
    wire: WireBody,
    n: u32,
    lite: bool,
    stream: bool,
    include_usage: bool,
    stop: Vec<String>,
    ignored: Vec<String>,
}

/// Parse, resolve, translate and encode: CPU work in proportion to the body.
fn prepare(state: &AppState, client: ClientKey, body: Bytes) -> Result<Prepared, ApiError> {
    let chat = parse(&body)?;
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
    let (system, first_user) = request::conversation_seed(&chat);
    let conversation = fingerprint(
        client.0,
        &resolved.model.slug,
        &system,
        &first_user,
        chat.prompt_cache_key.as_deref(),
    );
    let session = state.conversations().key_for(conversation);
    let mut translated = request::translate(
        chat,
        &Context {
            model: &resolved,
            config: &config.model,
            prompt_cache_key: session.clone(),
        },
    )?;
    translated.body.client_metadata = std::collections::BTreeMap::from([
        (
            "x-codex-installation-id",
            state.installation_id().to_owned(),
        ),
        ("session_id", session.clone()),
        ("thread_id", session.clone()),
        ("x-codex-window-id", format!("{session}:0")),
    ]);
    let wire = state.upstream().encode(&translated.body).map_err(|e| {
        ApiError::internal(format!(
            "The request could not be encoded for the backend: {e}"
        ))
    })?;
    Ok(Prepared {
        model: resolved.model.slug.clone(),
        session,
        wire,
        n: translated.n,
        lite: translated.lite,
        stream: translated.stream,
        include_usage: translated.include_usage,
        stop: translated.stop,
        ignored: translated.ignored,
    })
}

async fn handle(state: &AppState, client: ClientKey, body: JsonBody) -> Result<Response, ApiError> {
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
    let (account, streams, slot) = start_on_an_account(state, &prepared).await?;
    let Prepared {
        model,
        session,
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
    let config = state.config();
    let catalog = state.catalog();
    let quota = streams
        .first()
        .and_then(|s| Quota::from_headers(&s.headers, unix_now()));
    state.accounts().update(&account.id, |a| {
        a.requests += 1;
        if let Some(quota) = quota {
            a.quota = quota;
        }
    });
    state.accounts().bind(&session, &account.id);
    if let Some(announced) = streams
        .first()
        .and_then(|s| s.headers.get("x-models-etag"))
        .and_then(|v| v.to_str().ok())
        && catalog
            .etag
            .as_deref()
            .is_some_and(|held| held != announced)
    {
        // Only a live catalog is revalidated on a new ETag; a built-in one (the fetch failed)
        // waits for the hourly retry instead of refetching on every response.
        state.catalog_is_stale();
    }

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
    let recorder = UsageRecorder {
        state: state.clone(),
        account_id: account.id.clone(),
        model: model.clone(),
        _in_flight: in_flight,
    };
    let mut response = if stream {
        stream_response(choices, model, include_usage, keepalive, slot, recorder).await?
    } else {
        // The slot is released when the assembled response is ready.
        let response = complete(choices, model, recorder).await?;
        drop(slot);
        response
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

fn parse(body: &[u8]) -> Result<ChatRequest, ApiError> {
    // The plain parser first; only a body it refuses is parsed again to name the bad field.
    if let Ok(chat) = serde_json::from_slice(body) {
        return Ok(chat);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let chat = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(
                format!("We could not parse the JSON body of your request: {inner}"),
                None,
            )
        } else {
            ApiError::invalid(format!("Invalid request at '{path}': {inner}"), Some(&path))
        }
    })?;
    // The object reads fine, yet the plain parser refused the body: something follows it.
    de.end().map_err(|e| {
        ApiError::invalid(
            format!("We could not parse the JSON body of your request: {e}"),
            None,
        )
    })?;
    Ok(chat)
}

/// Why no account can serve: none signed in, signed out ones, or disabled ones.
fn none_usable(state: &AppState) -> ApiError {
    let accounts = state.accounts().all();
    let needs_login: Vec<String> = accounts
        .iter()
        .filter(|a| a.state == AccountState::NeedsLogin)
        .map(|a| match &a.login_reason {
            Some(reason) => format!("{} ({reason})", a.display_name()),
            None => a.display_name().to_owned(),
        })
        .collect();
    if !needs_login.is_empty() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "account_needs_login",
            format!(
                "The sign-in of {} has ended and no other account can serve; sign in again with `codexctl login`.",
                needs_login.join(", ")
            ),
        );
    }
    if !accounts.is_empty() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "accounts_disabled",
            "Every account is disabled; enable one with `codexctl accounts enable ID`.",
        );
    }
    no_account()
}

fn no_account() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "no_account",
        "No ChatGPT account is signed in to codex-proxy; add one with `codexctl login`.",
    )
}

pub fn upstream_error(error: UpstreamError) -> ApiError {
    match error {
        UpstreamError::Status {
            status,
            headers,
            body,
        } => upstream_errors::from_status(status, &headers, &body),
        UpstreamError::Transport(message) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unreachable",
            format!("Cannot reach the Codex backend: {message}"),
        ),
        UpstreamError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            "upstream_timeout",
            "The Codex backend did not answer in time.",
        ),
    }
}

/// Adds a finished response's usage to its account's per-model counters.
struct UsageRecorder {
    state: AppState,
    account_id: String,
    model: String,
    /// The request counts as in flight while its response is produced.
    _in_flight: super::InFlight,
}

impl UsageRecorder {
    fn record(self, usage: &ChatUsage) {
        // A response without usage (the backend may omit it) counts as a request only.
        if usage.total_tokens > 0 {
            self.state
                .accounts()
                .record_usage(&self.account_id, &self.model, usage);
        }
    }
}

/// Retries of a 5xx or network failure before anything reached the client.
const TRANSIENT_RETRIES: u32 = 2;

/// Starts the request's upstream streams on one account, moving to another while nothing has
/// reached the client: a usage limit cools the account down, a 401 gets one forced refresh and
/// one retry, a 5xx or network failure a bounded retry with backoff.
async fn start_on_an_account(
    state: &AppState,
    prepared: &Prepared,
) -> Result<(Account, Vec<EventStream>, OwnedSemaphorePermit), ApiError> {
    let session = prepared.session.as_str();
    let accounts = state.accounts();
    let config = state.config();
    let margin = config.auth.refresh_margin_seconds as i64;
    let mut tried: Vec<String> = Vec::new();
    let mut last_error: Option<ApiError> = None;
    let mut transient_retries = 0;
    loop {
        let candidate = match accounts.pick(Some(session), &tried, unix_now()) {
            Ok(account) => account,
            Err(PickError::AllLimited { earliest }) => {
                return Err(upstream_errors::usage_limit(earliest, None));
            }
            Err(PickError::NoneUsable) => {
                return Err(last_error.unwrap_or_else(|| none_usable(state)));
            }
        };
        // A slot on the account for as long as the response runs.
        let (candidate, slot) = take_slot(state, candidate, session, &tried).await?;
        // An account the backend keeps failing is left alone for a while.
        if let Err(open) = accounts.breakers().allow(&candidate) {
            last_error = Some(circuit_open(&candidate, &open));
            tried.push(candidate);
            continue;
        }
        let account = match state
            .refresher()
            .fresh(&candidate, Need::ValidFor(margin))
            .await
        {
            Ok(account) => account,
            Err(error) => {
                last_error = Some(auth_error(&error));
                tried.push(candidate);
                continue;
            }
        };
        let error = match start_streams(state, &account, prepared).await {
            Ok(streams) => {
                accounts.breakers().success(&account.id);
                return Ok((account, streams, slot));
            }
            Err(error) => error,
        };
        // 5xx answers (but an overloaded model's), broken connections and timeouts count
        // against the account's circuit; retries are spent only while it is closed.
        let backend_failure = match &error {
            UpstreamError::Transport(_) | UpstreamError::Timeout => true,
            UpstreamError::Status { status, body, .. } => {
                status.is_server_error() && !upstream_errors::is_overloaded(body)
            }
        };
        if backend_failure {
            let may_retry = accounts.breakers().may_retry(&account.id);
            if let Some(open_for) = accounts.breakers().failure(&account.id, &error.to_string()) {
                tracing::warn!(
                    account = %account.display_name(),
                    "the Codex backend failed {} requests in a row on this account ({error}); \
                     holding off for {} s",
                    crate::accounts::breaker::THRESHOLD,
                    open_for.as_secs()
                );
                last_error = Some(upstream_error(error));
                tried.push(account.id);
                continue;
            }
            if may_retry && transient_retries < TRANSIENT_RETRIES {
                transient_retries += 1;
                backoff(transient_retries).await;
                continue;
            }
            return Err(upstream_error(error));
        }
        match error {
            UpstreamError::Status { status, .. } if status == StatusCode::UNAUTHORIZED => {
                // The backend rejected a token we thought valid: refresh once, retry once.
                let stale = account.tokens.access_token.expose().to_owned();
                match state
                    .refresher()
                    .fresh(&account.id, Need::Replacing(&stale))
                    .await
                {
                    Ok(refreshed) => match start_streams(state, &refreshed, prepared).await {
                        Ok(streams) => return Ok((refreshed, streams, slot)),
                        Err(error) => last_error = Some(upstream_error(error)),
                    },
                    Err(error) => last_error = Some(auth_error(&error)),
                }
                tried.push(account.id);
            }
            UpstreamError::Status {
                status,
                ref headers,
                ref body,
            } if status == StatusCode::TOO_MANY_REQUESTS
                && upstream_errors::is_usage_limit(body) =>
            {
                let now = unix_now();
                let until = upstream_errors::usage_limit_resets_at(body)
                    .filter(|t| *t > now)
                    .unwrap_or(now + config.auth.rate_limit_backoff_seconds as i64);
                let quota = Quota::from_headers(headers, now);
                accounts.update(&account.id, |a| {
                    a.cooldown_until = Some(until);
                    if let Some(quota) = quota {
                        a.quota = quota;
                    }
                });
                tracing::warn!(
                    account = %account.display_name(),
                    "usage limit reached; cooling down until {}",
                    crate::clock::utc_clock(until, now)
                );
                if let Err(e) = accounts.persist().await {
                    tracing::error!("{e}");
                }
                last_error = Some(upstream_error(error));
                tried.push(account.id);
            }
            // An overloaded model is not retried: the official client does not either.
            other => return Err(upstream_error(other)),
        }
    }
}

/// The error for an account whose circuit is open (when no other account could serve).
fn circuit_open(id: &str, open: &crate::accounts::breaker::Open) -> ApiError {
    let seconds = open.retry_in.as_secs().max(1);
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream_error",
        "upstream_unavailable",
        format!(
            "The Codex backend failed the last {} requests on account {id} ({}); codex-proxy \
             holds off for {seconds} s before trying it again.",
            open.failures, open.last_error
        ),
    )
    .retry_after(seconds)
}

/// A request slot on `candidate`, or — when it is full — on another usable account with one
/// free; otherwise waits in line on `candidate` for up to `queue_timeout_seconds`.
async fn take_slot(
    state: &AppState,
    candidate: String,
    session: &str,
    tried: &[String],
) -> Result<(String, OwnedSemaphorePermit), ApiError> {
    let accounts = state.accounts();
    if let Ok(slot) = accounts.slots(&candidate).try_acquire_owned() {
        return Ok((candidate, slot));
    }
    let mut others: Vec<String> = tried.to_vec();
    others.push(candidate.clone());
    while let Ok(other) = accounts.pick(Some(session), &others, unix_now()) {
        if let Ok(slot) = accounts.slots(&other).try_acquire_owned() {
            return Ok((other, slot));
        }
        others.push(other);
    }
    let wait = Duration::from_secs(state.config().auth.queue_timeout_seconds);
    match tokio::time::timeout(wait, accounts.slots(&candidate).acquire_owned()).await {
        Ok(Ok(slot)) => Ok((candidate, slot)),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "queue_timeout",
            format!(
                "Every account is busy ({} requests each at most); waited {} s for a free slot. \
                 Try again, or raise [auth] max_concurrent_per_account.",
                accounts.slots_per_account(),
                wait.as_secs()
            ),
        )
        .retry_after(1)),
    }
}

/// 200 ms, 400 ms, … with ordinary jitter.
async fn backoff(attempt: u32) {
    let base = 200u64 << attempt.saturating_sub(1).min(6);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % (base / 5 + 1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// n upstream requests at once on one account; the first failure cancels the others.
async fn start_streams(
    state: &AppState,
    account: &Account,
    prepared: &Prepared,
) -> Result<Vec<EventStream>, UpstreamError> {
    let starts = (0..prepared.n).map(|_| {
        state
            .upstream()
            .responses(account, &prepared.session, prepared.lite, &prepared.wire)
    });
    futures_util::future::try_join_all(starts).await
}

fn auth_error(error: &AuthError) -> ApiError {
    match error {
        AuthError::NeedsLogin { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "account_needs_login",
            error.to_string(),
        ),
        AuthError::Transient { .. } | AuthError::Gone(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "token_refresh_failed",
            error.to_string(),
        ),
    }
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
    recorder: UsageRecorder,
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
            return Err(upstream_errors::from_failure(failure));
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
    recorder.record(&usage);
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
    slot: OwnedSemaphorePermit,
    recorder: UsageRecorder,
) -> Result<Response, ApiError> {
    let count = choices.len() as u32;
    let mut merged: SelectAll<BoxStream<'static, (u32, Emit)>> =
        stream::select_all(choices.into_iter().map(Choice::into_stream));

    // Until something reaches the client, a failure is still an HTTP error.
    let first = match tokio::time::timeout(keepalive, merged.next()).await {
        Ok(Some((_, Emit::Failed(failure)))) => {
            return Err(upstream_errors::from_failure(&failure));
        }
        Ok(first) => first,
        Err(_elapsed) => None,
    };

    let writer = ChunkWriter::new(completion_id(None), unix_now(), model, include_usage);
    let mut pending = VecDeque::new();
    if first.is_none() {
        pending.push_back(Bytes::from_static(KEEPALIVE_COMMENT));
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
        _slot: slot,
        recorder: Some(recorder),
    };
    let stream = stream::unfold(body, |mut body| async move {
        let bytes = body.next().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(bytes), body))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
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
                out.push_back(sse_data(
                    &upstream_errors::from_failure(&failure).body_json(),
                ));
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

const KEEPALIVE_COMMENT: &[u8] = b": keepalive\n\n";

struct SseBody {
    keepalive: Duration,
    merged: SelectAll<BoxStream<'static, (u32, Emit)>>,
    first: Option<(u32, Emit)>,
    writer: ChunkWriter,
    pending: VecDeque<Bytes>,
    done: bool,
    /// The account's request slot, held until the client has the whole stream (or left).
    _slot: OwnedSemaphorePermit,
    /// Counts the usage once the stream is complete.
    recorder: Option<UsageRecorder>,
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
                    Err(_silence) => return Some(Bytes::from_static(KEEPALIVE_COMMENT)),
                },
            };
            match item {
                Some(item) => self.done = self.writer.render(item, &mut self.pending),
                None => {
                    self.writer.finish(&mut self.pending);
                    if let Some(recorder) = self.recorder.take() {
                        recorder.record(&self.writer.usage);
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
