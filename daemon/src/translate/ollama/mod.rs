//! The Ollama API (`/api/chat`, `/api/generate`): requests as Ollama's clients send them, and
//! their translation to the Codex Responses wire.
//!
//! An Ollama chat is a Chat Completions conversation in other words (system, user, assistant,
//! tool messages; function tools; a JSON format), so a request becomes a
//! [`chat::ChatRequest`](super::chat::ChatRequest) and goes through the Chat Completions
//! translation — one set of rules for instructions, tools, schemas and images. What is Ollama's
//! own is done here: images as bare base64, tool calls with object arguments and often without
//! ids (a tool result names its tool instead), `think`, `options`, `format`.
//!
//! - [`render`]: the neutral output layer's events → Ollama's NDJSON lines or one object.

pub mod render;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::chat::{
    self, ChatMessage, ChatTool, FunctionCallMsg, FunctionDef, ImageUrl, JsonSchemaFormat,
    MessageContent, ResponseFormat, Stop, ToolCall as ChatToolCall,
};
use super::messages::request::nearest_effort;
use crate::api_error::{ApiError, quoted};

/// Most messages, images and tools a request may carry (beyond the body size limit).
const MAX_MESSAGES: usize = 10_000;
const MAX_IMAGES: usize = 64;
const MAX_TOOLS: usize = 512;

/// `POST /api/chat`.
#[derive(Debug, Clone, Deserialize)]
pub struct OllamaChat {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub format: Option<Value>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    #[serde(default)]
    pub think: Option<Value>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub keep_alive: Option<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `POST /api/generate`: one prompt, an optional system prompt and images.
#[derive(Debug, Clone, Deserialize)]
pub struct OllamaGenerate {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub images: Option<Vec<String>>,
    #[serde(default)]
    pub format: Option<Value>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    #[serde(default)]
    pub think: Option<Value>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub keep_alive: Option<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    /// The model's thinking from an earlier answer: shown to the user, not sent back (the
    /// backend keeps reasoning only in encrypted form, which the daemon replays itself).
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub images: Option<Vec<String>>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// A tool result: the tool it came from (Ollama's clients name the tool, not the call).
    #[serde(default)]
    pub tool_name: Option<String>,
    /// A tool result: the call it answers, when the client kept the call's id.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: CallFunction,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallFunction {
    pub name: String,
    /// An object (Ollama's shape); a JSON string is taken too.
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: FunctionDef,
}

/// How the answer's thinking is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    /// In the message's `thinking` field (Ollama's `think` unset or set).
    Shown,
    /// `think: false`: reasoning at the lowest effort, nothing shown.
    Hidden,
}

/// An Ollama request made into a Chat Completions one, with what stays local.
#[derive(Debug, Clone)]
pub struct Translated {
    pub chat: chat::ChatRequest,
    pub stream: bool,
    pub thinking: Thinking,
    /// Accepted but without effect (`x-codex-proxy-ignored-params`).
    pub ignored: Vec<String>,
    /// The call ids made up for calls the client sent without one.
    pub made_up_ids: Vec<String>,
}

/// The Ollama name of a catalog id: `:latest` as Ollama lists its models.
pub fn tagged(id: &str) -> String {
    format!("{id}:latest")
}

/// The catalog name a client's model name stands for: Ollama's default tag taken off.
pub fn untagged(name: &str) -> &str {
    let name = name.trim();
    name.strip_suffix(":latest").unwrap_or(name)
}

/// `think`: `true`/`false` (also as strings) or a level. Returns the effort to ask for (`None`:
/// the default) and how thinking is shown.
pub fn think(
    value: Option<&Value>,
    efforts: &[String],
) -> Result<(Option<String>, Thinking), ApiError> {
    let level = match value {
        None | Some(Value::Null) | Some(Value::Bool(true)) => {
            return Ok((None, Thinking::Shown));
        }
        Some(Value::Bool(false)) => "none",
        Some(Value::String(s)) => match s.trim() {
            "" | "true" => return Ok((None, Thinking::Shown)),
            "false" => "none",
            level @ ("minimal" | "low" | "medium" | "high" | "xhigh" | "max") => level,
            other => {
                return Err(ApiError::invalid(
                    format!(
                        "think: '{}' is not one of true, false, \"low\", \"medium\", \"high\"",
                        quoted(other)
                    ),
                    Some("think"),
                ));
            }
        },
        Some(_) => {
            return Err(ApiError::invalid(
                "think: use true, false, \"low\", \"medium\" or \"high\"",
                Some("think"),
            ));
        }
    };
    let shown = if level == "none" {
        Thinking::Hidden
    } else {
        Thinking::Shown
    };
    Ok((nearest_effort(level, efforts), shown))
}

