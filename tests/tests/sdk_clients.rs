//! The real clients against the real daemon and the strict fake: the OpenAI, Anthropic, Gemini
//! and Ollama SDKs, the Codex CLI, Claude Code and the Gemini CLI.
//! `bash tests/sdk/install.sh` installs them (the README's test command runs it).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Script};
use codex_proxy_tests::harness::Daemon;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A fresh fake and a daemon on the shipped default: the backend's WebSocket, incremental
/// turns (the harness pins HTTP unless a test says otherwise).
async fn fake_and_daemon(accounts: &[usize]) -> (FakeUpstream, Daemon) {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, accounts)
        .set("upstream", "transport = \"auto\"")
        .start();
    (fake, daemon)
}

/// [`fake_and_daemon`] with one account, the daemon logging at debug level: its log tells a
/// large request that continues its conversation's last.
async fn fake_and_logging_daemon() -> (FakeUpstream, Daemon) {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("upstream", "transport = \"auto\"")
        .set("log", "level = \"info,codex_proxy=debug\"")
        .start();
    (fake, daemon)
}

/// How many large requests the daemon's log says continued their conversation's last.
fn continued_requests(daemon: &Daemon) -> usize {
    daemon
        .logs()
        .matches("a large request continues its conversation's last")
        .count()
}

/// A thousand numbered lines (~66 KB), each after `prefix`: what makes a client's history a
/// large one once a tool reads (or the model writes) it.
fn numbered_lines(prefix: &str) -> String {
    (0..1000)
        .map(|i| {
            format!("{prefix}line {i:04}: the quick brown fox jumps over the lazy dog, again\n")
        })
        .collect()
}

/// Runs an SDK suite against a fresh fake and daemon; fails with the suite's output.
async fn run_suite(program: &Path, args: &[&str], cwd: &Path, accounts: &[usize]) {
    let (fake, daemon) = fake_and_daemon(accounts).await;
    run_suite_on(program, args, cwd, &fake, &daemon, &[]).await;
}

/// Runs a suite against the given fake and daemon, with `env` added.
async fn run_suite_on(
    program: &Path,
    args: &[&str],
    cwd: &Path,
    fake: &FakeUpstream,
    daemon: &Daemon,
    env: &[(&str, &str)],
) {
    assert!(
        program.exists() || program.components().count() == 1,
        "{} is missing: run `bash tests/sdk/install.sh`",
        program.display()
    );
    // tokio's Command, so the in-process fake keeps serving while the suite runs.
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("CODEX_PROXY_BASE_URL", daemon.url("/v1"))
        .env("CODEX_PROXY_API_KEY", daemon.api_key())
        .env("FAKE_ADMIN_URL", format!("{}/__fake", fake.auth_url()))
        .envs(env.iter().copied())
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
        .filter(|r| {
            r.rejection
                .as_deref()
                .is_some_and(|why| why != "scripted error")
                && r.status != 429
                && r.status != 503
        })
        .map(|r| r.rejection.unwrap_or_default())
        .collect();
    assert!(rejected.is_empty(), "the fake rejected: {rejected:?}");
    println!("{stdout}");
}

/// Runs one pytest file of tests/sdk/python in the SDK venv.
async fn pytest(file: &str, accounts: &[usize]) {
    let python = repo_root().join("target/sdk/venv/bin/python");
    let suite = repo_root().join("tests/sdk/python");
    let args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", file];
    run_suite(&python, &args, &suite, accounts).await;
}

/// The dashboard in Debian's `chromium`, driven by playwright: sign in, quota bars, a failed
/// request, a device login approved from the page, account actions, rotation, the key. The
/// screenshots (desktop and phone, light and dark) land in `target/dashboard-screenshots`.
#[tokio::test]
async fn dashboard_in_a_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: `apt-get install chromium` (or set CHROMIUM)"
    );
    let shots = repo_root().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let fake = FakeUpstream::start().await.unwrap();
    // A generated key, so the page can rotate it.
    let daemon = Daemon::builder().fake(&fake, &[0]).generated_key().start();
    let python = repo_root().join("target/sdk/venv/bin/python");
    let args = [
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "test_dashboard_browser.py",
    ];
    let suite = repo_root().join("tests/sdk/python");
    let env = [
        ("SCREENSHOTS", shots.to_str().unwrap()),
        ("CHROMIUM", chromium.as_str()),
    ];
    run_suite_on(&python, &args, &suite, &fake, &daemon, &env).await;
}

