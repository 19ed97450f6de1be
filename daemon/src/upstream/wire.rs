//! The Codex Responses wire (protocol §2.3–§2.6, §3): the request the daemon sends and the stream
//! events it reads. Field order follows the official client's serialisation.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /codex/responses` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponsesRequest {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    pub input: Vec<InputItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: ToolChoice,
    pub parallel_tool_calls: bool,
    pub reasoning: Reasoning,
    pub store: bool,
    pub stream: bool,
    pub include: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    pub prompt_cache_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextControls>,
    /// Installation and session ids, as the official client sends them (§2.3).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub client_metadata: std::collections::BTreeMap<&'static str, String>,
}

/// Every member of a [`ResponsesRequest`] but `input`, serialised as the derived
/// implementation does (a test holds the two together): what [`write_head`] writes.
#[derive(Serialize)]
struct Head<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Tool]>,
    tool_choice: &'a ToolChoice,
    parallel_tool_calls: bool,
    reasoning: &'a Reasoning,
    store: bool,
    stream: bool,
    include: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'a str>,
    prompt_cache_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a TextControls>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    client_metadata: &'a std::collections::BTreeMap<&'static str, String>,
}

impl<'a> Head<'a> {
    fn of(body: &'a ResponsesRequest) -> Self {
        // Every field named: a new member of the request cannot be forgotten here.
        let ResponsesRequest {
            model,
            instructions,
            input: _,
            tools,
            tool_choice,
            parallel_tool_calls,
            reasoning,
            store,
            stream,
            include,
            service_tier,
            prompt_cache_key,
            text,
            client_metadata,
        } = body;
        Head {
            model,
            instructions: instructions.as_deref(),
            tools: tools.as_deref(),
            tool_choice,
            parallel_tool_calls: *parallel_tool_calls,
            reasoning,
            store: *store,
            stream: *stream,
            include,
            service_tier: service_tier.as_deref(),
            prompt_cache_key,
            text: text.as_ref(),
            client_metadata,
        }
    }
}

