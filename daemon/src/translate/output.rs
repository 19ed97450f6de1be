//! The neutral output layer: the backend's Responses events → what a response says, block by
//! block, in no client's shape. Each output item is a block (text, reasoning, a tool call) with
//! an index in the order the items began; its deltas, its end, and at the end of the response
//! how it finished, with the usage. Every surface renders these: Chat Completions into chunks
//! ([`super::stream::StreamTranslator`]), Anthropic Messages into content blocks (which need
//! exactly these boundaries), and so on.
//!
//! The done item is authoritative (codex-protocol.md §3.2): whatever of it the deltas did not
//! carry is sent when it arrives, so a surface sees every byte once.

use std::collections::HashMap;

use crate::upstream::wire::{Failure, OutputContent, OutputItem, StreamEvent, Usage};

/// What kind of block an output item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    Reasoning,
    /// A function call.
    Function,
    /// A custom (freeform) tool call.
    Custom,
}

/// How the response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `response.completed`.
    Completed,
    /// `response.incomplete` for the output limit (or an unknown reason).
    Length,
    /// `response.incomplete` for the content filter.
    ContentFilter,
}

/// One thing a response says. Text is borrowed from the event it came in.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputEvent<'a> {
    /// `response.created`: the response's id and model.
    Started {
        id: Option<String>,
        model: Option<String>,
    },
    /// A block begins. Tool calls carry their call id and name.
    BlockStart {
        index: u32,
        kind: BlockKind,
        call_id: Option<String>,
        name: Option<String>,
    },
    TextDelta {
        index: u32,
        text: &'a str,
    },
    /// A new part of a reasoning summary begins (a surface may separate parts).
    ReasoningPart {
        index: u32,
    },
    ReasoningDelta {
        index: u32,
        text: &'a str,
    },
    /// A reasoning block's encrypted content, just before it stops: what a later turn sends back
    /// (on the same account) so the model keeps this reasoning.
    ReasoningEncrypted {
        index: u32,
        content: String,
    },
    /// Arguments (function) or input (custom) of a tool call.
    ToolDelta {
        index: u32,
        text: &'a str,
    },
    /// A refusal in a message.
    Refusal {
        index: u32,
        text: String,
    },
    BlockStop {
        index: u32,
    },
    /// The response ended; its usage when the backend gave it.
    Finish {
        ending: Ending,
        usage: Option<Usage>,
    },
    /// `response.failed`, or a stream that ended without a terminal event.
    Failed(Failure),
}