/// `/api/chat` → a Chat Completions request. `efforts` are the resolved model's.
pub fn chat(req: OllamaChat, efforts: &[String]) -> Result<Translated, ApiError> {
    chat_after(req, efforts, &mut History::default())
}

/// What a conversation's messages so far mean for the next ones: the calls not yet answered,
/// where the next message is. Translating messages one request after another from it gives
/// what translating them all at once gives.
#[derive(Debug, Clone, Default)]
pub struct History {
    open: VecDeque<Open>,
    /// The next message's index in the request.
    next: usize,
}

/// [`chat`], for a request whose `messages` continue a conversation already translated up to
/// `history` (which goes on past them).
pub fn chat_after(
    req: OllamaChat,
    efforts: &[String],
    history: &mut History,
) -> Result<Translated, ApiError> {
    let mut ignored: Vec<String> = req.other.keys().cloned().collect();
    if req.messages.is_empty() && history.next == 0 {
        return Err(ApiError::invalid(
            "messages: at least one message is needed",
            Some("messages"),
        ));
    }
    if history.next + req.messages.len() > MAX_MESSAGES {
        return Err(ApiError::invalid(
            format!("messages: at most {MAX_MESSAGES} messages"),
            Some("messages"),
        ));
    }
    let (effort, thinking) = think(req.think.as_ref(), efforts)?;
    let (stop, mut ignored_options) = options(req.options.as_ref())?;
    ignored.append(&mut ignored_options);
    if req.keep_alive.is_some() {
        ignored.push("keep_alive".into());
    }
    let tools = tools(req.tools)?;
    let (messages, made_up_ids) = messages(req.messages, history)?;
    Ok(Translated {
        chat: chat_request(ChatParts {
            model: untagged(&req.model).to_owned(),
            messages,
            tools,
            format: format(req.format)?,
            effort,
            stop,
        }),
        stream: req.stream.unwrap_or(true),
        thinking,
        ignored,
        made_up_ids,
    })
}

/// `/api/generate` → a Chat Completions request: the system prompt and one user message.
pub fn generate(req: OllamaGenerate, efforts: &[String]) -> Result<Translated, ApiError> {
    let mut ignored: Vec<String> = req.other.keys().cloned().collect();
    let prompt = req.prompt.unwrap_or_default();
    let images = req.images.unwrap_or_default();
    if prompt.trim().is_empty() && images.is_empty() {
        return Err(ApiError::invalid(
            "prompt: an empty prompt only loads a model in Ollama; codex-proxy has nothing to \
             load — send a prompt",
            Some("prompt"),
        ));
    }
    let (effort, thinking) = think(req.think.as_ref(), efforts)?;
    let (stop, mut ignored_options) = options(req.options.as_ref())?;
    ignored.append(&mut ignored_options);
    if req.keep_alive.is_some() {
        ignored.push("keep_alive".into());
    }
    let mut messages = Vec::new();
    if let Some(system) = req.system.filter(|s| !s.trim().is_empty()) {
        messages.push(ChatMessage::System {
            content: MessageContent::Text(system),
        });
    }
    let mut text = prompt;
    if let Some(suffix) = req.suffix.filter(|s| !s.is_empty()) {
        // Fill in the middle, said in words: the backend has no suffix parameter.
        text = format!(
            "{text}\n\nContinue from the text above; your answer will be followed by this text, \
             so it must lead into it:\n{suffix}"
        );
    }
    messages.push(ChatMessage::User {
        content: user_content(text, &images, "images")?,
    });
    Ok(Translated {
        chat: chat_request(ChatParts {
            model: untagged(&req.model).to_owned(),
            messages,
            tools: None,
            format: format(req.format)?,
            effort,
            stop,
        }),
        stream: req.stream.unwrap_or(true),
        thinking,
        ignored,
        made_up_ids: Vec::new(),
    })
}

struct ChatParts {
    model: String,
    messages: Vec<ChatMessage>,
    tools: Option<Vec<ChatTool>>,
    format: Option<ResponseFormat>,
    effort: Option<String>,
    stop: Vec<String>,
}

fn chat_request(parts: ChatParts) -> chat::ChatRequest {
    chat::ChatRequest {
        model: (!parts.model.is_empty()).then_some(parts.model),
        messages: parts.messages,
        stream: true,
        stream_options: None,
        tools: parts.tools,
        tool_choice: None,
        parallel_tool_calls: None,
        functions: None,
        function_call: None,
        response_format: parts.format,
        reasoning_effort: parts.effort,
        reasoning: None,
        verbosity: None,
        stop: (!parts.stop.is_empty()).then_some(Stop::Many(parts.stop)),
        n: None,
        service_tier: None,
        prompt_cache_key: None,
        other: BTreeMap::new(),
    }
}

