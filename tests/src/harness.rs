//! Helpers for end-to-end tests: run the real `codex-proxy` binary in a tempdir, talk to the
//! fake the way the official client does, and read SSE.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::fake::{CLIENT_ID, FakeUpstream, TokenSet};

/// Path of a binary built from this workspace (`codex-proxy`, `codexctl`, `fake-upstream`).
///
/// Test executables live in `target/<profile>/deps/`, the binaries in `target/<profile>/`. The README's
/// test command builds them first (`cargo build --workspace --bins`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let exe_dir = exe.parent().expect("executable directory");
    // Tests run from target/<profile>/deps; tools like chat-latency from target/<profile>.
    let profile_dir = if exe_dir.ends_with("deps") {
        exe_dir.parent().expect("target/<profile>")
    } else {
        exe_dir
    };
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// Polls `condition` every 5 ms until it holds or `timeout` passes.
pub async fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    condition()
}

// ---------------------------------------------------------------------------------------------
// The real daemon

/// How to start a daemon.
#[derive(Debug, Default)]
pub struct DaemonBuilder {
    config: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    no_config_file: bool,
    /// `accounts.json` written into the state directory before start.
    accounts: Option<Value>,
    api_key: Option<String>,
    /// Lines for the `[server]`, `[upstream]`, `[appcast]` tables, rendered once each.
    sections: std::collections::BTreeMap<&'static str, Vec<String>>,
    /// A state directory the test owns (to restart a daemon on the same state).
    state_dir: Option<PathBuf>,
    /// Trust the HTTPS fake's test CA (`SSL_CERT_FILE`).
    test_ca: bool,
}

/// The API key e2e daemons are configured with.
pub const TEST_API_KEY: &str = "test-key-0123456789";

