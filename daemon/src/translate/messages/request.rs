//! A Messages request → a Codex Responses request, as the official client would send it:
//! `stream:true`, `store:false`, encrypted reasoning included, only fields the backend accepts
//! (`max_tokens`, `temperature`, `top_p`, `top_k` are never forwarded: the backend refuses
//! them), tools never forced strict.

use serde_json::{Value, json};

use super::{Block, Content, MessagesRequest, Source, ThinkingDisplay, signature};
use crate::api_error::ApiError;
use crate::config::{ModelConfig, SystemPromptStrategy};
use crate::models::Resolved;
use crate::translate::request::{
    CODEX_INSTRUCTIONS, NEUTRAL_INSTRUCTIONS, layout, valid_tool_name,
};
use crate::translate::schema;
use crate::upstream::wire::{
    ContentPart, InputItem, Reasoning, ResponsesRequest, Role, SummaryText, Tool, ToolChoice,
    ToolOutput,
};

/// Claude Code's first system block: an attribution line that changes on every request
/// (`cch=…`). Sent on, it would make every prompt new to the backend's prompt cache.
pub const BILLING_HEADER: &str = "x-anthropic-billing-header:";

pub const MAX_STOP_SEQUENCES: usize = 32;
const MAX_STOP_LEN: usize = 1024;

/// What the translation needs besides the request.
#[derive(Debug)]
pub struct Context<'a> {
    pub model: &'a Resolved,
    pub config: &'a ModelConfig,
    pub prompt_cache_key: String,
    /// `/v1/messages` requires `max_tokens`; `count_tokens` does not take it.
    pub require_max_tokens: bool,
}

/// A translated request and what the gateway must do locally.
#[derive(Debug, Clone)]
pub struct Translated {
    pub body: ResponsesRequest,
    pub stream: bool,
    pub stop: Vec<String>,
    pub thinking: ThinkingDisplay,
    /// A final assistant message the answer continues (Anthropic's "prefill").
    pub prefill: Option<String>,
    /// The account whose reasoning the request gives back (from thinking signatures): the
    /// account of its last thinking block of ours. Reasoning another account made (before the
    /// conversation moved) is left out: no account reads another's.
    pub reasoning_account: Option<String>,
    /// Whether the reasoning in the items translated before (a continued request's kept items)
    /// goes on: not when this request's thinking moved to another account.
    pub keeps_earlier_reasoning: bool,
    /// Accepted but not forwarded (`x-codex-proxy-ignored-params`).
    pub ignored: Vec<String>,
    pub lite: bool,
}

pub fn translate(req: MessagesRequest, ctx: &Context<'_>) -> Result<Translated, ApiError> {
    translate_after(req, ctx, History::default()).map(|(translated, _)| translated)
}

