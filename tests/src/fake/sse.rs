//! Renders a scripted reply as the ordered Responses event stream of §3.3.

use bytes::Bytes;
use serde_json::{Value, json};

use super::script::{Ending, OutputItem, Usage};
use super::util::{now, random_hex};

/// One SSE frame; `paced` frames (deltas) wait for the script's pace before they are sent.
#[derive(Debug, Clone)]
pub struct Frame {
    pub bytes: Bytes,
    pub paced: bool,
}

/// Everything needed to render one response.
pub struct Render<'a> {
    pub model: &'a str,
    pub summary_requested: bool,
    pub include_encrypted: bool,
    /// Mints account-bound encrypted content for an item id.
    pub encrypt: &'a dyn Fn(&str) -> String,
}

struct Builder {
    seq: u64,
    frames: Vec<Frame>,
}

impl Builder {
    fn event(&mut self, kind: &str, mut data: Value, paced: bool) {
        if let Value::Object(map) = &mut data {
            // `type` first, as the backend serialises it.
            let mut ordered = serde_json::Map::with_capacity(map.len() + 2);
            ordered.insert("type".into(), Value::from(kind));
            ordered.insert("sequence_number".into(), Value::from(self.seq));
            ordered.append(map);
            data = Value::Object(ordered);
        }
        self.seq += 1;
        let bytes = Bytes::from(format!("event: {kind}\ndata: {data}\n\n"));
        self.frames.push(Frame { bytes, paced });
    }
}

/// Item ids as the backend mints them.
fn item_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(24))
}

pub fn call_id() -> String {
    format!("call_{}", super::util::random_token::<18>())
}

