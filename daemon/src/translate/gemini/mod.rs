//! The Gemini API (`models/{model}:generateContent`, `:streamGenerateContent`,
//! `:countTokens`): requests as Google's SDKs and the Gemini CLI send them, and their
//! translation to the Codex Responses wire.
//!
//! A `generateContent` body is a conversation of `user` and `model` turns made of parts (text,
//! inline data, function calls and their responses), a system instruction, function
//! declarations and a generation config. It becomes a Chat Completions request and goes through
//! that translation — one set of rules for instructions, tools, schemas and images. What is
//! Gemini's own is done here: parts, Google's schema dialect (upper-case types, `nullable`),
//! function responses that name their function, `thinkingConfig`, `toolConfig`.
//!
//! - [`render`]: the neutral output layer's events → `GenerateContentResponse` chunks.

pub mod render;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::chat::{
    self, ChatMessage, ChatTool, FileRef, FunctionCallMsg, FunctionDef, ImageUrl, JsonSchemaFormat,
    MessageContent, ResponseFormat, Stop, ToolCall as ChatToolCall,
};
use super::messages::request::{budget_effort, nearest_effort};
use crate::api_error::{ApiError, quoted};

/// Most contents, parts per content and function declarations a request may carry.
const MAX_CONTENTS: usize = 10_000;
const MAX_PARTS: usize = 1_000;
const MAX_FUNCTIONS: usize = 512;

/// `generateContent` and `streamGenerateContent` (camelCase as the REST API documents it; the
/// snake_case spelling the API also takes is accepted for the top-level fields).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    #[serde(default)]
    pub contents: Vec<Content>,
    #[serde(default, alias = "system_instruction")]
    pub system_instruction: Option<Content>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, alias = "tool_config")]
    pub tool_config: Option<ToolConfig>,
    #[serde(default, alias = "generation_config")]
    pub generation_config: Option<GenerationConfig>,
    #[serde(default, alias = "safety_settings")]
    pub safety_settings: Option<Value>,
    #[serde(default, alias = "cached_content")]
    pub cached_content: Option<String>,
    /// Present in `countTokens`' nested `generateContentRequest`.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `countTokens`: the contents, or a whole `generateContentRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensRequest {
    #[serde(default)]
    pub contents: Vec<Content>,
    #[serde(default, alias = "generate_content_request")]
    pub generate_content_request: Option<GenerateContentRequest>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Content {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One part. Exactly one of the data fields is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default)]
    pub text: Option<String>,
    /// A thought summary the model produced: shown, never sent back (the daemon replays the
    /// reasoning itself, encrypted).
    #[serde(default)]
    pub thought: Option<bool>,
    #[serde(default, alias = "inline_data")]
    pub inline_data: Option<Blob>,
    #[serde(default, alias = "file_data")]
    pub file_data: Option<FileData>,
    #[serde(default, alias = "function_call")]
    pub function_call: Option<FunctionCall>,
    #[serde(default, alias = "function_response")]
    pub function_response: Option<FunctionResponse>,
    /// Kinds of part the Codex models have no counterpart for (read to say so by name; other
    /// fields — `thoughtSignature`, `videoMetadata`, … — are read past). Named rather than
    /// gathered with `flatten`, which would make every part go through serde's buffering.
    #[serde(default, alias = "executable_code")]
    pub executable_code: Option<Value>,
    #[serde(default, alias = "code_execution_result")]
    pub code_execution_result: Option<Value>,
}

