//! `POST /backend-api/codex/responses` (SSE) and `POST …/responses/compact` (unary).

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::accounts::Account;
use super::record::HangupWatch;
use super::script::{Ending, OutputItem, Reply, Script, Usage, word_deltas};
use super::sse::{self, Frame, Render};
use super::util::{now, random_hex};
use super::validate::{self, Caller, Checked};
use super::{Incoming, MAX_BODY, Rejection, Shared, gate, models};

const LITE_HEADER: &str = "x-openai-internal-codex-responses-lite";

pub async fn handle(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let decoded = decode_json_body(&req);
    let seq = shared.record(&req, decoded.as_ref().ok().cloned(), None);
    let mut watch = HangupWatch::new(shared.clone(), seq);
    match start_turn(&shared, &req, decoded, seq).await {
        TurnStart::Refused(response) => {
            watch.finish();
            response
        }
        TurnStart::Stream(turn) => {
            let mut builder = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                // Like chatgpt.com behind Cloudflare: a bot-management cookie, and one a client
                // should not keep.
                .header(
                    header::SET_COOKIE,
                    format!(
                        "__cf_bm={}; path=/; HttpOnly; Secure; SameSite=None",
                        random_hex(12)
                    ),
                )
                .header(header::SET_COOKIE, "_puid=user-tracking; path=/; Secure");
            for (name, value) in &turn.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            let body = Body::from_stream(frame_stream(
                turn.frames,
                turn.timing,
                turn.cut_after,
                turn.stall,
                watch,
            ));
            let response = builder
                .body(body)
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
            with_headers(response, &turn.script_headers)
        }
    }
}

/// How a turn begins, whatever carries it (HTTP or the WebSocket).
pub(crate) enum TurnStart {
    /// An error answer (its outcome recorded).
    Refused(Response),
    Stream(StreamTurn),
}

/// A turn that streams: its events and how they go out.
pub(crate) struct StreamTurn {
    pub frames: Vec<Frame>,
    pub timing: Timing,
    /// Cut (or with `stall`, go silent) after this many frames.
    pub cut_after: Option<usize>,
    pub stall: bool,
    /// The backend's response headers: model, ETag, quota.
    pub headers: Vec<(String, String)>,
    /// Headers the script adds.
    pub script_headers: Vec<(String, String)>,
    pub account_id: String,
}

