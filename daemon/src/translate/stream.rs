//! Responses stream events → Chat Completions deltas, one event at a time, so every upstream
//! delta reaches the client as soon as it arrives. The non-streamed completion is assembled from
//! the same output ([`Assembler`]), so both paths agree by construction.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::chat::{
    ChatUsage, CompletionDetails, CustomDelta, Delta, FinishReason, FunctionDelta, PromptDetails,
    ToolCallDelta,
};
use super::output::{BlockKind, Ending, OutputEvent, OutputSink, OutputTranslator};
use crate::config::ReasoningOutput;
use crate::upstream::wire::{StreamEvent, Usage};

/// What one upstream event produces for the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    Delta(Delta),
    Finish(FinishReason),
    Usage(ChatUsage),
    /// `response.failed` (or a stream that ended without a terminal event).
    Failed(Failure),
}

pub use crate::upstream::wire::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolKind {
    Function,
    Custom,
}

/// Where a translator's output goes: a vector of [`Emit`]s for a stream's chunks, or an
/// [`Assembler`] for a whole completion, which takes the text of each delta without a [`Delta`]
/// (and an allocation) per event.
pub trait Sink {
    fn emit(&mut self, emit: Emit);

    /// Content text, the output of almost every event.
    fn content(&mut self, text: &str) {
        self.emit(content_delta(text.to_owned()));
    }
}

impl Sink for Vec<Emit> {
    fn emit(&mut self, emit: Emit) {
        self.push(emit);
    }
}

impl Sink for Assembler {
    fn emit(&mut self, emit: Emit) {
        self.apply(&emit);
    }

    fn content(&mut self, text: &str) {
        // An answer arrives in many small deltas; start with room for a short one rather than
        // growing from a few bytes.
        if self.content.capacity() == 0 {
            self.content.reserve(text.len().max(ANSWER_START));
        }
        self.content.push_str(text);
    }
}

/// The first allocation for an assembled answer's text.
const ANSWER_START: usize = 2048;

/// Translates one upstream response for one choice: the neutral output layer
/// ([`OutputTranslator`]) reads the events, and this renders what it says as Chat Completions
/// deltas, with the chat-only policies: stop sequences, where reasoning goes, tool-call indices.
#[derive(Debug)]
pub struct StreamTranslator {
    output: OutputTranslator,
    chat: Chat,
    pub response_id: Option<String>,
    pub model: Option<String>,
}

/// The Chat Completions side of a translation.
#[derive(Debug)]
struct Chat {
    reasoning: ReasoningOutput,
    stop: Option<StopMatcher>,
    /// Tool calls by block index: their chat index and kind.
    tools: HashMap<u32, (u32, ToolKind)>,
    next_tool: u32,
    reasoning_emitted: bool,
    in_think: bool,
    stopped: bool,
}

impl StreamTranslator {
    pub fn new(reasoning: ReasoningOutput, stop: &[String]) -> Self {
        Self {
            output: OutputTranslator::default(),
            chat: Chat {
                reasoning,
                stop: (!stop.is_empty()).then(|| StopMatcher::new(stop)),
                tools: HashMap::new(),
                next_tool: 0,
                reasoning_emitted: false,
                in_think: false,
                stopped: false,
            },
            response_id: None,
            model: None,
        }
    }

    /// The response ended (terminal event) or a stop sequence cut it.
    pub fn is_done(&self) -> bool {
        self.output.is_terminal() || self.chat.stopped
    }

    /// A terminal event (completed, incomplete, failed) or the end of the body was seen.
    pub fn is_terminal(&self) -> bool {
        self.output.is_terminal()
    }

    /// A stop sequence ended the choice; the upstream stream may still run (for usage).
    pub fn stopped_by_sequence(&self) -> bool {
        self.chat.stopped
    }

