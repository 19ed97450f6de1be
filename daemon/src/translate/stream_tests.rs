use serde_json::{Value, json};

use super::*;

fn ev(value: Value) -> StreamEvent<'static> {
    // A `Value` lends nothing, so every string of the event is owned.
    serde::Deserialize::deserialize(value).unwrap()
}

fn run(mode: ReasoningOutput, stop: &[&str], events: &[Value]) -> (Vec<Emit>, StreamTranslator) {
    let stop: Vec<String> = stop.iter().map(|s| (*s).to_owned()).collect();
    let mut t = StreamTranslator::new(mode, &stop);
    let mut out = Vec::new();
    // The non-streamed path: the same events straight into an assembler, which must come to
    // what assembling the streamed emits comes to.
    let mut direct = StreamTranslator::new(mode, &stop);
    let mut assembled = Assembler::default();
    for e in events {
        t.push(ev(e.clone()), &mut out);
        direct.push(ev(e.clone()), &mut assembled);
    }
    assert_eq!(assembled, assemble(&out));
    // The non-streamed path as the daemon runs it: the wire bytes, deltas held for their done
    // item. Both told the body ended, as a completion always is.
    let mut held_translator = StreamTranslator::new(mode, &stop);
    let mut held_assembled = Assembler::default();
    crate::translate::held::tests::assemble_held(
        &events.iter().map(wire).collect::<Vec<_>>(),
        &mut held_translator,
        &mut held_assembled,
        usize::MAX,
    );
    direct.eof(&mut assembled);
    assert_eq!(held_assembled, assembled, "held deltas changed the answer");
    (out, t)
}

/// The event as the upstream writes it: `type` first, no spaces.
pub(crate) fn wire(event: &Value) -> bytes::Bytes {
    let mut fields = event.as_object().expect("an event is an object").clone();
    let kind = fields.remove("type").expect("an event has a type");
    let rest = serde_json::to_string(&Value::Object(fields)).unwrap();
    let rest = rest.strip_prefix('{').unwrap();
    let comma = if rest == "}" { "" } else { "," };
    bytes::Bytes::from(format!("{{\"type\":{kind}{comma}{rest}"))
}

fn assemble(out: &[Emit]) -> Assembler {
    let mut a = Assembler::default();
    for e in out {
        a.apply(e);
    }
    a
}

fn created() -> Value {
    json!({"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5.5", "status": "in_progress"}})
}

fn text_delta(item: &str, delta: &str) -> Value {
    json!({"type": "response.output_text.delta", "item_id": item, "output_index": 1, "content_index": 0, "delta": delta})
}

fn summary_part(item: &str, index: u32) -> Value {
    json!({"type": "response.reasoning_summary_part.added", "item_id": item, "summary_index": index, "part": {"type": "summary_text", "text": ""}})
}

fn summary_delta(item: &str, index: u32, delta: &str) -> Value {
    json!({"type": "response.reasoning_summary_text.delta", "item_id": item, "summary_index": index, "delta": delta})
}

fn completed(input: u64, cached: u64, output: u64, reasoning: u64) -> Value {
    json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": [],
        "usage": {"input_tokens": input, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": output,
                  "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": input + output}}})
}

