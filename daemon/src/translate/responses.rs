//! `/v1/responses` → the backend's `/codex/responses`: a faithful pass-through. Items and tool
//! definitions go on as the client wrote them (unknown fields and order kept); only what the
//! backend refuses or needs differently is rewritten: `store` is always false and `stream`
//! always true upstream, parameters it does not take are dropped (and reported), `system` items
//! become `developer`, an empty `instructions` is left out (as the official client does), the
//! model alias resolves, and `previous_response_id` / `item_reference` are expanded from the
//! daemon's own store.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::raw::{RawObject, raw, to_raw};
use crate::api_error::ApiError;

/// Parameters the backend takes as they are (codex-protocol.md §2.3).
const PASSED: &[&str] = &[
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "include",
    "prompt_cache_key",
    "text",
    "client_metadata",
];

/// Parameters of OpenAI's Responses API that have no equivalent at the backend: dropped, and
/// listed in `x-codex-proxy-ignored-params`.
const DROPPED: &[&str] = &[
    "max_output_tokens",
    "max_tool_calls",
    "temperature",
    "top_p",
    "top_logprobs",
    "truncation",
    "metadata",
    "user",
    "safety_identifier",
    "context_management",
    "modalities",
    "seed",
    "n",
];

/// What the rewrite needs from the daemon.
#[derive(Debug)]
pub struct Context<'a> {
    /// The backend's slug for the requested model.
    pub model: &'a str,
    /// An effort named by the model's suffix (`gpt-5.5-high`), which wins over `reasoning`.
    pub suffix_effort: Option<&'a str>,
    /// The items of the previous response's chain (`previous_response_id`), oldest first.
    pub history: Vec<Box<RawValue>>,
    /// The session key, used as `prompt_cache_key` when the client sent none.
    pub session: &'a str,
    /// The response will be kept: its reasoning must come back encrypted to be replayable.
    pub keep: bool,
    /// A compaction (`/responses/compact`, §5.3): unary, so no `store`, `stream`, `include`
    /// or `client_metadata`.
    pub compact: bool,
}

/// The request, rewritten for the backend.
#[derive(Debug)]
pub struct Rewritten {
    pub body: Vec<u8>,
    /// The items this request added (the history excluded), as sent.
    pub input: Vec<Box<RawValue>>,
    pub ignored: Vec<String>,
    /// The Responses-Lite layout (an `additional_tools` item) needs its header.
    pub lite: bool,
}

/// What the handler reads before the rewrite: mode, model, the chain to continue, the
/// conversation's identity.
#[derive(Debug)]
pub struct Head {
    pub model: Option<String>,
    pub stream: bool,
    /// `store` as the client means it (OpenAI's default is true).
    pub store: bool,
    pub previous_response_id: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub instructions: Option<String>,
    /// The first input item's text (raw), for a conversation key.
    pub first_item: String,
}

/// Parses the body as an ordered object.
pub fn parse(body: &[u8]) -> Result<RawObject, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            format!("We could not parse the JSON body of your request: {e}"),
            None,
        )
    })
}

fn bool_field(object: &RawObject, key: &str) -> Result<Option<bool>, ApiError> {
    match object.get(key) {
        None => Ok(None),
        Some(value) if value.get() == "null" => Ok(None),
        Some(value) => serde_json::from_str(value.get()).map(Some).map_err(|_| {
            ApiError::invalid(
                format!("Invalid type for '{key}': expected a boolean."),
                Some(key),
            )
        }),
    }
}

fn string_field(object: &RawObject, key: &str) -> Result<Option<String>, ApiError> {
    match object.get(key) {
        None => Ok(None),
        Some(value) if value.get() == "null" => Ok(None),
        Some(value) => serde_json::from_str(value.get()).map(Some).map_err(|_| {
            ApiError::invalid(
                format!("Invalid type for '{key}': expected a string."),
                Some(key),
            )
        }),
    }
}