/// [`translate`], for a request whose `messages` continue a history already translated into
/// `history` (whose items are not in the result: `body.input` holds only the new messages'
/// items, and the system prompt is not put at its head again); also the history after these
/// messages, to continue from next time.
pub fn translate_after(
    req: MessagesRequest,
    ctx: &Context<'_>,
    mut history: History,
) -> Result<(Translated, History), ApiError> {
    let model = &ctx.model.model;
    let fresh = history.next == 0;
    let mut ignored: Vec<String> = req.other.keys().cloned().collect();
    if let Some(config) = &req.output_config {
        ignored.extend(config.other.keys().map(|k| format!("output_config.{k}")));
    }
    match req.max_tokens {
        None if ctx.require_max_tokens => {
            return Err(ApiError::invalid(
                "max_tokens: Field required",
                Some("max_tokens"),
            ));
        }
        Some(0) => {
            return Err(ApiError::invalid(
                "max_tokens: must be greater than or equal to 1",
                Some("max_tokens"),
            ));
        }
        // Required by the API, refused by the backend: accepted, never forwarded.
        _ => {}
    }
    if req.messages.is_empty() && fresh {
        return Err(ApiError::invalid(
            "messages: at least one message is required",
            Some("messages"),
        ));
    }
    let (effort, thinking) = effort(&req, ctx)?;
    let stop = stop_sequences(req.stop_sequences)?;

    let system = system_texts(req.system.as_ref())?;
    let account_before = history.reasoning_account.clone();
    let mut converted = history.convert(req.messages)?;
    let keeps_earlier_reasoning =
        account_before.is_none() || account_before == history.reasoning_account;
    let instructions = match ctx.config.system_prompt_strategy {
        SystemPromptStrategy::Instructions => {
            if system.trim().is_empty() {
                NEUTRAL_INSTRUCTIONS.to_owned()
            } else {
                system
            }
        }
        SystemPromptStrategy::Developer => {
            if fresh && !system.trim().is_empty() {
                converted.input.insert(
                    0,
                    InputItem::Message {
                        role: Role::Developer,
                        content: vec![ContentPart::InputText { text: system }],
                    },
                );
            }
            model
                .instructions
                .as_deref()
                .unwrap_or(CODEX_INSTRUCTIONS)
                .to_owned()
        }
    };
    let tools = tools(req.tools.unwrap_or_default())?;
    let (tool_choice, parallel) = tool_choice(req.tool_choice.as_ref(), &tools, model)?;
    let mut input = converted.input;
    let (instructions, tools, parallel_tool_calls, context) =
        layout(model.lite, instructions, tools, parallel, &mut input);
    let summary = (thinking == ThinkingDisplay::Summarized).then_some("auto");
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
        service_tier: None,
        prompt_cache_key: ctx.prompt_cache_key.clone(),
        text: None,
        client_metadata: std::collections::BTreeMap::new(),
    };
    let translated = Translated {
        body,
        stream: req.stream.unwrap_or(false),
        stop,
        thinking,
        prefill: converted.prefill,
        reasoning_account: history.reasoning_account.clone(),
        keeps_earlier_reasoning,
        ignored,
        lite: model.lite,
    };
    Ok((translated, history))
}

/// The system prompt's text, without Claude Code's per-request attribution line.
pub fn system_texts(system: Option<&Content>) -> Result<String, ApiError> {
    let texts: Vec<&str> = match system {
        None => Vec::new(),
        Some(Content::Text(text)) => vec![text.as_str()],
        Some(Content::Blocks(blocks)) => {
            only_texts(blocks, "system", "system blocks must be of type 'text'")?
        }
    };
    Ok(texts
        .into_iter()
        .filter(|t| !t.trim().is_empty() && !t.trim_start().starts_with(BILLING_HEADER))
        .collect::<Vec<_>>()
        .join("\n\n"))
}

/// The texts of blocks that may only be text; any other block is a 400 at `path.N`.
fn only_texts<'a>(blocks: &'a [Block], path: &str, rule: &str) -> Result<Vec<&'a str>, ApiError> {
    blocks
        .iter()
        .enumerate()
        .map(|(i, block)| match block {
            Block::Text { text } => Ok(text.as_str()),
            _ => Err(ApiError::invalid(
                format!("{path}.{i}: {rule}"),
                Some(&format!("{path}.{i}")),
            )),
        })
        .collect()
}

fn stop_sequences(stops: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let stops: Vec<String> = stops
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if stops.len() > MAX_STOP_SEQUENCES {
        return Err(ApiError::invalid(
            format!("stop_sequences: at most {MAX_STOP_SEQUENCES} sequences are supported"),
            Some("stop_sequences"),
        ));
    }
    if stops.iter().any(|s| s.len() > MAX_STOP_LEN) {
        return Err(ApiError::invalid(
            format!("stop_sequences: each sequence may be at most {MAX_STOP_LEN} bytes"),
            Some("stop_sequences"),
        ));
    }
    Ok(stops)
}

/// Efforts from least to most.
const LADDER: [&str; 7] = ["none", "minimal", "low", "medium", "high", "xhigh", "max"];

/// `thinking.budget_tokens` → effort (README, "Use it from Claude Code"):
/// ≤ 2 048 → low, ≤ 8 192 → medium, ≤ 24 576 → high, more → xhigh.
pub fn budget_effort(budget: u64) -> &'static str {
    match budget {
        0..=2048 => "low",
        2049..=8192 => "medium",
        8193..=24_576 => "high",
        _ => "xhigh",
    }
}

