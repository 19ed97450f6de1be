//! The fake's WebSocket (§5.4) behaves as the backend's: the handshake is checked like an HTTP
//! request, turns chain with `previous_response_id` only on the connection that made the
//! previous response, failures come as wrapped error frames, reasoning stays on its account.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use codex_proxy_tests::fake::websocket::BETA;
use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Script};
use codex_proxy_tests::harness::OfficialClient;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(client: &OfficialClient) -> String {
    format!("{}/codex/responses", client.base_url).replacen("http://", "ws://", 1)
}

async fn open(client: &OfficialClient) -> Socket {
    let mut request = ws_url(client).into_client_request().unwrap();
    request.headers_mut().extend(client.headers());
    request
        .headers_mut()
        .insert("openai-beta", BETA.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}

async fn create(socket: &mut Socket, mut body: Value) {
    body["type"] = json!("response.create");
    socket.send(Message::text(body.to_string())).await.unwrap();
}

/// The frames of one turn, up to its terminal event or an error frame.
async fn frames(socket: &mut Socket) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket open")
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        let kind = frame["type"].as_str().unwrap_or_default().to_owned();
        out.push(frame);
        if matches!(
            kind.as_str(),
            "response.completed" | "response.failed" | "response.incomplete" | "error"
        ) {
            return out;
        }
    }
}

fn last(frames: &[Value]) -> &Value {
    frames.last().unwrap()
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

#[tokio::test]
async fn the_handshake_is_checked_like_a_request() {
    let fake = FakeUpstream::start().await.unwrap();
    let client = OfficialClient::for_account(&fake, 0);
    // Without the beta header, without a token: refused before any upgrade.
    let mut request = ws_url(&client).into_client_request().unwrap();
    request.headers_mut().extend(client.headers());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("400"), "{refused}");
    let mut request = ws_url(&client).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("openai-beta", BETA.parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    // A backend without sockets: 426.
    fake.refuse_websockets(true);
    let mut request = ws_url(&client).into_client_request().unwrap();
    request.headers_mut().extend(client.headers());
    request
        .headers_mut()
        .insert("openai-beta", BETA.parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("426"), "{refused}");
}

#[tokio::test]
async fn turns_chain_on_their_connection_only() {
    let fake = FakeUpstream::start().await.unwrap();
    let client = OfficialClient::for_account(&fake, 0);
    let mut socket = open(&client).await;
    let first = client.classic_body("gpt-5.5", "hello there");
    create(&mut socket, first.clone()).await;
    let turn = frames(&mut socket).await;
    assert_eq!(turn[0]["type"], "codex.rate_limits");
    assert!(turn[0]["rate_limits"]["primary"]["used_percent"].is_number());
    assert_eq!(turn[1]["type"], "response.created");
    assert_eq!(last(&turn)["type"], "response.completed");
    let id = last(&turn)["response"]["id"].as_str().unwrap().to_owned();

    // Only the new items, naming the previous response: the model sees the whole history.
    let mut second = first.clone();
    second["previous_response_id"] = json!(id);
    second["input"] = json!([user("and again")]);
    create(&mut socket, second.clone()).await;
    let turn = frames(&mut socket).await;
    assert_eq!(last(&turn)["type"], "response.completed", "{turn:?}");
    let text: String = turn
        .iter()
        .filter(|f| f["type"] == "response.output_text.delta")
        .map(|f| f["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "You said: and again");
    let recorded = fake.requests_to(RESPONSES_PATH);
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1].method, "WS");
    let sent = recorded[1].body.as_ref().unwrap();
    assert_eq!(sent["previous_response_id"], json!(id));
    assert_eq!(sent["input"].as_array().unwrap().len(), 1);
    // The prompt cache saw the whole history (input tokens grew with it).
    let tokens = |frames: &[Value]| {
        last(frames)["response"]["usage"]["input_tokens"]
            .as_u64()
            .unwrap()
    };
    create(&mut socket, first.clone()).await;
    let short = frames(&mut socket).await;
    assert!(
        tokens(&turn) > tokens(&short),
        "chained input is the whole history"
    );

    // Another connection does not know the response.
    let mut other = open(&client).await;
    create(&mut other, second).await;
    let refused = frames(&mut other).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["type"], "error");
    assert_eq!(refused[0]["status"], 400);
    assert_eq!(refused[0]["error"]["code"], "previous_response_not_found");
    // The connection stays usable after an error frame.
    create(&mut other, first).await;
    assert_eq!(
        last(&frames(&mut other).await)["type"],
        "response.completed"
    );
}

