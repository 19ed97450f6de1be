//! The output layer's events as the pieces an answer shows — text and thinking as they come,
//! each tool call whole once its arguments are in — for the surfaces that show answers that
//! way (Ollama, Gemini). Here: which block is what, tool calls gathered, reasoning parts
//! separated, stop sequences cut; a surface renders the pieces in its own shape.

use serde_json::{Value, json};

use super::output::{BlockKind, Ending, OutputEvent, OutputSink};
use super::stream::StopMatcher;
use crate::upstream::wire::{Failure, Usage};

/// A tool call as the backend made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The upstream block it came in.
    block: u32,
    pub id: String,
    pub name: String,
    /// The arguments' text, exactly as the backend gave it.
    pub arguments: String,
}

impl Call {
    /// The arguments as an object, as these surfaces' clients read them. Text that is not an
    /// object goes whole under one key rather than being lost.
    pub fn arguments_object(&self) -> Value {
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(value @ Value::Object(_)) => value,
            _ if self.arguments.trim().is_empty() => json!({}),
            Ok(_) | Err(_) => json!({ "input": self.arguments }),
        }
    }
}

/// Where the pieces go.
pub trait PieceSink {
    /// `response.created`: the response's id.
    fn started(&mut self, _id: Option<String>) {}
    /// Text of the answer (stop sequences already cut).
    fn text(&mut self, text: &str);
    /// Text of the model's thinking (a reasoning summary); parts come separated.
    fn thought(&mut self, text: &str);
    /// A tool call, complete; `index` counts the answer's calls from 0.
    fn call(&mut self, call: &Call, index: u32);
    /// The answer ended; `stopped` when a stop sequence ended it.
    fn finish(&mut self, ending: Ending, usage: Option<Usage>, stopped: bool);
}

/// Reads the output layer's events into pieces.
#[derive(Debug, Default)]
pub struct Pieces {
    stop: Option<StopMatcher>,
    stopped: bool,
    kinds: Vec<Option<BlockKind>>,
    /// Reasoning summary parts seen per upstream block (a new part is a new paragraph).
    parts_seen: Vec<u32>,
    calls: Vec<Call>,
    calls_done: u32,
    shown_chars: usize,
    failure: Option<Failure>,
    finished: bool,
}

impl Pieces {
    pub fn new(stop: &[String]) -> Self {
        Self {
            stop: (!stop.is_empty()).then(|| StopMatcher::new(stop)),
            ..Self::default()
        }
    }

    /// A stop sequence ended the answer.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The answer ended or failed.
    pub fn is_done(&self) -> bool {
        self.finished || self.failure.is_some()
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// Every tool call begun, in order.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// A stop sequence ended the answer before the backend did: it ends now, its output
    /// counted from what was shown (about four characters a token).
    pub fn finish_stopped(&mut self, input_tokens: u64, out: &mut impl PieceSink) {
        if self.finished {
            return;
        }
        let output = (self.shown_chars as u64).div_ceil(4).max(1);
        let usage = Usage {
            input_tokens,
            output_tokens: output,
            total_tokens: input_tokens + output,
            input_tokens_details: None,
            output_tokens_details: None,
        };
        self.finished = true;
        out.finish(Ending::Completed, Some(usage), true);
    }

    fn kind(&self, index: u32) -> Option<BlockKind> {
        self.kinds.get(index as usize).copied().flatten()
    }

    fn text(&mut self, text: &str, out: &mut impl PieceSink) {
        if !text.is_empty() {
            self.shown_chars += text.len();
            out.text(text);
        }
    }

    /// Answer text through the stop sequences.
    fn answer(&mut self, text: &str, out: &mut impl PieceSink) {
        let Some(matcher) = &mut self.stop else {
            self.text(text, out);
            return;
        };
        let (safe, hit) = matcher.push_matched(text);
        self.text(&safe, out);
        if hit.is_some() {
            self.stopped = true;
        }
    }

    /// Text held back as a possible stop sequence is the answer's after all.
    fn release(&mut self, out: &mut impl PieceSink) {
        if let Some(held) = self.stop.as_mut().map(StopMatcher::flush) {
            self.text(&held, out);
        }
    }

    /// Reads one event; `out` gets what it shows.
    pub fn push(&mut self, event: OutputEvent<'_>, out: &mut impl PieceSink) {
        if self.is_done() {
            return;
        }
        if self.stopped && !matches!(event, OutputEvent::Finish { .. } | OutputEvent::Failed(_)) {
            return;
        }
        match event {
            OutputEvent::Started { id, .. } => out.started(id),
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
                    self.answer(text, out);
                }
            }
            OutputEvent::Refusal { text, .. } => {
                self.release(out);
                self.text(&text, out);
            }
            OutputEvent::ReasoningPart { index } => {
                let Some(seen) = self.parts_seen.get_mut(index as usize) else {
                    return;
                };
                *seen += 1;
                if *seen > 1 {
                    out.thought("\n\n");
                }
            }
            OutputEvent::ReasoningDelta { text, .. } => {
                if !text.is_empty() {
                    out.thought(text);
                }
            }
            OutputEvent::ReasoningEncrypted { .. } => {}
            OutputEvent::ToolDelta { index, text } => {
                if let Some(call) = self.calls.iter_mut().find(|c| c.block == index) {
                    call.arguments.push_str(text);
                }
            }
            OutputEvent::BlockStop { index } => match self.kind(index) {
                Some(BlockKind::Text) => self.release(out),
                Some(BlockKind::Function | BlockKind::Custom) => {
                    if let Some(call) = self.calls.iter().find(|c| c.block == index) {
                        out.call(call, self.calls_done);
                        self.calls_done += 1;
                    }
                }
                _ => {}
            },
            OutputEvent::Finish { ending, usage } => {
                self.finished = true;
                out.finish(ending, usage, self.stopped);
            }
            OutputEvent::Failed(failure) => self.failure = Some(failure),
        }
    }
}