/// The effort the model supports that is closest to `wanted` (the higher one on a tie).
pub fn nearest_effort(wanted: &str, supported: &[String]) -> Option<String> {
    let rank = |e: &str| LADDER.iter().position(|l| *l == e);
    let target = rank(wanted)?;
    supported
        .iter()
        .filter_map(|s| rank(s).map(|r| (r, s)))
        .min_by_key(|(r, _)| (r.abs_diff(target), std::cmp::Reverse(*r)))
        .map(|(_, s)| s.clone())
}

/// The reasoning effort and how thinking is shown. The request's own choice (thinking budget,
/// `output_config.effort`, `thinking.type: disabled`) is mapped onto the nearest effort the
/// model has; without one, the model name's suffix, the configured default, the model's own.
fn effort(req: &MessagesRequest, ctx: &Context<'_>) -> Result<(String, ThinkingDisplay), ApiError> {
    let model = &ctx.model.model;
    let requested = match req.output_config.as_ref().and_then(|c| c.effort.as_deref()) {
        None => None,
        Some(e @ ("low" | "medium" | "high" | "xhigh" | "max")) => Some(e),
        Some(other) => {
            return Err(ApiError::invalid(
                format!(
                    "output_config.effort: '{}' is not one of 'low', 'medium', 'high', 'max'",
                    crate::api_error::quoted(other)
                ),
                Some("output_config.effort"),
            ));
        }
    };
    let shown = |display: Option<&str>| match display {
        None | Some("summarized") => Ok(ThinkingDisplay::Summarized),
        Some("omitted") => Ok(ThinkingDisplay::Omitted),
        Some(other) => Err(ApiError::invalid(
            format!(
                "thinking.display: '{}' is not one of 'summarized', 'omitted'",
                crate::api_error::quoted(other)
            ),
            Some("thinking.display"),
        )),
    };
    let (wanted, display) = match &req.thinking {
        None => (requested, ThinkingDisplay::Hidden),
        Some(t) => match t.kind.as_str() {
            "disabled" => (Some("none"), ThinkingDisplay::Hidden),
            "enabled" => {
                let Some(budget) = t.budget_tokens else {
                    return Err(ApiError::invalid(
                        "thinking.enabled.budget_tokens: Field required",
                        Some("thinking.budget_tokens"),
                    ));
                };
                (
                    Some(requested.unwrap_or(budget_effort(budget))),
                    shown(t.display.as_deref())?,
                )
            }
            "adaptive" => (requested, shown(t.display.as_deref())?),
            other => {
                return Err(ApiError::invalid(
                    format!(
                        "thinking.type: '{}' is not one of 'enabled', 'disabled', 'adaptive'",
                        crate::api_error::quoted(other)
                    ),
                    Some("thinking.type"),
                ));
            }
        },
    };
    let effort = wanted
        .and_then(|w| nearest_effort(w, &model.efforts))
        .or_else(|| ctx.model.suffix_effort.clone())
        .or_else(|| {
            ctx.config
                .default_reasoning_effort
                .map(|e| e.as_str().to_owned())
                .filter(|e| model.efforts.contains(e))
        })
        .unwrap_or_else(|| model.default_effort.clone());
    Ok((effort, display))
}

/// The messages as input items, with what the rest of the translation needs from them.
#[derive(Debug, Default)]
struct Converted {
    input: Vec<InputItem>,
    prefill: Option<String>,
    reasoning_account: Option<String>,
    /// The account of each reasoning item in `input`, in order.
    reasoning_accounts: Vec<String>,
}

impl Converted {
    /// Leaves out the reasoning of accounts other than the last one's.
    fn only_last_accounts_reasoning(&mut self) {
        let Some(last) = &self.reasoning_account else {
            return;
        };
        if self.reasoning_accounts.iter().all(|a| a == last) {
            return;
        }
        let mut accounts = std::mem::take(&mut self.reasoning_accounts).into_iter();
        self.input.retain(|item| {
            !matches!(item, InputItem::Reasoning { .. })
                || accounts.next().is_some_and(|a| a == *last)
        });
    }
}

