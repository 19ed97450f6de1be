//! Chat Completions request → Codex Responses request (PRODUCT §4.1), as the official client
//! would send it: `stream:true`, `store:false`, non-empty instructions, encrypted reasoning
//! included, only fields the backend accepts.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use super::chat::{
    ChatMessage, ChatRequest, ChatTool, ContentPart as ChatPart, ImageUrl, MessageContent,
    ResponseFormat, Stop, ToolCall,
};
use super::schema;
use crate::api_error::ApiError;
use crate::config::{ModelConfig, ReasoningOutput, SystemPromptStrategy};
use crate::models::Resolved;
use crate::upstream::wire::{
    ContentPart, InputItem, Reasoning, ResponsesRequest, Role, TextControls, TextFormat, Tool,
    ToolChoice, ToolOutput,
};

/// Instructions sent when the client gives none (the backend requires non-empty ones).
pub const NEUTRAL_INSTRUCTIONS: &str = "You are a helpful assistant.";
/// Used with `system_prompt_strategy = "developer"` when the catalog has no text for the model.
pub const CODEX_INSTRUCTIONS: &str = "You are Codex, a coding agent. Help the user with software engineering tasks; be \
     precise, concise and direct.";

pub const MAX_N: u32 = 8;
pub const MAX_STOP: usize = 4;

/// What the request translation needs besides the request.
#[derive(Debug)]
pub struct Context<'a> {
    pub model: &'a Resolved,
    pub config: &'a ModelConfig,
    pub prompt_cache_key: String,
}

/// A translated request and what the gateway must do locally.
#[derive(Debug, Clone)]
pub struct Translated {
    pub body: ResponsesRequest,
    pub stream: bool,
    pub include_usage: bool,
    pub n: u32,
    pub stop: Vec<String>,
    /// Accepted but not forwarded (`x-codex-proxy-ignored-params`).
    pub ignored: Vec<String>,
    pub lite: bool,
}

pub fn translate(req: ChatRequest, ctx: &Context<'_>) -> Result<Translated, ApiError> {
    translate_after(req, ctx, History::default()).map(|(translated, _)| translated)
}

/// [`translate`], for a request whose `messages` continue a history already translated into
/// `history` (whose items are not in the result: `body.input` holds only the new messages'
/// items); also the history after these messages, to continue from next time.
pub fn translate_after(
    req: ChatRequest,
    ctx: &Context<'_>,
    mut history: History,
) -> Result<(Translated, History), ApiError> {
    let model = &ctx.model.model;
    // Whatever the backend refuses (temperature, max_tokens, seed, …) or does not know is
    // accepted, never forwarded, and reported to the client.
    let mut ignored: Vec<String> = req.other.keys().cloned().collect();

    if req.messages.is_empty() && history.next == 0 {
        return Err(ApiError::invalid(
            "'messages' must contain at least one message.",
            Some("messages"),
        ));
    }
    let n = req.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(ApiError::invalid(
            format!("'n' must be between 1 and {MAX_N}."),
            Some("n"),
        ));
    }
    let stop = match req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(list)) => list,
    };
    let stop: Vec<String> = stop.into_iter().filter(|s| !s.is_empty()).collect();
    if stop.len() > MAX_STOP {
        return Err(ApiError::invalid(
            format!("'stop' takes at most {MAX_STOP} sequences."),
            Some("stop"),
        ));
    }

    let strategy = ctx.config.system_prompt_strategy;
    let mut input = Vec::with_capacity(req.messages.len());
    for message in req.messages {
        history.push(message, strategy, &mut input)?;
    }
    let instructions = history.instructions(strategy, model.instructions.as_deref());
    let tools = tools(req.tools, req.functions)?;
    let tool_choice = tool_choice(req.tool_choice.or(req.function_call), &tools, &mut ignored)?;
    let text = text_controls(req.response_format, req.verbosity)?;
    let requested_effort = req
        .reasoning_effort
        .or(req.reasoning.and_then(|r| r.effort));
    let effort = effort(requested_effort.as_deref(), ctx)?;
    let service_tier = match req.service_tier.as_deref() {
        None | Some("auto" | "default") => None,
        Some(tier @ ("priority" | "flex")) => Some(tier.to_owned()),
        Some(other) => {
            return Err(ApiError::invalid(
                format!("Invalid 'service_tier': '{other}'. Use auto, default, flex or priority."),
                Some("service_tier"),
            ));
        }
    };
    let summary = (ctx.config.reasoning_output != ReasoningOutput::None).then_some("auto");

    let parallel = req.parallel_tool_calls.unwrap_or(model.parallel_tool_calls);
    let (instructions, tools, parallel_tool_calls, context) =
        layout(model.lite, instructions, tools, parallel, &mut input);

    let body = ResponsesRequest {
        model: model.slug.clone(),
        instructions,
        input,
        tools,
        tool_choice,
        parallel_tool_calls,
        reasoning: Reasoning {
            effort: Some(effort),
            summary,
            context,
        },
        store: false,
        stream: true,
        include: vec!["reasoning.encrypted_content"],
        service_tier,
        prompt_cache_key: ctx.prompt_cache_key.clone(),
        text,
        client_metadata: std::collections::BTreeMap::new(),
    };
    let translated = Translated {
        body,
        stream: req.stream,
        include_usage: req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        n,
        stop,
        ignored,
        lite: model.lite,
    };
    Ok((translated, history))
}

