//! `/v1/responses` end to end against the strict fake: pass-through fidelity, streaming with
//! `event:` lines, the assembled response, the response store (`previous_response_id`,
//! `item_reference`, retrieve, delete) and the errors in OpenAI's shape.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Script};
use codex_proxy_tests::harness::Daemon;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

async fn setup() -> (FakeUpstream, Daemon) {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    (fake, daemon)
}

async fn post(daemon: &Daemon, body: &Value) -> (u16, HeaderMap, String) {
    let response = daemon
        .client()
        .post(daemon.url("/v1/responses"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn last_upstream_body(fake: &FakeUpstream) -> Value {
    fake.requests_to(RESPONSES_PATH)
        .last()
        .unwrap()
        .body
        .clone()
        .unwrap()
}

/// The body Codex CLI 0.169 sends (trimmed): no instructions, custom and web_search tools,
/// text.verbosity, client_metadata, a prompt_cache_key of its own.
fn codex_cli_body() -> Value {
    json!({
        "model": "gpt-5.5",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex, a coding agent."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>cwd=/tmp</environment_context>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say hi"}]}
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Runs a command.", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"], "additionalProperties": false}},
            {"type": "custom", "name": "apply_patch", "description": "Edits files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
            {"type": "web_search", "external_web_access": false}
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019ae3c1-0000-7000-8000-000000000001",
        "text": {"verbosity": "low"},
        "client_metadata": {"session_id": "019ae3c1-0000-7000-8000-000000000001", "turn_id": "t1"}
    })
}

#[tokio::test]
async fn a_codex_cli_turn_reaches_the_backend_as_the_cli_sent_it() {
    let (fake, daemon) = setup().await;
    let body = codex_cli_body();
    let (status, headers, text) = post(&daemon, &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(
        last_upstream_body(&fake),
        body,
        "nothing to change: nothing changed"
    );
    let recorded = fake.requests_to(RESPONSES_PATH);
    let request = recorded.last().unwrap();
    assert_eq!(
        request.headers["session-id"], "019ae3c1-0000-7000-8000-000000000001",
        "the CLI's conversation id is the session"
    );
    // The backend's events, each with its `event:` line, ending in response.completed.
    let events: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter(|frame| !frame.trim().is_empty() && !frame.starts_with(':'))
        .map(|frame| {
            let kind = frame
                .lines()
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap();
            let data = frame
                .lines()
                .nth(1)
                .unwrap()
                .strip_prefix("data: ")
                .unwrap();
            (kind, serde_json::from_str(data).unwrap())
        })
        .collect();
    assert!(events.iter().all(|(kind, data)| data["type"] == *kind));
    assert_eq!(events.first().unwrap().0, "response.created");
    assert_eq!(events.last().unwrap().0, "response.completed");
    assert!(
        events
            .iter()
            .any(|(kind, _)| *kind == "response.output_text.delta")
    );
}

#[tokio::test]
async fn a_plain_request_gets_the_whole_response_and_what_was_dropped_is_said() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::text("Hello there."));
    let (status, headers, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": "hi", "instructions": "Be brief.",
                "temperature": 0.3, "max_output_tokens": 50, "metadata": {"k": "v"}}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let response: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output_text"], "Hello there.");
    assert!(response["id"].as_str().unwrap().starts_with("resp_"));
    let message = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "message")
        .unwrap();
    assert_eq!(message["content"][0]["text"], "Hello there.");
    assert!(response["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        headers["x-codex-proxy-ignored-params"],
        // (serde_json sorts the test's keys; the daemon keeps the order it gets)
        "max_output_tokens, metadata, temperature"
    );
    let upstream = last_upstream_body(&fake);
    assert_eq!(upstream["store"], false);
    assert_eq!(upstream["stream"], true);
    assert_eq!(upstream["input"][0]["content"][0]["text"], "hi");
    assert!(upstream.get("temperature").is_none());
    assert!(upstream["prompt_cache_key"].is_string());
}

#[tokio::test]
async fn previous_response_id_continues_the_conversation_on_its_account() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0, 1]).start();
    fake.enqueue(Script::text("Paris.").with_reasoning("Thinking about capitals."));
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": "Capital of France?"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let first: Value = serde_json::from_str(&text).unwrap();
    let id = first["id"].as_str().unwrap();

    // Retrievable, as OpenAI keeps responses by default.
    let got = daemon
        .client()
        .get(daemon.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.json::<Value>().await.unwrap()["id"], id);

    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": "And of Italy?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let upstream = last_upstream_body(&fake);
    assert!(upstream.get("previous_response_id").is_none());
    let input = upstream["input"].as_array().unwrap();
    let kinds: Vec<&str> = input.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["message", "reasoning", "message", "message"]);
    assert!(
        input[1]["encrypted_content"].is_string(),
        "the reasoning is replayed, encrypted"
    );
    assert_eq!(input[3]["content"][0]["text"], "And of Italy?");
    let accounts: Vec<Option<String>> = fake
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| r.account_id.clone())
        .collect();
    assert_eq!(
        accounts[0], accounts[1],
        "the same account reads its reasoning"
    );

    // Forgotten on request; then unknown.
    let deleted = daemon
        .client()
        .delete(daemon.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.json::<Value>().await.unwrap()["deleted"], true);
    let again = daemon
        .client()
        .delete(daemon.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": "x", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["code"], "previous_response_not_found");
    assert_eq!(error["error"]["param"], "previous_response_id");
}

#[tokio::test]
async fn item_references_resolve_from_kept_responses() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::function_call("get_weather", r#"{"city":"Oslo"}"#));
    let tools = json!([{"type": "function", "name": "get_weather", "strict": false,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    // The Vercel AI SDK's habit: store true, then refer to earlier items by id.
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": "Weather in Oslo?", "tools": tools, "store": true}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let first: Value = serde_json::from_str(&text).unwrap();
    let call = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap()
        .clone();
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "tools": tools, "input": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"type": "item_reference", "id": call["id"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "12 C"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let upstream = last_upstream_body(&fake);
    assert_eq!(upstream["input"][1], call, "the reference became the item");
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": [{"type": "item_reference", "id": "fc_unknown"}]}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("fc_unknown"), "{text}");
}

#[tokio::test]
async fn errors_have_openais_shape_before_and_after_the_first_byte() {
    let (fake, daemon) = setup().await;
    let (status, _, text) = post(&daemon, &json!({"model": "nope-9", "input": "x"})).await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["code"],
        "model_not_found"
    );
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": "x", "background": true}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    // A failure once output has started passes through as the backend's response.failed.
    fake.enqueue(Script::failed(
        "server_is_overloaded",
        "Selected model is at capacity",
    ));
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": "x", "stream": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.contains("event: response.failed"), "{text}");
    // Not streamed, the same failure is an HTTP error.
    fake.enqueue(Script::failed(
        "server_is_overloaded",
        "Selected model is at capacity",
    ));
    let (status, headers, text) = post(&daemon, &json!({"model": "gpt-5.5", "input": "x"})).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(headers["retry-after"], "5");
    let (status, _, _) = post(&daemon, &json!({"model": "gpt-5.5"})).await;
    assert_eq!(status, 400);
    let missing = daemon
        .client()
        .get(daemon.url("/v1/responses/resp_nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
