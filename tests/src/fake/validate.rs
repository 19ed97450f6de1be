//! Strict validation of request bodies, with the real services' messages and `param` paths.
//!
//! Top-level problems are answered as the Codex backend answers them (`{"detail": …}`: unknown
//! parameter, `store`, `stream`, instructions, model); problems inside the body as the Responses
//! engine does (`{"error": {message, param, code}}`).

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::Rejection;
use super::catalog::{self, ModelSpec};
use super::util::b64url_decode;

/// Fields the backend accepts on `/responses` (§2.3); anything else is refused.
pub const RESPONSES_FIELDS: &[&str] = &[
    "model",
    "instructions",
    "input",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "store",
    "stream",
    "stream_options",
    "include",
    "service_tier",
    "prompt_cache_key",
    "text",
    "client_metadata",
];

/// Fields of `/responses/compact` (§5.3): no store/stream/include/client_metadata.
pub const COMPACT_FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "parallel_tool_calls",
    "reasoning",
    "service_tier",
    "prompt_cache_key",
    "text",
];

/// What the rest of the fake needs from a valid request.
#[derive(Debug)]
pub struct Checked {
    pub model: &'static ModelSpec,
    pub summary_requested: bool,
    pub include_encrypted: bool,
    pub prompt_cache_key: Option<String>,
    pub last_user_text: String,
    pub body_len: usize,
    /// The request offers the `image_generation` tool.
    pub image_tool: bool,
}

/// Who is asking: the version gates models, the account binds encrypted reasoning.
pub struct Caller<'a> {
    pub account_id: &'a str,
    pub client_version: &'a str,
    pub lite_header: bool,
    /// The fake's secret, to open encrypted reasoning blobs.
    pub secret: &'a [u8],
}

/// The body must be an object with only `fields` at the top level.
fn top_level<'a>(body: &'a Value, fields: &[&str]) -> Result<&'a Map<String, Value>, Rejection> {
    let map = body.as_object().ok_or_else(|| {
        Rejection::detail(
            StatusCode::BAD_REQUEST,
            "Request body must be a JSON object",
        )
    })?;
    match map.keys().find(|k| !fields.contains(&k.as_str())) {
        Some(unknown) => Err(unsupported(unknown)),
        None => Ok(map),
    }
}

pub fn check_responses(
    body: &Value,
    body_len: usize,
    caller: &Caller<'_>,
) -> Result<Checked, Rejection> {
    let map = top_level(body, RESPONSES_FIELDS)?;
    let model = check_model(map, caller.client_version)?;
    if map.get("stream") != Some(&Value::Bool(true)) {
        return Err(Rejection::detail(
            StatusCode::BAD_REQUEST,
            "Stream must be set to true",
        ));
    }
    // The backend treats a missing `store` as true.
    if map.get("store") != Some(&Value::Bool(false)) {
        return Err(Rejection::detail(
            StatusCode::BAD_REQUEST,
            "Store must be set to false",
        ));
    }
    check_instructions(map, model, caller.lite_header)?;
    let input = check_input(map, caller)?;
    let tool_names = check_tools(map)?;
    check_tool_choice(map, &tool_names)?;
    opt_bool(map, "parallel_tool_calls", "")?;
    let summary_requested = check_reasoning(map, model)?;
    let include_encrypted = check_include(map)?;
    check_text(map, &input.all_text, map.get("instructions"))?;
    check_service_tier(map)?;
    let prompt_cache_key = check_prompt_cache_key(map)?;
    check_string_map(map, "client_metadata")?;
    if let Some(options) = map.get("stream_options") {
        let options = object(options, "stream_options")?;
        only(
            options,
            &["reasoning_summary_delivery", "include_obfuscation"],
            "stream_options",
        )?;
    }
    Ok(Checked {
        model,
        summary_requested,
        include_encrypted,
        prompt_cache_key,
        last_user_text: input.last_user_text,
        body_len,
        image_tool: map
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| tools.iter().any(|t| t["type"] == "image_generation")),
    })
}

/// `/responses/compact`: the same item and tool rules, unary and without stream/store.
pub fn check_compact(body: &Value, caller: &Caller<'_>) -> Result<Vec<Value>, Rejection> {
    let map = top_level(body, COMPACT_FIELDS)?;
    let model = check_model(map, caller.client_version)?;
    check_instructions(map, model, caller.lite_header)?;
    let input = check_input(map, caller)?;
    let tool_names = check_tools(map)?;
    let _ = tool_names;
    opt_bool(map, "parallel_tool_calls", "")?;
    check_reasoning(map, model)?;
    check_service_tier(map)?;
    check_prompt_cache_key(map)?;
    Ok(input.user_messages)
}