fn reasoning_then_text() -> Vec<Value> {
    vec![
        created(),
        json!({"type": "response.in_progress", "response": {"id": "resp_1"}}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        summary_part("rs_1", 0),
        summary_delta("rs_1", 0, "**Plan** "),
        summary_delta("rs_1", 0, "look"),
        summary_part("rs_1", 1),
        summary_delta("rs_1", 1, "then answer"),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"}}),
        json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
        text_delta("msg_1", "Hel"),
        text_delta("msg_1", "lo \u{e9}\u{1f600}"),
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "message", "id": "msg_1", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello \u{e9}\u{1f600}", "annotations": []}]}}),
        completed(2310, 2048, 95, 64),
    ]
}

fn contents(out: &[Emit]) -> Vec<String> {
    out.iter()
        .filter_map(|e| match e {
            Emit::Delta(Delta {
                content: Some(c), ..
            }) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn reasoning_content_then_text_then_finish_and_usage() {
    let (out, t) = run(
        ReasoningOutput::ReasoningContent,
        &[],
        &reasoning_then_text(),
    );
    assert_eq!(t.response_id.as_deref(), Some("resp_1"));
    assert!(t.is_done());
    let a = assemble(&out);
    assert_eq!(a.reasoning, "**Plan** look\n\nthen answer");
    assert_eq!(
        a.content, "Hello \u{e9}\u{1f600}",
        "done item does not repeat streamed text"
    );
    // Each upstream delta is its own client delta: no batching.
    assert_eq!(contents(&out), ["Hel", "lo \u{e9}\u{1f600}"]);
    assert_eq!(a.finish, Some(FinishReason::Stop));
    let usage = a.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (2310, 95, 2405)
    );
    assert_eq!(usage.prompt_tokens_details.cached_tokens, 2048);
    assert_eq!(usage.completion_tokens_details.reasoning_tokens, 64);
}

#[test]
fn think_tags_wrap_reasoning_in_content() {
    let (out, _) = run(ReasoningOutput::ThinkTags, &[], &reasoning_then_text());
    let a = assemble(&out);
    assert_eq!(
        a.content,
        "<think>\n**Plan** look\n\nthen answer\n</think>\n\nHello \u{e9}\u{1f600}"
    );
    assert!(a.reasoning.is_empty());
}

#[test]
fn reasoning_can_be_dropped() {
    let (out, _) = run(ReasoningOutput::None, &[], &reasoning_then_text());
    let a = assemble(&out);
    assert!(a.reasoning.is_empty());
    assert_eq!(a.content, "Hello \u{e9}\u{1f600}");
}

#[test]
fn parallel_function_calls_stream_like_openai() {
    let events = vec![
        created(),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0, "delta": "{\"city\":"}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0, "delta": "\"Paris\"}"}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 0, "arguments": "{\"city\":\"Paris\"}"}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather", "arguments": "{\"city\":\"Paris\"}"}}),
        json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "weather", "arguments": ""}}),
        // Arguments only in the done item: still delivered.
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "weather", "arguments": "{\"city\":\"Rome\"}"}}),
        completed(10, 0, 5, 0),
    ];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    // First chunk of a call: index, id, type, name and empty arguments.
    let Emit::Delta(first) = &out[0] else {
        panic!("{out:?}")
    };
    let call = &first.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        (call.index, call.id.as_deref(), call.kind),
        (0, Some("call_a"), Some("function"))
    );
    assert_eq!(
        call.function.as_ref().unwrap().name.as_deref(),
        Some("weather")
    );
    assert_eq!(call.function.as_ref().unwrap().arguments, "");
    // Then argument deltas without id or name.
    let Emit::Delta(second) = &out[1] else {
        panic!()
    };
    let call = &second.tool_calls.as_ref().unwrap()[0];
    assert!(call.id.is_none() && call.function.as_ref().unwrap().name.is_none());

    let a = assemble(&out);
    assert_eq!(a.finish, Some(FinishReason::ToolCalls));
    assert_eq!(
        a.tool_calls(),
        vec![
            json!({"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}),
            json!({"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}),
        ]
    );
}

#[test]
fn a_call_seen_only_in_its_done_item_is_sent_whole() {
    let events = vec![
        created(),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "function_call", "id": "fc_9", "call_id": "call_z", "name": "f", "arguments": "{}"}}),
        completed(1, 0, 1, 0),
    ];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    assert_eq!(
        assemble(&out).tool_calls(),
        vec![
            json!({"id": "call_z", "type": "function", "function": {"name": "f", "arguments": "{}"}})
        ]
    );
}

#[test]
fn custom_tool_calls_stream_their_input() {
    let events = vec![
        created(),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_p", "name": "apply_patch", "input": ""}}),
        json!({"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "call_id": "call_p", "delta": "*** Begin"}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_p", "name": "apply_patch", "input": "*** Begin Patch"}}),
        completed(1, 0, 1, 0),
    ];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    let a = assemble(&out);
    assert_eq!(
        a.tool_calls(),
        vec![
            json!({"id": "call_p", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}})
        ]
    );
    assert_eq!(a.finish, Some(FinishReason::ToolCalls));
}

#[test]
fn a_message_without_deltas_is_sent_from_its_done_item() {
    let events = vec![
        created(),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "message", "id": "msg_7", "role": "assistant",
            "content": [{"type": "output_text", "text": "fixture hello"}]}}),
        json!({"type": "response.completed", "response": {"id": "resp_1", "output": []}}),
    ];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    let a = assemble(&out);
    assert_eq!(a.content, "fixture hello");
    assert_eq!(a.finish, Some(FinishReason::Stop));
    assert!(a.usage.is_none(), "usage is optional upstream");
}

#[test]
fn refusals_reach_the_refusal_field() {
    let events = vec![
        created(),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "message", "id": "m", "content": [{"type": "refusal", "refusal": "I can't help with that."}]}}),
        completed(1, 0, 1, 0),
    ];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    assert_eq!(
        assemble(&out).refusal.as_deref(),
        Some("I can't help with that.")
    );
}

