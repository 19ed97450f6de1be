//! The control socket and `codexctl`, end to end: the real daemon, the real `codexctl`, the
//! fake upstream. Every command, every login flow, the socket's permission model and its
//! defences against bad peers.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use codex_proxy_proto::frame::{read_frame, write_frame};
use codex_proxy_proto::{Hello, ProtocolVersion, ServerHello};
use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Script};
use codex_proxy_tests::harness::{Daemon, TEST_API_KEY, poll_until};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn user(text: &str) -> Value {
    json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": text}]})
}

async fn two_accounts() -> (FakeUpstream, Daemon) {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0, 1]).start();
    (fake, daemon)
}

#[tokio::test]
async fn status_shows_daemon_and_accounts_as_text_and_json() {
    let (_fake, daemon) = two_accounts().await;
    let status = daemon.ctl_json(&["status"]).await;
    assert_eq!(status["response"], "status");
    assert_eq!(status["daemon_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["listen"], format!("http://{}", daemon.addr));
    assert_eq!(status["strategy"], "least_used");
    assert_eq!(status["pid"], daemon.pid());
    let accounts = status["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0]["email"], "alice@example.com");
    assert_eq!(accounts[0]["state"], "active");
    assert!(
        !status.to_string().contains("eyJ"),
        "no token crosses the socket"
    );

    let text = daemon.ctl(&["status"]).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains(&format!("http://{}", daemon.addr)));
    assert!(
        text.stdout
            .contains("alice@example.com  acct_0  plus  active"),
        "{}",
        text.stdout
    );
    assert!(
        !text.stdout.contains('\x1b'),
        "no colour when not on a terminal"
    );
}

#[tokio::test]
async fn quota_from_responses_shows_as_bars_with_reset_times() {
    let (_fake, daemon) = two_accounts().await;
    assert_eq!(daemon.chat(&user("hi")).await.0, 200);
    let text = daemon.ctl(&["status"]).await;
    assert!(text.stdout.contains("5-hour"), "{}", text.stdout);
    assert!(text.stdout.contains("resets in"), "{}", text.stdout);
    assert!(text.stdout.contains("1 request served"), "{}", text.stdout);
}

#[tokio::test]
async fn accounts_are_managed_by_id_email_or_label() {
    let (fake, daemon) = two_accounts().await;
    let labelled = daemon
        .ctl_json(&["accounts", "label", "bob@example.com", "work"])
        .await;
    assert_eq!(labelled["account"]["id"], "acct_1");
    assert_eq!(labelled["account"]["label"], "work");

    let disabled = daemon.ctl_json(&["accounts", "disable", "work"]).await;
    assert_eq!(disabled["account"]["state"], "disabled");
    let list = daemon.ctl_json(&["accounts"]).await;
    assert_eq!(list["accounts"][1]["state"], "disabled");
    // Persisted: the file says so too.
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(daemon.state_dir().join("accounts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["accounts"][1]["state"], "disabled");
    assert_eq!(file["accounts"][1]["label"], "work");

    // Requests avoid the disabled account.
    for _ in 0..3 {
        assert_eq!(daemon.chat(&user("hi")).await.0, 200);
    }
    let alice = fake.account(0).account_id;
    assert!(
        fake.requests_to(RESPONSES_PATH)
            .iter()
            .all(|r| r.account_id.as_deref() == Some(alice.as_str()))
    );
    daemon.ctl_json(&["accounts", "enable", "acct_1"]).await;

    let refreshed = daemon
        .ctl_json(&["accounts", "refresh", "alice@example.com"])
        .await;
    assert!(
        refreshed["message"].as_str().unwrap().contains("refreshed"),
        "{refreshed}"
    );
    assert!(refreshed["account"]["primary"]["used_percent"].is_number());

    let missing = daemon
        .ctl(&["accounts", "disable", "nobody@example.com"])
        .await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no account matches"), "{missing:?}");
    let json_error = daemon.ctl(&["--json", "accounts", "enable", "nope"]).await;
    let error: Value = serde_json::from_str(&json_error.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "not_found");

    // A label that would name another account is refused.
    let clash = daemon
        .ctl(&["accounts", "label", "acct_0", "bob@example.com"])
        .await;
    assert_eq!(clash.code, 1);
    assert!(clash.stderr.contains("already names"), "{clash:?}");
}

#[tokio::test]
async fn rotation_is_switched_pinned_and_moved_at_runtime() {
    let (fake, daemon) = two_accounts().await;
    let pinned = daemon.ctl_json(&["rotate", "pin", "bob@example.com"]).await;
    assert_eq!(pinned["pinned"], "acct_1");
    assert_eq!(pinned["next"], "acct_1");
    for _ in 0..3 {
        assert_eq!(daemon.chat(&user("pinned")).await.0, 200);
    }
    let bob = fake.account(1).account_id;
    assert!(
        fake.requests_to(RESPONSES_PATH)
            .iter()
            .all(|r| r.account_id.as_deref() == Some(bob.as_str())),
        "the pinned account serves"
    );
    let status = daemon.ctl_json(&["status"]).await;
    assert_eq!(status["pinned"], "acct_1");
    assert_eq!(status["accounts"][1]["pinned"], true);
    daemon.ctl_json(&["rotate", "unpin"]).await;

    let refused = daemon.ctl(&["rotate", "next"]).await;
    assert_eq!(refused.code, 1, "least_used has no position: {refused:?}");
    assert!(refused.stderr.contains("rotate pin"), "{refused:?}");

    let sticky = daemon.ctl_json(&["rotate", "strategy", "sticky"]).await;
    assert_eq!(sticky["strategy"], "sticky");
    assert!(
        sticky["message"]
            .as_str()
            .unwrap()
            .contains("until the daemon restarts")
    );
    assert_eq!(sticky["next"], "acct_0");
    let moved = daemon.ctl_json(&["rotate", "next"]).await;
    assert_eq!(moved["next"], "acct_1");

    let bad = daemon.ctl(&["rotate", "strategy", "random"]).await;
    assert_eq!(bad.code, 2, "a usage error: {bad:?}");
}

#[tokio::test]
async fn usage_counts_per_account_and_model() {
    let (_fake, daemon) = two_accounts().await;
    assert_eq!(daemon.chat(&user("one")).await.0, 200);
    let usage = daemon.ctl_json(&["usage"]).await;
    let total: u64 = usage["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["models"]["gpt-5.5"]["responses"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 1, "{usage}");
    let text = daemon.ctl(&["usage"]).await;
    assert!(text.stdout.contains("gpt-5.5"), "{}", text.stdout);
    assert!(text.stdout.contains("HIT"), "{}", text.stdout);
}

#[tokio::test]
async fn the_generated_key_is_shown_and_rotated() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).generated_key().start();
    let old = daemon.api_key();
    let shown = daemon.ctl(&["key", "show"]).await;
    assert_eq!(shown.stdout, format!("{old}\n"), "only the key on stdout");
    assert_eq!(
        daemon.ctl(&["key"]).await.stdout,
        shown.stdout,
        "show is the default"
    );

    let rotated = daemon.ctl_json(&["key", "rotate"]).await;
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(new.starts_with("codex-proxy-"));
    assert_eq!(daemon.api_key(), new, "kept in state");
    let models = |key: String| {
        let url = daemon.url("/v1/models");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(models(old).await, 401, "the old key stops working at once");
    assert_eq!(models(new).await, 200);
}

#[tokio::test]
async fn configured_keys_are_not_rotated_by_the_cli() {
    let (_fake, daemon) = two_accounts().await;
    let shown = daemon.ctl_json(&["key", "show"]).await;
    assert_eq!(shown["key"], TEST_API_KEY);
    assert_eq!(shown["source"], "configured");
    let refused = daemon.ctl(&["key", "rotate"]).await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("server.api_keys"), "{refused:?}");
}

#[tokio::test]
async fn reload_applies_live_settings_and_names_the_rest() {
    let (_fake, daemon) = two_accounts().await;
    let config = daemon.dir.path().join("config.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{original}\n[model]\ndefault = \"gpt-5.4-mini\"\n\n[auth]\nrotation_strategy = \"round_robin\"\n"
        ),
    )
    .unwrap();
    let report = daemon.ctl_json(&["reload"]).await;
    assert_eq!(
        report["applied"],
        json!(["model", "auth.rotation_strategy"])
    );
    assert_eq!(report["restart_needed"], json!([]));
    assert_eq!(
        daemon.ctl_json(&["status"]).await["strategy"],
        "round_robin"
    );
    // The new default model serves a request that names none.
    let (status, _, body) = daemon
        .chat(&json!({"messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["model"],
        "gpt-5.4-mini"
    );

    // A listen-side change waits for a restart; the running value stays.
    let with_cors = std::fs::read_to_string(&config).unwrap().replace(
        "[server]\n",
        "[server]\ncors_origins = [\"http://localhost:3000\"]\n",
    );
    std::fs::write(&config, with_cors).unwrap();
    let text = daemon.ctl(&["reload"]).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .contains("Needs a restart to take effect: server.cors_origins"),
        "{}",
        text.stdout
    );

    // A broken file changes nothing and says why.
    std::fs::write(&config, "[server]\nport = \"eighty\"\n").unwrap();
    let broken = daemon.ctl(&["reload"]).await;
    assert_eq!(broken.code, 1);
    assert!(broken.stderr.contains("server.port"), "{broken:?}");
    assert_eq!(
        daemon.ctl_json(&["status"]).await["strategy"],
        "round_robin"
    );

    // SIGHUP does the same.
    std::fs::write(&config, &original).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || daemon
            .logs()
            .matches("configuration reloaded")
            .count()
            >= 3)
        .await,
        "{}",
        daemon.logs()
    );
    assert_eq!(daemon.ctl_json(&["status"]).await["strategy"], "least_used");
}

/// Reads `codexctl`'s stdout until a line holding `needle`, returning that line.
async fn line_with(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> String {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("codexctl ended before printing `{needle}`");
    })
    .await;
    found.unwrap_or_else(|_| panic!("no `{needle}` from codexctl within 20 s"))
}