/// The members of `body` before `input`, as JSON: `{` and the members, without the closing
/// brace (the input goes last, see [`super::written`]).
pub fn write_head(body: &ResponsesRequest) -> serde_json::Result<String> {
    let room =
        512 + body.instructions.as_ref().map_or(0, String::len) + body.prompt_cache_key.len();
    let mut json = Vec::with_capacity(room);
    serde_json::to_writer(&mut json, &Head::of(body))?;
    // `{…}` with at least `model` in it.
    json.pop();
    String::from_utf8(json).map_err(serde::ser::Error::custom)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reasoning {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextControls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<TextFormat>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// One input item (§2.5). Only the kinds a Chat Completions conversation produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputItem {
    Message {
        role: Role,
        content: Vec<ContentPart>,
    },
    FunctionCall {
        name: String,
        arguments: String,
        call_id: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: ToolOutput,
    },
    CustomToolCall {
        call_id: String,
        name: String,
        input: String,
    },
    CustomToolCallOutput {
        call_id: String,
        output: ToolOutput,
    },
    /// Reasoning the model produced earlier, sent back so it keeps it (§2.5); only the account
    /// that made `encrypted_content` can read it.
    Reasoning {
        summary: Vec<SummaryText>,
        encrypted_content: String,
    },
    /// Responses-Lite: the tools travel in the input (§2.4).
    AdditionalTools {
        role: Role,
        tools: Vec<Tool>,
    },
}

/// One part of a reasoning item's summary as the input carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename = "summary_text")]
pub struct SummaryText {
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    Developer,
    System,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    InputText {
        text: String,
    },
    InputImage {
        image_url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    InputFile {
        #[serde(skip_serializing_if = "Option::is_none")]
        file_data: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        file_url: Option<String>,
    },
    OutputText {
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ToolOutput {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tool {
    Function {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Always sent: the Responses API treats an absent `strict` as true.
        strict: bool,
        parameters: Value,
    },
    Custom {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        format: Option<Value>,
    },
    Namespace {
        name: String,
        description: String,
        tools: Vec<Tool>,
    },
    /// The backend's own web search.
    WebSearch {},
    /// The backend's image generation: the model calls it, the answer carries the image
    /// (an `image_generation_call` item with the base64 `result`).
    ImageGeneration {
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        quality: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        output_format: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        output_compression: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        background: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        moderation: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        input_fidelity: Option<String>,
        /// An edit's mask: `{"image_url": "data:…"}`.
        #[serde(skip_serializing_if = "Option::is_none")]
        input_image_mask: Option<Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        name: String,
    },
}

// ---- stream events (§3.2) ----

/// The envelope of every SSE `data:`; only the fields the translation reads. The strings of
/// the frequent events (type, item id, delta) borrow from the event's bytes when they can.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    pub item_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub output_index: Option<u32>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    pub delta: Option<Cow<'a, str>>,
    #[serde(default)]
    pub summary_index: Option<u32>,
    /// Boxed, like `response`: they are rare, and unboxed they made every event (which is moved
    /// from reader to translator) several hundred bytes.
    #[serde(default)]
    pub item: Option<Box<OutputItem>>,
    #[serde(default)]
    pub response: Option<Box<ResponseObject>>,
}

/// `Option<Cow<str>>` that borrows when the string has no escapes (serde's own impl for it
/// always copies).
fn borrowed<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::{Error, Visitor};

    struct Optional;
    impl<'de> Visitor<'de> for Optional {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(super::items::TextVisitor).map(Some)
        }
    }
    deserializer.deserialize_option(Optional)
}

impl<'a> StreamEvent<'a> {
    /// An event of this type with no other field read.
    pub fn of_kind(kind: Cow<'a, str>) -> Self {
        Self {
            kind,
            item_id: None,
            output_index: None,
            delta: None,
            summary_index: None,
            item: None,
            response: None,
        }
    }

    /// Parses one event's `data` and hands it to `f`; `None` when it is not an event (the
    /// official client skips those). Bytes that are not UTF-8 are replaced, not dropped.
    ///
    /// An event whose type `ignored` names (the caller never reads it) may come with its type
    /// alone: the fields after the type are not read (the upstream sends the type first).
    pub fn with<R>(
        data: &[u8],
        ignored: fn(&str) -> bool,
        f: impl FnOnce(StreamEvent<'_>) -> R,
    ) -> Option<R> {
        // Such an event needs neither the rest of its bytes validated nor a parser.
        if let Some(kind) = leading_type(data).filter(|kind| ignored(kind)) {
            return Some(f(StreamEvent::of_kind(Cow::Borrowed(kind))));
        }
        let text = match std::str::from_utf8(data) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(data),
        };
        match serde_json::from_str::<StreamEvent<'_>>(&text) {
            Ok(event) => Some(f(event)),
            Err(e) => {
                tracing::debug!("skipping an unparseable upstream event: {e}");
                None
            }
        }
    }
}

/// The type of the event in `data` when it comes first, written plainly — `{"type":"…",` as
/// the upstream writes every event — and is one of [`KNOWN_TYPES`], found without validating
/// or parsing the rest. `None` for any other spelling (space, escape, another key first) or
/// type; the parser then decides.
#[inline]
pub fn leading_type(data: &[u8]) -> Option<&'static str> {
    let rest = data.strip_prefix(br#"{"type":""#)?;
    // Most events are text deltas: those without a search.
    if rest.first_chunk::<27>() == Some(b"response.output_text.delta\"") {
        return matches!(rest.get(27), Some(b',' | b'}')).then_some(KNOWN_TYPES[0]);
    }
    let end = memchr::memchr(b'"', rest.get(..rest.len().min(MAX_TYPE_LEN))?)?;
    if !matches!(rest.get(end + 1), Some(b',' | b'}')) {
        return None;
    }
    let kind = &rest[..end];
    KNOWN_TYPES
        .iter()
        .copied()
        .find(|known| known.as_bytes() == kind)
}

/// Longer than any type of [`KNOWN_TYPES`].
const MAX_TYPE_LEN: usize = 48;

/// The event types of codex-protocol.md §3, the most frequent first.
pub const KNOWN_TYPES: [&str; 24] = [
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta",
    "response.output_text.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_item.added",
    "response.output_item.done",
    "response.function_call_arguments.done",
    "response.custom_tool_call_input.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.done",
    "response.reasoning_text.done",
    "response.created",
    "response.in_progress",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "response.metadata",
    "codex.rate_limits",
    "error",
];

pub use super::items::{OutputContent, OutputItem, SummaryPart};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ResponseObject {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub error: Option<ResponseError>,
    #[serde(default)]
    pub incomplete_details: Option<IncompleteDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    #[serde(default)]
    pub input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    pub output_tokens_details: Option<OutputDetails>,
}

impl Usage {
    /// Adds another response's usage (a request with several choices).
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.total_tokens += other.total_tokens;
        let cached = self.input_tokens_details.map_or(0, |d| d.cached_tokens)
            + other.input_tokens_details.map_or(0, |d| d.cached_tokens);
        let reasoning = self.output_tokens_details.map_or(0, |d| d.reasoning_tokens)
            + other
                .output_tokens_details
                .map_or(0, |d| d.reasoning_tokens);
        self.input_tokens_details = Some(InputDetails {
            cached_tokens: cached,
        });
        self.output_tokens_details = Some(OutputDetails {
            reasoning_tokens: reasoning,
        });
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct InputDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct OutputDetails {
    pub reasoning_tokens: u64,
}

/// A failure inside a response's stream: `response.failed`, a stream that broke, or one that
/// ended without a terminal event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Option<String>,
    pub message: String,
    /// When a usage limit resets (`usage_limit_reached`).
    pub resets_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResponseError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub resets_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IncompleteDetails {
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn user(text: &str) -> InputItem {
        InputItem::Message {
            role: Role::User,
            content: vec![ContentPart::InputText { text: text.into() }],
        }
    }

    pub(crate) fn request(input: Vec<InputItem>, full: bool) -> ResponsesRequest {
        ResponsesRequest {
            model: "gpt-5.5".into(),
            instructions: full.then(|| "Be \"brief\".\n".into()),
            input,
            tools: full.then(|| {
                vec![Tool::Function {
                    name: "get_weather".into(),
                    description: None,
                    strict: false,
                    parameters: serde_json::json!({"type": "object"}),
                }]
            }),
            tool_choice: ToolChoice::Mode("auto"),
            parallel_tool_calls: full,
            reasoning: Reasoning {
                effort: full.then(|| "high".into()),
                summary: None,
                context: None,
            },
            store: false,
            stream: true,
            include: vec!["reasoning.encrypted_content"],
            service_tier: full.then(|| "priority".into()),
            prompt_cache_key: "conv-1".into(),
            text: full.then(|| TextControls {
                verbosity: Some("low".into()),
                format: None,
            }),
            client_metadata: if full {
                [("session_id", "s-1".to_owned())].into_iter().collect()
            } else {
                Default::default()
            },
        }
    }

    /// A body written in parts is what serde writes (members in another order), and its
    /// outline reads as the whole body does.
    #[test]
    fn a_written_body_is_the_serialised_request() {
        use crate::upstream::incremental;
        use crate::upstream::written::Written;
        for full in [true, false] {
            for input in [
                vec![],
                vec![user("a")],
                vec![user("é \"x\""), user("b"), user("c")],
            ] {
                let body = request(input, full);
                let written = Written::write(&body, None).unwrap();
                let json = written.to_json();
                assert_eq!(json.len(), written.len());
                let value: Value = serde_json::from_slice(&json).unwrap();
                assert_eq!(value, serde_json::to_value(&body).unwrap());
                let mut head = String::new();
                let (parsed, shape) = written.outline(&mut head).unwrap();
                let read = incremental::parse(&json).unwrap();
                assert_eq!(parsed.input, read.input);
                assert_eq!(shape, incremental::shape(&read));
            }
        }
    }

    /// A body written after an earlier one is the whole history written at once.
    #[test]
    fn items_shared_with_an_earlier_body_are_the_history_written_whole() {
        use crate::upstream::written::Written;
        let mut earlier = Written::write(&request(vec![user("a"), user("b")], true), None).unwrap();
        let mut whole = vec![user("a"), user("b")];
        // Empty turns too, and past the point where pieces are joined.
        for turn in 0..40 {
            let tail = match turn % 3 {
                0 => vec![],
                1 => vec![user(&format!("t{turn}"))],
                _ => vec![user(&format!("t{turn}")), user("more")],
            };
            whole.extend(tail.clone());
            let after =
                Written::write(&request(tail, turn % 2 == 0), Some(earlier.items())).unwrap();
            let expected = Written::write(&request(whole.clone(), turn % 2 == 0), None).unwrap();
            assert_eq!(after.to_json(), expected.to_json());
            assert_eq!(after.len(), expected.len());
            let (mut h1, mut h2) = (String::new(), String::new());
            assert_eq!(
                after.outline(&mut h1).unwrap().1,
                expected.outline(&mut h2).unwrap().1
            );
            earlier = after;
        }
    }

    /// Written items' reasoning is told apart from a message that merely says so, and taken
    /// out leaving the rest as it was: a continued turn's retry on an account that cannot read
    /// the kept reasoning.
    #[test]
    fn written_reasoning_is_recognised_and_taken_out() {
        use crate::upstream::written::Written;
        let reasoning = InputItem::Reasoning {
            summary: vec![SummaryText { text: "x".into() }],
            encrypted_content: "gAAAA".into(),
        };
        let earlier = Written::write(
            &request(
                vec![user(r#"{"type":"reasoning"}"#), reasoning, user("b")],
                true,
            ),
            None,
        )
        .unwrap();
        assert!(earlier.items().has_reasoning());
        let without = earlier.items().without_reasoning();
        assert!(!without.has_reasoning());
        let after = Written::write(&request(vec![user("c")], true), Some(&without)).unwrap();
        let expected = Written::write(
            &request(
                vec![user(r#"{"type":"reasoning"}"#), user("b"), user("c")],
                true,
            ),
            None,
        )
        .unwrap();
        assert_eq!(after.to_json(), expected.to_json());
        let plain = Written::write(&request(vec![user("a")], true), None).unwrap();
        assert!(!plain.items().has_reasoning());
    }

    /// A body written from a client's parts (a pass-through surface's) is the body its
    /// members and items make, continued from earlier items as a typed one is.
    #[test]
    fn a_body_written_from_raw_parts_is_the_one_they_make() {
        use crate::upstream::incremental;
        use crate::upstream::written::Written;
        let earlier = Written::write(&request(vec![user("a")], true), None).unwrap();
        let whole = Written::write(&request(vec![user("a"), user("b"), user("c")], true), None)
            .unwrap()
            .to_json();
        let typed = Written::write(&request(vec![user("b"), user("c")], true), None)
            .unwrap()
            .to_json();
        let parsed = incremental::parse(&typed).unwrap();
        let members: Vec<(&str, &str)> = parsed
            .members
            .iter()
            .filter(|(name, _)| name != "input")
            .map(|(name, raw)| (name.as_ref(), *raw))
            .collect();
        let raw = Written::from_raw(&members, &parsed.input, Some(earlier.items())).unwrap();
        assert_eq!(
            String::from_utf8(raw.to_json()).unwrap(),
            String::from_utf8(whole).unwrap()
        );
        let (mut h1, mut h2) = (String::new(), String::new());
        let typed_whole =
            Written::write(&request(vec![user("a"), user("b"), user("c")], true), None).unwrap();
        assert_eq!(
            raw.outline(&mut h1).unwrap().1,
            typed_whole.outline(&mut h2).unwrap().1
        );
        assert!(raw.without_reasoning().is_none());
        // A client's items are in its own key order and spacing: its reasoning is still found,
        // and only among the first items when asked so.
        let items = [
            r#"{"type":"message","role":"user","content":"a"}"#,
            r#"{"id":"rs_1","summary":[],"type":"reasoning","encrypted_content":"gAAA"}"#,
            r#"{"type": "message", "role": "user", "content": "{\"type\":\"reasoning\"}"}"#,
            r#"{ "type" : "reasoning", "summary": [], "encrypted_content": "gBBB" }"#,
        ];
        let raw = Written::from_raw(&members, &items, None).unwrap();
        let text = |w: &Written| String::from_utf8(w.to_json()).unwrap();
        let all = raw.without_reasoning().unwrap();
        assert!(!text(&all).contains("gAAA") && !text(&all).contains("gBBB"));
        assert!(text(&all).contains(r#"{\"type\":\"reasoning\"}"#));
        let first = raw.without_reasoning_before(3).unwrap();
        assert!(!text(&first).contains("gAAA") && text(&first).contains("gBBB"));
        assert!(raw.without_reasoning_before(1).is_none());
    }

    #[test]
    fn events_borrow_plain_strings_and_own_escaped_ones() {
        let data = br#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"say \"hi\"\n","sequence_number":7}"#;
        StreamEvent::with(
            data,
            |_| false,
            |event| {
                assert!(matches!(
                    event.kind,
                    Cow::Borrowed("response.output_text.delta")
                ));
                assert!(matches!(event.item_id, Some(Cow::Borrowed("msg_1"))));
                assert_eq!(event.delta.as_deref(), Some("say \"hi\"\n"));
                assert!(matches!(event.delta, Some(Cow::Owned(_))));
            },
        )
        .unwrap();
    }

    #[test]
    fn the_leading_type_is_read_only_when_plain_and_known() {
        let cases: [(&[u8], Option<&str>); 9] = [
            (
                br#"{"type":"response.output_text.delta","delta":"x"}"#,
                Some("response.output_text.delta"),
            ),
            (
                br#"{"type":"response.completed"}"#,
                Some("response.completed"),
            ),
            (br#"{"type":"error","code":"x"}"#, Some("error")),
            (
                br#"{"type":"response.output_text.delta_2","delta":"x"}"#,
                None,
            ),
            (br#"{"type":"response.output_text.delt"#, None),
            (br#"{"type":"response.completed" ,"x":1}"#, None),
            (br#"{ "type":"response.completed"}"#, None),
            (br#"{"type":"response.\u0063ompleted"}"#, None),
            (
                br#"{"delta":"x","type":"response.output_text.delta"}"#,
                None,
            ),
        ];
        for (data, expected) in cases {
            assert_eq!(
                leading_type(data),
                expected,
                "{}",
                String::from_utf8_lossy(data)
            );
        }
        for kind in KNOWN_TYPES {
            assert!(kind.len() < MAX_TYPE_LEN, "{kind}");
            let data = format!(r#"{{"type":"{kind}","x":1}}"#);
            assert_eq!(leading_type(data.as_bytes()), Some(kind));
        }
    }

    #[test]
    fn an_ignored_event_is_not_read_past_its_type() {
        // Not UTF-8 and not JSON after the type: an ignored event is still just its type.
        let data = b"{\"type\":\"response.output_text.done\",\"text\":\"\xff";
        let kind = StreamEvent::with(
            data,
            |kind| kind == "response.output_text.done",
            |event| {
                assert!(event.delta.is_none() && event.item.is_none());
                event.kind.into_owned()
            },
        );
        assert_eq!(kind.as_deref(), Some("response.output_text.done"));
        // The same bytes, not ignored, are no event.
        assert!(StreamEvent::with(data, |_| false, |_| ()).is_none());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_not_dropped() {
        let data = b"{\"type\":\"response.output_text.delta\",\"delta\":\"a\xffb\"}";
        let delta =
            StreamEvent::with(data, |_| false, |event| event.delta.map(Cow::into_owned)).unwrap();
        assert_eq!(delta.as_deref(), Some("a\u{fffd}b"));
        assert!(StreamEvent::with(b"not json", |_| false, |_| ()).is_none());
        assert!(StreamEvent::with(b"{\"no\":\"type\"}", |_| false, |_| ()).is_none());
    }
}
