use serde_json::{Value, json};

use super::*;
use crate::config::{ModelConfig, ReasoningEffort};
use crate::models::{self, Catalog};

fn chat(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

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
    };
    let translated = translate(chat(body), &ctx)?;
    let json = serde_json::to_value(&translated.body).unwrap();
    Ok((translated, json))
}

fn run(body: Value) -> (Translated, Value) {
    run_with(body, "gpt-5.5", &ModelConfig::default()).unwrap()
}

fn err(body: Value) -> ApiError {
    run_with(body, "gpt-5.5", &ModelConfig::default()).unwrap_err()
}

#[test]
fn a_plain_chat_becomes_an_official_style_request() {
    let (t, body) = run(json!({
        "model": "gpt-5.5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello"}
        ]
    }));
    assert_eq!(
        body,
        json!({
            "model": "gpt-5.5",
            "instructions": "You are terse.",
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}],
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": true,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "store": false,
            "stream": true,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "019a0000-0000-7000-8000-000000000001"
        })
    );
    assert!(!t.stream && t.n == 1 && t.stop.is_empty() && t.ignored.is_empty());
    // The official field order: model, instructions, input, tools, tool_choice, …
    let wire = serde_json::to_string(&t.body).unwrap();
    assert!(
        wire.starts_with(r#"{"model":"gpt-5.5","instructions":"You are terse.","input":["#),
        "{wire}"
    );
}

#[test]
fn missing_system_prompt_gets_neutral_instructions() {
    let (_, body) = run(json!({"messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(body["instructions"], NEUTRAL_INSTRUCTIONS);
    assert_eq!(body["model"], "gpt-5.5", "the configured default model");
}

#[test]
fn later_system_messages_keep_their_place_as_developer_messages() {
    let (_, body) = run(json!({"messages": [
        {"role": "system", "content": "A"},
        {"role": "developer", "content": [{"type": "text", "text": "B"}]},
        {"role": "user", "content": "q1"},
        {"role": "system", "content": "C"},
    ]}));
    assert_eq!(body["instructions"], "A\n\nB");
    assert_eq!(
        body["input"][1],
        json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "C"}]})
    );
}

#[test]
fn developer_strategy_keeps_the_model_instructions() {
    let config = ModelConfig {
        system_prompt_strategy: SystemPromptStrategy::Developer,
        ..ModelConfig::default()
    };
    let (_, body) =
        run_with(json!({"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "x"}]}), "gpt-5.5", &config)
            .unwrap();
    assert!(
        body["instructions"]
            .as_str()
            .unwrap()
            .starts_with("You are Codex")
    );
    assert_eq!(body["input"][0]["role"], "developer");
    assert_eq!(body["input"][0]["content"][0]["text"], "Be kind.");
}

#[test]
fn tool_calls_and_results_round_trip_with_their_call_ids() {
    let (_, body) = run(json!({"messages": [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21"}, {"type": "text", "text": "C"}]},
        {"role": "assistant", "content": "Paris 18C, Rome 21C."}
    ]}));
    let input = body["input"].as_array().unwrap();
    assert_eq!(
        input.len(),
        6,
        "no empty assistant message for a tool-only turn"
    );
    assert_eq!(
        input[1],
        json!({"type": "function_call", "name": "weather", "arguments": "{\"city\":\"Paris\"}", "call_id": "call_1"})
    );
    assert_eq!(
        input[3],
        json!({"type": "function_call_output", "call_id": "call_1", "output": "18C"})
    );
    assert_eq!(input[4]["output"], "21\nC");
    assert_eq!(
        input[5],
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Paris 18C, Rome 21C."}]})
    );
}

#[test]
fn tool_results_with_images_keep_their_parts() {
    let (_, body) = run(json!({"messages": [
        {"role": "user", "content": "screenshot?"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": [
            {"type": "text", "text": "here"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
        ]}
    ]}));
    assert_eq!(
        body["input"][2]["output"],
        json!([
            {"type": "input_text", "text": "here"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
        ])
    );
}

#[test]
fn custom_tool_calls_get_custom_outputs() {
    let (_, body) = run(json!({"messages": [
        {"role": "user", "content": "patch"},
        {"role": "assistant", "tool_calls": [{"id": "p1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}]},
        {"role": "tool", "tool_call_id": "p1", "content": "ok"}
    ], "tools": [{"type": "custom", "custom": {"name": "apply_patch", "description": "patch files"}}]}));
    assert_eq!(
        body["input"][1],
        json!({"type": "custom_tool_call", "call_id": "p1", "name": "apply_patch", "input": "*** Begin Patch"})
    );
    assert_eq!(
        body["input"][2],
        json!({"type": "custom_tool_call_output", "call_id": "p1", "output": "ok"})
    );
    assert_eq!(
        body["tools"][0],
        json!({"type": "custom", "name": "apply_patch", "description": "patch files"})
    );
}

#[test]
fn legacy_functions_map_to_tools_and_calls() {
    let (_, body) = run(json!({
        "messages": [
            {"role": "user", "content": "add 2 and 3"},
            {"role": "assistant", "content": null, "function_call": {"name": "add", "arguments": "{\"a\":2,\"b\":3}"}},
            {"role": "function", "name": "add", "content": "5"}
        ],
        "functions": [{"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}],
        "function_call": {"name": "add"}
    }));
    let call_id = body["input"][1]["call_id"].as_str().unwrap();
    assert_eq!(
        body["input"][2],
        json!({"type": "function_call_output", "call_id": call_id, "output": "5"})
    );
    assert_eq!(body["tools"][0]["name"], "add");
    assert_eq!(
        body["tools"][0]["strict"], false,
        "strict is always sent: absent means true upstream"
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "name": "add"})
    );
}

#[test]
fn orphan_tool_results_are_refused_up_front() {
    let e = err(
        json!({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}]}),
    );
    assert_eq!(e.status.as_u16(), 400);
    assert_eq!(e.param.as_deref(), Some("messages[1].tool_call_id"));
    assert!(e.message.contains("'nope'"));
    let e = err(json!({"messages": [{"role": "function", "name": "f", "content": "1"}]}));
    assert_eq!(e.param.as_deref(), Some("messages[0].name"));
}

#[test]
fn images_and_files_become_input_parts() {
    let (_, body) = run(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}},
        {"type": "image_url", "image_url": "https://x/b.png"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
    ]}]}));
    assert_eq!(
        body["input"][0]["content"],
        json!([
            {"type": "input_text", "text": "compare"},
            {"type": "input_image", "image_url": "https://x/a.png", "detail": "high"},
            {"type": "input_image", "image_url": "https://x/b.png"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}
        ])
    );
    let e = err(
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "ultra"}}]}]}),
    );
    assert_eq!(
        e.param.as_deref(),
        Some("messages[0].content[0].image_url.detail")
    );
    let e = err(
        json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
    );
    assert!(e.message.contains("audio"));
    let e = err(
        json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": "u"}]}]}),
    );
    assert!(e.message.contains("only contain text"));
}