/// Follows the authorize URL as the browser would, up to the redirect to the callback.
async fn authorize(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 303);
    response.headers()["location"].to_str().unwrap().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `codexctl login` with its callback on a free port and plays the browser: follows the
/// authorize URL and lands on the callback. Returns codexctl, its output, and the page shown.
async fn browser_login(
    fake: &FakeUpstream,
    daemon: &Daemon,
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    reqwest::Response,
) {
    let port = free_port();
    fake.allow_redirect_port(port);
    let mut child = daemon
        .ctl_command(&[
            "login",
            "--no-browser",
            "--callback-port",
            &port.to_string(),
        ])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = line_with(&mut lines, "/oauth/authorize?").await;
    let callback = authorize(url.trim()).await;
    assert!(callback.starts_with(&format!("http://localhost:{port}/auth/callback?")));
    let page = reqwest::get(callback.replace("localhost", "127.0.0.1"))
        .await
        .unwrap();
    (child, lines, page)
}

#[tokio::test]
async fn browser_login_through_codexctl_end_to_end() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    fake.set_login_account(2);
    // The browser lands on codexctl's callback; codexctl has the daemon finish the login.
    let (mut child, mut lines, page) = browser_login(&fake, &daemon).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("carol@example.com"));
    let done = line_with(&mut lines, "Signed in").await;
    assert!(
        done.contains("carol@example.com (team): added as acct_1"),
        "{done}"
    );
    assert!(child.wait().await.unwrap().success());
    let accounts = daemon.ctl_json(&["accounts"]).await;
    assert_eq!(accounts["accounts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_browser_login_is_explained() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[]).start();
    fake.deny_next_authorize("access_denied", "missing_codex_entitlement");
    let (child, _lines, page) = browser_login(&fake, &daemon).await;
    assert_eq!(page.status(), 400);
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Codex is not enabled for this workspace")
    );
}

