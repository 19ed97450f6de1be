//! `reload` (and SIGHUP): re-read the config file and put in effect what can change live.
//!
//! Live: API keys, keep-alive, everything under `[model]`, the rotation strategy and the auth
//! timings, the client identity. Everything else (listen address, upstream client, CORS, paths,
//! service, appcast, log, per-account slots) keeps its running value and is reported as needing
//! a restart.

use codex_proxy_proto::{ErrorKind, ReloadReport, Response};

use super::views::error;
use crate::config::{Config, Environment};
use crate::server::AppState;

/// Reloads and reports; on a bad file nothing changes.
pub async fn reload(state: &AppState) -> Response {
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
    let mut applied = Vec::new();
    let mut restart_needed = Vec::new();
    let mut effective = new;
    let mut live = |name: &str, changed: bool| {
        if changed {
            applied.push(name.to_owned());
        }
    };
    live(
        "server.api_keys",
        effective.server.api_keys != old.server.api_keys,
    );
    live(
        "server.keepalive_seconds",
        effective.server.keepalive_seconds != old.server.keepalive_seconds,
    );
    live("model", effective.model != old.model);
    live(
        "auth.rotation_strategy",
        effective.auth.rotation_strategy != old.auth.rotation_strategy,
    );
    live(
        "auth.rate_limit_backoff_seconds",
        effective.auth.rate_limit_backoff_seconds != old.auth.rate_limit_backoff_seconds,
    );
    live(
        "auth.queue_timeout_seconds",
        effective.auth.queue_timeout_seconds != old.auth.queue_timeout_seconds,
    );
    live(
        "auth.refresh_margin_seconds",
        effective.auth.refresh_margin_seconds != old.auth.refresh_margin_seconds,
    );
    live(
        "client_identity",
        effective.client_identity != old.client_identity,
    );

    // Restart-only settings keep their running values, so what the daemon reports is true.
    let mut keep = |name: &str, changed: bool| {
        if changed {
            restart_needed.push(name.to_owned());
        }
    };
    keep(
        "server.host/port",
        (&effective.server.host, effective.server.port) != (&old.server.host, old.server.port),
    );
    keep(
        "server.cors_origins",
        effective.server.cors_origins != old.server.cors_origins,
    );
    keep("upstream", effective.upstream != old.upstream);
    keep(
        "auth.max_concurrent_per_account",
        effective.auth.max_concurrent_per_account != old.auth.max_concurrent_per_account,
    );
    keep("appcast", effective.appcast != old.appcast);
    keep("paths", paths_changed || effective.paths != old.paths);
    keep("service", effective.service != old.service);
    keep("log", effective.log != old.log);
    effective.server.host = old.server.host.clone();
    effective.server.port = old.server.port;
    effective.server.cors_origins = old.server.cors_origins.clone();
    effective.upstream = old.upstream.clone();
    effective.auth.max_concurrent_per_account = old.auth.max_concurrent_per_account;
    effective.auth.token_store = old.auth.token_store;
    effective.appcast = old.appcast.clone();
    effective.paths = old.paths.clone();
    effective.service = old.service.clone();
    effective.log = old.log.clone();
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
        let (effective, report) = merge(&old, new, false);
        assert_eq!(
            report.applied,
            [
                "server.keepalive_seconds",
                "model",
                "auth.rotation_strategy"
            ]
        );
        assert_eq!(report.restart_needed, ["server.host/port", "upstream"]);
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