#[test]
fn stop_sequences_split_across_deltas_cut_the_content() {
    let events = vec![
        created(),
        text_delta("m", "Hello E"),
        text_delta("m", "ND and more"),
        text_delta("m", "ignored"),
        completed(5, 0, 9, 0),
    ];
    let (out, t) = run(ReasoningOutput::ReasoningContent, &["END"], &events);
    assert!(t.stopped_by_sequence() && t.is_done());
    let a = assemble(&out);
    assert_eq!(a.content, "Hello ");
    assert_eq!(a.finish, Some(FinishReason::Stop));
    assert_eq!(
        a.usage.map(|u| u.completion_tokens),
        Some(9),
        "usage still read after the stop"
    );
    // Held-back text that turned out not to be a stop is released.
    let events = vec![
        created(),
        text_delta("m", "price: E"),
        text_delta("m", "UR 5"),
        completed(1, 0, 1, 0),
    ];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &["END"], &events);
    assert_eq!(assemble(&out).content, "price: EUR 5");
}

#[test]
fn stop_matcher_holds_only_possible_prefixes() {
    let mut m = StopMatcher::new(&["\n\n".into(), "STOP".into()]);
    assert_eq!(m.push("abc\n"), ("abc".to_owned(), false));
    assert_eq!(m.push("x"), ("\nx".to_owned(), false));
    assert_eq!(m.push("ST"), (String::new(), false));
    assert_eq!(m.push("OP!"), (String::new(), true));
    let mut m = StopMatcher::new(&["é!".into()]);
    assert_eq!(m.push("caf\u{e9}"), ("caf".to_owned(), false));
    assert_eq!(m.flush(), "\u{e9}");
}

#[test]
fn incomplete_responses_finish_with_length_or_content_filter() {
    for (reason, finish) in [
        ("max_output_tokens", FinishReason::Length),
        ("content_filter", FinishReason::ContentFilter),
    ] {
        let events = vec![
            created(),
            text_delta("m", "partial"),
            json!({"type": "response.incomplete", "response": {"id": "resp_1", "status": "incomplete", "incomplete_details": {"reason": reason}}}),
        ];
        let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
        assert_eq!(assemble(&out).finish, Some(finish));
    }
}

#[test]
fn failures_and_truncated_streams_are_reported() {
    let events = vec![
        created(),
        json!({"type": "response.failed", "response": {"id": "resp_1", "status": "failed",
        "error": {"code": "context_length_exceeded", "message": "Your input exceeds the context window of this model."}}}),
    ];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    assert_eq!(
        out,
        vec![Emit::Failed(Failure {
            code: Some("context_length_exceeded".into()),
            message: "Your input exceeds the context window of this model.".into(),
            resets_at: None,
        })]
    );

    let (mut out, mut t) = run(
        ReasoningOutput::ReasoningContent,
        &[],
        &[created(), text_delta("m", "half")],
    );
    t.eof(&mut out);
    assert!(matches!(out.last(), Some(Emit::Failed(f)) if f.message.contains("closed before")));
    // After a terminal event the end of the body is normal.
    let (mut out, mut t) = run(
        ReasoningOutput::ReasoningContent,
        &[],
        &reasoning_then_text(),
    );
    let before = out.len();
    t.eof(&mut out);
    assert_eq!(out.len(), before);
}

#[test]
fn unknown_events_and_items_are_ignored() {
    let events = vec![
        created(),
        json!({"type": "response.metadata", "headers": {"openai-model": "gpt-5.5"}}),
        json!({"type": "response.output_item.added", "item": {"type": "web_search_call", "id": "ws_1", "status": "in_progress"}}),
        json!({"type": "codex.rate_limits", "rate_limits": {}}),
        text_delta("m", "ok"),
        completed(1, 0, 1, 0),
    ];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    assert_eq!(assemble(&out).content, "ok");
}

#[test]
fn very_long_arguments_arrive_whole() {
    let arguments = format!("{{\"blob\":\"{}\"}}", "x\u{e9}".repeat(300_000));
    let mut events = vec![
        created(),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "put", "arguments": ""}}),
    ];
    // Deltas split on character boundaries, as the backend sends valid JSON strings.
    let chars: Vec<char> = arguments.chars().collect();
    for piece in chars.chunks(4096) {
        events.push(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": piece.iter().collect::<String>()}));
    }
    events.push(json!({"type": "response.output_item.done", "item": {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "put", "arguments": arguments}}));
    events.push(completed(1, 0, 1, 0));
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    let a = assemble(&out);
    assert_eq!(
        a.tool_calls()[0]["function"]["arguments"]
            .as_str()
            .unwrap()
            .len(),
        arguments.len()
    );
}

#[test]
fn empty_deltas_and_an_empty_answer_are_harmless() {
    let events = vec![created(), text_delta("m", ""), completed(1, 0, 0, 0)];
    let (out, _) = run(ReasoningOutput::ReasoningContent, &[], &events);
    let a = assemble(&out);
    assert_eq!(a.content, "");
    assert_eq!(a.finish, Some(FinishReason::Stop));
}
