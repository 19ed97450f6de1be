//! The output layer's events → Gemini's `GenerateContentResponse`: one chunk per piece of the
//! answer (a text part, a thought part when asked for, a whole `functionCall` part), the last
//! with `finishReason` and `usageMetadata`; or everything in one response.

use std::collections::VecDeque;

use axum::body::Bytes;
use serde_json::{Value, json};

use crate::json_text::quote_into;
use crate::translate::messages::tokens::Estimate;

use crate::translate::output::{Ending, OutputEvent, OutputSink};
use crate::translate::pieces::{Call, PieceSink, Pieces, Piecewise};
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

/// A function call as Gemini writes it.
fn call_part(call: &Call) -> Value {
    json!({"functionCall": {"id": call.id, "name": call.name, "args": call.arguments_object()}})
}

/// What the answer says, as Gemini says it.
#[derive(Debug)]
pub struct Writer {
    inner: Piecewise<Out>,
}

/// The answer being written: chunks (stream), or what the whole response will hold.
#[derive(Debug)]
struct Out {
    mode: Mode,
    model: String,
    thoughts: bool,
    response_id: Option<String>,
    /// Whole mode: the text and the thoughts.
    text: String,
    thought: String,
    /// Each chunk's JSON (the surface frames it).
    chunks: VecDeque<Bytes>,
    finish_reason: &'static str,
    usage: Option<Usage>,
    input_estimate: Estimate,
}

impl Writer {
    pub fn new(
        mode: Mode,
        model: String,
        thoughts: bool,
        stop: &[String],
        input_estimate: Estimate,
    ) -> Self {
        Self {
            inner: Piecewise {
                pieces: Pieces::new(stop),
                sink: Out {
                    mode,
                    model,
                    thoughts,
                    response_id: None,
                    text: String::new(),
                    thought: String::new(),
                    chunks: VecDeque::new(),
                    finish_reason: "STOP",
                    usage: None,
                    input_estimate,
                },
            },
        }
    }

    /// The chunks written so far (stream mode), each a `GenerateContentResponse`'s JSON.
    pub fn chunks(&mut self) -> &mut VecDeque<Bytes> {
        &mut self.inner.sink.chunks
    }

    /// Whether a chunk is ready (stream mode).
    pub fn has_chunks(&self) -> bool {
        !self.inner.sink.chunks.is_empty()
    }

    pub fn stopped(&self) -> bool {
        self.inner.pieces.stopped()
    }

    pub fn is_done(&self) -> bool {
        self.inner.pieces.is_done()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.inner.pieces.failure()
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.inner.sink.usage.as_ref()
    }

    /// The answer's function calls as the backend made them: id, name, arguments.
    pub fn calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.inner
            .pieces
            .calls()
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
    }

    /// A stop sequence ended the answer before the backend did.
    pub fn finish_stopped(&mut self) {
        let Piecewise { pieces, sink } = &mut self.inner;
        pieces.finish_stopped(sink.input_estimate.get(), sink);
    }

    /// The whole answer as one response (whole mode), once finished.
    pub fn whole(&self) -> Value {
        let out = &self.inner.sink;
        let mut parts = Vec::new();
        if !out.thought.is_empty() {
            parts.push(json!({"text": out.thought, "thought": true}));
        }
        if !out.text.is_empty() {
            parts.push(json!({"text": out.text}));
        }
        parts.extend(self.inner.pieces.calls().iter().map(call_part));
        if parts.is_empty() {
            parts.push(json!({"text": ""}));
        }
        let mut response = out.response(parts, Some(out.finish_reason));
        response["usageMetadata"] = out.usage_metadata();
        response
    }
}

impl OutputSink for Writer {
    fn event(&mut self, event: OutputEvent<'_>) {
        self.inner.event(event);
    }
}

impl Out {
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

    fn push(&mut self, chunk: &Value) {
        // Serialising a Value cannot fail.
        self.chunks
            .push_back(Bytes::from(serde_json::to_vec(chunk).unwrap_or_default()));
    }

    fn piece(&mut self, part: Value) {
        if self.mode == Mode::Stream {
            let chunk = self.response(vec![part], None);
            self.push(&chunk);
        }
    }

    /// A text or thought chunk, written straight to bytes: the frequent chunk, which must not
    /// cost a JSON tree per delta.
    fn text_piece(&mut self, thought: bool, text: &str) {
        let mut buf = Vec::with_capacity(128 + self.model.len() + text.len());
        buf.extend_from_slice(b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":");
        quote_into(&mut buf, text);
        if thought {
            buf.extend_from_slice(b",\"thought\":true");
        }
        buf.extend_from_slice(b"}],\"role\":\"model\"},\"index\":0}],\"modelVersion\":");
        quote_into(&mut buf, &self.model);
        if let Some(id) = &self.response_id {
            buf.extend_from_slice(b",\"responseId\":");
            quote_into(&mut buf, id);
        }
        buf.push(b'}');
        self.chunks.push_back(Bytes::from(buf));
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
                "promptTokenCount": self.input_estimate.get(),
                "candidatesTokenCount": 0,
                "totalTokenCount": self.input_estimate.get(),
            }),
        }
    }
}

impl PieceSink for Out {
    fn started(&mut self, id: Option<String>) {
        if self.response_id.is_none() {
            self.response_id = id;
        }
    }

    fn text(&mut self, text: &str) {
        if self.mode == Mode::Whole {
            self.text.push_str(text);
        } else {
            self.text_piece(false, text);
        }
    }

    fn thought(&mut self, text: &str) {
        if !self.thoughts {
            return;
        }
        if self.mode == Mode::Whole {
            self.thought.push_str(text);
        } else {
            self.text_piece(true, text);
        }
    }

    fn call(&mut self, call: &Call, _index: u32) {
        self.piece(call_part(call));
    }

    fn finish(&mut self, ending: Ending, usage: Option<Usage>, stopped: bool) {
        self.finish_reason = match ending {
            _ if stopped => "STOP",
            Ending::Completed => "STOP",
            Ending::Length => "MAX_TOKENS",
            Ending::ContentFilter => "SAFETY",
        };
        self.usage = usage;
        if self.mode == Mode::Stream {
            let mut last = self.response(vec![json!({"text": ""})], Some(self.finish_reason));
            last["usageMetadata"] = self.usage_metadata();
            self.push(&last);
        }
    }
}