impl DaemonBuilder {
    /// TOML appended to the generated config file.
    #[must_use]
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    #[must_use]
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    #[must_use]
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Adds `key = value` to one of the tables the harness writes (`server`, `upstream`,
    /// `appcast`); other tables go through [`config`](Self::config).
    #[must_use]
    pub fn set(mut self, table: &'static str, line: &str) -> Self {
        self.sections
            .entry(table)
            .or_default()
            .push(line.to_owned());
        self
    }

    /// Uses this state directory instead of a fresh one (it outlives the daemon).
    #[must_use]
    pub fn state_dir(mut self, dir: &std::path::Path) -> Self {
        self.state_dir = Some(dir.to_owned());
        self
    }

    /// Points the daemon at a fake upstream with the test API key and these fake accounts
    /// (fresh tokens each) in its state; with no accounts, the state is left as it is.
    #[must_use]
    pub fn fake(mut self, fake: &FakeUpstream, accounts: &[usize]) -> Self {
        self = self
            .set("upstream", &format!("base_url = \"{}\"", fake.base_url()))
            .set("upstream", &format!("auth_url = \"{}\"", fake.auth_url()))
            .set("appcast", &format!("url = \"{}\"", fake.appcast_url()));
        self.api_key = Some(TEST_API_KEY.to_owned());
        if !accounts.is_empty() {
            self.accounts = Some(fake.accounts_json(accounts));
        }
        self
    }

    /// Trusts the test CA that signed the HTTPS fake's certificate (through `SSL_CERT_FILE`,
    /// as the system's trust store is read), as an operator would add a private CA.
    #[must_use]
    pub fn trusting_test_ca(mut self) -> Self {
        self.test_ca = true;
        self
    }

    /// Points `[upstream] base_url` elsewhere, replacing what [`fake`](Self::fake) set.
    #[must_use]
    pub fn base_url(mut self, url: &str) -> Self {
        let lines = self.sections.entry("upstream").or_default();
        lines.retain(|line| !line.starts_with("base_url "));
        lines.push(format!("base_url = \"{url}\""));
        self
    }

    /// No configured API key: the daemon generates one in its state (read with
    /// [`Daemon::api_key`]).
    #[must_use]
    pub fn generated_key(mut self) -> Self {
        self.api_key = None;
        self
    }

    /// Start with no config file at all (built-in defaults); the state dir still comes from
    /// the environment so the test stays in its tempdir.
    #[must_use]
    pub fn without_config_file(mut self) -> Self {
        self.no_config_file = true;
        self
    }

    /// Starts the daemon on a free port and waits until it listens.
    pub fn start(self) -> Daemon {
        crate::init_tls();
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let state = self
            .state_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("state"));
        std::fs::create_dir_all(&home).expect("create home");
        if let Some(accounts) = &self.accounts {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&state)
                .expect("create state");
            std::fs::write(state.join("accounts.json"), accounts.to_string())
                .expect("write accounts");
        }
        let mut cmd = Command::new(workspace_binary("codex-proxy"));
        // A clean environment: the developer's RUST_LOG or XDG dirs must not leak in.
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("CODEX_PROXY_STATE_DIR", &state)
            .env("CODEX_PROXY_SOCKET", dir.path().join("control.sock"))
            .env("CODEX_PROXY_LOG_FORMAT", "text")
            .arg("--port")
            .arg("0");
        if self.test_ca {
            let ca = dir.path().join("test-ca.pem");
            std::fs::write(&ca, crate::fake::tls::CA_PEM).expect("write the test CA");
            cmd.env("SSL_CERT_FILE", &ca);
        }
        // Tests run as root in CI; only the privilege-drop tests leave this out.
        if nix::unistd::Uid::effective().is_root() && !self.args.iter().any(|a| a == NO_ALLOW_ROOT)
        {
            cmd.arg("--allow-root");
        }
        if !self.no_config_file {
            let config = dir.path().join("config.toml");
            let mut sections = self.sections.clone();
            // The tests of the HTTP transport's details (headers, HTTP/2, zstd, cookies, whole
            // bodies) expect HTTP; those of the sockets, and the real clients', say otherwise.
            if let Some(upstream) = sections.get_mut("upstream")
                && !upstream
                    .iter()
                    .any(|l| l.trim_start().starts_with("transport"))
            {
                upstream.push("transport = \"http\"".to_owned());
            }
            if let Some(key) = &self.api_key {
                sections
                    .entry("server")
                    .or_default()
                    .push(format!("api_keys = [\"{key}\"]"));
            }
            let mut text = String::new();
            for (table, lines) in &sections {
                text.push_str(&format!("[{table}]\n{}\n\n", lines.join("\n")));
            }
            text.push_str(&self.config);
            std::fs::write(&config, text).expect("write config");
            cmd.arg("--config").arg(&config);
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd.args(self.args.iter().filter(|a| *a != NO_ALLOW_ROOT))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn codex-proxy");

        let logs = Arc::new(Mutex::new(Vec::<String>::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        for pipe in [
            child.stderr.take().map(ReadPipe::Err),
            child.stdout.take().map(ReadPipe::Out),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            let addr_tx = addr_tx.clone();
            std::thread::spawn(move || {
                let reader: Box<dyn std::io::Read + Send> = match pipe {
                    ReadPipe::Err(p) => Box::new(p),
                    ReadPipe::Out(p) => Box::new(p),
                };
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if let Some(addr) = line
                        .split("listening on http://")
                        .nth(1)
                        .map(|rest| {
                            // Text and JSON log lines both work: stop at the address's end.
                            rest.chars()
                                .take_while(|c| c.is_ascii_hexdigit() || ".:[]".contains(*c))
                                .collect::<String>()
                        })
                        .and_then(|a| a.parse().ok())
                    {
                        let _ = addr_tx.send(addr);
                    }
                    logs.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(line);
                }
            });
        }
        let addr = match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(50));
                let logs = logs.lock().map(|l| l.join("\n")).unwrap_or_default();
                panic!("codex-proxy did not start (exit {status:?}); output:\n{logs}");
            }
        };
        Daemon {
            child: Some(child),
            addr,
            dir,
            state,
            logs,
            api_key: self.api_key,
        }
    }
}

