//! The Responses WebSocket (`GET /v1/responses` and `/backend-api/codex/responses` with an
//! Upgrade), as the Codex CLI's WebSocket transport speaks it (codex-protocol.md §5.4): the API
//! key in the handshake, one `response.create` text frame per turn, the events back as text
//! frames, turns one after another on a connection, `previous_response_id` across the turns of a
//! connection, `generate: false` (a prewarm) answered with an empty completed response, errors
//! as the backend wraps them, pings while the backend is silent, a clean close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::json;

use super::auth::ClientKey;
use super::body::MAX_BODY_BYTES;
use super::responses::{Keeper, Watch, prepare_parsed, start_turn};
use super::{ApiError, AppState};
use crate::clock::unix_now;
use crate::engine;
use crate::engine::store::{ResponseStore, StoredResponse};
use crate::requests::{Finished, Observed};
use crate::translate::responses as rewrite;

/// What one connection keeps of its own responses (for `previous_response_id` across turns).
/// A chain whose start was forgotten is answered `previous_response_not_found`, on which the
/// Codex CLI sends the whole input again; so this stays small.
const CONNECTION_STORE_BYTES: usize = 16 << 20;
/// A connection with no turn for this long is closed (the backend's own sockets last 60 min;
/// the Codex CLI opens a new one when its socket is gone).
const IDLE_CLOSE: Duration = Duration::from_secs(3600);

pub async fn upgrade(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    uri: axum::http::Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let path = uri.path().to_owned();
    ws.max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| serve(state, client, path, socket))
}

/// One turn's entry in the request log: each `response.create` is a request of its own.
struct TurnRecord {
    observed: Observed,
    started: Instant,
    first_byte: Option<Instant>,
}

impl TurnRecord {
    fn finish(self, state: &AppState, path: &str, status: u16, error: Option<String>) {
        state.requests().finish(
            &self.observed,
            Finished {
                method: "WS",
                path,
                status,
                started: self.started,
                first_byte: self.first_byte,
                error,
            },
        );
    }
}

async fn serve(state: AppState, client: ClientKey, path: String, mut socket: WebSocket) {
    let local = Arc::new(ResponseStore::new(
        CONNECTION_STORE_BYTES,
        // The connection's lifetime bounds it; the backend closes its sockets after 60 min.
        24 * 3600,
    ));
    loop {
        let message = match tokio::time::timeout(IDLE_CLOSE, socket.recv()).await {
            Ok(Some(Ok(message))) => message,
            // Gone, or broken: nothing to answer.
            Ok(Some(Err(_)) | None) => return,
            Err(_idle) => {
                let _ = socket
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: axum::extract::ws::close_code::NORMAL,
                        reason: Utf8Bytes::from_static("idle for 60 minutes"),
                    })))
                    .await;
                return;
            }
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let _ = send_error(
                    &mut socket,
                    &ApiError::invalid("Binary frames are not supported; send JSON text.", None),
                )
                .await;
                continue;
            }
            Message::Close(_) => return,
            // Pongs are answered by the library; a pong of ours needs nothing.
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let mut record = TurnRecord {
            observed: Observed::default(),
            started: Instant::now(),
            first_byte: None,
        };
        let outcome = turn(
            &state,
            client,
            &local,
            &mut socket,
            text.as_bytes(),
            &mut record,
        )
        .await;
        match outcome {
            Ok(flow) => {
                record.finish(&state, &path, 200, None);
                if matches!(flow, Flow::Closed) {
                    return;
                }
            }
            Err(error) => {
                record.finish(
                    &state,
                    &path,
                    error.status.as_u16(),
                    Some(error.message.clone()),
                );
                if send_error(&mut socket, &error).await.is_err() {
                    return;
                }
            }
        }
    }
}

enum Flow {
    Continue,
    Closed,
}

