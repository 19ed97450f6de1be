//! The real `codex-proxy` binary: starts on defaults, serves /health, validates its config,
//! layers env over file, stops gracefully.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use codex_proxy_tests::harness::{Daemon, workspace_binary};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Runs `codex-proxy --check-config` with exactly this environment.
fn check_config(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(workspace_binary("codex-proxy"))
        .env_clear()
        .env("HOME", home.path())
        .env("CODEX_PROXY_STATE_DIR", home.path().join("state"))
        .envs(env.iter().copied())
        .arg("--check-config")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn starts_with_no_config_file_and_answers_health() {
    let mut daemon = Daemon::builder().without_config_file().start();
    let response = reqwest::get(daemon.url("/health")).await.unwrap();
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime_seconds"].is_u64());
    assert!(
        daemon.logs().contains("config=built-in defaults"),
        "{}",
        daemon.logs()
    );

    // The state directory exists and is private.
    let mode = std::fs::metadata(daemon.state_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    let status = daemon.stop_with(Signal::SIGTERM, Duration::from_secs(10));
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    assert!(daemon.logs().contains("SIGTERM received"));
}

#[tokio::test]
async fn sigint_also_stops_cleanly() {
    let mut daemon = Daemon::builder().start();
    assert_eq!(
        reqwest::get(daemon.url("/health")).await.unwrap().status(),
        200
    );
    assert!(
        daemon
            .stop_with(Signal::SIGINT, Duration::from_secs(10))
            .success()
    );
}

#[tokio::test]
async fn unknown_routes_get_openai_shaped_errors() {
    let daemon = Daemon::builder().start();
    let response = reqwest::get(daemon.url("/v1/nothing")).await.unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "not_found");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nothing")
    );
    assert!(error["error"].as_object().unwrap().contains_key("param"));

    let response = reqwest::Client::new()
        .post(daemon.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn tightens_an_existing_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = Daemon::builder()
        .env("CODEX_PROXY_STATE_DIR", state.to_str().unwrap())
        .start();
    assert_eq!(
        reqwest::get(daemon.url("/health")).await.unwrap().status(),
        200
    );
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(daemon.logs().contains("was open to other users"));
}

#[test]
fn a_bad_config_fails_fast_naming_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let path = file.to_str().unwrap();

    std::fs::write(&file, "[server]\nport = \"eighty\"\n").unwrap();
    let (code, _, stderr) = check_config(&["--config", path], &[]);
    assert_eq!(code, 78, "EX_CONFIG");
    assert!(
        stderr.contains(path) && stderr.contains("server.port") && stderr.contains("line 2"),
        "{stderr}"
    );

    std::fs::write(
        &file,
        "[upstream]\nbase_url = \"https://chatgpt.com/backend-api\"\ncompres_requests = true\n",
    )
    .unwrap();
    let (code, _, stderr) = check_config(&["--config", path], &[]);
    assert_eq!(code, 78);
    assert!(
        stderr.contains("upstream.compres_requests") && stderr.contains("unknown field"),
        "{stderr}"
    );

    std::fs::write(&file, "[auth]\nqueue_timeout_seconds = 0\n").unwrap();
    let (code, _, stderr) = check_config(&["--config", path], &[]);
    assert_eq!(code, 78);
    assert!(
        stderr.contains("auth.queue_timeout_seconds") && stderr.contains("out of range"),
        "{stderr}"
    );

    let (code, _, stderr) = check_config(&["--config", "/nonexistent/x.toml"], &[]);
    assert_eq!(code, 78);
    assert!(stderr.contains("does not exist"), "{stderr}");

    // The daemon itself refuses to start on the same file, with the same message.
    std::fs::write(&file, "[log]\nlevel = \"verbose\"\n").unwrap();
    let output = Command::new(workspace_binary("codex-proxy"))
        .env_clear()
        .env("HOME", dir.path())
        .args(["--config", path])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("log.level"));
}

