//! The Anthropic Messages wire (`POST /v1/messages`): requests as Claude Code and the Anthropic
//! SDKs send them, and their translation to and from the Codex Responses wire.
//!
//! - [`request`]: a Messages body → a Responses body (pure; every rule unit-tested).
//! - [`render`]: the neutral output layer's events → Anthropic's stream events, or the whole
//!   message.
//! - [`tokens`]: the local `count_tokens` estimate.
//! - [`digest`]: digests of a request's parts that tell whether a request continues the last
//!   one of its conversation, for translating only its new messages.
//! - [`signature`]: what a `thinking` block's `signature` carries: the account and the encrypted
//!   reasoning, so a later turn can give the reasoning back to the account that made it.

pub mod digest;
pub mod render;
pub mod request;
pub mod signature;
pub mod tokens;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `POST /v1/messages` (and `/count_tokens`, which has no `max_tokens`). Fields the backend
/// cannot honour (`temperature`, `top_p`, `top_k`, `context_management`, …) land in `other`
/// and are reported in `x-codex-proxy-ignored-params`.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub system: Option<System>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub thinking: Option<Thinking>,
    #[serde(default)]
    pub output_config: Option<OutputConfig>,
    #[serde(default)]
    pub service_tier: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The system prompt: a string or text blocks (read like [`Content`]).
pub type System = Content;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Content,
}

/// A string or a list of blocks. Read by hand rather than as an untagged enum, so a bad block
/// is reported with its own error ("unknown variant `x`, expected one of …") at its path.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Content, E> {
                Ok(Content::Text(text.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Content, E> {
                Ok(Content::Text(text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Content, A::Error> {
                Vec::<Block>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Content::Blocks)
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// A content block. `cache_control`, `citations` and other annotations are read past.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
        #[serde(default)]
        title: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<Content>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    /// A search result a client supplies (text with its source), read as text.
    SearchResult {
        #[serde(default)]
        source: String,
        #[serde(default)]
        title: String,
        #[serde(default)]
        content: Vec<Block>,
    },
    /// Inside a tool search's result: a tool made callable. Every tool is callable here
    /// already, so it carries nothing.
    ToolReference {},
    BrowserState {},
    /// Blocks of Anthropic's own server tools (web search results and the like), replayed by
    /// a client: the backend has nothing to match them with, so they are left out.
    ServerToolUse {},
    WebSearchToolResult {},
    WebFetchToolResult {},
    CodeExecutionToolResult {},
    BashCodeExecutionToolResult {},
    TextEditorCodeExecutionToolResult {},
    ToolSearchToolResult {},
    ContainerUpload {},
    McpToolUse {},
    McpToolResult {},
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    /// A plain-text document.
    Text {
        #[serde(default)]
        media_type: Option<String>,
        data: String,
    },
    /// A document made of content blocks.
    Content {
        content: Content,
    },
    File {
        file_id: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct ToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Thinking {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub budget_tokens: Option<u64>,
    /// `summarized` (the default) or `omitted` (blocks come with an empty text, signature only).
    #[serde(default)]
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OutputConfig {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// How a response shows the model's reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingDisplay {
    /// Thinking was not requested: no thinking blocks at all.
    Hidden,
    /// Thinking blocks with the reasoning summary and the signature.
    Summarized,
    /// Thinking blocks with an empty text and the signature (`display: "omitted"`).
    Omitted,
}

/// Anthropic's message id for a Responses id (`resp_…` → `msg_…`).
pub fn message_id(response_id: Option<&str>) -> String {
    match response_id {
        Some(id) => format!("msg_{}", id.strip_prefix("resp_").unwrap_or(id)),
        None => format!("msg_{}", uuid::Uuid::new_v4().simple()),
    }
}
