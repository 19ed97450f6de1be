//! `/v1/chat/completions` end to end: the real daemon against the strict fake. Each test checks
//! what the client received and what the fake recorded.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use codex_proxy_tests::fake::{
    FakeUpstream, MODELS_PATH, Options, RESPONSES_PATH, Reply, Script, decode_claims,
};
use codex_proxy_tests::harness::{Daemon, TEST_API_KEY, chat_chunks};
use serde_json::{Value, json};

async fn setup() -> (FakeUpstream, Daemon) {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    (fake, daemon)
}

fn user(text: &str) -> Value {
    json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": text}]})
}

async fn last_upstream_body(fake: &FakeUpstream) -> Value {
    let recorded = fake
        .wait_for_requests(RESPONSES_PATH, 1, Duration::from_secs(5))
        .await;
    recorded.last().unwrap().body.clone().unwrap()
}

#[tokio::test]
async fn non_streamed_completion_and_what_went_upstream() {
    let (fake, daemon) = setup().await;
    let (status, headers, body) = daemon
        .chat(&json!({"model": "gpt-5.5", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
            "temperature": 0.3, "max_tokens": 50}))
        .await;
    assert_eq!(status, 200, "{body}");
    let completion: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(completion["model"], "gpt-5.5");
    let choice = &completion["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "You said: hello");
    assert!(
        choice["message"]["reasoning_content"]
            .as_str()
            .unwrap()
            .contains("Answering")
    );
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &completion["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(usage["prompt_tokens_details"]["cached_tokens"].is_u64());
    assert!(
        usage["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        headers["x-codex-proxy-ignored-params"],
        "max_tokens, temperature"
    );

    // What the fake received: the official request shape and identity.
    let rec = fake.requests_to(RESPONSES_PATH).pop().unwrap();
    assert_eq!(rec.status, 200, "{:?}", rec.rejection);
    let sent = rec.body.as_ref().unwrap();
    assert_eq!(sent["store"], false);
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["instructions"], "Be brief.");
    assert!(sent.get("temperature").is_none() && sent.get("max_output_tokens").is_none());
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
    // A small body goes as it is (zstd would cost more than it saves); a large one, zstd
    // (below, and over HTTP/2).
    assert_eq!(rec.header("content-encoding"), None);
    assert_eq!(rec.header("originator"), Some("codex_cli_rs"));
    assert!(
        rec.header("user-agent")
            .unwrap()
            .starts_with("codex_cli_rs/0.146.0 (")
    );
    assert_eq!(rec.header("version"), Some("0.146.0"));
    assert_eq!(
        rec.header("chatgpt-account-id"),
        Some(fake.account(0).account_id.as_str())
    );
    let key = sent["prompt_cache_key"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(key).unwrap().get_version_num(), 7);
    assert_eq!(rec.header("session-id"), Some(key));
    assert_eq!(rec.header("thread-id"), Some(key));
    assert_eq!(rec.header("x-client-request-id"), Some(key));
    let token = rec
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    assert_eq!(
        decode_claims(token).unwrap()["https://api.openai.com/auth"]["chatgpt_account_id"],
        fake.account(0).account_id.as_str()
    );
}

#[tokio::test]
async fn streamed_completion_is_chunked_exactly_like_openai() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::deltas(["Hel", "lo ", "w\u{f6}rld \u{1f30d}"]));
    let mut body = user("hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = daemon.chat(&body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["x-accel-buffering"], "no");
    let chunks = chat_chunks(&text);
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let first = &chunks[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(first["choices"][0]["delta"]["content"], "");
    // One client delta per upstream delta, in order, nothing batched.
    let contents: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| {
            c.get("choices")?
                .get(0)?
                .get("delta")?
                .get("content")?
                .as_str()
        })
        .collect();
    assert_eq!(contents, ["Hel", "lo ", "w\u{f6}rld \u{1f30d}"]);
    let finish = chunks
        .iter()
        .find(|c| {
            !c["choices"][0]["finish_reason"].is_null()
                && c["choices"].as_array().is_some_and(|a| !a.is_empty())
        })
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    // include_usage: null on every chunk but the last, which has no choices.
    let usage_chunk = &chunks[chunks.len() - 2];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert!(usage_chunk["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(
        chunks[..chunks.len() - 2]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some())
    );
    // All chunks share one id.
    let ids: std::collections::HashSet<&str> = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn without_include_usage_there_is_no_usage_field() {
    let (_fake, daemon) = setup().await;
    let mut body = user("hi");
    body["stream"] = json!(true);
    let (_, _, text) = daemon.chat(&body).await;
    let chunks = chat_chunks(&text);
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.get("usage").is_none() && !c["choices"].as_array().unwrap().is_empty())
    );
}

