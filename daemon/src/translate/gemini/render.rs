//! The output layer's events → Gemini's `GenerateContentResponse`: one chunk per piece of the
//! answer (a text part, a thought part when asked for, a whole `functionCall` part), the last
//! with `finishReason` and `usageMetadata`; or everything in one response.

use std::collections::VecDeque;

use serde_json::{Value, json};

use crate::translate::output::{BlockKind, Ending, OutputEvent, OutputSink};
use crate::translate::stream::StopMatcher;
use crate::upstream::wire::{Failure, Usage};

/// Google's error body: `{"error": {"code", "message", "status"}}`.
pub fn error_body(code: u16, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status_name(code)}})
}

/// Google's canonical status name for an HTTP status.
pub fn status_name(code: u16) -> &'static str {
    match code {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 501 => "UNIMPLEMENTED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Chunks as they come.
    Stream,
    /// One response at the end.
    Whole,
}

#[derive(Debug)]
struct Call {
    block: u32,
    id: String,
    name: String,
    arguments: String,
}

/// What the answer says, as Gemini says it.
#[derive(Debug)]
pub struct Writer {
    mode: Mode,
    model: String,
    thoughts: bool,
    stop: Option<StopMatcher>,
    stopped: bool,
    response_id: Option<String>,
    kinds: Vec<Option<BlockKind>>,
    parts_seen: Vec<u32>,
    calls: Vec<Call>,
    /// Whole mode: the text and the thoughts.
    text: String,
    thought: String,
    input_estimate: u64,
    shown_chars: usize,
    chunks: VecDeque<Value>,
    finish_reason: &'static str,
    usage: Option<Usage>,
    failure: Option<Failure>,
    finished: bool,
}

impl Writer {
    pub fn new(
        mode: Mode,
        model: String,
        thoughts: bool,
        stop: &[String],
        input_estimate: u64,
    ) -> Self {
        Self {
            mode,
            model,
            thoughts,
            stop: (!stop.is_empty()).then(|| StopMatcher::new(stop)),
            stopped: false,
            response_id: None,
            kinds: Vec::new(),
            parts_seen: Vec::new(),
            calls: Vec::new(),
            text: String::new(),
            thought: String::new(),
            input_estimate,
            shown_chars: 0,
            chunks: VecDeque::new(),
            finish_reason: "STOP",
            usage: None,
            failure: None,
            finished: false,
        }
    }

    /// The chunks written so far (stream mode).
    pub fn chunks(&mut self) -> &mut VecDeque<Value> {
        &mut self.chunks
    }

    /// Whether a chunk is ready (stream mode).
    pub fn has_chunks(&self) -> bool {
        !self.chunks.is_empty()
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    pub fn is_done(&self) -> bool {
        self.finished || self.failure.is_some()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The answer's function calls as the backend made them: id, name, arguments.
    pub fn calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
    }

    fn kind(&self, index: u32) -> Option<BlockKind> {
        self.kinds.get(index as usize).copied().flatten()
    }

    fn response(&self, parts: Vec<Value>, finish: Option<&str>) -> Value {
        let mut candidate = json!({
            "content": {"parts": Value::Array(parts), "role": "model"},
            "index": 0,
        });
        if let Some(reason) = finish {
            candidate["finishReason"] = reason.into();
        }
        let mut response = json!({
            "candidates": [candidate],
            "modelVersion": self.model,
        });
        if let Some(id) = &self.response_id {
            response["responseId"] = id.clone().into();
        }
        response
    }

    fn piece(&mut self, part: Value) {
        if self.mode == Mode::Stream {
            let chunk = self.response(vec![part], None);
            self.chunks.push_back(chunk);
        }
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.shown_chars += text.len();
        if self.mode == Mode::Whole {
            self.text.push_str(text);
        } else {
            self.piece(json!({ "text": text }));
        }
    }

    fn thought_text(&mut self, text: &str) {
        if text.is_empty() || !self.thoughts {
            return;
        }
        if self.mode == Mode::Whole {
            self.thought.push_str(text);
        } else {
            self.piece(json!({ "text": text, "thought": true }));
        }
    }

    fn answer(&mut self, text: &str) {
        let Some(matcher) = &mut self.stop else {
            self.text(text);
            return;
        };
        let (safe, hit) = matcher.push_matched(text);
        self.text(&safe);
        if hit.is_some() {
            self.stopped = true;
        }
    }

    fn release(&mut self) {
        if let Some(held) = self.stop.as_mut().map(StopMatcher::flush) {
            self.text(&held);
        }
    }

    fn call_part(call: &Call) -> Value {
        let args = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(value @ Value::Object(_)) => value,
            _ if call.arguments.trim().is_empty() => json!({}),
            // Not an object: Gemini's clients read args as an object, so the text goes whole
            // under one key rather than being lost.
            Ok(_) | Err(_) => json!({ "input": call.arguments }),
        };
        json!({"functionCall": {"id": call.id, "name": call.name, "args": args}})
    }

