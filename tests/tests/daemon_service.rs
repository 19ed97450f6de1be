//! The daemon as a system service: privilege drop, systemd notifications, signals and drain,
//! `--daemonize`. Tests that need root (CI runs as root) say so and skip otherwise.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use codex_proxy_tests::fake::{FakeUpstream, Script};
use codex_proxy_tests::harness::{Daemon, NO_ALLOW_ROOT, poll_until, workspace_binary};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// A line of `/proc/PID/status`, e.g. `Uid:`.
fn proc_status(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
        .unwrap_or_default()
}

#[test]
fn root_without_a_service_user_is_refused() {
    if !is_root() {
        println!("not root: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(workspace_binary("codex-proxy"))
        .env_clear()
        .env("HOME", dir.path())
        .env("CODEX_PROXY_STATE_DIR", dir.path().join("state"))
        .env("CODEX_PROXY_SOCKET", dir.path().join("control.sock"))
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("without [service] user") && stderr.contains("--allow-root"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("control.sock").exists(),
        "refused before binding anything"
    );
}

#[tokio::test]
async fn root_drops_to_the_service_user_after_binding() {
    if !is_root() {
        println!("not root: skipped");
        return;
    }
    let fake = FakeUpstream::start().await.unwrap();
    // The service user must be able to reach its state directory.
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let state = base.path().join("state");
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .state_dir(&state)
        .config("[service]\nuser = \"nobody\"")
        .arg(NO_ALLOW_ROOT)
        .start();
    let pid = daemon.pid();
    let uid = proc_status(pid, "Uid:");
    let gid = proc_status(pid, "Gid:");
    let groups = proc_status(pid, "Groups:");
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        ["65534"; 4],
        "real, effective, saved, fs"
    );
    assert_eq!(gid.split_whitespace().collect::<Vec<_>>(), ["65534"; 4]);
    assert!(
        !groups.split_whitespace().any(|g| g == "0"),
        "none of root's groups: {groups}"
    );
    assert!(daemon.logs().contains("dropped root privileges"));

    // Still serving, as that user, with its files.
    let (status, _, body) = daemon
        .chat(&json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), 65534);
    assert_eq!(
        std::fs::metadata(state.join("accounts.json"))
            .unwrap()
            .uid(),
        65534
    );
    assert_eq!(std::fs::metadata(daemon.socket()).unwrap().uid(), 65534);
    let out = daemon.ctl(&["status"]).await;
    assert_eq!(out.code, 0, "root may use the socket: {out:?}");
    // Written after the drop: the generated files belong to the service user too.
    let out = daemon
        .ctl(&["accounts", "label", "acct_0", "dropped"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::metadata(state.join("accounts.json"))
            .unwrap()
            .uid(),
        65534
    );
}

#[tokio::test]
async fn an_unknown_service_user_is_a_clear_error() {
    if !is_root() {
        println!("not root: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[service]\nuser = \"no-such-user-xyz\"\n").unwrap();
    let output = std::process::Command::new(workspace_binary("codex-proxy"))
        .env_clear()
        .env("HOME", dir.path())
        .env("CODEX_PROXY_STATE_DIR", dir.path().join("state"))
        .env("CODEX_PROXY_SOCKET", dir.path().join("control.sock"))
        .args(["--port", "0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no user named `no-such-user-xyz`"));
}

/// Collects what the daemon sends to NOTIFY_SOCKET, in order.
struct Notifications {
    socket: UnixDatagram,
    seen: Vec<String>,
    /// Messages before this one have been matched already.
    cursor: usize,
}

impl Notifications {
    fn bind(path: &std::path::Path) -> Self {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Self {
            socket,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// The next datagram (after the last one matched) holding `needle`, waiting up to 10 s.
    fn next_with(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 4096];
        loop {
            if let Some(i) = (self.cursor..self.seen.len()).find(|&i| self.seen[i].contains(needle))
            {
                self.cursor = i + 1;
                return self.seen[i].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` from the daemon; saw {:?}",
                self.seen
            );
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_status_watchdog_reloading_and_stopping() {
    let fake = FakeUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let mut notes = Notifications::bind(&path);
    let mut daemon = Daemon::builder()
        .fake(&fake, &[0, 1])
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .env("WATCHDOG_USEC", "400000")
        .start();
    let ready = notes.next_with("READY=1");
    assert!(
        ready.contains("STATUS=2 accounts ready; 0 streams"),
        "{ready}"
    );
    let ping = notes.next_with("WATCHDOG=1");
    assert!(ping.contains("STATUS="), "{ping}");
    kill(Pid::from_raw(daemon.pid() as i32), Signal::SIGHUP).unwrap();
    let reloading = notes.next_with("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    notes.next_with("READY=1");
    let status = tokio::task::spawn_blocking(move || {
        daemon.stop_with(Signal::SIGTERM, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(status.success());
    notes.next_with("STOPPING=1");
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish_then_exits_0() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    let words: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    fake.enqueue(Script::deltas(words).paced(50));
    let body = json!({"model": "gpt-5.5", "stream": true, "messages": [{"role": "user", "content": "go"}]});
    let mut stream = daemon.stream_until(&body, "w0").await;
    // Stop while the stream is open: new connections are refused, this one runs to its end.
    kill(Pid::from_raw(daemon.pid() as i32), Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    while let Some(chunk) = stream.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(rest.contains("w19"), "every delta arrived: {rest}");
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    let pid = daemon.pid();
    assert!(
        poll_until(Duration::from_secs(10), || !std::path::Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()
            || proc_status(pid, "State:").starts_with('Z'))
        .await,
        "the daemon exits after the stream"
    );
    let mut daemon = daemon;
    let status = daemon.stop_with(Signal::SIGTERM, Duration::from_secs(5));
    assert!(status.success(), "exit 0: {status:?}");
    assert!(daemon.logs().contains("SIGTERM received"));
}

#[tokio::test]
async fn daemonize_writes_a_pid_file_refuses_a_second_start_and_stops_by_pid() {
    let fake = FakeUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[server]\napi_keys = [\"daemon-key-123\"]\n",
            fake.config_toml()
        ),
    )
    .unwrap();
    let pid_file = dir.path().join("run/codex-proxy.pid");
    let log_file = dir.path().join("daemon.log");
    let start = || {
        let mut cmd = std::process::Command::new(workspace_binary("codex-proxy"));
        cmd.env_clear()
            .env("HOME", dir.path())
            .env("CODEX_PROXY_STATE_DIR", dir.path().join("state"))
            .env("CODEX_PROXY_SOCKET", dir.path().join("run/control.sock"))
            .arg("--config")
            .arg(&config)
            .args(["--port", "0", "--daemonize", "--pid-file"])
            .arg(&pid_file)
            .arg("--log-file")
            .arg(&log_file);
        if is_root() {
            cmd.arg("--allow-root");
        }
        cmd.output().unwrap()
    };
    let first = start();
    assert!(first.status.success(), "{first:?}");
    let said = String::from_utf8_lossy(&first.stdout).into_owned();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(said.contains(&format!("running as pid {pid}")), "{said}");
    // Detached: its own session, not the test's.
    let sid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = sid.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "session leader (sid == pid)");
    // Serving: its log names the port.
    let log = std::fs::read_to_string(&log_file).unwrap();
    let addr = log
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let health: Value = reqwest::get(format!("http://{addr}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let second = start();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains(&format!("already running as pid {pid}")),
        "{second:?}"
    );

    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || !pid_file.exists()).await,
        "the pid file goes when the daemon stops"
    );
    assert!(
        poll_until(
            Duration::from_secs(10),
            || codex_proxy::service::daemonize::live_pid(&pid_file).is_none()
                && (!std::path::Path::new(&format!("/proc/{pid}")).exists()
                    || proc_status(pid as u32, "State:").starts_with('Z'))
        )
        .await
    );
    assert!(
        std::fs::read_to_string(&log_file)
            .unwrap()
            .contains("stopped")
    );
}