#[tokio::test]
async fn prompt_cache_key_is_stable_across_turns_of_a_conversation() {
    let (fake, daemon) = setup().await;
    let turn1 = json!({"model": "gpt-5.5", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "first question"}]});
    let turn2 = json!({"model": "gpt-5.5", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "answer"}, {"role": "user", "content": "follow-up"}]});
    let other = json!({"model": "gpt-5.5", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "another chat"}]});
    for body in [&turn1, &turn2, &other] {
        assert_eq!(daemon.chat(body).await.0, 200);
    }
    let keys: Vec<String> = fake
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| {
            r.body.as_ref().unwrap()["prompt_cache_key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys[0], keys[1], "same conversation, same key");
    assert_ne!(keys[0], keys[2], "another conversation, another key");
}

#[tokio::test]
async fn the_prompt_cache_hits_on_the_second_turn() {
    let (fake, daemon) = setup().await;
    fake.set_cache_min_tokens(64);
    let long = "context ".repeat(400);
    let turn1 = json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": long}]});
    let mut turn2 = turn1.clone();
    turn2["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": "ok"}),
        json!({"role": "user", "content": "more"}),
    ]);
    daemon.chat(&turn1).await;
    let (_, _, body) = daemon.chat(&turn2).await;
    let usage: Value = serde_json::from_str::<Value>(&body).unwrap()["usage"].clone();
    assert!(
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{usage}"
    );
}

#[tokio::test]
async fn streamed_tool_calls_and_the_tool_result_turn() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::function_calls(&[
        ("weather", r#"{"city":"Paris"}"#),
        ("weather", r#"{"city":"Rome"}"#),
    ]));
    let tools = json!([{"type": "function", "function": {"name": "weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}, "strict": true}}]);
    let mut body = json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "weather?"}], "tools": tools, "stream": true});
    let (status, _, text) = daemon.chat(&body).await;
    assert_eq!(status, 200, "{text}");
    let chunks = chat_chunks(&text);
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in &chunks {
        for call in chunk
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if let Some(id) = call["id"].as_str() {
                assert_eq!(call["type"], "function");
                calls.push((
                    id.to_owned(),
                    call["function"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            }
            calls[index]
                .2
                .push_str(call["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].1.as_str(), calls[0].2.as_str()),
        ("weather", r#"{"city":"Paris"}"#)
    );
    assert_eq!(calls[1].2, r#"{"city":"Rome"}"#);
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);

    // The client answers both calls; the fake checks every output answers a call in the input.
    body["stream"] = json!(false);
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": calls[0].0, "type": "function", "function": {"name": "weather", "arguments": calls[0].2}},
            {"id": calls[1].0, "type": "function", "function": {"name": "weather", "arguments": calls[1].2}}]}),
        json!({"role": "tool", "tool_call_id": calls[0].0, "content": "18C"}),
        json!({"role": "tool", "tool_call_id": calls[1].0, "content": "21C"}),
    ]);
    let (status, _, text) = daemon.chat(&body).await;
    assert_eq!(status, 200, "{text}");
    let sent = last_upstream_body(&fake).await;
    assert_eq!(sent["tools"][0]["strict"], true);
    assert_eq!(sent["input"][3]["type"], "function_call_output");
}

#[tokio::test]
async fn non_streamed_tool_calls() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::function_call("lookup", r#"{"q":"rust"}"#));
    let (status, _, text) = daemon
        .chat(&json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "find"}],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]}))
        .await;
    assert_eq!(status, 200, "{text}");
    let completion: Value = serde_json::from_str(&text).unwrap();
    let message = &completion["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(
        message["tool_calls"][0]["function"],
        json!({"name": "lookup", "arguments": "{\"q\":\"rust\"}"})
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn reasoning_output_modes() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.set_default(Some(Script::text("answer").with_reasoning("thinking hard")));
    let think = Daemon::builder()
        .fake(&fake, &[0])
        .config("[model]\nreasoning_output = \"think_tags\"\n")
        .start();
    let (_, _, body) = think.chat(&user("q")).await;
    let message = serde_json::from_str::<Value>(&body).unwrap()["choices"][0]["message"].clone();
    assert_eq!(
        message["content"],
        "<think>\nthinking hard\n</think>\n\nanswer"
    );
    assert!(message.get("reasoning_content").is_none());

    let none = Daemon::builder()
        .fake(&fake, &[0])
        .config("[model]\nreasoning_output = \"none\"\n")
        .start();
    let (_, _, body) = none.chat(&user("q")).await;
    let message = serde_json::from_str::<Value>(&body).unwrap()["choices"][0]["message"].clone();
    assert_eq!(message["content"], "answer");
    // Nothing was asked for, so nothing was sent: the request carries no summary.
    let sent = last_upstream_body(&fake).await;
    assert!(sent["reasoning"].get("summary").is_none());
}