#[tokio::test]
async fn official_python_sdk() {
    pytest("test_openai_sdk.py", &[0, 1]).await;
}

/// The `ollama` Python library on the Ollama API, through the daemon's second listener (as
/// users point it: `Client(host=…)`, no key) and its main port (with the key).
#[tokio::test]
async fn ollama_python_library() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder()
        .fake(&fake, &[0])
        .set("upstream", "transport = \"auto\"")
        .set("ollama", "listen = \"127.0.0.1:0\"")
        .start();
    let python = repo_root().join("target/sdk/venv/bin/python");
    let suite = repo_root().join("tests/sdk/python");
    let args = [
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "test_ollama_sdk.py",
    ];
    let listen = daemon.ollama_url("");
    let env = [("OLLAMA_LISTEN_URL", listen.as_str())];
    run_suite_on(&python, &args, &suite, &fake, &daemon, &env).await;
}

/// Google's `google-genai` Python SDK on the Gemini API (under `/v1`, its default, and
/// `/v1beta`): text, streams, automatic and manual function calling, a Pydantic schema,
/// thoughts and an image, countTokens, the model list, errors.
#[tokio::test]
async fn gemini_python_sdk() {
    pytest("test_gemini_sdk.py", &[0]).await;
}

/// The `anthropic` Python SDK on the Messages API. One account, so the failures its last
/// tests provoke are exactly what the client sees.
#[tokio::test]
async fn anthropic_python_sdk() {
    pytest("test_anthropic_sdk.py", &[0]).await;
}

#[tokio::test]
async fn official_node_sdk() {
    let dir = repo_root().join("tests/sdk/node");
    assert!(
        dir.join("node_modules/openai").is_dir(),
        "run `bash tests/sdk/install.sh`"
    );
    run_suite(
        Path::new("node"),
        &["--test", "openai-sdk.test.mjs", "ai-sdk.test.mjs"],
        &dir,
        &[0, 1],
    )
    .await;
}

/// The Anthropic TypeScript SDK on the Messages API.
#[tokio::test]
async fn anthropic_node_sdk() {
    let dir = repo_root().join("tests/sdk/node");
    assert!(
        dir.join("node_modules/@anthropic-ai/sdk").is_dir(),
        "run `bash tests/sdk/install.sh`"
    );
    run_suite(
        Path::new("node"),
        &["--test", "anthropic-sdk.test.mjs"],
        &dir,
        &[0],
    )
    .await;
}

/// Runs a client CLI to its end; fails with its output and the daemon's log unless it
/// succeeded. Returns stdout and stderr.
async fn run_cli(
    mut command: tokio::process::Command,
    name: &str,
    daemon: &Daemon,
) -> (String, String) {
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{stderr}\n--- daemon log ---\n{}",
        daemon.logs()
    );
    (stdout, stderr)
}

/// Runs `codex exec PROMPT` (the official Codex CLI, npm `@openai/codex`, pinned in
/// tests/sdk/node) with codex-proxy as a `wire_api = "responses"` model provider, as the README
/// configures it; over the Responses WebSocket when `websocket`. Returns stdout.
async fn codex_exec(daemon: &Daemon, websocket: bool, work: &Path, prompt: &str) -> String {
    let codex = repo_root().join("tests/sdk/node/node_modules/.bin/codex");
    assert!(
        codex.exists(),
        "{} is missing: run `bash tests/sdk/install.sh`",
        codex.display()
    );
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "model = \"gpt-5.5\"\nmodel_provider = \"codex-proxy\"\n\n\
             [model_providers.codex-proxy]\nname = \"codex-proxy\"\nbase_url = \"{}\"\n\
             env_key = \"CODEX_PROXY_KEY\"\nwire_api = \"responses\"\n\
             supports_websockets = {websocket}\n\
             request_max_retries = 0\nstream_max_retries = 0\n",
            daemon.url("/v1")
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(&codex);
    command
        .args([
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            prompt,
        ])
        .current_dir(work)
        .env("CODEX_HOME", home.path())
        .env("CODEX_PROXY_KEY", daemon.api_key())
        .env("RUST_LOG", "codex_api=info")
        .stdin(std::process::Stdio::null());
    let (stdout, stderr) = run_cli(command, "codex exec", daemon).await;
    if websocket {
        assert!(
            stderr.contains("successfully connected to Responses WebSocket")
                && !stderr.contains("Falling back"),
            "not over the WebSocket:\n{stderr}"
        );
    }
    stdout
}