/// What a `codexctl` run printed and how it exited.
#[derive(Debug, Clone)]
pub struct CtlOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A pseudo-argument for [`DaemonBuilder::arg`]: start as root without `--allow-root` (the
/// privilege-drop tests).
pub const NO_ALLOW_ROOT: &str = "--no-allow-root";

enum ReadPipe {
    Err(std::process::ChildStderr),
    Out(std::process::ChildStdout),
}

/// A running `codex-proxy` process; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Holds the config, state dir and home of this daemon.
    pub dir: tempfile::TempDir,
    state: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    api_key: Option<String>,
}

impl Daemon {
    /// The key clients use: the configured test key, or the one the daemon generated.
    pub fn api_key(&self) -> String {
        self.api_key.clone().unwrap_or_else(|| {
            std::fs::read_to_string(self.state_dir().join("api_key"))
                .expect("generated api_key")
                .trim()
                .to_owned()
        })
    }

    /// A client that sends the API key.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", self.api_key())).expect("key"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client")
    }

    /// POSTs a chat completion and returns (status, headers, body text).
    pub async fn chat(&self, body: &Value) -> (u16, HeaderMap, String) {
        let response = self
            .client()
            .post(self.url("/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .expect("chat request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.expect("chat body"))
    }

    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An address on the Ollama listener (`[ollama] listen`), read from the daemon's log.
    pub fn ollama_url(&self, path: &str) -> String {
        let logs = self.logs();
        let addr = logs
            .split("the Ollama API is also served on http://")
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_hexdigit() || ".:[]".contains(*c))
                    .collect::<String>()
            })
            .unwrap_or_else(|| panic!("no Ollama listener in the log:\n{logs}"));
        format!("http://{addr}{path}")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state.clone()
    }

    /// The control socket (`CODEX_PROXY_SOCKET` of this daemon).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// A `codexctl` command aimed at this daemon's socket, with a clean environment.
    pub fn ctl_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(workspace_binary("codexctl"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("CODEX_PROXY_SOCKET", self.socket())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `codexctl ARGS` to the end (async, so a fake upstream on this runtime keeps
    /// serving meanwhile).
    pub async fn ctl(&self, args: &[&str]) -> CtlOutput {
        let output = tokio::time::timeout(Duration::from_secs(60), self.ctl_command(args).output())
            .await
            .expect("codexctl finished within 60 s")
            .expect("run codexctl");
        CtlOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `codexctl --json ARGS`, expects success, and parses its output.
    pub async fn ctl_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all).await;
        assert_eq!(out.code, 0, "codexctl {args:?} failed: {out:?}");
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("codexctl {args:?} printed no JSON ({e}): {out:?}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything the daemon printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Sends a signal and waits for the process to exit.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("daemon still running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, signal).expect("send signal");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait for daemon") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "codex-proxy did not exit within {timeout:?} after {signal}; logs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Talking to the fake the way the official client does

/// Identity the official CLI sends (§2.2).
pub const ORIGINATOR: &str = "codex_cli_rs";
pub const CLIENT_VERSION: &str = "0.146.0";

/// Builds requests exactly as the official client would: headers of §2.2, zstd body.
#[derive(Debug, Clone)]
pub struct OfficialClient {
    pub http: reqwest::Client,
    pub base_url: String,
    pub tokens: TokenSet,
    pub session: String,
}

impl OfficialClient {
    pub fn new(fake: &FakeUpstream, tokens: TokenSet) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: fake.base_url(),
            tokens,
            session: uuid::Uuid::now_v7().to_string(),
        }
    }

    /// For account `index` of the fake, with fresh tokens.
    pub fn for_account(fake: &FakeUpstream, index: usize) -> Self {
        Self::new(fake, fake.issue_tokens(index))
    }

    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut put = |name: &str, value: &str| {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        };
        put(
            "authorization",
            &format!("Bearer {}", self.tokens.access_token),
        );
        put("chatgpt-account-id", &self.tokens.account_id);
        put("originator", ORIGINATOR);
        put(
            "user-agent",
            &format!("{ORIGINATOR}/{CLIENT_VERSION} (Debian 12.0.0; x86_64) xterm-256color"),
        );
        put("version", CLIENT_VERSION);
        put("session-id", &self.session);
        put("thread-id", &self.session);
        put("x-client-request-id", &self.session);
        put("x-codex-window-id", &format!("{}:0", self.session));
        headers
    }

    /// A minimal classic request (§2.3) for `model` saying `text`.
    pub fn classic_body(&self, model: &str, text: &str) -> Value {
        json!({
            "model": model,
            "instructions": "You are Codex, a coding agent.",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions instructions>"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
            ],
            "tools": [{"type": "function", "name": "shell_command", "description": "Run a shell command", "strict": false,
                "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"], "additionalProperties": false}}],
            "tool_choice": "auto",
            "parallel_tool_calls": true,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "store": false,
            "stream": true,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": self.session,
            "text": {"verbosity": "low"},
            "client_metadata": {"x-codex-installation-id": "11111111-2222-4333-8444-555555555555", "session_id": self.session, "thread_id": self.session},
        })
    }

    /// POSTs a body to `/codex/responses`, zstd-compressed like the official client.
    pub async fn responses(&self, body: &Value) -> reqwest::Response {
        self.post_json("/codex/responses", body, true).await
    }

    pub async fn post_json(&self, path: &str, body: &Value, compress: bool) -> reqwest::Response {
        let raw = serde_json::to_vec(body).expect("serialise body");
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .headers(self.headers())
            .header("content-type", "application/json")
            .header("accept", "text/event-stream");
        request = if compress {
            let compressed = zstd::encode_all(&raw[..], 3).expect("zstd encode");
            request.header("content-encoding", "zstd").body(compressed)
        } else {
            request.body(raw)
        };
        request.send().await.expect("request to fake")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base_url))
            .headers(self.headers())
            .send()
            .await
            .expect("GET fake")
    }
}