fn unsupported(name: &str) -> Rejection {
    Rejection::detail(
        StatusCode::BAD_REQUEST,
        format!("Unsupported parameter: {name}"),
    )
}

fn check_model(
    map: &Map<String, Value>,
    client_version: &str,
) -> Result<&'static ModelSpec, Rejection> {
    let slug = map
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| Rejection::detail(StatusCode::BAD_REQUEST, "Model is required"))?;
    let model = catalog::find(slug).ok_or_else(|| {
        Rejection::detail(
            StatusCode::BAD_REQUEST,
            format!("The '{slug}' model is not supported when using Codex with a ChatGPT account."),
        )
    })?;
    if !client_version.is_empty() && !model.allows_client(client_version) {
        return Err(Rejection::detail(
            StatusCode::BAD_REQUEST,
            format!(
                "The '{slug}' model requires a newer version of Codex. Please upgrade to the latest \
                 app or CLI and try again."
            ),
        ));
    }
    Ok(model)
}

/// `instructions` may be left out: the official client (openai/codex `ResponsesApiRequest`,
/// `skip_serializing_if = "String::is_empty"`; Codex CLI 0.169 recorded) sends none and puts its
/// base instructions in the first `developer` message, and the backend serves it. Present, they
/// must be a non-empty string ("Instructions are required" was the backend's answer to an empty
/// or missing field in early 2026; the empty case is still refused here, to stay strict).
fn check_instructions(
    map: &Map<String, Value>,
    _model: &ModelSpec,
    _lite_header: bool,
) -> Result<(), Rejection> {
    match map.get("instructions") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(()),
        Some(Value::String(_)) => Err(Rejection::detail(
            StatusCode::BAD_REQUEST,
            "Instructions are required",
        )),
        Some(other) => Err(wrong_type("instructions", "a string", other)),
    }
}

struct InputSummary {
    last_user_text: String,
    all_text: String,
    user_messages: Vec<Value>,
}

fn check_input(map: &Map<String, Value>, caller: &Caller<'_>) -> Result<InputSummary, Rejection> {
    let items = match map.get("input") {
        Some(Value::Array(items)) => items,
        Some(Value::String(_)) => {
            return Err(Rejection::detail(
                StatusCode::BAD_REQUEST,
                "Input must be a list",
            ));
        }
        Some(other) => return Err(wrong_type("input", "an array", other)),
        None => return Err(missing("input")),
    };
    let mut summary = InputSummary {
        last_user_text: String::new(),
        all_text: String::new(),
        user_messages: Vec::new(),
    };
    let mut calls: HashSet<String> = HashSet::new();
    let mut custom_calls: HashSet<String> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("input[{i}]");
        let obj = object(item, &path)?;
        // Items with a role and no type are "easy" input messages.
        let kind = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            None if obj.contains_key("role") => "message",
            Some(other) => return Err(wrong_type(&format!("{path}.type"), "a string", other)),
            None => return Err(missing(&format!("{path}.type"))),
        };
        match kind {
            "message" => {
                let (role, text) = check_message(obj, &path)?;
                summary.all_text.push_str(&text);
                summary.all_text.push('\n');
                if role == "user" {
                    summary.last_user_text = text;
                    summary.user_messages.push(item.clone());
                }
            }
            "reasoning" => check_reasoning_item(obj, &path, caller)?,
            "function_call" => {
                only(
                    obj,
                    &[
                        "type",
                        "id",
                        "call_id",
                        "name",
                        "arguments",
                        "status",
                        "namespace",
                        "encrypted_function_args",
                    ],
                    &path,
                )?;
                let call_id = req_str(obj, "call_id", &path)?;
                req_str(obj, "name", &path)?;
                req_str(obj, "arguments", &path)?;
                calls.insert(call_id.to_owned());
            }
            "function_call_output" => check_output_item(obj, &path, &calls, "function call")?,
            "custom_tool_call" => {
                only(
                    obj,
                    &[
                        "type",
                        "id",
                        "call_id",
                        "name",
                        "input",
                        "status",
                        "namespace",
                    ],
                    &path,
                )?;
                let call_id = req_str(obj, "call_id", &path)?;
                req_str(obj, "name", &path)?;
                req_str(obj, "input", &path)?;
                custom_calls.insert(call_id.to_owned());
            }
            "custom_tool_call_output" => {
                check_output_item(obj, &path, &custom_calls, "custom tool call")?
            }
            "compaction" | "compaction_summary" => {
                let content = req_str(obj, "encrypted_content", &path)?;
                verify_encrypted(content, &path, caller)?;
            }
            "item_reference" => {
                // Nothing is stored with store:false, so a reference can never resolve.
                let id = req_str(obj, "id", &path)?;
                return Err(not_persisted(id));
            }
            "local_shell_call"
            | "web_search_call"
            | "image_generation_call"
            | "tool_search_call"
            | "tool_search_output"
            | "additional_tools"
            | "context_compaction"
            | "compaction_trigger"
            | "agent_message" => {}
            other => {
                return Err(invalid_value(
                    &format!("{path}.type"),
                    other,
                    &[
                        "message",
                        "reasoning",
                        "function_call",
                        "function_call_output",
                        "custom_tool_call",
                        "custom_tool_call_output",
                        "compaction",
                        "item_reference",
                    ],
                ));
            }
        }
    }
    Ok(summary)
}

