//! The Messages translation, rule by rule, from requests shaped like Claude Code's and the
//! Anthropic SDKs'.

use serde_json::{Value, json};

use super::render::{Mode, Writer};
use super::request::{Context, Translated, budget_effort, nearest_effort, translate};
use super::{MessagesRequest, ThinkingDisplay, signature, tokens};
use crate::api_error::ApiError;
use crate::config::{ModelConfig, SystemPromptStrategy};
use crate::models::{self, Catalog, Resolved};
use crate::translate::output::OutputTranslator;
use crate::upstream::wire::{InputItem, StreamEvent};

fn resolved(name: &str) -> Resolved {
    models::resolve(
        Some(name),
        &Catalog::builtin(),
        &ModelConfig::default().aliases,
        "gpt-5.5",
    )
    .unwrap()
}

fn run_with(
    body: Value,
    model: &str,
    config: &ModelConfig,
) -> Result<(Translated, Value), ApiError> {
    let model = resolved(model);
    let ctx = Context {
        model: &model,
        config,
        prompt_cache_key: "019a0000-0000-7000-8000-000000000001".into(),
        require_max_tokens: true,
    };
    let req: MessagesRequest = serde_json::from_value(body).unwrap();
    let translated = translate(req, &ctx)?;
    let json = serde_json::to_value(&translated.body).unwrap();
    Ok((translated, json))
}

fn run(body: Value) -> (Translated, Value) {
    run_with(body, "gpt-5.5", &ModelConfig::default()).unwrap()
}

fn err(body: Value) -> ApiError {
    run_with(body, "gpt-5.5", &ModelConfig::default()).unwrap_err()
}

fn with(extra: Value) -> Value {
    let mut body = json!({"model": "claude-opus-5-5", "max_tokens": 64000,
        "messages": [{"role": "user", "content": "hi"}]});
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
    body
}

#[test]
fn a_claude_code_request_becomes_an_official_style_body() {
    let (t, body) = run(json!({
        "model": "claude-opus-5-5",
        "max_tokens": 64000,
        "temperature": 1,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": []},
        "metadata": {"user_id": "{\"session_id\":\"s\"}"},
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328.abc; cch=12345;"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be careful.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>"}, {"type": "text", "text": "fix it"}]},
            {"role": "system", "content": "Working directory: /w"}
        ]
    }));
    assert_eq!(
        body,
        json!({
            "model": "gpt-5.5",
            "instructions": "You are Claude Code.\n\nBe careful.",
            "input": [
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "<system-reminder>x</system-reminder>"},
                    {"type": "input_text", "text": "fix it"}]},
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Working directory: /w"}]}
            ],
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": true,
            "reasoning": {"effort": "high"},
            "store": false,
            "stream": true,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "019a0000-0000-7000-8000-000000000001"
        })
    );
    assert_eq!(t.thinking, ThinkingDisplay::Omitted);
    assert!(!t.stream);
    assert_eq!(t.ignored, ["context_management", "temperature"]);
    assert_eq!(t.prefill, None);
}

#[test]
fn the_developer_strategy_keeps_the_codex_instructions() {
    let config = ModelConfig {
        system_prompt_strategy: SystemPromptStrategy::Developer,
        ..ModelConfig::default()
    };
    let (_, body) = run_with(with(json!({"system": "Be terse."})), "gpt-5.5", &config).unwrap();
    assert!(body["instructions"].as_str().unwrap().contains("Codex"));
    assert_eq!(body["input"][0]["role"], "developer");
    assert_eq!(body["input"][0]["content"][0]["text"], "Be terse.");
    // No system prompt at all: the neutral instructions.
    let (_, body) = run(with(json!({})));
    assert_eq!(
        body["instructions"],
        crate::translate::request::NEUTRAL_INSTRUCTIONS
    );
}

