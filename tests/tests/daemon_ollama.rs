//! The Ollama API end to end against the strict fake: NDJSON streams and whole answers for
//! `/api/chat` and `/api/generate`, tool calls without ids and their results by tool name,
//! `think`, `format`, images as bare base64, the model endpoints, the access rule (no key from
//! this machine), the second listener, and every error in Ollama's shape.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Script};
use codex_proxy_tests::harness::Daemon;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

async fn setup() -> (FakeUpstream, Daemon) {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    (fake, daemon)
}

/// POSTs as Ollama's clients do: no key.
async fn post(url: &str, body: &Value) -> (u16, HeaderMap, String) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

fn last_upstream(fake: &FakeUpstream) -> Value {
    fake.requests_to(RESPONSES_PATH)
        .into_iter()
        .filter_map(|r| r.body)
        .next_back()
        .unwrap()
}

#[tokio::test]
async fn chat_streams_ndjson_lines_and_answers_whole() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::text("Hello from Codex").with_reasoning("Plan the greeting"));
    let body = json!({
        "model": "gpt-5.5:latest",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"}
        ],
        "options": {"temperature": 0.2, "num_ctx": 8192},
        "keep_alive": "5m"
    });
    let (status, headers, text) = post(&daemon.url("/api/chat"), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let ignored = headers["x-codex-proxy-ignored-params"].to_str().unwrap();
    assert!(ignored.contains("options.temperature") && ignored.contains("keep_alive"));
    let lines = lines(&text);
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["model"], "gpt-5.5:latest");
    assert_eq!(last["message"]["content"], "");
    assert!(last["prompt_eval_count"].as_u64().unwrap() > 0);
    assert!(last["eval_count"].as_u64().unwrap() > 0);
    assert!(last["total_duration"].as_u64().unwrap() > 0);
    let pieces = &lines[..lines.len() - 1];
    assert!(
        pieces
            .iter()
            .all(|l| l["done"] == false && l["created_at"].is_string())
    );
    let content: String = pieces
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from Codex");
    let thinking: String = pieces
        .iter()
        .filter_map(|l| l["message"]["thinking"].as_str())
        .collect();
    assert_eq!(thinking, "Plan the greeting");
    // Thinking comes before the answer, as the model produced it.
    let first_text = pieces
        .iter()
        .position(|l| l["message"]["content"] != "")
        .unwrap();
    assert!(
        pieces[..first_text]
            .iter()
            .any(|l| l["message"]["thinking"].is_string())
    );

    let upstream = last_upstream(&fake);
    assert_eq!(upstream["model"], "gpt-5.5");
    assert_eq!(upstream["instructions"], "Be brief.");
    assert_eq!(upstream["input"][0]["content"][0]["text"], "hi");

    // Not streamed: one object with everything.
    fake.enqueue(Script::text("Whole answer").with_reasoning("Think"));
    let mut whole = body.clone();
    whole["stream"] = false.into();
    let (status, headers, text) = post(&daemon.url("/api/chat"), &whole).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["done"], true);
    assert_eq!(answer["message"]["role"], "assistant");
    assert_eq!(answer["message"]["content"], "Whole answer");
    assert_eq!(answer["message"]["thinking"], "Think");
    assert!(answer["eval_count"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_tool_round_trip_without_call_ids_pairs_results_by_tool_name() {
    let (fake, daemon) = setup().await;
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time", "description": "Time in a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    ]);
    fake.enqueue(Script::function_calls(&[
        ("get_weather", r#"{"city":"Paris"}"#),
        ("get_time", r#"{"city":"Oslo"}"#),
    ]));
    let first = json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "Weather in Paris, time in Oslo?"}],
        "tools": tools,
        "stream": true
    });
    let (status, _, text) = post(&daemon.url("/api/chat"), &first).await;
    assert_eq!(status, 200, "{text}");
    let lines = lines(&text);
    let calls: Vec<&Value> = lines
        .iter()
        .filter_map(|l| l["message"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 2, "{text}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], json!({"city": "Paris"}));
    assert_eq!(calls[0]["function"]["index"], 0);
    assert_eq!(calls[1]["function"]["name"], "get_time");
    assert_eq!(calls[1]["function"]["index"], 1);
    assert_eq!(lines.last().unwrap()["done_reason"], "stop");

    // The client sends the calls back as Ollama's clients do — no ids — and results that name
    // their tool, in the other order.
    let second = json!({
        "model": "gpt-5.5",
        "messages": [
            {"role": "user", "content": "Weather in Paris, time in Oslo?"},
            {"role": "assistant", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {"city": "Oslo"}}}
            ]},
            {"role": "tool", "tool_name": "get_time", "content": "14:05"},
            {"role": "tool", "tool_name": "get_weather", "content": "Sunny, 21 C"}
        ],
        "tools": tools,
        "stream": false
    });
    let (status, _, text) = post(&daemon.url("/api/chat"), &second).await;
    assert_eq!(status, 200, "{text}");
    let upstream = last_upstream(&fake);
    let input = upstream["input"].as_array().unwrap();
    let call_id = |name: &str| {
        input
            .iter()
            .find(|i| i["type"] == "function_call" && i["name"] == name)
            .map(|i| i["call_id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let output_of = |id: &str| {
        input
            .iter()
            .find(|i| i["type"] == "function_call_output" && i["call_id"] == id)
            .map(|i| i["output"].clone())
            .unwrap()
    };
    assert_eq!(output_of(&call_id("get_weather")), "Sunny, 21 C");
    assert_eq!(output_of(&call_id("get_time")), "14:05");

    // A result with nothing to answer is the client's mistake, said before going upstream.
    let before = fake.requests_to(RESPONSES_PATH).len();
    let orphan = json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_name": "get_time", "content": "1"}],
        "stream": false
    });
    let (status, _, text) = post(&daemon.url("/api/chat"), &orphan).await;
    assert_eq!(status, 400, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("messages.1"),
        "{text}"
    );
    assert_eq!(fake.requests_to(RESPONSES_PATH).len(), before);
}