/// Admits, validates and scripts one turn (`seq` is its record).
pub(crate) async fn start_turn(
    shared: &Arc<Shared>,
    req: &Incoming,
    decoded: Result<Value, Rejection>,
    seq: usize,
) -> TurnStart {
    let plan = match plan(shared, req, decoded) {
        Ok(plan) => plan,
        Err((rejection, account)) => {
            shared.set_outcome(
                seq,
                rejection.status.as_u16(),
                Some(rejection.reason()),
                account.as_deref(),
            );
            return TurnStart::Refused(rejection.into_response());
        }
    };
    let Plan {
        account,
        checked,
        script,
        client_version,
    } = plan;
    if script.first_byte_delay_ms > 0 {
        // A client that gives up here drops this future (and the caller's watch).
        tokio::time::sleep(Duration::from_millis(script.first_byte_delay_ms)).await;
    }

    let (items, ending, usage) = match script.reply {
        Reply::Stream {
            items,
            ending,
            usage,
        } => (items, ending, usage),
        other => {
            let response = scripted_error(shared, &account, other);
            shared.set_outcome(
                seq,
                response.status().as_u16(),
                Some("scripted error".into()),
                Some(&account.account_id),
            );
            return TurnStart::Refused(with_headers(response, &script.headers));
        }
    };

    let (input_tokens, cached_tokens) = prompt_cache(shared, &account, &checked);
    let secret = shared.secret;
    let account_id = account.account_id.clone();
    let encrypt = |item_id: &str| validate::encode_encrypted(&secret, &account_id, item_id);
    let render = Render {
        model: checked.model.slug,
        summary_requested: checked.summary_requested,
        include_encrypted: checked.include_encrypted,
        encrypt: &encrypt,
    };
    let usage_for = |output_chars: usize, reasoning_chars: usize, has_reasoning: bool| {
        usage.unwrap_or_else(|| {
            let reasoning_tokens = if has_reasoning {
                16 + reasoning_chars as u64 / 4
            } else {
                0
            };
            Usage {
                input_tokens,
                cached_tokens,
                output_tokens: (output_chars as u64 / 4).max(1) + reasoning_tokens,
                reasoning_tokens,
            }
        })
    };
    let response_id = format!("resp_{}", random_hex(24));
    let frames = sse::render(&render, &response_id, &items, &ending, &usage_for);
    let (cut_after, stall) = match ending {
        Ending::Disconnect { after_events } => (Some(after_events.unwrap_or(frames.len())), false),
        Ending::Stall { after_events } => (Some(after_events.unwrap_or(frames.len())), true),
        _ => (None, false),
    };

    let limits = shared.with(|inner| {
        let (primary, secondary) = inner.usage_per_request;
        let acc = inner
            .accounts
            .iter_mut()
            .find(|a| a.account_id == account.account_id)?;
        acc.limits.primary_used_percent = (acc.limits.primary_used_percent + primary).min(100.0);
        acc.limits.secondary_used_percent =
            (acc.limits.secondary_used_percent + secondary).min(100.0);
        Some(acc.limits.clone())
    });
    shared.set_outcome(seq, 200, None, Some(&account.account_id));

    let mut headers = vec![
        ("x-request-id".to_owned(), uuid::Uuid::new_v4().to_string()),
        ("openai-model".to_owned(), checked.model.slug.to_owned()),
        (
            "x-models-etag".to_owned(),
            models::etag(shared, &client_version),
        ),
        ("x-reasoning-included".to_owned(), "true".to_owned()),
        (
            "x-codex-turn-state".to_owned(),
            format!("ts_{}", random_hex(16)),
        ),
    ];
    for (name, value) in limits.map(|l| l.headers()).unwrap_or_default() {
        headers.push((name.to_owned(), value));
    }
    TurnStart::Stream(StreamTurn {
        frames,
        timing: Timing {
            pace: Duration::from_millis(script.pace_ms),
            end_delay: Duration::from_millis(script.end_delay_ms),
        },
        cut_after,
        stall,
        headers,
        script_headers: script.headers,
        account_id: account.account_id,
    })
}

fn caller<'a>(
    shared: &'a Shared,
    req: &Incoming,
    account: &'a Account,
    client_version: &'a str,
) -> Caller<'a> {
    Caller {
        account_id: &account.account_id,
        client_version,
        lite_header: req.header(LITE_HEADER) == Some("true"),
        secret: &shared.secret,
    }
}

struct Plan {
    account: Account,
    checked: Checked,
    script: Script,
    client_version: String,
}

type PlanError = (Rejection, Option<String>);

fn plan(
    shared: &Arc<Shared>,
    req: &Incoming,
    decoded: Result<Value, Rejection>,
) -> Result<Plan, PlanError> {
    let (account, client_version) = gate::admit(shared, req).map_err(|r| (r, None))?;
    let with_account = |r: Rejection| (r, Some(account.account_id.clone()));
    let body = decoded.map_err(with_account)?;
    let caller = caller(shared, req, &account, &client_version);
    let checked =
        // Token estimates come from the decoded body: zstd makes the wire size meaningless.
        validate::check_responses(&body, body.to_string().len(), &caller).map_err(with_account)?;
    if let Some(until) = account.limits.exhausted_until() {
        return Err(with_account(usage_limit_rejection(&account, until)));
    }
    let script = choose_script(shared, &body, &checked);
    Ok(Plan {
        account,
        checked,
        script,
        client_version,
    })
}

/// A rule whose marker occurs in the request, else the queue, else the default, else the echo.
fn choose_script(shared: &Arc<Shared>, body: &Value, checked: &Checked) -> Script {
    let text = body.to_string();
    shared
        .with(|inner| {
            inner
                .rules
                .iter()
                .find(|(marker, _)| text.contains(marker.as_str()))
                .map(|(_, script)| script.clone())
                .or_else(|| inner.queue.pop_front())
                .or_else(|| inner.default_script.clone())
        })
        .unwrap_or_else(|| {
            if checked.image_tool {
                drawn(&checked.last_user_text)
            } else {
                echo(&checked.last_user_text)
            }
        })
}

