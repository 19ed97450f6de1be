//! The listener holds under abuse: slow and idle connections are closed in time while `/health`
//! keeps answering, a connection cap leaves room for everything else, and whatever goes wrong is
//! answered as OpenAI-shaped JSON.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use codex_proxy_tests::fake::FakeUpstream;
use codex_proxy_tests::harness::Daemon;
use serde_json::Value;

/// Raises this process's open-files limit so a test can hold hundreds of connections.
fn enough_descriptors() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Reads until the peer closes (true) or `limit` passes (false).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A raw HTTP/1.1 exchange: sends `request`, reads the whole answer (the daemon closes).
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if length.is_some_and(|n| answer.len() >= end + 4 + n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

async fn health_millis(daemon: &Daemon) -> u128 {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(daemon.url("/health"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("/health answered");
    assert_eq!(response.status(), 200);
    started.elapsed().as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_in_time_while_health_answers() {
    enough_descriptors();
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("server", "header_timeout_seconds = 1")
        .set("server", "idle_timeout_seconds = 2")
        .start();
    let count = 300;
    let mut slow = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..count {
        // Slowloris: a request head that never ends.
        let mut stream = TcpStream::connect(daemon.addr).unwrap();
        stream
            .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .unwrap();
        slow.push(stream);
        idle.push(TcpStream::connect(daemon.addr).unwrap());
    }
    let opened = Instant::now();
    let mut worst = 0;
    for _ in 0..5 {
        worst = worst.max(health_millis(&daemon).await);
    }
    // Blocking reads: in a blocking thread, so the runtime stays free.
    let (slow_closed, idle_closed) = tokio::task::spawn_blocking(move || {
        let slow = slow
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(10)))
            .filter(|closed| *closed)
            .count();
        let slow_at = opened.elapsed();
        let idle = idle
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(10)))
            .filter(|closed| *closed)
            .count();
        (slow, (idle, slow_at, opened.elapsed()))
    })
    .await
    .unwrap();
    let (idle_closed, slow_at, idle_at) = idle_closed;
    println!(
        "{count} slow-header connections closed: {slow_closed} (all by {} ms); {count} idle ones: {idle_closed} (all by {} ms); /health meanwhile: worst {worst} ms",
        slow_at.as_millis(),
        idle_at.as_millis()
    );
    assert_eq!(slow_closed, count, "slow-header connections left open");
    assert_eq!(idle_closed, count, "idle connections left open");
    assert!(health_millis(&daemon).await < 30_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_waits_for_a_free_slot_and_the_control_socket_still_answers() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("server", "max_connections = 8")
        .set("server", "idle_timeout_seconds = 2")
        .start();
    let held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(daemon.addr).unwrap())
        .collect();
    // The cap is reached: the control socket is unaffected.
    let status = daemon.ctl_json(&["status"]).await;
    assert_eq!(status["response"], "status");
    // A ninth client waits in the backlog until an idle connection is closed, then is served.
    let waited = health_millis(&daemon).await;
    println!("/health at the cap waited {waited} ms for a slot");
    assert!(
        daemon
            .logs()
            .contains("8 connections open (server.max_connections)"),
        "{}",
        daemon.logs()
    );
    drop(held);
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_json_errors() {
    let daemon = Daemon::builder().start();
    let (status, head, body) = raw(daemon.addr, b"GARBAGE\r\n\r\n");
    assert_eq!(status, 400, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "invalid_http_request");

    let mut many = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..150 {
        many.extend_from_slice(format!("X-Header-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let (status, head, body) = raw(daemon.addr, &many);
    assert_eq!(status, 431, "{head}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "request_header_fields_too_large");
    assert_eq!(json["error"]["type"], "invalid_request_error");

    // A well-formed request on the same listener is untouched.
    let (status, _, body) = raw(
        daemon.addr,
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let daemon = Daemon::builder()
        .set("server", "idle_timeout_seconds = 1")
        .start();
    let tcp = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get(daemon.url("/health"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the server closed the idle HTTP/2 connection")
        .unwrap()
        .unwrap();
    println!(
        "idle HTTP/2 connection closed after {} ms",
        started.elapsed().as_millis()
    );
}

fn json_error(status: u16, head: &str, body: &str) -> Value {
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json"),
        "{status}: {head}\n{body}"
    );
    let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(json["error"]["message"].is_string(), "{json}");
    json
}

/// A chat completion request with this body (its length declared).
fn chat_post(body: &[u8]) -> Vec<u8> {
    post(
        "/v1/chat/completions",
        &format!("Content-Length: {}\r\n", body.len()),
        body,
    )
}

fn post(path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nConnection: close\r\n{headers}\r\n",
        codex_proxy_tests::harness::TEST_API_KEY
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[tokio::test]
async fn bad_bodies_and_urls_get_json_errors() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    let addr = daemon.addr;
    let checks = tokio::task::spawn_blocking(move || {
        // Trailing data after the JSON object.
        let body = br#"{"model":"gpt-5.5","messages":[{"role":"user","content":"hi"}]}garbage"#;
        let request = chat_post(body);
        let (status, head, text) = raw(addr, &request);
        assert_eq!(status, 400, "{text}");
        let json = json_error(status, &head, &text);
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("trailing"),
            "{json}"
        );

        // An oversized Content-Length is refused before any body is sent.
        let request = post("/v1/chat/completions", "Content-Length: 104857600\r\n", b"");
        let started = Instant::now();
        let (status, head, text) = raw(addr, &request);
        assert_eq!(status, 413, "{text}");
        assert_eq!(
            json_error(status, &head, &text)["error"]["code"],
            "request_too_large"
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        // A chunked body that grows past the limit.
        let mut chunked = post(
            "/v1/chat/completions",
            "Transfer-Encoding: chunked\r\n",
            b"",
        );
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..33 {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(&chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (status, head, text) = raw(addr, &chunked);
        assert_eq!(status, 413, "{text}");
        json_error(status, &head, &text);

        // `model: ""` is a 400, as OpenAI answers; a huge model name is not echoed back.
        let body = br#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#;
        let request = chat_post(body);
        let (status, head, text) = raw(addr, &request);
        assert_eq!(status, 400, "{text}");
        assert_eq!(json_error(status, &head, &text)["error"]["param"], "model");
        let body = format!(
            r#"{{"model":"{}","messages":[{{"role":"user","content":"hi"}}]}}"#,
            "m".repeat(100_000)
        );
        let request = chat_post(body.as_bytes());
        let (status, head, text) = raw(addr, &request);
        assert_eq!(status, 404, "{}", &text[..text.len().min(300)]);
        json_error(status, &head, &text);
        assert!(text.len() < 2048, "the error echoed {} bytes", text.len());

        // The framework's own rejections.
        for path in ["/v1/models/%FF", "/auth/accounts?refresh=maybe"] {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                codex_proxy_tests::harness::TEST_API_KEY
            );
            let (status, head, text) = raw(addr, request.as_bytes());
            assert_eq!(status, 400, "{path}: {text}");
            json_error(status, &head, &text);
        }
    });
    checks.await.unwrap();
}

#[tokio::test]
async fn bodies_beyond_the_memory_budget_wait_then_get_a_503_and_slow_bodies_a_408() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("server", "request_memory_mb = 32")
        .set("server", "body_timeout_seconds = 2")
        .config("[auth]\nqueue_timeout_seconds = 1")
        .start();
    let addr = daemon.addr;
    tokio::task::spawn_blocking(move || {
        // One 30 MB body takes most of the budget while it trickles in.
        let mut first = TcpStream::connect(addr).unwrap();
        first
            .write_all(&post(
                "/v1/chat/completions",
                "Content-Length: 31457280\r\n",
                b"{",
            ))
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // A second one finds no room, waits queue_timeout_seconds, and is told to retry.
        let started = Instant::now();
        let (status, head, text) = raw(
            addr,
            &post("/v1/chat/completions", "Content-Length: 31457280\r\n", b""),
        );
        assert_eq!(status, 503, "{text}");
        assert!(head.to_lowercase().contains("retry-after: 1"), "{head}");
        assert_eq!(
            json_error(status, &head, &text)["error"]["code"],
            "request_memory_exhausted"
        );
        assert!(started.elapsed() >= Duration::from_millis(900));
        // A small request still fits beside it.
        let body = br#"{"model":"gpt-5.5","messages":[{"role":"user","content":"hi"}]}"#;
        let (status, _, text) = raw(addr, &chat_post(body));
        assert_eq!(status, 200, "{text}");
        // The trickling body runs out of time.
        let mut answer = Vec::new();
        first
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = first.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    })
    .await
    .unwrap();
}

/// A strict `response_format` schema with `n` properties (about 40 bytes each).
fn schema_bomb(n: usize) -> Value {
    let names: Vec<String> = (0..n).map(|i| format!("property_{i:07}")).collect();
    let properties: serde_json::Map<String, Value> = names
        .iter()
        .map(|name| (name.clone(), serde_json::json!({"type": "string"})))
        .collect();
    serde_json::json!({
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "bomb", "strict": true,
            "schema": {"type": "object", "additionalProperties": false, "required": names, "properties": properties}}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_bomb_is_refused_without_stalling_health() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    let bomb = serde_json::to_vec(&schema_bomb(100_000)).unwrap();
    println!("schema bomb: {} bytes", bomb.len());
    let sends = (0..2).map(|_| {
        daemon
            .client()
            .post(daemon.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(bomb.clone())
            .send()
    });
    let bombs = futures_util::future::join_all(sends);
    let watch = async {
        let mut worst = 0;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            worst = worst.max(health_millis(&daemon).await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worst
    };
    let (answers, worst) = tokio::join!(bombs, watch);
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 400);
        let json: Value = answer.json().await.unwrap();
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at most 5000 properties"),
            "{json}"
        );
    }
    println!("/health while two schema bombs were checked: worst {worst} ms");
}

#[tokio::test]
async fn requests_by_a_foreign_host_name_are_refused_on_every_route() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("server", r#"allowed_hosts = ["proxy.lan"]"#)
        .set("server", r#"cors_origins = ["*"]"#)
        .start();
    let addr = daemon.addr;
    let key = codex_proxy_tests::harness::TEST_API_KEY;
    tokio::task::spawn_blocking(move || {
        let ask = |method: &str, path: &str, host: &str| {
            raw(
                addr,
                format!(
                    "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nOrigin: http://{host}\r\nAccess-Control-Request-Method: POST\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
        };
        for (method, path) in [
            ("GET", "/health"),
            ("GET", "/v1/models"),
            ("POST", "/v1/chat/completions"),
            ("GET", "/auth/accounts"),
            ("GET", "/no/such/route"),
            ("OPTIONS", "/v1/chat/completions"),
        ] {
            let (status, head, body) = ask(method, path, "rebind.evil.example:8080");
            assert_eq!(status, 403, "{method} {path}: {head}");
            assert_eq!(
                json_error(status, &head, &body)["error"]["code"],
                "host_not_allowed"
            );
            for good in ["localhost:8080", "127.0.0.1", "proxy.lan:8080"] {
                let (status, head, _) = ask(method, path, good);
                assert_ne!(status, 403, "{method} {path} as {good}: {head}");
            }
        }
    })
    .await
    .unwrap();
}
