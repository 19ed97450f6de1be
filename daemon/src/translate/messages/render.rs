//! The output layer's events → Anthropic's: a stream of `message_start`, per block
//! `content_block_start` / `_delta` / `_stop`, `message_delta` (stop reason, usage) and
//! `message_stop`, or the same assembled into one message. Stop sequences are cut here, a
//! prefill the model repeats is taken off, reasoning becomes `thinking` blocks (only when asked
//! for) whose signature carries the encrypted reasoning and its account.

use std::collections::VecDeque;

use axum::body::Bytes;
use serde_json::{Value, json};

use super::{ThinkingDisplay, message_id, signature};
use crate::translate::output::{BlockKind, Ending, OutputEvent, OutputSink};
use crate::translate::stream::StopMatcher;
use crate::upstream::wire::{Failure, Usage};

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 409 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// OpenAI-style error codes that mean "busy, try again": Anthropic's 529 `overloaded_error`
/// (which its clients retry). Other 503s (no account signed in, …) stay 503 `api_error`.
pub const OVERLOADED_CODES: [&str; 3] =
    ["server_overloaded", "queue_timeout", "upstream_unavailable"];

/// Anthropic's error body.
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Where a response goes: a stream of SSE frames, or one assembled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stream,
    Whole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    ToolUse,
}

/// One block of the assembled message.
#[derive(Debug)]
struct Assembled {
    kind: Kind,
    text: String,
    signature: String,
    id: String,
    name: String,
}

/// What the response says, as Anthropic says it.
#[derive(Debug)]
pub struct Writer {
    mode: Mode,
    id: Option<String>,
    model: String,
    thinking: ThinkingDisplay,
    /// The account the turn runs on, for thinking signatures.
    account: String,
    input_estimate: u64,
    stop: Option<StopMatcher>,
    /// The prefill still to be taken off the start of the answer, and what was held back
    /// while deciding.
    prefill: Option<(String, String)>,
    /// Our block index for each upstream block (`None`: not shown).
    map: Vec<Option<u32>>,
    /// Reasoning summary parts seen per upstream block (a new part is a new paragraph).
    parts: Vec<u32>,
    started: bool,
    stopped_by: Option<String>,
    tool_used: bool,
    refused: bool,
    finished: bool,
    usage: Option<Usage>,
    failure: Option<Failure>,
    frames: VecDeque<Bytes>,
    /// Every block begun, in index order; their contents only in whole mode (a stream keeps
    /// nothing it has sent).
    blocks: Vec<Assembled>,
    /// Tokens of the text shown so far, for the usage of an answer a stop sequence ended.
    shown: u64,
    stop_reason: &'static str,
}

impl Writer {
    pub fn new(
        mode: Mode,
        model: String,
        thinking: ThinkingDisplay,
        account: String,
        input_estimate: u64,
        stop: &[String],
        prefill: Option<String>,
    ) -> Self {
        Self {
            mode,
            id: None,
            model,
            thinking,
            account,
            input_estimate,
            stop: (!stop.is_empty()).then(|| StopMatcher::new(stop)),
            prefill: prefill.map(|p| (p, String::new())),
            map: Vec::new(),
            parts: Vec::new(),
            started: false,
            stopped_by: None,
            tool_used: false,
            refused: false,
            finished: false,
            usage: None,
            failure: None,
            frames: VecDeque::new(),
            blocks: Vec::new(),
            shown: 0,
            stop_reason: "end_turn",
        }
    }

    /// The frames written so far (stream mode).
    pub fn frames(&mut self) -> &mut VecDeque<Bytes> {
        &mut self.frames
    }

    /// A stop sequence ended the answer: nothing more is shown.
    pub fn stopped(&self) -> bool {
        self.stopped_by.is_some()
    }

    /// The message ended (`message_stop` written) or failed.
    pub fn is_done(&self) -> bool {
        self.finished || self.failure.is_some()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    fn id(&self) -> String {
        message_id(self.id.as_deref())
    }

    fn push_frame(&mut self, kind: &str, data: &Value) {
        if self.mode != Mode::Stream {
            return;
        }
        let mut buf = Vec::with_capacity(64 + kind.len());
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(kind.as_bytes());
        buf.extend_from_slice(b"\ndata: ");
        // Serialising a Value cannot fail.
        let _ = serde_json::to_writer(&mut buf, data);
        buf.extend_from_slice(b"\n\n");
        self.frames.push_back(Bytes::from(buf));
    }

    /// A delta with one string field, written without building a Value (the frequent frames).
    fn push_delta(&mut self, index: u32, kind: &str, field: &str, text: &str) {
        if self.mode != Mode::Stream {
            return;
        }
        let mut buf = Vec::with_capacity(96 + text.len());
        buf.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
        );
        buf.extend_from_slice(index.to_string().as_bytes());
        buf.extend_from_slice(b",\"delta\":{\"type\":\"");
        buf.extend_from_slice(kind.as_bytes());
        buf.extend_from_slice(b"\",\"");
        buf.extend_from_slice(field.as_bytes());
        buf.extend_from_slice(b"\":");
        crate::json_text::quote_into(&mut buf, text);
        buf.extend_from_slice(b"}}\n\n");
        self.frames.push_back(Bytes::from(buf));
    }

