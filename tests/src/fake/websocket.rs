//! `GET /backend-api/codex/responses` as a WebSocket (§5.4), with the backend's
//! connection-scoped semantics: the handshake carries the auth and identity headers and
//! `OpenAI-Beta: responses_websockets=…`; each text frame is a `response.create`; answers are
//! the SSE events' JSON, one text frame each, after a `codex.rate_limits` frame; failures are
//! wrapped error frames (`{"type":"error","status":…,"error":…,"headers":…}`).
//!
//! A `previous_response_id` is known only on the connection whose turn produced it, and only
//! when that turn completed: its input and output then stand before the new items. A turn
//! runs on the account of the handshake's token, so reasoning from another account is refused
//! as over HTTP. Each turn is recorded (method `WS`, the frame as sent: a test sees what went
//! over the wire, `previous_response_id` and only the new items).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::record::HangupWatch;
use super::responses::{StreamTurn, TurnStart, start_turn};
use super::{Incoming, Rejection, Shared, gate};

/// The `OpenAI-Beta` value the handshake must carry.
pub const BETA: &str = "responses_websockets=2026-02-06";
/// The per-request Responses Lite flag travels in `client_metadata` on a socket.
const LITE_METADATA: &str = "ws_request_header_x_openai_internal_codex_responses_lite";

/// A completed turn the connection remembers: the whole input it had, and its output items.
struct Chained {
    input: Vec<Value>,
    output: Vec<Value>,
}

pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    method: Method,
    version: Version,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let req = Incoming {
        method,
        version,
        uri,
        headers,
        body: Bytes::new(),
    };
    let refused = shared.with(|inner| inner.websocket_refused);
    let admitted = if refused {
        Err(Rejection::detail(
            StatusCode::UPGRADE_REQUIRED,
            "WebSockets are not available; use HTTP",
        ))
    } else if req.header("openai-beta") != Some(BETA) {
        Err(Rejection::detail(
            StatusCode::BAD_REQUEST,
            format!("the handshake must carry OpenAI-Beta: {BETA}"),
        ))
    } else {
        gate::admit(&shared, &req)
    };
    if let Err(rejection) = admitted {
        // Only a refused handshake is a request of its own; an accepted one records its turns.
        let seq = shared.record(&req, None, None);
        shared.set_outcome(
            seq,
            rejection.status.as_u16(),
            Some(rejection.reason()),
            None,
        );
        return rejection.into_response();
    }
    shared.with(|inner| inner.websockets_opened += 1);
    ws.on_upgrade(move |socket| serve(shared, req, socket))
}

async fn serve(shared: Arc<Shared>, handshake: Incoming, mut socket: WebSocket) {
    if shared.with(|inner| inner.websocket_stall) {
        // Holds the socket open without reading until the client closes it or the fake stops.
        std::future::pending::<()>().await;
        return;
    }
    let mut chain: HashMap<String, Chained> = HashMap::new();
    let mut forgotten = shared.with(|inner| inner.websocket_forget);
    let mut served = 0usize;
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Text(_) = &message
            && shared
                .with(|inner| inner.websocket_turn_limit)
                .is_some_and(|limit| served >= limit)
        {
            let error = wrapped(
                400,
                "invalid_request_error",
                Some("websocket_connection_limit_reached"),
                "Responses websocket connection limit reached (60 minutes). Create a new websocket connection to continue.",
            );
            let _ = send(&mut socket, &error).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        served += 1;
        let forget = shared.with(|inner| inner.websocket_forget);
        if forget != forgotten {
            chain.clear();
            forgotten = forget;
        }
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let error = wrapped(
                    400,
                    "invalid_request_error",
                    None,
                    "binary frames are not accepted",
                );
                if send(&mut socket, &error).await.is_err() {
                    return;
                }
                continue;
            }
            Message::Close(_) => return,
            Message::Pong(_) => {
                shared.with(|inner| inner.websocket_pongs += 1);
                continue;
            }
            Message::Ping(_) => continue,
        };
        if shared.with(|inner| inner.websocket_ping)
            && socket
                .send(Message::Ping(Bytes::from_static(b"alive?")))
                .await
                .is_err()
        {
            return;
        }
        if !turn(
            &shared,
            &handshake,
            &mut chain,
            &mut socket,
            text.as_bytes(),
        )
        .await
        {
            return;
        }
    }
}

