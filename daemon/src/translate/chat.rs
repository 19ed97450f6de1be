//! The OpenAI Chat Completions wire: requests as clients send them, completions and chunks as
//! OpenAI answers them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/chat/completions` body. Fields the gateway cannot honour land in `other` and are
/// reported back in `x-codex-proxy-ignored-params`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub tools: Option<Vec<ChatTool>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Legacy function calling.
    #[serde(default)]
    pub functions: Option<Vec<FunctionDef>>,
    #[serde(default)]
    pub function_call: Option<Value>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// `{"effort": …}` as some clients send it (OpenRouter style).
    #[serde(default)]
    pub reasoning: Option<ReasoningParam>,
    #[serde(default)]
    pub verbosity: Option<String>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub service_tier: Option<String>,
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReasoningParam {
    #[serde(default)]
    pub effort: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: MessageContent,
    },
    Developer {
        content: MessageContent,
    },
    User {
        content: MessageContent,
    },
    Assistant {
        #[serde(default)]
        content: Option<MessageContent>,
        #[serde(default)]
        tool_calls: Option<Vec<ToolCall>>,
        #[serde(default)]
        function_call: Option<FunctionCallMsg>,
        #[serde(default)]
        refusal: Option<String>,
    },
    Tool {
        #[serde(default)]
        content: Option<MessageContent>,
        tool_call_id: String,
    },
    Function {
        name: String,
        #[serde(default)]
        content: Option<MessageContent>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    InputAudio {
        #[serde(default)]
        input_audio: Value,
    },
    File {
        file: FileRef,
    },
    Refusal {
        refusal: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    Object {
        url: String,
        #[serde(default)]
        detail: Option<String>,
    },
    Bare(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileRef {
    #[serde(default)]
    pub file_data: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolCall {
    Function {
        id: String,
        function: FunctionCallMsg,
    },
    Custom {
        id: String,
        custom: CustomCallMsg,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionCallMsg {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CustomCallMsg {
    pub name: String,
    #[serde(default)]
    pub input: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatTool {
    Function { function: FunctionDef },
    Custom { custom: CustomDef },
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CustomDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub format: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

// ---- responses to the client ----

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptDetails,
    pub completion_tokens_details: CompletionDetails,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
    pub audio_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
    pub audio_tokens: u64,
    pub accepted_prediction_tokens: u64,
    pub rejected_prediction_tokens: u64,
}

impl ChatUsage {
    pub fn add(&mut self, other: &Self) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.prompt_tokens_details.cached_tokens += other.prompt_tokens_details.cached_tokens;
        self.completion_tokens_details.reasoning_tokens +=
            other.completion_tokens_details.reasoning_tokens;
    }
}

/// One `chat.completion.chunk`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: i64,
    pub model: &'a str,
    pub system_fingerprint: Option<&'a str>,
    pub choices: &'a [ChunkChoice],
    /// With `include_usage`, `null` on every chunk but the last, as OpenAI sends it.
    #[serde(skip_serializing_if = "UsageField::is_absent")]
    pub usage: UsageField,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UsageField {
    Absent,
    Null,
    Present(ChatUsage),
}

impl UsageField {
    fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl Serialize for UsageField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Present(usage) => usage.serialize(s),
            Self::Absent | Self::Null => s.serialize_none(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<()>,
    pub finish_reason: Option<FinishReason>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomDelta>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub input: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

/// A non-streamed `chat.completion`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub system_fingerprint: Option<String>,
    pub choices: Vec<CompletionChoice>,
    pub usage: ChatUsage,
}

impl ChatCompletion {
    /// The completion as JSON: byte for byte what serde writes (tested), with its texts quoted
    /// by [`json_text`](crate::json_text) — serde_json escapes a byte at a time, about three
    /// times the work for an answer's text.
    pub fn to_json(&self) -> Vec<u8> {
        use crate::json_text::quote_into as quote;
        fn text(out: &mut Vec<u8>, value: Option<&str>) {
            match value {
                Some(value) => quote(out, value),
                None => out.extend_from_slice(b"null"),
            }
        }
        // Values that are not plain text go through serde (writing to a Vec cannot fail).
        fn serde(out: &mut Vec<u8>, value: &impl Serialize) {
            let _ = serde_json::to_writer(&mut *out, value);
        }
        let texts: usize = self
            .choices
            .iter()
            .map(|c| {
                let m = &c.message;
                m.content.as_ref().map_or(0, String::len)
                    + m.reasoning_content.as_ref().map_or(0, String::len)
            })
            .sum();
        let mut out = Vec::with_capacity(512 + texts + texts / 8);
        out.extend_from_slice(b"{\"id\":");
        quote(&mut out, &self.id);
        out.extend_from_slice(b",\"object\":");
        quote(&mut out, self.object);
        out.extend_from_slice(b",\"created\":");
        serde(&mut out, &self.created);
        out.extend_from_slice(b",\"model\":");
        quote(&mut out, &self.model);
        out.extend_from_slice(b",\"system_fingerprint\":");
        text(&mut out, self.system_fingerprint.as_deref());
        out.extend_from_slice(b",\"choices\":[");
        for (i, choice) in self.choices.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let message = &choice.message;
            out.extend_from_slice(b"{\"index\":");
            serde(&mut out, &choice.index);
            out.extend_from_slice(b",\"message\":{\"role\":");
            quote(&mut out, message.role);
            out.extend_from_slice(b",\"content\":");
            text(&mut out, message.content.as_deref());
            if let Some(reasoning) = &message.reasoning_content {
                out.extend_from_slice(b",\"reasoning_content\":");
                quote(&mut out, reasoning);
            }
            out.extend_from_slice(b",\"refusal\":");
            text(&mut out, message.refusal.as_deref());
            if !message.tool_calls.is_empty() {
                out.extend_from_slice(b",\"tool_calls\":");
                serde(&mut out, &message.tool_calls);
            }
            out.extend_from_slice(b",\"annotations\":");
            serde(&mut out, &message.annotations);
            out.extend_from_slice(b"},\"logprobs\":");
            serde(&mut out, &choice.logprobs);
            out.extend_from_slice(b",\"finish_reason\":");
            serde(&mut out, &choice.finish_reason);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"usage\":");
        serde(&mut out, &self.usage);
        out.push(b'}');
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<()>,
    pub finish_reason: FinishReason,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<Value>,
    pub annotations: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(
        index: u32,
        message: AssistantMessage,
        finish_reason: FinishReason,
    ) -> CompletionChoice {
        CompletionChoice {
            index,
            message,
            logprobs: None,
            finish_reason,
        }
    }

    /// The hand-written completion is byte for byte serde's, whatever it holds.
    #[test]
    fn completion_json_is_serdes() {
        let texts = [
            "Hello!".to_owned(),
            String::new(),
            "say \"hi\"\\ \n\r\t\u{0}\u{1f}\u{7f} Grüße 世界 😀".to_owned(),
            "long answer ".repeat(300),
        ];
        let mut completions = Vec::new();
        for text in &texts {
            completions.push(ChatCompletion {
                id: format!("chatcmpl-{text}"),
                object: "chat.completion",
                created: 1_764_000_000,
                model: "gpt-5.5".into(),
                system_fingerprint: None,
                choices: vec![choice(
                    0,
                    AssistantMessage {
                        role: "assistant",
                        content: Some(text.clone()),
                        ..AssistantMessage::default()
                    },
                    FinishReason::Stop,
                )],
                usage: ChatUsage::default(),
            });
        }
        completions.push(ChatCompletion {
            id: "chatcmpl-\"quoted\"".into(),
            object: "chat.completion",
            created: -1,
            model: "gpt-5.5-codex\n".into(),
            system_fingerprint: Some("fp_\u{1}".into()),
            choices: vec![
                choice(
                    0,
                    AssistantMessage {
                        role: "assistant",
                        content: None,
                        reasoning_content: Some(texts[2].clone()),
                        refusal: Some("I can't \"do\" that".into()),
                        tool_calls: vec![serde_json::json!({
                            "id": "call_1", "type": "function",
                            "function": {"name": "f", "arguments": "{\"a\":\"\\n\"}"}
                        })],
                        annotations: vec![serde_json::json!({"type": "url_citation"})],
                    },
                    FinishReason::ToolCalls,
                ),
                choice(
                    7,
                    AssistantMessage {
                        role: "assistant",
                        content: Some(texts[3].clone()),
                        reasoning_content: Some(String::new()),
                        ..AssistantMessage::default()
                    },
                    FinishReason::Length,
                ),
            ],
            usage: ChatUsage {
                prompt_tokens: 12,
                completion_tokens: 34,
                total_tokens: 46,
                prompt_tokens_details: PromptDetails {
                    cached_tokens: 5,
                    audio_tokens: 0,
                },
                completion_tokens_details: CompletionDetails {
                    reasoning_tokens: 9,
                    ..CompletionDetails::default()
                },
            },
        });
        completions.push(ChatCompletion {
            choices: Vec::new(),
            ..completions[0].clone()
        });
        for completion in &completions {
            assert_eq!(
                String::from_utf8(completion.to_json()).unwrap(),
                serde_json::to_string(completion).unwrap()
            );
        }
    }
}
