//! `reload` (and SIGHUP): re-read the config file and put in effect what can change live.
//!
//! Live: API keys, keep-alive, everything under `[model]`, the rotation strategy and the auth
//! timings, the client identity, the log level. Everything else (listen address, upstream
//! client, CORS, paths, service, appcast, the response store, log format, per-account slots)
//! keeps its running value and is reported as needing a restart.

use codex_proxy_proto::{ErrorKind, ReloadReport, Response};

use super::views::error;
use crate::app::AppState;
use crate::config::{Config, Environment};

/// Reloads and reports; on a bad file nothing changes. systemd hears `RELOADING=1` first and
/// `READY=1` after, either way.
pub async fn reload(state: &AppState) -> Response {
    crate::service::notify::reloading();
    let response = apply(state).await;
    crate::service::notify::ready(state);
    response
}

async fn apply(state: &AppState) -> Response {
    let overrides = state.overrides().clone();
    let loaded = tokio::task::spawn_blocking(move || {
        crate::config::load(&overrides, &Environment::from_process())
    })
    .await;
    let loaded = match loaded {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(e)) => {
            tracing::warn!("reload refused, keeping the running configuration: {e}");
            return error(
                ErrorKind::Invalid,
                format!("the configuration was not reloaded (the running one stays): {e}"),
            );
        }
        Err(e) => return error(ErrorKind::Failed, format!("reload failed: {e}")),
    };
    let old = state.config();
    let (effective, report) = merge(&old, loaded.config, state.paths() != &loaded.paths);
    if let Err(e) = state.set_config(effective.clone()) {
        return error(
            ErrorKind::Invalid,
            format!("the configuration was not reloaded (the running one stays): {e:#}"),
        );
    }
    if effective.auth.rotation_strategy != old.auth.rotation_strategy {
        state
            .accounts()
            .set_strategy(effective.auth.rotation_strategy);
    }
    let mut report = report;
    if effective.log.level != old.log.level {
        match crate::service::logging::set_level(effective.log.level.as_str()) {
            Ok(true) => {}
            Ok(false) => {
                report.applied.retain(|k| k != "log.level");
                report
                    .restart_needed
                    .push("log.level (-v or RUST_LOG set the level at start)".into());
            }
            Err(e) => tracing::warn!("cannot apply log.level: {e}"),
        }
    }
    if effective.client_identity != old.client_identity {
        let appcast = crate::upstream::appcast::load(state.state_dir());
        let identity = crate::upstream::Identity::new(&effective.client_identity, appcast.as_ref());
        let version_changed = identity.version != state.upstream().identity().version;
        state.upstream().set_identity(identity);
        if version_changed {
            state.catalog_is_stale();
        }
    }
    tracing::info!(
        applied = %report.applied.join(", "),
        restart_needed = %report.restart_needed.join(", "),
        "configuration reloaded"
    );
    Response::Reloaded(ReloadReport {
        config_file: state
            .paths()
            .config_file
            .as_ref()
            .map(|p| p.display().to_string()),
        ..report
    })
}

