//! The Anthropic Messages API end to end against the strict fake: Claude Code's recorded
//! request, the stream's exact event order, thinking blocks whose signatures bring the
//! reasoning back to its account, tool round trips, stop sequences, Claude model names,
//! count_tokens, the model list, and every error in Anthropic's shape.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Script};
use codex_proxy_tests::harness::{Daemon, parse_sse};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

async fn setup(accounts: &[usize]) -> (FakeUpstream, Daemon) {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, accounts).start();
    (fake, daemon)
}

/// POSTs as Claude Code does: `x-api-key`, `anthropic-version`, its beta list, its session.
async fn post_as(
    daemon: &Daemon,
    path: &str,
    body: &Value,
    session: &str,
) -> (u16, HeaderMap, String) {
    let response = reqwest::Client::new()
        .post(daemon.url(path))
        .header("x-api-key", daemon.api_key())
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
        )
        .header("x-claude-code-session-id", session)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn post(daemon: &Daemon, body: &Value) -> (u16, HeaderMap, String) {
    post_as(daemon, "/v1/messages?beta=true", body, "s-1").await
}

fn upstream_bodies(fake: &FakeUpstream) -> Vec<Value> {
    fake.requests_to(RESPONSES_PATH)
        .into_iter()
        .filter_map(|r| r.body)
        .collect()
}

fn last_upstream(fake: &FakeUpstream) -> Value {
    upstream_bodies(fake).pop().unwrap()
}