impl Part {
    /// The name of an unsupported kind this part is, if it is one.
    fn unsupported(&self) -> Option<&'static str> {
        if self.executable_code.is_some() {
            Some("executableCode")
        } else if self.code_execution_result.is_some() {
            Some("codeExecutionResult")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    #[serde(alias = "mime_type")]
    pub mime_type: String,
    pub data: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    #[serde(default, alias = "mime_type")]
    pub mime_type: Option<String>,
    #[serde(alias = "file_uri")]
    pub file_uri: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionCall {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub args: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionResponse {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub response: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    #[serde(default, alias = "function_declarations")]
    pub function_declarations: Option<Vec<FunctionDeclaration>>,
    #[serde(default, alias = "google_search")]
    pub google_search: Option<Value>,
    #[serde(default, alias = "google_search_retrieval")]
    pub google_search_retrieval: Option<Value>,
    #[serde(default, alias = "code_execution")]
    pub code_execution: Option<Value>,
    /// Google's other hosted tools, reported as ignored.
    #[serde(default, alias = "url_context")]
    pub url_context: Option<Value>,
    #[serde(default, alias = "google_maps")]
    pub google_maps: Option<Value>,
    #[serde(default, alias = "file_search")]
    pub file_search: Option<Value>,
    #[serde(default, alias = "computer_use")]
    pub computer_use: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Google's schema dialect.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Plain JSON Schema.
    #[serde(default, alias = "parameters_json_schema")]
    pub parameters_json_schema: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    #[serde(default, alias = "function_calling_config")]
    pub function_calling_config: Option<FunctionCallingConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default, alias = "allowed_function_names")]
    pub allowed_function_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(default, alias = "stop_sequences")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, alias = "response_mime_type")]
    pub response_mime_type: Option<String>,
    #[serde(default, alias = "response_schema")]
    pub response_schema: Option<Value>,
    #[serde(default, alias = "response_json_schema", alias = "_responseJsonSchema")]
    pub response_json_schema: Option<Value>,
    #[serde(default, alias = "thinking_config")]
    pub thinking_config: Option<ThinkingConfig>,
    /// Sampling, lengths, candidates, modalities…: the backend takes none of them.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    #[serde(default, alias = "thinking_budget")]
    pub thinking_budget: Option<i64>,
    #[serde(default, alias = "thinking_level")]
    pub thinking_level: Option<String>,
    #[serde(default, alias = "include_thoughts")]
    pub include_thoughts: Option<bool>,
}

/// A Gemini request made into a Chat Completions one, with what stays local.
#[derive(Debug, Clone)]
pub struct Translated {
    pub chat: chat::ChatRequest,
    /// `thinkingConfig.includeThoughts`: thought summaries as `thought: true` parts.
    pub thoughts: bool,
    /// A `googleSearch` tool: the backend's web search.
    pub web_search: bool,
    /// Accepted but without effect (`x-codex-proxy-ignored-params`).
    pub ignored: Vec<String>,
    /// The call ids made up for calls that came without one.
    pub made_up_ids: Vec<String>,
}

/// The catalog name a Gemini model name stands for (`models/` taken off).
pub fn model_name(name: &str) -> &str {
    let name = name.trim();
    name.strip_prefix("models/").unwrap_or(name)
}

/// `generateContent` → a Chat Completions request. `efforts` are the resolved model's.
pub fn translate(
    req: GenerateContentRequest,
    model: &str,
    efforts: &[String],
) -> Result<Translated, ApiError> {
    translate_after(req, model, efforts, &mut History::default())
}

/// What a conversation's contents so far mean for the next ones: the calls not yet answered,
/// whether a user turn came, where the next content is. Translating contents one request
/// after another from it gives what translating them all at once gives; the system
/// instruction becomes the first message only of the first part.
#[derive(Debug, Clone, Default)]
pub struct History {
    open: VecDeque<Open>,
    user_seen: bool,
    /// The next content's index in the request.
    next: usize,
}