#[tokio::test]
async fn stop_sequences_are_honoured_locally() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::deltas(["alpha be", "ta ST", "OP gamma"]));
    let mut body = user("go");
    body["stop"] = json!(["STOP"]);
    let (_, headers, text) = daemon.chat(&body).await;
    let completion: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "alpha beta "
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert!(
        headers.get("x-codex-proxy-ignored-params").is_none(),
        "stop is honoured, not ignored"
    );
    assert!(last_upstream_body(&fake).await.get("stop").is_none());
}

#[tokio::test]
async fn n_runs_parallel_upstream_requests() {
    let (fake, daemon) = setup().await;
    let mut body = user("twice");
    body["n"] = json!(2);
    let (status, _, text) = daemon.chat(&body).await;
    assert_eq!(status, 200, "{text}");
    let completion: Value = serde_json::from_str(&text).unwrap();
    let indexes: Vec<u64> = completion["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1]);
    assert_eq!(fake.requests_to(RESPONSES_PATH).len(), 2);

    body["stream"] = json!(true);
    let (_, _, text) = daemon.chat(&body).await;
    let chunks = chat_chunks(&text);
    let finishes = chunks
        .iter()
        .filter(|c| {
            c.pointer("/choices/0/finish_reason")
                .is_some_and(|f| !f.is_null())
        })
        .count();
    assert_eq!(finishes, 2);
}

#[tokio::test]
async fn upstream_errors_before_the_first_byte_keep_their_meaning() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::usage_limit(2 * 3600 + 14 * 60));
    let (status, headers, body) = daemon.chat(&user("hi")).await;
    assert_eq!(status, 429, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((8000..=8040).contains(&retry), "{retry}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "usage_limit_reached");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resets at"),
        "{error}"
    );

    // (script, how many times the daemon will try it, status, code): a 500 is retried twice,
    // a 401 gets one refresh and one retry, the rest are final.
    let cases: Vec<(Script, usize, u16, &str)> = vec![
        (Script::new(Reply::InternalError), 3, 502, "upstream_error"),
        (Script::new(Reply::Overloaded), 1, 503, "server_overloaded"),
        (
            Script::new(Reply::TokenExpired),
            2,
            502,
            "upstream_unauthorized",
        ),
        (
            Script::new(Reply::CloudflareBlocked),
            1,
            502,
            "upstream_blocked",
        ),
        (
            Script::failed_at_once(
                "context_length_exceeded",
                "Your input exceeds the context window of this model.",
            ),
            1,
            400,
            "context_length_exceeded",
        ),
        (
            Script::failed_at_once("cyber_policy", "flagged"),
            1,
            400,
            "cyber_policy",
        ),
    ];
    for (script, attempts, status, code) in cases {
        // The same error whether the client streams or not: nothing had reached it yet.
        for stream in [false, true] {
            // Another account, since the first one is now limited; a daemon of its own each
            // time, since three 500s in a row open an account's circuit.
            let daemon = Daemon::builder().fake(&fake, &[1]).start();
            for _ in 0..attempts {
                fake.enqueue(script.clone());
            }
            let mut body = user("x");
            body["stream"] = json!(stream);
            let (got, _, text) = daemon.chat(&body).await;
            assert_eq!(got, status, "stream={stream}: {text}");
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap()["error"]["code"],
                code,
                "{text}"
            );
        }
    }
}

#[tokio::test]
async fn a_passing_5xx_is_retried_before_the_first_byte() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::new(Reply::InternalError));
    let (status, _, text) = daemon.chat(&user("again")).await;
    assert_eq!(status, 200, "{text}");
    let recorded = fake.requests_to(RESPONSES_PATH);
    assert_eq!(
        recorded.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 200]
    );
}

