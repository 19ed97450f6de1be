//! The Ollama translation, rule by rule, from requests shaped like the `ollama` Python
//! library's and Open WebUI's, and the rendering of a realistic answer.

use serde_json::{Value, json};

use super::render::{Mode, Surface, Writer};
use super::{OllamaChat, OllamaGenerate, Thinking, chat, generate, media_type, think, untagged};
use crate::config::ModelConfig;
use crate::translate::fixtures::{PNG, efforts, gpt_5_5};
use crate::translate::messages::tokens::Estimate;
use crate::translate::output::OutputTranslator;
use crate::translate::request::{Context, translate};
use crate::upstream::wire::StreamEvent;

/// An Ollama chat body all the way to the Responses body.
fn upstream(body: Value) -> Value {
    let req: OllamaChat = serde_json::from_value(body).unwrap();
    let translated = chat(req, &efforts()).unwrap();
    let model = gpt_5_5();
    let config = ModelConfig::default();
    let out = translate(
        translated.chat,
        &Context {
            model: &model,
            config: &config,
            prompt_cache_key: "k".into(),
        },
    )
    .unwrap();
    serde_json::to_value(&out.body).unwrap()
}

fn error_of(body: Value) -> String {
    let req: OllamaChat = serde_json::from_value(body).unwrap();
    chat(req, &efforts()).unwrap_err().message
}

#[test]
fn a_python_library_tool_loop_pairs_results_with_their_calls() {
    // As ollama-python 0.6 sends it: no ids on calls, empty content dropped, results by name.
    let body = upstream(json!({
        "model": "gpt-5.5:latest",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Add 2 and 3, then multiply 4 by 5."},
            {"role": "assistant", "tool_calls": [
                {"function": {"name": "add", "arguments": {"a": 2, "b": 3}}},
                {"function": {"name": "multiply", "arguments": {"a": 4, "b": 5}}}
            ]},
            {"role": "tool", "content": "20", "tool_name": "multiply"},
            {"role": "tool", "content": "5", "tool_name": "add"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "add", "description": "Add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}},
            {"type": "function", "function": {"name": "multiply", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
        ],
        "stream": false
    }));
    assert_eq!(body["instructions"], "You are terse.");
    let input = body["input"].as_array().unwrap();
    assert_eq!(input[1]["type"], "function_call");
    assert_eq!(input[1]["call_id"], "call_2_0");
    assert_eq!(input[1]["arguments"], r#"{"a":2,"b":3}"#);
    assert_eq!(input[2]["call_id"], "call_2_1");
    // The results answer the calls of their tools, whatever their order.
    assert_eq!(input[3]["type"], "function_call_output");
    assert_eq!(input[3]["call_id"], "call_2_1");
    assert_eq!(input[3]["output"], "20");
    assert_eq!(input[4]["call_id"], "call_2_0");
    assert_eq!(body["tools"][0]["name"], "add");
}

#[test]
fn ids_are_used_when_the_client_kept_them() {
    let body = upstream(json!({
        "model": "gpt-5.5",
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_abc", "function": {"name": "f", "arguments": "{\"q\":1}"}},
                {"id": "call_def", "function": {"name": "f", "arguments": {"q": 2}}}
            ]},
            {"role": "tool", "content": "two", "tool_call_id": "call_def"},
            {"role": "tool", "content": "one", "tool_name": "f"}
        ]
    }));
    let input = body["input"].as_array().unwrap();
    assert_eq!(input[1]["role"], "assistant");
    assert_eq!(input[2]["call_id"], "call_abc");
    assert_eq!(input[2]["arguments"], "{\"q\":1}");
    assert_eq!(input[4]["call_id"], "call_def");
    assert_eq!(input[4]["output"], "two");
    // The second result names only its tool: the one call of it still open.
    assert_eq!(input[5]["call_id"], "call_abc");
}