#[tokio::test]
async fn the_codex_cli_runs_a_turn_over_http_and_over_the_websocket() {
    for websocket in [false, true] {
        let (fake, daemon) = fake_and_daemon(&[0]).await;
        let work = tempfile::tempdir().unwrap();
        let stdout = codex_exec(&daemon, websocket, work.path(), "say hi").await;
        // The fake echoes the last user message.
        assert!(stdout.contains("You said: say hi"), "{stdout}");
        let requests = fake.requests_to(RESPONSES_PATH);
        assert_eq!(requests.len(), 1, "websocket={websocket}");
        let request = &requests[0];
        assert_eq!(request.status, 200, "{:?}", request.rejection);
        let body = request.body.as_ref().unwrap();
        // What the CLI sent went on: no instructions (its base instructions are the first
        // developer message), its own prompt_cache_key as the session, its tools.
        assert!(body.get("instructions").is_none(), "{body}");
        assert_eq!(body["input"][0]["role"], "developer");
        assert_eq!(
            request.headers["session-id"].as_str(),
            body["prompt_cache_key"].as_str().unwrap()
        );
        assert!(body["tools"].as_array().is_some_and(|t| !t.is_empty()));
    }
}

#[tokio::test]
async fn the_codex_cli_applies_a_patch_the_model_asks_for() {
    for websocket in [false, true] {
        let (fake, daemon) = fake_and_daemon(&[0]).await;
        let work = tempfile::tempdir().unwrap();
        fake.enqueue(Script::custom_tool_call(
            "apply_patch",
            "*** Begin Patch\n*** Add File: hello.txt\n+hello from the model\n*** End Patch\n",
        ));
        fake.enqueue(Script::text("Created hello.txt."));
        let stdout = codex_exec(&daemon, websocket, work.path(), "create hello.txt").await;
        assert!(stdout.contains("Created hello.txt."), "{stdout}");
        assert_eq!(
            std::fs::read_to_string(work.path().join("hello.txt")).unwrap(),
            "hello from the model\n",
            "websocket={websocket}"
        );
        let requests = fake.requests_to(RESPONSES_PATH);
        assert_eq!(requests.len(), 2, "websocket={websocket}");
        // The second turn carries the call and the CLI's output for it (the strict fake refuses
        // an output whose call is not in the input) — on the socket, as the output alone after
        // the first turn's response.
        let input = requests[1].full_input().unwrap().as_array().unwrap();
        assert!(input.iter().any(|i| i["type"] == "custom_tool_call"));
        assert!(input.iter().any(|i| i["type"] == "custom_tool_call_output"));
        let sent = requests[1].body.as_ref().unwrap();
        assert!(sent["previous_response_id"].is_string(), "{sent}");
        assert_eq!(requests[1].status, 200, "{:?}", requests[1].rejection);
    }
}