pub fn head(object: &RawObject) -> Result<Head, ApiError> {
    for refused in ["conversation", "prompt"] {
        if object.get(refused).is_some_and(|v| v.get() != "null") {
            return Err(ApiError::invalid(
                format!(
                    "'{refused}' needs state kept by OpenAI's platform, which the ChatGPT Codex \
                     backend does not offer; send the input itself (or previous_response_id)."
                ),
                Some(refused),
            ));
        }
    }
    if bool_field(object, "background")? == Some(true) {
        return Err(ApiError::invalid(
            "Background responses are not supported: the ChatGPT Codex backend only streams.",
            Some("background"),
        ));
    }
    let first_item = match object.get("input") {
        None => {
            return Err(ApiError::invalid(
                "Missing required parameter: 'input'.",
                Some("input"),
            ));
        }
        Some(input) => first_item(input),
    };
    Ok(Head {
        model: string_field(object, "model")?,
        stream: bool_field(object, "stream")?.unwrap_or(false),
        store: bool_field(object, "store")?.unwrap_or(true),
        previous_response_id: string_field(object, "previous_response_id")?,
        prompt_cache_key: string_field(object, "prompt_cache_key")?,
        instructions: string_field(object, "instructions")?,
        first_item,
    })
}

fn first_item(input: &RawValue) -> String {
    if let Ok(text) = serde_json::from_str::<String>(input.get()) {
        return text;
    }
    serde_json::from_str::<Vec<&RawValue>>(input.get())
        .ok()
        .and_then(|items| items.first().map(|i| i.get().to_owned()))
        .unwrap_or_default()
}

/// The request as the backend takes it.
pub fn rewrite(
    object: RawObject,
    mut context: Context<'_>,
    item: &dyn Fn(&str) -> Option<Box<RawValue>>,
) -> Result<Rewritten, ApiError> {
    let history = std::mem::take(&mut context.history);
    let Parts {
        mut members,
        input,
        ignored,
        lite,
    } = rewrite_parts(object, None, &context, item)?;
    let mut all = history;
    all.extend(input.iter().cloned());
    members.set("input", to_raw(&all));
    let body = serde_json::to_vec(&members).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Rewritten {
        body,
        input,
        ignored,
        lite,
    })
}

/// A request's parts as the backend takes them, the input apart.
#[derive(Debug)]
pub struct Parts {
    /// Its members, `input` where the client put it but empty.
    pub members: RawObject,
    /// The input's items, rewritten.
    pub input: Vec<Box<RawValue>>,
    pub ignored: Vec<String>,
    /// The Responses-Lite layout (an `additional_tools` item) needs its header.
    pub lite: bool,
}