/// A 1×1 PNG: the image every built-in image reply carries.
pub const PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// The built-in reply to a request that offers the image tool: the tool called, a pixel made.
fn drawn(last_user_text: &str) -> Script {
    let prompt: String = last_user_text.chars().take(200).collect();
    Script::image(PIXEL_PNG, &format!("An image of: {prompt}"))
}

/// The built-in reply: a short reasoning summary and an answer that quotes the user.
fn echo(last_user_text: &str) -> Script {
    let text = if last_user_text.trim().is_empty() {
        "Hello! How can I help?".to_owned()
    } else {
        let quoted: String = last_user_text.chars().take(200).collect();
        format!("You said: {quoted}")
    };
    Script::new(Reply::Stream {
        items: vec![
            OutputItem::Reasoning {
                summary: vec![word_deltas("**Answering** Replying to the user.")],
            },
            OutputItem::Message {
                deltas: word_deltas(&text),
            },
        ],
        ending: Ending::Completed,
        usage: None,
    })
}

/// Input and cached tokens, and remembers this prompt for the next request with the same key.
/// Real caching works on prefixes of at least 1024 tokens in 128-token steps, per account.
fn prompt_cache(shared: &Arc<Shared>, account: &Account, checked: &Checked) -> (u64, u64) {
    let input = (checked.body_len as u64 / 4).max(1);
    let Some(key) = &checked.prompt_cache_key else {
        return (input, 0);
    };
    shared.with(|inner| {
        let min = inner.cache_min_tokens;
        let slot = inner
            .prompt_cache
            .entry((account.account_id.clone(), key.clone()))
            .or_insert(0);
        let previous = *slot;
        *slot = input;
        let cached = if previous >= min && input >= min {
            previous.min(input) / 128 * 128
        } else {
            0
        };
        (input, cached)
    })
}

fn usage_limit_rejection(account: &Account, resets_at: i64) -> Rejection {
    let mut rejection = Rejection {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: json!({"error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": account.plan,
            "resets_at": resets_at,
            "resets_in_seconds": (resets_at - now()).max(0),
        }}),
        headers: Vec::new(),
    };
    let mut limits = account.limits.clone();
    limits.primary_used_percent = limits.primary_used_percent.max(100.0);
    rejection.headers = limits.headers();
    rejection.headers.push((
        "x-codex-rate-limit-reached-type",
        "rate_limit_reached".into(),
    ));
    rejection
}