#[test]
fn content_blocks_become_input_parts() {
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let (_, body) = run(with(json!({"messages": [
        {"role": "user", "content": [
            {"type": "text", "text": ""},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
            {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "remember"}},
            {"type": "text", "text": "look", "citations": []}
        ]},
        {"role": "user", "content": "and again"}
    ]})));
    let parts = &body["input"][0]["content"];
    assert_eq!(parts.as_array().unwrap().len(), 5, "{parts}");
    assert_eq!(
        parts[0]["image_url"],
        format!("data:image/png;base64,{png}")
    );
    assert_eq!(parts[1]["image_url"], "https://example.com/a.jpg");
    assert_eq!(
        parts[2],
        json!({"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0=", "filename": "document.pdf"})
    );
    assert_eq!(
        parts[3],
        json!({"type": "input_text", "text": "Notes\n\nremember"})
    );
    // Consecutive user messages stay separate messages.
    assert_eq!(body["input"][1]["content"][0]["text"], "and again");

    let e = err(with(json!({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]})));
    assert!(e.message.contains("Files API"), "{}", e.message);
    let e = err(with(json!({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "Qk0="}}]}]})));
    assert_eq!(
        e.param.as_deref(),
        Some("messages.0.content.0.source.media_type")
    );
}

#[test]
fn a_tool_loop_keeps_every_id() {
    let (_, body) = run(with(json!({"messages": [
        {"role": "user", "content": "list and read"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}},
            {"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {"file_path": "/a"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a\nb"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true, "content": [{"type": "text", "text": "no such file"}]},
            {"type": "text", "text": "continue"}
        ]}
    ]})));
    let input = body["input"].as_array().unwrap();
    let kinds: Vec<&str> = input.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output",
            "message"
        ]
    );
    assert_eq!(
        input[1]["content"][0],
        json!({"type": "output_text", "text": "Let me look."})
    );
    assert_eq!(
        input[2],
        json!({"type": "function_call", "name": "Bash", "arguments": "{\"command\":\"ls\"}", "call_id": "toolu_01"})
    );
    assert_eq!(
        input[4],
        json!({"type": "function_call_output", "call_id": "toolu_01", "output": "a\nb"})
    );
    assert_eq!(input[5]["output"], "Error: no such file");
    assert_eq!(input[6]["content"][0]["text"], "continue");

    // A result with an image keeps the parts form.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let (_, body) = run(with(json!({"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "Shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": [
            {"type": "text", "text": "the screen"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]}]}
    ]})));
    let output = &body["input"][1]["output"];
    assert_eq!(
        output[0],
        json!({"type": "input_text", "text": "the screen"})
    );
    assert_eq!(output[1]["type"], "input_image");

    let e = err(with(json!({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "?"}]}]})));
    assert!(e.message.contains("toolu_x"));
    assert_eq!(e.param.as_deref(), Some("messages.0.content.0.tool_use_id"));
}

#[test]
fn our_thinking_blocks_come_back_as_reasoning_and_others_are_left_out() {
    let ours = signature::encode("acct_2", "gAAAAABsecret");
    let (t, body) = run(with(json!({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Plan.", "signature": ours},
            {"type": "thinking", "thinking": "Anthropic's", "signature": "EqQBCkYIBxgCKkD"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "text", "text": "A."}
        ]},
        {"role": "user", "content": "q2"}
    ]})));
    let input = body["input"].as_array().unwrap();
    assert_eq!(input.len(), 4);
    assert_eq!(
        input[1],
        json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": "Plan."}], "encrypted_content": "gAAAAABsecret"})
    );
    assert_eq!(input[2]["role"], "assistant");
    assert_eq!(t.reasoning_account.as_deref(), Some("acct_2"));
}

#[test]
fn a_final_assistant_text_is_a_prefill() {
    let (t, _) = run(with(json!({"messages": [
        {"role": "user", "content": "Give JSON"},
        {"role": "assistant", "content": "{"}
    ]})));
    assert_eq!(t.prefill.as_deref(), Some("{"));
    let (t, _) = run(with(json!({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}
    ]})));
    assert_eq!(t.prefill, None);
}