/// What a conversation's messages so far mean for the next ones: the tool calls made (a
/// result answers one), the account whose reasoning they give back. Translating messages one
/// request after another from it gives what translating them all at once gives.
#[derive(Debug, Clone, Default)]
pub struct History {
    calls: std::collections::HashSet<String>,
    reasoning_account: Option<String>,
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

    fn convert(&mut self, messages: Vec<super::Message>) -> Result<Converted, ApiError> {
        let mut out = Converted {
            reasoning_account: self.reasoning_account.take(),
            ..Converted::default()
        };
        let result = convert(messages, self.next, &mut self.calls, &mut out);
        self.next += result?;
        out.only_last_accounts_reasoning();
        self.reasoning_account = out.reasoning_account.clone();
        Ok(out)
    }
}

/// Translates `messages` (the first at index `first` of the request) onto `out`; how many.
fn convert(
    messages: Vec<super::Message>,
    first: usize,
    calls: &mut std::collections::HashSet<String>,
    out: &mut Converted,
) -> Result<usize, ApiError> {
    let count = messages.len();
    for (i, message) in messages.into_iter().enumerate() {
        let path = format!("messages.{}", first + i);
        let blocks = match message.content {
            Content::Text(text) => vec![Block::Text { text }],
            Content::Blocks(blocks) => blocks,
        };
        match message.role.as_str() {
            "user" => user(blocks, &path, calls, &mut out.input)?,
            "assistant" => {
                if i + 1 == count {
                    out.prefill = prefill(&blocks);
                }
                assistant(blocks, &path, calls, out)?;
            }
            // Claude Code puts notes for the model mid-conversation as `system` messages; the
            // backend refuses system messages, so they go as developer messages, in place.
            "system" => {
                let text = only_texts(
                    &blocks,
                    &format!("{path}.content"),
                    "a system message may only contain text blocks",
                )?
                .join("\n\n");
                if !text.trim().is_empty() {
                    out.input.push(InputItem::Message {
                        role: Role::Developer,
                        content: vec![ContentPart::InputText { text }],
                    });
                }
            }
            other => {
                return Err(ApiError::invalid(
                    format!(
                        "{path}.role: '{}' is not one of 'user', 'assistant'",
                        crate::api_error::quoted(other)
                    ),
                    Some(&format!("{path}.role")),
                ));
            }
        }
    }
    Ok(count)
}

/// A final assistant message of text only: the answer is to continue it.
fn prefill(blocks: &[Block]) -> Option<String> {
    let mut text = String::new();
    for block in blocks {
        match block {
            Block::Text { text: t } => text.push_str(t),
            Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
            _ => return None,
        }
    }
    let text = text.trim_end().to_owned();
    (!text.is_empty()).then_some(text)
}

fn flush(role: Role, parts: &mut Vec<ContentPart>, input: &mut Vec<InputItem>) {
    if !parts.is_empty() {
        input.push(InputItem::Message {
            role,
            content: std::mem::take(parts),
        });
    }
}

fn user(
    blocks: Vec<Block>,
    path: &str,
    calls: &std::collections::HashSet<String>,
    input: &mut Vec<InputItem>,
) -> Result<(), ApiError> {
    let mut parts = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{path}.content.{j}");
        match block {
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                if !calls.contains(&tool_use_id) {
                    return Err(ApiError::invalid(
                        format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {}. \
                             Each `tool_result` block must have a corresponding `tool_use` block \
                             in an earlier assistant message.",
                            crate::api_error::quoted(&tool_use_id)
                        ),
                        Some(&format!("{at}.tool_use_id")),
                    ));
                }
                // Outputs keep their place relative to the text around them.
                flush(Role::User, &mut parts, input);
                let output = tool_output(content, is_error.unwrap_or(false), &at)?;
                input.push(InputItem::FunctionCallOutput {
                    call_id: tool_use_id,
                    output,
                });
            }
            Block::ToolUse { .. } => {
                return Err(ApiError::invalid(
                    format!("{at}: tool_use blocks belong in assistant messages"),
                    Some(&at),
                ));
            }
            other => {
                if let Some(part) = input_part(other, &at)? {
                    parts.push(part);
                }
            }
        }
    }
    flush(Role::User, &mut parts, input);
    Ok(())
}

