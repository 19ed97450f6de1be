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
use serde_json::{Map, Value, json};

use super::Thinking;
use crate::json_text::quote_into;
use crate::translate::messages::tokens::Estimate;
use crate::translate::output::{Ending, OutputEvent, OutputSink};
use crate::translate::pieces::{Call, PieceSink, Pieces, Piecewise};
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

/// A tool call as Ollama writes it.
fn call_json(call: &Call, index: u32) -> Value {
    json!({
        "id": call.id,
        "function": {"index": index, "name": call.name, "arguments": call.arguments_object()},
    })
}

fn created_at() -> String {
    crate::clock::rfc3339_ms(crate::clock::unix_now_ms())
}

/// What the answer says, as Ollama says it.
#[derive(Debug)]
pub struct Writer {
    inner: Piecewise<Out>,
}

/// The answer being written: lines (stream), or what the whole object will hold.
#[derive(Debug)]
struct Out {
    surface: Surface,
    mode: Mode,
    model: String,
    thinking: Thinking,
    began: Instant,
    first_output: Option<Instant>,
    /// Whole mode: the answer's text and thinking.
    content: String,
    thought: String,
    lines: VecDeque<Bytes>,
    done_reason: &'static str,
    usage: Option<Usage>,
    input_estimate: Estimate,
}

impl Writer {
    pub fn new(
        surface: Surface,
        mode: Mode,
        model: String,
        thinking: Thinking,
        stop: &[String],
        input_estimate: Estimate,
    ) -> Self {
        Self {
            inner: Piecewise {
                pieces: Pieces::new(stop),
                sink: Out {
                    surface,
                    mode,
                    model,
                    thinking,
                    began: Instant::now(),
                    first_output: None,
                    content: String::new(),
                    thought: String::new(),
                    lines: VecDeque::new(),
                    done_reason: "stop",
                    usage: None,
                    input_estimate,
                },
            },
        }
    }

    /// The lines written so far (stream mode), each ending in `\n`.
    pub fn lines(&mut self) -> &mut VecDeque<Bytes> {
        &mut self.inner.sink.lines
    }

    /// Whether a line is ready (stream mode).
    pub fn has_lines(&self) -> bool {
        !self.inner.sink.lines.is_empty()
    }

    /// A stop sequence ended the answer.
    pub fn stopped(&self) -> bool {
        self.inner.pieces.stopped()
    }

    /// The answer ended (its last line written) or failed.
    pub fn is_done(&self) -> bool {
        self.inner.pieces.is_done()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.inner.pieces.failure()
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.inner.sink.usage.as_ref()
    }

    /// The answer's tool calls as the backend made them: id, name, arguments.
    pub fn calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.inner
            .pieces
            .calls()
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
    }

    /// A stop sequence ended the answer before the backend did: it ends now.
    pub fn finish_stopped(&mut self) {
        let Piecewise { pieces, sink } = &mut self.inner;
        pieces.finish_stopped(sink.input_estimate.get(), sink);
    }

    /// The whole answer as one object (whole mode), once finished.
    pub fn whole(&self) -> Value {
        let out = &self.inner.sink;
        let mut object = match out.surface {
            Surface::Chat => {
                let mut message = json!({"role": "assistant", "content": out.content});
                if !out.thought.is_empty() {
                    message["thinking"] = out.thought.clone().into();
                }
                let calls = self.inner.pieces.calls();
                if !calls.is_empty() {
                    let calls: Vec<Value> = (0u32..)
                        .zip(calls)
                        .map(|(i, call)| call_json(call, i))
                        .collect();
                    message["tool_calls"] = calls.into();
                }
                json!({"model": out.model, "created_at": created_at(), "message": message})
            }
            Surface::Generate => {
                let mut object = json!({
                    "model": out.model,
                    "created_at": created_at(),
                    "response": out.content,
                });
                if !out.thought.is_empty() {
                    object["thinking"] = out.thought.clone().into();
                }
                object
            }
        };
        if let Value::Object(map) = &mut object {
            map.extend(out.done_fields());
        }
        object
    }
}

impl OutputSink for Writer {
    fn event(&mut self, event: OutputEvent<'_>) {
        self.inner.event(event);
    }
}

impl Out {
    /// One piece of the answer: `message` fields (chat) or the generate fields, not done.
    fn piece(&mut self, fields: Value) {
        if self.first_output.is_none() {
            self.first_output = Some(Instant::now());
        }
        if self.mode != Mode::Stream {
            return;
        }
        let Value::Object(fields) = fields else {
            return;
        };
        let mut line = match self.surface {
            Surface::Chat => {
                let mut message = Map::new();
                message.insert("role".into(), "assistant".into());
                message.insert("content".into(), "".into());
                message.extend(fields);
                json!({"model": self.model, "created_at": created_at(), "message": message, "done": false})
            }
            Surface::Generate => {
                let mut line = Map::new();
                line.insert("model".into(), self.model.clone().into());
                line.insert("created_at".into(), created_at().into());
                line.insert("response".into(), "".into());
                line.extend(fields);
                line.insert("done".into(), false.into());
                Value::Object(line)
            }
        };
        self.push_line(&mut line);
    }

