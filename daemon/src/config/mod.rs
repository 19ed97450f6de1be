//! The daemon's configuration: typed sections with built-in defaults, loaded in layers
//! (defaults < file < environment < command line), validated before anything starts.
//!
//! `config/codex-proxy.toml` in the repository documents every key; a test proves it parses to
//! exactly [`Config::default`].

pub mod load;
mod paths;
mod values;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use load::{ConfigError, ConfigSource, Loaded, Overrides, load};
pub use paths::{Environment, Mode, ResolvedPaths};
pub use values::{
    ApiKey, BindHost, ConfigPath, CorsOrigin, HeaderText, HostName, HttpUrl, LogFilter, PosixName,
    ProxyUrl, log_targets,
};

/// The whole configuration file. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub client_identity: ClientIdentityConfig,
    pub model: ModelConfig,
    pub auth: AuthConfig,
    pub appcast: AppcastConfig,
    pub responses: ResponsesConfig,
    pub metrics: MetricsConfig,
    pub dashboard: DashboardConfig,
    pub ollama: OllamaConfig,
    pub paths: PathsConfig,
    pub service: ServiceConfig,
    pub log: LogConfig,
}

/// `[server]`: the HTTP listener clients talk to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: BindHost,
    /// 0 picks a free port (the bound address is logged).
    pub port: u16,
    /// When empty, a key `codex-proxy-<random>` is generated once and kept in the state dir.
    pub api_keys: Vec<ApiKey>,
    pub cors_origins: Vec<CorsOrigin>,
    /// Names clients may reach the daemon by, besides loopback names and IP addresses.
    pub allowed_hosts: Vec<HostName>,
    /// A stream with nothing to send for this long sends a `: keepalive` comment.
    pub keepalive_seconds: u64,
    /// Connections open at once; 0 derives it from the descriptor limit.
    pub max_connections: usize,
    /// A request head must arrive within this long of its first byte.
    pub header_timeout_seconds: u64,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout_seconds: u64,
    /// A request body must arrive whole within this long.
    pub body_timeout_seconds: u64,
    /// The request bodies being read and translated at once may take this much memory together.
    pub request_memory_mb: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: BindHost::default(),
            port: 8080,
            api_keys: Vec::new(),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            keepalive_seconds: 15,
            max_connections: 0,
            header_timeout_seconds: 10,
            idle_timeout_seconds: 120,
            body_timeout_seconds: 120,
            request_memory_mb: 128,
        }
    }
}

/// `[upstream]`: the Codex backend and the auth server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    pub base_url: HttpUrl,
    pub auth_url: HttpUrl,
    pub connect_timeout_seconds: u64,
    /// Longest silence allowed inside a stream before it is abandoned.
    pub idle_timeout_seconds: u64,
    /// When unset, `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` apply.
    pub proxy: Option<ProxyUrl>,
    /// zstd request bodies, as the official client sends them.
    pub compress_requests: bool,
    /// How turns reach the backend: its WebSocket, HTTP, or the WebSocket with HTTP when
    /// sockets are refused.
    pub transport: Transport,
}

/// `upstream.transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The WebSocket; HTTP for a while when a handshake is refused (426, a proxy that will not
    /// tunnel it, …).
    Auto,
    /// Only the WebSocket: a refused handshake is an error.
    Websocket,
    /// Only HTTP (server-sent events), one request per turn.
    Http,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            base_url: HttpUrl::builtin("https://chatgpt.com/backend-api"),
            auth_url: HttpUrl::builtin("https://auth.openai.com"),
            connect_timeout_seconds: 10,
            idle_timeout_seconds: 300,
            proxy: None,
            compress_requests: true,
            transport: Transport::Auto,
        }
    }
}

/// `[client_identity]`: what the daemon tells the backend it is. Unset optional keys follow the
/// appcast scheduler and the running system; a set key is pinned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientIdentityConfig {
    pub originator: HeaderText,
    pub app_version: Option<HeaderText>,
    pub build_number: Option<HeaderText>,
    pub platform: Option<HeaderText>,
    pub arch: Option<HeaderText>,
}

impl Default for ClientIdentityConfig {
    fn default() -> Self {
        Self {
            originator: HeaderText::builtin("codex_cli_rs"),
            app_version: None,
            build_number: None,
            platform: None,
            arch: None,
        }
    }
}

