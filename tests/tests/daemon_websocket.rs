//! Turns over the backend's Responses WebSocket (`upstream.transport`): one socket per
//! conversation and account, reused turn after turn; failures handled as over HTTP; `auto`
//! going over HTTP when sockets are refused, `websocket` saying so.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Script};
use std::time::Duration;

use codex_proxy_tests::harness::{Daemon, poll_until};
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

/// A `/v1/messages` request as an Anthropic client sends it: its status and JSON answer.
async fn post_messages(daemon: &Daemon, body: &Value) -> (u16, Value) {
    let response = daemon
        .client()
        .post(daemon.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The `tool_use` block of a Messages answer.
fn tool_use_of(reply: &Value) -> Value {
    reply["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap_or_else(|| panic!("{reply}"))
        .clone()
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
    // Every turn passed the strict fake; after the first, each carried only the new user
    // message, naming the turn before (the fake rebuilt the whole history from it).
    let turns = fake.requests_to(RESPONSES_PATH);
    let mut previous = None;
    for (i, turn) in turns.iter().enumerate() {
        assert_eq!(turn.status, 200, "{:?}", turn.rejection);
        let sent = turn.body.as_ref().unwrap();
        assert_eq!(sent["type"], "response.create");
        let input = sent["input"].as_array().unwrap();
        if i == 0 {
            assert!(sent.get("previous_response_id").is_none());
            assert_eq!(input.len(), 1);
        } else {
            assert!(sent["previous_response_id"].is_string(), "{sent}");
            assert_ne!(sent["previous_response_id"], json!(previous));
            assert_eq!(input.len(), 1, "{sent}");
            assert_eq!(input[0]["role"], "user");
        }
        previous = sent.get("previous_response_id").cloned();
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
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    // A large frame, written past tungstenite straight into the TLS stream, arrives whole.
    let large = "t".repeat(400 << 10);
    let (status, _, body) = trusting.chat(&conversation(&[&large, "large"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: large");
    assert_eq!(methods(&fake), ["WS", "WS"]);
    let sent = sent_turns(&fake);
    let first = &sent.last().unwrap().1[0]["content"][0]["text"];
    assert!(
        first == large.as_str(),
        "the frame's first message is exactly its text"
    );
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

/// The input items of each turn the fake received, and its `previous_response_id`.
fn sent_turns(fake: &FakeUpstream) -> Vec<(Option<String>, Vec<Value>)> {
    fake.requests_to(RESPONSES_PATH)
        .into_iter()
        .filter(|r| r.method == "WS")
        .map(|r| {
            let body = r.body.unwrap();
            (
                body["previous_response_id"].as_str().map(str::to_owned),
                body["input"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_edited_history_goes_out_whole_and_a_lost_response_recovers() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    for turns in [&["a", "b"][..], &["a", "b", "c"]] {
        let (status, _, body) = daemon.chat(&conversation(turns)).await;
        assert_eq!(status, 200, "{body}");
    }
    // The same conversation with its second message edited: sent whole.
    let (status, _, body) = daemon.chat(&conversation(&["a", "B", "c", "d"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: d");
    let turns = sent_turns(&fake);
    assert_eq!(turns.len(), 3);
    assert!(turns[1].0.is_some() && turns[1].1.len() == 1);
    assert!(turns[2].0.is_none(), "an edited history is not built on");
    // The whole history, with the reasoning of the answer that is still the model's own.
    let without_reasoning =
        |items: &[Value]| items.iter().filter(|i| i["type"] != "reasoning").count();
    assert_eq!(without_reasoning(&turns[2].1), 7);
    assert_eq!(turns[2].1.len(), 8, "{:?}", turns[2].1);

    // The backend forgets: the incremental turn is refused, and sent again whole at once.
    fake.forget_previous_responses();
    let (status, _, body) = daemon.chat(&conversation(&["a", "B", "c", "d", "e"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: e");
    let turns = sent_turns(&fake);
    assert_eq!(turns.len(), 5);
    assert!(turns[3].0.is_some());
    assert!(turns[4].0.is_none());
    assert_eq!(without_reasoning(&turns[4].1), 9);
    let refused = &fake.requests_to(RESPONSES_PATH)[3];
    assert_eq!(refused.status, 400);
    assert_eq!(fake.websockets_opened(), 1);
}

#[tokio::test]
async fn a_tool_loop_sends_only_each_tools_output() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let mut messages = vec![json!({"role": "user", "content": "Weather in Paris, Lyon and Nice?"})];
    for (i, city) in ["Paris", "Lyon", "Nice"].iter().enumerate() {
        fake.enqueue(
            Script::function_call("get_weather", &format!("{{\"city\":\"{city}\"}}"))
                .with_reasoning("Looking it up."),
        );
        let (status, _, body) = daemon
            .chat(&json!({"model": "gpt-5.5", "messages": messages, "tools": tools}))
            .await;
        assert_eq!(status, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        let message = reply["choices"][0]["message"].clone();
        let call = &message["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{body}");
        messages.push(message.clone());
        messages.push(
            json!({"role": "tool", "tool_call_id": call["id"], "content": format!("sunny {i}")}),
        );
    }
    let (status, _, body) = daemon
        .chat(&json!({"model": "gpt-5.5", "messages": messages, "tools": tools}))
        .await;
    assert_eq!(status, 200, "{body}");
    let turns = sent_turns(&fake);
    assert_eq!(turns.len(), 4);
    assert!(turns[0].0.is_none());
    for (i, (previous, input)) in turns.iter().enumerate().skip(1) {
        assert!(previous.is_some(), "turn {i} was sent whole");
        // Only the tool's output: the call (and the reasoning before it) are upstream already.
        assert_eq!(input.len(), 1, "turn {i}: {input:?}");
        assert_eq!(input[0]["type"], "function_call_output");
        assert_eq!(input[0]["output"], format!("sunny {}", i - 1));
    }
    // Every turn passed the strict fake (which rebuilt each whole input, reasoning included).
    assert!(
        fake.requests_to(RESPONSES_PATH)
            .iter()
            .all(|r| r.status == 200)
    );
}

#[tokio::test]
async fn messages_and_responses_clients_continue_incrementally_too() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    let client = daemon.client();
    // Anthropic Messages: a tool loop, the way Claude Code sends it.
    fake.enqueue(Script::function_call("Read", r#"{"path":"a.txt"}"#).with_reasoning("Reading."));
    let tools = json!([{"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]);
    let mut messages = vec![json!({"role": "user", "content": "What is in a.txt?"})];
    let ask = |messages: &Vec<Value>| json!({"model": "claude-sonnet-4-5", "max_tokens": 200, "tools": tools, "messages": messages});
    let (_, first) = post_messages(&daemon, &ask(&messages)).await;
    let tool_use = tool_use_of(&first);
    messages.push(json!({"role": "assistant", "content": first["content"]}));
    messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "hello"}]}));
    let (status, _) = post_messages(&daemon, &ask(&messages)).await;
    assert_eq!(status, 200);
    let turns = sent_turns(&fake);
    assert_eq!(turns.len(), 2);
    assert!(turns[1].0.is_some(), "{:?}", turns[1]);
    assert_eq!(turns[1].1.len(), 1, "{:?}", turns[1].1);
    assert_eq!(turns[1].1[0]["type"], "function_call_output");

    // Responses, stateless (`store: false`, the history sent back each time).
    let mut input = vec![json!({"role": "user", "content": "hi"})];
    let first: Value = client
        .post(daemon.url("/v1/responses"))
        .json(&json!({"model": "gpt-5.5", "input": input, "store": false,
            "include": ["reasoning.encrypted_content"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    input.extend(first["output"].as_array().unwrap().iter().cloned());
    input.push(json!({"role": "user", "content": "and then?"}));
    let second = client
        .post(daemon.url("/v1/responses"))
        .json(&json!({"model": "gpt-5.5", "input": input, "store": false,
            "include": ["reasoning.encrypted_content"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let turns = sent_turns(&fake);
    assert_eq!(turns.len(), 4);
    assert!(turns[3].0.is_some(), "{:?}", turns[3]);
    assert_eq!(turns[3].1.len(), 1, "{:?}", turns[3].1);
}

/// A Chat Completions client's tool loop: the model called `get_weather` (with reasoning) and
/// the client sends the call and its output back without the reasoning, as such clients do.
struct WeatherLoop {
    tools: Value,
    messages: Vec<Value>,
    /// The account that made the reasoning.
    first_account: Option<String>,
}

impl WeatherLoop {
    async fn start(daemon: &Daemon, fake: &FakeUpstream) -> Self {
        let mut this = Self {
            tools: json!([{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]),
            messages: vec![json!({"role": "user", "content": "Weather in Paris?"})],
            first_account: None,
        };
        fake.enqueue(
            Script::function_call("get_weather", r#"{"city":"Paris"}"#)
                .with_reasoning("Looking it up."),
        );
        let body = this.ask(daemon).await;
        let reply: Value = serde_json::from_str(&body).unwrap();
        let message = reply["choices"][0]["message"].clone();
        let call_id = message["tool_calls"][0]["id"].clone();
        this.messages.push(message);
        this.messages
            .push(json!({"role": "tool", "tool_call_id": call_id, "content": "sunny"}));
        this.first_account = fake.requests_to(RESPONSES_PATH)[0].account_id.clone();
        this
    }

    /// Sends the conversation so far; the answer's body (a 200, or the test fails).
    async fn ask(&self, daemon: &Daemon) -> String {
        let request = json!({"model": "gpt-5.5", "messages": self.messages, "tools": self.tools});
        let (status, _, body) = daemon.chat(&request).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The account runs out: the next turn moves to the other account and goes without the
    /// reasoning (the fake, like the backend, refuses reasoning another account made).
    async fn fails_over_without_the_reasoning(&mut self, daemon: &Daemon, fake: &FakeUpstream) {
        self.messages
            .push(json!({"role": "assistant", "content": "It is sunny."}));
        self.messages
            .push(json!({"role": "user", "content": "And tomorrow?"}));
        fake.enqueue(Script::usage_limit(3600));
        self.ask(daemon).await;
        let turns = fake.requests_to(RESPONSES_PATH);
        let moved = turns.last().unwrap();
        assert_eq!(moved.status, 200, "{:?}", moved.rejection);
        assert_ne!(moved.account_id, self.first_account);
        let sent = moved.body.as_ref().unwrap();
        assert!(sent.get("previous_response_id").is_none());
        assert!(
            sent["input"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["type"] != "reasoning"),
            "{sent}"
        );
    }
}

/// The reasoning the client dropped is in `sent`'s input once, right before the call.
fn assert_reasoning_before_the_call(sent: &Value) {
    let kinds: Vec<&str> = sent["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap_or("message"))
        .collect();
    let call = kinds.iter().position(|k| *k == "function_call").unwrap();
    assert_eq!(kinds[call - 1], "reasoning", "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "reasoning").count(), 1);
    assert!(sent["input"][call - 1]["encrypted_content"].is_string());
}

/// Reasoning a Chat Completions client never sends back is put back in its place when a turn
/// must go out whole (here: the backend lost the previous response), and never sent to
/// another account: after a failover the turn goes without it, and is still answered.
#[tokio::test]
async fn dropped_reasoning_is_replayed_in_place_and_never_to_another_account() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0, 1], "websocket");
    let mut tool_loop = WeatherLoop::start(&daemon, &fake).await;
    // The backend forgets: the whole turn again, with the reasoning before its call.
    fake.forget_previous_responses();
    tool_loop.ask(&daemon).await;
    let turns = fake.requests_to(RESPONSES_PATH);
    let whole = turns.last().unwrap();
    assert_eq!(whole.status, 200, "{:?}", whole.rejection);
    let sent = whole.body.as_ref().unwrap();
    assert!(sent.get("previous_response_id").is_none());
    assert_reasoning_before_the_call(sent);
    tool_loop
        .fails_over_without_the_reasoning(&daemon, &fake)
        .await;
}

/// Over HTTP too (`transport = "http"`, or `auto` when sockets are not to be had): every turn
/// goes whole, with the reasoning a Chat Completions client dropped put back before its call;
/// after a failover to another account, without it.
#[tokio::test]
async fn dropped_reasoning_is_replayed_over_http_too() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0, 1], "http");
    let mut tool_loop = WeatherLoop::start(&daemon, &fake).await;
    tool_loop.ask(&daemon).await;
    let turns = fake.requests_to(RESPONSES_PATH);
    assert!(
        turns.iter().all(|t| t.method == "POST"),
        "{:?}",
        methods(&fake)
    );
    let second = turns.last().unwrap();
    assert_eq!(second.status, 200, "{:?}", second.rejection);
    assert_eq!(second.account_id, tool_loop.first_account);
    assert_reasoning_before_the_call(second.body.as_ref().unwrap());
    tool_loop
        .fails_over_without_the_reasoning(&daemon, &fake)
        .await;
}

const LOOP_TURNS: usize = 30;

#[tokio::test]
async fn a_30_turn_tool_loop_over_chat_completions() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0, 1], "websocket");
    let tools = json!([{"type": "function", "function": {"name": "run",
        "parameters": {"type": "object", "properties": {"step": {"type": "integer"}}}}}]);
    let mut messages = vec![json!({"role": "user", "content": "Run the steps."})];
    for step in 0..LOOP_TURNS {
        fake.enqueue(
            Script::function_call("run", &format!("{{\"step\":{step}}}"))
                .with_reasoning("Next step."),
        );
        let (status, _, body) = daemon
            .chat(&json!({"model": "gpt-5.5", "messages": messages, "tools": tools}))
            .await;
        assert_eq!(status, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        let message = reply["choices"][0]["message"].clone();
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            format!("{{\"step\":{step}}}")
        );
        let id = message["tool_calls"][0]["id"].clone();
        messages.push(message);
        messages
            .push(json!({"role": "tool", "tool_call_id": id, "content": format!("done {step}")}));
    }
    fake.assert_incremental_loop(LOOP_TURNS, "function_call", "function_call_output");
}

/// Ollama's clients keep neither call ids nor the arguments' text: the daemon gives each call
/// back the id and the exact arguments the backend made (here with a space the client's
/// re-serialisation would drop), so every later turn still goes incrementally.
#[tokio::test]
async fn a_30_turn_tool_loop_over_the_ollama_api() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0, 1], "websocket");
    let tools = json!([{"type": "function", "function": {"name": "run",
        "parameters": {"type": "object", "properties": {"step": {"type": "integer"}}}}}]);
    let mut messages = vec![json!({"role": "user", "content": "Run the steps."})];
    let client = reqwest::Client::new();
    for step in 0..LOOP_TURNS {
        fake.enqueue(
            Script::function_call("run", &format!("{{\"step\": {step}}}"))
                .with_reasoning("Next step."),
        );
        let response = client
            .post(daemon.url("/api/chat"))
            .json(
                &json!({"model": "gpt-5.5", "messages": messages, "tools": tools, "stream": false}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let reply: Value = response.json().await.unwrap();
        let call = &reply["message"]["tool_calls"][0]["function"];
        assert_eq!(call["arguments"], json!({"step": step}));
        // As ollama-python sends the message back: no id, no empty content.
        messages.push(json!({"role": "assistant", "tool_calls": [
            {"function": {"name": "run", "arguments": call["arguments"]}}
        ]}));
        messages
            .push(json!({"role": "tool", "tool_name": "run", "content": format!("done {step}")}));
    }
    fake.assert_incremental_loop(LOOP_TURNS, "function_call", "function_call_output");
}

#[tokio::test]
async fn a_30_turn_tool_loop_over_messages() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0, 1], "websocket");
    let tools = json!([{"name": "run", "input_schema": {"type": "object", "properties": {"step": {"type": "integer"}}}}]);
    let mut messages = vec![json!({"role": "user", "content": "Run the steps."})];
    for step in 0..LOOP_TURNS {
        fake.enqueue(
            Script::function_call("run", &format!("{{\"step\":{step}}}"))
                .with_reasoning("Next step."),
        );
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 500, "tools": tools, "messages": messages});
        let (_, reply) = post_messages(&daemon, &body).await;
        let tool_use = tool_use_of(&reply);
        assert_eq!(tool_use["input"]["step"], step);
        messages.push(json!({"role": "assistant", "content": reply["content"]}));
        messages.push(json!({"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": tool_use["id"], "content": format!("done {step}")}]}));
    }
    fake.assert_incremental_loop(LOOP_TURNS, "function_call", "function_call_output");
}

#[tokio::test]
async fn a_30_turn_tool_loop_over_responses() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0, 1], "websocket");
    let client = daemon.client();
    let tools = json!([{"type": "function", "name": "run",
        "parameters": {"type": "object", "properties": {"step": {"type": "integer"}}}}]);
    // A stateless client that keeps the reasoning (as the Codex CLI and the Agents SDK do).
    let mut input = vec![json!({"role": "user", "content": "Run the steps."})];
    for step in 0..LOOP_TURNS {
        fake.enqueue(
            Script::function_call("run", &format!("{{\"step\":{step}}}"))
                .with_reasoning("Next step."),
        );
        let reply: Value = client
            .post(daemon.url("/v1/responses"))
            .json(
                &json!({"model": "gpt-5.5", "input": input, "tools": tools, "store": false,
                "include": ["reasoning.encrypted_content"]}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let output = reply["output"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply}"));
        let call = output
            .iter()
            .find(|i| i["type"] == "function_call")
            .unwrap();
        assert_eq!(call["arguments"], format!("{{\"step\":{step}}}"));
        let call_id = call["call_id"].clone();
        input.extend(output.iter().cloned());
        input.push(json!({"type": "function_call_output", "call_id": call_id, "output": format!("done {step}")}));
    }
    fake.assert_incremental_loop(LOOP_TURNS, "function_call", "function_call_output");
}

/// A Responses Lite model's turns go over the socket too, with Lite's flag where a socket
/// carries per-request headers: in `client_metadata`.
#[tokio::test]
async fn responses_lite_turns_carry_their_flag_in_the_metadata() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    for turns in [&["lite"][..], &["lite", "again"]] {
        let mut body = conversation(turns);
        body["model"] = json!("gpt-5.6-sol");
        let (status, _, text) = daemon.chat(&body).await;
        assert_eq!(status, 200, "{text}");
    }
    let turns = fake.requests_to(RESPONSES_PATH);
    assert_eq!(methods(&fake), ["WS", "WS"]);
    for turn in &turns {
        assert_eq!(turn.status, 200, "{:?}", turn.rejection);
        let sent = turn.body.as_ref().unwrap();
        assert_eq!(
            sent["client_metadata"]["ws_request_header_x_openai_internal_codex_responses_lite"],
            "true",
            "{sent}"
        );
    }
    assert!(turns[1].body.as_ref().unwrap()["previous_response_id"].is_string());
}

/// A socket that has served its time (`websocket_connection_limit_reached`, the backend's 60
/// minutes) is replaced before the client sees anything: the turn goes whole on a new one.
#[tokio::test]
async fn a_socket_at_its_limit_is_replaced_invisibly() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.limit_websocket_turns(2);
    let daemon = daemon(&fake, &[0], "websocket");
    let all = ["one", "two", "three", "four"];
    for n in 1..=all.len() {
        let (status, _, body) = daemon.chat(&conversation(&all[..n])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(answer(&body), format!("You said: {}", all[n - 1]));
    }
    assert_eq!(fake.websockets_opened(), 2);
    // one, two (incremental); three refused on the old socket (the fake does not count the
    // refusal as a turn), then whole on the new one; four incremental.
    let turns = fake.requests_to(RESPONSES_PATH);
    assert!(turns.iter().all(|t| t.status == 200));
    let sent = sent_turns(&fake);
    assert_eq!(sent.len(), 4);
    assert!(sent[1].0.is_some());
    assert!(sent[2].0.is_none(), "the new socket's first turn is whole");
    assert!(sent[3].0.is_some());
}

/// Frames of large whole turns are written into buffers kept from the frames before them
/// (`buffers.rs`): each goes out exactly as written — a smaller one after a larger shows
/// nothing of it, a larger one after a smaller is whole — and a conversation's next turn still
/// continues on its socket.
#[tokio::test]
async fn large_whole_frames_in_kept_buffers_go_out_exactly() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    let texts: Vec<String> = [(b'a', 600usize), (b'b', 300), (b'c', 700), (b'd', 400)]
        .iter()
        .map(|&(c, kib)| String::from_utf8(vec![c; kib << 10]).unwrap())
        .collect();
    for text in &texts {
        let (status, _, body) = daemon.chat(&conversation(&[text, "short"])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(answer(&body), "You said: short");
    }
    // The first conversation goes on: incremental on its socket.
    let (status, _, body) = daemon
        .chat(&conversation(&[&texts[0], "short", "more"]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: more");

    let sent = sent_turns(&fake);
    assert_eq!(sent.len(), texts.len() + 1);
    for (turn, text) in sent.iter().zip(&texts) {
        assert!(turn.0.is_none(), "a first turn is whole");
        let first = &turn.1[0]["content"][0]["text"];
        assert_eq!(first.as_str().map(str::len), Some(text.len()));
        assert!(
            first == text.as_str(),
            "the frame's first message is exactly its text"
        );
        assert_eq!(turn.1.len(), 3, "{:?}", turn.1.last());
    }
    let last = &sent[texts.len()];
    assert!(last.0.is_some(), "the next turn continues");
    assert_eq!(last.1.len(), 1);
}

/// A socket the backend pings answers each ping, and a large whole frame sent on it after
/// the pongs (written past tungstenite, straight to the socket) still arrives exactly.
#[tokio::test]
async fn pings_are_answered_and_a_large_frame_after_them_arrives_whole() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.ping_websockets(true);
    let daemon = daemon(&fake, &[0], "websocket");
    let large = "p".repeat(300 << 10);
    let mut turns = vec![large.as_str(), "b"];
    for next in ["c", "d"] {
        let (status, _, body) = daemon.chat(&conversation(&turns)).await;
        assert_eq!(status, 200, "{body}");
        turns.push(next);
    }
    // An edited message: the whole history again, on the same socket.
    turns[1] = "B";
    let (status, _, body) = daemon.chat(&conversation(&turns)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: d");
    assert_eq!(fake.websockets_opened(), 1);
    let sent = sent_turns(&fake);
    assert_eq!(sent.len(), 3);
    assert!(sent[1].0.is_some(), "the second turn continues");
    let whole = &sent[2];
    assert!(whole.0.is_none(), "the edited history goes whole");
    assert!(whole.1[0]["content"][0]["text"] == large.as_str());
    assert_eq!(whole.1[2]["content"][0]["text"], "B");
    // The pings were answered (the last one's pong may still be on its way).
    assert!(poll_until(Duration::from_secs(10), || fake.websocket_pongs() >= 2).await);
}

/// A backend that stops reading mid-frame is a silent one: each attempt ends with a timeout
/// after `idle_timeout_seconds` (the engine's retries of a timed-out turn included), as over
/// HTTP, instead of waiting for the client to give up.
#[tokio::test]
async fn a_frame_the_backend_stops_reading_times_out() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.stall_websockets(true);
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("upstream", "transport = \"websocket\"")
        .set("upstream", "idle_timeout_seconds = 5")
        .start();
    // Larger than what the connection's buffers take in without the other end reading.
    let large = "s".repeat(8 << 20);
    let started = std::time::Instant::now();
    let (status, _, body) = daemon.chat(&conversation(&[&large])).await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("upstream_timeout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A large chat history (above 64 KiB) continuing its conversation's last request is read and
/// translated from its new messages on — the backend still gets the whole conversation right:
/// only the new items over the socket, the whole body over HTTP — and anything that differs
/// (an edited message, other tools) is read whole again.
#[tokio::test]
async fn a_large_history_is_translated_from_its_new_messages_on() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = logging_daemon(&fake, &[0], "websocket").await;
    let big = "x".repeat(80 << 10);
    let mut turns = vec![big.as_str(), "b"];
    let (status, _, body) = daemon.chat(&conversation(&turns)).await;
    assert_eq!(status, 200, "{body}");
    for next in ["c", "d"] {
        turns.push(next);
        let (status, _, body) = daemon.chat(&conversation(&turns)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(answer(&body), format!("You said: {next}"));
    }
    assert_eq!(continued_requests(&daemon, 2).await, 2);
    let sent = sent_turns(&fake);
    assert_eq!(sent.len(), 3);
    for turn in &sent[1..] {
        assert!(turn.0.is_some(), "continued turns go incrementally");
        assert_eq!(turn.1.len(), 1, "{:?}", turn.1);
    }

    // An edited message: read whole, sent whole, with the edit.
    turns[1] = "B";
    turns.push("e");
    let (status, _, body) = daemon.chat(&conversation(&turns)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: e");
    assert_eq!(continued_requests(&daemon, 2).await, 2);
    let sent = sent_turns(&fake);
    let whole = &sent[3];
    assert!(whole.0.is_none());
    assert!(whole.1.iter().any(|i| i["content"][0]["text"] == "B"));
    let without_reasoning = whole.1.iter().filter(|i| i["type"] != "reasoning").count();
    assert_eq!(
        without_reasoning,
        2 * turns.len() - 1,
        "{:?}",
        whole.1.len()
    );
    // ... and the next turn continues from the edited one.
    turns.push("f");
    let (status, _, body) = daemon.chat(&conversation(&turns)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), "You said: f");
    assert_eq!(continued_requests(&daemon, 3).await, 3);

    // Other tools: not continued from (the members differ); the tools reach the backend.
    let mut with_tools = conversation(&turns);
    with_tools["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {}}}}]);
    let (status, _, body) = daemon.chat(&with_tools).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(continued_requests(&daemon, 3).await, 3);
    let last = last_body(&fake);
    assert_eq!(last["tools"][0]["name"], "get_weather");

    // A bad message in the continued part is named by its place in the whole request.
    let mut bad = with_tools.clone();
    bad["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "tool", "tool_call_id": "call_nowhere", "content": "x"}));
    let (status, _, body) = daemon.chat(&bad).await;
    assert_eq!(status, 400, "{body}");
    let at = with_tools["messages"].as_array().unwrap().len();
    assert!(body.contains(&format!("messages[{at}]")), "{body}");
    assert_eq!(continued_requests(&daemon, 4).await, 4);

    // Over HTTP, a continued request's body is the whole conversation.
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = logging_daemon(&fake, &[0], "http").await;
    let mut turns = vec![big.as_str(), "b"];
    for next in ["c", "d"] {
        turns.push(next);
        let (status, _, body) = daemon.chat(&conversation(&turns)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(answer(&body), format!("You said: {next}"));
    }
    assert_eq!(continued_requests(&daemon, 1).await, 1);
    let last = last_body(&fake);
    let texts: Vec<&str> = last["input"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["content"][0]["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            big.as_str(),
            "You said: x",
            "b",
            "You said: b",
            "c",
            "You said: c",
            "d"
        ]
        .map(|t| {
            if t == "You said: x" {
                "You said: ".to_owned() + &big
            } else {
                t.to_owned()
            }
        })
    );
}

/// A daemon that logs at debug level (what tells a continued request), started once it has
/// fetched the model catalog: a kept translation is only continued with the catalog it was
/// made with, so a test of continued turns starts after that.
async fn logging_daemon(fake: &FakeUpstream, accounts: &[usize], transport: &str) -> Daemon {
    let daemon = Daemon::builder()
        .fake(fake, accounts)
        .set("upstream", &format!("transport = \"{transport}\""))
        .set("log", "level = \"info,codex_proxy=debug\"")
        .start();
    let fetched = poll_until(Duration::from_secs(10), || {
        daemon.logs().contains("model catalog updated")
    })
    .await;
    assert!(fetched, "{}", daemon.logs());
    daemon
}

/// The body of the last turn the fake received.
fn last_body(fake: &FakeUpstream) -> Value {
    fake.requests_to(RESPONSES_PATH)
        .last()
        .and_then(|turn| turn.body.clone())
        .unwrap()
}

/// How many large requests the daemon's log says continued their conversation's last, once it
/// says at least `at_least` (a log line may trail the answer it belongs to).
async fn continued_requests(daemon: &Daemon, at_least: usize) -> usize {
    let count = || {
        daemon
            .logs()
            .matches("continues its conversation's last")
            .count()
    };
    poll_until(Duration::from_secs(10), || count() >= at_least).await;
    count()
}

/// More conversations one after another than an account may have sockets: each still goes over
/// a socket (the longest-idle one is closed to make room), none falls back to HTTP.
#[tokio::test]
async fn conversations_beyond_the_socket_cap_replace_idle_sockets() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = daemon(&fake, &[0], "websocket");
    for i in 0..20 {
        let (status, _, body) = daemon.chat(&conversation(&[&format!("topic {i}")])).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(answer(&body), format!("You said: topic {i}"));
    }
    assert_eq!(methods(&fake), vec!["WS"; 20]);
    assert_eq!(fake.websockets_opened(), 20);
    // The first conversation's socket was closed for another; it opens a new one.
    let (status, _, _) = daemon.chat(&conversation(&["topic 0", "again"])).await;
    assert_eq!(status, 200);
    assert_eq!(methods(&fake).last().map(String::as_str), Some("WS"));
}

/// A Claude Code turn: its session header, a billing line that changes every request, the
/// cache mark on the newest message only, thinking on.
fn claude_code_turn(messages: &[Value], n: usize) -> Value {
    let mut messages = messages.to_vec();
    if let Some(blocks) = messages.last_mut().unwrap()["content"].as_array_mut() {
        blocks.last_mut().unwrap()["cache_control"] = json!({"type": "ephemeral"});
    }
    json!({
        "model": "claude-sonnet-4-5", "max_tokens": 2000,
        "system": [
            {"type": "text", "text": format!("x-anthropic-billing-header: cc_version=2.1.328.a1b; cc_entrypoint=sdk-cli; cch={n:05};")},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [{"name": "run", "input_schema": {"type": "object", "properties": {"step": {"type": "integer"}}}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": messages
    })
}

async fn post_claude_code(daemon: &Daemon, session: &str, body: &Value) -> Value {
    answered(
        daemon
            .client()
            .post(daemon.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .header("x-claude-code-session-id", session)
            .json(body),
    )
    .await
}

/// Sends the request; its answer as JSON, which must be a 200.
async fn answered(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let reply: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{reply}");
    reply
}

/// A Claude Code tool loop of `turns` steps on a large first message: its messages after.
async fn claude_code_loop(
    fake: &FakeUpstream,
    daemon: &Daemon,
    big: &str,
    turns: usize,
) -> Vec<Value> {
    let mut messages = vec![json!({"role": "user", "content": [{"type": "text", "text": big}]})];
    for step in 0..turns {
        fake.enqueue(
            Script::function_call("run", &format!("{{\"step\":{step}}}"))
                .with_reasoning("Next step."),
        );
        let reply = post_claude_code(daemon, "s-1", &claude_code_turn(&messages, step)).await;
        let tool_use = tool_use_of(&reply);
        assert_eq!(tool_use["input"]["step"], step);
        messages.push(json!({"role": "assistant", "content": reply["content"]}));
        messages.push(json!({"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": tool_use["id"], "content": format!("done {step}")}]}));
    }
    messages
}

/// Claude Code's large histories continue too, though it rewrites its billing line and moves
/// its cache marks every turn: only the new messages are translated, the thinking of earlier
/// turns is given back, a move to an account that cannot read it still answers, and the body
/// sent whole over HTTP is the one translating the history whole gives.
#[tokio::test]
async fn a_large_claude_code_history_is_translated_from_its_new_messages_on() {
    let big = "y".repeat(80 << 10);
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = logging_daemon(&fake, &[0, 1], "websocket").await;
    let messages = claude_code_loop(&fake, &daemon, &big, 4).await;
    assert_eq!(continued_requests(&daemon, 3).await, 3);
    let sent = sent_turns(&fake);
    assert_eq!(sent.len(), 4);
    for turn in &sent[1..] {
        assert!(turn.0.is_some(), "continued turns go incrementally");
        assert_eq!(turn.1.len(), 1, "{:?}", turn.1);
        assert_eq!(turn.1[0]["type"], "function_call_output");
    }

    // The account is used up: the next account cannot read the kept thinking, so the turn
    // goes again without it, and answers.
    fake.enqueue(Script::usage_limit(3600));
    fake.enqueue(Script::text("All done.").with_reasoning("Wrap up."));
    let reply = post_claude_code(&daemon, "s-1", &claude_code_turn(&messages, 9)).await;
    assert_eq!(
        reply["content"].as_array().unwrap().last().unwrap()["text"],
        "All done."
    );
    let old_account = fake.requests_to(RESPONSES_PATH)[0].headers["chatgpt-account-id"].clone();
    assert_eq!(continued_requests(&daemon, 4).await, 4);
    let turns = fake.requests_to(RESPONSES_PATH);
    let last = turns.last().unwrap();
    assert_eq!(last.status, 200, "{:?}", last.rejection);
    let input = last.body.as_ref().unwrap()["input"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        input.iter().all(|item| item["type"] != "reasoning"),
        "{input:?}"
    );
    assert_eq!(
        input
            .iter()
            .filter(|i| i["type"] == "function_call")
            .count(),
        4,
        "the whole history went to the new account"
    );
    let new_account = last.headers["chatgpt-account-id"].clone();
    assert_ne!(new_account, old_account);

    // The next turn gives back the old account's thinking and the new one's: only the new
    // account's goes, to it, at once — no attempt refused first, and still incremental.
    let mut messages = messages;
    messages.push(json!({"role": "assistant", "content": reply["content"]}));
    messages.push(json!({"role": "user", "content": [{"type": "text", "text": "And now?"}]}));
    let before = fake.requests_to(RESPONSES_PATH).len();
    fake.enqueue(Script::text("Nothing more."));
    post_claude_code(&daemon, "s-1", &claude_code_turn(&messages, 10)).await;
    assert_eq!(continued_requests(&daemon, 5).await, 5);
    let turns = fake.requests_to(RESPONSES_PATH);
    assert_eq!(turns.len(), before + 1, "one attempt: nothing refused");
    let last = turns.last().unwrap();
    assert_eq!(last.status, 200, "{:?}", last.rejection);
    assert_eq!(last.headers["chatgpt-account-id"], new_account);
    // The body began with the last turn's input and its answer (the new account's reasoning
    // in its place, the old account's nowhere), so only the new message went.
    let (previous, input) = sent_turns(&fake).pop().unwrap();
    assert!(
        previous.is_some(),
        "incremental on the new account's socket"
    );
    assert_eq!(input.len(), 1, "{input:?}");
    assert_eq!(input[0]["content"][0]["text"], "And now?");

    // Over HTTP every body goes whole: a continued one is what translating it whole gives.
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = logging_daemon(&fake, &[0], "http").await;
    let messages = claude_code_loop(&fake, &daemon, &big, 3).await;
    assert_eq!(continued_requests(&daemon, 2).await, 2);
    fake.enqueue(Script::text("Done."));
    post_claude_code(&daemon, "s-1", &claude_code_turn(&messages, 7)).await;
    assert_eq!(continued_requests(&daemon, 3).await, 3);
    // Another session: nothing kept for it, read whole.
    fake.enqueue(Script::text("Done."));
    post_claude_code(&daemon, "s-2", &claude_code_turn(&messages, 8)).await;
    assert_eq!(continued_requests(&daemon, 3).await, 3);
    let turns = fake.requests_to(RESPONSES_PATH);
    let input = |back: usize| turns[turns.len() - back].body.as_ref().unwrap()["input"].clone();
    assert_eq!(input(2), input(1));
    let items = input(1);
    let kinds: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "reasoning").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 1 + 3 * 3);
}

/// A `/v1/responses` request with the whole input (and `metadata`, which the backend is not
/// sent), its answer as JSON.
async fn post_responses(daemon: &Daemon, input: &[Value], store: bool, metadata: &str) -> Value {
    let body = json!({"model": "gpt-5.5", "input": input, "store": store,
        "instructions": "Be brief.", "include": ["reasoning.encrypted_content"],
        "metadata": {"run": metadata}});
    post_json(daemon, "/v1/responses", &body).await
}

/// A large Responses conversation whose account runs out moves on: the new account cannot
/// read the kept reasoning (the client's items, in its own key order), so the turn goes again
/// without it, and later turns leave out only the old account's reasoning — one attempt each,
/// incremental on the new account's socket.
#[tokio::test]
async fn a_large_responses_conversation_that_moves_account_goes_on() {
    let big = "m".repeat(80 << 10);
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = logging_daemon(&fake, &[0, 1], "websocket").await;
    let mut input = vec![json!({"role": "user", "content": big})];
    let step = |input: &mut Vec<Value>, answer: &Value, next: &str| {
        input.extend(answer["output"].as_array().unwrap().iter().cloned());
        input.push(json!({"role": "user", "content": next}));
    };
    for turn in 0..3 {
        fake.enqueue(Script::text(&format!("answer {turn}")).with_reasoning("Thinking."));
        let answer = post_responses(&daemon, &input, false, "a").await;
        step(&mut input, &answer, &format!("next {turn}"));
    }
    // Serialised by serde_json's map, each reasoning item has its type last.
    let reasoning = input.iter().find(|i| i["type"] == "reasoning").unwrap();
    assert!(!reasoning.to_string().starts_with(r#"{"type""#));
    let old_account = fake.requests_to(RESPONSES_PATH)[0].account_id.clone();
    fake.enqueue(Script::usage_limit(3600));
    fake.enqueue(Script::text("moved").with_reasoning("Elsewhere."));
    let answer = post_responses(&daemon, &input, false, "a").await;
    let statuses: Vec<u16> = fake
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses[3..], [429, 400, 200], "{statuses:?}");
    let new_account = fake.requests_to(RESPONSES_PATH)[5].account_id.clone();
    assert_ne!(new_account, old_account);
    step(&mut input, &answer, "and on");
    for turn in 0..2 {
        fake.enqueue(Script::text(&format!("later {turn}")).with_reasoning("Again."));
        let before = fake.requests_to(RESPONSES_PATH).len();
        let answer = post_responses(&daemon, &input, false, "a").await;
        let requests = fake.requests_to(RESPONSES_PATH);
        assert_eq!(requests.len(), before + 1, "one attempt: nothing refused");
        let last = requests.last().unwrap();
        assert_eq!(last.status, 200, "{:?}", last.rejection);
        assert_eq!(last.account_id, new_account);
        let (previous, sent) = sent_turns(&fake).pop().unwrap();
        assert!(
            previous.is_some(),
            "incremental on the new account's socket"
        );
        assert_eq!(sent.len(), 1, "{sent:?}");
        step(&mut input, &answer, &format!("then {turn}"));
    }
}

/// A Responses client that sends its whole input every turn (the Agents SDK, the AI SDK with
/// `store: false`) has a large history read from its new items on too: turns go out as one
/// new item, over HTTP the body is the one reading the input whole gives, a stored response
/// keeps every item, and an item reference is read whole.
#[tokio::test]
async fn a_large_responses_input_is_read_from_its_new_items_on() {
    let big = "z".repeat(80 << 10);
    for (transport, store) in [("websocket", false), ("http", false), ("websocket", true)] {
        let fake = FakeUpstream::start().await.unwrap();
        let daemon = logging_daemon(&fake, &[0], transport).await;
        let mut input = vec![
            json!({"role": "system", "content": "Mind the tests."}),
            json!({"role": "user", "content": big}),
        ];
        let (mut last, mut sent_last) = (Value::Null, Vec::new());
        for turn in 0..4 {
            fake.enqueue(Script::text(&format!("answer {turn}")).with_reasoning("Thinking."));
            sent_last.clone_from(&input);
            last = post_responses(&daemon, &input, store, "a").await;
            input.extend(last["output"].as_array().unwrap().iter().cloned());
            input.push(json!({"role": "user", "content": format!("next {turn}")}));
        }
        assert_eq!(continued_requests(&daemon, 3).await, 3, "{transport}");
        let requests = fake.requests_to(RESPONSES_PATH);
        if transport == "websocket" {
            let sent = sent_turns(&fake);
            assert_eq!(sent.len(), 4);
            for turn in &sent[1..] {
                assert!(turn.0.is_some(), "continued turns go incrementally");
                assert_eq!(turn.1.len(), 1, "{:?}", turn.1);
            }
            // A bad new item is named by its place in the whole input.
            let mut bad = input.clone();
            bad.push(json!("not an item"));
            let response = daemon
                .client()
                .post(daemon.url("/v1/responses"))
                .json(&json!({"model": "gpt-5.5", "input": bad, "store": store,
                    "instructions": "Be brief.", "include": ["reasoning.encrypted_content"],
                    "metadata": {"run": "a"}}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400);
            let error = response.text().await.unwrap();
            assert!(
                error.contains(&format!("input[{}]", bad.len() - 1)),
                "{error}"
            );
            assert_eq!(continued_requests(&daemon, 4).await, 4);
        } else {
            // The last body, continued, against the same input read whole (other metadata:
            // nothing kept to continue from, and nothing the backend is sent).
            let continued = requests.last().unwrap().body.clone().unwrap();
            fake.enqueue(Script::text("answer 3").with_reasoning("Thinking."));
            post_responses(&daemon, &sent_last, store, "b").await;
            assert_eq!(continued_requests(&daemon, 3).await, 3);
            let whole = last_body(&fake);
            // (Not printed: a large history.)
            assert!(
                continued["input"] == whole["input"],
                "the bodies' inputs differ"
            );
            let kinds: Vec<&str> = whole["input"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["role"].as_str().or(i["type"].as_str()).unwrap())
                .collect();
            assert_eq!(kinds[0], "developer", "{kinds:?}");
            assert_eq!(kinds.iter().filter(|k| **k == "reasoning").count(), 3);
        }
        if store {
            // The stored response knows every item the request sent.
            let id = last["id"].as_str().unwrap();
            let items: Value = daemon
                .client()
                .get(daemon.url(&format!("/v1/responses/{id}/input_items?limit=100")))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let data = items["data"].as_array().unwrap();
            assert_eq!(data.len(), sent_last.len());
        }
    }
}

/// POSTs `body` to `path` with the key; the answer as JSON, which must be a 200.
async fn post_json(daemon: &Daemon, path: &str, body: &Value) -> Value {
    answered(daemon.client().post(daemon.url(path)).json(body)).await
}

/// What a surface's large tool loop must show: turns after the first continued (read from
/// their new messages on); over the socket each went as its one new item, the call's output;
/// over HTTP the last body is the one reading the same request whole gives (`whole` sends it
/// with a member the translation ignores, so nothing is continued).
async fn check_continued_loop(
    fake: &FakeUpstream,
    daemon: &Daemon,
    transport: &str,
    turns: usize,
    whole: impl AsyncFnOnce(),
) {
    assert_eq!(
        continued_requests(daemon, turns - 1).await,
        turns - 1,
        "{transport}"
    );
    if transport == "websocket" {
        let sent = sent_turns(fake);
        assert_eq!(sent.len(), turns);
        for turn in &sent[1..] {
            assert!(turn.0.is_some(), "continued turns go incrementally");
            assert_eq!(turn.1.len(), 1, "{:?}", turn.1);
            assert_eq!(turn.1[0]["type"], "function_call_output");
        }
    } else {
        let continued = last_body(fake);
        whole().await;
        assert_eq!(continued_requests(daemon, turns - 1).await, turns - 1);
        let whole = last_body(fake);
        assert!(
            continued["input"] == whole["input"],
            "the bodies' inputs differ"
        );
        let calls = whole["input"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "function_call")
            .count();
        assert_eq!(calls, turns - 1);
    }
}

/// Ollama's and Gemini's clients send their whole history every turn and keep neither the
/// calls' ids nor their arguments' text: a large history is still read from its new messages
/// on, the calls given back their ids across turns, so each later turn goes incrementally as
/// its one new item; over HTTP the body is the one reading the request whole gives.
#[tokio::test]
async fn large_ollama_and_gemini_histories_are_read_from_their_new_messages_on() {
    let big = "o".repeat(80 << 10);
    let turns = 4;
    for transport in ["websocket", "http"] {
        let fake = FakeUpstream::start().await.unwrap();
        let daemon = logging_daemon(&fake, &[0], transport).await;
        let tools = json!([{"type": "function", "function": {"name": "run",
            "parameters": {"type": "object", "properties": {"step": {"type": "integer"}}}}}]);
        let ollama = |messages: &[Value], extra: Option<(&str, Value)>| {
            let mut body = json!({"model": "gpt-5.5:latest", "messages": messages,
                "tools": tools, "stream": false, "options": {"temperature": 0.1}});
            if let Some((name, value)) = extra {
                body[name] = value;
            }
            body
        };
        let mut messages = vec![
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": big}),
        ];
        for step in 0..turns {
            fake.enqueue(
                Script::function_call("run", &format!("{{\"step\":{step}}}"))
                    .with_reasoning("Next."),
            );
            let reply = post_json(&daemon, "/api/chat", &ollama(&messages, None)).await;
            let call = &reply["message"]["tool_calls"][0]["function"];
            assert_eq!(call["arguments"]["step"], step, "{reply}");
            // As ollama-python sends them back: no id, the arguments an object.
            messages.push(json!({"role": "assistant", "content": "",
                "tool_calls": [{"function": {"name": "run", "arguments": call["arguments"]}}]}));
            messages.push(json!({"role": "tool", "tool_name": "run",
                "content": format!("done {step}")}));
        }
        check_continued_loop(&fake, &daemon, transport, turns, async || {
            fake.enqueue(Script::text("Done."));
            let body = ollama(
                &messages[..messages.len() - 2],
                Some(("keep_alive", json!("5m"))),
            );
            post_json(&daemon, "/api/chat", &body).await;
        })
        .await;

        let fake = FakeUpstream::start().await.unwrap();
        let daemon = logging_daemon(&fake, &[0], transport).await;
        let gemini = |contents: &[Value], extra: Option<(&str, Value)>| {
            let mut body = json!({"contents": contents,
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "tools": [{"functionDeclarations": [{"name": "run", "parameters": {"type": "OBJECT",
                    "properties": {"step": {"type": "INTEGER"}}}}]}]});
            if let Some((name, value)) = extra {
                body[name] = value;
            }
            body
        };
        let path = "/v1beta/models/gpt-5.5:generateContent";
        let mut contents = vec![json!({"role": "user", "parts": [{"text": big}]})];
        for step in 0..turns {
            fake.enqueue(
                Script::function_call("run", &format!("{{\"step\":{step}}}"))
                    .with_reasoning("Next."),
            );
            let reply = post_json(&daemon, path, &gemini(&contents, None)).await;
            let parts = reply["candidates"][0]["content"]["parts"]
                .as_array()
                .unwrap();
            let call = parts
                .iter()
                .find_map(|p| p.get("functionCall"))
                .unwrap_or_else(|| panic!("{reply}"));
            assert_eq!(call["args"]["step"], step, "{reply}");
            // Without the call's id, as a client that keeps only name and arguments sends it.
            contents.push(json!({"role": "model", "parts": [{"functionCall":
                {"name": "run", "args": call["args"]}}]}));
            contents.push(json!({"role": "user", "parts": [{"functionResponse":
                {"name": "run", "response": {"output": format!("done {step}")}}}]}));
        }
        check_continued_loop(&fake, &daemon, transport, turns, async || {
            fake.enqueue(Script::text("Done."));
            let body = gemini(
                &contents[..contents.len() - 2],
                Some(("safetySettings", json!([]))),
            );
            post_json(&daemon, path, &body).await;
        })
        .await;
    }
}
