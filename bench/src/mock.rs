//! A lean paced upstream for benchmarks: the Codex Responses SSE stream the daemon reads, and —
//! for the direct leg — the equivalent Chat Completions answer (streamed chunks or one JSON
//! body), so both legs deliver the same content to the same client code. Frames are rendered
//! once; a request costs a few writes. No checks: correctness is the fake upstream's job.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

/// Bytes of turns the mock received on `/backend-api/codex/responses` (HTTP bodies as sent,
/// WebSocket frames), for the upstream bytes per turn.
static RECEIVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes of turns received so far.
pub fn received_bytes() -> u64 {
    RECEIVED.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_received(bytes: usize) {
    RECEIVED.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
}

/// What every answer contains: `deltas` pieces of `delta_bytes` each, one every `pace`.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub deltas: usize,
    pub delta_bytes: usize,
    pub pace: Duration,
}

/// The text of delta `i` (distinct, so order and loss can be checked): `d0007|xxxx…`.
pub fn delta_text(i: usize, bytes: usize) -> String {
    let head = format!("d{i:04}|");
    let pad = bytes.saturating_sub(head.len());
    format!("{head}{}", "x".repeat(pad))
}

/// Pre-rendered frames: sent at once (`head`), one per delta, then at once (`tail`).
#[derive(Debug)]
struct Frames {
    head: Bytes,
    deltas: Vec<Bytes>,
    tail: Bytes,
}

/// The whole Responses stream of one answer, as the mock sends it (for profiling the daemon's
/// event path on the same bytes: `codex-bench --print-upstream-stream`).
pub fn responses_stream(shape: Shape) -> Vec<u8> {
    let frames = responses_frames(shape);
    let mut out = frames.head.to_vec();
    for delta in &frames.deltas {
        out.extend_from_slice(delta);
    }
    out.extend_from_slice(&frames.tail);
    out
}

/// A JSON object with its keys in the order given: the real upstream sends `type` first, and a
/// `serde_json::Value` would sort the keys.
fn obj(fields: &[(&str, String)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", j(k)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// One JSON value.
fn j(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).unwrap_or_default()
}

fn event(kind: &str, seq: usize, fields: &[(&str, String)]) -> String {
    let mut all = vec![("type", j(kind)), ("sequence_number", j(seq))];
    all.extend_from_slice(fields);
    format!("event: {kind}\ndata: {}\n\n", obj(&all))
}

fn responses_frames(shape: Shape) -> Frames {
    let id = "resp_bench";
    let item = j("msg_bench");
    let response = |status: &str, output: &str, usage: &str| {
        obj(&[
            ("id", j(id)),
            ("object", j("response")),
            ("created_at", j(1_700_000_000)),
            ("status", j(status)),
            ("model", j("gpt-5.5")),
            ("output", output.to_owned()),
            ("usage", usage.to_owned()),
        ])
    };
    let message = |status: &str, content: &str| {
        obj(&[
            ("type", j("message")),
            ("id", item.clone()),
            ("status", j(status)),
            ("role", j("assistant")),
            ("content", content.to_owned()),
        ])
    };
    let part = |text: &str| {
        obj(&[
            ("type", j("output_text")),
            ("text", j(text)),
            ("annotations", "[]".to_owned()),
        ])
    };
    let in_message = |index: usize| {
        vec![
            ("item_id", item.clone()),
            ("output_index", j(0)),
            ("content_index", j(index)),
        ]
    };
    let created = response("in_progress", "[]", "null");
    let mut head = event("response.created", 0, &[("response", created.clone())]);
    head += &event("response.in_progress", 1, &[("response", created)]);
    head += &event(
        "response.output_item.added",
        2,
        &[
            ("output_index", j(0)),
            ("item", message("in_progress", "[]")),
        ],
    );
    let mut fields = in_message(0);
    fields.push(("part", part("")));
    head += &event("response.content_part.added", 3, &fields);
    let mut text = String::new();
    let deltas = (0..shape.deltas)
        .map(|i| {
            let delta = delta_text(i, shape.delta_bytes);
            text.push_str(&delta);
            let mut fields = in_message(0);
            fields.extend([("delta", j(&delta)), ("logprobs", "[]".to_owned())]);
            Bytes::from(event("response.output_text.delta", 4 + i, &fields))
        })
        .collect();
    let seq = 4 + shape.deltas;
    let mut fields = in_message(0);
    fields.extend([("text", j(&text)), ("logprobs", "[]".to_owned())]);
    let mut tail = event("response.output_text.done", seq, &fields);
    let mut fields = in_message(0);
    fields.push(("part", part(&text)));
    tail += &event("response.content_part.done", seq + 1, &fields);
    let done = message("completed", &format!("[{}]", part(&text)));
    tail += &event(
        "response.output_item.done",
        seq + 2,
        &[("output_index", j(0)), ("item", done.clone())],
    );
    let usage = obj(&[
        ("input_tokens", j(12)),
        ("input_tokens_details", obj(&[("cached_tokens", j(0))])),
        ("output_tokens", j(shape.deltas)),
        ("output_tokens_details", obj(&[("reasoning_tokens", j(0))])),
        ("total_tokens", j(12 + shape.deltas)),
    ]);
    let mut completed = response("completed", &format!("[{done}]"), &usage);
    completed.insert_str(completed.len() - 1, ",\"end_turn\":true");
    tail += &event("response.completed", seq + 3, &[("response", completed)]);
    Frames {
        head: Bytes::from(head),
        deltas,
        tail: Bytes::from(tail),
    }
}

fn chat_frames(shape: Shape) -> (Frames, Bytes) {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let body = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-5.5", "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        format!("data: {body}\n\n")
    };
    let head = chunk(
        json!({"role": "assistant", "content": ""}),
        serde_json::Value::Null,
    );
    let mut text = String::new();
    let deltas = (0..shape.deltas)
        .map(|i| {
            let delta = delta_text(i, shape.delta_bytes);
            text.push_str(&delta);
            Bytes::from(chunk(json!({"content": delta}), serde_json::Value::Null))
        })
        .collect();
    let tail = format!("{}data: [DONE]\n\n", chunk(json!({}), json!("stop")));
    let whole = json!({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-5.5",
        "system_fingerprint": null, "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
        "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": shape.deltas, "total_tokens": 12 + shape.deltas}});
    (
        Frames {
            head: Bytes::from(head),
            deltas,
            tail: Bytes::from(tail),
        },
        Bytes::from(whole.to_string()),
    )
}