#[tokio::test]
async fn paste_login_reads_the_redirect_url_from_stdin() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[]).start();
    fake.set_login_account(1);
    let mut cmd = daemon.ctl_command(&["login", "--paste"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = line_with(&mut lines, "/oauth/authorize?").await;
    assert!(url.contains("redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback"));
    let callback = authorize(url.trim()).await;
    stdin
        .write_all(format!("{callback}\n").as_bytes())
        .await
        .unwrap();
    let done = line_with(&mut lines, "Signed in").await;
    assert!(done.contains("bob@example.com"), "{done}");
    assert!(child.wait().await.unwrap().success());
}

/// A daemon with no account and `codexctl login --device` running, read up to the code.
async fn device_login() -> (
    FakeUpstream,
    Daemon,
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let fake = FakeUpstream::start().await.unwrap();
    fake.set_device_interval(1);
    let daemon = Daemon::builder().fake(&fake, &[]).start();
    let mut child = daemon.ctl_command(&["login", "--device"]).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    line_with(&mut lines, "enter the code").await;
    (fake, daemon, child, lines)
}

#[tokio::test]
async fn device_login_shows_the_code_and_waits_for_approval() {
    let (fake, _daemon, mut child, mut lines) = device_login().await;
    let _blank = lines.next_line().await.unwrap();
    let code = lines.next_line().await.unwrap().unwrap().trim().to_owned();
    assert!(
        fake.approve_device_code(&code, 0),
        "the fake knows code {code}"
    );
    let done = line_with(&mut lines, "Signed in").await;
    assert!(done.contains("alice@example.com"), "{done}");
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn device_login_cancelled_by_the_client_stops_polling() {
    let (fake, daemon, mut child, _lines) = device_login().await;
    child.kill().await.unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || daemon
            .logs()
            .contains("abandoned by the client"))
        .await,
        "{}",
        daemon.logs()
    );
    // A poll already on the wire when the client left may still land at the fake: count from
    // after it could have (polls are a second apart, so a live loop still shows within 2.5 s).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polls = fake.requests_to("/api/accounts/deviceauth/token").len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        fake.requests_to("/api/accounts/deviceauth/token").len(),
        polls,
        "no polling after the client left"
    );
}