    /// A text or thinking piece, written straight to bytes: the frequent line, which must not
    /// cost a JSON tree per delta.
    fn text_piece(&mut self, thinking: bool, text: &str) {
        if self.first_output.is_none() {
            self.first_output = Some(Instant::now());
        }
        if self.mode != Mode::Stream {
            return;
        }
        let mut buf = Vec::with_capacity(112 + self.model.len() + text.len());
        buf.extend_from_slice(b"{\"model\":");
        quote_into(&mut buf, &self.model);
        buf.extend_from_slice(b",\"created_at\":\"");
        buf.extend_from_slice(created_at().as_bytes());
        buf.extend_from_slice(match self.surface {
            Surface::Chat => b"\",\"message\":{\"role\":\"assistant\",\"content\":",
            Surface::Generate => b"\",\"response\":",
        });
        if thinking {
            buf.extend_from_slice(b"\"\",\"thinking\":");
        }
        quote_into(&mut buf, text);
        if self.surface == Surface::Chat {
            buf.push(b'}');
        }
        buf.extend_from_slice(b",\"done\":false}\n");
        self.lines.push_back(Bytes::from(buf));
    }

    fn push_line(&mut self, line: &mut Value) {
        let mut buf = Vec::with_capacity(160);
        // Serialising a Value cannot fail.
        let _ = serde_json::to_writer(&mut buf, line);
        buf.push(b'\n');
        self.lines.push_back(Bytes::from(buf));
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
    fn done_fields(&self) -> Map<String, Value> {
        let (total, prompt, eval) = self.durations();
        let (input, output) = self.usage.as_ref().map_or_else(
            || (self.input_estimate.get(), 0),
            |u| (u.input_tokens, u.output_tokens),
        );
        let mut map = Map::new();
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
}

impl PieceSink for Out {
    fn text(&mut self, text: &str) {
        if self.mode == Mode::Whole {
            self.content.push_str(text);
        }
        self.text_piece(false, text);
    }

    fn thought(&mut self, text: &str) {
        if self.thinking == Thinking::Hidden {
            return;
        }
        if self.mode == Mode::Whole {
            self.thought.push_str(text);
        }
        self.text_piece(true, text);
    }

    fn call(&mut self, call: &Call, index: u32) {
        self.piece(json!({ "tool_calls": [call_json(call, index)] }));
    }

    fn finish(&mut self, ending: Ending, usage: Option<Usage>, stopped: bool) {
        self.done_reason = match ending {
            Ending::Length if !stopped => "length",
            _ => "stop",
        };
        self.usage = usage;
        if self.mode == Mode::Stream {
            let mut line = match self.surface {
                Surface::Chat => json!({
                    "model": self.model,
                    "created_at": created_at(),
                    "message": {"role": "assistant", "content": ""},
                }),
                Surface::Generate => json!({
                    "model": self.model,
                    "created_at": created_at(),
                    "response": "",
                }),
            };
            if let Value::Object(map) = &mut line {
                map.extend(self.done_fields());
            }
            self.push_line(&mut line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_are_the_json_they_stand_for() {
        for surface in [Surface::Chat, Surface::Generate] {
            let mut writer = Writer::new(
                surface,
                Mode::Stream,
                "gpt-5.5:\"latest\"".into(),
                Thinking::Shown,
                &[],
                Estimate::known(1),
            );
            let text = "a \"quote\", a \\ and a\nnew line \u{1}";
            writer.inner.sink.text(text);
            writer.inner.sink.thought(text);
            let lines: Vec<Value> = writer
                .lines()
                .drain(..)
                .map(|l| serde_json::from_slice(&l).unwrap())
                .collect();
            let (said, thought) = match surface {
                Surface::Chat => (&lines[0]["message"], &lines[1]["message"]),
                Surface::Generate => (&lines[0], &lines[1]),
            };
            let field = if surface == Surface::Chat {
                "content"
            } else {
                "response"
            };
            assert_eq!(said[field], text);
            assert_eq!(thought[field], "");
            assert_eq!(thought["thinking"], text);
            assert!(
                lines
                    .iter()
                    .all(|l| l["model"] == "gpt-5.5:\"latest\"" && l["done"] == false)
            );
            if surface == Surface::Chat {
                assert_eq!(lines[0]["message"]["role"], "assistant");
            }
        }
    }
}