#[test]
fn images_become_data_urls_by_their_signature() {
    assert_eq!(media_type(PNG), Some("image/png"));
    assert_eq!(media_type("/9j/4AAQSkZJRg"), Some("image/jpeg"));
    assert_eq!(media_type("R0lGODlhAQABAAAAACw="), Some("image/gif"));
    assert_eq!(media_type("UklGRiQAAABXRUJQ"), Some("image/webp"));
    assert_eq!(media_type("aGVsbG8="), None);
    let body = upstream(json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "", "images": [PNG, "data:image/jpeg;base64,/9j/AAAA"]}]
    }));
    let content = body["input"][0]["content"].as_array().unwrap();
    // No empty text part: only the images.
    assert_eq!(content.len(), 2);
    assert_eq!(
        content[0]["image_url"],
        format!("data:image/png;base64,{PNG}")
    );
    assert_eq!(content[1]["image_url"], "data:image/jpeg;base64,/9j/AAAA");
    let error = error_of(json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "x", "images": ["aGVsbG8="]}]
    }));
    assert!(error.contains("messages.0.images.0"), "{error}");
    let error = error_of(json!({
        "model": "gpt-5.5",
        "messages": [{"role": "system", "content": "x", "images": [PNG]}]
    }));
    assert!(error.contains("only user messages"), "{error}");
}

#[test]
fn think_maps_onto_the_models_efforts() {
    let e = efforts();
    assert_eq!(think(None, &e).unwrap(), (None, Thinking::Shown));
    assert_eq!(
        think(Some(&json!(true)), &e).unwrap(),
        (None, Thinking::Shown)
    );
    assert_eq!(
        think(Some(&json!(false)), &e).unwrap(),
        (Some("low".into()), Thinking::Hidden)
    );
    assert_eq!(
        think(Some(&json!("false")), &e).unwrap(),
        (Some("low".into()), Thinking::Hidden)
    );
    assert_eq!(
        think(Some(&json!("high")), &e).unwrap(),
        (Some("high".into()), Thinking::Shown)
    );
    assert_eq!(
        think(Some(&json!("max")), &e).unwrap(),
        (Some("xhigh".into()), Thinking::Shown)
    );
    assert!(think(Some(&json!("lots")), &e).is_err());
    assert!(think(Some(&json!(3)), &e).is_err());
}

