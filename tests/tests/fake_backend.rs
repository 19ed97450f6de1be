//! The fake backend accepts what the official client sends and rejects what the real backend
//! rejects, with the real error shapes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use codex_proxy_tests::fake::{FakeUpstream, MODELS_PATH, RESPONSES_PATH, USAGE_PATH};
use codex_proxy_tests::harness::{OfficialClient, parse_sse};
use serde_json::{Value, json};

async fn setup() -> (FakeUpstream, OfficialClient) {
    let fake = FakeUpstream::start().await.unwrap();
    let client = OfficialClient::for_account(&fake, 0);
    (fake, client)
}

/// Sends `body` and returns (status, parsed JSON error body).
async fn send(client: &OfficialClient, body: &Value) -> (u16, Value) {
    let response = client.responses(body).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn official_request_gets_the_full_ordered_event_stream() {
    let (fake, client) = setup().await;
    let body = client.classic_body("gpt-5.5", "hello there");
    let response = client.responses(&body).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/event-stream");
    for name in [
        "x-codex-primary-used-percent",
        "x-codex-primary-window-minutes",
        "x-codex-primary-reset-at",
        "x-codex-secondary-used-percent",
        "x-codex-secondary-window-minutes",
        "x-codex-secondary-reset-at",
        "x-request-id",
        "x-models-etag",
        "openai-model",
    ] {
        assert!(headers.contains_key(name), "missing response header {name}");
    }
    let events = parse_sse(&response.text().await.unwrap());
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let expected = [
        "response.created",
        "response.in_progress",
        "response.output_item.added", // reasoning
        "response.reasoning_summary_part.added",
    ];
    assert_eq!(&kinds[..4], &expected);
    assert_eq!(kinds.last(), Some(&"response.completed"));
    assert!(kinds.contains(&"response.content_part.added"));
    assert!(kinds.contains(&"response.output_text.done"));
    // Each event's `type` matches its SSE name, and sequence numbers count up from 0.
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.data["type"], event.event);
        assert_eq!(event.data["sequence_number"], i as u64);
    }
    let text: String = events
        .iter()
        .filter(|e| e.event == "response.output_text.delta")
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "You said: hello there");
    let completed = &events.last().unwrap().data["response"];
    let usage = &completed["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert!(usage["input_tokens_details"]["cached_tokens"].is_u64());
    assert!(
        usage["output_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap())
    );
    // Item ids are prefixed and the done items carry encrypted reasoning (include was asked).
    let reasoning = &completed["output"][0];
    assert!(reasoning["id"].as_str().unwrap().starts_with("rs_"));
    assert!(
        reasoning["encrypted_content"]
            .as_str()
            .unwrap()
            .starts_with("gAAAAB")
    );
    assert!(
        completed["output"][1]["id"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );

    // Recording: the decoded (zstd) body and the headers as sent.
    let recorded = fake.requests_to(RESPONSES_PATH);
    assert_eq!(recorded.len(), 1);
    let rec = &recorded[0];
    assert_eq!(rec.status, 200);
    assert_eq!(rec.header("content-encoding"), Some("zstd"));
    assert_eq!(rec.body.as_ref().unwrap()["store"], false);
    assert_eq!(
        rec.account_id.as_deref(),
        Some(fake.account(0).account_id.as_str())
    );
    assert!(rec.completed && !rec.client_hung_up);
}

#[tokio::test]
async fn uncompressed_bodies_are_accepted_and_other_encodings_are_not() {
    let (_fake, client) = setup().await;
    let body = client.classic_body("gpt-5.5", "plain");
    assert_eq!(
        client
            .post_json("/codex/responses", &body, false)
            .await
            .status(),
        200
    );
    let response = client
        .http
        .post(format!("{}/codex/responses", client.base_url))
        .headers(client.headers())
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = client
        .http
        .post(format!("{}/codex/responses", client.base_url))
        .headers(client.headers())
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body("definitely not zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn authentication_is_checked() {
    let (fake, client) = setup().await;
    let body = client.classic_body("gpt-5.5", "hi");

    let mut no_auth = client.clone();
    no_auth.tokens.access_token = String::new();
    let (status, error) = send(&no_auth, &body).await;
    assert_eq!((status, detail(&error)), (401, "Unauthorized"));

    let mut forged = client.clone();
    let mut parts: Vec<String> = forged
        .tokens
        .access_token
        .split('.')
        .map(str::to_owned)
        .collect();
    parts[2] = "AAAA".into();
    forged.tokens.access_token = parts.join(".");
    assert_eq!(send(&forged, &body).await.0, 401);

    // An id_token is a JWT from the same issuer but not meant for the API.
    let mut id_as_access = client.clone();
    id_as_access.tokens.access_token = client.tokens.id_token.clone();
    assert_eq!(send(&id_as_access, &body).await.0, 401);

    // Expired access token: the token_expired shape and the x-error-json header.
    fake.set_access_token_ttl(Duration::from_secs(0));
    let expired = OfficialClient::for_account(&fake, 0);
    let response = expired.responses(&body).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-error-json"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "token_expired");
}

#[tokio::test]
async fn account_header_must_match_the_token() {
    let (fake, client) = setup().await;
    let body = client.classic_body("gpt-5.5", "hi");
    let mut other = client.clone();
    other.tokens.account_id = fake.account(1).account_id;
    assert_eq!(send(&other, &body).await.0, 403);

    let response = client
        .http
        .post(format!("{}/codex/responses", client.base_url))
        .headers({
            let mut h = client.headers();
            h.remove("chatgpt-account-id");
            h
        })
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn identity_headers_are_checked_strictly_and_can_be_relaxed() {
    let (fake, client) = setup().await;
    let body = client.classic_body("gpt-5.5", "hi");
    let send_with = |headers: reqwest::header::HeaderMap| {
        let client = client.clone();
        let body = body.clone();
        async move {
            let response = client
                .http
                .post(format!("{}/codex/responses", client.base_url))
                .headers(headers)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let mut no_originator = client.headers();
    no_originator.remove("originator");
    let (status, text) = send_with(no_originator.clone()).await;
    assert_eq!(status, 400);
    assert!(text.contains("fake-upstream strict: originator"), "{text}");

    let mut wrong_ua = client.headers();
    wrong_ua.insert("user-agent", "python-requests/2.31".parse().unwrap());
    let (status, text) = send_with(wrong_ua).await;
    assert_eq!(status, 400);
    assert!(text.contains("User-Agent"), "{text}");

    let mut no_version = client.headers();
    no_version.remove("version");
    assert_eq!(send_with(no_version).await.0, 400);

    fake.set_strict_identity(false);
    assert_eq!(send_with(no_originator).await.0, 200);
}

#[tokio::test]
async fn store_stream_and_instructions_are_enforced() {
    let (_fake, client) = setup().await;
    let base = client.classic_body("gpt-5.5", "hi");

    let mut body = base.clone();
    body["store"] = json!(true);
    assert_eq!(
        send(&client, &body).await,
        (400, json!({"detail": "Store must be set to false"}))
    );
    body.as_object_mut().unwrap().remove("store");
    assert_eq!(
        send(&client, &body).await.0,
        400,
        "a missing store counts as true"
    );

    let mut body = base.clone();
    body["stream"] = json!(false);
    assert_eq!(
        send(&client, &body).await,
        (400, json!({"detail": "Stream must be set to true"}))
    );

    for instructions in [json!(""), json!("   ")] {
        let mut body = base.clone();
        body["instructions"] = instructions;
        assert_eq!(
            send(&client, &body).await,
            (400, json!({"detail": "Instructions are required"}))
        );
    }
    // Left out, as the official client leaves them out (its base instructions travel as the
    // first developer message): served.
    for absent in [None, Some(Value::Null)] {
        let mut body = base.clone();
        match absent {
            None => drop(body.as_object_mut().unwrap().remove("instructions")),
            Some(null) => body["instructions"] = null,
        }
        assert_eq!(send(&client, &body).await.0, 200, "{body}");
    }
}

#[tokio::test]
async fn a_responses_lite_body_is_served_with_its_header() {
    let (_fake, client) = setup().await;
    let mut body = client.classic_body("gpt-5.6-sol", "hi");
    body.as_object_mut().unwrap().remove("instructions");
    body["reasoning"] = json!({"effort": "low", "context": "all_turns"});
    let response = client
        .http
        .post(format!("{}/codex/responses", client.base_url))
        .headers(client.headers())
        .header("x-openai-internal-codex-responses-lite", "true")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unsupported_parameters_are_refused_by_name() {
    let (fake, client) = setup().await;
    for (name, value) in [
        ("max_output_tokens", json!(100)),
        ("temperature", json!(0.2)),
        ("top_p", json!(0.9)),
        ("truncation", json!("auto")),
        ("metadata", json!({})),
        ("user", json!("u")),
        ("previous_response_id", json!("resp_1")),
        ("context_management", json!([])),
        ("frequency_penalty", json!(0)),
    ] {
        let mut body = client.classic_body("gpt-5.5", "hi");
        body[name] = value;
        let (status, error) = send(&client, &body).await;
        assert_eq!(status, 400, "{name}");
        assert_eq!(detail(&error), format!("Unsupported parameter: {name}"));
    }
    // Each refusal is recorded with its reason.
    let recorded = fake.requests_to(RESPONSES_PATH);
    assert!(recorded.iter().all(|r| {
        r.rejection
            .as_deref()
            .unwrap()
            .contains("Unsupported parameter")
    }));
}

#[tokio::test]
async fn models_are_checked_against_catalog_and_client_version() {
    let (_fake, client) = setup().await;
    let (status, error) = send(&client, &client.classic_body("gpt-4o", "hi")).await;
    assert_eq!(status, 400);
    assert!(
        detail(&error).contains("'gpt-4o' model is not supported"),
        "{error}"
    );

    let mut old = client.clone();
    old.tokens = client.tokens.clone();
    let response = old
        .http
        .post(format!("{}/codex/responses", old.base_url))
        .headers({
            let mut h = old.headers();
            h.insert("version", "0.120.0".parse().unwrap());
            h.insert(
                "user-agent",
                "codex_cli_rs/0.120.0 (Debian 12.0.0; x86_64) xterm"
                    .parse()
                    .unwrap(),
            );
            h
        })
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&client.classic_body("gpt-5.5", "hi")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("requires a newer version")
    );
}

#[tokio::test]
async fn reasoning_effort_must_be_one_the_model_supports() {
    let (_fake, client) = setup().await;
    let mut body = client.classic_body("gpt-5.5", "hi");
    body["reasoning"]["effort"] = json!("max");
    let (status, error) = send(&client, &body).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["param"], "reasoning.effort");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'low', 'medium', 'high', and 'xhigh'")
    );
    body["reasoning"]["effort"] = json!("xhigh");
    assert_eq!(send(&client, &body).await.0, 200);
}

#[tokio::test]
async fn nested_problems_name_their_param_path() {
    let (_fake, client) = setup().await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x", "extra": 1}]}),
            "input[2].content[0].extra",
            "unknown_parameter",
        ),
        (
            json!({"type": "message", "role": "user", "content": [{"type": "output_text", "text": "x"}]}),
            "input[2].content[0].type",
            "invalid_value",
        ),
        (
            json!({"type": "message", "role": "robot", "content": []}),
            "input[2].role",
            "invalid_value",
        ),
        (
            json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": {"a": 1}}),
            "input[2].arguments",
            "invalid_type",
        ),
        (
            json!({"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png", "detail": "huge"}]}),
            "input[2].content[0].detail",
            "invalid_value",
        ),
        (
            json!({"type": "bogus_item"}),
            "input[2].type",
            "invalid_value",
        ),
    ];
    for (item, param, code) in cases {
        let mut body = client.classic_body("gpt-5.5", "hi");
        body["input"].as_array_mut().unwrap().push(item);
        let (status, error) = send(&client, &body).await;
        assert_eq!(status, 400, "{param}: {error}");
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["code"], code, "{error}");
    }
}

