//! `GET /metrics`, read by the Prometheus project's own OpenMetrics parser (the
//! `prometheus-client` Python package, installed by `tests/sdk/install.sh`): the counters move
//! with requests, the gauges show the accounts, and only a key or the scrape token opens it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use codex_proxy_tests::fake::{FakeUpstream, Script};
use codex_proxy_tests::harness::Daemon;
use serde_json::{Value, json};

fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sdk/venv/bin/python");
    assert!(python.exists(), "run `bash tests/sdk/install.sh`");
    python
}

/// The samples of an OpenMetrics text, as the reference parser reads it: `[name, labels, value]`.
async fn parse(text: &str) -> Vec<(String, Value, f64)> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = tokio::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, text.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "the parser refused the text:\n{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: Vec<(String, Value, f64)> = serde_json::from_slice(&output.stdout).unwrap();
    samples
}

fn value(samples: &[(String, Value, f64)], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|(_, _, v)| *v)
}

async fn scrape(daemon: &Daemon, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(daemon.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_move_with_requests_and_parse_as_openmetrics() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0, 1])
        .set("metrics", "token = \"scrape-token-123\"")
        .start();

    let (status, text) = scrape(&daemon, Some(&daemon.api_key())).await;
    assert_eq!(status, 200, "{text}");
    let before = parse(&text).await;
    let requests_before = value(
        &before,
        "codex_proxy_requests_total",
        &[("surface", "chat")],
    )
    .unwrap_or(0.0);

    // A chat completion, a message, and a usage limit that moves a turn to the other account.
    let (status, _, _) = daemon
        .chat(&json!({"model": "codex", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(status, 200);
    fake.enqueue(Script::usage_limit(3600));
    let response = daemon
        .client()
        .post(daemon.url("/v1/messages"))
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    // A large chat (on another model, counted apart) read whole, then continued — with the
    // catalog it was kept with: the live one.
    let fetched =
        codex_proxy_tests::harness::poll_until(std::time::Duration::from_secs(10), || {
            daemon.logs().contains("model catalog updated")
        })
        .await;
    assert!(fetched, "{}", daemon.logs());
    let big = "x".repeat(80 << 10);
    let mut messages = vec![json!({"role": "user", "content": big})];
    for _ in 0..2 {
        let (status, _, body) = daemon
            .chat(&json!({"model": "gpt-5.4-mini", "messages": messages}))
            .await;
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        messages.push(answer["choices"][0]["message"].clone());
        messages.push(json!({"role": "user", "content": "more"}));
    }

    // The records are finished a moment after the client has the body.
    let mut after = Vec::new();
    for _ in 0..100 {
        let (status, text) = scrape(&daemon, Some("scrape-token-123")).await;
        assert_eq!(status, 200, "{text}");
        after = parse(&text).await;
        if value(
            &after,
            "codex_proxy_requests_total",
            &[("surface", "messages")],
        )
        .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let chat = value(
        &after,
        "codex_proxy_requests_total",
        &[("surface", "chat"), ("model", "gpt-5.5"), ("status", "200")],
    )
    .unwrap();
    assert_eq!(chat, requests_before + 1.0);
    assert_eq!(
        value(
            &after,
            "codex_proxy_requests_total",
            &[("surface", "messages"), ("status", "200")]
        ),
        Some(1.0)
    );
    for read in ["whole", "continued"] {
        assert_eq!(
            value(
                &after,
                "codex_proxy_large_requests_total",
                &[("surface", "chat"), ("read", read)]
            ),
            Some(1.0),
            "{read}"
        );
    }
    assert!(value(&after, "codex_proxy_tokens_total", &[("kind", "input")]).unwrap() > 0.0);
    assert!(value(&after, "codex_proxy_tokens_total", &[("kind", "output")]).unwrap() > 0.0);
    assert_eq!(
        value(
            &after,
            "codex_proxy_failovers_total",
            &[("reason", "usage_limit")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &after,
            "codex_proxy_request_duration_seconds_count",
            &[("surface", "chat")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(value(&after, "codex_proxy_upstream_latency_seconds_count", &[]).unwrap() >= 2.0);
    assert!(
        value(
            &after,
            "codex_proxy_time_to_first_byte_seconds_count",
            &[("surface", "chat")]
        )
        .is_some()
    );
    // The pool: the limited account cooling down with its quota, the other active.
    let states: Vec<(String, String)> = after
        .iter()
        .filter(|(n, _, v)| n == "codex_proxy_account_state" && *v == 1.0)
        .map(|(_, l, _)| {
            (
                l["account"].as_str().unwrap().to_owned(),
                l["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(
        states.iter().any(|(_, s)| s == "cooling_down"),
        "{states:?}"
    );
    assert!(states.iter().any(|(_, s)| s == "active"), "{states:?}");
    assert!(
        value(
            &after,
            "codex_proxy_quota_used_percent",
            &[("window", "primary")]
        )
        .is_some()
    );
    assert!(value(&after, "codex_proxy_in_flight_requests", &[]).is_some());
    // Scrapes are not requests of a client's.
    assert_eq!(
        value(
            &after,
            "codex_proxy_requests_total",
            &[("surface", "other")]
        ),
        None
    );

    // The Grafana dashboard in packaging/ asks only for metrics the daemon registers (some have
    // no samples until their event happens, so the registrations are read from the source).
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/src/metrics.rs"),
    )
    .unwrap();
    let families: Vec<String> = source
        .split("registry.register(")
        .skip(1)
        .filter_map(|rest| rest.split('"').nth(1))
        .map(|name| format!("codex_proxy_{name}"))
        .collect();
    assert!(families.len() >= 10, "{families:?}");
    // Every registered family the scrape shows is one of them.
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let family = line.split_whitespace().next().unwrap();
        assert!(families.iter().any(|f| f == family), "{family}");
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana/codex-proxy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            let mut used = 0;
            while let Some(at) = rest.find("codex_proxy_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                let family = ["_bucket", "_total", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name);
                assert!(
                    families.iter().any(|f| f == family),
                    "{expr}: no metric {family}"
                );
                used += 1;
            }
            assert!(used > 0, "{expr}");
        }
    }

    // Closed without a key or token.
    assert_eq!(scrape(&daemon, None).await.0, 401);
    assert_eq!(scrape(&daemon, Some("wrong-token-999")).await.0, 401);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("metrics", "enabled = false")
        .start();
    assert_eq!(scrape(&daemon, Some(&daemon.api_key())).await.0, 404);
}

/// A request waiting for an account slot is counted as queued (metrics and status) until it
/// gets one.
#[tokio::test]
async fn a_request_waiting_for_a_slot_is_counted_as_queued() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("auth", "max_concurrent_per_account = 1")
        .set("auth", "queue_timeout_seconds = 30")
        .start();
    // The first answer starts, then holds its slot for 2 s; the second request waits in line.
    fake.enqueue(Script::text("held").paced(2_000));
    fake.enqueue(Script::text("second"));
    let body = json!({"model": "codex", "messages": [{"role": "user", "content": "x"}]});
    let send = || {
        let request = reqwest::Client::new()
            .post(daemon.url("/v1/chat/completions"))
            .bearer_auth(daemon.api_key())
            .json(&body);
        tokio::spawn(async move { request.send().await.unwrap().status() })
    };
    let first = send();
    // Wait until the first holds the slot, then send the second.
    for _ in 0..500 {
        let (_, text) = scrape(&daemon, Some(&daemon.api_key())).await;
        if text.contains("\ncodex_proxy_in_flight_requests 1\n") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let second = send();
    let mut queued = None;
    for _ in 0..500 {
        let (_, text) = scrape(&daemon, Some(&daemon.api_key())).await;
        if text.contains("\ncodex_proxy_queued_requests 1\n") {
            queued = Some(daemon.ctl_json(&["status", "--json"]).await);
            assert_eq!(
                value(&parse(&text).await, "codex_proxy_queued_requests", &[]),
                Some(1.0)
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let status = queued.expect("the second request was never counted as queued");
    assert_eq!(status["queued"], 1, "{status}");
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(second.await.unwrap(), 200);
    let (_, text) = scrape(&daemon, Some(&daemon.api_key())).await;
    assert_eq!(
        value(&parse(&text).await, "codex_proxy_queued_requests", &[]),
        Some(0.0)
    );
}