    fn usage_json(&self, usage: Option<&Usage>) -> Value {
        match usage {
            Some(u) => {
                let cached = u.input_tokens_details.map_or(0, |d| d.cached_tokens);
                json!({
                    "input_tokens": u.input_tokens.saturating_sub(cached),
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": cached,
                    "output_tokens": u.output_tokens,
                })
            }
            None => json!({
                "input_tokens": self.input_estimate,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
            }),
        }
    }

    /// `message_start`, once, before anything else.
    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "type": "message_start",
            "message": {
                "id": self.id(),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": self.usage_json(None),
            }
        });
        self.push_frame("message_start", &message);
    }

    fn open(&mut self, upstream: u32, kind: Kind, call_id: Option<String>, name: Option<String>) {
        let index = self.blocks.len() as u32;
        let slot = upstream as usize;
        if self.map.len() <= slot {
            self.map.resize(slot + 1, None);
            self.parts.resize(slot + 1, 0);
        }
        self.map[slot] = Some(index);
        let block = match kind {
            Kind::Text => json!({"type": "text", "text": ""}),
            Kind::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Kind::ToolUse => {
                self.tool_used = true;
                json!({"type": "tool_use", "id": call_id.clone().unwrap_or_default(), "name": name.clone().unwrap_or_default(), "input": {}})
            }
        };
        self.blocks.push(Assembled {
            kind,
            text: String::new(),
            signature: String::new(),
            id: call_id.unwrap_or_default(),
            name: name.unwrap_or_default(),
        });
        self.push_frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
    }

    fn ours(&self, upstream: u32) -> Option<u32> {
        self.map.get(upstream as usize).copied().flatten()
    }

    /// Keeps a block's content for the whole message; counts what a stream shows.
    fn keep(&mut self, index: u32, text: &str) {
        if self.mode == Mode::Whole {
            if let Some(block) = self.blocks.get_mut(index as usize) {
                block.text.push_str(text);
            }
        } else {
            self.shown += super::tokens::text(text);
        }
    }

    fn text(&mut self, index: u32, text: &str) {
        if text.is_empty() {
            return;
        }
        self.keep(index, text);
        self.push_delta(index, "text_delta", "text", text);
    }

    /// Text of the answer: the prefill taken off, then the stop sequences.
    fn answer(&mut self, index: u32, text: &str) {
        let after_prefill;
        let mut text = text;
        if let Some((prefill, held)) = &mut self.prefill {
            held.push_str(text);
            let trimmed = held.trim_start();
            if trimmed.len() < prefill.len() && prefill.starts_with(trimmed) {
                // Could still be the prefill repeated: wait for more.
                return;
            }
            after_prefill = match trimmed.strip_prefix(prefill.as_str()) {
                Some(rest) => rest.to_owned(),
                None => std::mem::take(held),
            };
            self.prefill = None;
            text = &after_prefill;
        }
        let Some(matcher) = &mut self.stop else {
            self.text(index, text);
            return;
        };
        let (safe, hit) = matcher.push_matched(text);
        self.text(index, &safe);
        if let Some(stop) = hit {
            self.stopped_by = Some(stop);
            self.close(index);
        }
    }

    /// Text held back (a possible stop sequence or prefill) is the answer's after all.
    fn release(&mut self, index: u32) {
        if let Some((_, held)) = self.prefill.take() {
            self.text(index, &held);
        }
        if let Some(held) = self.stop.as_mut().map(StopMatcher::flush) {
            self.text(index, &held);
        }
    }

    fn close(&mut self, index: u32) {
        self.push_frame(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }

    fn finish(&mut self, ending: Ending, usage: Option<Usage>) {
        self.stop_reason = if self.stopped_by.is_some() {
            "stop_sequence"
        } else {
            match ending {
                Ending::Length => "max_tokens",
                Ending::ContentFilter => "refusal",
                Ending::Completed if self.tool_used => "tool_use",
                Ending::Completed if self.refused => "refusal",
                Ending::Completed => "end_turn",
            }
        };
        self.usage = usage;
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stopped_by},
            "usage": self.usage_json(self.usage.as_ref()),
        });
        self.push_frame("message_delta", &delta);
        self.push_frame("message_stop", &json!({"type": "message_stop"}));
        self.finished = true;
    }

    /// A stop sequence ended the answer before the backend did: the message ends now, with the
    /// output counted from what was shown.
    pub fn finish_stopped(&mut self) {
        if self.finished {
            return;
        }
        let shown = self.shown
            + self
                .blocks
                .iter()
                .map(|b| super::tokens::text(&b.text))
                .sum::<u64>();
        let usage = Usage {
            input_tokens: self.input_estimate,
            output_tokens: shown.max(1),
            total_tokens: self.input_estimate + shown.max(1),
            input_tokens_details: None,
            output_tokens_details: None,
        };
        self.finish(Ending::Completed, Some(usage));
    }

    /// The message as one object (whole mode), once finished.
    pub fn message(&self) -> Value {
        let content: Vec<Value> = self
            .blocks
            .iter()
            .filter_map(|b| match b.kind {
                Kind::Text if b.text.is_empty() => None,
                Kind::Text => Some(json!({"type": "text", "text": b.text})),
                Kind::Thinking => {
                    Some(json!({"type": "thinking", "thinking": b.text, "signature": b.signature}))
                }
                Kind::ToolUse => {
                    let input = if b.text.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&b.text).unwrap_or_else(|_| json!({}))
                    };
                    Some(json!({"type": "tool_use", "id": b.id, "name": b.name, "input": input}))
                }
            })
            .collect();
        json!({
            "id": self.id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stopped_by,
            "usage": self.usage_json(self.usage.as_ref()),
        })
    }
}