#[tokio::test]
async fn input_must_be_a_list() {
    let (_fake, client) = setup().await;
    let mut body = client.classic_body("gpt-5.5", "hi");
    body["input"] = json!("hello");
    assert_eq!(
        send(&client, &body).await,
        (400, json!({"detail": "Input must be a list"}))
    );
}

#[tokio::test]
async fn tool_outputs_must_answer_a_call_in_the_input() {
    let (_fake, client) = setup().await;
    let mut body = client.classic_body("gpt-5.5", "hi");
    body["input"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "function_call_output", "call_id": "call_x", "output": "42"}));
    let (status, error) = send(&client, &body).await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("call_x")
    );

    let items = body["input"].as_array_mut().unwrap();
    items.insert(2, json!({"type": "function_call", "call_id": "call_x", "name": "shell_command", "arguments": "{\"command\":\"ls\"}"}));
    assert_eq!(send(&client, &body).await.0, 200);

    // Output as content parts is accepted too.
    body["input"].as_array_mut().unwrap().last_mut().unwrap()["output"] =
        json!([{"type": "input_text", "text": "42"}]);
    assert_eq!(send(&client, &body).await.0, 200);
}

#[tokio::test]
async fn encrypted_reasoning_is_account_bound_and_required_with_store_false() {
    let (fake, client) = setup().await;
    // Get a real reasoning item from a first turn.
    let response = client
        .responses(&client.classic_body("gpt-5.5", "first"))
        .await;
    let events = parse_sse(&response.text().await.unwrap());
    let reasoning = events
        .iter()
        .find(|e| e.event == "response.output_item.done" && e.data["item"]["type"] == "reasoning")
        .map(|e| e.data["item"].clone())
        .unwrap();

    let second_turn = |client: &OfficialClient, item: Value| {
        let mut body = client.classic_body("gpt-5.5", "second");
        body["input"].as_array_mut().unwrap().insert(2, item);
        body
    };
    // Replayed with its encrypted content, on the same account: fine.
    assert_eq!(
        send(&client, &second_turn(&client, reasoning.clone()))
            .await
            .0,
        200
    );

    // On another account: the backend cannot decrypt it.
    let other = OfficialClient::for_account(&fake, 1);
    let (status, error) = send(&other, &second_turn(&other, reasoning.clone())).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_encrypted_content"))
    );

    // Without encrypted content the item would have to be stored: 404.
    let mut bare = reasoning;
    bare.as_object_mut().unwrap().remove("encrypted_content");
    let (status, error) = send(&client, &second_turn(&client, bare)).await;
    assert_eq!(status, 404);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not persisted")
    );
}