async fn send(socket: &mut WebSocket, value: &Value) -> Result<(), axum::Error> {
    socket
        .send(Message::Text(Utf8Bytes::from(value.to_string())))
        .await
}

/// A wrapped error frame, as the backend sends one for what would be an HTTP error.
fn wrapped(status: u16, kind: &str, code: Option<&str>, message: &str) -> Value {
    let mut error = json!({"type": kind, "message": message});
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    json!({"type": "error", "status": status, "error": error})
}

/// One `response.create`; `false` when the connection is over.
async fn turn(
    shared: &Arc<Shared>,
    handshake: &Incoming,
    chain: &mut HashMap<String, Chained>,
    socket: &mut WebSocket,
    frame: &[u8],
) -> bool {
    let mut req = Incoming {
        method: Method::from_bytes(b"WS").unwrap_or(Method::GET),
        version: handshake.version,
        uri: handshake.uri.clone(),
        headers: handshake.headers.clone(),
        body: Bytes::copy_from_slice(frame),
    };
    let sent: Option<Value> = serde_json::from_slice(frame).ok();
    let seq = shared.record(&req, sent.clone(), None);
    let refuse = |status: u16, message: &str, code: Option<&str>| {
        shared.set_outcome(seq, status, Some(message.to_owned()), None);
        wrapped(status, "invalid_request_error", code, message)
    };
    let Some(Value::Object(mut body)) = sent else {
        let error = refuse(400, "the frame is not a JSON object", None);
        return send(socket, &error).await.is_ok();
    };
    if body.remove("type").as_ref().and_then(Value::as_str) != Some("response.create") {
        let error = refuse(400, "the frame's type must be response.create", None);
        return send(socket, &error).await.is_ok();
    }
    let prewarm = body.remove("generate") == Some(Value::Bool(false));
    if let Some(previous) = body.remove("previous_response_id") {
        let known = previous.as_str().and_then(|id| chain.get(id));
        let Some(known) = known else {
            let message = format!("Previous response with id '{previous}' not found.");
            let error = refuse(400, &message, Some("previous_response_not_found"));
            return send(socket, &error).await.is_ok();
        };
        let new = match body.remove("input") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let mut input = known.input.clone();
        input.extend(known.output.iter().cloned());
        input.extend(new);
        let resolved = Value::Array(input);
        shared.with(|inner| {
            if let Some(record) = inner.records.get_mut(seq) {
                record.resolved_input = Some(resolved.clone());
            }
        });
        body.insert("input".into(), resolved);
    }
    if metadata_flag(&body, LITE_METADATA) {
        req.headers.insert(
            "x-openai-internal-codex-responses-lite",
            HeaderValue::from_static("true"),
        );
    }
    let input = match body.get("input") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    if prewarm {
        return prewarm_turn(shared, seq, chain, socket, input).await;
    }
    let mut watch = HangupWatch::new(shared.clone(), seq);
    match start_turn(shared, &req, Ok(Value::Object(body)), seq).await {
        TurnStart::Refused(response) => {
            watch.finish();
            let error = unwrap_error(response).await;
            send(socket, &error).await.is_ok()
        }
        TurnStart::Stream(stream) => {
            let (open, completed) = stream_turn(shared, socket, stream, &mut watch).await;
            if let Some((id, output)) = completed {
                chain.insert(id, Chained { input, output });
            }
            open
        }
    }
}