#[tokio::test]
async fn a_streamed_error_before_any_output_is_still_an_http_error() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::failed_at_once(
        "context_length_exceeded",
        "too long",
    ));
    let mut body = user("x");
    body["stream"] = json!(true);
    let (status, _, text) = daemon.chat(&body).await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn an_error_after_the_first_byte_is_an_error_chunk_then_done() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::deltas(["partial answer"]).ending(
        codex_proxy_tests::fake::Ending::Failed {
            code: "server_is_overloaded".into(),
            message: "Selected model is at capacity".into(),
        },
    ));
    let mut body = user("x");
    body["stream"] = json!(true);
    let (status, _, text) = daemon.chat(&body).await;
    assert_eq!(status, 200);
    let chunks = chat_chunks(&text);
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let error = &chunks[chunks.len() - 2];
    assert_eq!(error["error"]["code"], "server_overloaded", "{text}");
    assert!(
        chunks
            .iter()
            .any(|c| c.pointer("/choices/0/delta/content") == Some(&json!("partial answer")))
    );
}

#[tokio::test]
async fn incomplete_responses_finish_with_length() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::incomplete("max_output_tokens"));
    let (_, _, text) = daemon.chat(&user("x")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["choices"][0]["finish_reason"],
        "length"
    );
    fake.enqueue(Script::incomplete("content_filter"));
    let (_, _, text) = daemon.chat(&user("x")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["choices"][0]["finish_reason"],
        "content_filter"
    );
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::deltas((0..500).map(|i| format!("w{i} "))).paced(20));
    let mut body = user("long");
    body["stream"] = json!(true);
    let stream = daemon.stream_until(&body, "w3 ").await;
    drop(stream);
    let seq = fake.requests_to(RESPONSES_PATH)[0].seq;
    assert!(
        fake.wait_for_hangup(seq, Duration::from_secs(5)).await,
        "the daemon dropped the upstream request"
    );
}

/// A response that has ended is closed as HTTP means it to be: the daemon reads the body to
/// its end (HTTP/2's END_STREAM, HTTP/1.1's last chunk) even when that comes a moment after
/// `response.completed`, instead of resetting the request — servers count reset streams
/// against "rapid reset" floods, and h2 closes a connection, with every stream on it, once late
/// frames for streams it reset add up to 1 024. Streamed and not, over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn an_ended_response_is_read_to_its_end_not_reset() {
    for tls in [false, true] {
        let fake = FakeUpstream::start_with(Options {
            tls,
            ..Options::default()
        })
        .await
        .unwrap();
        let daemon = Daemon::builder()
            .fake(&fake, &[0])
            .trusting_test_ca()
            .start();
        for stream in [false, true] {
            fake.enqueue(Script::text("the whole answer").slow_end(300));
            let mut body = user("x");
            body["stream"] = json!(stream);
            let (status, _, text) = daemon.chat(&body).await;
            assert_eq!(status, 200, "{text}");
            assert!(text.contains("whole"), "{text}");
            let call = fake.requests_to(RESPONSES_PATH).pop().unwrap();
            assert_eq!(call.version, if tls { "HTTP/2.0" } else { "HTTP/1.1" });
            assert_eq!(
                fake.wait_for_end(call.seq, Duration::from_secs(10)).await,
                Some(true),
                "tls {tls}, stream {stream}: the daemon read the body to its end"
            );
        }
    }
}