/// One `response.create`: run it and send its events.
async fn turn(
    state: &AppState,
    client: ClientKey,
    local: &Arc<ResponseStore>,
    socket: &mut WebSocket,
    frame: &[u8],
    record: &mut TurnRecord,
) -> Result<Flow, ApiError> {
    let mut object = rewrite::parse(frame)?;
    match object.remove("type").map(|t| t.get().to_owned()).as_deref() {
        Some(r#""response.create""#) => {}
        other => {
            return Err(ApiError::invalid(
                format!(
                    "Unsupported message type {}: send {{\"type\": \"response.create\", …}}.",
                    other.unwrap_or("(none)")
                ),
                Some("type"),
            ));
        }
    }
    let generate = object.remove("generate");
    // Every turn on a socket streams.
    object.set("stream", crate::translate::raw::raw("true"));
    let head = rewrite::head(&object)?;
    let model = head.model.clone().unwrap_or_default();
    let mut prepared = prepare_parsed(state, client, object, &head, Some(local), false)?;
    if generate.is_some_and(|g| g.get() == "false") {
        record.first_byte = Some(Instant::now());
        return prewarm(socket, local, prepared, &model).await;
    }
    prepared.observed = Some(record.observed.clone());
    let keepalive = Duration::from_secs(state.config().server.keepalive_seconds);
    let mut turn = start_turn(
        state,
        &mut prepared,
        engine::Call::Responses,
        keepalive,
        state.track_request(),
    )
    .await?;
    let Some(mut events) = turn.streams.pop() else {
        return Err(ApiError::internal("the engine started no response"));
    };
    let keeper = Keeper {
        state: state.clone(),
        keep: prepared.keep,
        local: Some(local.clone()),
        account: turn.account.id.clone(),
        conversation: prepared.conversation,
        session: prepared.session,
        previous: prepared.previous,
        input: prepared.input,
    };
    drop(prepared.wire);
    // The pool's quota first, as the backend sends its account's: the Codex CLI's status line.
    let (pool, plan) = state.accounts().pooled_quota(unix_now());
    if let Some(frame) = pool.rate_limits_frame(plan.as_deref().unwrap_or("plus"))
        && socket
            .send(Message::Text(Utf8Bytes::from(frame.to_string())))
            .await
            .is_err()
    {
        return Ok(Flow::Closed);
    }
    let mut watch = Watch::default();
    loop {
        tokio::select! {
            read = tokio::time::timeout(keepalive, events.next()) => match read {
                Err(_silence) => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return Ok(Flow::Closed);
                    }
                }
                Ok(Some(Ok(data))) => {
                    if watch.observe(data).is_none() {
                        continue;
                    }
                    let text = String::from_utf8_lossy(data).into_owned();
                    record.first_byte.get_or_insert_with(Instant::now);
                    if socket.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                        // The client left: dropping the events ends the upstream request.
                        return Ok(Flow::Closed);
                    }
                    if watch.terminal.is_some() {
                        events.finish();
                        break;
                    }
                }
                Ok(Some(Err(error))) => {
                    let message = format!("The upstream stream broke: {error}");
                    turn.guard.failed(&message);
                    stream_error(socket, &message).await;
                    break;
                }
                Ok(None) => {
                    let message = "The upstream stream closed before the response completed.";
                    turn.guard.failed(message);
                    stream_error(socket, message).await;
                    break;
                }
            },
            // One turn at a time: while it runs, the client may only close.
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(Flow::Closed),
                Some(Ok(_)) => {
                    stream_error(socket, "A response is already in progress on this connection; \
                        send the next response.create after its response.completed.").await;
                }
            },
        }
    }
    if let Some(usage) = &watch.usage {
        turn.guard.add_usage(usage);
    }
    if let Some(failure) = &watch.failure {
        turn.guard.failed(&failure.message);
    }
    drop(turn.guard);
    if watch.failure.is_none() && watch.terminal.is_some() {
        let response = watch.response();
        let id = watch.id.clone();
        keeper.keep(id, std::mem::take(&mut watch.output), response);
    }
    Ok(Flow::Continue)
}

/// `generate: false`: the client warms the connection up; nothing is generated, and the
/// answer is an empty completed response (which it waits for). Its input is kept: the next
/// turn names it as `previous_response_id` and sends only what is new.
async fn prewarm(
    socket: &mut WebSocket,
    local: &ResponseStore,
    prepared: super::responses::Prepared,
    model: &str,
) -> Result<Flow, ApiError> {
    let id = format!("resp_{}", uuid::Uuid::new_v4().simple());
    let response = json!({
        "id": id, "object": "response", "created_at": unix_now(), "status": "completed",
        "model": model, "output": [], "usage": {"input_tokens": 0, "output_tokens": 0,
        "total_tokens": 0, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0}},
    });
    let mut in_progress = response.clone();
    in_progress["status"] = json!("in_progress");
    let now = unix_now();
    local.put(
        StoredResponse {
            id: id.clone(),
            created_at: now,
            // No account made it: the next turn goes where the conversation goes.
            account: String::new(),
            conversation: prepared.conversation,
            session: prepared.session,
            previous: prepared.previous,
            input: prepared.input,
            output: Vec::new(),
            response: crate::translate::raw::to_raw(&response),
        },
        now,
    );
    for (sequence, (kind, body)) in [
        ("response.created", in_progress),
        ("response.completed", response),
    ]
    .into_iter()
    .enumerate()
    {
        let event = json!({"type": kind, "sequence_number": sequence, "response": body});
        if socket
            .send(Message::Text(Utf8Bytes::from(event.to_string())))
            .await
            .is_err()
        {
            return Ok(Flow::Closed);
        }
    }
    Ok(Flow::Continue)
}

/// An error before the turn's first event, wrapped as the backend wraps them (§5.4): the
/// status and the error body, which the Codex CLI treats like an HTTP answer.
async fn send_error(socket: &mut WebSocket, error: &ApiError) -> Result<(), axum::Error> {
    let mut headers = serde_json::Map::new();
    if let Some(seconds) = error.retry_after {
        headers.insert("retry-after".into(), json!(seconds.to_string()));
    }
    let frame = json!({
        "type": "error",
        "status": error.status.as_u16(),
        "error": {
            "type": error.kind,
            "code": error.code,
            "message": error.message,
            "param": error.param,
        },
        "headers": headers,
    });
    socket
        .send(Message::Text(Utf8Bytes::from(frame.to_string())))
        .await
}

/// A stream that broke after its first event: an `error` event, as over SSE.
async fn stream_error(socket: &mut WebSocket, message: &str) {
    let frame =
        json!({"type": "error", "code": "upstream_error", "message": message, "param": null});
    let _ = socket
        .send(Message::Text(Utf8Bytes::from(frame.to_string())))
        .await;
}