/// `options`: `stop` is honoured; every other option (sampling, context size, GPU, …) is for
/// a local model and is reported as ignored.
fn options(options: Option<&Map<String, Value>>) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let mut stop = Vec::new();
    let mut ignored = Vec::new();
    for (key, value) in options.into_iter().flatten() {
        if key != "stop" {
            ignored.push(format!("options.{key}"));
            continue;
        }
        match value {
            Value::Null => {}
            Value::String(s) => stop.push(s.clone()),
            Value::Array(list) => {
                for item in list {
                    let Value::String(s) = item else {
                        return Err(ApiError::invalid(
                            "options.stop: a list of strings",
                            Some("options.stop"),
                        ));
                    };
                    stop.push(s.clone());
                }
            }
            _ => {
                return Err(ApiError::invalid(
                    "options.stop: a list of strings",
                    Some("options.stop"),
                ));
            }
        }
    }
    Ok((stop, ignored))
}

/// `format`: `"json"`, a JSON schema, or empty.
fn format(format: Option<Value>) -> Result<Option<ResponseFormat>, ApiError> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        // Any JSON object. Not the backend's `json_object` mode, which refuses a conversation
        // that never says "json" — Ollama's clients ask for JSON without saying so.
        Some(Value::String(s)) if s == "json" => Ok(Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: "json".into(),
                description: None,
                schema: Some(serde_json::json!({"type": "object"})),
                strict: Some(false),
            },
        })),
        Some(Value::String(s)) => Err(ApiError::invalid(
            format!(
                "format: '{}' is neither \"json\" nor a JSON schema",
                quoted(&s)
            ),
            Some("format"),
        )),
        Some(schema @ Value::Object(_)) => Ok(Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: "response".into(),
                description: None,
                schema: Some(schema),
                strict: None,
            },
        })),
        Some(_) => Err(ApiError::invalid(
            "format: \"json\" or a JSON schema object",
            Some("format"),
        )),
    }
}