#[tokio::test]
async fn api_keys_are_required() {
    let (_fake, daemon) = setup().await;
    let http = reqwest::Client::new();
    let url = daemon.url("/v1/chat/completions");
    let response = http.post(&url).json(&user("x")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_api_key"
    );
    let response = http
        .post(&url)
        .bearer_auth("wrong-key-123")
        .json(&user("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .post(&url)
        .header("x-api-key", TEST_API_KEY)
        .json(&user("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        http.get(daemon.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "health needs no key"
    );
    assert_eq!(
        http.get(daemon.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        http.get(daemon.url("/debug/fingerprint"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn models_list_aliases_variants_and_404s() {
    let (fake, daemon) = setup().await;
    let list: Value = daemon.get_json("/v1/models").await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "gpt-5.5",
        "gpt-5.5-high",
        "codex",
        "codex-mini",
        "gpt-5.6-sol",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(
        !ids.contains(&"gpt-5.4-mini"),
        "hidden models are not listed"
    );
    assert_eq!(list["data"][0]["object"], "model");

    let one = daemon
        .client()
        .get(daemon.url("/v1/models/codex-low"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = daemon
        .client()
        .get(daemon.url("/v1/models/gpt-4o"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "model_not_found"
    );

    let (status, _, text) = daemon
        .chat(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(status, 404);
    assert!(text.contains("gpt-5.5"), "lists what exists: {text}");

    // The live catalog was fetched with the client version.
    let fetched = fake
        .wait_for_requests(MODELS_PATH, 1, Duration::from_secs(5))
        .await;
    assert_eq!(fetched[0].query.as_deref(), Some("client_version=0.146.0"));
    assert_eq!(fetched[0].status, 200);

    // An alias with an effort suffix reaches the backend as model + effort.
    daemon
        .chat(&json!({"model": "codex-high", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    let sent = fake
        .requests_to(RESPONSES_PATH)
        .pop()
        .unwrap()
        .body
        .unwrap();
    assert_eq!(
        (sent["model"].as_str(), sent["reasoning"]["effort"].as_str()),
        (Some("gpt-5.5"), Some("high"))
    );
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_goes_upstream() {
    let (fake, daemon) = setup().await;
    let cases = [
        (json!({"model": "gpt-5.5", "messages": "hi"}), "messages"),
        (
            json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "minimal"}),
            "reasoning_effort",
        ),
        (
            json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
            "json_schema": {"name": "o", "strict": true, "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"model": "gpt-5.5", "messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]}),
            "messages[0].tool_call_id",
        ),
    ];
    for (body, param) in cases {
        let (status, _, text) = daemon.chat(&body).await;
        assert_eq!(status, 400, "{text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["error"]["param"],
            param,
            "{text}"
        );
    }
    let response = daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(fake.requests_to(RESPONSES_PATH).is_empty());
}

#[tokio::test]
async fn images_and_structured_output_pass_the_strict_backend() {
    let (fake, daemon) = setup().await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let (status, _, text) = daemon
        .chat(&json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this? answer in json"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}"), "detail": "low"}}]}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
                "schema": {"type": "object", "properties": {"what": {"type": "string"}}, "required": ["what"], "additionalProperties": false}}}}))
        .await;
    assert_eq!(status, 200, "{text}");
    let sent = last_upstream_body(&fake).await;
    assert_eq!(sent["text"]["format"]["type"], "json_schema");
    assert_eq!(sent["input"][0]["content"][1]["detail"], "low");
}

#[tokio::test]
async fn fingerprint_shows_identity_without_tokens() {
    let (fake, daemon) = setup().await;
    let fingerprint: Value = daemon.get_json("/debug/fingerprint").await;
    assert_eq!(fingerprint["originator"], "codex_cli_rs");
    assert_eq!(fingerprint["headers"]["authorization"], "Bearer <redacted>");
    assert_eq!(
        fingerprint["headers"]["chatgpt-account-id"],
        fake.account(0).account_id.as_str()
    );
    let text = fingerprint.to_string();
    assert!(!text.contains("eyJ"), "no JWT anywhere: {text}");
}

#[tokio::test]
async fn no_account_is_a_clear_503() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[]).start();
    let (status, _, text) = daemon.chat(&user("x")).await;
    assert_eq!(status, 503);
    assert!(text.contains("codexctl login"), "{text}");
}

#[test]
fn a_network_bind_needs_configured_keys() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        std::process::Command::new(codex_proxy_tests::harness::workspace_binary("codex-proxy"))
            .env_clear()
            .env("HOME", dir.path())
            .env("CODEX_PROXY_STATE_DIR", dir.path().join("state"))
            .args(["--host", "0.0.0.0", "--port", "0", "--allow-root"])
            .output()
            .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("api_keys"));
}

#[tokio::test]
async fn deltas_reach_the_client_while_upstream_is_still_streaming() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::deltas(["first ", "second ", "third ", "fourth"]).paced(300));
    let mut body = user("x");
    body["stream"] = json!(true);
    let _stream = daemon.stream_until(&body, "\"content\":\"first \"").await;
    // The first delta is here; the upstream stream has not finished: nothing was buffered.
    let rec = fake.requests_to(RESPONSES_PATH).pop().unwrap();
    assert!(
        !rec.completed,
        "the daemon waited for the whole upstream response"
    );
}

