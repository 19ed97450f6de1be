//! Start-up order (shadowsocks-rust's, for a root start): check who we are, prepare the state
//! directory, bind the control socket and the HTTP listener, hand the files to the service
//! user and drop root, load the state as that user — all before any thread exists — then build
//! the runtime and serve.

use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Loaded;
use crate::server;

/// How long running requests may take to finish after a stop signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How the daemon was asked to run (command-line flags that are not config).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Run as root when no `[service] user` is set.
    pub allow_root: bool,
    /// Write the pid here once serving (removed at exit).
    pub pid_file: Option<PathBuf>,
}

/// Runs the daemon until SIGINT/SIGTERM.
pub fn start(loaded: Loaded, options: &StartOptions) -> anyhow::Result<()> {
    let target = super::privileges::plan(&loaded.config.service, options.allow_root)?;
    prepare_state_dir(&loaded.paths.state_dir)?;
    // Before the HTTP port, so a second instance stops here with "already running".
    let owner = target.as_ref().map(|t| (t.uid, t.gid));
    let control = crate::control::Control::bind(&loaded, owner)?;
    let http = bind(&loaded)?;
    let ollama = bind_ollama(&loaded)?;
    if let Some(target) = &target {
        super::privileges::hand_over(target, &loaded.paths.state_dir)?;
        super::privileges::drop_to(target)?;
    }
    super::memory::configure();
    let state = server::AppState::load(&loaded)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("codex-proxy")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(http).context("HTTP listener")?;
        let ollama = ollama
            .map(TcpListener::from_std)
            .transpose()
            .context("Ollama listener")?;
        serve(
            loaded,
            state,
            listener,
            ollama,
            control,
            options.pid_file.as_deref(),
            super::signals::terminated(),
        )
        .await
    })
}

/// Binds the HTTP listener named by the config (blocking, before privileges are dropped).
pub fn bind(loaded: &Loaded) -> anyhow::Result<std::net::TcpListener> {
    let server = &loaded.config.server;
    let addr = (server.host.ip(), server.port);
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!(
            "cannot listen on {}:{} (is another instance running?)",
            server.host, server.port
        )
    })?;
    listener
        .set_nonblocking(true)
        .context("HTTP listener: non-blocking mode")?;
    Ok(listener)
}

/// Binds `[ollama] listen` when it is set (blocking, before privileges are dropped).
pub fn bind_ollama(loaded: &Loaded) -> anyhow::Result<Option<std::net::TcpListener>> {
    let Some(addr) = loaded.config.ollama.listen else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on {addr} for the Ollama API ([ollama] listen; is Ollama itself running?)")
    })?;
    listener
        .set_nonblocking(true)
        .context("Ollama listener: non-blocking mode")?;
    Ok(Some(listener))
}