fn metadata_flag(body: &Map<String, Value>, key: &str) -> bool {
    body.get("client_metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        == Some("true")
}

/// `generate: false`: nothing is generated; the input is kept to chain on.
async fn prewarm_turn(
    shared: &Arc<Shared>,
    seq: usize,
    chain: &mut HashMap<String, Chained>,
    socket: &mut WebSocket,
    input: Vec<Value>,
) -> bool {
    let id = format!("resp_{}", super::util::random_hex(24));
    shared.set_outcome(seq, 200, None, None);
    let response = json!({"id": id, "object": "response", "status": "completed", "output": []});
    for event in [
        json!({"type": "response.created", "response": response}),
        json!({"type": "response.completed", "response": response}),
    ] {
        if send(socket, &event).await.is_err() {
            return false;
        }
    }
    chain.insert(
        id,
        Chained {
            input,
            output: Vec::new(),
        },
    );
    true
}

/// An HTTP error answer as the backend wraps it on a socket.
async fn unwrap_error(response: Response) -> Value {
    let status = response.status().as_u16();
    let mut headers = Map::new();
    // The answer's own headers (quota, retry-after…), not the framing ones.
    for (name, value) in response.headers() {
        if !matches!(name.as_str(), "content-type" | "content-length" | "date")
            && let Ok(value) = value.to_str()
        {
            headers.insert(name.as_str().to_owned(), Value::from(value));
        }
    }
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let error = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").cloned())
        .unwrap_or_else(
            || json!({"type": "server_error", "message": String::from_utf8_lossy(&body)}),
        );
    json!({"type": "error", "status": status, "error": error, "headers": headers})
}

/// Sends a turn's events; returns whether the connection is still open, and the response id
/// and output items when the turn completed.
async fn stream_turn(
    shared: &Arc<Shared>,
    socket: &mut WebSocket,
    turn: StreamTurn,
    watch: &mut HangupWatch,
) -> (bool, Option<(String, Vec<Value>)>) {
    // The quota first, as the backend sends it.
    let limits = shared.with(|inner| {
        inner
            .accounts
            .iter()
            .find(|a| a.account_id == turn.account_id)
            .map(|a| (a.plan.clone(), a.limits.clone()))
    });
    if let Some((plan, limits)) = limits {
        let frame = json!({
            "type": "codex.rate_limits",
            "plan_type": plan,
            "rate_limits": {
                "allowed": true,
                "limit_reached": limits.primary_used_percent >= 100.0,
                "primary": {"used_percent": limits.primary_used_percent,
                    "window_minutes": limits.primary_window_minutes, "reset_at": limits.primary_reset_at},
                "secondary": {"used_percent": limits.secondary_used_percent,
                    "window_minutes": limits.secondary_window_minutes, "reset_at": limits.secondary_reset_at},
            },
            "code_review_rate_limits": null,
            "credits": null,
            "promo": null,
        });
        if send(socket, &frame).await.is_err() {
            return (false, None);
        }
    }
    let mut output = Vec::new();
    let mut completed = None;
    for (sent, frame) in turn.frames.into_iter().enumerate() {
        if turn.cut_after == Some(sent) {
            if turn.stall {
                // Silent until the client hangs up or moves on.
                std::future::pending::<()>().await;
            }
            watch.finish();
            // A cut: the connection drops without a close frame.
            return (false, None);
        }
        if frame.paced && !turn.timing.pace.is_zero() {
            tokio::time::sleep(turn.timing.pace).await;
        }
        let Some(event) = event_json(&frame.bytes) else {
            continue;
        };
        match event.get("type").and_then(Value::as_str) {
            Some("response.output_item.done") => {
                if let Some(item) = event.get("item") {
                    output.push(item.clone());
                }
            }
            Some("response.completed") => {
                completed = event
                    .pointer("/response/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            _ => {}
        }
        if send(socket, &event).await.is_err() {
            return (false, None);
        }
    }
    if !turn.timing.end_delay.is_zero() {
        tokio::time::sleep(turn.timing.end_delay).await;
    }
    watch.finish();
    (true, completed.map(|id| (id, output)))
}

/// The JSON of an SSE frame's `data:` line.
fn event_json(frame: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(frame).ok()?;
    let data = text.lines().find_map(|line| line.strip_prefix("data: "))?;
    serde_json::from_str(data).ok()
}