/// [`translate`], for a request whose `contents` continue a conversation already translated
/// up to `history` (which goes on past them).
pub fn translate_after(
    req: GenerateContentRequest,
    model: &str,
    efforts: &[String],
    history: &mut History,
) -> Result<Translated, ApiError> {
    let fresh = history.next == 0;
    let mut ignored: Vec<String> = req.other.keys().cloned().collect();
    if req.contents.is_empty() && fresh {
        return Err(ApiError::invalid(
            "contents is not specified",
            Some("contents"),
        ));
    }
    if history.next + req.contents.len() > MAX_CONTENTS {
        return Err(ApiError::invalid(
            format!("contents: at most {MAX_CONTENTS} contents"),
            Some("contents"),
        ));
    }
    if req.safety_settings.is_some() {
        ignored.push("safetySettings".into());
    }
    if req.cached_content.is_some() {
        ignored.push("cachedContent".into());
    }
    let config = req.generation_config.unwrap_or_default();
    ignored.extend(
        config
            .other
            .keys()
            .map(|key| format!("generationConfig.{key}")),
    );
    let (effort, thoughts) = thinking(config.thinking_config.as_ref(), efforts)?;
    let response_format = response_format(
        config.response_mime_type.as_deref(),
        config.response_schema,
        config.response_json_schema,
        &mut ignored,
    )?;
    let (tools, web_search) = tools(req.tools, &mut ignored)?;
    let tool_choice = tool_choice(req.tool_config, &mut ignored)?;
    let mut messages = Vec::new();
    if let Some(system) = req.system_instruction {
        let text = texts(&system.parts, "systemInstruction")?;
        if fresh && !text.trim().is_empty() {
            messages.push(ChatMessage::System {
                content: MessageContent::Text(text),
            });
        }
    }
    let made_up_ids = contents(req.contents, &mut messages, history)?;
    let stop = config.stop_sequences.unwrap_or_default();
    Ok(Translated {
        chat: chat::ChatRequest {
            model: Some(model.to_owned()),
            messages,
            stream: true,
            stream_options: None,
            tools,
            tool_choice,
            parallel_tool_calls: None,
            functions: None,
            function_call: None,
            response_format,
            reasoning_effort: effort,
            reasoning: None,
            verbosity: None,
            stop: (!stop.is_empty()).then_some(Stop::Many(stop)),
            n: None,
            service_tier: None,
            prompt_cache_key: None,
            other: BTreeMap::new(),
        },
        thoughts,
        web_search,
        ignored,
        made_up_ids,
    })
}

/// `thinkingConfig`: a level or a budget (0 off, -1 dynamic) → the nearest effort the model
/// has; whether thought summaries are shown.
pub fn thinking(
    config: Option<&ThinkingConfig>,
    efforts: &[String],
) -> Result<(Option<String>, bool), ApiError> {
    let Some(config) = config else {
        return Ok((None, false));
    };
    let shown = config.include_thoughts.unwrap_or(false);
    let wanted = match (&config.thinking_level, config.thinking_budget) {
        (Some(level), _) => {
            let level = level.trim().to_ascii_lowercase();
            match level.as_str() {
                "thinking_level_unspecified" | "" => None,
                "minimal" | "low" | "medium" | "high" => Some(level),
                _ => {
                    return Err(ApiError::invalid(
                        format!(
                            "generationConfig.thinkingConfig.thinkingLevel: '{}' is not one of \
                             MINIMAL, LOW, MEDIUM, HIGH",
                            quoted(&level)
                        ),
                        Some("generationConfig.thinkingConfig.thinkingLevel"),
                    ));
                }
            }
        }
        (None, None | Some(-1)) => None,
        (None, Some(0)) => Some("none".to_owned()),
        (None, Some(budget)) if budget > 0 => {
            Some(budget_effort(u64::try_from(budget).unwrap_or(u64::MAX)).to_owned())
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "generationConfig.thinkingConfig.thinkingBudget: -1 (dynamic), 0 (off) or a \
                 number of tokens",
                Some("generationConfig.thinkingConfig.thinkingBudget"),
            ));
        }
    };
    Ok((wanted.and_then(|w| nearest_effort(&w, efforts)), shown))
}

fn response_format(
    mime: Option<&str>,
    schema: Option<Value>,
    json_schema: Option<Value>,
    ignored: &mut Vec<String>,
) -> Result<Option<ResponseFormat>, ApiError> {
    let schema = match (json_schema, schema) {
        (Some(plain), _) => Some(plain),
        (None, Some(google)) => Some(json_schema_of(&google)),
        (None, None) => None,
    };
    match mime.map(str::trim) {
        None | Some("" | "text/plain") => {
            if schema.is_some() {
                return Err(ApiError::invalid(
                    "generationConfig.responseSchema needs responseMimeType \"application/json\"",
                    Some("generationConfig.responseMimeType"),
                ));
            }
            Ok(None)
        }
        Some("application/json") => Ok(Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: "response".into(),
                description: None,
                // JSON mode without a schema: any JSON object (not the backend's
                // `json_object` mode, which refuses a conversation that never says "json").
                schema: Some(schema.unwrap_or_else(|| json!({"type": "object"}))),
                strict: Some(false),
            },
        })),
        Some(other) => {
            ignored.push(format!("generationConfig.responseMimeType ({other})"));
            Ok(None)
        }
    }
}