/// Where the output layer's events go.
pub trait OutputSink {
    fn event(&mut self, event: OutputEvent<'_>);
}

/// For tests: a realistic answer's events — two reasoning summary parts, text in two deltas,
/// a function call whose arguments' last part comes only with its done item — and usage.
#[cfg(test)]
pub fn sample_events() -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!({"type": "response.created", "response": {"id": "resp_abc", "model": "gpt-5.5"}}),
        json!({"type": "response.output_item.added", "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "summary_index": 0}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "delta": "Plan."}),
        json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "summary_index": 1}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "delta": "Act."}),
        json!({"type": "response.output_item.done", "item": {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAenc"}}),
        json!({"type": "response.output_item.added", "item": {"type": "message", "id": "msg_1", "content": []}}),
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Running "}),
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "ls."}),
        json!({"type": "response.output_item.done", "item": {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": "Running ls."}]}}),
        json!({"type": "response.output_item.added", "item": {"type": "function_call", "id": "fc_1", "call_id": "call_7", "name": "Bash", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": "{\"command\":"}),
        json!({"type": "response.output_item.done", "item": {"type": "function_call", "id": "fc_1", "call_id": "call_7", "name": "Bash", "arguments": "{\"command\":\"ls\"}"}}),
        json!({"type": "response.completed", "response": {"id": "resp_abc", "usage": {"input_tokens": 1000, "output_tokens": 50, "total_tokens": 1050,
            "input_tokens_details": {"cached_tokens": 800}, "output_tokens_details": {"reasoning_tokens": 20}}}}),
    ]
}

/// For tests: each event as its `Debug` text.
#[cfg(test)]
impl OutputSink for Vec<String> {
    fn event(&mut self, event: OutputEvent<'_>) {
        self.push(format!("{event:?}"));
    }
}

#[derive(Debug)]
struct Block {
    index: u32,
    /// Bytes of a tool call's arguments or input already sent.
    streamed: usize,
    /// A message whose text arrived as deltas (its done item must not repeat it).
    text_streamed: bool,
    open: bool,
}

/// Reads one response's events into [`OutputEvent`]s.
#[derive(Debug, Default)]
pub struct OutputTranslator {
    /// Blocks by item id.
    blocks: HashMap<String, Block>,
    next_index: u32,
    /// The item of the previous text delta and its block (most deltas continue it).
    last_text: Option<(String, u32)>,
    terminal: bool,
}

impl OutputTranslator {
    /// A terminal event (completed, incomplete, failed) or the end of the body was seen.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    pub fn push(&mut self, event: StreamEvent<'_>, out: &mut impl OutputSink) {
        if self.terminal {
            return;
        }
        match event.kind.as_ref() {
            "response.created" | "response.in_progress" => {
                if let Some(response) = event.response {
                    out.event(OutputEvent::Started {
                        id: response.id,
                        model: response.model,
                    });
                }
            }
            "response.output_text.delta" => {
                if let (Some(id), Some(delta)) = (event.item_id, event.delta) {
                    let index = match &self.last_text {
                        Some((last, index)) if *last == id.as_ref() => *index,
                        _ => {
                            let index = self.block(&id, BlockKind::Text, None, None, out);
                            if let Some(block) = self.blocks.get_mut(id.as_ref()) {
                                block.text_streamed = true;
                            }
                            self.last_text = Some((id.into_owned(), index));
                            index
                        }
                    };
                    out.event(OutputEvent::TextDelta {
                        index,
                        text: &delta,
                    });
                }
            }
            "response.reasoning_summary_part.added" => {
                if let Some(id) = event.item_id {
                    let index = self.block(&id, BlockKind::Reasoning, None, None, out);
                    out.event(OutputEvent::ReasoningPart { index });
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(delta) = event.delta {
                    let index = match event.item_id {
                        Some(id) => self.block(&id, BlockKind::Reasoning, None, None, out),
                        None => self.next_index.saturating_sub(1),
                    };
                    out.event(OutputEvent::ReasoningDelta {
                        index,
                        text: &delta,
                    });
                }
            }
            "response.output_item.added" => {
                if let Some(item) = event.item {
                    self.item_added(*item, event.item_id.as_deref(), out);
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                if let (Some(id), Some(delta)) = (event.item_id, event.delta)
                    && let Some(block) = self.blocks.get_mut(id.as_ref())
                {
                    block.streamed += delta.len();
                    let index = block.index;
                    out.event(OutputEvent::ToolDelta {
                        index,
                        text: &delta,
                    });
                }
            }
            "response.output_item.done" => {
                if let Some(item) = event.item {
                    self.item_done(*item, out);
                }
            }
            "response.completed" => {
                self.close_all(out);
                out.event(OutputEvent::Finish {
                    ending: Ending::Completed,
                    usage: event.response.and_then(|r| r.usage),
                });
                self.terminal = true;
            }
            "response.incomplete" => {
                self.close_all(out);
                let response = event.response.unwrap_or_default();
                let ending = match response
                    .incomplete_details
                    .and_then(|d| d.reason)
                    .as_deref()
                {
                    Some("content_filter") => Ending::ContentFilter,
                    _ => Ending::Length,
                };
                out.event(OutputEvent::Finish {
                    ending,
                    usage: response.usage,
                });
                self.terminal = true;
            }
            "response.failed" => {
                self.close_all(out);
                let error = event.response.and_then(|r| r.error).unwrap_or_default();
                out.event(OutputEvent::Failed(Failure {
                    code: error.code,
                    message: error
                        .message
                        .unwrap_or_else(|| "The upstream response failed.".into()),
                    resets_at: error.resets_at,
                }));
                self.terminal = true;
            }
            _ => {}
        }
    }

    /// The body ended. Without a terminal event that is a failure (§3.2).
    pub fn eof(&mut self, out: &mut impl OutputSink) {
        if self.terminal {
            return;
        }
        self.close_all(out);
        out.event(OutputEvent::Failed(Failure {
            code: None,
            message: "The upstream stream closed before the response completed.".into(),
            resets_at: None,
        }));
        self.terminal = true;
    }

    /// The block of item `id`, begun now if it is new.
    fn block(
        &mut self,
        id: &str,
        kind: BlockKind,
        call_id: Option<String>,
        name: Option<String>,
        out: &mut impl OutputSink,
    ) -> u32 {
        if let Some(block) = self.blocks.get(id) {
            return block.index;
        }
        let index = self.next_index;
        self.next_index += 1;
        self.blocks.insert(
            id.to_owned(),
            Block {
                index,
                streamed: 0,
                text_streamed: false,
                open: true,
            },
        );
        out.event(OutputEvent::BlockStart {
            index,
            kind,
            call_id,
            name,
        });
        index
    }

    fn item_added(&mut self, item: OutputItem, item_id: Option<&str>, out: &mut impl OutputSink) {
        let (id, kind, call_id, name) = match item {
            OutputItem::FunctionCall {
                id, call_id, name, ..
            } => (id, BlockKind::Function, Some(call_id), Some(name)),
            OutputItem::CustomToolCall {
                id, call_id, name, ..
            } => (id, BlockKind::Custom, Some(call_id), Some(name)),
            OutputItem::Message { id, .. } => (id, BlockKind::Text, None, None),
            OutputItem::Reasoning { id, .. } => (id, BlockKind::Reasoning, None, None),
            OutputItem::Other => return,
        };
        let Some(key) = id.or_else(|| item_id.map(str::to_owned)) else {
            return;
        };
        self.block(&key, kind, call_id, name, out);
    }

    fn item_done(&mut self, item: OutputItem, out: &mut impl OutputSink) {
        match item {
            OutputItem::FunctionCall {
                id,
                call_id,
                name,
                arguments,
            } => self.tool_done(id, call_id, name, &arguments, BlockKind::Function, out),
            OutputItem::CustomToolCall {
                id,
                call_id,
                name,
                input,
            } => self.tool_done(id, call_id, name, &input, BlockKind::Custom, out),
            OutputItem::Message { id, content } => {
                let key = id.unwrap_or_default();
                let index = self.block(&key, BlockKind::Text, None, None, out);
                let streamed = self.blocks.get(&key).is_some_and(|b| b.text_streamed);
                for part in content {
                    match part {
                        // A message that never streamed deltas (only its done item) is sent whole.
                        OutputContent::OutputText { text } if !streamed => {
                            out.event(OutputEvent::TextDelta { index, text: &text });
                        }
                        OutputContent::Refusal { refusal } => {
                            out.event(OutputEvent::Refusal {
                                index,
                                text: refusal,
                            });
                        }
                        _ => {}
                    }
                }
                self.stop(&key, out);
            }
            OutputItem::Reasoning {
                id,
                encrypted_content,
                ..
            } => {
                if let Some(key) = id {
                    let index = self.block(&key, BlockKind::Reasoning, None, None, out);
                    let open = self.blocks.get(&key).is_some_and(|b| b.open);
                    if let Some(content) = encrypted_content.filter(|c| open && !c.is_empty()) {
                        out.event(OutputEvent::ReasoningEncrypted { index, content });
                    }
                    self.stop(&key, out);
                }
            }
            OutputItem::Other => {}
        }
    }

    /// The done item is authoritative: whatever of it the deltas did not carry is sent now.
    fn tool_done(
        &mut self,
        id: Option<String>,
        call_id: String,
        name: String,
        full: &str,
        kind: BlockKind,
        out: &mut impl OutputSink,
    ) {
        let key = id.unwrap_or_else(|| call_id.clone());
        let index = self.block(&key, kind, Some(call_id), Some(name), out);
        if let Some(block) = self.blocks.get_mut(&key) {
            let rest = full.get(block.streamed..).unwrap_or_default();
            if !rest.is_empty() {
                block.streamed = full.len();
                out.event(OutputEvent::ToolDelta { index, text: rest });
            }
        }
        self.stop(&key, out);
    }

    fn stop(&mut self, key: &str, out: &mut impl OutputSink) {
        if let Some(block) = self.blocks.get_mut(key)
            && block.open
        {
            block.open = false;
            out.event(OutputEvent::BlockStop { index: block.index });
        }
    }

    /// Blocks still open when the response ends are closed, in order.
    fn close_all(&mut self, out: &mut impl OutputSink) {
        let mut open: Vec<u32> = self
            .blocks
            .values_mut()
            .filter(|b| b.open)
            .map(|b| {
                b.open = false;
                b.index
            })
            .collect();
        open.sort_unstable();
        for index in open {
            out.event(OutputEvent::BlockStop { index });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(events: &[serde_json::Value]) -> (Vec<String>, OutputTranslator) {
        let mut t = OutputTranslator::default();
        let mut out: Vec<String> = Vec::new();
        for event in events {
            let data = event.to_string();
            StreamEvent::with(data.as_bytes(), |_| false, |e| t.push(e, &mut out));
        }
        (out, t)
    }

    /// A realistic response: reasoning with two summary parts, a message, a function call whose
    /// done item carries more than its deltas, then completion with usage.
    #[test]
    fn items_become_blocks_in_order_with_their_boundaries() {
        let events = [
            json!({"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5.5"}}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
            json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "summary_index": 0}),
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "delta": "Plan."}),
            json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "summary_index": 1}),
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "delta": "Act."}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"}}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Hi"}),
            json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "Hi"}]}}),
            json!({"type": "response.output_item.added", "output_index": 2, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": "{\"a\":"}),
            json!({"type": "response.output_item.done", "output_index": 2, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}"}}),
            json!({"type": "response.completed", "response": {"id": "resp_1", "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}}}),
        ];
        let (out, t) = run(&events);
        assert!(t.is_terminal());
        let expected = [
            r#"Started { id: Some("resp_1"), model: Some("gpt-5.5") }"#,
            "BlockStart { index: 0, kind: Reasoning, call_id: None, name: None }",
            "ReasoningPart { index: 0 }",
            r#"ReasoningDelta { index: 0, text: "Plan." }"#,
            "ReasoningPart { index: 0 }",
            r#"ReasoningDelta { index: 0, text: "Act." }"#,
            r#"ReasoningEncrypted { index: 0, content: "gAAA" }"#,
            "BlockStop { index: 0 }",
            "BlockStart { index: 1, kind: Text, call_id: None, name: None }",
            r#"TextDelta { index: 1, text: "Hi" }"#,
            "BlockStop { index: 1 }",
            r#"BlockStart { index: 2, kind: Function, call_id: Some("call_1"), name: Some("f") }"#,
            r#"ToolDelta { index: 2, text: "{\"a\":" }"#,
            r#"ToolDelta { index: 2, text: "1}" }"#,
            "BlockStop { index: 2 }",
        ];
        assert_eq!(&out[..expected.len()], expected);
        assert!(
            out[expected.len()]
                .starts_with("Finish { ending: Completed, usage: Some(Usage { input_tokens: 5")
        );
        assert_eq!(out.len(), expected.len() + 1);
    }

    #[test]
    fn a_done_item_alone_is_a_whole_block_and_open_blocks_close_at_the_end() {
        let events = [
            json!({"type": "response.output_item.done", "item": {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_9", "name": "apply_patch", "input": "*** Begin"}}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "msg_2", "content": [{"type": "output_text", "text": "whole"}, {"type": "refusal", "refusal": "no"}]}}),
            json!({"type": "response.output_text.delta", "item_id": "msg_3", "delta": "cut"}),
            json!({"type": "response.incomplete", "response": {"incomplete_details": {"reason": "max_output_tokens"}}}),
        ];
        let (out, _) = run(&events);
        assert_eq!(
            out,
            [
                r#"BlockStart { index: 0, kind: Custom, call_id: Some("call_9"), name: Some("apply_patch") }"#,
                r#"ToolDelta { index: 0, text: "*** Begin" }"#,
                "BlockStop { index: 0 }",
                "BlockStart { index: 1, kind: Text, call_id: None, name: None }",
                r#"TextDelta { index: 1, text: "whole" }"#,
                r#"Refusal { index: 1, text: "no" }"#,
                "BlockStop { index: 1 }",
                "BlockStart { index: 2, kind: Text, call_id: None, name: None }",
                r#"TextDelta { index: 2, text: "cut" }"#,
                "BlockStop { index: 2 }",
                "Finish { ending: Length, usage: None }",
            ]
        );
    }

    #[test]
    fn failures_and_truncated_streams_end_the_response() {
        let (out, _) = run(&[
            json!({"type": "response.failed", "response": {"error": {"code": "usage_limit_reached", "message": "limit", "resets_at": 1700000000}}}),
            json!({"type": "response.output_text.delta", "item_id": "m", "delta": "late"}),
        ]);
        assert_eq!(
            out,
            [
                r#"Failed(Failure { code: Some("usage_limit_reached"), message: "limit", resets_at: Some(1700000000) })"#
            ]
        );
        let (mut out, mut t) =
            run(&[json!({"type": "response.output_text.delta", "item_id": "m", "delta": "half"})]);
        t.eof(&mut out);
        assert!(
            out.last()
                .unwrap()
                .starts_with("Failed(Failure { code: None, message: \"The upstream stream closed")
        );
        assert_eq!(out[out.len() - 2], "BlockStop { index: 0 }");
    }
}