impl OutputSink for Writer {
    fn event(&mut self, event: OutputEvent<'_>) {
        if self.is_done() {
            return;
        }
        if let OutputEvent::Started { id, .. } = &event {
            if self.id.is_none() {
                self.id.clone_from(id);
            }
            self.start();
            return;
        }
        if let OutputEvent::Failed(failure) = event {
            self.failure = Some(failure);
            return;
        }
        self.start();
        if self.stopped() {
            return;
        }
        match event {
            OutputEvent::BlockStart {
                index,
                kind,
                call_id,
                name,
            } => match kind {
                BlockKind::Text => self.open(index, Kind::Text, None, None),
                BlockKind::Reasoning if self.thinking == ThinkingDisplay::Hidden => {}
                BlockKind::Reasoning => self.open(index, Kind::Thinking, None, None),
                BlockKind::Function | BlockKind::Custom => {
                    self.open(index, Kind::ToolUse, call_id, name);
                }
            },
            OutputEvent::TextDelta { index, text } => {
                if let Some(ours) = self.ours(index) {
                    self.answer(ours, text);
                }
            }
            OutputEvent::Refusal { index, text } => {
                if let Some(ours) = self.ours(index) {
                    self.refused = true;
                    self.release(ours);
                    self.text(ours, &text);
                }
            }
            OutputEvent::ReasoningPart { index } => {
                let Some(ours) = self.ours(index) else { return };
                let seen = self.parts.get_mut(index as usize);
                let first = seen.as_deref().is_none_or(|n| *n == 0);
                if let Some(n) = seen {
                    *n += 1;
                }
                if !first && self.thinking == ThinkingDisplay::Summarized {
                    self.thinking_text(ours, "\n\n");
                }
            }
            OutputEvent::ReasoningDelta { index, text } => {
                if let Some(ours) = self.ours(index)
                    && self.thinking == ThinkingDisplay::Summarized
                {
                    self.thinking_text(ours, text);
                }
            }
            OutputEvent::ReasoningEncrypted { index, content } => {
                if let Some(ours) = self.ours(index) {
                    let signature = signature::encode(&self.account, &content);
                    self.push_delta(ours, "signature_delta", "signature", &signature);
                    if self.mode == Mode::Whole
                        && let Some(block) = self.blocks.get_mut(ours as usize)
                    {
                        block.signature = signature;
                    }
                }
            }
            OutputEvent::ToolDelta { index, text } => {
                if let Some(ours) = self.ours(index) {
                    self.keep(ours, text);
                    self.push_delta(ours, "input_json_delta", "partial_json", text);
                }
            }
            OutputEvent::BlockStop { index } => {
                if let Some(ours) = self.ours(index) {
                    if self.blocks.get(ours as usize).map(|b| b.kind) == Some(Kind::Text) {
                        self.release(ours);
                    }
                    if !self.stopped() {
                        self.close(ours);
                    }
                }
            }
            OutputEvent::Finish { ending, usage } => self.finish(ending, usage),
            OutputEvent::Started { .. } | OutputEvent::Failed(_) => {}
        }
    }
}

impl Writer {
    fn thinking_text(&mut self, index: u32, text: &str) {
        self.keep(index, text);
        self.push_delta(index, "thinking_delta", "thinking", text);
    }
}