/// An SSE event: its `event:` name and parsed `data:`.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

/// Parses a complete SSE body.
pub fn parse_sse(body: &str) -> Vec<SseEvent> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            let data = serde_json::from_str(&data).ok()?;
            Some(SseEvent { event, data })
        })
        .collect()
}

/// The PKCE pair the official client makes (§1.2): 64 random bytes → 86-char verifier.
pub fn pkce_pair() -> (String, String) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).expect("random");
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorize URL exactly as §1.2 orders it.
pub fn authorize_url(auth_url: &str, redirect_uri: &str, challenge: &str, state: &str) -> String {
    let scope = "openid profile email offline_access api.connectors.read api.connectors.invoke";
    let mut url = url::Url::parse(&format!("{auth_url}/oauth/authorize")).expect("auth url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("id_token_add_organizations", "true")
        .append_pair("codex_cli_simplified_flow", "true")
        .append_pair("state", state)
        .append_pair("originator", ORIGINATOR);
    url.into()
}

/// The `data:` payloads of a Chat Completions stream (`[DONE]` included as a string).
pub fn chat_chunks(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|block| block.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned())))
        .collect()
}

impl Daemon {
    /// Opens a streamed chat completion and reads until `marker` has arrived; returns the rest
    /// of the body (drop it to hang up).
    pub async fn stream_until(
        &self,
        body: &Value,
        marker: &str,
    ) -> futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>> {
        use futures_util::StreamExt;
        let response = self
            .client()
            .post(self.url("/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .expect("stream request");
        assert_eq!(response.status(), 200, "streamed chat failed");
        let mut stream = response.bytes_stream().boxed();
        let mut seen = String::new();
        while !seen.contains(marker) {
            let chunk = stream
                .next()
                .await
                .expect("stream ended before the marker")
                .expect("stream broke");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        stream
    }
}

impl Daemon {
    /// GETs a path with the API key and parses the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .client()
            .get(self.url(path))
            .send()
            .await
            .expect("GET daemon");
        response.json().await.expect("JSON answer")
    }
}
