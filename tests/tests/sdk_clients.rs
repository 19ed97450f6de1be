//! The official OpenAI SDKs (Python and Node) against the real daemon and the strict fake.
//! `bash tests/sdk/install.sh` installs them (the README's test command runs it).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH};
use codex_proxy_tests::harness::Daemon;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs an SDK suite against a fresh fake and daemon; fails with the suite's output.
async fn run_suite(program: &Path, args: &[&str], cwd: &Path) {
    assert!(
        program.exists() || program.components().count() == 1,
        "{} is missing: run `bash tests/sdk/install.sh`",
        program.display()
    );
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0, 1]).start();
    // tokio's Command, so the in-process fake keeps serving while the suite runs.
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("CODEX_PROXY_BASE_URL", daemon.url("/v1"))
        .env("CODEX_PROXY_API_KEY", daemon.api_key())
        .env("FAKE_ADMIN_URL", format!("{}/__fake", fake.auth_url()))
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (run `bash tests/sdk/install.sh`)",
                program.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed:\n{stdout}\n{stderr}\n--- daemon log ---\n{}",
        program.display(),
        daemon.logs()
    );
    // Every request the SDKs made passed the strict fake.
    let rejected: Vec<String> = fake
        .requests_to(RESPONSES_PATH)
        .into_iter()
        .filter(|r| r.rejection.is_some() && r.status != 429 && r.status != 503)
        .map(|r| r.rejection.unwrap_or_default())
        .collect();
    assert!(rejected.is_empty(), "the fake rejected: {rejected:?}");
    println!("{stdout}");
}

#[tokio::test]
async fn official_python_sdk() {
    let python = repo_root().join("target/sdk/venv/bin/python");
    let suite = repo_root().join("tests/sdk/python");
    run_suite(
        &python,
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            suite.to_str().unwrap(),
        ],
        &suite,
    )
    .await;
}

#[tokio::test]
async fn official_node_sdk() {
    let dir = repo_root().join("tests/sdk/node");
    assert!(
        dir.join("node_modules/openai").is_dir(),
        "run `bash tests/sdk/install.sh`"
    );
    run_suite(Path::new("node"), &["--test", "openai-sdk.test.mjs"], &dir).await;
}