    fn call_done(&mut self, block: u32) {
        if self.mode != Mode::Stream {
            return;
        }
        if let Some(call) = self.calls.iter().find(|c| c.block == block) {
            let part = Self::call_part(call);
            self.piece(part);
        }
    }

    fn usage_metadata(&self) -> Value {
        match &self.usage {
            Some(u) => {
                let reasoning = u.output_tokens_details.map_or(0, |d| d.reasoning_tokens);
                let cached = u.input_tokens_details.map_or(0, |d| d.cached_tokens);
                let mut usage = json!({
                    "promptTokenCount": u.input_tokens,
                    "candidatesTokenCount": u.output_tokens.saturating_sub(reasoning),
                    "totalTokenCount": u.total_tokens,
                });
                if reasoning > 0 {
                    usage["thoughtsTokenCount"] = reasoning.into();
                }
                if cached > 0 {
                    usage["cachedContentTokenCount"] = cached.into();
                }
                usage
            }
            None => json!({
                "promptTokenCount": self.input_estimate,
                "candidatesTokenCount": 0,
                "totalTokenCount": self.input_estimate,
            }),
        }
    }

    fn finish(&mut self, ending: Ending, usage: Option<Usage>) {
        self.finish_reason = match ending {
            _ if self.stopped => "STOP",
            Ending::Completed => "STOP",
            Ending::Length => "MAX_TOKENS",
            Ending::ContentFilter => "SAFETY",
        };
        self.usage = usage;
        self.finished = true;
        if self.mode == Mode::Stream {
            let mut last = self.response(vec![json!({"text": ""})], Some(self.finish_reason));
            last["usageMetadata"] = self.usage_metadata();
            self.chunks.push_back(last);
        }
    }

    /// A stop sequence ended the answer before the backend did.
    pub fn finish_stopped(&mut self) {
        if self.finished {
            return;
        }
        let output = (self.shown_chars as u64).div_ceil(4).max(1);
        let usage = Usage {
            input_tokens: self.input_estimate,
            output_tokens: output,
            total_tokens: self.input_estimate + output,
            input_tokens_details: None,
            output_tokens_details: None,
        };
        self.finish(Ending::Completed, Some(usage));
    }

    /// The whole answer as one response (whole mode), once finished.
    pub fn whole(&self) -> Value {
        let mut parts = Vec::new();
        if !self.thought.is_empty() {
            parts.push(json!({"text": self.thought, "thought": true}));
        }
        if !self.text.is_empty() {
            parts.push(json!({"text": self.text}));
        }
        parts.extend(self.calls.iter().map(Self::call_part));
        if parts.is_empty() {
            parts.push(json!({"text": ""}));
        }
        let mut response = self.response(parts, Some(self.finish_reason));
        response["usageMetadata"] = self.usage_metadata();
        response
    }
}

impl OutputSink for Writer {
    fn event(&mut self, event: OutputEvent<'_>) {
        if self.is_done() {
            return;
        }
        if self.stopped && !matches!(event, OutputEvent::Finish { .. } | OutputEvent::Failed(_)) {
            return;
        }
        match event {
            OutputEvent::Started { id, .. } => {
                if self.response_id.is_none() {
                    self.response_id = id;
                }
            }
            OutputEvent::BlockStart {
                index,
                kind,
                call_id,
                name,
            } => {
                let slot = index as usize;
                if self.kinds.len() <= slot {
                    self.kinds.resize(slot + 1, None);
                    self.parts_seen.resize(slot + 1, 0);
                }
                self.kinds[slot] = Some(kind);
                if matches!(kind, BlockKind::Function | BlockKind::Custom) {
                    self.calls.push(Call {
                        block: index,
                        id: call_id.unwrap_or_default(),
                        name: name.unwrap_or_default(),
                        arguments: String::new(),
                    });
                }
            }
            OutputEvent::TextDelta { index, text } => {
                if self.kind(index) == Some(BlockKind::Text) {
                    self.answer(text);
                }
            }
            OutputEvent::Refusal { text, .. } => {
                self.release();
                self.text(&text);
            }
            OutputEvent::ReasoningPart { index } => {
                let Some(seen) = self.parts_seen.get_mut(index as usize) else {
                    return;
                };
                *seen += 1;
                if *seen > 1 {
                    self.thought_text("\n\n");
                }
            }
            OutputEvent::ReasoningDelta { text, .. } => self.thought_text(text),
            OutputEvent::ReasoningEncrypted { .. } => {}
            OutputEvent::ToolDelta { index, text } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.block == index) {
                    call.arguments.push_str(text);
                }
            }
            OutputEvent::BlockStop { index } => match self.kind(index) {
                Some(BlockKind::Text) => self.release(),
                Some(BlockKind::Function | BlockKind::Custom) => self.call_done(index),
                _ => {}
            },
            OutputEvent::Finish { ending, usage } => self.finish(ending, usage),
            OutputEvent::Failed(failure) => self.failure = Some(failure),
        }
    }
}
