//! Scripted behaviours and recording: what later tests rely on to drive the daemon.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codex_proxy_tests::fake::{Ending, FakeUpstream, OutputItem, RESPONSES_PATH, Reply, Script};
use codex_proxy_tests::harness::{OfficialClient, SseEvent, parse_sse, workspace_binary};
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn setup() -> (FakeUpstream, OfficialClient) {
    let fake = FakeUpstream::start().await.unwrap();
    let client = OfficialClient::for_account(&fake, 0);
    (fake, client)
}

async fn events(client: &OfficialClient, text: &str) -> Vec<SseEvent> {
    let response = client
        .responses(&client.classic_body("gpt-5.5", text))
        .await;
    assert_eq!(response.status(), 200);
    parse_sse(&response.text().await.unwrap())
}

fn of_kind<'a>(events: &'a [SseEvent], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e.event == kind)
        .map(|e| &e.data)
        .collect()
}

#[tokio::test]
async fn function_calls_stream_arguments_then_the_done_item() {
    let (fake, client) = setup().await;
    fake.enqueue(Script::function_calls(&[
        ("shell_command", r#"{"command":"ls -la"}"#),
        ("read_file", r#"{"path":"src/main.rs"}"#),
    ]));
    let events = events(&client, "list files").await;
    let added = of_kind(&events, "response.output_item.added");
    assert_eq!(added.len(), 2);
    assert_eq!(added[1]["output_index"], 1);
    let done = of_kind(&events, "response.output_item.done");
    for (i, (name, args)) in [
        ("shell_command", r#"{"command":"ls -la"}"#),
        ("read_file", r#"{"path":"src/main.rs"}"#),
    ]
    .iter()
    .enumerate()
    {
        let item = &done[i]["item"];
        assert_eq!(item["type"], "function_call");
        assert_eq!(item["name"], *name);
        assert_eq!(item["arguments"], *args);
        assert!(item["call_id"].as_str().unwrap().starts_with("call_"));
        let streamed: String = of_kind(&events, "response.function_call_arguments.delta")
            .iter()
            .filter(|d| d["item_id"] == item["id"])
            .map(|d| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(streamed, *args);
    }
    assert_eq!(
        of_kind(&events, "response.function_call_arguments.done").len(),
        2
    );
}

#[tokio::test]
async fn custom_tool_calls_stream_their_input() {
    let (fake, client) = setup().await;
    let patch = "*** Begin Patch\n*** Add File: a.txt\n+hello\n*** End Patch";
    fake.enqueue(Script::custom_tool_call("apply_patch", patch));
    let events = events(&client, "patch it").await;
    let streamed: String = of_kind(&events, "response.custom_tool_call_input.delta")
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, patch);
    let done = of_kind(&events, "response.output_item.done");
    assert_eq!(done[0]["item"]["type"], "custom_tool_call");
    assert_eq!(done[0]["item"]["input"], patch);
}

#[tokio::test]
async fn reasoning_summaries_only_when_requested() {
    let (fake, client) = setup().await;
    fake.set_default(Some(
        Script::text("answer").with_reasoning("**Thinking** about it"),
    ));
    let mut body = client.classic_body("gpt-5.5", "q");
    body["reasoning"] = json!({"effort": "low"});
    body.as_object_mut().unwrap().remove("include");
    let plain = parse_sse(&client.responses(&body).await.text().await.unwrap());
    assert!(of_kind(&plain, "response.reasoning_summary_text.delta").is_empty());
    let item = &of_kind(&plain, "response.output_item.done")[0]["item"];
    assert_eq!(item["type"], "reasoning");
    assert_eq!(item["summary"], json!([]));
    assert!(
        item["encrypted_content"].is_null(),
        "not included unless asked for"
    );

    let asked = events(&client, "q").await;
    let summary: String = of_kind(&asked, "response.reasoning_summary_text.delta")
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(summary, "**Thinking** about it");
}

#[tokio::test]
async fn usage_limit_exhausts_the_account_until_reset() {
    let (fake, client) = setup().await;
    fake.enqueue(Script::usage_limit(3600));
    let response = client
        .responses(&client.classic_body("gpt-5.5", "hi"))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-codex-primary-used-percent"], "100.0");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "usage_limit_reached");
    assert_eq!(error["error"]["plan_type"], "plus");
    let resets_at = error["error"]["resets_at"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((resets_at - now - 3600).abs() <= 5);

    // Still limited without a script; another account is not.
    assert_eq!(
        client
            .responses(&client.classic_body("gpt-5.5", "again"))
            .await
            .status(),
        429
    );
    let bob = OfficialClient::for_account(&fake, 1);
    assert_eq!(
        bob.responses(&bob.classic_body("gpt-5.5", "hi"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn scripted_http_errors_have_the_real_shapes() {
    let (fake, client) = setup().await;
    let body = client.classic_body("gpt-5.5", "hi");
    let cases: Vec<(Reply, u16, &str)> = vec![
        (Reply::TokenExpired, 401, "token_expired"),
        (Reply::InternalError, 500, "server_error"),
        (Reply::Overloaded, 503, "server_is_overloaded"),
        (Reply::UsageNotIncluded, 429, "usage_not_included"),
        (Reply::CloudflareBlocked, 403, "Cloudflare"),
        (
            Reply::Raw {
                status: 502,
                content_type: "text/plain".into(),
                body: "bad gateway".into(),
            },
            502,
            "bad gateway",
        ),
    ];
    for (reply, status, marker) in cases {
        fake.enqueue(Script::new(reply));
        let response = client.responses(&body).await;
        assert_eq!(response.status(), status);
        let text = response.text().await.unwrap();
        assert!(text.contains(marker), "{status}: {text}");
        if status == 403 {
            assert!(text.contains("blocked"));
        }
    }
}

#[tokio::test]
async fn failed_incomplete_and_unterminated_streams() {
    let (fake, client) = setup().await;
    fake.enqueue(Script::failed(
        "context_length_exceeded",
        "Your input exceeds the context window of this model.",
    ));
    let failed = events(&client, "a").await;
    let last = failed.last().unwrap();
    assert_eq!(last.event, "response.failed");
    assert_eq!(
        last.data["response"]["error"]["code"],
        "context_length_exceeded"
    );

    // Every response.failed code of protocol §4.2.
    for code in [
        "insufficient_quota",
        "usage_not_included",
        "cyber_policy",
        "invalid_prompt",
        "bio_policy",
        "server_is_overloaded",
        "slow_down",
        "rate_limit_exceeded",
    ] {
        fake.enqueue(Script::failed(code, "Please try again in 11.054s."));
        let last = events(&client, code).await.pop().unwrap();
        assert_eq!(
            (last.event.as_str(), &last.data["response"]["error"]["code"]),
            ("response.failed", &json!(code))
        );
    }

    for reason in ["max_output_tokens", "content_filter"] {
        fake.enqueue(Script::incomplete(reason));
        let incomplete = events(&client, "b").await;
        assert_eq!(incomplete.last().unwrap().event, "response.incomplete");
        assert_eq!(
            incomplete.last().unwrap().data["response"]["incomplete_details"]["reason"],
            reason
        );
    }

    fake.enqueue(Script::text("no end").ending(Ending::NoTerminal));
    let open = events(&client, "c").await;
    assert_eq!(open.last().unwrap().event, "response.output_item.done");
}

#[tokio::test]
async fn disconnect_mid_stream_cuts_the_connection() {
    let (fake, client) = setup().await;
    fake.enqueue(Script::text("one two three four five").disconnect_after(4));
    let response = client
        .responses(&client.classic_body("gpt-5.5", "hi"))
        .await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    let mut error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    assert!(
        error.is_some(),
        "the body must end in an error, not cleanly"
    );
    assert_eq!(parse_sse(&String::from_utf8_lossy(&received)).len(), 4);
    let rec = &fake.requests_to(RESPONSES_PATH)[0];
    assert!(
        !rec.client_hung_up,
        "the fake cut it, the client did not hang up"
    );
}

#[tokio::test]
async fn a_client_that_gives_up_during_a_slow_first_byte_is_recorded() {
    let (fake, client) = setup().await;
    fake.enqueue(Script::text("late").slow_first_byte(5_000));
    let body = client.classic_body("gpt-5.5", "hi");
    let result = tokio::time::timeout(Duration::from_millis(200), client.responses(&body)).await;
    assert!(result.is_err(), "no head before the delay");
    assert!(
        fake.wait_for_hangup(0, Duration::from_secs(5)).await,
        "hang-up recorded"
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_recorded_and_pacing_holds() {
    let (fake, client) = setup().await;
    fake.enqueue(Script::deltas((0..200).map(|i| format!("d{i} "))).paced(20));
    let response = client
        .responses(&client.classic_body("gpt-5.5", "hi"))
        .await;
    let mut stream = response.bytes_stream();
    let started = Instant::now();
    let mut seen = String::new();
    while !seen.contains("d2 ") {
        seen.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }
    // Three deltas arrived, each after its pace: a lower bound only.
    assert!(started.elapsed() >= Duration::from_millis(40));
    drop(stream);
    assert!(fake.wait_for_hangup(0, Duration::from_secs(5)).await);
    let rec = &fake.requests_to(RESPONSES_PATH)[0];
    assert!(!rec.completed);
}

#[tokio::test]
async fn rules_queue_and_default_choose_the_script() {
    let (fake, client) = setup().await;
    fake.on_input_containing("[[tools]]", Script::function_call("f", "{}"));
    fake.enqueue(Script::text("first"));
    fake.enqueue(Script::text("second"));
    fake.set_default(Some(Script::text("fallback")));
    let text = |events: &[SseEvent]| -> String {
        of_kind(events, "response.output_text.delta")
            .iter()
            .map(|d| d["delta"].as_str().unwrap())
            .collect()
    };
    let tool = events(&client, "please [[tools]]").await;
    assert_eq!(
        of_kind(&tool, "response.output_item.done")[0]["item"]["type"],
        "function_call"
    );
    assert_eq!(text(&events(&client, "x").await), "first");
    assert_eq!(text(&events(&client, "y").await), "second");
    assert_eq!(text(&events(&client, "z").await), "fallback");
    fake.set_default(None);
    assert_eq!(text(&events(&client, "echo me").await), "You said: echo me");
}

#[tokio::test]
async fn explicit_usage_and_output_items_are_sent_verbatim() {
    let (fake, client) = setup().await;
    fake.enqueue(
        Script::new(Reply::Stream {
            items: vec![OutputItem::Message {
                deltas: vec!["h\u{e9}".into(), "llo \u{1f600}".into()],
            }],
            ending: Ending::Completed,
            usage: None,
        })
        .with_usage(codex_proxy_tests::fake::Usage {
            input_tokens: 2310,
            cached_tokens: 2048,
            output_tokens: 95,
            reasoning_tokens: 64,
        })
        .header("x-codex-turn-state", "ts_fixed"),
    );
    let response = client
        .responses(&client.classic_body("gpt-5.5", "hi"))
        .await;
    assert_eq!(response.headers()["x-codex-turn-state"], "ts_fixed");
    let events = parse_sse(&response.text().await.unwrap());
    let deltas: Vec<&str> = of_kind(&events, "response.output_text.delta")
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["h\u{e9}", "llo \u{1f600}"]);
    let usage = &events.last().unwrap().data["response"]["usage"];
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 2048);
    assert_eq!(usage["total_tokens"], 2405);
}

#[tokio::test]
async fn admin_api_scripts_and_inspects_over_http() {
    let fake = FakeUpstream::start().await.unwrap();
    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}/__fake{path}", fake.auth_url());
    let accounts: Value = http
        .get(admin("/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts.as_array().unwrap().len(), 3);
    let auth_json = &accounts[0]["auth_json"];
    assert_eq!(auth_json["auth_mode"], "chatgpt");
    let tokens = serde_json::from_value(json!({
        "id_token": auth_json["tokens"]["id_token"],
        "access_token": auth_json["tokens"]["access_token"],
        "refresh_token": auth_json["tokens"]["refresh_token"],
        "account_id": auth_json["tokens"]["account_id"],
    }))
    .unwrap();
    let client = OfficialClient::new(&fake, tokens);

    let script = serde_json::to_value(Script::text("from admin")).unwrap();
    assert_eq!(
        http.post(admin("/script"))
            .json(&script)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let events = events(&client, "hi").await;
    let text: String = of_kind(&events, "response.output_text.delta")
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "from admin");

    let recorded: Value = http
        .get(admin("/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        recorded
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == RESPONSES_PATH && r["status"] == 200)
    );
    http.delete(admin("/requests")).send().await.unwrap();
    assert!(fake.requests_to(RESPONSES_PATH).is_empty());
}

#[test]
fn standalone_binary_prints_the_config_to_use() {
    let mut child = Command::new(workspace_binary("fake-upstream"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let first = lines.next().unwrap();
    let origin = first
        .strip_prefix("fake upstream listening on ")
        .unwrap()
        .to_owned();
    let config: Vec<String> = lines.take_while(|l| !l.starts_with("Accounts")).collect();
    let config = config.join("\n");
    assert!(
        config.contains(&format!("base_url = \"{origin}/backend-api\"")),
        "{config}"
    );
    assert!(config.contains(&format!("auth_url = \"{origin}\"")));
    // It serves: the appcast answers over plain HTTP/1.1.
    let host = origin.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(host).unwrap();
    use std::io::{Read, Write};
    write!(
        tcp,
        "GET /appcast.xml HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("sparkle:shortVersionString"));
    child.kill().unwrap();
    child.wait().unwrap();
}