#[test]
fn tools_are_never_forced_strict_and_server_tools_map_or_are_refused() {
    let (_, body) = run(with(json!({"tools": [
        {"name": "Bash", "description": "Run", "cache_control": {"type": "ephemeral"}, "defer_loading": true,
         "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"]}},
        {"name": "Strict", "strict": true, "input_schema": {"type": "object",
            "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}},
        {"name": "NotStrictable", "strict": true, "input_schema": {"type": "object",
            "properties": {"a": {"type": "string"}}}},
        {"name": "NoSchema"},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    ]})));
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(
        tools[0],
        json!({"type": "function", "name": "Bash", "description": "Run", "strict": false, "parameters": {
            "type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"]}})
    );
    assert_eq!(tools[1]["strict"], true);
    assert_eq!(tools[2]["strict"], false);
    assert_eq!(
        tools[3]["parameters"],
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(tools[4], json!({"type": "web_search"}));

    let e = err(with(
        json!({"tools": [{"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}]}),
    ));
    assert!(e.message.contains("text_editor_20250728"), "{}", e.message);
    let e = err(with(
        json!({"tools": [{"name": "a", "input_schema": {}}, {"name": "a", "input_schema": {}}]}),
    ));
    assert!(e.message.contains("twice"));
    let e = err(with(
        json!({"tools": [{"name": "bad name", "input_schema": {}}]}),
    ));
    assert_eq!(e.param.as_deref(), Some("tools.0.name"));
}

#[test]
fn tool_choice_maps_to_the_responses_forms() {
    let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
    for (choice, expected, parallel) in [
        (json!({"type": "auto"}), json!("auto"), true),
        (json!({"type": "any"}), json!("required"), true),
        (json!({"type": "none"}), json!("none"), true),
        (
            json!({"type": "tool", "name": "f"}),
            json!({"type": "function", "name": "f"}),
            true,
        ),
        (
            json!({"type": "auto", "disable_parallel_tool_use": true}),
            json!("auto"),
            false,
        ),
    ] {
        let (_, body) = run(with(json!({"tools": tools, "tool_choice": choice})));
        assert_eq!(body["tool_choice"], expected, "{choice}");
        assert_eq!(body["parallel_tool_calls"], parallel, "{choice}");
    }
    for choice in [
        json!({"type": "tool", "name": "g"}),
        json!({"type": "sometimes"}),
    ] {
        assert_eq!(
            err(with(json!({"tools": tools, "tool_choice": choice}))).status,
            400
        );
    }
    assert!(
        err(with(json!({"tool_choice": {"type": "any"}})))
            .message
            .contains("at least one tool")
    );
}

#[test]
fn thinking_maps_to_an_effort_and_a_display() {
    let effort = |extra: Value| {
        let (t, body) = run(with(extra));
        (
            body["reasoning"]["effort"].as_str().unwrap().to_owned(),
            body["reasoning"].get("summary").is_some(),
            t.thinking,
        )
    };
    use ThinkingDisplay::{Hidden, Omitted, Summarized};
    assert_eq!(effort(json!({})), ("medium".into(), false, Hidden));
    assert_eq!(
        effort(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})),
        ("low".into(), true, Summarized)
    );
    assert_eq!(
        effort(json!({"thinking": {"type": "enabled", "budget_tokens": 8000}})),
        ("medium".into(), true, Summarized)
    );
    assert_eq!(
        effort(json!({"thinking": {"type": "enabled", "budget_tokens": 20000}})),
        ("high".into(), true, Summarized)
    );
    assert_eq!(
        effort(json!({"thinking": {"type": "enabled", "budget_tokens": 63999}})),
        ("xhigh".into(), true, Summarized)
    );
    assert_eq!(
        effort(json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}})),
        ("xhigh".into(), true, Summarized)
    );
    assert_eq!(
        effort(json!({"thinking": {"type": "adaptive", "display": "omitted"}})),
        ("medium".into(), false, Omitted)
    );
    // gpt-5.5 has no "none": disabled thinking is its lowest effort.
    assert_eq!(
        effort(json!({"thinking": {"type": "disabled"}})),
        ("low".into(), false, Hidden)
    );
    assert_eq!(effort(json!({"output_config": {"effort": "low"}})).0, "low");
    for bad in [
        json!({"thinking": {"type": "sometimes"}}),
        json!({"thinking": {"type": "enabled"}}),
        json!({"thinking": {"type": "adaptive", "display": "loud"}}),
        json!({"output_config": {"effort": "huge"}}),
    ] {
        assert_eq!(err(with(bad.clone())).status, 400, "{bad}");
    }
    assert_eq!(budget_effort(2048), "low");
    assert_eq!(budget_effort(2049), "medium");
    let supported: Vec<String> = ["low", "medium", "high"].map(String::from).to_vec();
    assert_eq!(nearest_effort("none", &supported).as_deref(), Some("low"));
    assert_eq!(nearest_effort("max", &supported).as_deref(), Some("high"));
    assert_eq!(nearest_effort("bogus", &supported), None);
}

