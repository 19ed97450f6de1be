//! Logging through `tracing`: journald (with fields) under systemd, text on stderr otherwise,
//! JSON on request. The level can change on reload.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

use crate::config::log_targets;
use crate::config::{Loaded, LogFormat};

/// Replaces the filter of the installed subscriber (set once by [`init`]).
static FILTER: OnceLock<reload::Handle<Targets, Registry>> = OnceLock::new();
/// The filter came from `-v` or `RUST_LOG`, which a reload of `log.level` must not override.
static PINNED: OnceLock<bool> = OnceLock::new();

/// Whether stderr is systemd's journal stream (`$JOURNAL_STREAM` names its device and inode).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Installs the global subscriber. Precedence of the filter: `-v` > `RUST_LOG` > `log.level`
/// (which already carries `CODEX_PROXY_LOG`).
pub fn init(loaded: &Loaded, verbose_flag: bool) {
    let (directives, pinned) = match (&loaded.rust_log, verbose_flag) {
        (Some(rust_log), false) => (rust_log.clone(), true),
        _ => (loaded.config.log.level.as_str().to_owned(), verbose_flag),
    };
    // RUST_LOG is not validated like the config; fall back rather than refuse to start.
    let filter = log_targets(&directives)
        .or_else(|_| log_targets(loaded.config.log.level.as_str()))
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);

    let journald = matches!(loaded.config.log.format, LogFormat::Auto) && stderr_is_journal();
    let result = match loaded.config.log.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        _ if journald => match tracing_journald::layer() {
            Ok(layer) => registry
                .with(layer.with_syslog_identifier("codex-proxy".into()))
                .try_init(),
            // No journal socket after all: plain text still reaches the journal via stderr.
            Err(_) => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(std::io::stderr),
                )
                .try_init(),
        },
        _ => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A subscriber already installed (in-process tests) is fine; then there is nothing to reload.
    if result.is_ok() {
        let _ = FILTER.set(handle);
        let _ = PINNED.set(pinned);
    }
}

/// Applies a new `log.level` (on reload). `Ok(false)` when `-v`/`RUST_LOG` keep theirs.
pub fn set_level(directives: &str) -> Result<bool, String> {
    if PINNED.get().copied().unwrap_or(false) {
        return Ok(false);
    }
    let Some(handle) = FILTER.get() else {
        return Ok(false);
    };
    let filter = log_targets(directives)?;
    handle.reload(filter).map_err(|e| e.to_string())?;
    Ok(true)
}