#[test]
fn options_format_and_names() {
    let req: OllamaChat = serde_json::from_value(json!({
        "model": "codex:latest",
        "messages": [{"role": "user", "content": "x"}],
        "options": {"temperature": 0.1, "num_ctx": 4096, "stop": ["END", "STOP"]},
        "keep_alive": -1,
        "format": "json",
        "stream": false
    }))
    .unwrap();
    let translated = chat(req, &efforts()).unwrap();
    assert!(!translated.stream);
    assert_eq!(translated.chat.model.as_deref(), Some("codex"));
    assert!(
        translated
            .ignored
            .iter()
            .any(|i| i == "options.temperature")
    );
    assert!(translated.ignored.iter().any(|i| i == "keep_alive"));
    assert!(!translated.ignored.iter().any(|i| i == "options.stop"));
    let body = upstream(json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "x"}],
        "options": {"stop": "END"},
        "format": {"type": "object", "properties": {"a": {"type": "string"}}}
    }));
    assert_eq!(body["text"]["format"]["type"], "json_schema");
    assert_eq!(body["text"]["format"]["name"], "response");
    assert!(error_of(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "options": {"stop": [1]}})).contains("options.stop"));
    assert!(error_of(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval", "function": {"name": "f"}}]})).contains("tools.0.type"));
    assert_eq!(untagged(" gpt-5.5:latest "), "gpt-5.5");
    assert_eq!(untagged("gpt-5.5:beta"), "gpt-5.5:beta");
}

#[test]
fn generate_is_a_system_prompt_and_one_user_message() {
    let req: OllamaGenerate = serde_json::from_value(json!({
        "model": "gpt-5.5", "prompt": "def add(a, b):", "suffix": "    return c", "system": "Code only.",
        "images": [PNG], "raw": true, "context": [1, 2, 3]
    }))
    .unwrap();
    let translated = generate(req, &efforts()).unwrap();
    assert!(translated.stream);
    assert!(translated.ignored.iter().any(|i| i == "raw"));
    assert!(translated.ignored.iter().any(|i| i == "context"));
    assert_eq!(translated.chat.messages.len(), 2);
    let req: OllamaGenerate =
        serde_json::from_value(json!({"model": "gpt-5.5", "prompt": "  "})).unwrap();
    assert!(generate(req, &efforts()).is_err());
}

fn render(surface: Surface, mode: Mode, thinking: Thinking, stop: &[&str]) -> Writer {
    let stop: Vec<String> = stop.iter().map(|s| (*s).to_owned()).collect();
    let mut writer = Writer::new(
        surface,
        mode,
        "gpt-5.5:latest".into(),
        thinking,
        &stop,
        Estimate::known(42),
    );
    let mut output = OutputTranslator::default();
    for event in crate::translate::output::sample_events() {
        let data = event.to_string();
        StreamEvent::with(data.as_bytes(), |_| false, |e| output.push(e, &mut writer));
        if writer.stopped() {
            writer.finish_stopped();
            break;
        }
    }
    writer
}

fn lines(writer: &mut Writer) -> Vec<Value> {
    writer
        .lines()
        .drain(..)
        .map(|line| {
            assert!(line.ends_with(b"\n"));
            serde_json::from_slice(&line).unwrap()
        })
        .collect()
}

#[test]
fn a_chat_stream_is_thinking_text_then_the_whole_call_then_done() {
    let mut writer = render(Surface::Chat, Mode::Stream, Thinking::Shown, &[]);
    let lines = lines(&mut writer);
    let message = |i: usize| lines[i]["message"].clone();
    assert_eq!(message(0)["thinking"], "Plan.");
    assert_eq!(message(1)["thinking"], "\n\n");
    assert_eq!(message(2)["thinking"], "Act.");
    assert_eq!(message(3)["content"], "Running ");
    assert_eq!(message(4)["content"], "ls.");
    // The call, whole, its arguments an object, after its last delta.
    assert_eq!(
        message(5)["tool_calls"],
        json!([{"id": "call_7", "function": {"index": 0, "name": "Bash", "arguments": {"command": "ls"}}}])
    );
    assert_eq!(message(5)["content"], "");
    let last = &lines[6];
    assert_eq!(lines.len(), 7);
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["prompt_eval_count"], 1000);
    assert_eq!(last["eval_count"], 50);
    assert_eq!(last["load_duration"], 0);
    assert!(lines.iter().all(|l| l["model"] == "gpt-5.5:latest"));
    assert!(lines[..6].iter().all(|l| l["done"] == false));
    assert!(lines.iter().all(|l| l["message"]["role"] == "assistant"));
    assert_eq!(writer.usage().unwrap().input_tokens, 1000);
}

#[test]
fn whole_answers_and_generate_lines() {
    let writer = render(Surface::Chat, Mode::Whole, Thinking::Shown, &[]);
    let whole = writer.whole();
    assert_eq!(whole["message"]["content"], "Running ls.");
    assert_eq!(whole["message"]["thinking"], "Plan.\n\nAct.");
    assert_eq!(
        whole["message"]["tool_calls"][0]["function"]["arguments"],
        json!({"command": "ls"})
    );
    assert_eq!(whole["done"], true);

    let writer = render(Surface::Generate, Mode::Whole, Thinking::Hidden, &[]);
    let whole = writer.whole();
    assert_eq!(whole["response"], "Running ls.");
    assert!(whole.get("thinking").is_none());
    assert!(whole.get("message").is_none());

    let mut writer = render(Surface::Generate, Mode::Stream, Thinking::Hidden, &[]);
    let lines = lines(&mut writer);
    let text: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    assert_eq!(text, "Running ls.");
    assert!(lines.iter().all(|l| l.get("thinking").is_none()));
    assert_eq!(lines.last().unwrap()["done"], true);
}

