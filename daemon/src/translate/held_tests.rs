use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::config::ReasoningOutput;
use crate::translate::stream::Assembler;
use crate::translate::stream::tests::wire;
use crate::upstream::sse::SseDecoder;

/// Runs `events` (wire bytes) through a [`Held`] of `limit` bytes as `complete` does, then the
/// end of the body.
pub(crate) fn assemble_held(
    events: &[Bytes],
    translator: &mut StreamTranslator,
    out: &mut Assembler,
    limit: usize,
) {
    let mut held = Held::with_limit(limit);
    for data in events {
        if held.takes(data) {
            held.hold(data.clone(), translator, out);
        } else {
            held.push(data, translator, out);
        }
    }
    held.eof(translator, out);
}

/// Every event parsed and translated as it comes (the streamed path's reading), assembled.
fn assemble_eager(events: &[Bytes]) -> Assembler {
    let mut translator = StreamTranslator::new(ReasoningOutput::default(), &[]);
    let mut out = Assembler::default();
    for data in events {
        StreamEvent::with(data, StreamTranslator::ignores, |event| {
            translator.push(event, &mut out);
        });
    }
    translator.eof(&mut out);
    out
}

/// Assembled through a [`Held`] of `limit` bytes, as a completion is.
fn assemble_with(events: &[Bytes], limit: usize) -> Assembler {
    let mut translator = StreamTranslator::new(ReasoningOutput::default(), &[]);
    let mut out = Assembler::default();
    assemble_held(events, &mut translator, &mut out, limit);
    out
}

fn message_added(id: &str, index: u32) -> Value {
    json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": index,
           "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}})
}

fn text_delta(id: &str, seq: u32, delta: &str) -> Value {
    json!({"type": "response.output_text.delta", "sequence_number": seq, "item_id": id,
           "output_index": 0, "content_index": 0, "delta": delta, "logprobs": []})
}

fn message_done(id: Option<&str>, text: &str) -> Value {
    let mut item = json!({"type": "message", "status": "completed", "role": "assistant",
                          "content": [{"type": "output_text", "text": text, "annotations": []}]});
    if let Some(id) = id {
        item["id"] = json!(id);
    }
    json!({"type": "response.output_item.done", "output_index": 0, "item": item})
}

fn completed() -> Value {
    json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": [],
           "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}}})
}

fn message(id: &str, deltas: &[&str]) -> Vec<Value> {
    let mut events = vec![message_added(id, 0)];
    for (seq, delta) in deltas.iter().enumerate() {
        events.push(text_delta(id, seq as u32 + 3, delta));
    }
    events
        .push(json!({"type": "response.output_text.done", "item_id": id, "text": deltas.concat()}));
    events.push(message_done(Some(id), &deltas.concat()));
    events
}

fn bytes(events: &[Value]) -> Vec<Bytes> {
    events.iter().map(wire).collect()
}

/// Counts the deltas a [`Held`] left unparsed: the events it held and then dropped.
fn dropped(events: &[Bytes]) -> usize {
    let mut translator = StreamTranslator::new(ReasoningOutput::default(), &[]);
    let mut out = Assembler::default();
    let mut held = Held::default();
    let mut dropped = 0;
    for data in events {
        if held.takes(data) {
            held.hold(data.clone(), &mut translator, &mut out);
        } else {
            let before = held.events.len();
            held.push(data, &mut translator, &mut out);
            if !held.eager {
                dropped += before - held.events.len();
            }
        }
    }
    held.eof(&mut translator, &mut out);
    dropped
}

#[test]
fn a_message_is_read_from_its_done_item_and_its_deltas_are_never_parsed() {
    let mut events = message("msg_1", &["Hel", "lo \"world\"", " ✓"]);
    events.push(completed());
    let events = bytes(&events);
    let held = assemble_with(&events, HELD_MAX);
    assert_eq!(held.content, "Hello \"world\" ✓");
    assert_eq!(held, assemble_eager(&events));
    assert_eq!(dropped(&events), 3);
}

