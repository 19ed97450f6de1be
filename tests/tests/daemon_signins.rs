//! Sign-ins survive what ordinarily happens to a daemon: clients that hang up during a token
//! refresh, a stop (`systemctl restart`, package upgrades) in the middle of one, a disk that
//! refuses writes for a while. Refresh tokens rotate, so a new one that never reaches disk is a
//! lost account; each test checks with the fake auth server that the saved token is the live one.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use codex_proxy_tests::fake::{FakeUpstream, RefreshState, Reply, Script};
use codex_proxy_tests::harness::{Daemon, poll_until};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn user(text: &str) -> Value {
    json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": text}]})
}

fn stored(state_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state_dir.join("accounts.json")).unwrap())
        .unwrap()
}

fn stored_refresh_token(state_dir: &Path) -> String {
    stored(state_dir)["accounts"][0]["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Whether the refresh token on disk is the one the auth server will still accept.
fn saved_token_is_live(fake: &FakeUpstream, state_dir: &Path) -> bool {
    fake.refresh_token_state(&stored_refresh_token(state_dir)) == Some(RefreshState::Active)
}

/// A daemon whose account's access token expires within the refresh margin, so the token
/// scheduler refreshes it as soon as it starts.
fn expiring(fake: &FakeUpstream, state: &Path) -> Daemon {
    fake.set_access_token_ttl(Duration::from_secs(60));
    let builder = Daemon::builder().state_dir(state).fake(fake, &[0]);
    fake.set_access_token_ttl(Duration::from_secs(3600));
    builder.start()
}

/// Makes the daemon's writes of `accounts.json` fail until dropped: a directory where its temp
/// file goes, which nobody (root included) can open as a file.
struct FailingWrites(PathBuf);

impl FailingWrites {
    fn new(daemon: &Daemon) -> Self {
        let blocker = daemon
            .state_dir()
            .join(format!(".accounts.json.tmp-{}", daemon.pid()));
        std::fs::create_dir(&blocker).unwrap();
        Self(blocker)
    }
}

impl Drop for FailingWrites {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

async fn health(daemon: &Daemon) -> Value {
    reqwest::get(daemon.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `/health` once `until` holds of it, or as it is after 10 s.
async fn health_when(daemon: &Daemon, until: impl Fn(&Value) -> bool) -> Value {
    let mut seen = health(daemon).await;
    for _ in 0..200 {
        if until(&seen) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = health(daemon).await;
    }
    seen
}

#[tokio::test]
async fn a_client_that_hangs_up_during_a_refresh_never_loses_the_sign_in() {
    let rounds = 3;
    let mut kept = 0;
    for round in 0..rounds {
        let fake = FakeUpstream::start().await.unwrap();
        let daemon = Daemon::builder().fake(&fake, &[0]).start();
        let before = stored_refresh_token(&daemon.state_dir());
        // The backend refuses the token, so the request itself refreshes; the auth server takes
        // a second to answer, and the client gives up after 0.4 s.
        fake.set_token_delay(Duration::from_secs(1));
        fake.enqueue(Script::new(Reply::TokenExpired));
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(400))
            .build()
            .unwrap();
        let sent = impatient
            .post(daemon.url("/v1/chat/completions"))
            .bearer_auth(daemon.api_key())
            .json(&user("hello"))
            .send()
            .await;
        assert!(
            sent.is_err(),
            "round {round}: the client was meant to time out"
        );

        let state = daemon.state_dir();
        let saved = poll_until(Duration::from_secs(15), || {
            fake.refresh_token_state(&before) == Some(RefreshState::Rotated)
                && saved_token_is_live(&fake, &state)
        })
        .await;
        assert!(
            saved,
            "round {round}: the refresh the client abandoned was not saved; logs:\n{}",
            daemon.logs()
        );
        fake.set_token_delay(Duration::ZERO);
        let (status, _, text) = daemon.chat(&user("again")).await;
        assert_eq!(status, 200, "round {round}: {text}");
        kept += 1;
    }
    println!("sign-ins kept after a client hung up mid-refresh: {kept}/{rounds}");
}

// Multi-threaded: `stop_with` blocks this thread while the fake must go on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_refresh_waits_for_it_and_the_restart_is_signed_in() {
    let rounds = 5;
    let mut kept = 0;
    for round in 0..rounds {
        let fake = FakeUpstream::start().await.unwrap();
        fake.set_token_delay(Duration::from_millis(800));
        let state = tempfile::tempdir().unwrap();
        let mut daemon = expiring(&fake, state.path());
        // SIGTERM while the auth server holds the exchange.
        assert!(
            poll_until(Duration::from_secs(10), || fake.refresh_requests() == 1).await,
            "round {round}: no refresh started"
        );
        let status = daemon.stop_with(Signal::SIGTERM, Duration::from_secs(60));
        assert!(status.success(), "round {round}: {status:?}");
        assert!(
            daemon.logs().contains("token refreshed"),
            "round {round}: {}",
            daemon.logs()
        );
        assert!(
            saved_token_is_live(&fake, state.path()),
            "round {round}: the stop lost the refreshed token; logs:\n{}",
            daemon.logs()
        );
        assert!(
            stored(state.path())["accounts"][0]
                .get("refresh_started_at")
                .is_none(),
            "round {round}: a finished refresh leaves no mark"
        );

        fake.set_token_delay(Duration::ZERO);
        let again = Daemon::builder()
            .state_dir(state.path())
            .fake(&fake, &[])
            .start();
        let (status, _, text) = again.chat(&user("after the restart")).await;
        assert_eq!(status, 200, "round {round}: {text}");
        kept += 1;
    }
    println!("sign-ins kept across a stop in the middle of a refresh: {kept}/{rounds}");
}

#[tokio::test]
async fn a_failed_save_is_retried_until_it_sticks_and_reported_meanwhile() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.set_token_delay(Duration::from_millis(800));
    let state = tempfile::tempdir().unwrap();
    let daemon = expiring(&fake, state.path());
    let before = stored_refresh_token(state.path());
    // The disk fails after the exchange began: the new token cannot be saved.
    assert!(poll_until(Duration::from_secs(10), || fake.refresh_requests() == 1).await);
    let failing = FailingWrites::new(&daemon);
    assert!(
        poll_until(Duration::from_secs(10), || {
            fake.refresh_token_state(&before) == Some(RefreshState::Rotated)
        })
        .await
    );

    // Both problems: the tokens are in memory from the exchange on, the failed save is known
    // a moment later (the window between the two is not a state to assert on).
    let degraded = health_when(&daemon, |h| {
        let problems = h["problems"].to_string();
        h["status"] == "degraded"
            && problems.contains("memory")
            && problems.contains("cannot save the state")
    })
    .await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert!(
        degraded["problems"][0]
            .as_str()
            .unwrap()
            .contains("cannot save the state"),
        "{degraded}"
    );
    let status = daemon.ctl_json(&["status"]).await;
    assert_eq!(status["unsaved_tokens"], json!(["acct_0"]), "{status}");
    assert!(status["save_failure"]["attempts"].as_u64().unwrap() >= 1);
    let text = daemon.ctl(&["status"]).await.stdout;
    assert!(text.contains("only in memory"), "{text}");
    assert!(daemon.logs().contains("exist only in memory"));
    // The new tokens serve meanwhile.
    let (code, _, body) = daemon.chat(&user("meanwhile")).await;
    assert_eq!(code, 200, "{body}");
    assert!(!saved_token_is_live(&fake, state.path()));

    // The disk comes back: the scheduler's next attempt saves, unasked.
    drop(failing);
    assert!(
        poll_until(Duration::from_secs(20), || saved_token_is_live(
            &fake,
            state.path()
        ))
        .await,
        "not saved after the disk came back; logs:\n{}",
        daemon.logs()
    );
    let healthy = health_when(&daemon, |h| h["status"] == "ok").await;
    assert_eq!(healthy["status"], "ok", "{healthy}");
    assert!(healthy.get("problems").is_none());
    assert!(daemon.logs().contains("accounts saved again"));
}

#[tokio::test]
async fn no_refresh_starts_while_its_mark_cannot_be_saved() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    let before = stored_refresh_token(&daemon.state_dir());
    let failing = FailingWrites::new(&daemon);
    let out = daemon.ctl(&["accounts", "refresh", "acct_0"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot be saved") && out.stderr.contains("stays valid"),
        "{out:?}"
    );
    assert_eq!(fake.refresh_requests(), 0, "the token was not put at risk");
    assert_eq!(
        fake.refresh_token_state(&before),
        Some(RefreshState::Active)
    );

    drop(failing);
    // The failed attempt holds the next one back for a few seconds.
    let mut out = daemon.ctl(&["accounts", "refresh", "acct_0"]).await;
    for _ in 0..40 {
        if out.code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        out = daemon.ctl(&["accounts", "refresh", "acct_0"]).await;
    }
    assert_eq!(out.code, 0, "{out:?}");
    assert!(saved_token_is_live(&fake, &daemon.state_dir()));
}

#[tokio::test]
async fn quota_and_status_never_rotate_a_token_far_from_expiry() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0, 1]).start();
    for _ in 0..3 {
        daemon.get_json("/auth/accounts?refresh=true").await;
        daemon.ctl_json(&["status"]).await;
        daemon.ctl_json(&["accounts", "list"]).await;
    }
    let (status, _, _) = daemon.chat(&user("x")).await;
    assert_eq!(status, 200);
    assert_eq!(fake.refresh_requests(), 0);
    // Quota just learned is not fetched again for every `?refresh=true`.
    daemon.get_json("/auth/accounts?refresh=true").await;
    let usage_calls = fake.requests_to(codex_proxy_tests::fake::USAGE_PATH).len();
    for _ in 0..5 {
        daemon.get_json("/auth/accounts?refresh=true").await;
    }
    assert_eq!(
        fake.requests_to(codex_proxy_tests::fake::USAGE_PATH).len(),
        usage_calls,
        "fresh quota was fetched again"
    );
    // Asked for by name, a refresh happens: the person wants exactly that.
    daemon.ctl_json(&["accounts", "refresh", "acct_1"]).await;
    assert_eq!(fake.refresh_requests(), 1);
}