#[tokio::test]
async fn keepalives_flow_while_the_model_is_silent() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("server", "keepalive_seconds = 1")
        .start();
    // A long silence before the first delta (a model thinking without summaries).
    fake.enqueue(Script::deltas(["late answer"]).paced(2_500));
    let mut body = user("x");
    body["stream"] = json!(true);
    let (status, _, text) = daemon.chat(&body).await;
    assert_eq!(status, 200);
    let keepalive = text.find(": keepalive\n\n").expect("a keepalive comment");
    let content = text.find("late answer").unwrap();
    assert!(keepalive < content, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_new_catalog_etag_triggers_a_refetch() {
    let (fake, daemon) = setup().await;
    let first = fake
        .wait_for_requests(MODELS_PATH, 1, Duration::from_secs(5))
        .await;
    let etag = first[0].header("if-none-match").map(str::to_owned);
    assert_eq!(etag, None, "the first fetch has nothing to revalidate");
    assert_eq!(daemon.chat(&user("x")).await.0, 200);
    assert_eq!(
        fake.requests_to(MODELS_PATH).len(),
        1,
        "same ETag announced: no refetch"
    );

    fake.bump_catalog();
    assert_eq!(daemon.chat(&user("x")).await.0, 200);
    let fetched = fake
        .wait_for_requests(MODELS_PATH, 2, Duration::from_secs(5))
        .await;
    assert!(
        fetched[1].header("if-none-match").is_some(),
        "revalidates with the ETag it holds"
    );
    assert_eq!(fetched[1].status, 200);
    // The cache in the state dir holds the new catalog.
    let cache = daemon.state_dir().join("models_cache.json");
    let updated = codex_proxy_tests::harness::poll_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&cache).is_ok_and(|c| c.contains("catalog revision 1"))
    })
    .await;
    assert!(updated, "the new catalog is cached in the state dir");
}

#[tokio::test]
async fn an_unreachable_backend_leaves_the_builtin_catalog_and_a_clear_502() {
    let fake = FakeUpstream::start().await.unwrap();
    let builder = Daemon::builder().fake(&fake, &[0]);
    drop(fake); // Its port now refuses connections.
    let daemon = builder.start();
    let list: Value = daemon.get_json("/v1/models").await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-5.5")
    );
    let (status, _, text) = daemon.chat(&user("x")).await;
    assert_eq!(status, 502, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["code"],
        "upstream_unreachable"
    );
}

/// A tiny HTTP proxy that records request lines (with ` +auth` when a `Proxy-Authorization`
/// header came along) and answers 502.
async fn recording_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let mut lines = head.lines();
                let mut line = lines.next().unwrap_or_default().to_owned();
                // `user:pw`, as the test's proxy URL carries it.
                if lines.any(|l| l.eq_ignore_ascii_case("proxy-authorization: Basic dXNlcjpwdw=="))
                {
                    line.push_str(" +auth");
                }
                record.lock().unwrap().push(line);
                let _ = socket.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn requests_go_through_the_configured_or_environment_proxy() {
    let fake = FakeUpstream::start().await.unwrap();
    let (proxy, seen) = recording_proxy().await;
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set(
            "upstream",
            &format!(
                "proxy = \"{}\"",
                proxy.replace("http://", "http://user:pw@")
            ),
        )
        .start();
    let (status, _, _) = daemon.chat(&user("x")).await;
    assert_eq!(status, 502);
    // Plain HTTP is forwarded in absolute form, the proxy's credentials on the request.
    let target = format!("POST {}/codex/responses HTTP/1.1 +auth", fake.base_url());
    assert!(
        seen.lock().unwrap().contains(&target),
        "{:?}",
        seen.lock().unwrap()
    );
    assert!(
        fake.requests_to(RESPONSES_PATH).is_empty(),
        "nothing bypassed the proxy"
    );

    let (proxy, seen) = recording_proxy().await;
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .env("ALL_PROXY", &proxy)
        .start();
    assert_eq!(daemon.chat(&user("x")).await.0, 502);
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|l| l.ends_with("/codex/responses HTTP/1.1")),
        "{:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("server", "cors_origins = [\"http://localhost:3000\"]")
        .start();
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, daemon.url("/v1/chat/completions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    // No API key on a preflight, as browsers send it.
    let allowed = preflight("http://localhost:3000").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // The real request still needs the key, and exposes the ignored-params header.
    let response = daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .header("origin", "http://localhost:3000")
        .json(&user("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-codex-proxy-ignored-params")
    );

    let plain = Daemon::builder().fake(&fake, &[0]).start();
    let response = plain
        .client()
        .post(plain.url("/v1/chat/completions"))
        .header("origin", "http://localhost:3000")
        .json(&user("x"))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no CORS unless configured"
    );
}