/// Google's schema dialect (OpenAPI 3.0 subset: `type: "STRING"`, `nullable`,
/// `propertyOrdering`) → JSON Schema. Plain JSON Schema passes through unchanged.
pub fn json_schema_of(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            let nullable = map.get("nullable").and_then(Value::as_bool) == Some(true);
            for (key, value) in map {
                match key.as_str() {
                    "type" => {
                        let kind = match value {
                            Value::String(s) => Value::String(s.to_ascii_lowercase()),
                            other => other.clone(),
                        };
                        let kind = match kind {
                            Value::String(s) if s == "type_unspecified" => continue,
                            Value::String(s) if nullable => json!([s, "null"]),
                            other => other,
                        };
                        out.insert(key.clone(), kind);
                    }
                    "nullable" | "propertyOrdering" => {}
                    "properties" | "$defs" | "definitions" => {
                        let props = match value {
                            Value::Object(props) => Value::Object(
                                props
                                    .iter()
                                    .map(|(k, v)| (k.clone(), json_schema_of(v)))
                                    .collect(),
                            ),
                            other => other.clone(),
                        };
                        out.insert(key.clone(), props);
                    }
                    "items" | "additionalProperties" | "not" => {
                        out.insert(key.clone(), json_schema_of(value));
                    }
                    "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                        let list = match value {
                            Value::Array(list) => {
                                Value::Array(list.iter().map(json_schema_of).collect())
                            }
                            other => other.clone(),
                        };
                        out.insert(key.clone(), list);
                    }
                    _ => {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn tools(
    tools: Option<Vec<Tool>>,
    ignored: &mut Vec<String>,
) -> Result<(Option<Vec<ChatTool>>, bool), ApiError> {
    let mut out = Vec::new();
    let mut web_search = false;
    for (i, tool) in tools.into_iter().flatten().enumerate() {
        for declaration in tool.function_declarations.into_iter().flatten() {
            let parameters = match (declaration.parameters_json_schema, declaration.parameters) {
                (Some(plain), _) => Some(plain),
                (None, Some(google)) => Some(json_schema_of(&google)),
                (None, None) => None,
            };
            out.push(ChatTool::Function {
                function: FunctionDef {
                    name: declaration.name,
                    description: declaration.description,
                    parameters,
                    strict: None,
                },
            });
        }
        if tool.google_search.is_some() || tool.google_search_retrieval.is_some() {
            web_search = true;
        }
        if tool.code_execution.is_some() {
            return Err(ApiError::invalid(
                format!(
                    "tools.{i}.codeExecution: code execution is not available on the Codex \
                     models; declare a function instead"
                ),
                Some("tools"),
            ));
        }
        // Tools the backend does not have: said, not sent.
        for (kind, given) in [
            ("urlContext", tool.url_context.is_some()),
            ("googleMaps", tool.google_maps.is_some()),
            ("fileSearch", tool.file_search.is_some()),
            ("computerUse", tool.computer_use.is_some()),
        ] {
            if given {
                ignored.push(format!("tools.{i}.{kind}"));
            }
        }
    }
    if out.len() > MAX_FUNCTIONS {
        return Err(ApiError::invalid(
            format!("tools: at most {MAX_FUNCTIONS} function declarations"),
            Some("tools"),
        ));
    }
    Ok(((!out.is_empty()).then_some(out), web_search))
}

/// `toolConfig.functionCallingConfig` → `tool_choice`.
fn tool_choice(
    config: Option<ToolConfig>,
    ignored: &mut Vec<String>,
) -> Result<Option<Value>, ApiError> {
    let Some(config) = config.and_then(|c| c.function_calling_config) else {
        return Ok(None);
    };
    let allowed = config.allowed_function_names.unwrap_or_default();
    let mode = config
        .mode
        .as_deref()
        .map(|m| m.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "AUTO".to_owned());
    match mode.as_str() {
        "AUTO" | "MODE_UNSPECIFIED" | "VALIDATED" => {
            if !allowed.is_empty() {
                ignored.push("toolConfig.functionCallingConfig.allowedFunctionNames".into());
            }
            Ok(Some(json!("auto")))
        }
        "NONE" => Ok(Some(json!("none"))),
        "ANY" => match allowed.as_slice() {
            [] => Ok(Some(json!("required"))),
            [one] => Ok(Some(json!({"type": "function", "function": {"name": one}}))),
            _ => {
                ignored.push("toolConfig.functionCallingConfig.allowedFunctionNames".into());
                Ok(Some(json!("required")))
            }
        },
        other => Err(ApiError::invalid(
            format!(
                "toolConfig.functionCallingConfig.mode: '{}' is not one of AUTO, ANY, NONE, \
                 VALIDATED",
                quoted(other)
            ),
            Some("toolConfig"),
        )),
    }
}

/// The text of text-only parts (a system instruction).
fn texts(parts: &[Part], path: &str) -> Result<String, ApiError> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match &part.text {
            Some(text) => out.push(text.as_str()),
            None => {
                return Err(ApiError::invalid(
                    format!("{path}.parts.{i}: only text parts are allowed here"),
                    Some(path),
                ));
            }
        }
    }
    Ok(out.join("\n"))
}