#[test]
fn tools_strict_schemas_and_choices() {
    let params = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false});
    let (_, body) = run(json!({
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Get weather", "parameters": params, "strict": true}}],
        "tool_choice": "required",
        "parallel_tool_calls": false
    }));
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "name": "weather", "description": "Get weather", "strict": true, "parameters": params})
    );
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["parallel_tool_calls"], false);

    let e = err(json!({
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "w", "strict": true,
            "parameters": {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}, "required": ["a"], "additionalProperties": false}}}]
    }));
    assert_eq!(
        e.param.as_deref(),
        Some("tools[0].function.parameters.properties.a")
    );

    let e = err(
        json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "has space"}}]}),
    );
    assert_eq!(e.param.as_deref(), Some("tools[0].function.name"));

    let e = err(
        json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function", "function": {"name": "ghost"}}}),
    );
    assert_eq!(e.param.as_deref(), Some("tool_choice"));

    let e = err(json!({"messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "a"}}]}));
    assert!(e.message.contains("twice"));
}

#[test]
fn response_formats_and_verbosity() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false});
    let (_, body) = run(
        json!({"messages": [{"role": "user", "content": "x"}], "verbosity": "high",
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": true}}}),
    );
    assert_eq!(
        body["text"],
        json!({"verbosity": "high", "format": {"type": "json_schema", "name": "out", "schema": schema, "strict": true}})
    );

    let (_, body) = run(
        json!({"messages": [{"role": "user", "content": "json please"}], "response_format": {"type": "json_object"}}),
    );
    assert_eq!(body["text"], json!({"format": {"type": "json_object"}}));

    let (_, body) = run(
        json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}),
    );
    assert!(body.get("text").is_none());

    let e = err(json!({"messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "strict": true, "schema": {"type": "object", "properties": {"n": {}}}}}}));
    assert_eq!(
        e.param.as_deref(),
        Some("response_format.json_schema.schema")
    );
    assert!(e.message.contains("additionalProperties"));
    let e = err(json!({"messages": [{"role": "user", "content": "x"}], "verbosity": "loud"}));
    assert_eq!(e.param.as_deref(), Some("verbosity"));
}

#[test]
fn reasoning_effort_precedence_and_validation() {
    let msg = json!([{"role": "user", "content": "x"}]);
    let effort_of = |body: Value, model: &str, config: &ModelConfig| {
        run_with(body, model, config).unwrap().1["reasoning"]["effort"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let base = ModelConfig::default();
    assert_eq!(
        effort_of(json!({"messages": msg}), "gpt-5.5", &base),
        "medium",
        "model default"
    );
    assert_eq!(
        effort_of(json!({"messages": msg}), "gpt-5.6-sol", &base),
        "low",
        "per-model default"
    );
    assert_eq!(
        effort_of(json!({"messages": msg}), "gpt-5.5-high", &base),
        "high",
        "suffix"
    );
    assert_eq!(
        effort_of(
            json!({"messages": msg, "reasoning_effort": "low"}),
            "gpt-5.5-high",
            &base
        ),
        "low",
        "field wins"
    );
    assert_eq!(
        effort_of(
            json!({"messages": msg, "reasoning": {"effort": "xhigh"}}),
            "gpt-5.5",
            &base
        ),
        "xhigh"
    );
    let configured = ModelConfig {
        default_reasoning_effort: Some(ReasoningEffort::High),
        ..ModelConfig::default()
    };
    assert_eq!(
        effort_of(json!({"messages": msg}), "gpt-5.5", &configured),
        "high",
        "config default"
    );
    let unsupported = ModelConfig {
        default_reasoning_effort: Some(ReasoningEffort::Max),
        ..ModelConfig::default()
    };
    assert_eq!(
        effort_of(json!({"messages": msg}), "gpt-5.5", &unsupported),
        "medium",
        "config falls back"
    );
    assert_eq!(
        effort_of(
            json!({"messages": msg, "reasoning_effort": "ultra"}),
            "gpt-5.6-sol",
            &base
        ),
        "max"
    );

    let e = run_with(
        json!({"messages": msg, "reasoning_effort": "minimal"}),
        "gpt-5.5",
        &base,
    )
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("reasoning_effort"));
    assert!(e.message.contains("low, medium, high, xhigh"));
}

#[test]
fn reasoning_output_none_requests_no_summary() {
    let config = ModelConfig {
        reasoning_output: ReasoningOutput::None,
        ..ModelConfig::default()
    };
    let (_, body) = run_with(
        json!({"messages": [{"role": "user", "content": "x"}]}),
        "gpt-5.5",
        &config,
    )
    .unwrap();
    assert_eq!(body["reasoning"], json!({"effort": "medium"}));
}

#[test]
fn refused_parameters_are_reported_never_forwarded() {
    let (t, body) = run(json!({
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.2, "top_p": 1, "max_tokens": 100, "max_completion_tokens": 50, "seed": 7,
        "presence_penalty": 0, "frequency_penalty": 0, "logprobs": true, "user": "u", "metadata": {"a": "b"},
        "store": true, "top_k": 40
    }));
    for name in [
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "logprobs",
        "user",
        "metadata",
        "store",
        "top_k",
    ] {
        assert!(t.ignored.iter().any(|i| i == name), "{name} reported");
        if name != "store" {
            assert!(body.get(name).is_none(), "{name} not forwarded");
        }
    }
    assert_eq!(body["store"], false);
}

#[test]
fn stop_n_stream_and_usage_options() {
    let (t, _) = run(
        json!({"messages": [{"role": "user", "content": "x"}], "stop": ["\n\n", "END"], "n": 3,
        "stream": true, "stream_options": {"include_usage": true}}),
    );
    assert_eq!(
        (t.stop.len(), t.n, t.stream, t.include_usage),
        (2, 3, true, true)
    );
    let (t, _) =
        run(json!({"messages": [{"role": "user", "content": "x"}], "stop": "END", "stream": null}));
    assert_eq!(t.stop, ["END"]);
    assert!(!t.stream);
    assert_eq!(
        err(json!({"messages": [{"role": "user", "content": "x"}], "n": 0}))
            .param
            .as_deref(),
        Some("n")
    );
    assert_eq!(
        err(json!({"messages": [{"role": "user", "content": "x"}], "n": 9}))
            .param
            .as_deref(),
        Some("n")
    );
    assert_eq!(err(json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]})).param.as_deref(), Some("stop"));
    assert_eq!(
        err(json!({"messages": []})).param.as_deref(),
        Some("messages")
    );
}