/// A user-side block as an input part; `None` for what the backend has no use for.
fn input_part(block: Block, at: &str) -> Result<Option<ContentPart>, ApiError> {
    Ok(match block {
        Block::Text { text } if text.is_empty() => None,
        Block::Text { text } => Some(ContentPart::InputText { text }),
        Block::Image { source } => Some(image(source, at)?),
        Block::Document { source, title } => document(source, title, at)?,
        Block::SearchResult {
            source,
            title,
            content,
        } => {
            let texts: Vec<String> = content
                .into_iter()
                .filter_map(|b| match b {
                    Block::Text { text } => Some(text),
                    _ => None,
                })
                .collect();
            Some(ContentPart::InputText {
                text: format!("{title} ({source})\n\n{}", texts.join("\n\n")),
            })
        }
        // Thinking and server-tool blocks in a user turn carry nothing the backend can use.
        _ => None,
    })
}

const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

fn image(source: Source, at: &str) -> Result<ContentPart, ApiError> {
    let image_url = match source {
        Source::Base64 { media_type, data } => {
            if !IMAGE_TYPES.contains(&media_type.as_str()) {
                return Err(ApiError::invalid(
                    format!(
                        "{at}.source.media_type: '{}' is not one of {}",
                        crate::api_error::quoted(&media_type),
                        IMAGE_TYPES.map(|t| format!("'{t}'")).join(", ")
                    ),
                    Some(&format!("{at}.source.media_type")),
                ));
            }
            format!("data:{media_type};base64,{data}")
        }
        Source::Url { url } => url,
        Source::File { .. } => return Err(no_files(at)),
        Source::Text { .. } | Source::Content { .. } => {
            return Err(ApiError::invalid(
                format!("{at}.source: an image takes a 'base64' or 'url' source"),
                Some(&format!("{at}.source")),
            ));
        }
    };
    Ok(ContentPart::InputImage {
        image_url,
        detail: None,
    })
}

fn no_files(at: &str) -> ApiError {
    ApiError::invalid(
        format!(
            "{at}.source: 'file' sources need Anthropic's Files API, which codex-proxy does not \
             have; send the file inline (base64) instead"
        ),
        Some(&format!("{at}.source")),
    )
}

fn document(
    source: Source,
    title: Option<String>,
    at: &str,
) -> Result<Option<ContentPart>, ApiError> {
    let titled = |text: String| match &title {
        Some(title) if !title.is_empty() => format!("{title}\n\n{text}"),
        _ => text,
    };
    Ok(match source {
        Source::Base64 { media_type, data } => Some(ContentPart::InputFile {
            filename: Some(title.clone().unwrap_or_else(|| {
                if media_type == "application/pdf" {
                    "document.pdf".to_owned()
                } else {
                    "document.txt".to_owned()
                }
            })),
            file_data: Some(format!("data:{media_type};base64,{data}")),
            file_id: None,
            file_url: None,
        }),
        Source::Url { url } => Some(ContentPart::InputFile {
            file_url: Some(url),
            file_data: None,
            file_id: None,
            filename: title,
        }),
        Source::Text { data, .. } => Some(ContentPart::InputText { text: titled(data) }),
        Source::Content { content } => {
            let blocks = match content {
                Content::Text(text) => vec![Block::Text { text }],
                Content::Blocks(blocks) => blocks,
            };
            let text: Vec<String> = blocks
                .into_iter()
                .filter_map(|b| match b {
                    Block::Text { text } => Some(text),
                    _ => None,
                })
                .collect();
            Some(ContentPart::InputText {
                text: titled(text.join("\n\n")),
            })
        }
        Source::File { .. } => return Err(no_files(at)),
    })
}