/// A tool output item must answer a call made earlier in the input.
fn check_output_item(
    obj: &Map<String, Value>,
    path: &str,
    calls: &HashSet<String>,
    kind: &str,
) -> Result<(), Rejection> {
    only(
        obj,
        &["type", "id", "call_id", "output", "status", "name"],
        path,
    )?;
    let call_id = req_str(obj, "call_id", path)?;
    check_tool_output(obj, path)?;
    if calls.contains(call_id) {
        return Ok(());
    }
    Err(Rejection::api(
        StatusCode::BAD_REQUEST,
        format!("No tool call found for {kind} output with call_id {call_id}."),
        Some("input"),
        None,
    ))
}

/// Returns the role and the concatenated text of a message.
fn check_message(obj: &Map<String, Value>, path: &str) -> Result<(String, String), Rejection> {
    only(
        obj,
        &[
            "type",
            "role",
            "content",
            "id",
            "status",
            "phase",
            "internal_chat_message_metadata_passthrough",
        ],
        path,
    )?;
    let role = req_str(obj, "role", path)?;
    if !["user", "assistant", "system", "developer"].contains(&role) {
        return Err(invalid_value(
            &format!("{path}.role"),
            role,
            &["user", "assistant", "system", "developer"],
        ));
    }
    let content_path = format!("{path}.content");
    let parts = match obj.get("content") {
        Some(Value::String(text)) => return Ok((role.to_owned(), text.clone())),
        Some(Value::Array(parts)) => parts,
        Some(other) => return Err(wrong_type(&content_path, "an array", other)),
        None => return Err(missing(&content_path)),
    };
    let allowed: &[&str] = if role == "assistant" {
        &["output_text", "refusal"]
    } else {
        &["input_text", "input_image", "input_file"]
    };
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        let part_path = format!("{content_path}[{j}]");
        let part = object(part, &part_path)?;
        let kind = req_str(part, "type", &part_path)?;
        if !allowed.contains(&kind) {
            return Err(invalid_value(&format!("{part_path}.type"), kind, allowed));
        }
        match kind {
            "input_text" => {
                only(part, &["type", "text"], &part_path)?;
                text.push_str(req_str(part, "text", &part_path)?);
            }
            "output_text" => {
                only(
                    part,
                    &["type", "text", "annotations", "logprobs"],
                    &part_path,
                )?;
                text.push_str(req_str(part, "text", &part_path)?);
            }
            "refusal" => {
                only(part, &["type", "refusal"], &part_path)?;
                req_str(part, "refusal", &part_path)?;
            }
            "input_image" => check_image(part, &part_path)?,
            _ => {
                only(
                    part,
                    &["type", "file_id", "file_data", "filename", "file_url"],
                    &part_path,
                )?;
            }
        }
    }
    Ok((role.to_owned(), text))
}