fn scripted_error(shared: &Arc<Shared>, account: &Account, reply: Reply) -> Response {
    match reply {
        Reply::UsageLimit { resets_in_seconds } => {
            let resets_at = now() + resets_in_seconds;
            // The account really is exhausted now: later requests are refused too.
            let updated = shared.with(|inner| {
                let acc = inner.accounts.iter_mut().find(|a| a.account_id == account.account_id)?;
                acc.limits.primary_used_percent = 100.0;
                acc.limits.primary_reset_at = resets_at;
                Some(acc.clone())
            });
            usage_limit_rejection(&updated.unwrap_or_else(|| account.clone()), resets_at).into_response()
        }
        Reply::UsageNotIncluded => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error": {
                "type": "usage_not_included",
                "message": "To use Codex with your ChatGPT plan, upgrade to Plus: https://chatgpt.com/explore/plus.",
            }})),
        )
            .into_response(),
        Reply::TokenExpired => Rejection::token_expired().into_response(),
        Reply::InternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {
                "message": "An error occurred while processing your request.",
                "type": "server_error", "param": null, "code": "server_error",
            }})),
        )
            .into_response(),
        Reply::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": {
                "code": "server_is_overloaded",
                "message": "Our servers are currently overloaded. Please try again later.",
                "type": "server_error",
            }})),
        )
            .into_response(),
        Reply::CloudflareBlocked => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>\
             <body><h1>Sorry, you have been blocked</h1><h2>You are unable to access chatgpt.com</h2>\
             <p>This website is using a security service to protect itself from online attacks.</p>\
             <p>Cloudflare Ray ID: 8f0000000000abcd</p></body></html>",
        )
            .into_response(),
        Reply::Raw { status, content_type, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
        Reply::Stream { .. } => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn with_headers(mut response: Response, extra: &[(String, String)]) -> Response {
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// When the frames of a stream go out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Before each delta.
    pub pace: Duration,
    /// Between the last frame and the end of the body.
    pub end_delay: Duration,
}

/// Streams frames as `timing` says; cuts the connection after `cut_after`.
fn frame_stream(
    frames: Vec<Frame>,
    timing: Timing,
    cut_after: Option<usize>,
    stall: bool,
    watch: HangupWatch,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct St {
        frames: std::vec::IntoIter<Frame>,
        sent: usize,
        stopped: bool,
        watch: HangupWatch,
    }
    let state = St {
        frames: frames.into_iter(),
        sent: 0,
        stopped: false,
        watch,
    };
    futures_util::stream::unfold(state, move |mut st| async move {
        if st.stopped {
            return None;
        }
        if stall && cut_after == Some(st.sent) {
            // Silent until the client hangs up (which drops this stream and its watch).
            std::future::pending::<()>().await;
        }
        if cut_after == Some(st.sent) {
            // Let hyper flush what was sent (it flushes whenever the body is pending), so the
            // client really holds those events when the connection drops, as in a real cut.
            tokio::time::sleep(Duration::from_millis(20)).await;
            // The fake ends the stream on purpose; that is not the client hanging up.
            st.watch.finish();
            st.stopped = true;
            return Some((Err(std::io::Error::other("scripted disconnect")), st));
        }
        let Some(frame) = st.frames.next() else {
            if !timing.end_delay.is_zero() {
                // A client that resets the request now drops this stream, and its watch.
                tokio::time::sleep(timing.end_delay).await;
            }
            st.watch.finish();
            return None;
        };
        if frame.paced && !timing.pace.is_zero() {
            tokio::time::sleep(timing.pace).await;
        }
        st.sent += 1;
        Some((Ok(frame.bytes), st))
    })
}

/// Content-Type and Content-Encoding checks, zstd decoding, JSON parsing.
pub fn decode_json_body(req: &Incoming) -> Result<Value, Rejection> {
    let content_type = req.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(Rejection::detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be application/json, got `{content_type}`"),
        ));
    }
    let raw = match req.header("content-encoding").map(str::trim) {
        None | Some("" | "identity") => req.body.to_vec(),
        Some("zstd") => {
            let mut out = Vec::new();
            let decoder = zstd::stream::read::Decoder::new(&req.body[..])
                .map_err(|_| Rejection::detail(StatusCode::BAD_REQUEST, "Malformed zstd body"))?;
            decoder
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| Rejection::detail(StatusCode::BAD_REQUEST, "Malformed zstd body"))?;
            if out.len() > MAX_BODY {
                return Err(Rejection::detail(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body too large",
                ));
            }
            out
        }
        Some(other) => {
            return Err(Rejection::detail(
                StatusCode::BAD_REQUEST,
                format!("Unsupported Content-Encoding: {other}"),
            ));
        }
    };
    serde_json::from_slice(&raw).map_err(|e| {
        Rejection::api(
            StatusCode::BAD_REQUEST,
            format!("We could not parse the JSON body of your request. ({e})"),
            None,
            None,
        )
    })
}

/// `POST /responses/compact`: returns the retained user messages and a compaction item.
pub async fn compact(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let decoded = decode_json_body(&req);
    let seq = shared.record(&req, decoded.as_ref().ok().cloned(), None);
    let result = (|| {
        let (account, client_version) = gate::admit(&shared, &req).map_err(|r| (r, None))?;
        let with_account = |r: Rejection| (r, Some(account.account_id.clone()));
        let body = decoded.map_err(with_account)?;
        let caller = caller(&shared, &req, &account, &client_version);
        let mut output = validate::check_compact(&body, &caller).map_err(with_account)?;
        let id = format!("cmp_{}", random_hex(24));
        output.push(json!({
            "type": "compaction",
            "id": id,
            "encrypted_content": validate::encode_encrypted(&shared.secret, &account.account_id, &id),
        }));
        Ok::<_, PlanError>((account, output))
    })();
    match result {
        Ok((account, output)) => {
            shared.set_outcome(seq, 200, None, Some(&account.account_id));
            let mut response = axum::Json(json!({ "output": output })).into_response();
            response
                .headers_mut()
                .insert("x-codex-turn-state", HeaderValue::from_static("ts_compact"));
            response
        }
        Err((rejection, account)) => {
            shared.set_outcome(
                seq,
                rejection.status.as_u16(),
                Some(rejection.reason()),
                account.as_deref(),
            );
            rejection.into_response()
        }
    }
}