#[tokio::test]
async fn strict_tool_schemas_and_structured_output_are_validated() {
    let (_fake, client) = setup().await;
    let mut body = client.classic_body("gpt-5.5", "hi");
    body["tools"][0]["strict"] = json!(true);
    body["tools"][0]["parameters"] = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a"], "additionalProperties": false});
    let (status, error) = send(&client, &body).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["param"], "tools[0].parameters");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Missing 'b'")
    );

    let mut body = client.classic_body("gpt-5.5", "hi");
    body["text"] = json!({"format": {"type": "json_schema", "name": "out", "strict": true,
        "schema": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}}});
    let (status, error) = send(&client, &body).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "invalid_json_schema");
    body["text"]["format"]["schema"]["additionalProperties"] = json!(false);
    assert_eq!(send(&client, &body).await.0, 200);

    // json_object needs the word JSON somewhere in the conversation.
    let mut body = client.classic_body("gpt-5.5", "give me an object");
    body["text"] = json!({"format": {"type": "json_object"}});
    assert_eq!(send(&client, &body).await.0, 400);
    let mut body = client.classic_body("gpt-5.5", "answer in JSON");
    body["text"] = json!({"format": {"type": "json_object"}});
    assert_eq!(send(&client, &body).await.0, 200);
}

#[tokio::test]
async fn tool_names_choice_and_duplicates_are_validated() {
    let (_fake, client) = setup().await;
    let mut body = client.classic_body("gpt-5.5", "hi");
    body["tools"][0]["name"] = json!("has space");
    assert_eq!(send(&client, &body).await.0, 400);

    let mut body = client.classic_body("gpt-5.5", "hi");
    let dup = body["tools"][0].clone();
    body["tools"].as_array_mut().unwrap().push(dup);
    assert_eq!(send(&client, &body).await.0, 400);

    let mut body = client.classic_body("gpt-5.5", "hi");
    body["tool_choice"] = json!({"type": "function", "name": "nope"});
    assert_eq!(send(&client, &body).await.0, 400);
    body["tool_choice"] = json!({"type": "function", "name": "shell_command"});
    assert_eq!(send(&client, &body).await.0, 200);
    body["tool_choice"] = json!("required");
    assert_eq!(send(&client, &body).await.0, 200);
}

