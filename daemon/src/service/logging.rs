//! Logging through `tracing` to stderr, as text or JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Loaded, LogFormat};

/// Installs the global subscriber. Precedence of the filter: `-v` > `RUST_LOG` > `log.level`
/// (which already carries `CODEX_PROXY_LOG`).
pub fn init(loaded: &Loaded, verbose_flag: bool) {
    let directives = match (&loaded.rust_log, verbose_flag) {
        (Some(rust_log), false) => rust_log.clone(),
        _ => loaded.config.log.level.as_str().to_owned(),
    };
    // RUST_LOG is not validated like the config; fall back rather than refuse to start.
    let filter = EnvFilter::builder()
        .parse(&directives)
        .unwrap_or_else(|_| EnvFilter::new(loaded.config.log.level.as_str()));

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `auto` becomes journald under systemd once that backend lands; text until then.
    let result = match loaded.config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text | LogFormat::Auto => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    // A subscriber already installed (in-process tests) is fine.
    drop(result);
}