fn check_image(part: &Map<String, Value>, path: &str) -> Result<(), Rejection> {
    only(part, &["type", "image_url", "file_id", "detail"], path)?;
    if let Some(detail) = opt_str(part, "detail", path)? {
        let allowed = ["auto", "low", "high", "original"];
        if !allowed.contains(&detail) {
            return Err(invalid_value(&format!("{path}.detail"), detail, &allowed));
        }
    }
    let Some(url) = opt_str(part, "image_url", path)? else {
        if part.contains_key("file_id") {
            return Ok(());
        }
        return Err(missing(&format!("{path}.image_url")));
    };
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    let valid = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .is_some_and(|(mime, data)| {
            use base64::Engine;
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
                return false;
            };
            match mime {
                "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "image/jpeg" | "image/jpg" => bytes.starts_with(&[0xff, 0xd8, 0xff]),
                "image/gif" => bytes.starts_with(b"GIF8"),
                "image/webp" => {
                    bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP"
                }
                _ => false,
            }
        });
    if valid {
        Ok(())
    } else if url.starts_with("data:") {
        Err(Rejection::api(
            StatusCode::BAD_REQUEST,
            "The image data you provided does not represent a valid image. Please check your input \
             and try again with one of the supported image formats: ['image/jpeg', 'image/png', \
             'image/gif', 'image/webp'].",
            None,
            Some("invalid_value"),
        ))
    } else {
        Err(Rejection::api(
            StatusCode::BAD_REQUEST,
            format!("Invalid '{path}.image_url': expected a URL or a base64 data URL."),
            Some(&format!("{path}.image_url")),
            Some("invalid_value"),
        ))
    }
}

fn check_tool_output(obj: &Map<String, Value>, path: &str) -> Result<(), Rejection> {
    let out_path = format!("{path}.output");
    match obj.get("output") {
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let part_path = format!("{out_path}[{j}]");
                let part = object(part, &part_path)?;
                let kind = req_str(part, "type", &part_path)?;
                match kind {
                    "input_text" => {
                        only(part, &["type", "text"], &part_path)?;
                        req_str(part, "text", &part_path)?;
                    }
                    "input_image" => check_image(part, &part_path)?,
                    "input_file" | "input_audio" | "encrypted_content" => {}
                    other => {
                        return Err(invalid_value(
                            &format!("{part_path}.type"),
                            other,
                            &["input_text", "input_image", "input_file"],
                        ));
                    }
                }
            }
            Ok(())
        }
        Some(other) => Err(wrong_type(&out_path, "a string", other)),
        None => Err(missing(&out_path)),
    }
}

fn check_reasoning_item(
    obj: &Map<String, Value>,
    path: &str,
    caller: &Caller<'_>,
) -> Result<(), Rejection> {
    only(
        obj,
        &[
            "type",
            "id",
            "summary",
            "content",
            "encrypted_content",
            "status",
        ],
        path,
    )?;
    let summary_path = format!("{path}.summary");
    match obj.get("summary") {
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let part_path = format!("{summary_path}[{j}]");
                let part = object(part, &part_path)?;
                only(part, &["type", "text"], &part_path)?;
                let kind = req_str(part, "type", &part_path)?;
                if kind != "summary_text" {
                    return Err(invalid_value(
                        &format!("{part_path}.type"),
                        kind,
                        &["summary_text"],
                    ));
                }
                req_str(part, "text", &part_path)?;
            }
        }
        Some(other) => return Err(wrong_type(&summary_path, "an array", other)),
        None => return Err(missing(&summary_path)),
    }
    match obj.get("encrypted_content") {
        Some(Value::String(content)) => verify_encrypted(content, path, caller),
        // Without encrypted content the server would have to look the item up, and nothing is
        // stored with store:false.
        _ => Err(not_persisted(
            obj.get("id").and_then(Value::as_str).unwrap_or("(no id)"),
        )),
    }
}

fn verify_encrypted(content: &str, path: &str, caller: &Caller<'_>) -> Result<(), Rejection> {
    match decode_encrypted(caller.secret, content) {
        Some(account) if account == caller.account_id => Ok(()),
        _ => Err(Rejection::api(
            StatusCode::BAD_REQUEST,
            format!(
                "The encrypted content for item {path} could not be verified. Reason: Encrypted \
                 content organization_id did not match the target organization."
            ),
            None,
            Some("invalid_encrypted_content"),
        )),
    }
}

fn not_persisted(id: &str) -> Rejection {
    Rejection::api(
        StatusCode::NOT_FOUND,
        format!(
            "Item with id '{id}' not found. Items are not persisted when `store` is set to false. \
             Try again with `store` set to true, or remove this item from your input."
        ),
        Some("input"),
        None,
    )
}

/// Returns the declared tool names.
fn check_tools(map: &Map<String, Value>) -> Result<Vec<String>, Rejection> {
    let tools = match map.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    };
    let mut names = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        check_tool(tool, &format!("tools[{i}]"), &mut names)?;
    }
    let mut seen = HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(Rejection::api(
            StatusCode::BAD_REQUEST,
            format!("Duplicate tool name: '{dup}'. Tool names must be unique."),
            Some("tools"),
            Some("invalid_value"),
        ));
    }
    Ok(names)
}