#[test]
fn deltas_without_their_done_item_are_read_before_what_follows() {
    // A message cut short: deltas, then the terminal event, or the end of the body.
    let mut cut = message("msg_1", &["partial ", "answer"]);
    cut.retain(|e| e["type"] != "response.output_item.done");
    let mut incomplete = cut.clone();
    incomplete.push(
        json!({"type": "response.incomplete", "response": {"id": "resp_1",
        "incomplete_details": {"reason": "max_output_tokens"}}}),
    );
    for events in [incomplete, cut] {
        let events = bytes(&events);
        let held = assemble_with(&events, HELD_MAX);
        assert_eq!(held.content, "partial answer");
        assert_eq!(held, assemble_eager(&events));
    }
}

#[test]
fn any_other_event_among_the_deltas_has_them_read_first() {
    // An annotation (not read by the translation) and a tool call between a message's deltas
    // and its done item: the text keeps its place, and the done item does not repeat it.
    let mut events = message("msg_1", &["one ", "two"]);
    let done = events.pop().unwrap();
    events.push(
        json!({"type": "response.output_text.annotation.added", "item_id": "msg_1",
                       "annotation": {"type": "url_citation", "url": "https://example.com"}}),
    );
    events.push(done);
    events.extend(message("msg_2", &["three"]));
    events.push(completed());
    let events = bytes(&events);
    let held = assemble_with(&events, HELD_MAX);
    assert_eq!(held.content, "one twothree");
    assert_eq!(held, assemble_eager(&events));
}

#[test]
fn deltas_of_interleaved_items_are_not_dropped_for_the_wrong_done() {
    let mut events = vec![message_added("msg_a", 0), message_added("msg_b", 1)];
    events.push(text_delta("msg_a", 3, "A1 "));
    events.push(text_delta("msg_b", 4, "B1 "));
    events.push(text_delta("msg_a", 5, "A2 "));
    events.push(message_done(Some("msg_a"), "A1 A2 "));
    events.push(text_delta("msg_b", 6, "B2 "));
    events.push(message_done(Some("msg_b"), "B1 B2 "));
    events.push(completed());
    let events = bytes(&events);
    let held = assemble_with(&events, HELD_MAX);
    assert_eq!(held, assemble_eager(&events));
    assert_eq!(held.content, "A1 B1 A2 B2 ");
}

#[test]
fn a_done_item_without_an_id_or_of_another_item_does_not_settle_them() {
    for done in [
        message_done(None, "x"),
        message_done(Some("msg_other"), "x"),
    ] {
        let mut events = vec![message_added("msg_1", 0), text_delta("msg_1", 3, "x")];
        events.push(done);
        events.push(completed());
        let events = bytes(&events);
        let held = assemble_with(&events, HELD_MAX);
        assert_eq!(held, assemble_eager(&events));
    }
}