/// Reasoning effort as the backend spells it. `ultra` (a UI level) is sent as `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
    #[serde(alias = "ultra")]
    Max,
}

impl ReasoningEffort {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Xhigh => "xhigh",
            Self::Max => "max",
        }
    }
}

/// How reasoning summaries reach Chat Completions clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningOutput {
    /// `reasoning_content` deltas, as DeepSeek-style clients read them.
    #[default]
    ReasoningContent,
    /// `<think>…</think>` inside `content`.
    ThinkTags,
    None,
}

/// Where the client's system/developer messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemPromptStrategy {
    /// The client's system prompt becomes `instructions` (a neutral one when it sends none).
    #[default]
    Instructions,
    /// The model's own Codex instructions stay in `instructions`; the client's system prompt is
    /// sent as a developer message.
    Developer,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub default: String,
    /// Unset: the model's own default from the catalog.
    pub default_reasoning_effort: Option<ReasoningEffort>,
    /// Replaces the built-in table when given.
    pub aliases: BTreeMap<String, String>,
    pub reasoning_output: ReasoningOutput,
    pub system_prompt_strategy: SystemPromptStrategy,
    /// What Claude model names (`claude-opus-*`, `claude-sonnet-*`, `claude-haiku-*`) run on.
    pub claude: ClaudeModels,
    /// What Gemini model names (`gemini-*-pro`, `gemini-*-flash`, `gemini-*-flash-lite`) run on.
    pub gemini: GeminiModels,
}

/// `[model.gemini]`: the Codex model (an id or alias, with an optional effort suffix) each
/// Gemini tier runs on, for Gemini clients that name Gemini models (the Gemini CLI's defaults).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeminiModels {
    pub pro: String,
    pub flash: String,
    pub flash_lite: String,
}

impl Default for GeminiModels {
    fn default() -> Self {
        Self {
            pro: "gpt-5.5".into(),
            flash: "gpt-5.5".into(),
            flash_lite: "gpt-5.4-mini".into(),
        }
    }
}

impl GeminiModels {
    /// The Codex model for a Gemini model name (`models/` and a version or `-preview` suffix
    /// or not): `-flash-lite` names, `-flash` names, and any other `gemini` name (`-pro`, a
    /// bare `gemini-…`) as `pro`; `None` when the name is no Gemini model.
    pub fn target(&self, name: &str) -> Option<&str> {
        let name = name.trim().to_ascii_lowercase();
        let base = name.strip_prefix("models/").unwrap_or(&name);
        if !base.starts_with("gemini") {
            return None;
        }
        Some(if base.contains("flash-lite") {
            &self.flash_lite
        } else if base.contains("flash") {
            &self.flash
        } else {
            &self.pro
        })
    }
}

/// `[model.claude]`: the Codex model (an id or alias, with an optional effort suffix) each
/// Claude family runs on, for Anthropic clients that name Claude models.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaudeModels {
    pub opus: String,
    pub sonnet: String,
    pub haiku: String,
}

impl Default for ClaudeModels {
    fn default() -> Self {
        Self {
            opus: "gpt-5.5".into(),
            sonnet: "gpt-5.5".into(),
            haiku: "gpt-5.4-mini".into(),
        }
    }
}

impl ClaudeModels {
    /// The Codex model for a Claude model name (dated or not, with a `[1m]`-style suffix);
    /// `None` when the name is no Claude model.
    pub fn target(&self, name: &str) -> Option<&str> {
        let name = name.trim().to_ascii_lowercase();
        let base = name.split('[').next().unwrap_or_default();
        let base = base.strip_prefix("anthropic/").unwrap_or(base);
        if !base.starts_with("claude") {
            return None;
        }
        [
            ("opus", &self.opus),
            ("sonnet", &self.sonnet),
            ("haiku", &self.haiku),
        ]
        .into_iter()
        .find(|(family, _)| base.contains(family))
        .map(|(_, target)| target.as_str())
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            default: "gpt-5.5".into(),
            default_reasoning_effort: None,
            aliases: BTreeMap::from([
                ("codex".to_owned(), "gpt-5.5".to_owned()),
                ("codex-mini".to_owned(), "gpt-5.4-mini".to_owned()),
            ]),
            reasoning_output: ReasoningOutput::default(),
            system_prompt_strategy: SystemPromptStrategy::default(),
            claude: ClaudeModels::default(),
            gemini: GeminiModels::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationStrategy {
    #[default]
    LeastUsed,
    RoundRobin,
    Sticky,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStore {
    #[default]
    File,
    Keyring,
}

/// `[auth]`: accounts, rotation and tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub rotation_strategy: RotationStrategy,
    /// Cool-down after a 429 that carries no reset time.
    pub rate_limit_backoff_seconds: u64,
    pub max_concurrent_per_account: u32,
    pub queue_timeout_seconds: u64,
    pub refresh_margin_seconds: u64,
    pub token_store: TokenStore,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            rotation_strategy: RotationStrategy::default(),
            rate_limit_backoff_seconds: 300,
            max_concurrent_per_account: 8,
            queue_timeout_seconds: 30,
            refresh_margin_seconds: 300,
            token_store: TokenStore::default(),
        }
    }
}