#[tokio::test]
async fn import_and_logout_through_codexctl() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[]).start();
    // The default path: $HOME/.codex/auth.json.
    let codex_home = daemon.dir.path().join("home/.codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("auth.json"),
        fake.issue_tokens(0).auth_json().to_string(),
    )
    .unwrap();
    let imported = daemon.ctl_json(&["login", "--import"]).await;
    assert_eq!(imported["response"], "logged_in");
    assert_eq!(imported["account"]["email"], "alice@example.com");
    assert_eq!(imported["replaced"], false);

    let missing = daemon
        .ctl(&["login", "--import", "/nonexistent/auth.json"])
        .await;
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("cannot read /nonexistent/auth.json"),
        "{missing:?}"
    );
    let garbage = daemon.dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"tokens\": 5}").unwrap();
    let bad = daemon
        .ctl(&["login", "--import", garbage.to_str().unwrap()])
        .await;
    assert_eq!(bad.code, 1, "{bad:?}");

    let out = daemon.ctl(&["logout", "alice@example.com"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Signed out alice@example.com"));
    assert_eq!(fake.requests_to("/oauth/revoke").len(), 1);
    assert!(
        daemon.ctl_json(&["accounts"]).await["accounts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let text = daemon.ctl(&["status"]).await;
    assert!(
        text.stdout
            .contains("No account yet: sign in with `codexctl login`")
    );
}

#[tokio::test]
async fn the_socket_is_private_and_unreachable_daemons_say_so() {
    let (_fake, daemon) = two_accounts().await;
    let mode = std::fs::metadata(daemon.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let absent = daemon
        .ctl(&["--socket", "/nonexistent/control.sock", "status"])
        .await;
    assert_eq!(absent.code, 69, "{absent:?}");
    assert!(
        absent.stderr.contains("Is codex-proxy running?"),
        "{absent:?}"
    );
    let json = daemon
        .ctl(&["--json", "--socket", "/nonexistent/control.sock", "status"])
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&json.stdout).unwrap()["error"]["kind"],
        "unreachable"
    );
}

#[tokio::test]
async fn a_second_daemon_is_refused_and_a_stale_socket_replaced() {
    let fake = FakeUpstream::start().await.unwrap();
    let first = Daemon::builder().fake(&fake, &[0]).start();
    let socket = first.socket();
    let second =
        std::process::Command::new(codex_proxy_tests::harness::workspace_binary("codex-proxy"))
            .env_clear()
            .env("HOME", first.dir.path())
            .env(
                "CODEX_PROXY_STATE_DIR",
                first.dir.path().join("other-state"),
            )
            .env("CODEX_PROXY_SOCKET", &socket)
            .args(["--port", "0", "--allow-root"])
            .output()
            .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already running"),
        "{second:?}"
    );
    // Killed without a chance to clean up: the socket file stays, dead.
    let pid = nix::unistd::Pid::from_raw(first.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = nix::sys::wait::waitpid(pid, None);
    assert!(socket.exists());
    let third = Daemon::builder()
        .fake(&fake, &[0])
        .env("CODEX_PROXY_SOCKET", socket.to_str().unwrap())
        .start();
    let out = third
        .ctl(&["--socket", socket.to_str().unwrap(), "status"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        poll_until(Duration::from_secs(5), || third
            .logs()
            .contains("removing the stale control socket"))
        .await
    );
    drop(first);
}

#[tokio::test]
async fn oversize_frames_and_silent_peers_do_not_hurt_the_daemon() {
    let (_fake, daemon) = two_accounts().await;
    let socket = daemon.socket();
    let oversize = tokio::task::spawn_blocking(move || {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Announces 64 MiB; the daemon refuses from the prefix without reading or allocating.
        stream.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
        let reply: ServerHello = read_frame(&mut stream).unwrap();
        let mut rest = Vec::new();
        let closed = stream.read_to_end(&mut rest).map(|_| true).unwrap_or(false);
        (reply, closed)
    })
    .await
    .unwrap();
    match oversize.0 {
        ServerHello::Refused(e) => assert!(e.message.contains("exceeds"), "{e:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(oversize.1, "the connection is closed");

    // Silent peers hold connections open; others are still served meanwhile.
    let silent: Vec<UnixStream> = (0..8)
        .map(|_| UnixStream::connect(daemon.socket()).unwrap())
        .collect();
    let out = daemon.ctl(&["status"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    // And they are dropped after the handshake timeout.
    let mut first = silent.into_iter().next().unwrap();
    let closed = tokio::task::spawn_blocking(move || {
        first
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut buf = [0u8; 1];
        matches!(first.read(&mut buf), Ok(0))
    })
    .await
    .unwrap();
    assert!(
        closed,
        "a silent peer is disconnected after the handshake timeout"
    );
    assert!(
        poll_until(Duration::from_secs(5), || daemon
            .logs()
            .contains("no handshake within"))
        .await
    );
}

#[tokio::test]
async fn protocol_versions_are_checked_both_ways() {
    let (_fake, daemon) = two_accounts().await;
    let socket = daemon.socket();
    let reply = tokio::task::spawn_blocking(move || {
        let mut stream = UnixStream::connect(&socket).unwrap();
        write_frame(
            &mut stream,
            &Hello {
                protocol: ProtocolVersion { major: 9, minor: 0 },
                client: "from the future".into(),
            },
        )
        .unwrap();
        read_frame::<ServerHello>(&mut stream).unwrap()
    })
    .await
    .unwrap();
    match reply {
        ServerHello::Refused(e) => {
            assert!(e.message.contains("install matching versions"), "{e:?}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A daemon of another major version: codexctl says so and fails.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let _hello: Hello = read_frame(&mut stream).unwrap();
        write_frame(
            &mut stream,
            &json!({"type": "welcome", "protocol": {"major": 2, "minor": 0}, "daemon_version": "2.0.0"}),
        )
        .unwrap();
    });
    let out = daemon
        .ctl(&["--socket", path.to_str().unwrap(), "status"])
        .await;
    server.join().unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("speaks control protocol 2.0"),
        "{out:?}"
    );
}

/// Runs codexctl as `nobody`; only possible when the tests run as root (as in CI).
async fn ctl_as_nobody(
    daemon: &Daemon,
    socket: &std::path::Path,
) -> Option<codex_proxy_tests::harness::CtlOutput> {
    if !nix::unistd::Uid::effective().is_root() {
        println!("not root: cannot run a client as another user; skipped");
        return None;
    }
    let mut cmd = daemon.ctl_command(&["--socket", socket.to_str().unwrap(), "status"]);
    cmd.uid(65534).gid(65534);
    let output = cmd.output().await.unwrap();
    Some(codex_proxy_tests::harness::CtlOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[tokio::test]
async fn another_user_is_refused_by_mode_and_by_peer_check() {
    let (_fake, daemon) = two_accounts().await;
    // The binary must be reachable for nobody; the socket is not (0600 in a 0700 dir).
    let Some(by_mode) = ctl_as_nobody(&daemon, &daemon.socket()).await else {
        return;
    };
    assert_eq!(by_mode.code, 77, "{by_mode:?}");
    assert!(by_mode.stderr.contains("not allowed"), "{by_mode:?}");

    // Even with the socket opened to everyone by mistake, the peer check refuses.
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(daemon.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let by_peer = ctl_as_nobody(&daemon, &daemon.socket()).await.unwrap();
    assert_eq!(by_peer.code, 77, "{by_peer:?}");
    assert!(by_peer.stderr.contains("uid 65534"), "{by_peer:?}");
    assert!(
        poll_until(Duration::from_secs(5), || daemon
            .logs()
            .contains("refused a peer"))
        .await,
        "{}",
        daemon.logs()
    );
}

#[tokio::test]
async fn a_control_group_member_is_let_in() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("not root: skipped");
        return;
    }
    // nogroup (65534) is nobody's primary group on Debian.
    let Ok(Some(group)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534)) else {
        println!("no group 65534 here; skipped");
        return;
    };
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .config(&format!("[service]\ncontrol_group = \"{}\"", group.name))
        .start();
    let meta = std::fs::metadata(daemon.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 65534);
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let out = ctl_as_nobody(&daemon, &daemon.socket()).await.unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("alice@example.com"));
}

#[tokio::test]
async fn watch_streams_reports_until_the_client_leaves() {
    let (_fake, daemon) = two_accounts().await;
    let mut child = daemon
        .ctl_command(&["--json", "status", "--watch", "--interval", "1"])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let report: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(report["response"], "status");
    }
    child.kill().await.unwrap();
    // The daemon notices and keeps serving.
    assert_eq!(daemon.ctl(&["status"]).await.code, 0);
}

#[tokio::test]
async fn help_completions_and_usage_errors() {
    let (_fake, daemon) = two_accounts().await;
    let help = daemon.ctl(&["--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("CODEX_PROXY_SOCKET"));
    assert!(help.stdout.contains("69 daemon not reachable"));
    for shell in ["bash", "zsh", "fish"] {
        let out = daemon.ctl(&["completions", shell]).await;
        assert_eq!(out.code, 0);
        assert!(
            out.stdout.contains("codexctl") && out.stdout.contains("rotate"),
            "{shell}"
        );
    }
    let usage = daemon.ctl(&["accounts", "label"]).await;
    assert_eq!(usage.code, 2);
    let none = daemon.ctl(&[]).await;
    assert_eq!(none.code, 2);
}

#[tokio::test]
async fn failover_still_works_when_a_pinned_account_is_limited() {
    let (fake, daemon) = two_accounts().await;
    daemon.ctl_json(&["rotate", "pin", "acct_0"]).await;
    fake.enqueue(Script::usage_limit(3600));
    let (status, _, body) = daemon.chat(&user("hi")).await;
    assert_eq!(
        status, 200,
        "a pin never turns a servable request into an error: {body}"
    );
    let status = daemon.ctl_json(&["status"]).await;
    assert_eq!(status["accounts"][0]["state"], "cooling_down");
}

#[tokio::test]
async fn one_user_cannot_hold_every_control_connection() {
    let (_fake, daemon) = two_accounts().await;
    let socket = daemon.socket();
    // Sixteen connections of this user, past the handshake and idle.
    let held = tokio::task::spawn_blocking(move || {
        (0..codex_proxy::control::MAX_PER_USER)
            .map(|_| {
                let mut stream = UnixStream::connect(&socket).unwrap();
                write_frame(
                    &mut stream,
                    &Hello {
                        protocol: codex_proxy_proto::PROTOCOL,
                        client: "holder".into(),
                    },
                )
                .unwrap();
                let welcome: ServerHello = read_frame(&mut stream).unwrap();
                assert!(matches!(welcome, ServerHello::Welcome(_)), "{welcome:?}");
                stream
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let out = daemon.ctl(&["status"]).await;
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stderr.contains("busy") && out.stderr.contains("control connections open"),
        "{out:?}"
    );
    let out = daemon.ctl(&["--json", "status"]).await;
    assert_eq!(out.code, 69, "{out:?}");
    drop(held);
    assert!(
        poll_until(Duration::from_secs(10), || {
            std::process::Command::new(codex_proxy_tests::harness::workspace_binary("codexctl"))
                .env_clear()
                .env("CODEX_PROXY_SOCKET", daemon.socket())
                .arg("status")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .await,
        "served again once the connections closed"
    );
}