/// The configuration to run with — `new` where it can apply live, `old` elsewhere — and what
/// changed on each side.
fn merge(old: &Config, new: Config, paths_changed: bool) -> (Config, ReloadReport) {
    let (e, o) = (&new, old);
    let changed = |pairs: &[(&str, bool)]| -> Vec<String> {
        pairs
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(name, _)| (*name).to_owned())
            .collect()
    };
    let applied = changed(&[
        ("server.api_keys", e.server.api_keys != o.server.api_keys),
        (
            "server.allowed_hosts",
            e.server.allowed_hosts != o.server.allowed_hosts,
        ),
        (
            "server.keepalive_seconds",
            e.server.keepalive_seconds != o.server.keepalive_seconds,
        ),
        (
            "server.body_timeout_seconds",
            e.server.body_timeout_seconds != o.server.body_timeout_seconds,
        ),
        ("model", e.model != o.model),
        (
            "auth.rotation_strategy",
            e.auth.rotation_strategy != o.auth.rotation_strategy,
        ),
        (
            "auth.rate_limit_backoff_seconds",
            e.auth.rate_limit_backoff_seconds != o.auth.rate_limit_backoff_seconds,
        ),
        (
            "auth.queue_timeout_seconds",
            e.auth.queue_timeout_seconds != o.auth.queue_timeout_seconds,
        ),
        (
            "auth.refresh_margin_seconds",
            e.auth.refresh_margin_seconds != o.auth.refresh_margin_seconds,
        ),
        ("client_identity", e.client_identity != o.client_identity),
        ("log.level", e.log.level != o.log.level),
        (
            "ollama.enabled/require_key",
            (e.ollama.enabled, e.ollama.require_key) != (o.ollama.enabled, o.ollama.require_key),
        ),
    ]);
    let restart_needed = changed(&[
        (
            "server.host/port",
            (&e.server.host, e.server.port) != (&o.server.host, o.server.port),
        ),
        (
            "server.cors_origins",
            e.server.cors_origins != o.server.cors_origins,
        ),
        (
            "server.request_memory_mb",
            e.server.request_memory_mb != o.server.request_memory_mb,
        ),
        (
            "server.max_connections/header_timeout_seconds/idle_timeout_seconds",
            (
                e.server.max_connections,
                e.server.header_timeout_seconds,
                e.server.idle_timeout_seconds,
            ) != (
                o.server.max_connections,
                o.server.header_timeout_seconds,
                o.server.idle_timeout_seconds,
            ),
        ),
        ("upstream", e.upstream != o.upstream),
        (
            "auth.max_concurrent_per_account",
            e.auth.max_concurrent_per_account != o.auth.max_concurrent_per_account,
        ),
        ("appcast", e.appcast != o.appcast),
        ("responses", e.responses != o.responses),
        ("paths", paths_changed || e.paths != o.paths),
        ("service", e.service != o.service),
        ("log.format", e.log.format != o.log.format),
        ("ollama.listen", e.ollama.listen != o.ollama.listen),
    ]);
    // Restart-only settings keep their running values, so what the daemon reports is true.
    let mut effective = new;
    effective.server.host = old.server.host.clone();
    effective.server.port = old.server.port;
    effective.server.cors_origins = old.server.cors_origins.clone();
    effective.server.max_connections = old.server.max_connections;
    effective.server.header_timeout_seconds = old.server.header_timeout_seconds;
    effective.server.idle_timeout_seconds = old.server.idle_timeout_seconds;
    effective.server.request_memory_mb = old.server.request_memory_mb;
    effective.upstream = old.upstream.clone();
    effective.auth.max_concurrent_per_account = old.auth.max_concurrent_per_account;
    effective.auth.token_store = old.auth.token_store;
    effective.appcast = old.appcast.clone();
    effective.responses = old.responses.clone();
    effective.paths = old.paths.clone();
    effective.service = old.service.clone();
    effective.log.format = old.log.format;
    effective.ollama.listen = old.ollama.listen;
    (
        effective,
        ReloadReport {
            config_file: None,
            applied,
            restart_needed,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_settings_apply_and_the_rest_waits_for_a_restart() {
        let old = Config::default();
        let mut new = Config::default();
        new.server.port = 9999;
        new.server.keepalive_seconds = 5;
        new.auth.rotation_strategy = crate::config::RotationStrategy::Sticky;
        new.model.default = "gpt-5.4-mini".into();
        new.upstream.compress_requests = false;
        new.responses.store_mb = 1;
        let (effective, report) = merge(&old, new, false);
        assert_eq!(
            report.applied,
            [
                "server.keepalive_seconds",
                "model",
                "auth.rotation_strategy"
            ]
        );
        assert_eq!(
            report.restart_needed,
            ["server.host/port", "upstream", "responses"]
        );
        assert_eq!(
            effective.responses, old.responses,
            "still the running store"
        );
        assert_eq!(
            effective.server.port, old.server.port,
            "still the bound port"
        );
        assert!(
            effective.upstream.compress_requests,
            "still the running client"
        );
        assert_eq!(effective.server.keepalive_seconds, 5);
        assert_eq!(effective.model.default, "gpt-5.4-mini");
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let (_, report) = merge(&Config::default(), Config::default(), false);
        assert!(report.applied.is_empty() && report.restart_needed.is_empty());
    }
}