    /// Event types the translation never reads, in any state: the `done` and `part` events that
    /// repeat what the deltas and the done item carry (codex-protocol.md §3.2), so the event
    /// reader may stop at their type ([`StreamEvent::with`]).
    pub fn ignores(kind: &str) -> bool {
        matches!(
            kind,
            "response.output_text.done"
                | "response.content_part.added"
                | "response.content_part.done"
                | "response.function_call_arguments.done"
                | "response.custom_tool_call_input.done"
                | "response.reasoning_summary_part.done"
                | "response.reasoning_summary_text.done"
                | "response.reasoning_text.done"
        )
    }

    pub fn push(&mut self, event: StreamEvent<'_>, out: &mut impl Sink) {
        let mut render = Render {
            chat: &mut self.chat,
            response_id: &mut self.response_id,
            model: &mut self.model,
            out,
        };
        self.output.push(event, &mut render);
    }

    /// The upstream body ended. Without a terminal event that is a failure (§3.2).
    pub fn eof(&mut self, out: &mut impl Sink) {
        if self.is_done() {
            return;
        }
        let mut render = Render {
            chat: &mut self.chat,
            response_id: &mut self.response_id,
            model: &mut self.model,
            out,
        };
        self.output.eof(&mut render);
    }
}

/// The output layer's events, rendered into a chat [`Sink`].
struct Render<'a, S> {
    chat: &'a mut Chat,
    response_id: &'a mut Option<String>,
    model: &'a mut Option<String>,
    out: &'a mut S,
}

impl<S: Sink> OutputSink for Render<'_, S> {
    fn event(&mut self, event: OutputEvent<'_>) {
        let chat = &mut *self.chat;
        let out = &mut *self.out;
        // After a stop sequence only the usage of the terminal event still matters.
        if chat.stopped {
            if let OutputEvent::Finish {
                usage: Some(usage), ..
            } = event
            {
                out.emit(Emit::Usage(chat_usage(usage)));
            }
            return;
        }
        match event {
            OutputEvent::Started { id, model } => {
                if id.is_some() {
                    *self.response_id = id;
                }
                if model.is_some() {
                    *self.model = model;
                }
            }
            OutputEvent::BlockStart {
                index,
                kind: kind @ (BlockKind::Function | BlockKind::Custom),
                call_id,
                name,
            } => {
                let kind = match kind {
                    BlockKind::Custom => ToolKind::Custom,
                    _ => ToolKind::Function,
                };
                chat.open_tool(
                    index,
                    call_id.unwrap_or_default(),
                    name.unwrap_or_default(),
                    kind,
                    out,
                );
            }
            OutputEvent::BlockStart { .. }
            | OutputEvent::BlockStop { .. }
            | OutputEvent::ReasoningEncrypted { .. } => {}
            OutputEvent::TextDelta { text, .. } => chat.content(text, out),
            // Parts and items of reasoning are separated like paragraphs.
            OutputEvent::ReasoningPart { .. } => {
                if chat.reasoning_emitted {
                    chat.reasoning_text("\n\n", out);
                }
            }
            OutputEvent::ReasoningDelta { text, .. } => {
                chat.reasoning_text(text, out);
                chat.reasoning_emitted = true;
            }
            OutputEvent::ToolDelta { index, text } => {
                if let Some(&(tool, kind)) = chat.tools.get(&index) {
                    out.emit(Emit::Delta(tool_args(tool, kind, text.to_owned())));
                }
            }
            OutputEvent::Refusal { text, .. } => {
                chat.before_other_output(out);
                out.emit(Emit::Delta(Delta {
                    refusal: Some(Some(text)),
                    ..Delta::default()
                }));
            }
            OutputEvent::Finish { ending, usage } => {
                chat.before_other_output(out);
                let finish = match ending {
                    Ending::Completed if chat.next_tool > 0 => FinishReason::ToolCalls,
                    Ending::Completed => FinishReason::Stop,
                    Ending::Length => FinishReason::Length,
                    Ending::ContentFilter => FinishReason::ContentFilter,
                };
                out.emit(Emit::Finish(finish));
                if let Some(usage) = usage {
                    out.emit(Emit::Usage(chat_usage(usage)));
                }
            }
            OutputEvent::Failed(failure) => {
                chat.before_other_output(out);
                out.emit(Emit::Failed(failure));
            }
        }
    }
}