/// Serves HTTP on `listener` (and the Ollama API on `ollama`) and the control socket until
/// `shutdown` resolves, then lets open requests finish for up to [`DRAIN_TIMEOUT`].
pub async fn serve(
    loaded: Loaded,
    state: server::AppState,
    listener: TcpListener,
    ollama: Option<TcpListener>,
    control: crate::control::Control,
    pid_file: Option<&Path>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener
        .local_addr()
        .context("listener has no local address")?;
    state.set_listen(local);
    let app = server::router(state.clone());
    // Background work is told to stop (pueue's cooperative stop) and waited for: each task ends
    // at a point where nothing is half done. Token refreshes belong to the refresher, whose
    // running exchanges a stop waits for — a refresh dropped mid-way loses the sign-in.
    let stop = CancellationToken::new();
    let background = TaskTracker::new();
    let socket = control.path().display().to_string();
    background.spawn(control.serve(state.clone(), stop.clone().cancelled_owned()));
    background.spawn(super::signals::reload_on_hangup(
        state.clone(),
        stop.clone(),
    ));
    background.spawn(crate::schedulers::catalog_refresher(
        state.clone(),
        stop.clone(),
    ));
    background.spawn(crate::schedulers::token_refresher(
        state.clone(),
        stop.clone(),
    ));
    background.spawn(crate::schedulers::appcast_refresher(
        state.clone(),
        stop.clone(),
    ));
    background.close();
    // Before the "listening" line, so whoever waits for that line has seen these too.
    tracing::debug!(socket = %socket, "resolved paths");
    let ollama = match ollama {
        Some(listener) => {
            let addr = listener
                .local_addr()
                .context("the Ollama listener has no local address")?;
            tracing::info!("the Ollama API is also served on http://{addr}");
            Some(listener)
        }
        None => None,
    };
    tracing::info!(
        mode = %loaded.paths.mode,
        socket = %socket,
        config = %loaded.paths.config_file.as_deref().map_or("built-in defaults".into(), |p| p.display().to_string()),
        state_dir = %loaded.paths.state_dir.display(),
        "codex-proxy {} listening on http://{local}",
        crate::VERSION
    );
    // Serving: tell systemd, then whoever waits for the pid file (`--daemonize`).
    super::notify::ready(&state);
    let _pid_file = match pid_file.map(super::daemonize::PidFile::write).transpose() {
        Ok(pid_file) => pid_file,
        Err(e) => {
            tracing::error!("cannot write the pid file: {e:#}");
            None
        }
    };
    // The watchdog is kept fed until the very end: waiting for a refresh must not look like a hang.
    let keep_alive = tokio::spawn(super::notify::keep_alive(state.clone()));

    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let (stop, state) = (stop.clone(), state.clone());
        tokio::spawn(async move {
            shutdown.await;
            super::notify::stopping();
            stop.cancel();
            state.refresher().stop();
            let _ = stopping_tx.send(());
        });
    }
    let limits = server::listen::Limits::from_config(&loaded.config.server);
    tracing::debug!(
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        "listener limits"
    );
    let stop_serving = CancellationToken::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let main =
        server::listen::serve_shared(listener, app, limits, slots.clone(), stop_serving.clone());
    let second = async {
        if let Some(listener) = ollama {
            let app = server::ollama_router(state.clone());
            server::listen::serve_shared(listener, app, limits, slots, stop_serving.clone()).await;
        }
    };
    // Both listeners drain together; the daemon is done when both are.
    let server = async {
        tokio::join!(main, second);
    };
    let drain_deadline = async {
        if stopping_rx.await.is_err() {
            return std::future::pending().await;
        }
        stop_serving.cancel();
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        () = server => {}
        () = drain_deadline => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
    finish(&state, &background).await;
    keep_alive.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Background tasks get this long to finish their step after a stop.
const BACKGROUND_STOP: Duration = Duration::from_secs(5);
/// Token refreshes already sent get this long to finish and be saved (one exchange's timeout,
/// and the writes around it). `TimeoutStopSec=` of the units covers the drain plus this.
pub const REFRESH_STOP: Duration = Duration::from_secs(40);
/// A failing final save is tried this many times, a second apart.
const FINAL_SAVE_ATTEMPTS: u32 = 3;
/// The longest a stop takes: the drain, background tasks, running refreshes, the final saves.
/// The service units' stop timeouts (`TimeoutStopSec=`, launchd's `ExitTimeOut`) must cover it.
pub const STOP_BOUND: Duration = Duration::from_secs(
    DRAIN_TIMEOUT.as_secs()
        + BACKGROUND_STOP.as_secs()
        + REFRESH_STOP.as_secs()
        + FINAL_SAVE_ATTEMPTS as u64,
);

/// The end of a stop: background tasks finish their step, running refreshes finish and are
/// saved, then whatever changed since the last save is written — retried, and named loudly
/// when it cannot be.
async fn finish(state: &server::AppState, background: &TaskTracker) {
    if tokio::time::timeout(BACKGROUND_STOP, background.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "background tasks did not stop within {} s; leaving them",
            BACKGROUND_STOP.as_secs()
        );
    }
    if !state.refresher().wait(REFRESH_STOP).await {
        tracing::error!(
            "a token refresh did not finish within {} s of the stop; its account may need \
             `codexctl login` after the restart",
            REFRESH_STOP.as_secs()
        );
    }
    let accounts = state.accounts();
    for attempt in 1..=FINAL_SAVE_ATTEMPTS {
        if !accounts.is_dirty() {
            break;
        }
        if accounts.persist().await.is_ok() {
            break;
        }
        if attempt < FINAL_SAVE_ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let health = accounts.save_health();
    if !health.unsaved_tokens.is_empty() {
        let names: Vec<String> = health
            .unsaved_tokens
            .iter()
            .map(|id| {
                accounts
                    .get(id)
                    .map_or_else(|| id.clone(), |a| a.display_name().to_owned())
            })
            .collect();
        tracing::error!(
            "stopping with new tokens that could not be saved: {} will need `codexctl login`",
            names.join(", ")
        );
    }
    state.upstream().save_cookies().await;
    for attempt in 1..=FINAL_SAVE_ATTEMPTS {
        match state.usage_history().save().await {
            Ok(()) => break,
            Err(e) if attempt == FINAL_SAVE_ATTEMPTS => {
                tracing::error!("the usage history since the last save is lost: {e}");
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Creates the state directory 0700, or tightens an existing one that we own.
pub fn prepare_state_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let meta =
        std::fs::metadata(dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
            || {
                format!(
                    "state directory {} is open to other users and cannot be fixed",
                    dir.display()
                )
            },
        )?;
        tracing::warn!(
            "state directory {} was open to other users; set it to 0700",
            dir.display()
        );
    }
    remove_stale_temp_files(dir);
    Ok(())
}

/// A crash in the middle of an atomic write leaves its temp file (`.NAME.tmp-PID`) behind;
/// the real file is intact, so the leftovers go.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::debug!("removed a leftover temp file {name}"),
                Err(e) => tracing::warn!("cannot remove the leftover temp file {name}: {e}"),
            }
        }
    }
}