/// Where instructions and tools go: the body's own fields, or for a Responses-Lite model
/// (§2.4) the front of the input, with parallel calls off and the reasoning context set.
/// Returns `(instructions, tools, parallel_tool_calls, reasoning.context)`.
pub fn layout(
    lite: bool,
    instructions: String,
    tools: Vec<Tool>,
    parallel: bool,
    input: &mut Vec<InputItem>,
) -> (
    Option<String>,
    Option<Vec<Tool>>,
    bool,
    Option<&'static str>,
) {
    if !lite {
        return (Some(instructions), Some(tools), parallel, None);
    }
    let mut prefix = Vec::new();
    if !tools.is_empty() {
        prefix.push(InputItem::AdditionalTools {
            role: Role::Developer,
            tools: vec![Tool::Namespace {
                name: "functions".into(),
                description: String::new(),
                tools,
            }],
        });
    }
    prefix.push(InputItem::Message {
        role: Role::Developer,
        content: vec![ContentPart::InputText { text: instructions }],
    });
    input.splice(0..0, prefix);
    (None, None, false, Some("all_turns"))
}

/// The conversation's identity for its `prompt_cache_key`: model, instructions and first user
/// message (later turns of the same conversation repeat both).
pub fn conversation_seed(req: &ChatRequest) -> (String, String) {
    let mut system = String::new();
    let mut first_user = String::new();
    for message in &req.messages {
        match message {
            ChatMessage::System { content } | ChatMessage::Developer { content }
                if first_user.is_empty() =>
            {
                system.push_str(&content_text(content));
                system.push('\n');
            }
            ChatMessage::User { content } => {
                first_user = content_text(content);
                break;
            }
            _ => {}
        }
    }
    (system, first_user)
}