fn check_tool(tool: &Value, path: &str, names: &mut Vec<String>) -> Result<(), Rejection> {
    let obj = object(tool, path)?;
    let kind = req_str(obj, "type", path)?;
    match kind {
        "function" => {
            only(
                obj,
                &[
                    "type",
                    "name",
                    "description",
                    "parameters",
                    "strict",
                    "defer_loading",
                ],
                path,
            )?;
            let name = check_tool_name(obj, path)?;
            opt_str(obj, "description", path)?;
            let strict = opt_bool(obj, "strict", path)?.unwrap_or(false);
            if let Some(params) = obj.get("parameters").filter(|p| !p.is_null()) {
                let params_path = format!("{path}.parameters");
                object(params, &params_path)?;
                if strict {
                    check_strict_schema(params, "()").map_err(|why| {
                        Rejection::api(
                            StatusCode::BAD_REQUEST,
                            format!("Invalid schema for function '{name}': {why}"),
                            Some(&params_path),
                            Some("invalid_function_parameters"),
                        )
                    })?;
                }
            }
            names.push(name);
        }
        "custom" => {
            only(
                obj,
                &["type", "name", "description", "format", "defer_loading"],
                path,
            )?;
            names.push(check_tool_name(obj, path)?);
            if let Some(format) = obj.get("format") {
                let fpath = format!("{path}.format");
                let format = object(format, &fpath)?;
                let ftype = req_str(format, "type", &fpath)?;
                match ftype {
                    "text" => only(format, &["type"], &fpath)?,
                    "grammar" => {
                        only(format, &["type", "syntax", "definition"], &fpath)?;
                        let syntax = req_str(format, "syntax", &fpath)?;
                        if !["lark", "regex"].contains(&syntax) {
                            return Err(invalid_value(
                                &format!("{fpath}.syntax"),
                                syntax,
                                &["lark", "regex"],
                            ));
                        }
                        req_str(format, "definition", &fpath)?;
                    }
                    other => {
                        return Err(invalid_value(
                            &format!("{fpath}.type"),
                            other,
                            &["text", "grammar"],
                        ));
                    }
                }
            }
        }
        "namespace" => {
            only(obj, &["type", "name", "description", "tools"], path)?;
            req_str(obj, "name", path)?;
            let inner_path = format!("{path}.tools");
            let inner = obj
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| missing(&inner_path))?;
            for (j, t) in inner.iter().enumerate() {
                check_tool(t, &format!("{inner_path}[{j}]"), names)?;
            }
        }
        "web_search" | "web_search_preview" | "tool_search" | "local_shell" => {}
        "image_generation" => check_image_tool(obj, path)?,
        other => {
            return Err(invalid_value(
                &format!("{path}.type"),
                other,
                &[
                    "function",
                    "custom",
                    "namespace",
                    "web_search",
                    "tool_search",
                    "image_generation",
                ],
            ));
        }
    }
    Ok(())
}

/// The image tool's options, as the Responses API documents them.
fn check_image_tool(obj: &Map<String, Value>, path: &str) -> Result<(), Rejection> {
    only(
        obj,
        &[
            "type",
            "model",
            "size",
            "quality",
            "output_format",
            "output_compression",
            "background",
            "moderation",
            "input_fidelity",
            "input_image_mask",
            "partial_images",
        ],
        path,
    )?;
    let choices: [(&str, &[&str]); 6] = [
        ("size", &["auto", "1024x1024", "1024x1536", "1536x1024"]),
        ("quality", &["auto", "low", "medium", "high"]),
        ("output_format", &["png", "webp", "jpeg"]),
        ("background", &["auto", "transparent", "opaque"]),
        ("moderation", &["auto", "low"]),
        ("input_fidelity", &["low", "high"]),
    ];
    for (key, allowed) in choices {
        let field = format!("{path}.{key}");
        if let Some(value) = opt_str(obj, key, path)?
            && !allowed.contains(&value)
        {
            return Err(invalid_value(&field, value, allowed));
        }
    }
    if let Some(compression) = obj.get("output_compression") {
        let ok = compression.as_u64().is_some_and(|c| c <= 100);
        if !ok {
            return Err(wrong_type(
                &format!("{path}.output_compression"),
                "an integer from 0 to 100",
                compression,
            ));
        }
    }
    if let Some(mask) = obj.get("input_image_mask") {
        let mask = object(mask, &format!("{path}.input_image_mask"))?;
        req_str(mask, "image_url", &format!("{path}.input_image_mask"))?;
    }
    Ok(())
}