#[tokio::test]
async fn images_must_be_urls_or_real_image_data() {
    let (_fake, client) = setup().await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let with_image = |url: &str| {
        let mut body = client.classic_body("gpt-5.5", "what is this");
        body["input"][1]["content"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "input_image", "image_url": url, "detail": "high"}));
        body
    };
    assert_eq!(
        send(
            &client,
            &with_image(&format!("data:image/png;base64,{png}"))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(&client, &with_image("https://example.com/cat.jpg"))
            .await
            .0,
        200
    );
    let (status, error) = send(
        &client,
        &with_image("data:image/png;base64,bm90IGFuIGltYWdl"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not represent a valid image")
    );
}

#[tokio::test]
async fn prompt_cache_key_is_bounded_and_caches_per_account() {
    let (fake, client) = setup().await;
    let mut body = client.classic_body("gpt-5.5", "hi");
    body["prompt_cache_key"] = json!("k".repeat(65));
    let (status, error) = send(&client, &body).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("string_above_max_length"))
    );

    fake.set_cache_min_tokens(64);
    let long = "lorem ipsum ".repeat(200);
    let cached = |client: &OfficialClient| {
        let body = client.classic_body("gpt-5.5", &long);
        let client = client.clone();
        async move {
            let events = parse_sse(&client.responses(&body).await.text().await.unwrap());
            events.last().unwrap().data["response"]["usage"]["input_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(cached(&client).await, 0, "first turn is a miss");
    assert!(cached(&client).await > 0, "same key, same account: hit");
    let mut other = OfficialClient::for_account(&fake, 1);
    other.session = client.session.clone();
    assert_eq!(cached(&other).await, 0, "the cache is per account");
}

#[tokio::test]
async fn rate_limit_headers_follow_the_account() {
    let (fake, client) = setup().await;
    fake.set_usage(0, 42.0, 7.5);
    let response = client
        .responses(&client.classic_body("gpt-5.5", "hi"))
        .await;
    assert_eq!(response.headers()["x-codex-primary-used-percent"], "42.0");
    assert_eq!(response.headers()["x-codex-secondary-used-percent"], "7.5");
    assert_eq!(response.headers()["x-codex-primary-window-minutes"], "300");
    assert_eq!(
        response.headers()["x-codex-secondary-window-minutes"],
        "10080"
    );

    fake.set_usage_per_request(10.0, 1.0);
    let response = client
        .responses(&client.classic_body("gpt-5.5", "hi"))
        .await;
    assert_eq!(response.headers()["x-codex-primary-used-percent"], "52.0");

    // An exhausted window refuses further requests until it resets.
    fake.set_usage(0, 100.0, 50.0);
    let response = client
        .responses(&client.classic_body("gpt-5.5", "hi"))
        .await;
    assert_eq!(response.status(), 429);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "usage_limit_reached");
    assert!(error["error"]["resets_at"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn models_endpoint_serves_the_catalog_with_etag() {
    let (fake, client) = setup().await;
    assert_eq!(
        client.get("/codex/models").await.status(),
        400,
        "client_version is required"
    );
    let response = client.get("/codex/models?client_version=0.146.0").await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let catalog: Value = response.json().await.unwrap();
    let models = catalog["models"].as_array().unwrap();
    let slugs: Vec<&str> = models.iter().map(|m| m["slug"].as_str().unwrap()).collect();
    assert!(slugs.contains(&"gpt-5.5") && slugs.contains(&"gpt-5.6-sol"));
    let mini = models.iter().find(|m| m["slug"] == "gpt-5.4-mini").unwrap();
    assert_eq!(mini["visibility"], "hide");
    assert!(
        models
            .iter()
            .all(|m| m["supported_reasoning_levels"].is_array() && m["context_window"].is_u64())
    );

    let not_modified = client
        .http
        .get(format!(
            "{}/codex/models?client_version=0.146.0",
            client.base_url
        ))
        .headers(client.headers())
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    // An older client sees fewer models, and a changed catalog a new ETag.
    let old: Value = client
        .get("/codex/models?client_version=0.120.0")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        old["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m["slug"].as_str().unwrap().starts_with("gpt-5.6"))
    );
    fake.bump_catalog();
    let changed = client.get("/codex/models?client_version=0.146.0").await;
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);

    let mut no_auth = client.clone();
    no_auth.tokens.access_token = "x".into();
    assert_eq!(
        no_auth
            .get("/codex/models?client_version=0.146.0")
            .await
            .status(),
        401
    );
    assert_eq!(fake.requests_to(MODELS_PATH).len(), 6);
}

#[tokio::test]
async fn usage_endpoint_reports_windows() {
    let (fake, client) = setup().await;
    fake.set_usage(1, 30.0, 12.0);
    let bob = OfficialClient::for_account(&fake, 1);
    let response = bob
        .http
        .get(format!("{}/wham/usage", bob.base_url))
        .headers(bob.headers())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let usage: Value = response.json().await.unwrap();
    assert_eq!(usage["plan_type"], "pro");
    assert_eq!(usage["rate_limit"]["primary_window"]["used_percent"], 30);
    assert_eq!(
        usage["rate_limit"]["primary_window"]["limit_window_seconds"],
        18000
    );
    assert_eq!(
        usage["rate_limit"]["secondary_window"]["limit_window_seconds"],
        604_800
    );
    assert_eq!(usage["rate_limit"]["limit_reached"], false);
    let anonymous = client
        .http
        .get(format!("{}/wham/usage", client.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(fake.requests_to(USAGE_PATH).len(), 2);
}

#[tokio::test]
async fn compact_returns_a_compaction_item_and_rejects_stream_fields() {
    let (_fake, client) = setup().await;
    let mut body = client.classic_body("gpt-5.5", "summarise this");
    for key in [
        "store",
        "stream",
        "include",
        "client_metadata",
        "tool_choice",
        "text",
    ] {
        body.as_object_mut().unwrap().remove(key);
    }
    let response = client
        .post_json("/codex/responses/compact", &body, true)
        .await;
    assert_eq!(response.status(), 200);
    let out: Value = response.json().await.unwrap();
    let output = out["output"].as_array().unwrap();
    assert_eq!(output.last().unwrap()["type"], "compaction");
    assert_eq!(output[0]["role"], "user");

    // The compaction item is valid input for the next turn on the same account.
    let mut next = client.classic_body("gpt-5.5", "continue");
    next["input"]
        .as_array_mut()
        .unwrap()
        .insert(0, output.last().unwrap().clone());
    assert_eq!(send(&client, &next).await.0, 200);

    body["store"] = json!(false);
    let response = client
        .post_json("/codex/responses/compact", &body, true)
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["detail"],
        "Unsupported parameter: store"
    );
}

#[tokio::test]
async fn unknown_paths_are_404_and_recorded() {
    let (fake, client) = setup().await;
    let response = client
        .http
        .get(format!("{}/backend-api/nothing", fake.auth_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(fake.requests_to("/backend-api/nothing").len(), 1);
}
