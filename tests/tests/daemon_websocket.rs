//! Turns over the backend's Responses WebSocket (`upstream.transport`): one socket per
//! conversation and account, reused turn after turn; failures handled as over HTTP; `auto`
//! going over HTTP when sockets are refused, `websocket` saying so.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Script};
use codex_proxy_tests::harness::Daemon;
use serde_json::{Value, json};

fn daemon(fake: &FakeUpstream, accounts: &[usize], transport: &str) -> Daemon {
    Daemon::builder()
        .fake(fake, accounts)
        .set("upstream", &format!("transport = \"{transport}\""))
        .start()
}

fn conversation(turns: &[&str]) -> Value {
    let mut messages = vec![json!({"role": "system", "content": "Be brief."})];
    for (i, text) in turns.iter().enumerate() {
        if i > 0 {
            messages.push(
                json!({"role": "assistant", "content": format!("You said: {}", turns[i - 1])}),
            );
        }
        messages.push(json!({"role": "user", "content": text}));
    }
    json!({"model": "gpt-5.5", "messages": messages})
}

fn answer(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap();
    value["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn methods(fake: &FakeUpstream) -> Vec<String> {
    fake.requests_to(RESPONSES_PATH)
        .into_iter()
        .map(|r| r.method)
        .collect()
}

#[tokio::test]
async fn a_conversation_keeps_its_socket_turn_after_turn() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    for turns in [
        &["hello"][..],
        &["hello", "again"],
        &["hello", "again", "more"],
    ] {
        let (status, _, body) = daemon.chat(&conversation(turns)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            answer(&body),
            format!("You said: {}", turns.last().unwrap())
        );
    }
    assert_eq!(methods(&fake), ["WS", "WS", "WS"]);
    assert_eq!(
        fake.websockets_opened(),
        1,
        "one socket for the conversation"
    );
    // Every turn passed the strict fake (a whole request each, for now).
    for turn in fake.requests_to(RESPONSES_PATH) {
        assert_eq!(turn.status, 200, "{:?}", turn.rejection);
        let sent = turn.body.unwrap();
        assert_eq!(sent["type"], "response.create");
        assert!(sent.get("previous_response_id").is_none());
    }
    // Another conversation gets its own socket.
    let (status, _, _) = daemon.chat(&conversation(&["something else"])).await;
    assert_eq!(status, 200);
    assert_eq!(fake.websockets_opened(), 2);
    // The quota came with the turns' codex.rate_limits frames.
    let status = daemon.ctl_json(&["status"]).await;
    assert!(
        status["accounts"][0]["primary"]["used_percent"].is_number(),
        "{status}"
    );
}

#[tokio::test]
async fn every_surface_streams_over_the_socket() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    let client = daemon.client();
    // Responses, streamed.
    let response = client
        .post(daemon.url("/v1/responses"))
        .json(&json!({"model": "gpt-5.5", "input": "hi there", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");
    assert!(text.contains("You said: hi there"), "{text}");
    // Messages.
    let response = client
        .post(daemon.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hey"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "You said: hey");
    // Chat, streamed.
    let mut streamed = conversation(&["stream it"]);
    streamed["stream"] = json!(true);
    let (status, _, body) = daemon.chat(&streamed).await;
    assert_eq!(status, 200);
    assert!(body.contains("[DONE]"), "{body}");
    assert_eq!(methods(&fake), ["WS", "WS", "WS"]);
}

#[tokio::test]
async fn a_usage_limit_on_the_socket_fails_over_like_http() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0, 1], "websocket");
    fake.enqueue(Script::usage_limit(3600));
    let (status, _, body) = daemon.chat(&conversation(&["limited"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: limited");
    let turns = fake.requests_to(RESPONSES_PATH);
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0].status, 429);
    assert_ne!(turns[0].account_id, turns[1].account_id);
    let status = daemon.ctl_json(&["status"]).await;
    let states: Vec<&str> = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"cooling_down"), "{states:?}");
}

#[tokio::test]
async fn auto_goes_over_http_when_sockets_are_refused() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.refuse_websockets(true);
    let daemon = daemon(&fake, &[0], "auto");
    for turns in [&["one"][..], &["one", "two"]] {
        let (status, _, body) = daemon.chat(&conversation(turns)).await;
        assert_eq!(status, 200, "{body}");
    }
    // One refused handshake, then HTTP without asking again.
    let handshakes = fake
        .requests_to(RESPONSES_PATH)
        .into_iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(handshakes, 1);
    assert_eq!(
        methods(&fake).into_iter().filter(|m| m == "POST").count(),
        2
    );
    assert!(daemon.logs().contains("turns go over HTTP"));
}

#[tokio::test]
async fn websocket_only_says_when_sockets_are_refused() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.refuse_websockets(true);
    let daemon = daemon(&fake, &[0], "websocket");
    let (status, _, body) = daemon.chat(&conversation(&["one"])).await;
    assert!(status >= 500, "{status} {body}");
    assert!(body.contains("WebSocket"), "{body}");
    assert!(methods(&fake).iter().all(|m| m == "GET"));
}

#[tokio::test]
async fn a_client_that_leaves_mid_turn_closes_the_socket_and_the_next_turn_opens_one() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    fake.enqueue(
        Script::text("a long and slow answer that the client will not wait for").paced(200),
    );
    let mut streamed = conversation(&["slow"]);
    streamed["stream"] = json!(true);
    let response = daemon
        .client()
        .post(daemon.url("/v1/chat/completions"))
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    // The fake sees the socket go away mid-turn.
    let mut hung_up = false;
    for _ in 0..200 {
        if fake
            .requests_to(RESPONSES_PATH)
            .first()
            .is_some_and(|r| r.client_hung_up)
        {
            hung_up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(hung_up, "the upstream turn was not dropped");
    let (status, _, body) = daemon.chat(&conversation(&["slow", "next"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.websockets_opened(), 2);
}

/// The real backend is `wss://`: the socket's TLS is verified with the system's trust store
/// (here the test CA), as the HTTP client's is.
#[tokio::test]
async fn a_socket_over_tls_is_verified() {
    let fake = FakeUpstream::start_with(codex_proxy_tests::fake::Options {
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let trusting = Daemon::builder()
        .fake(&fake, &[0])
        .set("upstream", "transport = \"websocket\"")
        .trusting_test_ca()
        .start();
    let (status, _, body) = trusting.chat(&conversation(&["secure"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: secure");
    assert_eq!(methods(&fake), ["WS"]);
    // Without the CA the handshake fails, and nothing is sent.
    let untrusting = daemon(&fake, &[0], "websocket");
    let (status, _, body) = untrusting.chat(&conversation(&["insecure"])).await;
    assert!(status >= 500, "{status} {body}");
    assert_eq!(methods(&fake), ["WS"]);
}

/// A turn stopped early (a stop sequence) closes its socket: the next turn never reads the
/// rest of the old one.
#[tokio::test]
async fn a_turn_stopped_early_is_not_reused() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    fake.enqueue(Script::text("first part STOP and a great deal more text after it").paced(20));
    let mut stopped = conversation(&["stop early"]);
    stopped["stop"] = json!(["STOP"]);
    stopped["stream"] = json!(true);
    let (status, _, body) = daemon.chat(&stopped).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("great deal"), "{body}");
    let (status, _, body) = daemon.chat(&conversation(&["stop early", "next"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: next");
    assert_eq!(
        fake.websockets_opened(),
        2,
        "the stopped turn's socket was closed"
    );
}