#[tokio::test]
async fn client_metadata_carries_the_installation_id_imported_from_codex() {
    let fake = FakeUpstream::start().await.unwrap();
    let codex_home = tempfile::tempdir().unwrap();
    std::fs::write(
        codex_home.path().join("installation_id"),
        "0b1c2d3e-4f50-4617-8899-aabbccddeeff\n",
    )
    .unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .env("CODEX_HOME", codex_home.path().to_str().unwrap())
        .start();
    assert_eq!(daemon.chat(&user("hi")).await.0, 200);
    let sent = last_upstream_body(&fake).await;
    let metadata = &sent["client_metadata"];
    assert_eq!(
        metadata["x-codex-installation-id"],
        "0b1c2d3e-4f50-4617-8899-aabbccddeeff"
    );
    let session = sent["prompt_cache_key"].as_str().unwrap();
    assert_eq!(metadata["session_id"], session);
    assert_eq!(metadata["thread_id"], session);
    assert_eq!(metadata["x-codex-window-id"], format!("{session}:0"));
    let kept = std::fs::read_to_string(daemon.state_dir().join("installation_id")).unwrap();
    assert_eq!(kept.trim(), "0b1c2d3e-4f50-4617-8899-aabbccddeeff");
}

#[tokio::test]
async fn only_cloudflare_cookies_are_kept_and_sent_back() {
    let fake = FakeUpstream::start().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::builder()
        .fake(&fake, &[0])
        .state_dir(state.path())
        .start();
    assert_eq!(daemon.chat(&user("one")).await.0, 200);
    assert_eq!(daemon.chat(&user("two")).await.0, 200);
    let requests = fake.requests_to(RESPONSES_PATH);
    assert_eq!(requests[0].header("cookie"), None, "nothing to send yet");
    let cookie = requests[1].header("cookie").unwrap().to_owned();
    assert!(
        cookie.starts_with("__cf_bm=") && !cookie.contains("_puid"),
        "{cookie}"
    );
    // Shown to nobody: the fingerprint page names the header, not its value.
    let fingerprint: Value = daemon.get_json("/debug/fingerprint").await;
    assert_eq!(fingerprint["headers"]["cookie"], "<redacted>");

    // Kept across a restart.
    assert!(
        daemon
            .stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10))
            .success()
    );
    let again = Daemon::builder()
        .fake(&fake, &[])
        .state_dir(state.path())
        .start();
    assert_eq!(again.chat(&user("three")).await.0, 200);
    let sent = fake.requests_to(RESPONSES_PATH).pop().unwrap();
    assert!(
        sent.header("cookie")
            .is_some_and(|c| c.starts_with("__cf_bm="))
    );
}

/// The real backend is HTTPS and offers HTTP/2: the daemon verifies its certificate with the
/// system's trust store (here the test CA through `SSL_CERT_FILE`) and speaks HTTP/2 to it,
/// on the Responses call and on the other backend calls alike.
#[tokio::test]
async fn an_https_backend_is_verified_and_spoken_to_over_http2() {
    let fake = FakeUpstream::start_with(Options {
        tls: true,
        ..Options::default()
    })
    .await
    .unwrap();
    assert!(fake.base_url().starts_with("https://127.0.0.1:"));
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .trusting_test_ca()
        .start();
    // Bodies large enough to be compressed.
    let long = "word ".repeat(1000);
    let (status, _, body) = daemon.chat(&user(&format!("hello {long}"))).await;
    assert_eq!(status, 200, "{body}");
    let mut streamed = user(&format!("hello again {long}"));
    streamed["stream"] = json!(true);
    let (status, _, body) = daemon.chat(&streamed).await;
    assert_eq!(status, 200, "{body}");
    let chunks = chat_chunks(&body);
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.contains("hello again"), "{text}");
    let calls = fake.requests_to(RESPONSES_PATH);
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call.version, "HTTP/2.0");
        assert_eq!(call.header("content-encoding"), Some("zstd"));
    }
    let models = fake
        .wait_for_requests(MODELS_PATH, 1, Duration::from_secs(5))
        .await;
    assert_eq!(models[0].version, "HTTP/2.0", "the catalog call too");

    // Without the CA the certificate is not trusted: nothing is sent, and the error says why.
    let untrusting = Daemon::builder().fake(&fake, &[0]).start();
    let (status, _, body) = untrusting.chat(&user("x")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("certificate"), "{body}");
    assert_eq!(fake.requests_to(RESPONSES_PATH).len(), 2);
}