impl Chat {
    fn open_tool(
        &mut self,
        block: u32,
        call_id: String,
        name: String,
        kind: ToolKind,
        out: &mut impl Sink,
    ) {
        self.before_other_output(out);
        let index = self.next_tool;
        self.next_tool += 1;
        self.tools.insert(block, (index, kind));
        let call = match kind {
            ToolKind::Function => ToolCallDelta {
                index,
                id: Some(call_id),
                kind: Some("function"),
                function: Some(FunctionDelta {
                    name: Some(name),
                    arguments: String::new(),
                }),
                custom: None,
            },
            ToolKind::Custom => ToolCallDelta {
                index,
                id: Some(call_id),
                kind: Some("custom"),
                function: None,
                custom: Some(CustomDelta {
                    name: Some(name),
                    input: String::new(),
                }),
            },
        };
        out.emit(Emit::Delta(Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        }));
    }

    fn content(&mut self, text: &str, out: &mut impl Sink) {
        if self.in_think {
            self.in_think = false;
            out.emit(content_delta("\n</think>\n\n".into()));
        }
        let Some(matcher) = &mut self.stop else {
            if !text.is_empty() {
                out.content(text);
            }
            return;
        };
        let (text, hit) = matcher.push(text);
        if !text.is_empty() {
            out.emit(content_delta(text));
        }
        if hit {
            self.stopped = true;
            out.emit(Emit::Finish(FinishReason::Stop));
        }
    }

    fn reasoning_text(&mut self, text: &str, out: &mut impl Sink) {
        match self.reasoning {
            ReasoningOutput::None => {}
            ReasoningOutput::ReasoningContent => {
                out.emit(Emit::Delta(Delta {
                    reasoning_content: Some(text.to_owned()),
                    ..Delta::default()
                }));
            }
            ReasoningOutput::ThinkTags => {
                self.flush_held(out);
                let opened = if self.in_think {
                    String::new()
                } else {
                    "<think>\n".to_owned()
                };
                self.in_think = true;
                out.emit(content_delta(format!("{opened}{text}")));
            }
        }
    }

    /// Before tool calls or refusals: close a think block and release held-back text.
    fn before_other_output(&mut self, out: &mut impl Sink) {
        if self.in_think {
            self.in_think = false;
            out.emit(content_delta("\n</think>\n\n".into()));
        }
        self.flush_held(out);
    }

    fn flush_held(&mut self, out: &mut impl Sink) {
        if let Some(matcher) = &mut self.stop {
            let held = matcher.flush();
            if !held.is_empty() {
                out.emit(content_delta(held));
            }
        }
    }
}

fn content_delta(text: String) -> Emit {
    Emit::Delta(Delta {
        content: Some(text),
        ..Delta::default()
    })
}

fn tool_args(index: u32, kind: ToolKind, text: String) -> Delta {
    let call = match kind {
        ToolKind::Function => ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: Some(FunctionDelta {
                name: None,
                arguments: text,
            }),
            custom: None,
        },
        ToolKind::Custom => ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: None,
            custom: Some(CustomDelta {
                name: None,
                input: text,
            }),
        },
    };
    Delta {
        tool_calls: Some(vec![call]),
        ..Delta::default()
    }
}

/// The usage a chat client was told, back in the backend's terms (for the account's counters).
pub fn wire_usage(usage: &ChatUsage) -> Usage {
    Usage {
        input_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        total_tokens: usage.total_tokens,
        input_tokens_details: Some(crate::upstream::wire::InputDetails {
            cached_tokens: usage.prompt_tokens_details.cached_tokens,
        }),
        output_tokens_details: Some(crate::upstream::wire::OutputDetails {
            reasoning_tokens: usage.completion_tokens_details.reasoning_tokens,
        }),
    }
}