/// `[appcast]`: the Codex Desktop Sparkle feed that keeps the identity's version current.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppcastConfig {
    pub enabled: bool,
    pub url: HttpUrl,
    pub interval_hours: u64,
}

impl Default for AppcastConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            url: HttpUrl::builtin("https://persistent.oaistatic.com/codex-app-prod/appcast.xml"),
            interval_hours: 24,
        }
    }
}

/// `[responses]`: the responses `/v1/responses` keeps, so `previous_response_id`, `GET
/// /v1/responses/{id}` and item references work although the backend stores nothing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponsesConfig {
    /// Memory the kept responses may take together; the oldest go first.
    pub store_mb: u64,
    /// A kept response is forgotten this long after it was made.
    pub store_ttl_minutes: u64,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self {
            store_mb: 256,
            store_ttl_minutes: 24 * 60,
        }
    }
}

/// `[metrics]`: `GET /metrics` for Prometheus.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// A bearer token for the scraper alone; an API key works too.
    pub token: Option<ApiKey>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token: None,
        }
    }
}

/// `[dashboard]`: the web dashboard at `/dashboard/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    pub enabled: bool,
    /// Signs in instead of the API keys when set.
    pub password: Option<ApiKey>,
    /// How long a sign-in lasts.
    pub session_hours: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            password: None,
            session_hours: 12,
        }
    }
}

/// `[ollama]`: the Ollama API (`/api/chat`, `/api/generate`, `/api/tags`, …), on the main port
/// and, when `listen` is set, on a second listener of its own (Ollama clients assume port 11434).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OllamaConfig {
    pub enabled: bool,
    /// A second listener serving the Ollama API (and the OpenAI `/v1` routes, as Ollama does),
    /// e.g. `127.0.0.1:11434`.
    pub listen: Option<std::net::SocketAddr>,
    /// Ollama clients send no API key: without one, `/api/*` answers loopback clients only.
    /// `true` asks every Ollama request for the key (`OLLAMA_API_KEY` in Ollama's own clients).
    pub require_key: bool,
}

impl Default for OllamaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            require_key: false,
        }
    }
}

/// `[paths]`: unset means the mode's default (see [`ResolvedPaths`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    pub state_dir: Option<ConfigPath>,
    pub socket: Option<ConfigPath>,
}

/// `[service]`: privilege drop target and the group allowed on the control socket.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    pub user: Option<PosixName>,
    pub group: Option<PosixName>,
    pub control_group: Option<PosixName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// journald under systemd, text otherwise.
    #[default]
    Auto,
    Text,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: LogFilter,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: LogFilter::builtin("info"),
            format: LogFormat::default(),
        }
    }
}