#[test]
fn service_tier_is_forwarded_only_when_meaningful() {
    let tier = |t: &str| {
        run(json!({"messages": [{"role": "user", "content": "x"}], "service_tier": t}))
            .1
            .get("service_tier")
            .cloned()
    };
    assert_eq!(tier("priority"), Some(json!("priority")));
    assert_eq!(tier("flex"), Some(json!("flex")));
    assert_eq!(tier("auto"), None);
    assert_eq!(tier("default"), None);
    assert_eq!(
        err(json!({"messages": [{"role": "user", "content": "x"}], "service_tier": "turbo"}))
            .param
            .as_deref(),
        Some("service_tier")
    );
}

#[test]
fn lite_models_carry_tools_and_instructions_in_the_input() {
    let (t, body) = run_with(
        json!({"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "x"}],
               "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]}),
        "gpt-5.6-sol",
        &ModelConfig::default(),
    )
    .unwrap();
    assert!(t.lite);
    assert!(body.get("instructions").is_none() && body.get("tools").is_none());
    assert_eq!(body["input"][0]["type"], "additional_tools");
    assert_eq!(body["input"][0]["tools"][0]["type"], "namespace");
    assert_eq!(body["input"][0]["tools"][0]["name"], "functions");
    assert_eq!(body["input"][0]["tools"][0]["tools"][0]["name"], "f");
    assert_eq!(
        body["input"][1],
        json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Sys"}]})
    );
    assert_eq!(body["reasoning"]["context"], "all_turns");
    assert_eq!(body["parallel_tool_calls"], false);
}

#[test]
fn conversation_seed_is_system_and_first_user_message() {
    let first = chat(
        json!({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}]}),
    );
    let later = chat(
        json!({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}]}),
    );
    let other = chat(
        json!({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q9"}]}),
    );
    assert_eq!(conversation_seed(&first), conversation_seed(&later));
    assert_ne!(conversation_seed(&first), conversation_seed(&other));
}

#[test]
fn empty_and_null_contents_are_accepted() {
    let (_, body) = run(json!({"messages": [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": null},
        {"role": "user", "content": []}
    ]}));
    let input = body["input"].as_array().unwrap();
    assert_eq!(
        input[0]["content"],
        json!([{"type": "input_text", "text": ""}])
    );
    assert_eq!(
        input[1]["type"], "function_call",
        "an empty assistant message is dropped"
    );
    assert_eq!(input[2]["output"], "");
    assert_eq!(input[3]["content"], json!([]));
}

/// A history translated in two parts — the first `k` messages, then the rest continuing from
/// the first part's [`History`] — gives the body translating it whole gives, at every `k`; the
/// daemon's continued turns (large requests after their conversation's last) rest on this.
#[test]
fn a_history_continued_from_any_point_translates_as_a_whole() {
    use crate::upstream::written::Written;
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Prefer tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "Done."}]},
        {"role": "system", "content": "A later system message keeps its place."},
        {"role": "assistant", "content": null, "function_call": {"name": "lookup", "arguments": "{}"}},
        {"role": "function", "name": "lookup", "content": "found"},
        {"role": "user", "content": "Thanks."},
    ]);
    let all: Vec<Value> = messages.as_array().unwrap().clone();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "custom", "custom": {"name": "apply_patch"}}, {"type": "function", "function": {"name": "lookup"}}]);
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
        };
        let request = |messages: &[Value]| {
            chat(json!({"model": "gpt-5.5", "messages": messages, "tools": tools, "stream": true}))
        };
        let (whole, _) = translate_after(request(&all), &ctx, History::default()).unwrap();
        let whole = Written::write(&whole.body, None).unwrap().to_json();
        for k in 0..=all.len() {
            let (first, history) = if k == 0 {
                (None, History::default())
            } else {
                let (t, h) = translate_after(request(&all[..k]), &ctx, History::default()).unwrap();
                (Some(Written::write(&t.body, None).unwrap()), h)
            };
            assert_eq!(history.len(), k);
            let (rest, after) = translate_after(request(&all[k..]), &ctx, history).unwrap();
            assert_eq!(after.len(), all.len());
            let continued = Written::write(&rest.body, first.as_ref().map(Written::items)).unwrap();
            assert_eq!(
                String::from_utf8(continued.to_json()).unwrap(),
                String::from_utf8(whole.clone()).unwrap(),
                "split at {k}"
            );
        }
    }
    // An error in the continued part names the message by its place in the whole request.
    let (_, history) = translate_after(
        chat(json!({"messages": all[..3]})),
        &Context {
            model: &model,
            config: &ModelConfig::default(),
            prompt_cache_key: "conv".into(),
        },
        History::default(),
    )
    .unwrap();
    let error = translate_after(
        chat(json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})),
        &Context {
            model: &model,
            config: &ModelConfig::default(),
            prompt_cache_key: "conv".into(),
        },
        history,
    )
    .unwrap_err();
    assert!(
        error.message.starts_with("messages[3]"),
        "{}",
        error.message
    );
}