/// A call of the model's, waiting for its response.
#[derive(Debug, Clone)]
struct Open {
    id: String,
    name: String,
}

/// The contents (the first at `history`'s place) as chat messages; returns the call ids made
/// up for calls without one.
fn contents(
    contents: Vec<Content>,
    out: &mut Vec<ChatMessage>,
    history: &mut History,
) -> Result<Vec<String>, ApiError> {
    let first = history.next;
    let count = contents.len();
    let open = &mut history.open;
    let mut made_up = Vec::new();
    for (i, content) in (first..).zip(contents) {
        let path = format!("contents.{i}");
        if content.parts.len() > MAX_PARTS {
            return Err(ApiError::invalid(
                format!("{path}.parts: at most {MAX_PARTS} parts"),
                Some("contents"),
            ));
        }
        match content.role.as_deref().unwrap_or("user") {
            "model" | "assistant" => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for (j, part) in content.parts.into_iter().enumerate() {
                    let part_path = format!("{path}.parts.{j}");
                    if let Some(call) = part.function_call {
                        let id = match call.id.filter(|id| !id.trim().is_empty()) {
                            Some(id) => id,
                            None => {
                                let id = format!("call_{i}_{j}");
                                made_up.push(id.clone());
                                id
                            }
                        };
                        let arguments = match call.args {
                            None | Some(Value::Null) => "{}".to_owned(),
                            Some(args) => args.to_string(),
                        };
                        open.push_back(Open {
                            id: id.clone(),
                            name: call.name.clone(),
                        });
                        calls.push(ChatToolCall::Function {
                            id,
                            function: FunctionCallMsg {
                                name: call.name,
                                arguments,
                            },
                        });
                    } else if let Some(t) = part.text {
                        // Thought summaries are the model's to keep; the daemon gives the
                        // reasoning back itself.
                        if part.thought != Some(true) {
                            text.push_str(&t);
                        }
                    } else if part.inline_data.is_some() || part.file_data.is_some() {
                        return Err(ApiError::invalid(
                            format!("{part_path}: a model turn carries no files or images"),
                            Some("contents"),
                        ));
                    } else if part.function_response.is_some() {
                        return Err(ApiError::invalid(
                            format!("{part_path}: a functionResponse belongs in a user turn"),
                            Some("contents"),
                        ));
                    }
                    // Anything else (a bare thoughtSignature, executable code …) carries
                    // nothing to send.
                }
                out.push(ChatMessage::Assistant {
                    content: (!text.is_empty()).then_some(MessageContent::Text(text)),
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    function_call: None,
                    refusal: None,
                });
            }
            "user" | "function" | "tool" => {
                let mut parts = Vec::new();
                for (j, part) in content.parts.into_iter().enumerate() {
                    let part_path = format!("{path}.parts.{j}");
                    if let Some(response) = part.function_response {
                        let id = answered(open, response.id.as_deref(), &response.name)
                            .ok_or_else(|| {
                                ApiError::invalid(
                                    format!(
                                        "{part_path}: a functionResponse of '{}' with no \
                                         functionCall before it to answer",
                                        quoted(&response.name)
                                    ),
                                    Some("contents"),
                                )
                            })?;
                        let output = match response.response {
                            None | Some(Value::Null) => String::new(),
                            Some(Value::String(s)) => s,
                            Some(other) => other.to_string(),
                        };
                        out.push(ChatMessage::Tool {
                            content: Some(MessageContent::Text(output)),
                            tool_call_id: id,
                        });
                    } else if let Some(text) = part.text {
                        if part.thought != Some(true) && !text.is_empty() {
                            parts.push(chat::ContentPart::Text { text });
                        }
                    } else if let Some(blob) = part.inline_data {
                        parts.push(inline(&blob, &part_path)?);
                    } else if let Some(file) = part.file_data {
                        parts.push(file_part(file, &part_path)?);
                    } else if part.function_call.is_some() {
                        return Err(ApiError::invalid(
                            format!("{part_path}: a functionCall belongs in a model turn"),
                            Some("contents"),
                        ));
                    } else if let Some(kind) = part.unsupported() {
                        return Err(ApiError::invalid(
                            format!("{part_path}: a '{}' part is not supported", quoted(kind)),
                            Some("contents"),
                        ));
                    }
                }
                if !parts.is_empty() {
                    let content = match parts.as_slice() {
                        [chat::ContentPart::Text { .. }] => match parts.pop() {
                            Some(chat::ContentPart::Text { text }) => MessageContent::Text(text),
                            _ => MessageContent::Parts(parts),
                        },
                        _ => MessageContent::Parts(parts),
                    };
                    out.push(ChatMessage::User { content });
                }
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{path}.role: '{}' is not one of user, model", quoted(other)),
                    Some("contents"),
                ));
            }
        }
    }
    history.next = first + count;
    history.user_seen = history.user_seen
        || out
            .iter()
            .any(|m| matches!(m, ChatMessage::User { .. } | ChatMessage::Tool { .. }));
    if !history.user_seen {
        return Err(ApiError::invalid(
            "contents: at least one user turn with content is needed",
            Some("contents"),
        ));
    }
    Ok(made_up)
}