#[test]
fn tool_arguments_come_whole_from_the_done_item() {
    let events = vec![
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0, "delta": "{\"cmd\":"}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0, "delta": "\"ls\"}"}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "arguments": "{\"cmd\":\"ls\"}"}),
        json!({"type": "response.output_item.done", "output_index": 0,
               "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"}}),
        json!({"type": "response.output_item.added", "output_index": 1,
               "item": {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_2", "name": "apply_patch", "input": ""}}),
        json!({"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 1, "delta": "*** Begin"}),
        json!({"type": "response.custom_tool_call_input.delta", "call_id": "call_2", "output_index": 1, "delta": " Patch"}),
        json!({"type": "response.output_item.done", "output_index": 1,
               "item": {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"}}),
        completed(),
    ];
    let events = bytes(&events);
    assert_eq!(assemble_with(&events, HELD_MAX), assemble_eager(&events));
    // The function call's two deltas were dropped; the custom call's second names no item_id,
    // so its deltas were read.
    assert_eq!(dropped(&events), 2);
}

#[test]
fn past_the_limit_deltas_are_read_as_they_come() {
    let deltas: Vec<String> = (0..50).map(|i| format!("d{i:02} ")).collect();
    let deltas: Vec<&str> = deltas.iter().map(String::as_str).collect();
    let mut events = message("msg_1", &deltas);
    events.push(completed());
    let events = bytes(&events);
    let eager = assemble_eager(&events);
    for limit in [0, 100, 1000, 5000, usize::MAX] {
        assert_eq!(assemble_with(&events, limit), eager, "limit {limit}");
    }
}

#[test]
fn deltas_spelled_otherwise_are_read_at_once() {
    // Spaces, another key first, an escaped item id, an unknown type: never held.
    let odd: [&[u8]; 4] = [
        br#"{ "type": "response.output_text.delta", "item_id": "msg_1", "delta": "a"}"#,
        br#"{"item_id":"msg_1","type":"response.output_text.delta","delta":"b"}"#,
        br#"{"type":"response.output_text.delta_v2","item_id":"msg_1","delta":"c"}"#,
        br#"{"type":"response.output_text\u002edelta","item_id":"msg_1","delta":"d"}"#,
    ];
    let held = Held::default();
    for data in odd {
        assert!(!held.takes(data), "{}", String::from_utf8_lossy(data));
    }
    assert!(held.takes(br#"{"type":"response.output_text.delta","item_id":"m","delta":"x"}"#));
}

#[test]
fn the_item_id_is_found_wherever_it_is() {
    let cases: [(&[u8], Option<&str>); 7] = [
        (br#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","delta":"x"}"#, Some("msg_1")),
        (br#"{"type":"response.output_text.delta","item_id":"msg_2","delta":"x"}"#, Some("msg_2")),
        (br#"{"type":"response.output_text.delta","output_index":0,"content_index":0,"sequence_number":9,"item_id":"m3"}"#, Some("m3")),
        (br#"{"type":"response.output_text.delta","delta":"x","logprobs":[],"item_id":"late"}"#, Some("late")),
        (br#"{"type":"response.output_text.delta","item_id":"esc\"aped","delta":"x"}"#, None),
        (br#"{"type":"response.output_text.delta","delta":"x"}"#, None),
        (br#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"open"#, None),
    ];
    for (data, expected) in cases {
        let found = item_id(data)
            .and_then(|start| string_at(data, start))
            .map(|range| std::str::from_utf8(&data[range]).unwrap());
        assert_eq!(found, expected, "{}", String::from_utf8_lossy(data));
    }
}

#[test]
fn held_events_come_from_the_decoder_as_the_daemon_takes_them() {
    // Through the SSE decoder, split at every byte, with the event held as shared bytes.
    let mut events = message("msg_1", &["a", "b\nc", "d"]);
    events.push(completed());
    let mut stream = String::new();
    for event in &events {
        let data = wire(event);
        stream.push_str(&format!(
            "event: {}\ndata: {}\n\n",
            event["type"].as_str().unwrap(),
            std::str::from_utf8(&data).unwrap()
        ));
    }
    for cut in 0..stream.len() {
        let mut decoder = SseDecoder::default();
        let mut translator = StreamTranslator::new(ReasoningOutput::default(), &[]);
        let mut out = Assembler::default();
        let mut held = Held::default();
        for part in [&stream.as_bytes()[..cut], &stream.as_bytes()[cut..]] {
            decoder.feed(Bytes::copy_from_slice(part)).unwrap();
            while decoder.advance() {
                if held.takes(decoder.event()) {
                    held.hold(decoder.event_bytes(), &mut translator, &mut out);
                } else {
                    held.push(decoder.event(), &mut translator, &mut out);
                }
            }
        }
        held.eof(&mut translator, &mut out);
        assert_eq!(out.content, "ab\ncd", "cut at {cut}");
        assert!(out.failure.is_none());
    }
}

#[test]
fn an_item_id_that_only_starts_like_the_held_one_is_another_item() {
    let mut events = vec![message_added("msg_a", 0), message_added("msg_ab", 1)];
    events.push(text_delta("msg_a", 3, "A "));
    events.push(text_delta("msg_ab", 4, "AB "));
    events.push(message_done(Some("msg_a"), "A "));
    // msg_ab never finishes: its delta is all there is of it.
    events.push(
        json!({"type": "response.incomplete", "response": {"id": "resp_1",
        "incomplete_details": {"reason": "max_output_tokens"}}}),
    );
    let events = bytes(&events);
    let held = assemble_with(&events, HELD_MAX);
    assert_eq!(held.content, "A AB ");
    assert_eq!(held, assemble_eager(&events));
}

mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::{assemble_eager, assemble_with, bytes, completed, message_added, text_delta};
    use crate::translate::held::HELD_MAX;

    /// One output item's events, in order, as the backend sends them.
    #[derive(Debug, Clone)]
    struct Item {
        tool: bool,
        deltas: Vec<String>,
        /// Its `…done` events (`output_text.done` / `arguments.done`, then the done item).
        done: bool,
    }

    /// Item ids, unique within a response as the backend's are; some share a prefix, one
    /// holds an escape.
    const IDS: [&str; 3] = ["a", "ab", "\"q"];

    impl Item {
        fn events(&self, index: u32) -> Vec<Value> {
            let whole = self.deltas.concat();
            let prefix = if self.tool { "fc_" } else { "msg_" };
            let id = format!("{prefix}{}", IDS[index as usize % IDS.len()]);
            let id = id.as_str();
            let mut events = Vec::new();
            if self.tool {
                events.push(json!({"type": "response.output_item.added", "output_index": index,
                    "item": {"type": "function_call", "id": id, "call_id": format!("call_{index}"), "name": "shell", "arguments": ""}}));
                for delta in &self.deltas {
                    events.push(json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": index, "delta": delta}));
                }
                if self.done {
                    events.push(json!({"type": "response.function_call_arguments.done", "item_id": id, "arguments": whole}));
                    events.push(json!({"type": "response.output_item.done", "output_index": index,
                        "item": {"type": "function_call", "id": id, "call_id": format!("call_{index}"), "name": "shell", "arguments": whole}}));
                }
            } else {
                events.push(message_added(id, index));
                for (seq, delta) in self.deltas.iter().enumerate() {
                    events.push(text_delta(id, seq as u32 + 3, delta));
                }
                if self.done {
                    events.push(
                        json!({"type": "response.output_text.done", "item_id": id, "text": whole}),
                    );
                    events.push(json!({"type": "response.output_item.done", "output_index": index,
                        "item": {"type": "message", "id": id, "status": "completed", "role": "assistant",
                                 "content": [{"type": "output_text", "text": whole, "annotations": []}]}}));
                }
            }
            events
        }
    }

    fn item() -> impl Strategy<Value = Item> {
        let delta = prop::sample::select(vec![
            "Hel",
            "lo ",
            "\"q\"",
            "\\",
            "é",
            "😀",
            "",
            "{\"cmd\":",
            "\"ls\"}",
            "\n",
        ])
        .prop_map(str::to_owned);
        (
            any::<bool>(),
            prop::collection::vec(delta, 0..6),
            prop::bool::weighted(0.8),
        )
            .prop_map(|(tool, deltas, done)| Item { tool, deltas, done })
    }

    /// Events the translation does not read, dropped in between.
    fn other() -> impl Strategy<Value = Value> {
        prop::sample::select(vec![
            json!({"type": "response.output_text.annotation.added", "item_id": "msg_a", "annotation": {"type": "url_citation"}}),
            json!({"type": "response.in_progress", "response": {"id": "resp_1"}}),
            json!({"type": "response.content_part.done", "item_id": "msg_a", "part": {"type": "output_text", "text": "x"}}),
            json!({"type": "codex.rate_limits", "rate_limits": {}}),
            json!({"type": "response.future_event", "item_id": "msg_a"}),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1024,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever the order of items' events, whether their done items come, what else is
        /// between and how the stream ends: holding deltas until their done item assembles the
        /// same answer as reading every event, at every hold limit.
        #[test]
        fn held_and_eager_readings_assemble_the_same_answer(
            items in prop::collection::vec(item(), 1..4),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
            others in prop::collection::vec((any::<prop::sample::Index>(), other()), 0..3),
            ending in 0..3u8,
            limit in prop::sample::select(vec![0usize, 1, 64, 300, HELD_MAX]),
        ) {
            // The items' events, interleaved in a random order that keeps each item's own.
            let mut queues: Vec<std::collections::VecDeque<Value>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| item.events(i as u32).into())
                .collect();
            let mut events = Vec::new();
            let mut picks = order.iter();
            while queues.iter().any(|q| !q.is_empty()) {
                let live: Vec<usize> = (0..queues.len()).filter(|i| !queues[*i].is_empty()).collect();
                let at = picks.next().map_or(0, |p| p.index(live.len()));
                if let Some(event) = queues[live[at]].pop_front() {
                    events.push(event);
                }
            }
            for (at, event) in others {
                let at = at.index(events.len() + 1);
                events.insert(at, event);
            }
            match ending {
                0 => events.push(completed()),
                1 => events.push(json!({"type": "response.incomplete", "response": {"id": "resp_1",
                    "incomplete_details": {"reason": "max_output_tokens"}}})),
                _ => {}
            }
            let events = bytes(&events);
            prop_assert_eq!(assemble_with(&events, limit), assemble_eager(&events));
        }
    }
}