/// A `tool_result`'s content as a function call output: one string when it is text only,
/// parts when it carries images. An error result says so first.
fn tool_output(content: Option<Content>, is_error: bool, at: &str) -> Result<ToolOutput, ApiError> {
    let mut parts = match content {
        None => Vec::new(),
        Some(Content::Text(text)) => vec![ContentPart::InputText { text }],
        Some(Content::Blocks(blocks)) => {
            let mut parts = Vec::new();
            for (k, block) in blocks.into_iter().enumerate() {
                if let Some(part) = input_part(block, &format!("{at}.content.{k}"))? {
                    parts.push(part);
                }
            }
            parts
        }
    };
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
        return Ok(ToolOutput::Text(match (is_error, text.is_empty()) {
            (false, _) => text,
            (true, true) => "Error".to_owned(),
            (true, false) => format!("Error: {text}"),
        }));
    }
    if is_error {
        parts.insert(
            0,
            ContentPart::InputText {
                text: "Error:".into(),
            },
        );
    }
    Ok(ToolOutput::Parts(parts))
}

fn assistant(
    blocks: Vec<Block>,
    path: &str,
    calls: &mut std::collections::HashSet<String>,
    out: &mut Converted,
) -> Result<(), ApiError> {
    let mut text = String::new();
    let flush_text = |text: &mut String, input: &mut Vec<InputItem>| {
        if !text.is_empty() {
            input.push(InputItem::Message {
                role: Role::Assistant,
                content: vec![ContentPart::OutputText {
                    text: std::mem::take(text),
                }],
            });
        }
    };
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{path}.content.{j}");
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { id, name, input } => {
                flush_text(&mut text, &mut out.input);
                if id.is_empty() {
                    return Err(ApiError::invalid(
                        format!("{at}.id: a tool_use block needs an id"),
                        Some(&format!("{at}.id")),
                    ));
                }
                let arguments = match input {
                    Value::Null => "{}".to_owned(),
                    input => input.to_string(),
                };
                calls.insert(id.clone());
                out.input.push(InputItem::FunctionCall {
                    name,
                    arguments,
                    call_id: id,
                });
            }
            Block::Thinking {
                thinking,
                signature: Some(signature),
            } => {
                // Ours: the reasoning goes back as it came, to the account that made it. Any
                // other signature cannot be read by the backend and is left out.
                if let Some((account, encrypted)) = signature::decode(&signature) {
                    flush_text(&mut text, &mut out.input);
                    let summary = if thinking.is_empty() {
                        Vec::new()
                    } else {
                        vec![SummaryText { text: thinking }]
                    };
                    out.input.push(InputItem::Reasoning {
                        summary,
                        encrypted_content: encrypted.to_owned(),
                    });
                    out.reasoning_accounts.push(account.clone());
                    out.reasoning_account = Some(account);
                }
            }
            Block::Image { .. } | Block::Document { .. } | Block::ToolResult { .. } => {
                return Err(ApiError::invalid(
                    format!("{at}: assistant messages may not contain this block type"),
                    Some(&format!("{at}.type")),
                ));
            }
            _ => {}
        }
    }
    flush_text(&mut text, &mut out.input);
    Ok(())
}