#[tokio::test]
async fn a_new_sign_in_shows_its_quota_at_once() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.set_usage(0, 42.0, 7.0);
    let daemon = Daemon::builder().fake(&fake, &[]).start();
    let auth = daemon.dir.path().join("auth.json");
    std::fs::write(&auth, fake.issue_tokens(0).auth_json().to_string()).unwrap();
    let imported = daemon
        .ctl_json(&["login", "--import", auth.to_str().unwrap()])
        .await;
    assert_eq!(imported["account"]["primary"]["used_percent"], 42.0);
    let status = daemon.ctl_json(&["status"]).await;
    assert_eq!(
        status["accounts"][0]["primary"]["used_percent"], 42.0,
        "{status}"
    );
    assert_eq!(status["accounts"][0]["secondary"]["used_percent"], 7.0);
}

/// A small tmpfs, unmounted when dropped; `None` where this user may not mount.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Fills what is left, returning the filler's path.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut file, &block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
async fn a_disk_that_fills_up_during_a_refresh_loses_nothing() {
    let Some(disk) = SmallDisk::mount("1m") else {
        println!("skipped: this user cannot mount a tmpfs (the directory test covers the logic)");
        return;
    };
    let fake = FakeUpstream::start().await.unwrap();
    fake.set_token_delay(Duration::from_millis(800));
    let state = disk.path().join("state");
    let daemon = expiring(&fake, &state);
    let before = stored_refresh_token(&state);
    assert!(poll_until(Duration::from_secs(10), || fake.refresh_requests() == 1).await);
    let filler = disk.fill();
    assert!(
        poll_until(Duration::from_secs(10), || {
            fake.refresh_token_state(&before) == Some(RefreshState::Rotated)
        })
        .await
    );
    let seen = health_when(&daemon, |h| {
        h["problems"].to_string().contains("No space left")
    })
    .await;
    assert_eq!(seen["status"], "degraded", "{seen}");
    assert!(
        seen["problems"].to_string().contains("No space left"),
        "{seen}"
    );
    assert!(!saved_token_is_live(&fake, &state));
    // Space comes back; the scheduler's retry saves the new token, unasked.
    std::fs::remove_file(filler).unwrap();
    assert!(
        poll_until(Duration::from_secs(20), || saved_token_is_live(
            &fake, &state
        ))
        .await,
        "not saved once space came back; logs:\n{}",
        daemon.logs()
    );
    drop(daemon);
}