fn check_tool_name(obj: &Map<String, Value>, path: &str) -> Result<String, Rejection> {
    let name = req_str(obj, "name", path)?;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(Rejection::api(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid '{path}.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
            ),
            Some(&format!("{path}.name")),
            Some("invalid_value"),
        ));
    }
    Ok(name.to_owned())
}

/// The rules strict mode puts on a JSON schema: every object closes `additionalProperties` and
/// requires every property. Returns the engine's message for the first violation.
pub fn check_strict_schema(schema: &Value, context: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    let is_object = obj.get("type").is_some_and(|t| {
        t == "object"
            || t.as_array()
                .is_some_and(|a| a.contains(&Value::from("object")))
    });
    if is_object || obj.contains_key("properties") {
        if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(format!(
                "In context={context}, 'additionalProperties' is required to be supplied and to be false."
            ));
        }
        let props = obj.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = props {
            if let Some(missing) = props.keys().find(|k| !required.contains(&k.as_str())) {
                return Err(format!(
                    "In context={context}, 'required' is required to be supplied and to be an array \
                     including every key in properties. Missing '{missing}'."
                ));
            }
            for (key, sub) in props {
                check_strict_schema(sub, &format!("('properties', '{key}')"))?;
            }
        }
    }
    if let Some(items) = obj.get("items") {
        check_strict_schema(items, &format!("{context}, 'items'"))?;
    }
    for keyword in ["anyOf", "allOf", "oneOf"] {
        if let Some(list) = obj.get(keyword).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                check_strict_schema(sub, &format!("{context}, '{keyword}', {i}"))?;
            }
        }
    }
    for keyword in ["$defs", "definitions"] {
        if let Some(defs) = obj.get(keyword).and_then(Value::as_object) {
            for (name, sub) in defs {
                check_strict_schema(sub, &format!("('{keyword}', '{name}')"))?;
            }
        }
    }
    Ok(())
}

fn check_tool_choice(map: &Map<String, Value>, tools: &[String]) -> Result<(), Rejection> {
    match map.get("tool_choice") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(choice)) => {
            let allowed = ["none", "auto", "required"];
            if allowed.contains(&choice.as_str()) {
                Ok(())
            } else {
                Err(invalid_value("tool_choice", choice, &allowed))
            }
        }
        Some(Value::Object(obj)) => {
            let kind = req_str(obj, "type", "tool_choice")?;
            match kind {
                "function" | "custom" => {
                    only(obj, &["type", "name"], "tool_choice")?;
                    let name = req_str(obj, "name", "tool_choice")?;
                    if tools.iter().any(|t| t == name) {
                        Ok(())
                    } else {
                        Err(Rejection::api(
                            StatusCode::BAD_REQUEST,
                            format!("Tool choice '{name}' not found in 'tools' parameter."),
                            Some("tool_choice"),
                            None,
                        ))
                    }
                }
                "allowed_tools" => Ok(()),
                other => Err(invalid_value(
                    "tool_choice.type",
                    other,
                    &["function", "custom", "allowed_tools"],
                )),
            }
        }
        Some(other) => Err(wrong_type("tool_choice", "a string", other)),
    }
}

/// Returns whether reasoning summaries were requested.
fn check_reasoning(map: &Map<String, Value>, model: &ModelSpec) -> Result<bool, Rejection> {
    let Some(reasoning) = map.get("reasoning").filter(|r| !r.is_null()) else {
        return Ok(false);
    };
    let obj = object(reasoning, "reasoning")?;
    only(
        obj,
        &["effort", "summary", "context", "generate_summary"],
        "reasoning",
    )?;
    if let Some(effort) = opt_str(obj, "effort", "reasoning")?
        && !model.efforts.contains(&effort)
    {
        return Err(Rejection::api(
            StatusCode::BAD_REQUEST,
            format!(
                "Unsupported value: 'reasoning.effort' does not support '{effort}' with the '{}' \
                 model. Supported values are: {}.",
                model.slug,
                quote_list(model.efforts)
            ),
            Some("reasoning.effort"),
            Some("unsupported_value"),
        ));
    }
    let summary = opt_str(obj, "summary", "reasoning")?;
    if let Some(summary) = summary {
        let allowed = ["auto", "concise", "detailed", "none"];
        if !allowed.contains(&summary) {
            return Err(invalid_value("reasoning.summary", summary, &allowed));
        }
    }
    if let Some(context) = opt_str(obj, "context", "reasoning")? {
        let allowed = ["all_turns", "current_turn"];
        if !allowed.contains(&context) {
            return Err(invalid_value("reasoning.context", context, &allowed));
        }
    }
    Ok(matches!(summary, Some("auto" | "concise" | "detailed")))
}