fn content_text(content: &MessageContent) -> String {
    match content {
        MessageContent::Text(text) => text.clone(),
        MessageContent::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                ChatPart::Text { text } => Some(text.as_str()),
                ChatPart::ImageUrl {
                    image_url: ImageUrl::Object { url, .. } | ImageUrl::Bare(url),
                } => Some(url.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Which kind of call a `call_id` belongs to, so its output gets the matching item type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Function,
    Custom,
}

/// What a conversation's messages so far mean for the next ones: the instructions gathered,
/// the calls made (an output answers one by its id, or a legacy one by name), whether the
/// conversation has begun. Translating messages one after another from it gives what
/// translating them all at once gives.
#[derive(Debug, Clone, Default)]
pub struct History {
    instructions: Vec<String>,
    calls: HashMap<String, CallKind>,
    // Legacy `function_call`s have no id: outputs match them by name, oldest first.
    legacy: HashMap<String, VecDeque<String>>,
    legacy_count: usize,
    seen_conversation: bool,
    /// The next message's index in the request.
    next: usize,
}

impl History {
    /// The messages read so far.
    pub fn len(&self) -> usize {
        self.next
    }

    pub fn is_empty(&self) -> bool {
        self.next == 0
    }

    /// Bytes held, roughly (for a cache's bound).
    pub fn bytes(&self) -> usize {
        self.instructions.iter().map(String::len).sum::<usize>()
            + self.calls.keys().map(|k| k.len() + 16).sum::<usize>()
            + self
                .legacy
                .iter()
                .map(|(k, v)| k.len() + v.iter().map(String::len).sum::<usize>())
                .sum::<usize>()
    }

    fn instructions(
        &self,
        strategy: SystemPromptStrategy,
        model_instructions: Option<&str>,
    ) -> String {
        match strategy {
            SystemPromptStrategy::Instructions => {
                let joined = self.instructions.join("\n\n");
                if joined.trim().is_empty() {
                    NEUTRAL_INSTRUCTIONS.to_owned()
                } else {
                    joined
                }
            }
            SystemPromptStrategy::Developer => {
                model_instructions.unwrap_or(CODEX_INSTRUCTIONS).to_owned()
            }
        }
    }

    /// Translates the next message onto `input`.
    fn push(
        &mut self,
        message: ChatMessage,
        strategy: SystemPromptStrategy,
        input: &mut Vec<InputItem>,
    ) -> Result<(), ApiError> {
        let path = format!("messages[{}]", self.next);
        self.next += 1;
        match message {
            ChatMessage::System { content } | ChatMessage::Developer { content } => {
                let text = text_only(&content, &path)?;
                // Leading system prompts become the instructions; later ones keep their place.
                if strategy == SystemPromptStrategy::Instructions && !self.seen_conversation {
                    self.instructions.push(text);
                } else {
                    input.push(InputItem::Message {
                        role: Role::Developer,
                        content: vec![ContentPart::InputText { text }],
                    });
                }
            }
            ChatMessage::User { content } => {
                self.seen_conversation = true;
                input.push(InputItem::Message {
                    role: Role::User,
                    content: user_parts(content, &path)?,
                });
            }
            ChatMessage::Assistant {
                content,
                tool_calls,
                function_call,
                refusal,
            } => {
                self.seen_conversation = true;
                let mut text = content.map(|c| assistant_text(&c)).unwrap_or_default();
                if text.is_empty()
                    && let Some(refusal) = refusal
                {
                    text = refusal;
                }
                if !text.is_empty() {
                    input.push(InputItem::Message {
                        role: Role::Assistant,
                        content: vec![ContentPart::OutputText { text }],
                    });
                }
                for call in tool_calls.unwrap_or_default() {
                    match call {
                        ToolCall::Function { id, function } => {
                            self.calls.insert(id.clone(), CallKind::Function);
                            input.push(InputItem::FunctionCall {
                                name: function.name,
                                arguments: function.arguments,
                                call_id: id,
                            });
                        }
                        ToolCall::Custom { id, custom } => {
                            self.calls.insert(id.clone(), CallKind::Custom);
                            input.push(InputItem::CustomToolCall {
                                call_id: id,
                                name: custom.name,
                                input: custom.input,
                            });
                        }
                    }
                }
                if let Some(call) = function_call {
                    self.legacy_count += 1;
                    let id = format!("call_legacy_{}", self.legacy_count);
                    self.legacy
                        .entry(call.name.clone())
                        .or_default()
                        .push_back(id.clone());
                    input.push(InputItem::FunctionCall {
                        name: call.name,
                        arguments: call.arguments,
                        call_id: id,
                    });
                }
            }
            ChatMessage::Tool {
                content,
                tool_call_id,
            } => {
                let output = tool_output(content, &path)?;
                let item = match self.calls.get(&tool_call_id) {
                    Some(CallKind::Function) => InputItem::FunctionCallOutput {
                        call_id: tool_call_id,
                        output,
                    },
                    Some(CallKind::Custom) => InputItem::CustomToolCallOutput {
                        call_id: tool_call_id,
                        output,
                    },
                    None => {
                        return Err(ApiError::invalid(
                            format!(
                                "{path}: tool message answers tool_call_id '{tool_call_id}', but no earlier \
                                 assistant message made a tool call with that id."
                            ),
                            Some(&format!("{path}.tool_call_id")),
                        ));
                    }
                };
                input.push(item);
            }
            ChatMessage::Function { name, content } => {
                let Some(call_id) = self.legacy.get_mut(&name).and_then(VecDeque::pop_front) else {
                    return Err(ApiError::invalid(
                        format!(
                            "{path}: function message for '{name}' follows no function_call of that name."
                        ),
                        Some(&format!("{path}.name")),
                    ));
                };
                let output = tool_output(content, &path)?;
                input.push(InputItem::FunctionCallOutput { call_id, output });
            }
        }
        Ok(())
    }
}

fn text_only(content: &MessageContent, path: &str) -> Result<String, ApiError> {
    match content {
        MessageContent::Text(text) => Ok(text.clone()),
        MessageContent::Parts(parts) => {
            let mut text = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match part {
                    ChatPart::Text { text: t } => text.push(t.as_str()),
                    _ => {
                        return Err(ApiError::invalid(
                            format!(
                                "{path}.content[{j}]: system and developer messages may only contain text."
                            ),
                            Some(&format!("{path}.content[{j}]")),
                        ));
                    }
                }
            }
            Ok(text.join("\n"))
        }
    }
}

fn assistant_text(content: &MessageContent) -> String {
    match content {
        MessageContent::Text(text) => text.clone(),
        MessageContent::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                ChatPart::Text { text } => Some(text.as_str()),
                ChatPart::Refusal { refusal } => Some(refusal.as_str()),
                _ => None,
            })
            .collect(),
    }
}