/// Over HTTP the Codex CLI sends its whole input every turn: once its history passes 64 KiB (an
/// 80 KB patch the model wrote), the daemon reads each next request from its new items on —
/// though the CLI writes its `client_metadata` in another key order every request.
#[tokio::test]
async fn the_codex_cli_over_http_has_its_large_history_read_from_its_new_items_on() {
    let (fake, daemon) = fake_and_logging_daemon().await;
    let work = tempfile::tempdir().unwrap();
    let lines = numbered_lines("+");
    for (name, body) in [("big.txt", lines.as_str()), ("small.txt", "+small\n")] {
        fake.enqueue(
            Script::custom_tool_call(
                "apply_patch",
                &format!("*** Begin Patch\n*** Add File: {name}\n{body}*** End Patch\n"),
            )
            .with_reasoning("Write it."),
        );
    }
    fake.enqueue(Script::text("Wrote both."));
    let stdout = codex_exec(&daemon, false, work.path(), "write the two files").await;
    assert!(stdout.contains("Wrote both."), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("small.txt")).unwrap(),
        "small\n"
    );
    let requests = fake.requests_to(RESPONSES_PATH);
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.status, 200, "{:?}", request.rejection);
    }
    assert_eq!(continued_requests(&daemon), 1, "{}", daemon.logs());
}

/// Issue 22's long conversation with the official client: a 30-turn tool loop (29 patches the
/// model asks for, then its answer) from `codex exec` over its WebSocket to the daemon, and from
/// the daemon over the backend's: the first upstream turn whole, each later one only the CLI's
/// output for the last call, with `previous_response_id`, on one socket — and the files made.
#[tokio::test]
async fn the_codex_cli_runs_a_30_turn_tool_loop_incrementally() {
    const TURNS: usize = 30;
    let (fake, daemon) = fake_and_daemon(&[0]).await;
    let work = tempfile::tempdir().unwrap();
    for step in 1..TURNS {
        fake.enqueue(
            Script::custom_tool_call(
                "apply_patch",
                &format!(
                    "*** Begin Patch\n*** Add File: step-{step:02}.txt\n+step {step}\n*** End Patch\n"
                ),
            )
            .with_reasoning("Next file."),
        );
    }
    fake.enqueue(Script::text("Made 29 files."));
    let stdout = codex_exec(&daemon, true, work.path(), "make the files").await;
    assert!(stdout.contains("Made 29 files."), "{stdout}");
    for step in 1..TURNS {
        let made = std::fs::read_to_string(work.path().join(format!("step-{step:02}.txt")));
        assert_eq!(made.unwrap(), format!("step {step}\n"));
    }
    fake.assert_incremental_loop(TURNS, "custom_tool_call", "custom_tool_call_output");
}

/// Runs `claude -p PROMPT` (Claude Code, npm `@anthropic-ai/claude-code`, pinned in
/// tests/sdk/node) against the daemon as the README configures it: `ANTHROPIC_BASE_URL` and
/// `ANTHROPIC_API_KEY`, in `work`, with a fresh home. Returns stdout.
async fn claude_print(daemon: &Daemon, work: &Path, args: &[&str]) -> String {
    let node = repo_root().join("tests/sdk/node/node_modules");
    // npm's postinstall puts the native binary in place of bin/claude.exe; where it was
    // skipped, the platform package has it.
    let claude = [
        node.join("@anthropic-ai/claude-code/bin/claude.exe"),
        node.join("@anthropic-ai/claude-code-linux-x64/claude"),
    ]
    .into_iter()
    .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 1 << 20))
    .unwrap_or_else(|| panic!("Claude Code is missing: run `bash tests/sdk/install.sh`"));
    let home = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(&claude);
    command
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", daemon.url(""))
        .env("ANTHROPIC_API_KEY", daemon.api_key())
        // No update checks, telemetry or error reports (there is no network to reach them).
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .stdin(std::process::Stdio::null());
    run_cli(command, "claude", daemon).await.0
}

