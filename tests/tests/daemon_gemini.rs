//! The Gemini API end to end against the strict fake: generateContent whole, streamed as SSE
//! and as a JSON array, countTokens, the model list under `/v1beta` and `/v1`, the key in its
//! three places, function calls and their responses, and every error in Google's shape.

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

/// POSTs as Google's SDKs do: the key in `x-goog-api-key`.
async fn post(daemon: &Daemon, path: &str, body: &Value) -> (u16, HeaderMap, String) {
    let response = reqwest::Client::new()
        .post(daemon.url(path))
        .header("x-goog-api-key", daemon.api_key())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn get(daemon: &Daemon, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(daemon.url(path))
        .header("x-goog-api-key", daemon.api_key())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn last_upstream(fake: &FakeUpstream) -> Value {
    fake.requests_to(RESPONSES_PATH)
        .into_iter()
        .filter_map(|r| r.body)
        .next_back()
        .unwrap()
}

/// The `data:` payloads of an SSE body (Google frames its events with `\r\n\r\n`).
fn sse_data(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

fn hello() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]}
    })
}

fn text_of(response: &Value) -> String {
    response["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["thought"] != true)
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn generate_content_whole_and_streamed_both_ways() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::text("Hello from Codex").with_reasoning("Plan"));
    let (status, _, text) = post(&daemon, "/v1beta/models/gpt-5.5:generateContent", &hello()).await;
    assert_eq!(status, 200, "{text}");
    let response: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(text_of(&response), "Hello from Codex");
    assert_eq!(response["candidates"][0]["finishReason"], "STOP");
    assert_eq!(response["modelVersion"], "gpt-5.5");
    assert!(
        response["usageMetadata"]["promptTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Thoughts only when asked for.
    assert!(
        response["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("thought").is_none())
    );
    let upstream = last_upstream(&fake);
    assert_eq!(upstream["instructions"], "Be brief.");
    assert_eq!(upstream["model"], "gpt-5.5");

    // SSE, thoughts included.
    fake.enqueue(Script::deltas(["one ", "two"]).with_reasoning("Counting"));
    let mut body = hello();
    body["generationConfig"] =
        json!({"thinkingConfig": {"includeThoughts": true, "thinkingBudget": 20000}});
    let (status, headers, text) = post(
        &daemon,
        "/v1beta/models/gpt-5.5:streamGenerateContent?alt=sse",
        &body,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(text.contains("\r\n\r\n"));
    let chunks = sse_data(&text);
    let thoughts: String = chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|p| p["thought"] == true)
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(thoughts, "Counting");
    let said: String = chunks.iter().map(text_of).collect();
    assert_eq!(said, "one two");
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
    assert_eq!(last_upstream(&fake)["reasoning"]["effort"], "high");

    // Without alt=sse: one JSON array, streamed.
    fake.enqueue(Script::deltas(["a", "b"]));
    let (status, headers, text) = post(
        &daemon,
        "/v1beta/models/gpt-5.5:streamGenerateContent",
        &hello(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let array: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(array.iter().map(text_of).collect::<String>(), "ab");
    assert_eq!(
        array.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );

    // Google's Python SDK goes to /v1 by default.
    fake.enqueue(Script::text("via v1"));
    let (status, _, text) = post(&daemon, "/v1/models/gpt-5.5:generateContent", &hello()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text_of(&serde_json::from_str(&text).unwrap()), "via v1");
}

#[tokio::test]
async fn function_calls_and_their_responses() {
    let (fake, daemon) = setup().await;
    let tools = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]);
    fake.enqueue(Script::function_call("get_weather", r#"{"city": "Paris"}"#));
    let first = json!({"contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}], "tools": tools});
    let (status, _, text) = post(&daemon, "/v1beta/models/gpt-5.5:generateContent", &first).await;
    assert_eq!(status, 200, "{text}");
    let response: Value = serde_json::from_str(&text).unwrap();
    let call = response["candidates"][0]["content"]["parts"][0]["functionCall"].clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["args"], json!({"city": "Paris"}));
    assert_eq!(
        last_upstream(&fake)["tools"][0]["parameters"]["properties"]["city"]["type"],
        "string"
    );

    // Back as the SDK sends it: the call without its id, the response by name.
    let second = json!({"contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"weather": "sunny"}}}]}
    ], "tools": tools});
    fake.enqueue(Script::text("It is sunny."));
    let (status, _, text) = post(&daemon, "/v1beta/models/gpt-5.5:generateContent", &second).await;
    assert_eq!(status, 200, "{text}");
    let input = last_upstream(&fake)["input"].clone();
    let call = input
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap()
        .clone();
    let output = input
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call_output")
        .unwrap()
        .clone();
    assert_eq!(call["call_id"], output["call_id"]);
    // The backend's own id and arguments text, as it made them.
    assert_eq!(
        call["call_id"],
        response["candidates"][0]["content"]["parts"][0]["functionCall"]["id"]
    );
    assert_eq!(call["arguments"], r#"{"city": "Paris"}"#);
    assert_eq!(output["output"], r#"{"weather":"sunny"}"#);
}

#[tokio::test]
async fn models_count_tokens_and_keys() {
    let (fake, daemon) = setup().await;
    let (status, text) = get(&daemon, "/v1beta/models").await;
    assert_eq!(status, 200, "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"models/gpt-5.5"), "{names:?}");
    assert!(
        list["models"][0]["supportedGenerationMethods"]
            .as_array()
            .unwrap()
            .contains(&json!("generateContent"))
    );
    let (status, text) = get(&daemon, "/v1beta/models/gpt-5.5").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["name"],
        "models/gpt-5.5"
    );
    // Under /v1 with Google's header: Gemini's shape; without it, OpenAI's.
    let (status, text) = get(&daemon, "/v1/models").await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["models"].is_array());
    let (status, text) = get(&daemon, "/v1/models/gpt-5.5").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["name"],
        "models/gpt-5.5"
    );
    let openai: Value = reqwest::Client::new()
        .get(daemon.url("/v1/models"))
        .bearer_auth(daemon.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openai["object"], "list");

    let before = fake.requests_to(RESPONSES_PATH).len();
    let (status, _, text) = post(&daemon, "/v1beta/models/gpt-5.5:countTokens", &hello()).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        serde_json::from_str::<Value>(&text).unwrap()["totalTokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let nested = json!({"generateContentRequest": {"model": "models/gpt-5.5", "contents": [{"parts": [{"text": "hello there"}]}]}});
    let (status, _, text) = post(&daemon, "/v1beta/models/gpt-5.5:countTokens", &nested).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        fake.requests_to(RESPONSES_PATH).len(),
        before,
        "counting goes nowhere"
    );

    // ?key= works; no key and a wrong key are refused in Google's shape.
    let client = reqwest::Client::new();
    let response = client
        .get(daemon.url(&format!("/v1beta/models?key={}", daemon.api_key())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .get(daemon.url("/v1beta/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], 401);
    assert_eq!(error["error"]["status"], "UNAUTHENTICATED");
    let response = client
        .get(daemon.url("/v1beta/models"))
        .header("x-goog-api-key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn errors_come_in_googles_shape() {
    let (fake, daemon) = setup().await;
    let (status, _, text) = post(&daemon, "/v1beta/models/llama:generateContent", &hello()).await;
    assert_eq!(status, 404, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["status"], "NOT_FOUND");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("models/llama")
    );
    let (status, _, text) = post(&daemon, "/v1beta/models/gpt-5.5:embedContent", &hello()).await;
    assert_eq!(status, 404, "{text}");
    let (status, _, text) = post(
        &daemon,
        "/v1beta/models/gpt-5.5:generateContent",
        &json!({"contents": []}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["status"],
        "INVALID_ARGUMENT"
    );

    // A failure after the first chunk: an error chunk the SDKs raise.
    fake.enqueue(Script::failed("server_error", "The model broke."));
    let (status, _, text) = post(
        &daemon,
        "/v1beta/models/gpt-5.5:streamGenerateContent?alt=sse",
        &hello(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let last = sse_data(&text).pop().unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The model broke"),
        "{text}"
    );
    // The same in the array form: still one valid JSON array.
    fake.enqueue(Script::failed("server_error", "Broke again."));
    let (_, _, text) = post(
        &daemon,
        "/v1beta/models/gpt-5.5:streamGenerateContent",
        &hello(),
    )
    .await;
    let array: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(
        array.last().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Broke again")
    );

    fake.enqueue(Script::usage_limit(600));
    let (status, headers, text) =
        post(&daemon, "/v1beta/models/gpt-5.5:generateContent", &hello()).await;
    assert_eq!(status, 429, "{text}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["status"],
        "RESOURCE_EXHAUSTED"
    );
}
