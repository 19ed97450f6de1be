//! The output layer's events → Ollama's answer: NDJSON lines (`{"model", "created_at",
//! "message": {…}, "done": false}` per piece, then a last `"done": true` line with the reason
//! and the counts), or the same as one object. `/api/chat` puts text in `message.content`,
//! `/api/generate` in `response`; thinking goes in `thinking` beside it. A tool call is one
//! piece, whole, with its arguments as an object (Ollama does not stream arguments).
//!
//! Durations are the daemon's own measurements: `prompt_eval_duration` until the first output,
//! `eval_duration` after it, `load_duration` 0 (nothing is loaded).

use std::collections::VecDeque;
use std::time::Instant;

use axum::body::Bytes;
use serde_json::{Value, json};

use super::Thinking;
use crate::translate::output::{BlockKind, Ending, OutputEvent, OutputSink};
use crate::translate::stream::StopMatcher;
use crate::upstream::wire::{Failure, Usage};

/// Which endpoint the answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/api/chat`: `message: {role, content, thinking, tool_calls}`.
    Chat,
    /// `/api/generate`: `response`, `thinking`.
    Generate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stream,
    Whole,
}

/// Ollama's error body.
pub fn error_body(message: &str) -> Value {
    json!({ "error": message })
}

#[derive(Debug)]
struct Call {
    /// The upstream block it came in.
    block: u32,
    id: String,
    name: String,
    arguments: String,
}

/// What the answer says, as Ollama says it.
#[derive(Debug)]
pub struct Writer {
    surface: Surface,
    mode: Mode,
    model: String,
    thinking: Thinking,
    stop: Option<StopMatcher>,
    stopped: bool,
    began: Instant,
    first_output: Option<Instant>,
    /// The kind of each upstream block, by its index.
    kinds: Vec<Option<BlockKind>>,
    /// Reasoning summary parts seen per upstream block (a new part is a new paragraph).
    parts: Vec<u32>,
    calls: Vec<Call>,
    /// Tool calls written so far (their `index`).
    calls_written: u32,
    /// Whole mode: the answer's text and thinking.
    content: String,
    thought: String,
    /// Estimated tokens of what was shown, for an answer a stop sequence ended.
    input_estimate: u64,
    shown_chars: usize,
    lines: VecDeque<Bytes>,
    done_reason: &'static str,
    usage: Option<Usage>,
    failure: Option<Failure>,
    finished: bool,
}

impl Writer {
    pub fn new(
        surface: Surface,
        mode: Mode,
        model: String,
        thinking: Thinking,
        stop: &[String],
        input_estimate: u64,
    ) -> Self {
        Self {
            surface,
            mode,
            model,
            thinking,
            stop: (!stop.is_empty()).then(|| StopMatcher::new(stop)),
            stopped: false,
            began: Instant::now(),
            first_output: None,
            kinds: Vec::new(),
            parts: Vec::new(),
            calls: Vec::new(),
            calls_written: 0,
            content: String::new(),
            thought: String::new(),
            input_estimate,
            shown_chars: 0,
            lines: VecDeque::new(),
            done_reason: "stop",
            usage: None,
            failure: None,
            finished: false,
        }
    }

    /// The lines written so far (stream mode), each ending in `\n`.
    pub fn lines(&mut self) -> &mut VecDeque<Bytes> {
        &mut self.lines
    }

    /// Whether a line is ready (stream mode).
    pub fn has_lines(&self) -> bool {
        !self.lines.is_empty()
    }

    /// A stop sequence ended the answer.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The answer ended (its last line written) or failed.
    pub fn is_done(&self) -> bool {
        self.finished || self.failure.is_some()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The answer's tool calls as the backend made them: id, name, arguments.
    pub fn calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
    }

    fn kind(&self, index: u32) -> Option<BlockKind> {
        self.kinds.get(index as usize).copied().flatten()
    }

    fn created_at() -> String {
        crate::clock::rfc3339_ms(crate::clock::unix_now_ms())
    }

    /// One piece of the answer: `message` (chat) or the generate fields, not done.
    fn piece(&mut self, fields: Value) {
        if self.mode != Mode::Stream {
            return;
        }
        let mut line = match self.surface {
            Surface::Chat => {
                let mut message = json!({"role": "assistant", "content": ""});
                if let (Value::Object(message), Value::Object(fields)) = (&mut message, fields) {
                    message.extend(fields);
                }
                json!({"model": self.model, "created_at": Self::created_at(), "message": message, "done": false})
            }
            Surface::Generate => {
                let mut line =
                    json!({"model": self.model, "created_at": Self::created_at(), "response": ""});
                if let (Value::Object(line), Value::Object(fields)) = (&mut line, fields) {
                    line.extend(fields);
                }
                line["done"] = false.into();
                line
            }
        };
        self.push_line(&mut line);
    }

    fn push_line(&mut self, line: &mut Value) {
        let mut buf = Vec::with_capacity(160);
        // Serialising a Value cannot fail.
        let _ = serde_json::to_writer(&mut buf, line);
        buf.push(b'\n');
        self.lines.push_back(Bytes::from(buf));
    }