#[tokio::test]
async fn claude_code_answers_and_runs_a_tool_through_the_daemon() {
    let (fake, daemon) = fake_and_logging_daemon().await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("notes.txt"),
        "the secret word is pelican\n",
    )
    .unwrap();

    // A text answer.
    fake.on_input_containing("say hi", Script::text("Hi from Codex!"));
    let stdout = claude_print(&daemon, work.path(), &["-p", "say hi"]).await;
    assert!(stdout.contains("Hi from Codex!"), "{stdout}");

    // The model asks for a Bash call; Claude Code runs it in the work directory and sends the
    // result back; the model answers from it.
    fake.enqueue(
        Script::function_call(
            "Bash",
            r#"{"command":"cat notes.txt","description":"Show the notes"}"#,
        )
        .with_reasoning("The notes are in notes.txt; read them."),
    );
    fake.on_input_containing("pelican", Script::text("The notes say: pelican."));
    let stdout = claude_print(
        &daemon,
        work.path(),
        &["-p", "what do my notes say?", "--allowedTools", "Bash"],
    )
    .await;
    assert!(stdout.contains("The notes say: pelican."), "{stdout}");
    let requests = fake.requests_to(RESPONSES_PATH);
    let last = requests.last().unwrap();
    assert_eq!(last.status, 200, "{:?}", last.rejection);
    // The input the model saw (an incremental turn sends only its new items).
    let input = last.full_input().unwrap().as_array().unwrap().clone();
    let kinds: Vec<&str> = input.iter().filter_map(|i| i["type"].as_str()).collect();
    // The thinking block (with its signature) came back as the reasoning it was, before the
    // call it led to; the call's output carries what Bash printed in the work directory.
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(
        at("reasoning") < at("function_call") && at("function_call") < at("function_call_output")
    );
    let call = &input[at("function_call")];
    let output = &input[at("function_call_output")];
    assert_eq!(call["name"], "Bash");
    assert_eq!(call["call_id"], output["call_id"]);
    assert!(output["output"].to_string().contains("pelican"), "{output}");
    // Every request of the session went to the same conversation (Claude Code's session id).
    let keys: std::collections::HashSet<String> = requests[requests.len() - 2..]
        .iter()
        .map(|r| r.body.as_ref().unwrap()["prompt_cache_key"].to_string())
        .collect();
    assert_eq!(keys.len(), 1);

    // Its small model (`haiku`, as its background calls use) runs on the small Codex model.
    let stdout = claude_print(&daemon, work.path(), &["-p", "say hi", "--model", "haiku"]).await;
    assert!(stdout.contains("Hi from Codex!"), "{stdout}");
    let last = fake.requests_to(RESPONSES_PATH).pop().unwrap();
    assert_eq!(last.status, 200, "{:?}", last.rejection);
    assert_eq!(last.body.unwrap()["model"], "gpt-5.4-mini");

    // A tool loop whose history grows past where the daemon keeps a request's translation
    // (an 80 KB file read): the request after it is read from its new messages on, though
    // Claude Code rewrites its billing line and moves its cache marks every request.
    std::fs::write(work.path().join("big.txt"), numbered_lines("")).unwrap();
    let before = (
        fake.requests_to(RESPONSES_PATH).len(),
        continued_requests(&daemon),
    );
    let read = serde_json::json!({"file_path": work.path().join("big.txt")}).to_string();
    fake.enqueue(Script::function_call("Read", &read).with_reasoning("Read the big file first."));
    fake.enqueue(
        Script::function_call(
            "Bash",
            r#"{"command":"cat notes.txt","description":"Show the notes"}"#,
        )
        .with_reasoning("Now the notes."),
    );
    // (The notes' output then meets the rule above: "The notes say: pelican.")
    let stdout = claude_print(
        &daemon,
        work.path(),
        &[
            "-p",
            "read big.txt, then print the notes",
            "--allowedTools",
            "Bash Read",
        ],
    )
    .await;
    assert!(stdout.contains("The notes say: pelican."), "{stdout}");
    let turns = &fake.requests_to(RESPONSES_PATH)[before.0..];
    for turn in turns {
        assert_eq!(turn.status, 200, "{:?}", turn.rejection);
    }
    let last = turns.last().unwrap().full_input().unwrap().to_string();
    assert!(
        last.contains("line 0999") && last.contains("pelican"),
        "{} bytes",
        last.len()
    );
    assert!(
        continued_requests(&daemon) > before.1,
        "no request was continued:\n{}",
        daemon.logs()
    );
}