#[test]
fn a_stop_sequence_ends_the_answer_with_counted_output() {
    let mut writer = render(Surface::Chat, Mode::Stream, Thinking::Hidden, &["ls"]);
    let lines = lines(&mut writer);
    let text: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(text, "Running ");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["prompt_eval_count"], 42);
    assert!(
        lines
            .iter()
            .all(|l| l["message"].get("tool_calls").is_none())
    );
}

/// A conversation translated in two parts — the first `k` messages, then the rest continuing
/// from the first part's [`History`](super::History) (and the Chat translation's) — gives the
/// body translating it whole gives, at every `k`: calls without ids made up ids for by their
/// place, a result after the split answering a call before it by its tool's name. The
/// daemon's continued Ollama turns rest on this.
#[test]
fn messages_continued_from_any_point_translate_as_a_whole() {
    use super::{History, chat_after};
    use crate::translate::request::{self, translate_after};
    use crate::upstream::written::Written;
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Add 2 and 3, then multiply 4 by 5.", "images": [PNG]},
        {"role": "assistant", "content": "", "thinking": "Two calls.", "tool_calls": [
            {"function": {"name": "add", "arguments": {"a": 2, "b": 3}}},
            {"function": {"name": "multiply", "arguments": {"a": 4, "b": 5}}}]},
        {"role": "tool", "content": "20", "tool_name": "multiply"},
        {"role": "tool", "content": "5", "tool_name": "add"},
        {"role": "assistant", "content": "5 and 20."},
        {"role": "user", "content": "Now add them."},
        {"role": "assistant", "tool_calls": [
            {"id": "kept", "function": {"name": "add", "arguments": {"a": 5, "b": 20}}}]},
        {"role": "tool", "content": "25", "tool_call_id": "kept"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "add", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "content": "1"},
        {"role": "user", "content": "Thanks."}
    ]);
    let all = messages.as_array().unwrap().clone();
    let request = |messages: &[Value]| -> OllamaChat {
        serde_json::from_value(json!({
            "model": "gpt-5.5:latest", "messages": messages, "think": true,
            "tools": [
                {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "multiply", "parameters": {"type": "object"}}}
            ],
            "options": {"temperature": 0.2}
        }))
        .unwrap()
    };
    let model = gpt_5_5();
    let config = ModelConfig::default();
    let ctx = Context {
        model: &model,
        config: &config,
        prompt_cache_key: "k".into(),
    };
    let whole = chat(request(&all), &efforts()).unwrap();
    let made_up = whole.made_up_ids.clone();
    assert_eq!(made_up, ["call_2_0", "call_2_1", "call_9_0"]);
    let whole = translate(whole.chat, &ctx).unwrap();
    let expected = Written::write(&whole.body, None).unwrap().to_json();
    for k in 1..all.len() {
        let mut history = History::default();
        let first = chat_after(request(&all[..k]), &efforts(), &mut history)
            .unwrap_or_else(|e| panic!("split at {k}: {}", e.message));
        let rest = chat_after(request(&all[k..]), &efforts(), &mut history)
            .unwrap_or_else(|e| panic!("split at {k}: {}", e.message));
        let mut ids = first.made_up_ids.clone();
        ids.extend(rest.made_up_ids.clone());
        assert_eq!(ids, made_up, "split at {k}");
        let (first, chat_history) =
            translate_after(first.chat, &ctx, request::History::default()).unwrap();
        let (rest, _) = translate_after(rest.chat, &ctx, chat_history).unwrap();
        let earlier = Written::write(&first.body, None).unwrap();
        let continued = Written::write(&rest.body, Some(earlier.items()))
            .unwrap()
            .to_json();
        assert_eq!(
            String::from_utf8(continued).unwrap(),
            String::from_utf8(expected.clone()).unwrap(),
            "split at {k}"
        );
    }
    // An error in the continued part names the message by its place in the whole request.
    let mut history = History::default();
    chat_after(request(&all[..2]), &efforts(), &mut history).unwrap();
    let bad = json!([{"role": "tool", "content": "x", "tool_name": "nothing"}]);
    let error = chat_after(request(bad.as_array().unwrap()), &efforts(), &mut history).unwrap_err();
    assert!(error.message.starts_with("messages.2"), "{}", error.message);
}