fn user_parts(content: MessageContent, path: &str) -> Result<Vec<ContentPart>, ApiError> {
    match content {
        MessageContent::Text(text) => Ok(vec![ContentPart::InputText { text }]),
        MessageContent::Parts(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(j, p)| input_part(p, &format!("{path}.content[{j}]")))
            .collect(),
    }
}

fn input_part(part: ChatPart, path: &str) -> Result<ContentPart, ApiError> {
    match part {
        ChatPart::Text { text } | ChatPart::Refusal { refusal: text } => {
            Ok(ContentPart::InputText { text })
        }
        ChatPart::ImageUrl { image_url } => {
            let (url, detail) = match image_url {
                ImageUrl::Object { url, detail } => (url, detail),
                ImageUrl::Bare(url) => (url, None),
            };
            if let Some(d) = detail.as_deref()
                && !["auto", "low", "high", "original"].contains(&d)
            {
                return Err(ApiError::invalid(
                    format!("{path}: image detail '{d}' is not one of auto, low, high, original."),
                    Some(&format!("{path}.image_url.detail")),
                ));
            }
            Ok(ContentPart::InputImage {
                image_url: url,
                detail,
            })
        }
        ChatPart::File { file } => Ok(ContentPart::InputFile {
            file_data: file.file_data,
            file_id: file.file_id,
            filename: file.filename,
            file_url: None,
        }),
        ChatPart::InputAudio { .. } => Err(ApiError::invalid(
            format!("{path}: audio input is not supported by the Codex models."),
            Some(path),
        )),
    }
}