/// Renders the items; `usage_for(output_chars, reasoning_chars, has_reasoning)` gives the usage.
pub fn render(
    render: &Render<'_>,
    response_id: &str,
    items: &[OutputItem],
    ending: &Ending,
    usage_for: &dyn Fn(usize, usize, bool) -> Usage,
) -> Vec<Frame> {
    let mut b = Builder {
        seq: 0,
        frames: Vec::new(),
    };
    let created_at = now();
    let response = |status: &str| {
        json!({
            "id": response_id, "object": "response", "created_at": created_at, "status": status,
            "model": render.model, "output": [], "usage": null,
        })
    };
    b.event(
        "response.created",
        json!({"response": response("in_progress")}),
        false,
    );
    b.event(
        "response.in_progress",
        json!({"response": response("in_progress")}),
        false,
    );

    let mut done_items = Vec::new();
    let (mut output_chars, mut reasoning_chars, mut has_reasoning) = (0, 0, false);
    for (output_index, item) in items.iter().enumerate() {
        let done = match item {
            OutputItem::Reasoning { summary } => {
                has_reasoning = true;
                let id = item_id("rs");
                b.event(
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": {"type": "reasoning", "id": id, "summary": []}}),
                    false,
                );
                let mut parts = Vec::new();
                // Summaries are only produced when the request asked for them.
                for (summary_index, deltas) in summary
                    .iter()
                    .enumerate()
                    .filter(|_| render.summary_requested)
                {
                    let text: String = deltas.concat();
                    reasoning_chars += text.chars().count();
                    let common = json!({"item_id": id, "output_index": output_index, "summary_index": summary_index});
                    b.event(
                        "response.reasoning_summary_part.added",
                        merge(
                            &common,
                            json!({"part": {"type": "summary_text", "text": ""}}),
                        ),
                        false,
                    );
                    for delta in deltas {
                        b.event(
                            "response.reasoning_summary_text.delta",
                            merge(&common, json!({"delta": delta})),
                            true,
                        );
                    }
                    b.event(
                        "response.reasoning_summary_text.done",
                        merge(&common, json!({"text": text})),
                        false,
                    );
                    b.event(
                        "response.reasoning_summary_part.done",
                        merge(
                            &common,
                            json!({"part": {"type": "summary_text", "text": text}}),
                        ),
                        false,
                    );
                    parts.push(json!({"type": "summary_text", "text": text}));
                }
                let encrypted = if render.include_encrypted {
                    Value::from((render.encrypt)(&id))
                } else {
                    Value::Null
                };
                json!({"type": "reasoning", "id": id, "summary": parts, "encrypted_content": encrypted})
            }
            OutputItem::Message { deltas } => {
                let id = item_id("msg");
                let text: String = deltas.concat();
                output_chars += text.chars().count();
                b.event("response.output_item.added", json!({"output_index": output_index, "item": {
                    "type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}), false);
                let common =
                    json!({"item_id": id, "output_index": output_index, "content_index": 0});
                b.event(
                    "response.content_part.added",
                    merge(
                        &common,
                        json!({"part": {"type": "output_text", "text": "", "annotations": []}}),
                    ),
                    false,
                );
                for delta in deltas {
                    b.event(
                        "response.output_text.delta",
                        merge(&common, json!({"delta": delta, "logprobs": []})),
                        true,
                    );
                }
                b.event(
                    "response.output_text.done",
                    merge(&common, json!({"text": text, "logprobs": []})),
                    false,
                );
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                b.event(
                    "response.content_part.done",
                    merge(&common, json!({"part": part})),
                    false,
                );
                json!({"type": "message", "id": id, "status": "completed", "role": "assistant",
                       "content": [part], "phase": "final_answer"})
            }
            OutputItem::FunctionCall {
                name,
                call_id: given,
                argument_deltas,
            } => {
                let id = item_id("fc");
                let call = given.clone().unwrap_or_else(call_id);
                let arguments: String = argument_deltas.concat();
                output_chars += arguments.chars().count();
                b.event(
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": {
                    "type": "function_call", "id": id, "status": "in_progress", "arguments": "",
                    "call_id": call, "name": name}}),
                    false,
                );
                let common = json!({"item_id": id, "output_index": output_index});
                for delta in argument_deltas {
                    b.event(
                        "response.function_call_arguments.delta",
                        merge(&common, json!({"delta": delta})),
                        true,
                    );
                }
                b.event(
                    "response.function_call_arguments.done",
                    merge(&common, json!({"arguments": arguments})),
                    false,
                );
                json!({"type": "function_call", "id": id, "status": "completed", "arguments": arguments,
                       "call_id": call, "name": name})
            }
            OutputItem::CustomToolCall {
                name,
                call_id: given,
                input_deltas,
            } => {
                let id = item_id("ctc");
                let call = given.clone().unwrap_or_else(call_id);
                let input: String = input_deltas.concat();
                output_chars += input.chars().count();
                b.event(
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": {
                    "type": "custom_tool_call", "id": id, "status": "in_progress", "call_id": call,
                    "name": name, "input": ""}}),
                    false,
                );
                let common = json!({"item_id": id, "call_id": call, "output_index": output_index});
                for delta in input_deltas {
                    b.event(
                        "response.custom_tool_call_input.delta",
                        merge(&common, json!({"delta": delta})),
                        true,
                    );
                }
                b.event(
                    "response.custom_tool_call_input.done",
                    merge(&common, json!({"input": input})),
                    false,
                );
                json!({"type": "custom_tool_call", "id": id, "status": "completed", "call_id": call,
                       "name": name, "input": input})
            }
            OutputItem::ImageGenerationCall {
                result,
                revised_prompt,
            } => {
                let id = item_id("ig");
                b.event(
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": {
                    "type": "image_generation_call", "id": id, "status": "in_progress"}}),
                    false,
                );
                let common = json!({"item_id": id, "output_index": output_index});
                for stage in ["in_progress", "generating", "completed"] {
                    b.event(
                        &format!("response.image_generation_call.{stage}"),
                        common.clone(),
                        false,
                    );
                }
                json!({"type": "image_generation_call", "id": id, "status": "completed",
                       "revised_prompt": revised_prompt, "result": result})
            }
        };
        b.event(
            "response.output_item.done",
            json!({"output_index": output_index, "item": done}),
            false,
        );
        done_items.push(done);
    }

    let usage = usage_for(output_chars, reasoning_chars, has_reasoning);
    let usage_json = json!({
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    });
    let mut final_response = |status: &str| {
        let mut r = response(status);
        r["output"] = Value::Array(std::mem::take(&mut done_items));
        r
    };
    match ending {
        Ending::Completed => {
            let mut r = final_response("completed");
            r["usage"] = usage_json;
            r["end_turn"] = Value::Bool(true);
            b.event("response.completed", json!({"response": r}), false);
        }
        Ending::Failed { code, message } => {
            let mut r = final_response("failed");
            r["error"] = json!({"code": code, "message": message});
            b.event("response.failed", json!({"response": r}), false);
        }
        Ending::Incomplete { reason } => {
            let mut r = final_response("incomplete");
            r["incomplete_details"] = json!({"reason": reason});
            r["usage"] = usage_json;
            b.event("response.incomplete", json!({"response": r}), false);
        }
        Ending::NoTerminal | Ending::Disconnect { .. } | Ending::Stall { .. } => {}
    }
    b.frames
}

fn merge(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Value::Object(o), Value::Object(e)) = (&mut out, extra) {
        o.extend(e);
    }
    out
}