/// Returns whether encrypted reasoning content was asked for.
fn check_include(map: &Map<String, Value>) -> Result<bool, Rejection> {
    let Some(include) = map.get("include").filter(|v| !v.is_null()) else {
        return Ok(false);
    };
    let list = include
        .as_array()
        .ok_or_else(|| wrong_type("include", "an array", include))?;
    let allowed = [
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
        "web_search_call.action.sources",
    ];
    let mut encrypted = false;
    for (i, entry) in list.iter().enumerate() {
        let path = format!("include[{i}]");
        let value = entry
            .as_str()
            .ok_or_else(|| wrong_type(&path, "a string", entry))?;
        if !allowed.contains(&value) {
            return Err(invalid_value(&path, value, &allowed));
        }
        encrypted |= value == "reasoning.encrypted_content";
    }
    Ok(encrypted)
}

fn check_text(
    map: &Map<String, Value>,
    input_text: &str,
    instructions: Option<&Value>,
) -> Result<(), Rejection> {
    let Some(text) = map.get("text").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let obj = object(text, "text")?;
    only(obj, &["verbosity", "format"], "text")?;
    if let Some(verbosity) = opt_str(obj, "verbosity", "text")? {
        let allowed = ["low", "medium", "high"];
        if !allowed.contains(&verbosity) {
            return Err(invalid_value("text.verbosity", verbosity, &allowed));
        }
    }
    let Some(format) = obj.get("format").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let format = object(format, "text.format")?;
    let kind = req_str(format, "type", "text.format")?;
    match kind {
        "text" => only(format, &["type"], "text.format"),
        "json_object" => {
            only(format, &["type"], "text.format")?;
            let instructions = instructions.and_then(Value::as_str).unwrap_or_default();
            let mentions_json = input_text.to_ascii_lowercase().contains("json")
                || instructions.to_ascii_lowercase().contains("json");
            if mentions_json {
                Ok(())
            } else {
                Err(Rejection::api(
                    StatusCode::BAD_REQUEST,
                    "Response input messages must contain the word 'json' in some form to use \
                     'text.format' of type 'json_object'.",
                    Some("input"),
                    None,
                ))
            }
        }
        "json_schema" => {
            only(
                format,
                &["type", "name", "schema", "strict", "description"],
                "text.format",
            )?;
            let name = req_str(format, "name", "text.format")?;
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid_value(
                    "text.format.name",
                    name,
                    &["a name matching ^[a-zA-Z0-9_-]{1,64}$"],
                ));
            }
            let schema = format
                .get("schema")
                .ok_or_else(|| missing("text.format.schema"))?;
            object(schema, "text.format.schema")?;
            if opt_bool(format, "strict", "text.format")?.unwrap_or(false) {
                check_strict_schema(schema, "()").map_err(|why| {
                    Rejection::api(
                        StatusCode::BAD_REQUEST,
                        format!("Invalid schema for response_format '{name}': {why}"),
                        Some("text.format.schema"),
                        Some("invalid_json_schema"),
                    )
                })?;
            }
            Ok(())
        }
        other => Err(invalid_value(
            "text.format.type",
            other,
            &["text", "json_object", "json_schema"],
        )),
    }
}

fn check_service_tier(map: &Map<String, Value>) -> Result<(), Rejection> {
    if let Some(tier) = opt_str(map, "service_tier", "")? {
        let allowed = ["auto", "default", "flex", "priority"];
        if !allowed.contains(&tier) {
            return Err(invalid_value("service_tier", tier, &allowed));
        }
    }
    Ok(())
}

fn check_prompt_cache_key(map: &Map<String, Value>) -> Result<Option<String>, Rejection> {
    let Some(key) = opt_str(map, "prompt_cache_key", "")? else {
        return Ok(None);
    };
    if key.chars().count() > 64 {
        return Err(Rejection::api(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid 'prompt_cache_key': string too long. Expected a string with maximum length \
                 64, but got a string with length {} instead.",
                key.chars().count()
            ),
            Some("prompt_cache_key"),
            Some("string_above_max_length"),
        ));
    }
    Ok(Some(key.to_owned()))
}