#[test]
fn layers_defaults_file_environment_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[server]\nport = 1111\nhost = \"127.0.0.1\"\n").unwrap();
    let path = file.to_str().unwrap();

    let (code, stdout, _) = check_config(&["--config", path], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("listen:      127.0.0.1:1111"), "{stdout}");
    assert!(stdout.contains(path));

    let (_, stdout, _) = check_config(
        &["--config", path],
        &[("PORT", "2222"), ("CODEX_PROXY_HOST", "::1")],
    );
    assert!(stdout.contains("listen:      ::1:2222"), "{stdout}");

    let (_, stdout, _) = check_config(&["--config", path, "--port", "3333"], &[("PORT", "2222")]);
    assert!(stdout.contains(":3333"), "{stdout}");

    // $CODEX_PROXY_CONFIG finds the file; a bad env value names the variable.
    let (code, stdout, _) = check_config(&[], &[("CODEX_PROXY_CONFIG", path)]);
    assert_eq!(code, 0);
    assert!(stdout.contains(":1111"));
    let (code, _, stderr) = check_config(&[], &[("PORT", "99999")]);
    assert_eq!(code, 78);
    assert!(stderr.contains("environment variable PORT"), "{stderr}");
}

#[test]
fn shipped_config_file_validates() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/codex-proxy.toml");
    let (code, stdout, stderr) = check_config(&["--config", shipped], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("configuration OK"));
}

#[test]
fn version_and_help_mention_the_environment() {
    let output = Command::new(workspace_binary("codex-proxy"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
    let help = Command::new(workspace_binary("codex-proxy"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "CODEX_PROXY_CONFIG",
        "PORT",
        "CODEX_PROXY_STATE_DIR",
        "RUST_LOG",
        "CODEX_PLATFORM",
    ] {
        assert!(help.contains(var), "--help lists {var}");
    }
    let ctl = Command::new(workspace_binary("codexctl"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(ctl.status.success());
    assert!(
        String::from_utf8_lossy(&ctl.stdout)
            .starts_with(&format!("codexctl {}", env!("CARGO_PKG_VERSION")))
    );
}

#[tokio::test]
async fn json_logs_on_request() {
    let daemon = Daemon::builder()
        .config("[log]\nformat = \"json\"\n")
        .env("CODEX_PROXY_LOG_FORMAT", "json")
        .start();
    assert_eq!(
        reqwest::get(daemon.url("/health")).await.unwrap().status(),
        200
    );
    let line = daemon
        .logs()
        .lines()
        .find(|l| l.contains("listening on"))
        .unwrap()
        .to_owned();
    let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(parsed["level"], "INFO");
}

#[tokio::test]
async fn verbosity_comes_from_v_then_rust_log_then_config() {
    let debug_line = "resolved paths";
    let quiet = Daemon::builder().start();
    assert_eq!(
        reqwest::get(quiet.url("/health")).await.unwrap().status(),
        200
    );
    assert!(!quiet.logs().contains(debug_line), "info by default");

    let verbose = Daemon::builder().arg("-v").start();
    assert!(verbose.logs().contains(debug_line), "-v enables debug");

    let rust_log = Daemon::builder()
        .env("RUST_LOG", "info,codex_proxy=debug")
        .start();
    assert!(rust_log.logs().contains(debug_line), "RUST_LOG is honoured");

    let env_level = Daemon::builder()
        .env("CODEX_PROXY_LOG", "info,codex_proxy=debug")
        .start();
    assert!(
        env_level.logs().contains(debug_line),
        "CODEX_PROXY_LOG is honoured"
    );

    let file_level = Daemon::builder()
        .config("[log]\nlevel = \"info,codex_proxy=debug\"\n")
        .start();
    assert!(
        file_level.logs().contains(debug_line),
        "log.level is honoured"
    );

    // RUST_LOG replaces the config level, and -v wins over RUST_LOG.
    let overridden = Daemon::builder()
        .config("[log]\nlevel = \"info,codex_proxy=debug\"\n")
        .env("RUST_LOG", "info")
        .start();
    assert!(!overridden.logs().contains(debug_line));
    let flag_wins = Daemon::builder().env("RUST_LOG", "info").arg("-v").start();
    assert!(flag_wins.logs().contains(debug_line));
}