/// Anthropic tool definitions → function tools. Anthropic's server tools become the backend's
/// equivalent where there is one (web search); the others are refused.
fn tools(defs: Vec<Value>) -> Result<Vec<Tool>, ApiError> {
    let mut out = Vec::with_capacity(defs.len());
    let mut names = std::collections::HashSet::new();
    for (i, def) in defs.into_iter().enumerate() {
        let at = format!("tools.{i}");
        let Value::Object(mut def) = def else {
            return Err(ApiError::invalid(
                format!("{at}: a tool must be an object"),
                Some(&at),
            ));
        };
        let kind = def.get("type").and_then(Value::as_str).map(str::to_owned);
        match kind.as_deref() {
            None | Some("custom") => {}
            Some(kind) if kind.starts_with("web_search_") => {
                if !names.insert("web_search".to_owned()) {
                    return Err(duplicate("web_search"));
                }
                out.push(Tool::WebSearch {});
                continue;
            }
            Some(kind) => {
                return Err(ApiError::invalid(
                    format!(
                        "{at}.type: Anthropic's server tool '{}' has no equivalent on the Codex \
                         backend; of the server tools only web search (web_search_*) is \
                         supported. Declare it as a tool with an input_schema instead.",
                        crate::api_error::quoted(kind)
                    ),
                    Some(&format!("{at}.type")),
                ));
            }
        }
        let name = match def.remove("name") {
            Some(Value::String(name)) => name,
            _ => {
                return Err(ApiError::invalid(
                    format!("{at}.name: Field required"),
                    Some(&format!("{at}.name")),
                ));
            }
        };
        if !valid_tool_name(&name) {
            return Err(ApiError::invalid(
                format!(
                    "{at}.name: '{}' must be 1-64 letters, digits, '_' or '-'",
                    crate::api_error::quoted(&name)
                ),
                Some(&format!("{at}.name")),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(duplicate(&name));
        }
        let description = match def.remove("description") {
            Some(Value::String(d)) if !d.is_empty() => Some(d),
            _ => None,
        };
        let mut parameters = match def.remove("input_schema") {
            Some(Value::Object(schema)) => schema,
            None => serde_json::Map::new(),
            Some(_) => {
                return Err(ApiError::invalid(
                    format!("{at}.input_schema: must be a JSON Schema object"),
                    Some(&format!("{at}.input_schema")),
                ));
            }
        };
        parameters.remove("$schema");
        parameters
            .entry("type")
            .or_insert_with(|| Value::String("object".into()));
        parameters.entry("properties").or_insert_with(|| json!({}));
        let parameters = Value::Object(parameters);
        // Strict only when asked and the schema allows it: Claude Code's schemas have optional
        // fields, which strict mode would make required (or the backend would refuse).
        let strict = def.get("strict").and_then(Value::as_bool) == Some(true)
            && schema::check_strict(&parameters, "input_schema").is_ok();
        out.push(Tool::Function {
            name,
            description,
            strict,
            parameters,
        });
    }
    Ok(out)
}

fn duplicate(name: &str) -> ApiError {
    ApiError::invalid(
        format!(
            "tools: tool names must be unique; '{}' is declared twice",
            crate::api_error::quoted(name)
        ),
        Some("tools"),
    )
}

/// `tool_choice` and whether calls may run in parallel.
fn tool_choice(
    choice: Option<&super::ToolChoice>,
    tools: &[Tool],
    model: &crate::models::ModelInfo,
) -> Result<(ToolChoice, bool), ApiError> {
    let parallel = model.parallel_tool_calls
        && !choice
            .and_then(|c| c.disable_parallel_tool_use)
            .unwrap_or(false);
    let Some(choice) = choice else {
        return Ok((ToolChoice::Mode("auto"), parallel));
    };
    let mode = match choice.kind.as_str() {
        "auto" => ToolChoice::Mode("auto"),
        "none" => ToolChoice::Mode("none"),
        "any" if tools.is_empty() => {
            return Err(ApiError::invalid(
                "tool_choice: 'any' needs at least one tool in 'tools'",
                Some("tool_choice"),
            ));
        }
        "any" => ToolChoice::Mode("required"),
        "tool" => {
            let Some(name) = choice.name.as_deref() else {
                return Err(ApiError::invalid(
                    "tool_choice.tool.name: Field required",
                    Some("tool_choice.name"),
                ));
            };
            let declared = tools
                .iter()
                .any(|t| matches!(t, Tool::Function { name: n, .. } if n == name));
            if !declared {
                return Err(ApiError::invalid(
                    format!(
                        "tool_choice: tool '{}' is not in 'tools'",
                        crate::api_error::quoted(name)
                    ),
                    Some("tool_choice.name"),
                ));
            }
            ToolChoice::Named {
                kind: "function",
                name: name.to_owned(),
            }
        }
        other => {
            return Err(ApiError::invalid(
                format!(
                    "tool_choice.type: '{}' is not one of 'auto', 'any', 'tool', 'none'",
                    crate::api_error::quoted(other)
                ),
                Some("tool_choice.type"),
            ));
        }
    };
    Ok((mode, parallel))
}