/// The call a function response answers: by id when given, else the oldest open call of the
/// named function.
fn answered(open: &mut VecDeque<Open>, id: Option<&str>, name: &str) -> Option<String> {
    if let Some(id) = id.map(str::trim).filter(|id| !id.is_empty()) {
        if let Some(at) = open.iter().position(|o| o.id == id) {
            open.remove(at);
        }
        return Some(id.to_owned());
    }
    let at = open.iter().position(|o| o.name == name)?;
    open.remove(at).map(|o| o.id)
}

/// Inline data: an image, or a document (PDF, text) as a file.
fn inline(blob: &Blob, path: &str) -> Result<chat::ContentPart, ApiError> {
    let mime = blob.mime_type.trim().to_ascii_lowercase();
    let data = blob.data.trim();
    if data.is_empty() {
        return Err(ApiError::invalid(
            format!("{path}.inlineData.data is empty"),
            Some("contents"),
        ));
    }
    if mime.starts_with("image/") {
        return Ok(chat::ContentPart::ImageUrl {
            image_url: ImageUrl::Bare(format!("data:{mime};base64,{data}")),
        });
    }
    if mime == "application/pdf" || mime.starts_with("text/") {
        let extension = if mime == "application/pdf" {
            "pdf"
        } else {
            "txt"
        };
        return Ok(chat::ContentPart::File {
            file: FileRef {
                file_data: Some(format!("data:{mime};base64,{data}")),
                file_id: None,
                filename: Some(format!("document.{extension}")),
            },
        });
    }
    Err(ApiError::invalid(
        format!(
            "{path}.inlineData: '{}' is not supported (images, PDF and text are)",
            quoted(&mime)
        ),
        Some("contents"),
    ))
}

/// A file by address: images by URL; uploaded files (the Files API) do not exist here.
fn file_part(file: FileData, path: &str) -> Result<chat::ContentPart, ApiError> {
    let mime = file.mime_type.unwrap_or_default().to_ascii_lowercase();
    let is_web = file.file_uri.starts_with("https://") || file.file_uri.starts_with("http://");
    if is_web && (mime.is_empty() || mime.starts_with("image/")) {
        return Ok(chat::ContentPart::ImageUrl {
            image_url: ImageUrl::Bare(file.file_uri),
        });
    }
    Err(ApiError::invalid(
        format!(
            "{path}.fileData: only images by https address are supported; send other files \
             as inlineData (there is no Files API here)"
        ),
        Some("contents"),
    ))
}