/// [`rewrite`] in parts, `context.history` left out; `items` are the request's items from
/// `input[first]` on when they were read apart (else they are read from its `input`).
pub fn rewrite_parts(
    mut object: RawObject,
    items: Option<(usize, Vec<Box<RawValue>>)>,
    context: &Context<'_>,
    item: &dyn Fn(&str) -> Option<Box<RawValue>>,
) -> Result<Parts, ApiError> {
    let mut ignored = Vec::new();
    let (first, items) = match items {
        Some(items) => items,
        None => (
            0,
            parse_input(object.get("input").ok_or_else(|| {
                ApiError::invalid("Missing required parameter: 'input'.", Some("input"))
            })?)?,
        ),
    };
    let input = input_items(items, first, item)?;
    let lite = input
        .iter()
        .any(|i| item_type(i).as_deref() == Some("additional_tools"));

    let mut out = RawObject(Vec::with_capacity(object.0.len() + 4));
    for (key, value) in std::mem::take(&mut object.0) {
        if context.compact
            && matches!(
                key.as_str(),
                "store"
                    | "stream"
                    | "include"
                    | "client_metadata"
                    | "stream_options"
                    | "tool_choice"
            )
        {
            // The compaction endpoint takes none of these.
            if !matches!(key.as_str(), "store" | "stream") {
                ignored.push(key);
            }
            continue;
        }
        match key.as_str() {
            "model" => out.0.push((key, to_raw(context.model))),
            "input" => out.0.push((key, raw("[]"))),
            "store" => out.0.push((key, raw("false"))),
            "stream" => out.0.push((key, raw("true"))),
            "instructions" => {
                // Left out when empty, as the official client does.
                let empty = serde_json::from_str::<Option<String>>(value.get())
                    .ok()
                    .flatten()
                    .is_none_or(|text| text.is_empty());
                if !empty {
                    out.0.push((key, value));
                }
            }
            "reasoning" if context.suffix_effort.is_some() => {
                out.0
                    .push((key, with_effort(&value, context.suffix_effort)));
            }
            "include" if context.keep => out.0.push((key, with_encrypted_reasoning(&value))),
            "service_tier" => match serde_json::from_str::<Option<String>>(value.get()) {
                // The backend knows these two; `auto` and `default` are its default anyway.
                Ok(Some(tier)) if tier == "priority" || tier == "flex" => out.0.push((key, value)),
                Ok(None) => {}
                _ => ignored.push(key),
            },
            "stream_options" => {
                // The backend takes these two; OpenAI's others mean nothing there.
                let known = serde_json::from_str::<RawObject>(value.get()).is_ok_and(|o| {
                    o.0.iter().all(|(k, _)| {
                        k == "reasoning_summary_delivery" || k == "include_obfuscation"
                    })
                });
                if known {
                    out.0.push((key, value));
                } else {
                    ignored.push(key);
                }
            }
            "previous_response_id" | "background" | "conversation" | "prompt" => {}
            _ if value.get() == "null" => {}
            known if PASSED.contains(&known) => out.0.push((key, value)),
            _ => {
                if !DROPPED.contains(&key.as_str()) {
                    tracing::debug!("dropping an unknown /v1/responses parameter: {key}");
                }
                ignored.push(key);
            }
        }
    }
    if out.get("model").is_none() {
        out.0.insert(0, ("model".into(), to_raw(context.model)));
    }
    if out.get("reasoning").is_none()
        && let Some(effort) = context.suffix_effort
    {
        out.set("reasoning", to_raw(&serde_json::json!({"effort": effort})));
    }
    if !context.compact {
        if context.keep && out.get("include").is_none() {
            out.set("include", raw(r#"["reasoning.encrypted_content"]"#));
        }
        out.set("store", raw("false"));
        out.set("stream", raw("true"));
    }
    if out.get("prompt_cache_key").is_none() {
        out.set("prompt_cache_key", to_raw(context.session));
    }
    Ok(Parts {
        members: out,
        input,
        ignored,
        lite,
    })
}

/// The body without the reasoning among its first `before` input items, for an account that
/// cannot read them (their encrypted content is bound to the account that made them), and how
/// many items its input had; `None` when there is no reasoning there.
pub fn without_reasoning(body: &[u8], before: usize) -> Option<(Vec<u8>, usize)> {
    let mut object: RawObject = serde_json::from_slice(body).ok()?;
    let items: Vec<Box<RawValue>> = serde_json::from_str(object.get("input")?.get()).ok()?;
    let count = items.len();
    let kept: Vec<Box<RawValue>> = items
        .into_iter()
        .enumerate()
        .filter(|(at, item)| *at >= before || item_type(item).as_deref() != Some("reasoning"))
        .map(|(_, item)| item)
        .collect();
    if kept.len() == count {
        return None;
    }
    object.set("input", to_raw(&kept));
    Some((serde_json::to_vec(&object).ok()?, count))
}

fn item_type(item: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    serde_json::from_str::<Kind>(item.get()).ok()?.kind
}

/// `input`'s items: a string is one user message.
fn parse_input(input: &RawValue) -> Result<Vec<Box<RawValue>>, ApiError> {
    if let Ok(text) = serde_json::from_str::<String>(input.get()) {
        return Ok(vec![to_raw(&serde_json::json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }))]);
    }
    serde_json::from_str(input.get()).map_err(|_| {
        ApiError::invalid(
            "Invalid type for 'input': expected a string or an array of input items.",
            Some("input"),
        )
    })
}