impl Config {
    /// Cross-field and range checks that types alone cannot express. Each failure names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        fn range(
            key: &'static str,
            value: u64,
            min: u64,
            max: u64,
        ) -> Result<(), (&'static str, String)> {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err((
                    key,
                    format!("{value} is out of range (allowed {min} to {max})"),
                ))
            }
        }
        range(
            "server.keepalive_seconds",
            self.server.keepalive_seconds,
            1,
            300,
        )?;
        range(
            "server.max_connections",
            self.server.max_connections as u64,
            0,
            1 << 20,
        )?;
        range(
            "server.header_timeout_seconds",
            self.server.header_timeout_seconds,
            1,
            300,
        )?;
        range(
            "server.idle_timeout_seconds",
            self.server.idle_timeout_seconds,
            1,
            86_400,
        )?;
        range(
            "server.body_timeout_seconds",
            self.server.body_timeout_seconds,
            1,
            3600,
        )?;
        range(
            "server.request_memory_mb",
            self.server.request_memory_mb,
            32,
            1 << 20,
        )?;
        range(
            "upstream.connect_timeout_seconds",
            self.upstream.connect_timeout_seconds,
            1,
            300,
        )?;
        range(
            "upstream.idle_timeout_seconds",
            self.upstream.idle_timeout_seconds,
            5,
            86_400,
        )?;
        range(
            "auth.rate_limit_backoff_seconds",
            self.auth.rate_limit_backoff_seconds,
            1,
            604_800,
        )?;
        range(
            "auth.max_concurrent_per_account",
            u64::from(self.auth.max_concurrent_per_account),
            1,
            16_384,
        )?;
        range(
            "auth.queue_timeout_seconds",
            self.auth.queue_timeout_seconds,
            1,
            3600,
        )?;
        range(
            "auth.refresh_margin_seconds",
            self.auth.refresh_margin_seconds,
            30,
            86_400,
        )?;
        range("responses.store_mb", self.responses.store_mb, 0, 65_536)?;
        range(
            "dashboard.session_hours",
            self.dashboard.session_hours,
            1,
            24 * 30,
        )?;
        range(
            "responses.store_ttl_minutes",
            self.responses.store_ttl_minutes,
            1,
            30 * 24 * 60,
        )?;
        range(
            "appcast.interval_hours",
            self.appcast.interval_hours,
            1,
            24 * 30,
        )?;

        if self.model.default.trim().is_empty() {
            return Err(("model.default", "must name a model".into()));
        }
        for (family, target) in [
            ("opus", &self.model.claude.opus),
            ("sonnet", &self.model.claude.sonnet),
            ("haiku", &self.model.claude.haiku),
        ] {
            if target.trim().is_empty() {
                return Err(("model.claude", format!("`{family}` names no model")));
            }
        }
        for (tier, target) in [
            ("pro", &self.model.gemini.pro),
            ("flash", &self.model.gemini.flash),
            ("flash_lite", &self.model.gemini.flash_lite),
        ] {
            if target.trim().is_empty() {
                return Err(("model.gemini", format!("`{tier}` names no model")));
            }
        }
        for (alias, target) in &self.model.aliases {
            if alias.trim().is_empty() || target.trim().is_empty() {
                return Err((
                    "model.aliases",
                    format!("alias `{alias}` → `{target}` has an empty side"),
                ));
            }
            if self.model.aliases.contains_key(target) {
                return Err((
                    "model.aliases",
                    format!("alias `{alias}` points at another alias `{target}`"),
                ));
            }
        }
        if self.auth.token_store == TokenStore::Keyring {
            // Refused rather than silently falling back to the file store.
            return Err((
                "auth.token_store",
                "\"keyring\" is not available in this build yet; use \"file\" (tokens in the \
                 state directory, 0600)"
                    .into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if !self.server.api_keys.iter().all(|k| seen.insert(k.expose())) {
            return Err(("server.api_keys", "the same key is listed twice".into()));
        }
        if self.server.cors_origins.len() > 1
            && self.server.cors_origins.iter().any(|o| o.as_str() == "*")
        {
            return Err((
                "server.cors_origins",
                "`*` cannot be combined with other origins".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_model_names_map_to_their_tiers() {
        let claude = ClaudeModels::default();
        assert_eq!(claude.target("claude-opus-4-7"), Some("gpt-5.5"));
        assert_eq!(
            claude.target("claude-haiku-4-5-20251001"),
            Some("gpt-5.4-mini")
        );
        assert_eq!(claude.target("gpt-5.5"), None);
        let gemini = GeminiModels {
            pro: "p".into(),
            flash: "f".into(),
            flash_lite: "l".into(),
        };
        for (name, tier) in [
            ("gemini-3.1-pro-preview", Some("p")),
            ("models/gemini-2.5-pro", Some("p")),
            ("gemini-exp-1206", Some("p")),
            ("gemini-3-flash-preview", Some("f")),
            ("Gemini-2.5-Flash", Some("f")),
            ("gemini-3.5-flash-lite", Some("l")),
            ("models/gemini-2.5-flash-lite-preview-06-17", Some("l")),
            ("gpt-5.5", None),
            ("gemma-3-27b", None),
        ] {
            assert_eq!(gemini.target(name), tier, "{name}");
        }
    }
}