#[derive(Debug)]
struct Rendered {
    responses: Frames,
    /// The same events as WebSocket messages (each event's JSON).
    socket: Vec<String>,
    /// How many of them come before the first delta (sent together, as the SSE head is).
    socket_head: usize,
    /// How many are deltas (each sent alone when the answer is paced).
    socket_deltas: usize,
    chat: Frames,
    chat_whole: Bytes,
    /// The non-streamed `/v1/responses` answer of the same content (the Responses direct leg).
    response_whole: Bytes,
    /// The non-streamed `/v1/messages` answer of the same content (the Messages direct leg).
    message_whole: Bytes,
    /// The same as Ollama's `/api/chat` and Gemini's `generateContent` answer it.
    ollama_whole: Bytes,
    gemini_whole: Bytes,
    pace: Duration,
}

/// The response object OpenAI's `/v1/responses` answers with for the same deltas.
fn response_whole(shape: Shape) -> Bytes {
    let text: String = (0..shape.deltas)
        .map(|i| delta_text(i, shape.delta_bytes))
        .collect();
    let body = json!({"id": "resp_bench", "object": "response", "created_at": 1_700_000_000,
        "status": "completed", "model": "gpt-5.5", "output": [{"type": "message", "id": "msg_bench",
        "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": text,
        "annotations": []}]}], "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": shape.deltas, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12 + shape.deltas}, "output_text": text});
    Bytes::from(body.to_string())
}

/// The message Anthropic's `/v1/messages` answers with for the same deltas.
fn message_whole(shape: Shape) -> Bytes {
    let text: String = (0..shape.deltas)
        .map(|i| delta_text(i, shape.delta_bytes))
        .collect();
    let body = json!({"id": "msg_bench", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 12,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": shape.deltas}});
    Bytes::from(body.to_string())
}

/// The object Ollama's `/api/chat` answers with (not streamed) for the same deltas.
fn ollama_whole(shape: Shape) -> Bytes {
    let text: String = (0..shape.deltas)
        .map(|i| delta_text(i, shape.delta_bytes))
        .collect();
    let body = json!({"model": "gpt-5.5", "created_at": "2026-01-01T00:00:00.000Z",
        "message": {"role": "assistant", "content": text}, "done": true, "done_reason": "stop",
        "total_duration": 1, "load_duration": 0, "prompt_eval_count": 12,
        "prompt_eval_duration": 1, "eval_count": shape.deltas, "eval_duration": 1});
    Bytes::from(body.to_string())
}

/// The response Gemini's `generateContent` answers with for the same deltas.
fn gemini_whole(shape: Shape) -> Bytes {
    let text: String = (0..shape.deltas)
        .map(|i| delta_text(i, shape.delta_bytes))
        .collect();
    let body = json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
        "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 12,
        "candidatesTokenCount": shape.deltas, "totalTokenCount": 12 + shape.deltas},
        "modelVersion": "gpt-5.5", "responseId": "resp_bench"});
    Bytes::from(body.to_string())
}