fn check_string_map(map: &Map<String, Value>, key: &str) -> Result<(), Rejection> {
    let Some(value) = map.get(key).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let obj = object(value, key)?;
    for (k, v) in obj {
        if !v.is_string() {
            return Err(wrong_type(&format!("{key}.{k}"), "a string", v));
        }
    }
    Ok(())
}

// ---- small helpers that produce the engine's messages ----

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(path: &str, expected: &str, got: &Value) -> Rejection {
    Rejection::api(
        StatusCode::BAD_REQUEST,
        format!(
            "Invalid type for '{path}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
        Some(path),
        Some("invalid_type"),
    )
}

fn missing(path: &str) -> Rejection {
    Rejection::api(
        StatusCode::BAD_REQUEST,
        format!("Missing required parameter: '{path}'."),
        Some(path),
        Some("missing_required_parameter"),
    )
}

fn quote_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

fn invalid_value(path: &str, value: &str, allowed: &[&str]) -> Rejection {
    Rejection::api(
        StatusCode::BAD_REQUEST,
        format!(
            "Invalid value: '{value}'. Supported values are: {}.",
            quote_list(allowed)
        ),
        Some(path),
        Some("invalid_value"),
    )
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Rejection> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, "an object", value))
}

fn only(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), Rejection> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => {
            let full = join(path, unknown);
            Err(Rejection::api(
                StatusCode::BAD_REQUEST,
                format!("Unknown parameter: '{full}'."),
                Some(&full),
                Some("unknown_parameter"),
            ))
        }
    }
}

fn req_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, Rejection> {
    let full = join(path, key);
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(wrong_type(&full, "a string", other)),
        None => Err(missing(&full)),
    }
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, Rejection> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(&join(path, key), "a string", other)),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, Rejection> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(&join(path, key), "a boolean", other)),
    }
}

/// Decodes the fake's encrypted reasoning blob: `gAAAAB` + base64url(payload) + `.` + mac.
pub fn decode_encrypted(secret: &[u8], content: &str) -> Option<String> {
    let body = content.strip_prefix("gAAAAB")?;
    let (payload, mac) = body.rsplit_once('.')?;
    let expected = super::util::hmac_sha256(secret, payload.as_bytes());
    if !super::util::ct_eq(&expected[..16], &b64url_decode(mac)?) {
        return None;
    }
    let value: Value = serde_json::from_slice(&b64url_decode(payload)?).ok()?;
    value
        .get("account")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub fn encode_encrypted(secret: &[u8], account_id: &str, item_id: &str) -> String {
    let payload = super::util::b64url(
        serde_json::json!({"account": account_id, "item": item_id, "nonce": super::util::random_hex(8)})
            .to_string()
            .as_bytes(),
    );
    let mac = super::util::hmac_sha256(secret, payload.as_bytes());
    format!("gAAAAB{payload}.{}", super::util::b64url(&mac[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_schema_rules() {
        let good = json!({"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false});
        assert!(check_strict_schema(&good, "()").is_ok());
        let open = json!({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]});
        assert!(
            check_strict_schema(&open, "()")
                .unwrap_err()
                .contains("additionalProperties")
        );
        let partial = json!({"type":"object","properties":{"a":{},"b":{}},"required":["a"],"additionalProperties":false});
        assert!(
            check_strict_schema(&partial, "()")
                .unwrap_err()
                .contains("Missing 'b'")
        );
        let nested = json!({"type":"object","properties":{"o":{"type":"object","properties":{"x":{}}}},"required":["o"],"additionalProperties":false});
        let err = check_strict_schema(&nested, "()").unwrap_err();
        assert!(err.contains("('properties', 'o')"), "{err}");
    }

    #[test]
    fn quote_list_reads_like_the_api() {
        assert_eq!(quote_list(&["low", "high"]), "'low' and 'high'");
        assert_eq!(quote_list(&["a", "b", "c"]), "'a', 'b', and 'c'");
    }

    #[test]
    fn encrypted_content_is_account_bound() {
        let secret = b"s";
        let blob = encode_encrypted(secret, "acct-1", "rs_1");
        assert_eq!(decode_encrypted(secret, &blob).as_deref(), Some("acct-1"));
        assert_eq!(decode_encrypted(b"other", &blob), None);
        assert_eq!(decode_encrypted(secret, "gAAAABgarbage"), None);
    }
}