pub fn chat_usage(usage: Usage) -> ChatUsage {
    ChatUsage {
        prompt_tokens: usage.input_tokens,
        completion_tokens: usage.output_tokens,
        total_tokens: usage.total_tokens,
        prompt_tokens_details: PromptDetails {
            cached_tokens: usage.input_tokens_details.map_or(0, |d| d.cached_tokens),
            audio_tokens: 0,
        },
        completion_tokens_details: CompletionDetails {
            reasoning_tokens: usage
                .output_tokens_details
                .map_or(0, |d| d.reasoning_tokens),
            ..CompletionDetails::default()
        },
    }
}

/// Cuts content at the first stop sequence, holding back a tail that could be the start of one
/// so a sequence split across deltas is still found.
#[derive(Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.to_vec(),
            held: String::new(),
        }
    }

    /// Returns the text that is safe to send and whether a stop sequence was reached.
    pub fn push(&mut self, text: &str) -> (String, bool) {
        let (out, hit) = self.push_matched(text);
        (out, hit.is_some())
    }

    /// As [`Self::push`], naming the stop sequence that was reached (the earliest in the text).
    pub fn push_matched(&mut self, text: &str) -> (String, Option<String>) {
        self.held.push_str(text);
        if let Some((pos, stop)) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|pos| (pos, s)))
            .min_by_key(|(pos, _)| *pos)
        {
            let out = self.held[..pos].to_owned();
            let stop = stop.clone();
            self.held.clear();
            return (out, Some(stop));
        }
        let keep = self
            .stops
            .iter()
            .flat_map(|stop| stop.char_indices().skip(1).map(|(i, _)| &stop[..i]))
            .filter(|prefix| self.held.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        (out, None)
    }

    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Builds the non-streamed completion of one choice from the same emits.
#[derive(Debug, Default, PartialEq)]
pub struct Assembler {
    pub content: String,
    pub reasoning: String,
    pub refusal: Option<String>,
    tool_calls: Vec<Value>,
    pub finish: Option<FinishReason>,
    pub usage: Option<ChatUsage>,
    pub failure: Option<Failure>,
}

impl Assembler {
    pub fn apply(&mut self, emit: &Emit) {
        match emit {
            Emit::Delta(delta) => {
                if let Some(text) = &delta.content {
                    self.content.push_str(text);
                }
                if let Some(text) = &delta.reasoning_content {
                    self.reasoning.push_str(text);
                }
                if let Some(Some(refusal)) = &delta.refusal {
                    self.refusal
                        .get_or_insert_with(String::new)
                        .push_str(refusal);
                }
                for call in delta.tool_calls.iter().flatten() {
                    self.tool_call(call);
                }
            }
            // The first finish wins: a stop sequence finishes before the terminal event.
            Emit::Finish(reason) => {
                self.finish.get_or_insert(*reason);
            }
            Emit::Usage(usage) => self.usage = Some(usage.clone()),
            Emit::Failed(failure) => self.failure = Some(failure.clone()),
        }
    }

    fn tool_call(&mut self, call: &ToolCallDelta) {
        let index = call.index as usize;
        while self.tool_calls.len() <= index {
            self.tool_calls.push(Value::Null);
        }
        let slot = &mut self.tool_calls[index];
        if let Some(id) = &call.id {
            *slot = match call.kind {
                Some("custom") => {
                    json!({"id": id, "type": "custom", "custom": {"name": "", "input": ""}})
                }
                _ => {
                    json!({"id": id, "type": "function", "function": {"name": "", "arguments": ""}})
                }
            };
        }
        let append = |slot: &mut Value, pointer: &str, text: &str| {
            if let Some(Value::String(s)) = slot.pointer_mut(pointer) {
                s.push_str(text);
            }
        };
        if let Some(function) = &call.function {
            if let Some(name) = &function.name {
                append(slot, "/function/name", name);
            }
            append(slot, "/function/arguments", &function.arguments);
        }
        if let Some(custom) = &call.custom {
            if let Some(name) = &custom.name {
                append(slot, "/custom/name", name);
            }
            append(slot, "/custom/input", &custom.input);
        }
    }

    pub fn tool_calls(&self) -> Vec<Value> {
        self.tool_calls
            .iter()
            .filter(|c| !c.is_null())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
pub(crate) mod tests;