type Body = BoxBody<Bytes, Infallible>;

/// Head at once, then delta k at `start + k × pace` (on an absolute schedule, so the pace never
/// drifts with the time spent sending), then the tail.
fn paced(frames: &Arc<Rendered>, chat: bool) -> Body {
    let state = (frames.clone(), 0usize, tokio::time::Instant::now());
    let stream = futures_util::stream::unfold(state, move |(r, i, start)| async move {
        let f = if chat { &r.chat } else { &r.responses };
        let n = f.deltas.len();
        let bytes = match i {
            0 => f.head.clone(),
            i if i <= n => {
                if i > 1 {
                    if r.pace < Duration::from_millis(1) {
                        // "Alone, unpaced": each delta its own write, with no wait between.
                        tokio::task::yield_now().await;
                    } else {
                        let k = u32::try_from(i - 1).unwrap_or(u32::MAX);
                        tokio::time::sleep_until(start + r.pace * k).await;
                    }
                }
                f.deltas[i - 1].clone()
            }
            i if i == n + 1 => f.tail.clone(),
            _ => return None,
        };
        Some((Ok::<_, Infallible>(Frame::data(bytes)), (r, i + 1, start)))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

fn immediate(frames: &Frames) -> Body {
    let mut all = Vec::with_capacity(
        frames.head.len() + frames.tail.len() + frames.deltas.iter().map(Bytes::len).sum::<usize>(),
    );
    all.extend_from_slice(&frames.head);
    for d in &frames.deltas {
        all.extend_from_slice(d);
    }
    all.extend_from_slice(&frames.tail);
    Full::new(Bytes::from(all)).boxed()
}

/// Each SSE event's `data` as one WebSocket message.
fn socket_messages(frames: &Frames) -> Vec<String> {
    let mut all = frames.head.to_vec();
    for d in &frames.deltas {
        all.extend_from_slice(d);
    }
    all.extend_from_slice(&frames.tail);
    String::from_utf8_lossy(&all)
        .split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .collect()
}

/// The Responses WebSocket: each `response.create` answered with the same events, paced as the
/// SSE answers are (the head together, each delta alone at its time, the tail together).
fn upgrade(r: Arc<Rendered>, req: Request<Incoming>) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return Response::builder()
            .status(400)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap_or_default();
    };
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::protocol::Role;
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            count_received(text.len());
            let (head, rest) = r.socket.split_at(r.socket_head.min(r.socket.len()));
            let (deltas, tail) = rest.split_at(r.socket_deltas.min(rest.len()));
            let start = tokio::time::Instant::now();
            for event in head {
                if socket.feed(Message::text(event.as_str())).await.is_err() {
                    return;
                }
            }
            for (k, event) in deltas.iter().enumerate() {
                // Unless the answer is written at once, each delta goes alone at its time.
                if !r.pace.is_zero() {
                    if socket.flush().await.is_err() {
                        return;
                    }
                    if k > 0 && r.pace < Duration::from_millis(1) {
                        tokio::task::yield_now().await;
                    } else if k > 0 {
                        let k = u32::try_from(k).unwrap_or(u32::MAX);
                        tokio::time::sleep_until(start + r.pace * k).await;
                    }
                }
                if socket.feed(Message::text(event.as_str())).await.is_err() {
                    return;
                }
            }
            if !r.pace.is_zero() && socket.flush().await.is_err() {
                return;
            }
            for event in tail {
                if socket.feed(Message::text(event.as_str())).await.is_err() {
                    return;
                }
            }
            if socket.flush().await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap_or_default()
}

async fn handle(r: Arc<Rendered>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/backend-api/codex/responses" && req.headers().contains_key("sec-websocket-key") {
        return Ok(upgrade(r, req));
    }
    // Read the request to its end so the connection stays reusable.
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let sse = |body: Body| {
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(body)
            .unwrap_or_default()
    };
    if path == "/backend-api/codex/responses" {
        count_received(body.len());
    }
    Ok(match path.as_str() {
        "/backend-api/codex/responses" if r.pace.is_zero() => sse(immediate(&r.responses)),
        "/backend-api/codex/responses" => sse(paced(&r, false)),
        "/v1/responses" => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(r.response_whole.clone()).boxed())
            .unwrap_or_default(),
        "/v1/messages" => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(r.message_whole.clone()).boxed())
            .unwrap_or_default(),
        "/api/chat" => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(r.ollama_whole.clone()).boxed())
            .unwrap_or_default(),
        "/v1beta/models/gpt-5.5:generateContent" => Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(r.gemini_whole.clone()).boxed())
            .unwrap_or_default(),
        "/v1/chat/completions" => {
            let stream = body.windows(13).any(|w| w == b"\"stream\":true");
            match (stream, r.pace.is_zero()) {
                (false, _) => Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(r.chat_whole.clone()).boxed())
                    .unwrap_or_default(),
                (true, true) => sse(immediate(&r.chat)),
                (true, false) => sse(paced(&r, true)),
            }
        }
        _ => Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"{}")).boxed())
            .unwrap_or_default(),
    })
}