fn tool_output(content: Option<MessageContent>, path: &str) -> Result<ToolOutput, ApiError> {
    match content {
        None => Ok(ToolOutput::Text(String::new())),
        Some(MessageContent::Text(text)) => Ok(ToolOutput::Text(text)),
        Some(MessageContent::Parts(parts)) => {
            let parts: Vec<ContentPart> = parts
                .into_iter()
                .enumerate()
                .map(|(j, p)| input_part(p, &format!("{path}.content[{j}]")))
                .collect::<Result<_, _>>()?;
            // Text-only results read best as one string; images need the parts form.
            if parts
                .iter()
                .all(|p| matches!(p, ContentPart::InputText { .. }))
            {
                let text = parts
                    .into_iter()
                    .filter_map(|p| match p {
                        ContentPart::InputText { text } => Some(text),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(ToolOutput::Text(text))
            } else {
                Ok(ToolOutput::Parts(parts))
            }
        }
    }
}

/// Tool and schema names: 1-64 letters, digits, `_` or `-`.
fn check_name(name: &str, what: &str, param: &str) -> Result<(), ApiError> {
    if valid_tool_name(name) {
        return Ok(());
    }
    Err(ApiError::invalid(
        format!("Invalid {what} name '{name}': use 1-64 letters, digits, '_' or '-'."),
        Some(param),
    ))
}

/// A strict schema the backend would reject, as a 400 naming the offending path.
fn check_strict_schema(schema: &Value, root: &str) -> Result<(), ApiError> {
    schema::check_strict(schema, root).map_err(|(path, reason)| {
        ApiError::invalid(
            format!("Invalid schema at '{path}': {reason}."),
            Some(&path),
        )
    })
}

pub fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn tools(
    chat_tools: Option<Vec<ChatTool>>,
    functions: Option<Vec<super::chat::FunctionDef>>,
) -> Result<Vec<Tool>, ApiError> {
    let mut out = Vec::new();
    let legacy = functions
        .unwrap_or_default()
        .into_iter()
        .map(|function| ChatTool::Function { function });
    let from_tools = chat_tools.unwrap_or_default().into_iter();
    for (i, tool) in from_tools.chain(legacy).enumerate() {
        let path = format!("tools[{i}]");
        match tool {
            ChatTool::Function { function } => {
                check_name(&function.name, "function", &format!("{path}.function.name"))?;
                let strict = function.strict.unwrap_or(false);
                let parameters = function.parameters.unwrap_or_else(|| {
                    json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
                });
                if strict {
                    check_strict_schema(&parameters, &format!("{path}.function.parameters"))?;
                }
                out.push(Tool::Function {
                    name: function.name,
                    description: function.description,
                    strict,
                    parameters,
                });
            }
            ChatTool::Custom { custom } => {
                check_name(&custom.name, "tool", &format!("{path}.custom.name"))?;
                out.push(Tool::Custom {
                    name: custom.name,
                    description: custom.description,
                    format: custom.format,
                });
            }
        }
    }
    let mut names = std::collections::HashSet::new();
    for tool in &out {
        let name = match tool {
            Tool::Function { name, .. }
            | Tool::Custom { name, .. }
            | Tool::Namespace { name, .. } => name,
            Tool::WebSearch {} | Tool::ImageGeneration { .. } => continue,
        };
        if !names.insert(name.clone()) {
            return Err(ApiError::invalid(
                format!("Tool name '{name}' is declared twice."),
                Some("tools"),
            ));
        }
    }
    Ok(out)
}

fn tool_choice(
    choice: Option<Value>,
    tools: &[Tool],
    ignored: &mut Vec<String>,
) -> Result<ToolChoice, ApiError> {
    let named = |kind: &'static str, name: &str| {
        let exists = tools.iter().any(|t| match (t, kind) {
            (Tool::Function { name: n, .. }, "function")
            | (Tool::Custom { name: n, .. }, "custom") => n == name,
            _ => false,
        });
        if exists {
            Ok(ToolChoice::Named {
                kind,
                name: name.to_owned(),
            })
        } else {
            Err(ApiError::invalid(
                format!("tool_choice names '{name}', which is not in 'tools'."),
                Some("tool_choice"),
            ))
        }
    };
    match choice {
        None | Some(Value::Null) => Ok(ToolChoice::Mode("auto")),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => Ok(ToolChoice::Mode("auto")),
            "none" => Ok(ToolChoice::Mode("none")),
            "required" => Ok(ToolChoice::Mode("required")),
            other => Err(ApiError::invalid(
                format!("Invalid tool_choice '{other}': use none, auto, required or a named tool."),
                Some("tool_choice"),
            )),
        },
        Some(Value::Object(obj)) => {
            let kind = obj.get("type").and_then(Value::as_str);
            let name_at = |key: &str| {
                obj.get(key)
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
            };
            match (
                kind,
                name_at("function"),
                name_at("custom"),
                obj.get("name").and_then(Value::as_str),
            ) {
                (Some("function"), Some(name), _, _) => named("function", name),
                (Some("custom"), _, Some(name), _) => named("custom", name),
                // Legacy `function_call: {"name": …}`.
                (None, _, _, Some(name)) => named("function", name),
                (Some("allowed_tools"), ..) => {
                    ignored.push("tool_choice".into());
                    Ok(ToolChoice::Mode("auto"))
                }
                _ => Err(ApiError::invalid(
                    "Invalid tool_choice object.",
                    Some("tool_choice"),
                )),
            }
        }
        Some(_) => Err(ApiError::invalid(
            "Invalid tool_choice.",
            Some("tool_choice"),
        )),
    }
}

