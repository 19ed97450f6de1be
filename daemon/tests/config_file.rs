//! `config/codex-proxy.toml` must document every key with exactly the built-in default.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use codex_proxy::config::load::parse_str;
use codex_proxy::config::{
    AppcastConfig, AuthConfig, ClientIdentityConfig, Config, ConfigSource, DashboardConfig,
    LogConfig, MetricsConfig, ModelConfig, OllamaConfig, PathsConfig, ResponsesConfig,
    ServerConfig, ServiceConfig, UpstreamConfig,
};

fn documented_file() -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/codex-proxy.toml");
    let text = std::fs::read_to_string(&path).expect("config/codex-proxy.toml is readable");
    (path, text)
}

#[test]
fn documented_file_equals_builtin_defaults() {
    let (path, text) = documented_file();
    let parsed = parse_str(&text, ConfigSource::File(path)).unwrap();
    assert_eq!(parsed, Config::default());
}

/// Every commented-out `# key = value` example is a real key with a valid value, and together
/// they set every optional key — so no key is left undocumented.
#[test]
fn commented_examples_are_valid_and_cover_every_optional_key() {
    let (path, text) = documented_file();
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if looks_like_assignment(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = parse_str(&uncommented, ConfigSource::File(path)).unwrap();

    // Exhaustive destructuring: adding a field to any section fails to compile here until the
    // documented file (and this check) cover it.
    let Config {
        server,
        upstream,
        client_identity,
        model,
        auth,
        appcast,
        responses,
        metrics,
        dashboard,
        ollama,
        paths,
        service,
        log,
    } = config;
    let ServerConfig {
        host: _,
        port: _,
        api_keys: _,
        cors_origins: _,
        allowed_hosts: _,
        keepalive_seconds: _,
        max_connections: _,
        header_timeout_seconds: _,
        idle_timeout_seconds: _,
        body_timeout_seconds: _,
        request_memory_mb: _,
    } = server;
    let UpstreamConfig {
        base_url: _,
        auth_url: _,
        connect_timeout_seconds: _,
        idle_timeout_seconds: _,
        proxy,
        compress_requests: _,
        transport: _,
    } = upstream;
    assert!(proxy.is_some(), "upstream.proxy has no example");
    let ClientIdentityConfig {
        originator: _,
        app_version,
        build_number,
        platform,
        arch,
    } = client_identity;
    assert!(
        app_version.is_some() && build_number.is_some() && platform.is_some() && arch.is_some()
    );
    let ModelConfig {
        default: _,
        default_reasoning_effort,
        aliases: _,
        reasoning_output: _,
        system_prompt_strategy: _,
        claude: _,
        gemini: _,
    } = model;
    assert!(default_reasoning_effort.is_some());
    let AuthConfig {
        rotation_strategy: _,
        rate_limit_backoff_seconds: _,
        max_concurrent_per_account: _,
        queue_timeout_seconds: _,
        refresh_margin_seconds: _,
        token_store: _,
    } = auth;
    let AppcastConfig {
        enabled: _,
        url: _,
        interval_hours: _,
    } = appcast;
    let ResponsesConfig {
        store_mb: _,
        store_ttl_minutes: _,
    } = responses;
    let MetricsConfig { enabled: _, token } = metrics;
    assert!(token.is_some(), "metrics.token has no example");
    let DashboardConfig {
        enabled: _,
        password,
        session_hours: _,
    } = dashboard;
    assert!(password.is_some(), "dashboard.password has no example");
    let OllamaConfig {
        enabled: _,
        listen,
        require_key: _,
    } = ollama;
    assert!(listen.is_some(), "ollama.listen has no example");
    let PathsConfig { state_dir, socket } = paths;
    assert!(state_dir.is_some() && socket.is_some());
    let ServiceConfig {
        user,
        group,
        control_group,
    } = service;
    assert!(user.is_some() && group.is_some() && control_group.is_some());
    let LogConfig {
        level: _,
        format: _,
    } = log;
}

fn looks_like_assignment(line: &str) -> bool {
    let Some((key, _)) = line.split_once(" = ") else {
        return false;
    };
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
