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

async fn get_json(daemon: &Daemon, path: &str) -> Value {
    let response = daemon.client().get(daemon.url(path)).send().await.unwrap();
    response.json().await.unwrap()
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

// ---- the Responses WebSocket ----

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(daemon: &Daemon, path: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = daemon.url(path).replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", daemon.api_key()).parse().unwrap(),
    );
    request.headers_mut().insert(
        "openai-beta",
        "responses_websockets=2026-02-06".parse().unwrap(),
    );
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}

async fn send(socket: &mut Socket, frame: Value) {
    use futures_util::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            frame.to_string(),
        ))
        .await
        .unwrap();
}

/// The events of one turn, up to its terminal event (or an error frame).
async fn events(socket: &mut Socket) -> Vec<Value> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("an event within 10 s")
            .expect("the socket open")
            .unwrap();
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
            continue;
        };
        let event: Value = serde_json::from_str(&text).unwrap();
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        out.push(event);
        if matches!(
            kind.as_str(),
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            return out;
        }
    }
}

#[tokio::test]
async fn the_websocket_runs_turns_in_sequence_and_chains_them() {
    let (fake, daemon) = setup().await;
    let mut socket = connect(&daemon, "/v1/responses").await;
    let base = json!({"type": "response.create", "model": "gpt-5.5", "store": false,
        "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "base"}]},
                  {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]}]});
    // A prewarm: nothing generated, nothing sent upstream, an empty completed response.
    let mut prewarm = base.clone();
    prewarm["generate"] = json!(false);
    send(&mut socket, prewarm).await;
    let warm = events(&mut socket).await;
    assert_eq!(warm.last().unwrap()["type"], "response.completed");
    assert!(fake.requests_to(RESPONSES_PATH).is_empty());
    let warm_id = warm.last().unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The turn names the prewarm and sends nothing new: the backend gets the whole input.
    let mut first = base.clone();
    first["previous_response_id"] = json!(warm_id);
    first["input"] = json!([]);
    send(&mut socket, first).await;
    let turn = events(&mut socket).await;
    // The pool's quota comes first (the daemon learnt it at start), as the backend's
    // codex.rate_limits frame; then the backend's events.
    let limits = &turn[0];
    assert_eq!(limits["type"], "codex.rate_limits", "{turn:?}");
    assert_eq!(limits["rate_limits"]["limit_reached"], false);
    assert!(
        limits["rate_limits"]["primary"]["window_minutes"].is_u64(),
        "{limits}"
    );
    assert_eq!(turn[1]["type"], "response.created");
    assert_eq!(
        turn.last().unwrap()["type"],
        "response.completed",
        "{turn:?}"
    );
    let first_id = turn.last().unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let upstream = last_upstream_body(&fake);
    assert_eq!(upstream["input"].as_array().unwrap().len(), 2);
    assert_eq!(upstream["stream"], true);
    assert!(upstream.get("type").is_none() && upstream.get("previous_response_id").is_none());

    // The next turn sends only its new items; the history comes from the connection.
    send(
        &mut socket,
        json!({"type": "response.create", "model": "gpt-5.5", "store": false,
               "previous_response_id": first_id,
               "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]}]}),
    )
    .await;
    let turn = events(&mut socket).await;
    assert_eq!(turn.last().unwrap()["type"], "response.completed");
    let input = last_upstream_body(&fake)["input"]
        .as_array()
        .unwrap()
        .clone();
    let texts: Vec<String> = input.iter().map(|i| i.to_string()).collect();
    assert!(
        texts[1].contains("first") && texts.last().unwrap().contains("second"),
        "{texts:?}"
    );
    assert!(
        input.iter().any(|i| i["role"] == "assistant"),
        "the first answer is in the history"
    );

    // An unknown previous response: the backend-shaped error frame, and the socket lives on.
    send(
        &mut socket,
        json!({"type": "response.create", "model": "gpt-5.5", "previous_response_id": "resp_nope", "input": []}),
    )
    .await;
    let error = events(&mut socket).await.pop().unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["status"], 400);
    assert_eq!(error["error"]["code"], "previous_response_not_found");
    send(&mut socket, base.clone()).await;
    assert_eq!(
        events(&mut socket).await.last().unwrap()["type"],
        "response.completed"
    );
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn the_websocket_needs_the_key_and_a_known_message_type() {
    let (_fake, daemon) = setup().await;
    let url = daemon.url("/v1/responses").replacen("http://", "ws://", 1);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!(
            "connected without a key: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    let mut socket = connect(&daemon, "/backend-api/codex/responses").await;
    send(&mut socket, json!({"type": "session.update"})).await;
    let error = events(&mut socket).await.pop().unwrap();
    assert_eq!(
        (error["type"].as_str(), error["status"].as_u64()),
        (Some("error"), Some(400))
    );
}

// ---- the backend mirror ----

#[tokio::test]
async fn the_backend_paths_serve_responses_compaction_models_and_the_pooled_usage() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0, 1]).start();
    let client = daemon.client();
    // /backend-api/codex/responses is /v1/responses.
    let response = client
        .post(daemon.url("/backend-api/codex/responses"))
        .json(&codex_cli_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("event: response.completed"));
    // Now the pool knows a quota: every answer carries the pool's, as the backend's headers.
    let response = client
        .post(daemon.url("/v1/responses"))
        .json(&json!({"model": "gpt-5.5", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .contains_key("x-codex-primary-used-percent"),
        "{:?}",
        response.headers()
    );

    // Compaction: unary, without the fields the endpoint refuses.
    let response = client
        .post(daemon.url("/backend-api/codex/responses/compact"))
        .json(
            &json!({"model": "gpt-5.5", "input": [{"role": "user", "content": "a long talk"}],
                      "store": false, "stream": true, "include": ["reasoning.encrypted_content"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-codex-proxy-ignored-params"],
        "include"
    );
    let compacted: Value = response.json().await.unwrap();
    assert!(compacted["output"].is_array(), "{compacted}");
    let recorded = fake.requests_to("/backend-api/codex/responses/compact");
    let body = recorded.last().unwrap().body.clone().unwrap();
    assert!(
        body.get("store").is_none() && body.get("stream").is_none(),
        "{body}"
    );

    // The catalog in the backend's shape, with its ETag; unchanged → 304.
    for path in [
        "/backend-api/codex/models",
        "/v1/models?client_version=0.169.0",
    ] {
        let response = client.get(daemon.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let catalog: Value = response.json().await.unwrap();
        assert!(catalog["models"][0]["slug"].is_string(), "{catalog}");
        let again = client
            .get(daemon.url(path))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let openai: Value = get_json(&daemon, "/v1/models").await;
    assert_eq!(openai["object"], "list");

    // The pool's usage: integers, limited only when every account is.
    let usage: Value = get_json(&daemon, "/backend-api/wham/usage").await;
    assert_eq!(usage["rate_limit"]["limit_reached"], false, "{usage}");
    let window = &usage["rate_limit"]["primary_window"];
    assert!(
        window["used_percent"].is_i64() && window["reset_at"].is_i64(),
        "{usage}"
    );
    for _ in 0..2 {
        fake.enqueue(Script::usage_limit(3600));
    }
    let (status, _, _) = post(&daemon, &json!({"model": "gpt-5.5", "input": "x"})).await;
    assert_eq!(status, 429);
    let usage: Value = get_json(&daemon, "/backend-api/wham/usage").await;
    assert_eq!(usage["rate_limit"]["limit_reached"], true, "{usage}");
    assert_eq!(usage["rate_limit"]["allowed"], false);
}

#[tokio::test]
async fn a_chatgpt_sign_in_token_is_refused_with_the_way_to_connect() {
    let (_fake, daemon) = setup().await;
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    let response = reqwest::Client::new()
        .get(daemon.url("/backend-api/wham/usage"))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let text = response.text().await.unwrap();
    assert!(text.contains("chatgpt_base_url"), "{text}");
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_request_on_both_transports() {
    use futures_util::StreamExt;
    let (fake, daemon) = setup().await;
    // Over SSE: the response body dropped after the first deltas.
    fake.enqueue(Script::deltas((0..500).map(|i| format!("w{i} "))).paced(20));
    let response = daemon
        .client()
        .post(daemon.url("/v1/responses"))
        .json(&json!({"model": "gpt-5.5", "input": "long", "stream": true}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("w3 ") {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    drop(body);
    let seq = fake.requests_to(RESPONSES_PATH)[0].seq;
    assert!(
        fake.wait_for_hangup(seq, std::time::Duration::from_secs(5))
            .await,
        "the daemon dropped the upstream request"
    );
    // Over the WebSocket: the socket closed mid-turn.
    fake.enqueue(Script::deltas((0..500).map(|i| format!("v{i} "))).paced(20));
    let mut socket = connect(&daemon, "/v1/responses").await;
    send(
        &mut socket,
        json!({"type": "response.create", "model": "gpt-5.5", "input": "long"}),
    )
    .await;
    let mut deltas = 0;
    while deltas < 3 {
        if let tokio_tungstenite::tungstenite::Message::Text(text) =
            socket.next().await.unwrap().unwrap()
            && text.contains("output_text.delta")
        {
            deltas += 1;
        }
    }
    drop(socket);
    let seq = fake.requests_to(RESPONSES_PATH)[1].seq;
    assert!(
        fake.wait_for_hangup(seq, std::time::Duration::from_secs(5))
            .await,
        "the daemon dropped the upstream request of the closed socket"
    );
}

#[tokio::test]
async fn a_websocket_turn_may_continue_a_response_made_over_http() {
    let (fake, daemon) = setup().await;
    let (status, _, text) = post(&daemon, &json!({"model": "gpt-5.5", "input": "over http"})).await;
    assert_eq!(status, 200, "{text}");
    let http_id = serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut socket = connect(&daemon, "/v1/responses").await;
    send(
        &mut socket,
        json!({"type": "response.create", "model": "gpt-5.5", "previous_response_id": http_id,
               "input": [{"role": "user", "content": "on the socket"}]}),
    )
    .await;
    let turn = events(&mut socket).await;
    let ws_id = turn.last().unwrap()["response"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        &mut socket,
        json!({"type": "response.create", "model": "gpt-5.5", "previous_response_id": ws_id,
               "input": [{"role": "user", "content": "and again"}]}),
    )
    .await;
    assert_eq!(
        events(&mut socket).await.last().unwrap()["type"],
        "response.completed"
    );
    // The whole chain: the HTTP turn (from the daemon's store), then the socket's two.
    let input = last_upstream_body(&fake)["input"].to_string();
    let order = ["over http", "on the socket", "and again"].map(|t| input.find(t).unwrap());
    assert!(order[0] < order[1] && order[1] < order[2], "{input}");
}

#[tokio::test]
async fn a_conversation_that_moves_account_goes_on_without_the_reasoning_it_cannot_replay() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0, 1]).start();
    // A turn with reasoning (encrypted for its account, which the client replays next time,
    // as the Codex CLI does).
    fake.enqueue(Script::text("Paris.").with_reasoning("Capitals."));
    let first = json!({"model": "gpt-5.5", "input": "Capital of France?", "store": false,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "conversation-1"});
    let (status, _, text) = post(&daemon, &first).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let mut input =
        vec![json!({"type": "message", "role": "user", "content": "Capital of France?"})];
    input.extend(answer["output"].as_array().unwrap().iter().cloned());
    input.push(json!({"type": "message", "role": "user", "content": "And Italy?"}));
    assert!(input.iter().any(|i| i["type"] == "reasoning"));
    // That account is now out of quota: the conversation moves, and the other account cannot
    // read the reasoning.
    fake.enqueue(Script::usage_limit(3600));
    fake.enqueue(Script::text("Rome.").with_reasoning("Italy's."));
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": input, "store": false,
                "include": ["reasoning.encrypted_content"], "prompt_cache_key": "conversation-1"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let second: Value = serde_json::from_str(&text).unwrap();
    let requests = fake.requests_to(RESPONSES_PATH);
    let served: Vec<(u16, Option<String>)> = requests
        .iter()
        .map(|r| (r.status, r.account_id.clone()))
        .collect();
    // Its own account is out (429), the other refuses the reasoning (400), and takes the turn
    // without it.
    let statuses: Vec<u16> = served.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 429, 400, 200], "{served:?}");
    assert_eq!(served[0].1, served[1].1, "the conversation's account first");
    assert_eq!(served[2].1, served[3].1);
    let refused = &requests[2];
    assert!(
        refused
            .rejection
            .as_deref()
            .unwrap_or_default()
            .contains("could not be verified"),
        "{:?}",
        refused.rejection
    );
    assert_ne!(served[0].1, served[3].1, "it moved");
    let sent = requests[3].body.clone().unwrap();
    let kinds: Vec<&str> = sent["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"reasoning"), "{kinds:?}");

    // The next turn replays both accounts' reasoning, as the client keeps it: the old
    // account's is left out before it goes, the new one's goes on to it — one attempt, nothing
    // refused.
    let encrypted = |answer: &Value| {
        answer["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "reasoning")
            .unwrap()["encrypted_content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (old, new) = (encrypted(&answer), encrypted(&second));
    input.extend(second["output"].as_array().unwrap().iter().cloned());
    input.push(json!({"type": "message", "role": "user", "content": "And Spain?"}));
    fake.enqueue(Script::text("Madrid."));
    let (status, _, text) = post(
        &daemon,
        &json!({"model": "gpt-5.5", "input": input, "store": false,
                "include": ["reasoning.encrypted_content"], "prompt_cache_key": "conversation-1"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let requests = fake.requests_to(RESPONSES_PATH);
    assert_eq!(requests.len(), 5, "one attempt");
    let third = &requests[4];
    assert_eq!(third.status, 200, "{:?}", third.rejection);
    assert_eq!(third.account_id, served[3].1);
    let sent = third.body.clone().unwrap();
    let sent_text = sent["input"].to_string();
    assert!(!sent_text.contains(&old), "{sent_text}");
    if sent["previous_response_id"].is_null() {
        assert_eq!(sent_text.matches(&new).count(), 1, "{sent_text}");
    }
}

/// Each turn on a WebSocket is a request of its own in the request log (the upgrade is not).
#[tokio::test]
async fn websocket_turns_are_recorded_one_by_one() {
    let (_fake, daemon) = setup().await;
    let mut socket = connect(&daemon, "/v1/responses").await;
    let turn = json!({"type": "response.create", "model": "gpt-5.5", "store": false,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]});
    send(&mut socket, turn.clone()).await;
    assert_eq!(
        events(&mut socket).await.last().unwrap()["type"],
        "response.completed"
    );
    let mut unknown = turn;
    unknown["model"] = json!("no-such-model");
    send(&mut socket, unknown).await;
    assert_eq!(events(&mut socket).await.last().unwrap()["type"], "error");
    drop(socket);

    let mut records = Vec::new();
    for _ in 0..200 {
        records = daemon.ctl_json(&["requests", "-n", "10"]).await["requests"]
            .as_array()
            .unwrap()
            .clone();
        if records.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(records.len(), 2, "{records:?}");
    // Newest first: the refused turn, then the answered one.
    let (refused, answered) = (&records[0], &records[1]);
    for record in [refused, answered] {
        assert_eq!(record["method"], "WS");
        assert_eq!(record["path"], "/v1/responses");
        assert_eq!(record["surface"], "responses");
    }
    assert_eq!(answered["status"], 200);
    assert_eq!(answered["model"], "gpt-5.5");
    assert!(answered["account"].is_string(), "{answered}");
    assert!(
        answered["output_tokens"].as_u64().unwrap() > 0,
        "{answered}"
    );
    assert!(answered["first_byte_ms"].is_u64(), "{answered}");
    assert!(answered["error"].is_null());
    assert_eq!(refused["status"], 404, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("no-such-model"),
        "{refused}"
    );
}

/// A conversation whose account ran out of quota (found by another conversation) replays
/// reasoning no account that takes turns now can read: it goes without it at once — one
/// attempt — and its later turns keep what the new account made.
#[tokio::test]
async fn reasoning_of_an_account_out_of_quota_is_left_out_before_the_turn_goes() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0, 1])
        .set("auth", "rotation_strategy = \"sticky\"")
        .start();
    let ask = |input: &[Value], key: &str| {
        json!({"model": "gpt-5.5", "input": input, "store": false,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": key})
    };
    fake.enqueue(Script::text("Paris.").with_reasoning("Capitals."));
    let mut input =
        vec![json!({"type": "message", "role": "user", "content": "Capital of France?"})];
    let (status, _, text) = post(&daemon, &ask(&input, "conversation-1")).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    input.extend(answer["output"].as_array().unwrap().iter().cloned());
    let account = fake.requests_to(RESPONSES_PATH)[0]
        .account_id
        .clone()
        .unwrap();
    let index = (0..2)
        .find(|i| fake.account(*i).account_id == account)
        .unwrap();
    // Another conversation finds the account used up (and goes on elsewhere).
    fake.set_usage(index, 100.0, 100.0);
    let other = [json!({"type": "message", "role": "user", "content": "Hello"})];
    let (status, _, text) = post(&daemon, &ask(&other, "conversation-2")).await;
    assert_eq!(status, 200, "{text}");

    for (turn, question) in ["And Italy?", "And Spain?"].into_iter().enumerate() {
        input.push(json!({"type": "message", "role": "user", "content": question}));
        fake.enqueue(Script::text("Rome or Madrid.").with_reasoning("More capitals."));
        let before = fake.requests_to(RESPONSES_PATH).len();
        let (status, _, text) = post(&daemon, &ask(&input, "conversation-1")).await;
        assert_eq!(status, 200, "{text}");
        let turns = fake.requests_to(RESPONSES_PATH);
        assert_eq!(
            turns.len(),
            before + 1,
            "turn {turn}: one attempt, nothing refused"
        );
        let last = turns.last().unwrap();
        assert_eq!(last.status, 200, "{:?}", last.rejection);
        assert_ne!(last.account_id.as_deref(), Some(account.as_str()));
        let sent = last.full_input().unwrap().to_string();
        let reasoning = sent.matches(r#""type":"reasoning""#).count();
        // The old account's reasoning left out; on the second turn, the new one's given back.
        assert_eq!(reasoning, turn, "{sent}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        input.extend(answer["output"].as_array().unwrap().iter().cloned());
    }
}