#[tokio::test]
async fn think_format_images_and_stop_reach_the_backend_as_they_should() {
    let (fake, daemon) = setup().await;
    let schema =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let body = json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "What is in this picture?", "images": [PNG]}],
        "think": "high",
        "format": schema,
        "stream": false
    });
    let (status, _, text) = post(&daemon.url("/api/chat"), &body).await;
    assert_eq!(status, 200, "{text}");
    let upstream = last_upstream(&fake);
    assert_eq!(upstream["reasoning"]["effort"], "high");
    assert_eq!(upstream["text"]["format"]["type"], "json_schema");
    assert_eq!(upstream["text"]["format"]["schema"], schema);
    let content = upstream["input"][0]["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "input_text");
    assert_eq!(content[1]["type"], "input_image");
    assert_eq!(
        content[1]["image_url"],
        format!("data:image/png;base64,{PNG}")
    );

    // think: false — the lowest effort, and no thinking shown even when the model reasons.
    fake.enqueue(Script::text("Plain").with_reasoning("hidden thoughts"));
    let body = json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "hi"}],
        "think": false,
        "format": "json",
        "stream": false
    });
    let (status, _, text) = post(&daemon.url("/api/chat"), &body).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(answer["message"].get("thinking").is_none(), "{text}");
    let upstream = last_upstream(&fake);
    assert_eq!(upstream["reasoning"]["effort"], "low");
    assert_eq!(upstream["text"]["format"]["type"], "json_schema");
    assert_eq!(
        upstream["text"]["format"]["schema"],
        json!({"type": "object"})
    );

    // options.stop cuts the answer here.
    fake.enqueue(Script::deltas(["one two ", "thr", "ee four"]));
    let body = json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "count"}],
        "options": {"stop": ["three"]},
        "stream": true
    });
    let (status, _, text) = post(&daemon.url("/api/chat"), &body).await;
    assert_eq!(status, 200, "{text}");
    let lines = lines(&text);
    let content: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(content, "one two ");
    assert_eq!(lines.last().unwrap()["done"], true);

    // Bad input is refused with Ollama's error shape and nothing goes upstream.
    let before = fake.requests_to(RESPONSES_PATH).len();
    for (bad, says) in [
        (
            json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "x", "images": ["bm90IGFuIGltYWdl"]}]}),
            "images",
        ),
        (
            json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "x"}], "think": "very"}),
            "think",
        ),
        (
            json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "x"}], "format": "xml"}),
            "format",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "gpt-5.5", "messages": [{"role": "robot", "content": "x"}]}),
            "role",
        ),
    ] {
        let (status, _, text) = post(&daemon.url("/api/chat"), &bad).await;
        assert_eq!(status, 400, "{bad}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(says),
            "{bad}: {text}"
        );
    }
    assert_eq!(fake.requests_to(RESPONSES_PATH).len(), before);

    // No messages: Ollama's way to load a model (keep_alive 0: to unload it), answered at once.
    let (status, _, text) = post(
        &daemon.url("/api/chat"),
        &json!({"model": "gpt-5.5", "messages": []}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let loaded: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (loaded["done"].clone(), loaded["done_reason"].clone()),
        (json!(true), json!("load"))
    );
    let (_, _, text) = post(
        &daemon.url("/api/generate"),
        &json!({"model": "gpt-5.5", "keep_alive": 0}),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["done_reason"],
        "unload"
    );
    let (status, _, _) = post(
        &daemon.url("/api/chat"),
        &json!({"model": "llama3", "messages": []}),
    )
    .await;
    assert_eq!(status, 404, "an unknown model does not load");
    assert_eq!(fake.requests_to(RESPONSES_PATH).len(), before);
}