/// `idle_timeout_seconds` bounds the backend's silence before its answer's head (the attempt
/// is dropped and retried) and inside a stream (the request fails as a broken stream, and the
/// upstream request is let go). The three cases run at once: the shortest allowed timeout is 5 s.
#[tokio::test]
async fn a_silent_backend_times_out_and_is_let_go() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("upstream", "idle_timeout_seconds = 5")
        .start();
    fake.enqueue(Script::text("late answer").slow_first_byte(8_000));
    for marker in ["stall-whole", "stall-stream"] {
        fake.on_input_containing(marker, Script::text("one two three four").stall_after(5));
    }
    let mut streamed = user("stall-stream");
    streamed["stream"] = json!(true);
    let late = user("late");
    let (late, whole, stream) = tokio::join!(
        daemon.chat(&late),
        async {
            // After the late request took the queued script.
            fake.wait_for_requests(RESPONSES_PATH, 1, Duration::from_secs(5))
                .await;
            daemon.chat(&user("stall-whole")).await
        },
        async {
            fake.wait_for_requests(RESPONSES_PATH, 1, Duration::from_secs(5))
                .await;
            daemon.chat(&streamed).await
        },
    );
    let calls = |marker: &str| -> Vec<usize> {
        fake.requests_to(RESPONSES_PATH)
            .iter()
            .filter(|r| {
                r.body
                    .as_ref()
                    .is_some_and(|b| b.to_string().contains(marker))
            })
            .map(|r| r.seq)
            .collect()
    };

    assert_eq!(late.0, 200, "the retry got the default answer: {}", late.2);
    let attempts = calls("late");
    assert_eq!(
        attempts.len(),
        2,
        "the slow attempt was abandoned and retried"
    );
    assert!(
        fake.wait_for_hangup(attempts[0], Duration::from_secs(5))
            .await
    );

    assert_eq!(whole.0, 502, "{}", whole.2);
    assert!(whole.2.contains("did not answer in time"), "{}", whole.2);
    assert_eq!(
        calls("stall-whole").len(),
        1,
        "a broken stream is not replayed"
    );
    assert!(
        fake.wait_for_hangup(calls("stall-whole")[0], Duration::from_secs(5))
            .await
    );

    assert_eq!(stream.0, 200, "the head was sent before the silence");
    let chunks = chat_chunks(&stream.2);
    assert!(
        chunks.iter().any(|c| c["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not answer in time"))),
        "{}",
        stream.2
    );
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    assert!(
        fake.wait_for_hangup(calls("stall-stream")[0], Duration::from_secs(5))
            .await
    );
}

/// `connect_timeout_seconds` bounds connecting as a whole: a backend that takes the TCP
/// connection but never answers the TLS handshake is given up on (and retried, then reported),
/// not waited for until the stream's idle timeout.
#[tokio::test]
async fn a_backend_that_never_finishes_the_handshake_times_out() {
    let fake = FakeUpstream::start().await.unwrap();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let (accepted, mut connections) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Holds every connection open without a byte in reply.
        while let Ok((tcp, _)) = silent.accept().await {
            let _ = accepted.send(tcp);
        }
    });
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .base_url(&format!("https://{addr}/backend-api"))
        .set("upstream", "connect_timeout_seconds = 1")
        .start();
    let started = std::time::Instant::now();
    let (status, _, body) = daemon.chat(&user("x")).await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("did not answer in time"), "{body}");
    // Not a speed check: three attempts of a second each take ~4 s, while a handshake left to
    // the idle timeout (300 s) would take a quarter of an hour.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let mut held = Vec::new();
    while let Ok(tcp) = connections.try_recv() {
        held.push(tcp);
    }
    assert!(
        held.len() >= 3,
        "each attempt connected anew: {}",
        held.len()
    );
}