    fn output_began(&mut self) {
        if self.first_output.is_none() {
            self.first_output = Some(Instant::now());
        }
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.output_began();
        self.shown_chars += text.len();
        if self.mode == Mode::Whole {
            self.content.push_str(text);
        } else {
            let field = match self.surface {
                Surface::Chat => "content",
                Surface::Generate => "response",
            };
            self.piece(json!({ field: text }));
        }
    }

    fn thinking_text(&mut self, text: &str) {
        if text.is_empty() || self.thinking == Thinking::Hidden {
            return;
        }
        self.output_began();
        if self.mode == Mode::Whole {
            self.thought.push_str(text);
        } else {
            self.piece(json!({ "thinking": text }));
        }
    }

    /// Answer text through the stop sequences.
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

    /// Text held back as a possible stop sequence is the answer's after all.
    fn release(&mut self) {
        if let Some(held) = self.stop.as_mut().map(StopMatcher::flush) {
            self.text(&held);
        }
    }

    fn tool_call_json(&self, call: &Call, index: u32) -> Value {
        let arguments = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(value @ Value::Object(_)) => value,
            _ if call.arguments.trim().is_empty() => json!({}),
            // Not an object: Ollama's clients read arguments as an object, so the text goes
            // whole under one key rather than being lost.
            Ok(_) | Err(_) => json!({ "input": call.arguments }),
        };
        json!({
            "id": call.id,
            "function": {"index": index, "name": call.name, "arguments": arguments},
        })
    }

    fn call_done(&mut self, block: u32) {
        let Some(at) = self.calls.iter().position(|c| c.block == block) else {
            return;
        };
        self.output_began();
        if self.mode == Mode::Stream {
            let call = self.tool_call_json(&self.calls[at], self.calls_written);
            self.piece(json!({ "tool_calls": [call] }));
        }
        self.calls_written += 1;
    }

    fn durations(&self) -> (u64, u64, u64) {
        let now = Instant::now();
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let total = nanos(now - self.began);
        let prompt = self
            .first_output
            .map_or(total, |first| nanos(first - self.began));
        (total, prompt, total.saturating_sub(prompt))
    }

    /// The last line's fields: done, the reason and the counts.
    fn done_fields(&self) -> serde_json::Map<String, Value> {
        let (total, prompt, eval) = self.durations();
        let (input, output) = self.usage.as_ref().map_or((self.input_estimate, 0), |u| {
            (u.input_tokens, u.output_tokens)
        });
        let mut map = serde_json::Map::new();
        map.insert("done".into(), true.into());
        map.insert("done_reason".into(), self.done_reason.into());
        map.insert("total_duration".into(), total.into());
        map.insert("load_duration".into(), 0.into());
        map.insert("prompt_eval_count".into(), input.into());
        map.insert("prompt_eval_duration".into(), prompt.into());
        map.insert("eval_count".into(), output.into());
        map.insert("eval_duration".into(), eval.into());
        map
    }

    fn finish(&mut self, ending: Ending, usage: Option<Usage>) {
        self.done_reason = match ending {
            Ending::Length if !self.stopped => "length",
            _ => "stop",
        };
        self.usage = usage;
        self.finished = true;
        if self.mode == Mode::Stream {
            let mut line = match self.surface {
                Surface::Chat => json!({
                    "model": self.model,
                    "created_at": Self::created_at(),
                    "message": {"role": "assistant", "content": ""},
                }),
                Surface::Generate => json!({
                    "model": self.model,
                    "created_at": Self::created_at(),
                    "response": "",
                }),
            };
            if let Value::Object(map) = &mut line {
                map.extend(self.done_fields());
            }
            self.push_line(&mut line);
        }
    }

    /// A stop sequence ended the answer before the backend did: it ends now, with the output
    /// counted from what was shown (about four characters a token).
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

    /// The whole answer as one object (whole mode), once finished.
    pub fn whole(&self) -> Value {
        let mut object = match self.surface {
            Surface::Chat => {
                let mut message = json!({"role": "assistant", "content": self.content});
                if !self.thought.is_empty() {
                    message["thinking"] = self.thought.clone().into();
                }
                if !self.calls.is_empty() {
                    let calls: Vec<Value> = (0u32..)
                        .zip(&self.calls)
                        .map(|(i, call)| self.tool_call_json(call, i))
                        .collect();
                    message["tool_calls"] = calls.into();
                }
                json!({"model": self.model, "created_at": Self::created_at(), "message": message})
            }
            Surface::Generate => {
                let mut object = json!({
                    "model": self.model,
                    "created_at": Self::created_at(),
                    "response": self.content,
                });
                if !self.thought.is_empty() {
                    object["thinking"] = self.thought.clone().into();
                }
                object
            }
        };
        if let Value::Object(map) = &mut object {
            map.extend(self.done_fields());
        }
        object
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
            OutputEvent::Started { .. } => {}
            OutputEvent::BlockStart {
                index,
                kind,
                call_id,
                name,
            } => {
                let slot = index as usize;
                if self.kinds.len() <= slot {
                    self.kinds.resize(slot + 1, None);
                    self.parts.resize(slot + 1, 0);
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
                let Some(seen) = self.parts.get_mut(index as usize) else {
                    return;
                };
                *seen += 1;
                if *seen > 1 {
                    self.thinking_text("\n\n");
                }
            }
            OutputEvent::ReasoningDelta { text, .. } => self.thinking_text(text),
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