#[tokio::test]
async fn generate_streams_and_answers_whole() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::text("A haiku arrives"));
    let body = json!({"model": "gpt-5.5", "prompt": "Write a haiku", "system": "You are a poet."});
    let (status, headers, text) = post(&daemon.url("/api/generate"), &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines = lines(&text);
    let response: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    assert_eq!(response, "A haiku arrives");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert!(last.get("message").is_none());
    let upstream = last_upstream(&fake);
    assert_eq!(upstream["instructions"], "You are a poet.");
    assert_eq!(upstream["input"][0]["content"][0]["text"], "Write a haiku");

    fake.enqueue(Script::incomplete("max_output_tokens"));
    let body = json!({"model": "gpt-5.5", "prompt": "Go on", "stream": false});
    let (status, _, text) = post(&daemon.url("/api/generate"), &body).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["response"], "cut short ");
    assert_eq!(answer["done_reason"], "length");

    let (status, _, text) = post(
        &daemon.url("/api/generate"),
        &json!({"model": "gpt-5.5", "suffix": "x", "prompt": " ", "images": ["bm90"]}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn model_endpoints_answer_in_ollamas_shape() {
    let (_fake, daemon) = setup().await;
    let (status, text) = get(&daemon.url("/api/version")).await;
    assert_eq!(status, 200);
    let version: Value = serde_json::from_str(&text).unwrap();
    assert!(version["version"].as_str().unwrap().starts_with("0."));

    let (status, text) = get(&daemon.url("/api/tags")).await;
    assert_eq!(status, 200);
    let tags: Value = serde_json::from_str(&text).unwrap();
    let models = tags["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"gpt-5.5:latest"), "{names:?}");
    let first = &models[0];
    assert_eq!(first["digest"].as_str().unwrap().len(), 64);
    assert!(first["details"]["family"].is_string());

    let (status, _, text) = post(
        &daemon.url("/api/show"),
        &json!({"model": "gpt-5.5:latest"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let show: Value = serde_json::from_str(&text).unwrap();
    let capabilities = show["capabilities"].as_array().unwrap();
    for c in ["completion", "tools", "vision", "thinking"] {
        assert!(capabilities.contains(&json!(c)), "{c}: {text}");
    }
    assert!(show["model_info"]["gpt.context_length"].as_u64().unwrap() > 0);

    let (status, text) = get(&daemon.url("/api/ps")).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["models"].is_array());

    // Errors: Ollama's shape, with the status a client can act on.
    let (status, _, text) = post(&daemon.url("/api/show"), &json!({"model": "llama3"})).await;
    assert_eq!(status, 404, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("'llama3' not found"),
        "{text}"
    );
    let (status, _, text) = post(&daemon.url("/api/pull"), &json!({"model": "llama3"})).await;
    assert_eq!(status, 501, "{text}");
    assert!(serde_json::from_str::<Value>(&text).unwrap()["error"].is_string());
    let response = reqwest::Client::new()
        .post(daemon.url("/api/chat"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"].is_string(), "{error}");
}

#[tokio::test]
async fn keys_are_checked_when_sent_and_required_when_configured() {
    let (_fake, daemon) = setup().await;
    // No key from this machine: answered. A wrong key: refused, as everywhere.
    let (status, _) = get(&daemon.url("/api/tags")).await;
    assert_eq!(status, 200);
    let response = reqwest::Client::new()
        .get(daemon.url("/api/tags"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key")
    );
    let response = reqwest::Client::new()
        .get(daemon.url("/api/tags"))
        .bearer_auth(daemon.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Other surfaces still need the key.
    let (status, _) = get(&daemon.url("/v1/models")).await;
    assert_eq!(status, 401);
    // A web page in this machine's browser is local too: without the key, only local pages
    // (and named origins) may ask — a foreign page's simple POST is refused before anything.
    let ask = |origin: &'static str| {
        reqwest::Client::new()
            .post(daemon.url("/api/show"))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(r#"{"model": "gpt-5.5"}"#)
            .send()
    };
    let refused = ask("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("cors_origins"),
        "{error}"
    );
    assert_eq!(ask("null").await.unwrap().status(), 403);
    assert_eq!(ask("http://localhost:3000").await.unwrap().status(), 200);

    let fake = FakeUpstream::start().await.unwrap();
    let strict = Daemon::builder()
        .fake(&fake, &[0])
        .set("ollama", "require_key = true")
        .start();
    let (status, text) = get(&strict.url("/api/tags")).await;
    assert_eq!(status, 401);
    assert!(text.contains("require_key"), "{text}");
    let off = Daemon::builder()
        .fake(&fake, &[0])
        .set("ollama", "enabled = false")
        .start();
    let (status, text) = get(&off.url("/api/tags")).await;
    assert_eq!(status, 404);
    assert!(text.contains("turned off"), "{text}");
}

#[tokio::test]
async fn the_second_listener_answers_as_ollama_does() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("ollama", "listen = \"127.0.0.1:0\"")
        .start();
    let (status, text) = get(&daemon.ollama_url("/")).await;
    assert_eq!((status, text.as_str()), (200, "Ollama is running"));
    let (status, _) = get(&daemon.ollama_url("/api/tags")).await;
    assert_eq!(status, 200);
    fake.enqueue(Script::text("Hi there"));
    let (status, _, text) = post(
        &daemon.ollama_url("/api/chat"),
        &json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}], "stream": false}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["message"]["content"],
        "Hi there"
    );
    // No dashboard there; the main port keeps it.
    let (status, _) = get(&daemon.ollama_url("/dashboard/")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&daemon.url("/")).await;
    assert_ne!(status, 404);
}

#[tokio::test]
async fn failures_are_errors_before_the_first_line_and_error_lines_after() {
    let (fake, daemon) = setup().await;
    let body = json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]});
    fake.enqueue(Script::failed("server_error", "The model broke."));
    let (status, _, text) = post(&daemon.url("/api/chat"), &body).await;
    assert_eq!(status, 200, "{text}");
    let lines = lines(&text);
    let last = lines.last().unwrap();
    assert!(
        last["error"].as_str().unwrap().contains("The model broke"),
        "{text}"
    );

    // The only account at its usage limit: a 429 before any line.
    fake.enqueue(Script::usage_limit(600));
    let (status, headers, text) = post(&daemon.url("/api/chat"), &body).await;
    assert_eq!(status, 429, "{text}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("usage limit")
    );
}