/// Items pass as written, but a `system` message becomes `developer` (the backend's name for
/// it) and an `item_reference` becomes the item.
fn input_items(
    items: Vec<Box<RawValue>>,
    first: usize,
    item: &dyn Fn(&str) -> Option<Box<RawValue>>,
) -> Result<Vec<Box<RawValue>>, ApiError> {
    let mut out = Vec::with_capacity(items.len());
    for (index, value) in (first..).zip(items) {
        let mut object: RawObject = serde_json::from_str(value.get()).map_err(|_| {
            ApiError::invalid(
                format!("Invalid type for 'input[{index}]': expected an object."),
                Some(&format!("input[{index}]")),
            )
        })?;
        let kind = object.str("type");
        let role = object.str("role");
        match (kind.as_deref(), role.as_deref()) {
            (Some("item_reference"), _) => {
                let id = object.str("id").ok_or_else(|| {
                    ApiError::invalid(
                        format!("Missing required parameter: 'input[{index}].id'."),
                        Some(&format!("input[{index}].id")),
                    )
                })?;
                let found = item(&id).ok_or_else(|| {
                    ApiError::invalid(
                        format!(
                            "Item with id '{}' not found. codex-proxy resolves item references \
                             from the responses it keeps ([responses] in its config); send the \
                             item itself instead.",
                            crate::api_error::quoted(&id)
                        ),
                        Some(&format!("input[{index}].id")),
                    )
                })?;
                out.push(found);
            }
            (None | Some("message"), Some("system")) => {
                object.set("role", raw(r#""developer""#));
                out.push(object.to_raw());
            }
            _ => out.push(value),
        }
    }
    Ok(out)
}

fn with_effort(reasoning: &RawValue, effort: Option<&str>) -> Box<RawValue> {
    let mut object: RawObject = serde_json::from_str(reasoning.get()).unwrap_or_default();
    if let Some(effort) = effort {
        object.set("effort", to_raw(effort));
    }
    object.to_raw()
}

fn with_encrypted_reasoning(include: &RawValue) -> Box<RawValue> {
    let Ok(mut list) = serde_json::from_str::<Vec<String>>(include.get()) else {
        return include.to_owned();
    };
    if !list.iter().any(|i| i == "reasoning.encrypted_content") {
        list.push("reasoning.encrypted_content".into());
    }
    to_raw(&list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite_text(body: &str, keep: bool, history: Vec<Box<RawValue>>) -> (String, Vec<String>) {
        let object = parse(body.as_bytes()).unwrap();
        let out = rewrite(
            object,
            Context {
                model: "gpt-5.5",
                suffix_effort: None,
                history,
                session: "sess-1",
                keep,
                compact: false,
            },
            &|id| {
                (id == "msg_1").then(|| {
                    raw(r#"{"type":"message","id":"msg_1","role":"assistant","content":[]}"#)
                })
            },
        )
        .unwrap();
        (String::from_utf8(out.body).unwrap(), out.ignored)
    }

    #[test]
    fn a_codex_cli_turn_passes_unchanged() {
        // The shape Codex CLI 0.169 sends: no instructions, fields in its order.
        let body = r#"{"model":"gpt-5.5","input":[{"type":"message","role":"developer","content":[{"type":"input_text","text":"base"}]},{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}],"x_unknown":{"b":1,"a":2}}],"tools":[{"type":"custom","name":"apply_patch","format":{"type":"grammar","syntax":"lark","definition":"start: x"}},{"type":"web_search","external_web_access":false}],"tool_choice":"auto","parallel_tool_calls":true,"reasoning":{"effort":"medium","summary":"auto"},"store":false,"stream":true,"include":["reasoning.encrypted_content"],"prompt_cache_key":"019f-abc","text":{"verbosity":"low"},"client_metadata":{"session_id":"019f-abc"}}"#;
        let (out, ignored) = rewrite_text(body, false, Vec::new());
        assert_eq!(out, body);
        assert!(ignored.is_empty());
    }

    #[test]
    fn what_the_backend_refuses_is_rewritten_and_reported() {
        let body = r#"{"model":"alias","instructions":"","input":"hello","temperature":0.2,"max_output_tokens":100,"metadata":{"a":"b"},"store":true,"service_tier":"auto","user":"u","wild":1}"#;
        let (out, ignored) = rewrite_text(body, true, Vec::new());
        assert_eq!(
            out,
            r#"{"model":"gpt-5.5","input":[{"content":[{"text":"hello","type":"input_text"}],"role":"user","type":"message"}],"store":false,"include":["reasoning.encrypted_content"],"stream":true,"prompt_cache_key":"sess-1"}"#
        );
        assert_eq!(
            ignored,
            [
                "temperature",
                "max_output_tokens",
                "metadata",
                "service_tier",
                "user",
                "wild"
            ]
        );
    }

    #[test]
    fn system_items_become_developer_and_references_are_resolved() {
        let body = r#"{"model":"m","input":[{"role":"system","content":"be brief"},{"type":"item_reference","id":"msg_1"},{"role":"user","content":"go"}],"stream":false}"#;
        let history = vec![raw(
            r#"{"type":"message","role":"user","content":"earlier"}"#,
        )];
        let (out, _) = rewrite_text(body, false, history);
        assert_eq!(
            out,
            r#"{"model":"gpt-5.5","input":[{"type":"message","role":"user","content":"earlier"},{"role":"developer","content":"be brief"},{"type":"message","id":"msg_1","role":"assistant","content":[]},{"role":"user","content":"go"}],"stream":true,"store":false,"prompt_cache_key":"sess-1"}"#
        );
        let unknown =
            parse(br#"{"model":"m","input":[{"type":"item_reference","id":"nope"}]}"#).unwrap();
        let error = rewrite(
            unknown,
            Context {
                model: "m",
                suffix_effort: None,
                history: Vec::new(),
                session: "s",
                keep: false,
                compact: false,
            },
            &|_| None,
        )
        .unwrap_err();
        assert_eq!(error.param.as_deref(), Some("input[0].id"));
    }

    #[test]
    fn reasoning_items_can_be_left_out_for_another_account() {
        let body = br#"{"model":"m","input":[{"type":"message","role":"user","content":"a"},{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAA"},{"type":"message","role":"assistant","content":[]}],"store":false}"#;
        let (out, count) = without_reasoning(body, usize::MAX).unwrap();
        assert_eq!(count, 3);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            r#"{"model":"m","input":[{"type":"message","role":"user","content":"a"},{"type":"message","role":"assistant","content":[]}],"store":false}"#
        );
        assert!(
            without_reasoning(out.as_bytes(), usize::MAX).is_none(),
            "none left: nothing to do"
        );
        // Only the reasoning among the first items: what an account the conversation moved
        // from made.
        assert!(without_reasoning(body, 1).is_none());
        let two = br#"{"input":[{"summary":[],"type":"reasoning","encrypted_content":"a"},{"type":"message","role":"user","content":"b"},{"type":"reasoning","summary":[],"encrypted_content":"c"}]}"#;
        let (out, _) = without_reasoning(two, 2).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"input":[{"type":"message","role":"user","content":"b"},{"type":"reasoning","summary":[],"encrypted_content":"c"}]}"#
        );
    }

    #[test]
    fn the_head_reads_modes_and_refuses_what_needs_platform_state() {
        let head = head(&parse(br#"{"model":"m","input":"x"}"#).unwrap()).unwrap();
        assert!(!head.stream && head.store);
        assert_eq!(head.first_item, "x");
        for body in [
            r#"{"input":"x","background":true}"#,
            r#"{"input":"x","conversation":"conv_1"}"#,
            r#"{"model":"m"}"#,
            r#"{"input":"x","stream":"yes"}"#,
        ] {
            assert!(
                super::head(&parse(body.as_bytes()).unwrap()).is_err(),
                "{body}"
            );
        }
    }
}