/// Sends the pieces of a [`Pieces`] to a sink: a writer holds both, and is the output layer's
/// sink through this.
#[derive(Debug)]
pub struct Piecewise<S> {
    pub pieces: Pieces,
    pub sink: S,
}

impl<S: PieceSink> OutputSink for Piecewise<S> {
    fn event(&mut self, event: OutputEvent<'_>) {
        self.pieces.push(event, &mut self.sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces as text, for comparing.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl PieceSink for Log {
        fn text(&mut self, text: &str) {
            self.0.push(format!("text {text:?}"));
        }
        fn thought(&mut self, text: &str) {
            self.0.push(format!("thought {text:?}"));
        }
        fn call(&mut self, call: &Call, index: u32) {
            self.0.push(format!(
                "call {index} {} {}",
                call.name,
                call.arguments_object()
            ));
        }
        fn finish(&mut self, ending: Ending, usage: Option<Usage>, stopped: bool) {
            let tokens = usage.map_or(0, |u| u.output_tokens);
            self.0
                .push(format!("finish {ending:?} {tokens} stopped={stopped}"));
        }
    }

    fn run(stop: &[&str]) -> Vec<String> {
        let stop: Vec<String> = stop.iter().map(|s| (*s).to_owned()).collect();
        let mut writer = Piecewise {
            pieces: Pieces::new(&stop),
            sink: Log::default(),
        };
        let mut output = super::super::output::OutputTranslator::default();
        for event in super::super::output::sample_events() {
            let data = event.to_string();
            crate::upstream::wire::StreamEvent::with(
                data.as_bytes(),
                |_| false,
                |e| {
                    output.push(e, &mut writer);
                },
            );
            if writer.pieces.stopped() {
                writer.pieces.finish_stopped(42, &mut writer.sink);
                break;
            }
        }
        writer.sink.0
    }

    #[test]
    fn text_thinking_and_whole_calls_in_order() {
        assert_eq!(
            run(&[]),
            [
                "thought \"Plan.\"",
                "thought \"\\n\\n\"",
                "thought \"Act.\"",
                "text \"Running \"",
                "text \"ls.\"",
                "call 0 Bash {\"command\":\"ls\"}",
                "finish Completed 50 stopped=false",
            ]
        );
    }

    #[test]
    fn a_stop_sequence_ends_the_answer_with_what_was_shown() {
        let log = run(&["ls"]);
        assert_eq!(log[3], "text \"Running \"");
        assert_eq!(log.last().unwrap(), "finish Completed 2 stopped=true");
        assert!(!log.iter().any(|l| l.starts_with("call")));
    }

    #[test]
    fn arguments_that_are_not_an_object_are_kept() {
        let call = |arguments: &str| Call {
            block: 0,
            id: "c".into(),
            name: "f".into(),
            arguments: arguments.into(),
        };
        assert_eq!(call(r#"{"a":1}"#).arguments_object(), json!({"a": 1}));
        assert_eq!(call("").arguments_object(), json!({}));
        assert_eq!(call("[1]").arguments_object(), json!({"input": "[1]"}));
        assert_eq!(
            call("not json").arguments_object(),
            json!({"input": "not json"})
        );
    }
}