/// Where a running mock listens.
#[derive(Debug, Clone, Copy)]
pub struct Mock {
    /// Plain HTTP/1.1: the direct leg, the floors, and the daemon unless `tls`.
    pub addr: SocketAddr,
    /// With `--tls`: HTTPS, HTTP/2 or HTTP/1.1 by ALPN as the real backend offers, for the
    /// daemon (certificate for 127.0.0.1 signed by [`CA_PEM`]).
    pub tls: Option<SocketAddr>,
}

/// What the HTTPS listener offers by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// HTTP/2 and HTTP/1.1, as the real backend.
    Offered,
    /// HTTP/1.1 only (to tell HTTP/2's cost from TLS's).
    Http1Only,
}

/// The test CA of the fake upstream (`tests/src/fake/tls`), which signed the certificate the
/// mock serves with `--tls`; the daemon is given it as `SSL_CERT_FILE`.
pub const CA_PEM: &str = include_str!("../../tests/src/fake/tls/ca.pem");
const CERT_PEM: &str = include_str!("../../tests/src/fake/tls/server.pem");
const KEY_PEM: &str = include_str!("../../tests/src/fake/tls/server.key");

/// Serves `shape` on a thread of its own (as a real upstream is another process, not the
/// client's own event loop), pinned to `cpu` when given, until the process ends; over HTTPS too
/// when `tls` is given.
pub async fn start(shape: Shape, cpu: Option<usize>, tls: Option<Tls>) -> anyhow::Result<Mock> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("mock-upstream".into())
        .spawn(move || {
            if let Some(cpu) = cpu {
                crate::pin_self(cpu);
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let _ = tx.send(serve(shape, tls).await);
                std::future::pending::<()>().await;
            });
        })?;
    rx.await?
}

async fn serve(shape: Shape, tls: Option<Tls>) -> anyhow::Result<Mock> {
    let (chat, chat_whole) = chat_frames(shape);
    let responses = responses_frames(shape);
    let socket = socket_messages(&responses);
    let socket_head = socket_messages(&Frames {
        head: responses.head.clone(),
        deltas: Vec::new(),
        tail: Bytes::new(),
    })
    .len();
    let socket_deltas = socket_messages(&Frames {
        head: Bytes::new(),
        deltas: responses.deltas.clone(),
        tail: Bytes::new(),
    })
    .len();
    let rendered = Arc::new(Rendered {
        responses,
        socket,
        socket_head,
        socket_deltas,
        chat,
        chat_whole,
        response_whole: response_whole(shape),
        message_whole: message_whole(shape),
        ollama_whole: ollama_whole(shape),
        gemini_whole: gemini_whole(shape),
        pace: shape.pace,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let plain = rendered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let r = plain.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(r.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let tls = match tls {
        Some(tls) => Some(serve_tls(rendered, tls).await?),
        None => None,
    };
    Ok(Mock { addr, tls })
}

/// The HTTPS listener: HTTP/2 when the client offers it (the daemon does, as the official
/// client's stack) unless `tls` says HTTP/1.1 only, else HTTP/1.1.
async fn serve_tls(rendered: Arc<Rendered>, tls: Tls) -> anyhow::Result<SocketAddr> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs =
        CertificateDer::pem_slice_iter(CERT_PEM.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes())?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = match tls {
        Tls::Offered => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Tls::Http1Only => vec![b"http/1.1".to_vec()],
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, r) = (acceptor.clone(), rendered.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = hyper::service::service_fn(move |req| handle(r.clone(), req));
                let io = TokioIo::new(tls);
                let _ = if h2 {
                    // As many streams at once as the open-streams scenario holds.
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .max_concurrent_streams(65_536)
                        .serve_connection(io, service)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                };
            });
        }
    });
    Ok(addr)
}