#[test]
fn the_api_requires_what_anthropic_requires() {
    let e = err(json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(e.param.as_deref(), Some("max_tokens"));
    assert_eq!(err(with(json!({"max_tokens": 0}))).status, 400);
    assert_eq!(err(with(json!({"messages": []}))).status, 400);
    assert!(
        err(with(
            json!({"messages": [{"role": "tool", "content": "x"}]})
        ))
        .message
        .contains("role")
    );
    assert!(
        err(with(json!({"stop_sequences": vec!["x"; 40]})))
            .message
            .contains("stop_sequences")
    );
    // count_tokens takes no max_tokens.
    let model = resolved("gpt-5.5");
    let ctx = Context {
        model: &model,
        config: &ModelConfig::default(),
        prompt_cache_key: String::new(),
        require_max_tokens: false,
    };
    let req: MessagesRequest = serde_json::from_value(
        json!({"model": "x", "messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    assert!(translate(req, &ctx).is_ok());
}

#[test]
fn a_lite_model_gets_its_tools_and_instructions_in_the_input() {
    let (_, body) = run_with(
        with(json!({"system": "S", "tools": [{"name": "f", "input_schema": {"type": "object"}}]})),
        "gpt-5.6-sol",
        &ModelConfig::default(),
    )
    .unwrap();
    assert!(body.get("instructions").is_none() && body.get("tools").is_none());
    assert_eq!(body["input"][0]["type"], "additional_tools");
    assert_eq!(body["input"][1]["content"][0]["text"], "S");
    assert_eq!(body["reasoning"]["context"], "all_turns");
}

// ---- the output side ----

/// Runs events through the output layer into a writer; returns it.
fn render(
    mode: Mode,
    thinking: ThinkingDisplay,
    stop: &[&str],
    prefill: Option<&str>,
    events: &[Value],
) -> Writer {
    let stop: Vec<String> = stop.iter().map(|s| (*s).to_owned()).collect();
    let mut writer = Writer::new(
        mode,
        "claude-opus-5-5".into(),
        thinking,
        "acct_1".into(),
        42,
        &stop,
        prefill.map(str::to_owned),
    );
    let mut output = OutputTranslator::default();
    for event in events {
        let data = event.to_string();
        StreamEvent::with(data.as_bytes(), |_| false, |e| output.push(e, &mut writer));
        if writer.stopped() {
            writer.finish_stopped();
            break;
        }
    }
    writer
}

fn frames(writer: &mut Writer) -> Vec<(String, Value)> {
    writer
        .frames()
        .drain(..)
        .map(|bytes| {
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            let (event, data) = text.trim_end().split_once('\n').unwrap();
            (
                event.strip_prefix("event: ").unwrap().to_owned(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect()
}

fn sample() -> Vec<Value> {
    crate::translate::output::sample_events()
}

#[test]
fn a_stream_is_rendered_in_anthropics_order() {
    let mut writer = render(
        Mode::Stream,
        ThinkingDisplay::Summarized,
        &[],
        None,
        &sample(),
    );
    let frames = frames(&mut writer);
    let names: Vec<&str> = frames.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(frames[0].1["message"]["id"], "msg_abc");
    assert_eq!(frames[0].1["message"]["usage"]["input_tokens"], 42);
    assert_eq!(
        frames[2].1["delta"],
        json!({"type": "thinking_delta", "thinking": "Plan."})
    );
    assert_eq!(
        frames[3].1["delta"],
        json!({"type": "thinking_delta", "thinking": "\n\n"})
    );
    let signature = frames[5].1["delta"]["signature"].as_str().unwrap();
    assert_eq!(
        signature::decode(signature),
        Some(("acct_1".to_owned(), "gAAAenc"))
    );
    assert_eq!(
        frames[8].1,
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Running "}})
    );
    assert_eq!(
        frames[11].1["content_block"],
        json!({"type": "tool_use", "id": "call_7", "name": "Bash", "input": {}})
    );
    let json_deltas: String = frames[12..14]
        .iter()
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(json_deltas, "{\"command\":\"ls\"}");
    assert_eq!(
        frames[15].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 200, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 800, "output_tokens": 50}})
    );
}

#[test]
fn the_whole_message_has_the_same_blocks() {
    let writer = render(
        Mode::Whole,
        ThinkingDisplay::Summarized,
        &[],
        None,
        &sample(),
    );
    let message = writer.message();
    assert_eq!(message["content"][0]["type"], "thinking");
    assert_eq!(message["content"][0]["thinking"], "Plan.\n\nAct.");
    assert_eq!(
        message["content"][1],
        json!({"type": "text", "text": "Running ls."})
    );
    assert_eq!(
        message["content"][2],
        json!({"type": "tool_use", "id": "call_7", "name": "Bash", "input": {"command": "ls"}})
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"]["cache_read_input_tokens"], 800);

    // Thinking not asked for: no thinking block, the indices start at the text.
    let mut hidden = render(Mode::Stream, ThinkingDisplay::Hidden, &[], None, &sample());
    let frames = frames(&mut hidden);
    assert!(
        !frames
            .iter()
            .any(|(_, d)| d.to_string().contains("thinking"))
    );
    assert_eq!(frames[1].1["index"], 0);
    // Omitted: the block and its signature, no text.
    let omitted = render(Mode::Whole, ThinkingDisplay::Omitted, &[], None, &sample()).message();
    assert_eq!(omitted["content"][0]["thinking"], "");
    assert!(
        omitted["content"][0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("cpx1.")
    );
}

fn text_events(deltas: &[&str], ending: Value) -> Vec<Value> {
    let mut events = vec![json!({"type": "response.created", "response": {"id": "resp_1"}})];
    for d in deltas {
        events.push(json!({"type": "response.output_text.delta", "item_id": "m", "delta": d}));
    }
    events.push(ending);
    events
}

#[test]
fn stop_sequences_cut_across_deltas() {
    let events = text_events(
        &["Hello wo", "rld! More"],
        json!({"type": "response.completed", "response": {}}),
    );
    let writer = render(
        Mode::Whole,
        ThinkingDisplay::Hidden,
        &["world", "x"],
        None,
        &events,
    );
    let message = writer.message();
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Hello "}])
    );
    assert_eq!(message["stop_reason"], "stop_sequence");
    assert_eq!(message["stop_sequence"], "world");
    // A held-back tail that was no stop sequence after all is sent at the block's end.
    let events = text_events(
        &["end wo"],
        json!({"type": "response.completed", "response": {}}),
    );
    let message = render(
        Mode::Whole,
        ThinkingDisplay::Hidden,
        &["world"],
        None,
        &events,
    )
    .message();
    assert_eq!(message["content"][0]["text"], "end wo");
    assert_eq!(message["stop_reason"], "end_turn");
}

#[test]
fn a_repeated_prefill_is_taken_off_and_endings_map() {
    let done = json!({"type": "response.completed", "response": {}});
    let message = render(
        Mode::Whole,
        ThinkingDisplay::Hidden,
        &[],
        Some("{"),
        &text_events(&["{\"a\"", ": 1}"], done.clone()),
    )
    .message();
    assert_eq!(message["content"][0]["text"], "\"a\": 1}");
    let message = render(
        Mode::Whole,
        ThinkingDisplay::Hidden,
        &[],
        Some("{"),
        &text_events(&["\"a\": 1}"], done),
    )
    .message();
    assert_eq!(message["content"][0]["text"], "\"a\": 1}");
    let incomplete = json!({"type": "response.incomplete", "response": {"incomplete_details": {"reason": "max_output_tokens"}}});
    let message = render(
        Mode::Whole,
        ThinkingDisplay::Hidden,
        &[],
        None,
        &text_events(&["cut"], incomplete),
    )
    .message();
    assert_eq!(message["stop_reason"], "max_tokens");
    let filtered = json!({"type": "response.incomplete", "response": {"incomplete_details": {"reason": "content_filter"}}});
    let message = render(
        Mode::Whole,
        ThinkingDisplay::Hidden,
        &[],
        None,
        &text_events(&["no"], filtered),
    )
    .message();
    assert_eq!(message["stop_reason"], "refusal");
    let failed = json!({"type": "response.failed", "response": {"error": {"code": "server_error", "message": "boom"}}});
    let writer = render(
        Mode::Stream,
        ThinkingDisplay::Hidden,
        &[],
        None,
        &text_events(&["x"], failed),
    );
    assert_eq!(writer.failure().unwrap().message, "boom");
}

// ---- count_tokens ----

#[test]
fn the_estimate_counts_what_the_request_holds() {
    assert_eq!(tokens::text(""), 0);
    assert_eq!(tokens::text("hello"), 1);
    assert_eq!(tokens::text("hello world"), 2);
    assert_eq!(tokens::text("1234567"), 3);
    assert_eq!(tokens::text("你好世界"), 3);
    let (small, _) = run(with(json!({})));
    let (big, _) = run(with(
        json!({"system": "You are helpful.", "tools": [{"name": "f", "description": "Does f",
        "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}]}),
    ));
    assert!(tokens::estimate(&big.body) > tokens::estimate(&small.body) + 15);
}

/// Samples of what requests carry, each counted by the estimate and by the o200k tokenizer the
/// Codex models use: prose, Rust, JSON, shell output, Chinese, a mixed conversation.
fn token_samples() -> Vec<(&'static str, String)> {
    let json_rows: Vec<Value> = (0..40)
        .map(|i| json!({"id": i, "name": format!("item-{i}"), "price": 3.25 * f64::from(i), "tags": ["a", "b"], "ok": i % 2 == 0}))
        .collect();
    let shell: String = (0..60)
        .map(|i| {
            format!(
                "-rw-r--r-- 1 user staff {:>6} Dec  4 18:{:02} file_{i}.rs\n",
                1000 + i * 37,
                i % 60
            )
        })
        .collect();
    vec![
        ("README (prose)", include_str!("../../../../README.md").to_owned()),
        ("Rust source", include_str!("../output.rs").to_owned()),
        ("JSON", serde_json::to_string_pretty(&json_rows).unwrap()),
        ("shell output", shell),
        (
            "Chinese",
            "我们的网关把用户自己的账户提供给任何客户端使用。它会刷新令牌，在多个账户之间轮换，并在仪表板上显示所有信息。\
             请在运行之前阅读说明文档，然后检查配置文件中的每一个选项是否正确。"
                .repeat(8),
        ),
    ]
}

/// Holds the estimate to the o200k tokenizer on every sample (and prints the figures the
/// README records).
#[test]
fn the_estimate_is_close_to_the_o200k_tokenizer() {
    let bpe = tiktoken_rs::o200k_base().unwrap();
    for (name, text) in token_samples() {
        let estimate = tokens::text(&text) as f64;
        let exact = bpe.encode_ordinary(&text).len() as f64;
        let ratio = estimate / exact;
        println!("{name}: estimate {estimate}, o200k {exact}, ratio {ratio:.3}");
        assert!(
            (0.85..=1.15).contains(&ratio),
            "{name}: {estimate} vs {exact}"
        );
    }
}

#[test]
fn search_results_are_text_and_tool_references_carry_nothing() {
    let (_, body) = run(with(json!({"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {"query": "x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "tool_reference", "tool_name": "WebFetch"},
                {"type": "search_result", "source": "https://example.com", "title": "Example",
                 "content": [{"type": "text", "text": "found it"}]}]}]}
    ]})));
    assert_eq!(
        body["input"][1]["output"],
        "Example (https://example.com)\n\nfound it"
    );
}

#[test]
fn odd_image_data_is_counted_without_panicking() {
    for url in [
        "data:image/png;base64,é€漢字é€漢字",
        "data:image/png;base64,",
        "data:image/jpeg;base64,/9j/AAAA",
        "https://example.com/a.png",
    ] {
        let (t, _) = run(with(json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": url}}]}]})));
        assert!(tokens::estimate(&t.body) > 0);
    }
}

/// A history translated in two parts — the first `k` messages, then the rest continuing from
/// the first part's [`History`](super::request::History) — gives the body translating it whole
/// gives, at every `k`, the account its thinking belongs to included; the daemon's continued
/// turns (a large request after its conversation's last) rest on this.
#[test]
fn a_history_continued_from_any_point_translates_as_a_whole() {
    use super::request::{History, translate_after};
    use crate::upstream::written::Written;
    let thought = signature::encode("acct_1", "gAAAAABfirst");
    // The conversation moved: the later thinking is another account's.
    let moved = signature::encode("acct_2", "gAAAAABsecret");
    let messages = json!([
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>Use tools.</system-reminder>"},
            {"type": "text", "text": "What is in src?", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "List it.", "signature": thought},
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls src"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "main.rs"}]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "system", "content": "The user switched branches."},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Read it.", "signature": moved},
            {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"file_path": "src/main.rs"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "fn main() {}", "is_error": false}]},
        {"role": "assistant", "content": "One file: main.rs."},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": "You are"},
    ]);
    let all: Vec<Value> = messages.as_array().unwrap().clone();
    let model = resolved("gpt-5.5");
    for config in [
        ModelConfig::default(),
        ModelConfig {
            system_prompt_strategy: SystemPromptStrategy::Developer,
            ..ModelConfig::default()
        },
    ] {
        let ctx = Context {
            model: &model,
            config: &config,
            prompt_cache_key: "conv".into(),
            require_max_tokens: true,
        };
        let request = |messages: &[Value]| -> MessagesRequest {
            serde_json::from_value(json!({"model": "claude-sonnet-4-5", "max_tokens": 1000,
                "system": "You are Claude Code.", "messages": messages,
                "tools": [{"name": "Bash", "input_schema": {"type": "object"}},
                          {"name": "Read", "input_schema": {"type": "object"}}],
                "thinking": {"type": "enabled", "budget_tokens": 4000}, "stream": true}))
            .unwrap()
        };
        let (whole, _) = translate_after(request(&all), &ctx, History::default()).unwrap();
        assert_eq!(whole.reasoning_account.as_deref(), Some("acct_2"));
        assert_eq!(whole.prefill.as_deref(), Some("You are"));
        // Only the account the thinking moved to gets reasoning back: its own.
        let reasoning: Vec<&InputItem> = whole
            .body
            .input
            .iter()
            .filter(|item| matches!(item, InputItem::Reasoning { .. }))
            .collect();
        assert!(
            matches!(reasoning.as_slice(), [InputItem::Reasoning { encrypted_content, .. }]
                if encrypted_content == "gAAAAABsecret"),
            "{reasoning:?}"
        );
        let estimate = tokens::estimate(&whole.body);
        let whole_json = Written::write(&whole.body, None).unwrap().to_json();
        for k in 0..all.len() {
            let (first, history) = if k == 0 {
                (None, History::default())
            } else {
                let (t, h) = translate_after(request(&all[..k]), &ctx, History::default()).unwrap();
                (Some(t), h)
            };
            assert_eq!(history.len(), k);
            let (rest, after) = translate_after(request(&all[k..]), &ctx, history).unwrap();
            assert_eq!(after.len(), all.len());
            assert_eq!(
                rest.reasoning_account, whole.reasoning_account,
                "split at {k}"
            );
            assert_eq!(rest.prefill, whole.prefill, "split at {k}");
            // As the daemon continues: the kept reasoning goes when the thinking moved.
            let moved_on = !rest.keeps_earlier_reasoning;
            assert_eq!(
                moved_on,
                first
                    .as_ref()
                    .is_some_and(|t| t.reasoning_account.as_deref() == Some("acct_1")),
                "split at {k}"
            );
            let first_items = first.as_ref().map_or(0, |t| {
                let reasoning = if moved_on {
                    tokens::reasoning(&t.body.input)
                } else {
                    0
                };
                tokens::input(&t.body.input) - reasoning
            });
            assert_eq!(
                tokens::estimate(&rest.body) + first_items,
                estimate,
                "split at {k}"
            );
            let written = first.map(|t| {
                let items = Written::write(&t.body, None).unwrap().items().clone();
                if moved_on {
                    items.without_reasoning()
                } else {
                    items
                }
            });
            let continued = Written::write(&rest.body, written.as_ref())
                .unwrap()
                .to_json();
            assert_eq!(
                String::from_utf8(continued).unwrap(),
                String::from_utf8(whole_json.clone()).unwrap(),
                "split at {k}"
            );
        }
    }
    // An error in the continued part names the message by its place in the whole request.
    let config = ModelConfig::default();
    let ctx = Context {
        model: &model,
        config: &config,
        prompt_cache_key: "conv".into(),
        require_max_tokens: true,
    };
    let read = |messages: &[Value]| -> MessagesRequest {
        serde_json::from_value(json!({"model": "claude-sonnet-4-5", "max_tokens": 1000,
            "messages": messages}))
        .unwrap()
    };
    let (_, history) = translate_after(read(&all[..3]), &ctx, History::default()).unwrap();
    let error = translate_after(
        read(&[json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "x"}]})]),
        &ctx,
        history,
    )
    .err()
    .unwrap();
    assert!(
        error.message.starts_with("messages.3.content.0"),
        "{}",
        error.message
    );
}