/// Runs `gemini ARGS` (the Gemini CLI, npm `@google/gemini-cli`, pinned in tests/sdk/node)
/// against the daemon as the README configures it: `GOOGLE_GEMINI_BASE_URL` and
/// `GEMINI_API_KEY`, in `work` (trusted), with a fresh home whose settings pick the API key and
/// turn off usage statistics and updates. Returns stdout.
async fn gemini_cli(daemon: &Daemon, work: &Path, args: &[&str]) -> String {
    let gemini = repo_root().join("tests/sdk/node/node_modules/.bin/gemini");
    assert!(
        gemini.exists(),
        "{} is missing: run `bash tests/sdk/install.sh`",
        gemini.display()
    );
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".gemini")).unwrap();
    std::fs::write(
        home.path().join(".gemini/settings.json"),
        r#"{"security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": false},
            "general": {"disableAutoUpdate": true, "disableUpdateNag": true}}"#,
    )
    .unwrap();
    let mut command = tokio::process::Command::new(&gemini);
    command
        .args(args)
        .current_dir(work)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("GEMINI_API_KEY", daemon.api_key())
        .env("GOOGLE_GEMINI_BASE_URL", daemon.url(""))
        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
        .stdin(std::process::Stdio::null());
    run_cli(command, "gemini", daemon).await.0
}

/// The Gemini CLI answers through the daemon, and runs a tool loop whose history grows past
/// the size where the daemon keeps a request's translation (its system prompt and tools are
/// ~40 KB, the file it reads ~80 KB): the request after the large read continues the one
/// before — read and translated from its new messages on — and every turn after the first
/// goes to the backend as its new items only.
#[tokio::test]
async fn the_gemini_cli_answers_and_runs_a_tool_loop_through_the_daemon() {
    let (fake, daemon) = fake_and_logging_daemon().await;
    let work = tempfile::tempdir().unwrap();
    // Its own model names (its router's `flash-lite`, which rates the task, then the model it
    // routes to) run on the models [model.gemini] names.
    fake.on_input_containing(
        "complexity_score",
        Script::text(r#"{"complexity_reasoning": "A greeting.", "complexity_score": 5}"#),
    );
    fake.on_input_containing("say hi", Script::text("Hi from Codex!"));
    let stdout = gemini_cli(&daemon, work.path(), &["-p", "say hi"]).await;
    assert!(stdout.contains("Hi from Codex!"), "{stdout}");
    let models: std::collections::BTreeSet<String> = fake
        .requests_to(RESPONSES_PATH)
        .iter()
        .map(|r| {
            r.body.as_ref().unwrap()["model"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        models,
        ["gpt-5.4-mini", "gpt-5.5"].map(str::to_owned).into(),
        "{}",
        daemon.logs()
    );

    std::fs::write(work.path().join("big.txt"), numbered_lines("")).unwrap();
    std::fs::write(
        work.path().join("notes.txt"),
        "the secret word is pelican\n",
    )
    .unwrap();
    let before = fake.requests_to(RESPONSES_PATH).len();
    fake.enqueue(
        Script::function_call("read_file", r#"{"file_path":"big.txt"}"#)
            .with_reasoning("Read the big file first."),
    );
    fake.enqueue(
        Script::function_call("read_file", r#"{"file_path":"notes.txt"}"#)
            .with_reasoning("Now the notes."),
    );
    fake.enqueue(Script::text("The notes say: pelican."));
    let prompt = "read big.txt, then tell me what my notes say";
    let stdout = gemini_cli(&daemon, work.path(), &["-p", prompt, "-m", "gpt-5.5"]).await;
    assert!(stdout.contains("The notes say: pelican."), "{stdout}");
    let turns = &fake.requests_to(RESPONSES_PATH)[before..];
    assert_eq!(turns.len(), 3, "{turns:?}");
    for turn in turns {
        assert_eq!(turn.status, 200, "{:?}", turn.rejection);
    }
    // The file's lines reached the model, and the notes after them.
    let input = turns[2].full_input().unwrap().to_string();
    assert!(input.contains("line 0999") && input.contains("pelican"));
    // Each turn after the first went as its new items (the call's output).
    for turn in &turns[1..] {
        let body = turn.body.as_ref().unwrap();
        assert!(body["previous_response_id"].is_string(), "{body}");
        assert_eq!(body["input"].as_array().unwrap().len(), 1, "{body}");
    }
    // The request after the large read was read from its new messages on.
    assert_eq!(continued_requests(&daemon), 1, "{}", daemon.logs());
}