/// Claude Code 2.1.328's non-streamed request as recorded (trimmed): the billing line, cached
/// system blocks, a system message inside `messages`, adaptive thinking shown as omitted, a
/// deferred tool, context management, metadata.user_id as a JSON string.
fn claude_code_body(billing: &str, prompt: &str) -> Value {
    json!({
        "model": "claude-opus-5-5",
        "max_tokens": 64000,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "{\"device_id\":\"d1\",\"account_uuid\":\"\",\"session_id\":\"s-1\"}"},
        "stream": false,
        "system": [
            {"type": "text", "text": format!("x-anthropic-billing-header: cc_version=2.1.328.{billing}; cc_entrypoint=cli; cch=0a1b2;")},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use the tools to help the user.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>Today is 2026-12-04.</system-reminder>"},
                {"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "system", "content": "Working directory: /tmp/project"}
        ],
        "tools": [
            {"name": "Bash", "description": "Runs a shell command.", "input_schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
                "required": ["command"], "additionalProperties": false}},
            {"name": "Read", "description": "Reads a file.", "defer_loading": true, "input_schema": {
                "type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}
        ]
    })
}

#[tokio::test]
async fn claude_codes_request_works_and_reaches_the_backend_as_it_should() {
    let (fake, daemon) = setup(&[0]).await;
    let (status, headers, text) = post(&daemon, &claude_code_body("abc", "say hi")).await;
    assert_eq!(status, 200, "{text}");
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-opus-5-5");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    let content = message["content"].as_array().unwrap();
    // Thinking shown as "omitted": the block is there with its signature, without text.
    assert_eq!(content[0]["type"], "thinking", "{message}");
    assert_eq!(content[0]["thinking"], "");
    assert!(
        content[0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("cpx1.")
    );
    assert_eq!(content[1]["type"], "text");
    assert!(content[1]["text"].as_str().unwrap().contains("say hi"));
    let usage = &message["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert!(usage["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert!(usage["cache_read_input_tokens"].is_u64());
    // Unknown betas are accepted and listed; so are parameters that are not forwarded.
    let betas = headers["x-codex-proxy-ignored-betas"].to_str().unwrap();
    assert!(betas.contains("context-management-2025-06-27"), "{betas}");
    assert!(!betas.contains("claude-code-20250219"), "{betas}");
    let ignored = headers["x-codex-proxy-ignored-params"].to_str().unwrap();
    assert!(ignored.contains("context_management"), "{ignored}");

    let up = last_upstream(&fake);
    assert_eq!(up["model"], "gpt-5.5");
    assert_eq!(up["stream"], true);
    assert_eq!(up["store"], false);
    assert_eq!(up["reasoning"]["effort"], "medium");
    // Omitted thinking asks for no summary.
    assert!(up["reasoning"].get("summary").is_none(), "{up}");
    assert!(up.get("max_tokens").is_none() && up.get("max_output_tokens").is_none());
    let instructions = up["instructions"].as_str().unwrap();
    assert!(
        instructions.starts_with("You are Claude Code"),
        "{instructions}"
    );
    assert!(!instructions.contains("x-anthropic-billing-header"));
    let input = up["input"].as_array().unwrap();
    assert_eq!(input[0]["role"], "user");
    assert_eq!(input[0]["content"].as_array().unwrap().len(), 2);
    assert_eq!(input[1]["role"], "developer");
    assert_eq!(
        input[1]["content"][0]["text"],
        "Working directory: /tmp/project"
    );
    let tools = up["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    for tool in tools {
        assert_eq!(tool["type"], "function");
        assert_eq!(tool["strict"], false);
        assert!(tool.get("defer_loading").is_none());
        assert!(tool["parameters"].get("$schema").is_none());
    }

    // The next request of the session has a new billing line: the same conversation, the same
    // instructions and cache key, so the prompt cache hits.
    let (status, _, text) = post(&daemon, &claude_code_body("def", "say hi again")).await;
    assert_eq!(status, 200, "{text}");
    let bodies = upstream_bodies(&fake);
    let (a, b) = (&bodies[bodies.len() - 2], &bodies[bodies.len() - 1]);
    assert_eq!(a["prompt_cache_key"], b["prompt_cache_key"]);
    assert_eq!(a["instructions"], b["instructions"]);
}

#[tokio::test]
async fn a_stream_has_anthropics_exact_event_order() {
    let (fake, daemon) = setup(&[0]).await;
    fake.enqueue(Script::text("Hello there").with_reasoning("Plan the answer"));
    let body = json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 128000,
        "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "messages": [{"role": "user", "content": "hi"}]
    });
    let (status, headers, text) = post(&daemon, &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "text/event-stream");
    let events = parse_sse(&text);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.event.as_str())
        .filter(|n| *n != "ping")
        .collect();
    let mut expected = vec!["message_start", "content_block_start"];
    // Thinking deltas, then the signature just before the thinking block stops.
    let thinking_deltas = events
        .iter()
        .filter(|e| e.data["delta"]["type"] == "thinking_delta")
        .count();
    assert!(thinking_deltas >= 2, "{text}");
    expected.extend(std::iter::repeat_n(
        "content_block_delta",
        thinking_deltas + 1,
    ));
    expected.extend(["content_block_stop", "content_block_start"]);
    let text_deltas = events
        .iter()
        .filter(|e| e.data["delta"]["type"] == "text_delta")
        .count();
    expected.extend(std::iter::repeat_n("content_block_delta", text_deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected, "{text}");
    for event in &events {
        assert_eq!(event.data["type"], event.event.as_str());
    }
    let start = &events[0].data["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let block = &events[1].data;
    assert_eq!(block["index"], 0);
    assert_eq!(
        block["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    let signature = events
        .iter()
        .find(|e| e.data["delta"]["type"] == "signature_delta")
        .unwrap();
    assert_eq!(signature.data["index"], 0);
    assert!(
        signature.data["delta"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("cpx1.")
    );
    let text_start = events
        .iter()
        .filter(|e| e.event == "content_block_start")
        .nth(1)
        .unwrap();
    assert_eq!(text_start.data["index"], 1);
    assert_eq!(
        text_start.data["content_block"],
        json!({"type": "text", "text": ""})
    );
    let answer: String = events
        .iter()
        .filter(|e| e.data["delta"]["type"] == "text_delta")
        .map(|e| e.data["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(answer, "Hello there");
    let delta = events.iter().find(|e| e.event == "message_delta").unwrap();
    assert_eq!(delta.data["delta"]["stop_reason"], "end_turn");
    assert!(delta.data["usage"]["output_tokens"].as_u64().unwrap() > 0);
    // The budget maps to an effort; summaries were asked for.
    let up = last_upstream(&fake);
    assert_eq!(up["reasoning"]["effort"], "high");
    assert_eq!(up["reasoning"]["summary"], "auto");
}

#[tokio::test]
async fn without_thinking_no_thinking_blocks_appear() {
    let (fake, daemon) = setup(&[0]).await;
    fake.enqueue(Script::text("plain").with_reasoning("hidden"));
    let body = json!({"model": "gpt-5.5", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = post(&daemon, &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("thinking"), "{text}");
    let starts: Vec<Value> = parse_sse(&text)
        .into_iter()
        .filter(|e| e.event == "content_block_start")
        .map(|e| e.data)
        .collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0]["index"], 0);
}

#[tokio::test]
async fn a_tool_loop_keeps_its_ids_and_gives_the_reasoning_back_to_its_account() {
    let (fake, daemon) = setup(&[0, 1]).await;
    fake.enqueue(
        Script::function_call("Bash", r#"{"command":"ls"}"#).with_reasoning("I should list"),
    );
    let tools = json!([{"name": "Bash", "description": "Runs a command.",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]);
    let first = json!({"model": "claude-opus-4-7", "max_tokens": 1000,
        "thinking": {"type": "enabled", "budget_tokens": 2000}, "tools": tools,
        "messages": [{"role": "user", "content": "list files"}]});
    let (status, _, text) = post(&daemon, &first).await;
    assert_eq!(status, 200, "{text}");
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    let content = message["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "thinking");
    assert_eq!(content[0]["thinking"], "I should list");
    let tool_use = content.iter().find(|b| b["type"] == "tool_use").unwrap();
    assert_eq!(tool_use["name"], "Bash");
    assert_eq!(tool_use["input"], json!({"command": "ls"}));
    let id = tool_use["id"].as_str().unwrap().to_owned();
    let first_account =
        fake.requests_to(RESPONSES_PATH).last().unwrap().headers["chatgpt-account-id"].clone();

    // The client runs the tool and sends everything back, thinking block included.
    let second = json!({"model": "claude-opus-4-7", "max_tokens": 1000,
    "thinking": {"type": "enabled", "budget_tokens": 2000}, "tools": tools,
    "messages": [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": "a.txt\nb.txt"}]},
            {"type": "text", "text": "and now?"}
        ]}
    ]});
    let (status, _, text) = post_as(&daemon, "/v1/messages", &second, "other-session").await;
    assert_eq!(status, 200, "{text}");
    let recorded = fake.requests_to(RESPONSES_PATH).pop().unwrap();
    // Another session, yet the reasoning went to the account that made it (the fake refuses
    // it anywhere else).
    assert_eq!(recorded.headers["chatgpt-account-id"], first_account);
    let input = recorded.body.unwrap()["input"].as_array().unwrap().clone();
    let kinds: Vec<&str> = input
        .iter()
        .map(|i| i["type"].as_str().unwrap_or("message"))
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "reasoning",
            "function_call",
            "function_call_output",
            "message"
        ]
    );
    assert_eq!(input[1]["summary"][0]["text"], "I should list");
    assert!(input[1]["encrypted_content"].as_str().unwrap().len() > 8);
    assert_eq!(input[2]["call_id"], id.as_str());
    assert_eq!(input[2]["arguments"], r#"{"command":"ls"}"#);
    assert_eq!(input[3]["call_id"], id.as_str());
    assert_eq!(input[3]["output"], "a.txt\nb.txt");

    // A tool_result whose call is missing is the client's error, said before going upstream.
    let orphan = json!({"model": "gpt-5.5", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_missing", "content": "x"}]}]});
    let (status, _, text) = post(&daemon, &orphan).await;
    assert_eq!(status, 400, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(text.contains("toolu_missing"));
}

#[tokio::test]
async fn thinking_sent_back_to_an_account_that_cannot_read_it_is_dropped_and_the_turn_runs() {
    let (fake, daemon) = setup(&[0, 1]).await;
    fake.enqueue(Script::text("first").with_reasoning("think"));
    let first = json!({"model": "gpt-5.5", "max_tokens": 100,
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "messages": [{"role": "user", "content": "one"}]});
    let (status, _, text) = post(&daemon, &first).await;
    assert_eq!(status, 200, "{text}");
    let message: Value = serde_json::from_str(&text).unwrap();
    let signature = message["content"][0]["signature"].as_str().unwrap();
    // A signature naming an account the daemon does not have: the account is unknown, the
    // pool picks one, and if that one cannot read it the turn goes again without it.
    let (_, encrypted) = signature
        .strip_prefix("cpx1.")
        .unwrap()
        .split_once('.')
        .unwrap();
    let forged = format!("cpx1.bm9uZQ.{encrypted}");
    let mut thinking = message["content"][0].clone();
    thinking["signature"] = json!(forged);
    for _ in 0..4 {
        let next = json!({"model": "gpt-5.5", "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "first"}]},
            {"role": "user", "content": "two"}
        ]});
        let (status, _, text) = post_as(&daemon, "/v1/messages", &next, "s-x").await;
        assert_eq!(status, 200, "{text}");
    }
    // Not all four can have gone to the account that made it (the rotation spreads them):
    // the ones that did not were retried without the reasoning.
    let stripped = upstream_bodies(&fake)
        .iter()
        .filter(|b| b["input"].as_array().unwrap().len() == 3)
        .count();
    let with = upstream_bodies(&fake)
        .iter()
        .filter(|b| {
            b["input"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["type"] == "reasoning")
        })
        .count();
    assert!(with >= 1, "every attempt carried the reasoning first");
    assert!(stripped + with >= 4);
}

#[tokio::test]
async fn stop_sequences_cut_locally_and_limits_give_max_tokens() {
    let (fake, daemon) = setup(&[0]).await;
    fake.enqueue(Script::deltas(["one two ", "thr", "ee four"]));
    let body = json!({"model": "gpt-5.5", "max_tokens": 100, "stop_sequences": ["three"],
        "messages": [{"role": "user", "content": "count"}]});
    let (status, _, text) = post(&daemon, &body).await;
    assert_eq!(status, 200, "{text}");
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["content"][0]["text"], "one two ");
    assert_eq!(message["stop_reason"], "stop_sequence");
    assert_eq!(message["stop_sequence"], "three");

    fake.enqueue(Script::deltas(["one two ", "thr", "ee four"]));
    let body = json!({"model": "gpt-5.5", "max_tokens": 100, "stop_sequences": ["three"], "stream": true,
        "messages": [{"role": "user", "content": "count"}]});
    let (_, _, text) = post(&daemon, &body).await;
    let events = parse_sse(&text);
    let answer: String = events
        .iter()
        .filter(|e| e.data["delta"]["type"] == "text_delta")
        .map(|e| e.data["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(answer, "one two ");
    let delta = events.iter().find(|e| e.event == "message_delta").unwrap();
    assert_eq!(delta.data["delta"]["stop_sequence"], "three");
    assert_eq!(events.last().unwrap().event, "message_stop");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event == "content_block_stop")
            .count(),
        1
    );

    fake.enqueue(Script::incomplete("max_output_tokens"));
    let body = json!({"model": "gpt-5.5", "max_tokens": 5, "messages": [{"role": "user", "content": "long"}]});
    let (_, _, text) = post(&daemon, &body).await;
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn claude_model_names_map_to_codex_models() {
    let (fake, daemon) = setup(&[0]).await;
    for (name, slug) in [
        ("claude-opus-5-5", "gpt-5.5"),
        ("claude-opus-4-7[1m]", "gpt-5.5"),
        ("claude-sonnet-4-5-20250929", "gpt-5.5"),
        ("claude-haiku-4-5-20251001", "gpt-5.4-mini"),
        ("gpt-5.4-mini", "gpt-5.4-mini"),
        ("codex", "gpt-5.5"),
    ] {
        let body = json!({"model": name, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        let (status, _, text) = post(&daemon, &body).await;
        assert_eq!(status, 200, "{name}: {text}");
        assert_eq!(last_upstream(&fake)["model"], slug, "{name}");
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["model"], name);
    }
    let body = json!({"model": "llama-3", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = post(&daemon, &body).await;
    assert_eq!(status, 404, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn errors_come_in_anthropics_shape_and_statuses() {
    let (fake, daemon) = setup(&[0]).await;
    let good = json!({"model": "gpt-5.5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    // No key.
    let response = reqwest::Client::new()
        .post(daemon.url("/v1/messages"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");
    // Bad requests.
    for (body, needle) in [
        (
            json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "gpt-5.5", "max_tokens": 10, "messages": []}),
            "messages",
        ),
        (
            json!({"model": "gpt-5.5", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "bogus"}]}]}),
            "bogus",
        ),
        (
            json!({"model": "gpt-5.5", "max_tokens": 10, "tools": [{"type": "code_execution_20250825", "name": "code_execution"}],
            "messages": [{"role": "user", "content": "hi"}]}),
            "code_execution",
        ),
        (
            json!({"model": "gpt-5.5", "max_tokens": 10, "tool_choice": {"type": "tool", "name": "nope"},
            "messages": [{"role": "user", "content": "hi"}]}),
            "nope",
        ),
    ] {
        let (status, _, text) = post(&daemon, &body).await;
        assert_eq!(status, 400, "{body}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(needle),
            "{text}"
        );
    }
    // The pool's usage limit: 429 with a retry-after.
    fake.enqueue(Script::usage_limit(600));
    let (status, headers, text) = post(&daemon, &good).await;
    assert_eq!(status, 429, "{text}");
    assert!(headers.contains_key("retry-after"));
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn a_context_overflow_is_said_in_anthropics_words() {
    let (fake, daemon) = setup(&[0]).await;
    for stream in [false, true] {
        fake.enqueue(Script::failed_at_once(
            "context_length_exceeded",
            "Your input exceeds the context window of this model.",
        ));
        let body = json!({"model": "claude-opus-4-7", "max_tokens": 10, "stream": stream,
            "messages": [{"role": "user", "content": "a very long history"}]});
        let (status, _, text) = post(&daemon, &body).await;
        assert_eq!(status, 400, "{text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("prompt is too long: ") && message.ends_with(" maximum"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_failure_after_the_first_byte_is_an_error_event() {
    let (fake, daemon) = setup(&[0]).await;
    fake.enqueue(Script::failed("server_error", "The model broke."));
    let body = json!({"model": "gpt-5.5", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = post(&daemon, &body).await;
    assert_eq!(status, 200, "{text}");
    let events = parse_sse(&text);
    let last = events.last().unwrap();
    assert_eq!(last.event, "error", "{text}");
    assert_eq!(last.data["type"], "error");
    assert_eq!(last.data["error"]["type"], "api_error");
    assert!(!events.iter().any(|e| e.event == "message_stop"));
}

#[tokio::test]
async fn count_tokens_models_and_the_connectivity_probe() {
    let (_fake, daemon) = setup(&[0]).await;
    let small =
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = post_as(&daemon, "/v1/messages/count_tokens", &small, "c").await;
    assert_eq!(status, 200, "{text}");
    let small_count = serde_json::from_str::<Value>(&text).unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    let big = claude_code_body("abc", &"hello world ".repeat(500));
    let (status, _, text) = post_as(&daemon, "/v1/messages/count_tokens", &big, "c").await;
    assert_eq!(status, 200, "{text}");
    let big_count = serde_json::from_str::<Value>(&text).unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        small_count > 0 && big_count > small_count + 900,
        "{small_count} {big_count}"
    );

    let models: Value = reqwest::Client::new()
        .get(daemon.url("/v1/models"))
        .header("x-api-key", daemon.api_key())
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["has_more"], false);
    let first = &models["data"][0];
    assert_eq!(first["type"], "model");
    assert!(first["max_input_tokens"].as_u64().unwrap() > 100_000);
    assert!(first["display_name"].is_string() && first["created_at"].is_string());
    assert_eq!(models["first_id"], first["id"]);

    let one: Value = reqwest::Client::new()
        .get(daemon.url("/v1/models/claude-opus-4-7"))
        .header("x-api-key", daemon.api_key())
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["type"], "model");
    assert_eq!(one["id"], "claude-opus-4-7");

    let probe = reqwest::Client::new()
        .head(daemon.url("/api/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
}

/// A conversation whose account ran out of quota (found by another conversation) gives its
/// thinking back to no one: the account that made it takes no turns now, so the turn goes to
/// another without the thinking at once — one attempt, nothing refused.
#[tokio::test]
async fn thinking_of_an_account_out_of_quota_is_left_out_before_the_turn_goes() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0, 1])
        .set("auth", "rotation_strategy = \"sticky\"")
        .start();
    fake.enqueue(Script::text("first").with_reasoning("think"));
    let first = json!({"model": "gpt-5.5", "max_tokens": 100,
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "messages": [{"role": "user", "content": "one"}]});
    let (status, _, text) = post(&daemon, &first).await;
    assert_eq!(status, 200, "{text}");
    let message: Value = serde_json::from_str(&text).unwrap();
    let account = fake.requests_to(RESPONSES_PATH)[0]
        .account_id
        .clone()
        .unwrap();
    let index = (0..2)
        .find(|i| fake.account(*i).account_id == account)
        .unwrap();
    // Another conversation finds the account used up (and goes on elsewhere).
    fake.set_usage(index, 100.0, 100.0);
    let other = json!({"model": "gpt-5.5", "max_tokens": 100,
        "messages": [{"role": "user", "content": "another conversation"}]});
    let (status, _, text) = post_as(&daemon, "/v1/messages", &other, "s-2").await;
    assert_eq!(status, 200, "{text}");
    let statuses: Vec<u16> = fake
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 429, 200]);

    let before = fake.requests_to(RESPONSES_PATH).len();
    let next = json!({"model": "gpt-5.5", "max_tokens": 100,
    "thinking": {"type": "enabled", "budget_tokens": 4000},
    "messages": [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": "two"}
    ]});
    let (status, _, text) = post(&daemon, &next).await;
    assert_eq!(status, 200, "{text}");
    let turns = fake.requests_to(RESPONSES_PATH);
    assert_eq!(turns.len(), before + 1, "one attempt: nothing refused");
    let last = turns.last().unwrap();
    assert_eq!(last.status, 200, "{:?}", last.rejection);
    assert_ne!(last.account_id.as_deref(), Some(account.as_str()));
    let input = last.body.as_ref().unwrap()["input"]
        .as_array()
        .unwrap()
        .clone();
    assert!(input.iter().all(|i| i["type"] != "reasoning"), "{input:?}");
    assert_eq!(input.len(), 3, "{input:?}");
}