fn text_controls(
    format: Option<ResponseFormat>,
    verbosity: Option<String>,
) -> Result<Option<TextControls>, ApiError> {
    if let Some(v) = verbosity.as_deref()
        && !["low", "medium", "high"].contains(&v)
    {
        return Err(ApiError::invalid(
            format!("Invalid verbosity '{v}': use low, medium or high."),
            Some("verbosity"),
        ));
    }
    let format = match format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(TextFormat::JsonObject),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            check_name(
                &json_schema.name,
                "schema",
                "response_format.json_schema.name",
            )?;
            let Some(schema) = json_schema.schema else {
                return Err(ApiError::invalid(
                    "response_format.json_schema needs a 'schema'.",
                    Some("response_format.json_schema.schema"),
                ));
            };
            if json_schema.strict == Some(true) {
                check_strict_schema(&schema, "response_format.json_schema.schema")?;
            }
            Some(TextFormat::JsonSchema {
                name: json_schema.name,
                schema,
                strict: json_schema.strict,
                description: json_schema.description,
            })
        }
    };
    Ok((format.is_some() || verbosity.is_some()).then_some(TextControls { verbosity, format }))
}

/// Effort: the request's field, else the model-name suffix, else the configured default, else
/// the model's own default. An explicit choice the model lacks is a 400; a configured default it
/// lacks falls back to the model's default.
fn effort(requested: Option<&str>, ctx: &Context<'_>) -> Result<String, ApiError> {
    let model = &ctx.model.model;
    let normalise = |e: &str| {
        if e == "ultra" {
            "max".to_owned()
        } else {
            e.to_owned()
        }
    };
    let explicit = requested
        .map(normalise)
        .or_else(|| ctx.model.suffix_effort.clone());
    if let Some(effort) = explicit {
        if model.efforts.is_empty() || model.efforts.contains(&effort) {
            return Ok(effort);
        }
        return Err(ApiError::invalid(
            format!(
                "Reasoning effort '{effort}' is not available for {}; it supports: {}.",
                model.slug,
                model.efforts.join(", ")
            ),
            Some("reasoning_effort"),
        ));
    }
    let configured = ctx
        .config
        .default_reasoning_effort
        .map(|e| e.as_str().to_owned());
    Ok(configured
        .filter(|e| model.efforts.contains(e))
        .unwrap_or_else(|| model.default_effort.clone()))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