fn tools(tools: Option<Vec<Tool>>) -> Result<Option<Vec<ChatTool>>, ApiError> {
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if tools.len() > MAX_TOOLS {
        return Err(ApiError::invalid(
            format!("tools: at most {MAX_TOOLS} tools"),
            Some("tools"),
        ));
    }
    tools
        .into_iter()
        .enumerate()
        .map(|(i, tool)| match tool.kind.as_deref() {
            None | Some("function") => Ok(ChatTool::Function {
                function: tool.function,
            }),
            Some(other) => Err(ApiError::invalid(
                format!(
                    "tools.{i}.type: '{}' is not supported; only \"function\" tools",
                    quoted(other)
                ),
                Some("tools"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A call the assistant made, waiting for its result.
#[derive(Debug, Clone)]
struct Open {
    id: String,
    name: String,
}

/// The messages (the first at `history`'s place), and the call ids made up for calls that
/// came without one.
fn messages(
    messages: Vec<Message>,
    history: &mut History,
) -> Result<(Vec<ChatMessage>, Vec<String>), ApiError> {
    let mut out = Vec::with_capacity(messages.len());
    let mut made_up = Vec::new();
    let first = history.next;
    history.next += messages.len();
    // Calls not yet answered, oldest first: a result without a call id answers the oldest
    // open call of its tool (or the oldest open call when it names no tool).
    let open = &mut history.open;
    for (i, message) in (first..).zip(messages) {
        let path = format!("messages.{i}");
        let content = message.content.unwrap_or_default();
        match message.role.as_str() {
            "system" | "developer" => {
                if message.images.as_ref().is_some_and(|i| !i.is_empty()) {
                    return Err(ApiError::invalid(
                        format!("{path}.images: only user messages may carry images"),
                        Some("messages"),
                    ));
                }
                let content = MessageContent::Text(content);
                out.push(if message.role == "system" {
                    ChatMessage::System { content }
                } else {
                    ChatMessage::Developer { content }
                });
            }
            "user" => {
                let images = message.images.unwrap_or_default();
                out.push(ChatMessage::User {
                    content: user_content(content, &images, &format!("{path}.images"))?,
                });
            }
            "assistant" => {
                let calls = message.tool_calls.unwrap_or_default();
                let mut chat_calls = Vec::with_capacity(calls.len());
                for (j, call) in calls.into_iter().enumerate() {
                    let id = match call.id.filter(|id| !id.trim().is_empty()) {
                        Some(id) => id,
                        None => {
                            // Stable across turns (the position in the conversation).
                            let id = format!("call_{i}_{j}");
                            made_up.push(id.clone());
                            id
                        }
                    };
                    let arguments = match call.function.arguments {
                        Value::Null => "{}".to_owned(),
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    open.push_back(Open {
                        id: id.clone(),
                        name: call.function.name.clone(),
                    });
                    chat_calls.push(ChatToolCall::Function {
                        id,
                        function: FunctionCallMsg {
                            name: call.function.name,
                            arguments,
                        },
                    });
                }
                out.push(ChatMessage::Assistant {
                    content: (!content.is_empty()).then_some(MessageContent::Text(content)),
                    tool_calls: (!chat_calls.is_empty()).then_some(chat_calls),
                    function_call: None,
                    refusal: None,
                });
            }
            "tool" => {
                let id = answered(
                    open,
                    message.tool_call_id.as_deref(),
                    message.tool_name.as_deref(),
                )
                .ok_or_else(|| {
                    ApiError::invalid(
                        format!(
                            "{path}: a tool result{} with no tool call before it to answer",
                            message
                                .tool_name
                                .as_deref()
                                .map(|n| format!(" of '{}'", quoted(n)))
                                .unwrap_or_default()
                        ),
                        Some("messages"),
                    )
                })?;
                out.push(ChatMessage::Tool {
                    content: Some(MessageContent::Text(content)),
                    tool_call_id: id,
                });
            }
            other => {
                return Err(ApiError::invalid(
                    format!(
                        "{path}.role: '{}' is not one of system, user, assistant, tool",
                        quoted(other)
                    ),
                    Some("messages"),
                ));
            }
        }
    }
    Ok((out, made_up))
}

/// The call a tool result answers: by id when given (a known id, or one of an earlier
/// conversation the client kept), else the oldest open call of the named tool, else the
/// oldest open call.
fn answered(open: &mut VecDeque<Open>, id: Option<&str>, name: Option<&str>) -> Option<String> {
    if let Some(id) = id.map(str::trim).filter(|id| !id.is_empty()) {
        if let Some(at) = open.iter().position(|o| o.id == id) {
            open.remove(at);
        }
        return Some(id.to_owned());
    }
    let at = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .and_then(|name| open.iter().position(|o| o.name == name))
        .or_else(|| (!open.is_empty()).then_some(0))?;
    open.remove(at).map(|o| o.id)
}

/// A user message: text, and images as data URLs.
fn user_content(text: String, images: &[String], path: &str) -> Result<MessageContent, ApiError> {
    if images.is_empty() {
        return Ok(MessageContent::Text(text));
    }
    if images.len() > MAX_IMAGES {
        return Err(ApiError::invalid(
            format!("{path}: at most {MAX_IMAGES} images"),
            Some("images"),
        ));
    }
    let mut parts = Vec::with_capacity(images.len() + 1);
    if !text.is_empty() {
        parts.push(chat::ContentPart::Text { text });
    }
    for (i, image) in images.iter().enumerate() {
        parts.push(chat::ContentPart::ImageUrl {
            image_url: ImageUrl::Bare(image_url(image, &format!("{path}.{i}"))?),
        });
    }
    Ok(MessageContent::Parts(parts))
}

/// Ollama sends images as bare base64; the backend takes data URLs. The type is read from the
/// image's first bytes (a data URL passes as it is).
pub fn image_url(image: &str, path: &str) -> Result<String, ApiError> {
    let image = image.trim();
    if image.starts_with("data:image/") {
        return Ok(image.to_owned());
    }
    let media = media_type(image).ok_or_else(|| {
        ApiError::invalid(
            format!(
                "{path}: not a base64 PNG, JPEG, GIF or WebP image (Ollama's clients send the \
                 file's bytes in base64)"
            ),
            Some("images"),
        )
    })?;
    Ok(format!("data:{media};base64,{image}"))
}

/// The image type of base64 data, by the encoding of each format's signature.
pub fn media_type(base64: &str) -> Option<&'static str> {
    const SIGNATURES: [(&str, &str); 5] = [
        ("iVBORw0KGgo", "image/png"),
        ("/9j/", "image/jpeg"),
        ("R0lGODdh", "image/gif"),
        ("R0lGODlh", "image/gif"),
        ("UklGR", "image/webp"),
    ];
    SIGNATURES
        .iter()
        .find(|(prefix, _)| base64.starts_with(prefix))
        .map(|(_, media)| *media)
}