#[tokio::test]
async fn failures_are_wrapped_error_frames_and_cuts_drop_the_socket() {
    let fake = FakeUpstream::start().await.unwrap();
    let client = OfficialClient::for_account(&fake, 0);
    let mut socket = open(&client).await;
    let body = client.classic_body("gpt-5.5", "hello");

    fake.enqueue(Script::usage_limit(3600));
    create(&mut socket, body.clone()).await;
    let turn = frames(&mut socket).await;
    let error = last(&turn);
    assert_eq!(error["type"], "error");
    assert_eq!(error["status"], 429);
    assert_eq!(error["error"]["type"], "usage_limit_reached");
    assert!(error["error"]["resets_at"].is_i64());
    assert_eq!(error["headers"]["x-codex-primary-used-percent"], "100.0");

    // A validation failure, as over HTTP.
    let mut bad = body.clone();
    bad["model"] = json!("no-such-model");
    let mut fresh = open(&OfficialClient::for_account(&fake, 1)).await;
    create(&mut fresh, bad).await;
    let refused = frames(&mut fresh).await;
    assert_eq!(last(&refused)["type"], "error");
    assert_eq!(last(&refused)["status"], 400);

    // A scripted cut: the socket drops mid-turn, without a completed event.
    fake.enqueue(Script::text("partial answer here").disconnect_after(4));
    create(&mut fresh, body).await;
    let mut seen = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), fresh.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert_ne!(frame["type"], "response.completed");
                seen += 1;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    assert!(seen >= 4, "{seen}");
}

#[tokio::test]
async fn reasoning_is_accepted_only_on_its_account() {
    let fake = FakeUpstream::start().await.unwrap();
    let alice = OfficialClient::for_account(&fake, 0);
    let mut socket = open(&alice).await;
    let body = alice.classic_body("gpt-5.5", "think");
    create(&mut socket, body.clone()).await;
    let turn = frames(&mut socket).await;
    let reasoning = turn
        .iter()
        .find(|f| f["type"] == "response.output_item.done" && f["item"]["type"] == "reasoning")
        .map(|f| f["item"].clone())
        .unwrap();
    assert!(reasoning["encrypted_content"].is_string());

    // Sent back on the same account: accepted.
    let mut again = body.clone();
    again["input"]
        .as_array_mut()
        .unwrap()
        .push(reasoning.clone());
    again["input"].as_array_mut().unwrap().push(user("more"));
    create(&mut socket, again.clone()).await;
    assert_eq!(
        last(&frames(&mut socket).await)["type"],
        "response.completed"
    );

    // On another account's socket: refused.
    let bob = OfficialClient::for_account(&fake, 1);
    let mut other = open(&bob).await;
    create(&mut other, again).await;
    let refused = frames(&mut other).await;
    assert_eq!(last(&refused)["type"], "error");
    assert_eq!(last(&refused)["error"]["code"], "invalid_encrypted_content");
}

#[tokio::test]
async fn a_prewarm_generates_nothing_and_chains() {
    let fake = FakeUpstream::start().await.unwrap();
    let client = OfficialClient::for_account(&fake, 0);
    let mut socket = open(&client).await;
    let mut warm = client.classic_body("gpt-5.5", "hello");
    warm["generate"] = json!(false);
    create(&mut socket, warm.clone()).await;
    let turn = frames(&mut socket).await;
    assert_eq!(turn.len(), 2);
    assert_eq!(last(&turn)["type"], "response.completed");
    let id = last(&turn)["response"]["id"].clone();
    let mut next = client.classic_body("gpt-5.5", "hello");
    next["previous_response_id"] = id;
    next["input"] = json!([]);
    create(&mut socket, next).await;
    let turn = frames(&mut socket).await;
    let text: String = turn
        .iter()
        .filter(|f| f["type"] == "response.output_text.delta")
        .map(|f| f["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "You said: hello");
}
