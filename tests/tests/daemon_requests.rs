//! The request log: every request recorded once it is over — surface, model, account, status,
//! times, tokens, the error of a failure — in `codexctl requests` and as one log line each.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use codex_proxy_tests::fake::{FakeUpstream, Script};
use codex_proxy_tests::harness::Daemon;
use serde_json::{Value, json};

async fn requests(daemon: &Daemon, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["requests", "-n", "100"];
    all.extend_from_slice(args);
    daemon.ctl_json(&all).await["requests"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn every_request_is_recorded_when_it_is_over() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    let client = daemon.client();

    // A chat completion with usage.
    let (status, _, _) = daemon
        .chat(&json!({"model": "codex", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(status, 200);
    // A Messages stream that fails after it began (200, then an error event).
    fake.enqueue(Script::failed("server_error", "The model broke mid-way."));
    let text = client
        .post(daemon.url("/v1/messages"))
        .json(
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: error"), "{text}");
    // An unknown model, an unknown path, and a request without a key.
    let missing = client
        .post(daemon.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        client
            .get(daemon.url("/v1/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let anonymous = reqwest::Client::new()
        .get(daemon.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Recorded once each is over (the server finishes a record when it has sent the whole
    // body, a moment after the client read it), newest first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut all = requests(&daemon, &[]).await;
    while all.len() < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        all = requests(&daemon, &[]).await;
    }
    let paths: Vec<(&str, u64)> = all
        .iter()
        .map(|r| (r["path"].as_str().unwrap(), r["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            ("/v1/models", 401),
            ("/v1/nope", 404),
            ("/v1/chat/completions", 404),
            ("/v1/messages", 200),
            ("/v1/chat/completions", 200),
        ],
        "{all:#?}"
    );
    let chat = &all[4];
    assert_eq!(chat["surface"], "chat");
    assert_eq!(chat["model"], "gpt-5.5");
    assert_eq!(chat["account"], "acct_0");
    assert!(chat["input_tokens"].as_u64().unwrap() > 0);
    assert!(chat["output_tokens"].as_u64().unwrap() > 0);
    assert!(chat["first_byte_ms"].is_u64());
    assert!(chat["error"].is_null());
    let messages = &all[3];
    assert_eq!(messages["surface"], "messages");
    assert_eq!(messages["account"], "acct_0");
    assert!(
        messages["error"]
            .as_str()
            .unwrap()
            .contains("The model broke mid-way."),
        "{messages}"
    );
    assert!(all[2]["error"].as_str().unwrap().contains("gpt-4o"));
    assert!(all[0]["error"].as_str().unwrap().contains("API key"));
    // Nothing secret in a record.
    let dump = serde_json::to_string(&all).unwrap();
    assert!(!dump.contains(&daemon.api_key()) && !dump.contains("\"hi\""));

    // Filters: failures only (an error status, or a failure mid-stream), one surface.
    let failed = requests(&daemon, &["--failed"]).await;
    assert_eq!(failed.len(), 4);
    let only_messages = requests(&daemon, &["--surface", "messages"]).await;
    assert_eq!(only_messages.len(), 1);

    // One log line per request: what was called, how it ended.
    let logs = daemon.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("POST /v1/chat/completions") && l.contains("status=200"))
        .unwrap_or_else(|| panic!("no request line in:\n{logs}"));
    assert!(
        line.contains("surface=\"chat\"") || line.contains("surface=chat"),
        "{line}"
    );
    assert!(
        line.contains("account=acct_0") || line.contains("account=\"acct_0\""),
        "{line}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("GET /v1/nope") && l.contains("status=404"))
    );

    // Chat and Responses streams that fail mid-way are failures too.
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "codex", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "codex", "stream": true, "input": "x"}),
        ),
    ] {
        fake.enqueue(Script::failed("server_error", "Broken stream."));
        let response = client
            .post(daemon.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.text().await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut failed = requests(&daemon, &["--failed"]).await;
    while failed.len() < 6 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        failed = requests(&daemon, &["--failed"]).await;
    }
    assert_eq!(failed[0]["surface"], "responses");
    assert_eq!(failed[1]["surface"], "chat");
    for record in &failed[..2] {
        assert_eq!(record["status"], 200);
        assert!(
            record["error"].as_str().unwrap().contains("Broken stream."),
            "{record}"
        );
    }

    // The human view.
    let out = daemon.ctl(&["requests", "-n", "3"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("GET /v1/models") && out.stdout.contains("401"),
        "{}",
        out.stdout
    );
}

/// Per-5-minute and per-day usage, kept in the state directory across a restart.
#[tokio::test]
async fn usage_history_survives_a_restart() {
    let fake = FakeUpstream::start().await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::builder()
        .fake(&fake, &[0])
        .state_dir(state.path())
        .start();
    for _ in 0..2 {
        let (status, _, _) = daemon
            .chat(&json!({"model": "codex", "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        assert_eq!(status, 200);
    }
    let totals = |view: &Value| -> (u64, u64) {
        let rows = view["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| b["rows"].as_array().unwrap().clone())
            .collect::<Vec<_>>();
        (
            rows.iter().map(|r| r["requests"].as_u64().unwrap()).sum(),
            rows.iter()
                .map(|r| r["input_tokens"].as_u64().unwrap())
                .sum(),
        )
    };
    let day = daemon.ctl_json(&["usage", "--history", "day"]).await;
    assert_eq!(day["step_seconds"], 300);
    let (requests, input) = totals(&day);
    assert_eq!(requests, 2, "{day}");
    assert!(input > 0);
    let row = &day["buckets"][0]["rows"][0];
    assert_eq!(
        (row["account"].as_str(), row["model"].as_str()),
        (Some("acct_0"), Some("gpt-5.5"))
    );

    let status = daemon.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(60));
    assert!(status.success());
    let again = Daemon::builder()
        .fake(&fake, &[0])
        .state_dir(state.path())
        .start();
    let month = again.ctl_json(&["usage", "--history", "month"]).await;
    assert_eq!(month["step_seconds"], 86_400);
    assert_eq!(totals(&month), (requests, input));
    assert_eq!(
        totals(&again.ctl_json(&["usage", "--history", "day"]).await),
        (requests, input)
    );
    let out = again.ctl(&["usage", "--history", "day"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("REQUESTS"), "{}", out.stdout);
}
