//! The control socket that `codexctl` talks to (protocol in the `codex-proxy-proto` crate).
//!
//! Each connection: peer credentials checked, a `Hello`/`Welcome` handshake within
//! [`HANDSHAKE_TIMEOUT`], then requests one at a time, each answered by the handler of its
//! family (one file each). Frames are capped before they are read, connections are capped in
//! number and time out when idle, so a slow or hostile peer cannot block the accept loop or
//! exhaust memory.

mod accounts;
mod key;
mod login;
mod peer;
mod reload;
mod rotation;
pub mod socket;
mod status;
mod usage;
mod views;

use std::sync::Arc;
use std::time::Duration;

use codex_proxy_proto::frame::{FrameError, nonblocking};
use codex_proxy_proto::{
    ErrorKind, ErrorReply, Hello, PROTOCOL, Request, Response, ServerHello, Welcome,
};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

pub use reload::reload;

use crate::config::Loaded;
use crate::server::AppState;

/// A peer must complete the handshake within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A peer that does not read its responses for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 32;

/// The bound socket and who may use it, made before the runtime starts.
#[derive(Debug)]
pub struct Control {
    socket: socket::ControlSocket,
    policy: Arc<peer::Policy>,
}

impl Control {
    /// Resolves the control group and creates the socket (blocking). `owner` (uid, gid) is
    /// the user the daemon will run as after dropping root; the socket is handed to it.
    pub fn bind(loaded: &Loaded, owner: Option<(u32, u32)>) -> anyhow::Result<Self> {
        let group = loaded.config.service.control_group.as_ref();
        let daemon_uid = owner.map_or_else(|| nix::unistd::Uid::effective().as_raw(), |o| o.0);
        let policy = peer::Policy::new(group.map(crate::config::PosixName::as_str), daemon_uid)?;
        let socket = socket::bind(&loaded.paths.socket, policy.control_gid(), owner)?;
        Ok(Self {
            socket,
            policy: Arc::new(policy),
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.socket.path
    }

    /// Accepts connections until `shutdown` resolves; the socket file goes with it.
    pub async fn serve(self, state: AppState, shutdown: impl Future<Output = ()>) {
        let listener = match self
            .socket
            .listener
            .try_clone()
            .and_then(tokio::net::UnixListener::from_std)
        {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!("control socket unusable: {e}");
                return;
            }
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("control socket accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    "control socket: {MAX_CONNECTIONS} connections already open; closing a new one"
                );
                continue;
            };
            let state = state.clone();
            let policy = self.policy.clone();
            tokio::spawn(async move {
                handle(stream, state, policy).await;
                drop(slot);
            });
        }
        drop(self);
    }
}

/// One client connection.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
}

impl Connection {
    /// Sends a frame; `false` when the peer is gone or does not read.
    pub async fn send<T: serde::Serialize>(&mut self, message: &T) -> bool {
        match tokio::time::timeout(
            WRITE_TIMEOUT,
            nonblocking::write_frame(&mut self.stream, message),
        )
        .await
        {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!("control client gone: {e}");
                false
            }
            Err(_) => {
                tracing::debug!("control client stopped reading; closing");
                false
            }
        }
    }

    /// Resolves when the client hangs up (or sends anything, which a waiting command does not
    /// expect). Used to cancel waits the client has abandoned.
    pub async fn closed(&mut self) {
        let mut byte = [0u8; 1];
        let _ = self.stream.read(&mut byte).await;
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        limit: Duration,
    ) -> Option<Result<T, FrameError>> {
        tokio::time::timeout(limit, nonblocking::read_frame(&mut self.stream))
            .await
            .ok()
    }
}

async fn handle(stream: UnixStream, state: AppState, policy: Arc<peer::Policy>) {
    let (uid, gid, pid) = match stream.peer_cred() {
        Ok(cred) => (cred.uid(), cred.gid(), cred.pid()),
        Err(e) => {
            tracing::warn!("control socket: cannot read the peer's credentials ({e}); closing");
            return;
        }
    };
    let mut conn = Connection { stream };
    let verdict = tokio::task::spawn_blocking(move || policy.check(uid, gid, pid)).await;
    let verdict = verdict.unwrap_or_else(|e| Err(format!("peer check failed: {e}")));
    if let Err(reason) = verdict {
        // Take the peer's hello first (bounded, briefly), so our refusal is what it reads
        // rather than a broken pipe while it is still writing.
        let _ = conn.read::<serde_json::Value>(Duration::from_secs(1)).await;
        tracing::warn!(
            uid,
            pid = pid.unwrap_or(0),
            "control socket: refused a peer: {reason}"
        );
        let refusal = ErrorReply::new(ErrorKind::PermissionDenied, reason);
        conn.send(&ServerHello::Refused(refusal)).await;
        return;
    }

    let hello: Hello = match conn.read(HANDSHAKE_TIMEOUT).await {
        Some(Ok(hello)) => hello,
        Some(Err(e)) => {
            tracing::warn!(uid, "control socket: bad handshake: {e}");
            let error = ErrorReply::new(ErrorKind::BadFrame, format!("bad handshake: {e}"));
            conn.send(&ServerHello::Refused(error)).await;
            return;
        }
        None => {
            tracing::warn!(
                uid,
                "control socket: no handshake within {} s; closing",
                HANDSHAKE_TIMEOUT.as_secs()
            );
            return;
        }
    };
    if hello.protocol.major != PROTOCOL.major {
        tracing::warn!(uid, client = %hello.client, "control socket: refused protocol {}", hello.protocol);
        let error = ErrorReply::new(
            ErrorKind::ProtocolMismatch,
            format!(
                "codex-proxy {} speaks control protocol {PROTOCOL}, the client {}: install matching versions",
                crate::VERSION,
                hello.protocol
            ),
        );
        conn.send(&ServerHello::Refused(error)).await;
        return;
    }
    if hello.protocol.minor != PROTOCOL.minor {
        tracing::warn!(client = %hello.client, "control client speaks protocol {}, the daemon {PROTOCOL}", hello.protocol);
    }
    let welcome = ServerHello::Welcome(Welcome {
        protocol: PROTOCOL,
        daemon_version: crate::VERSION.to_owned(),
    });
    if !conn.send(&welcome).await {
        return;
    }

    loop {
        let request: Request = match conn.read(IDLE_TIMEOUT).await {
            None | Some(Err(FrameError::Closed)) => return,
            Some(Ok(request)) => request,
            Some(Err(e @ FrameError::Malformed(_))) => {
                // The whole frame was read, so the stream is still in step.
                let reply = ErrorReply::new(
                    ErrorKind::BadFrame,
                    format!("not a request this daemon knows: {e}"),
                );
                if !conn.send(&Response::Error(reply)).await {
                    return;
                }
                continue;
            }
            Some(Err(e)) => {
                tracing::warn!(uid, "control socket: {e}; closing");
                conn.send(&Response::Error(ErrorReply::new(
                    ErrorKind::BadFrame,
                    e.to_string(),
                )))
                .await;
                return;
            }
        };
        tracing::debug!(uid, ?request, "control request");
        if !dispatch(&state, request, &mut conn).await {
            return;
        }
    }
}

/// Runs one request; `false` when the connection is finished.
async fn dispatch(state: &AppState, request: Request, conn: &mut Connection) -> bool {
    let response = match request {
        Request::Status => status::report(state),
        Request::WatchStatus { interval_ms } => {
            return status::watch(state, interval_ms, conn).await;
        }
        Request::Accounts => accounts::list(state),
        Request::AccountEnable { account } => accounts::set_enabled(state, &account, true).await,
        Request::AccountDisable { account } => accounts::set_enabled(state, &account, false).await,
        Request::AccountLabel { account, label } => {
            accounts::label(state, &account, label.as_deref()).await
        }
        Request::AccountRefresh { account } => accounts::refresh(state, &account).await,
        Request::Logout { account } => login::logout(state, &account).await,
        Request::LoginBrowser { callback_port } => login::begin_browser(state, callback_port),
        Request::LoginBrowserComplete {
            state: login_state,
            code,
        } => login::complete_browser(state, &login_state, code.expose()).await,
        Request::LoginPaste { url } => login::paste(state, url.expose()).await,
        Request::LoginDevice => return login::device(state, conn).await,
        Request::LoginImport { auth_json } => login::import(state, auth_json.expose()).await,
        Request::RotateStrategy { strategy } => rotation::set_strategy(state, strategy),
        Request::RotateNext => rotation::next(state),
        Request::RotatePin { account } => rotation::pin(state, &account),
        Request::RotateUnpin => rotation::unpin(state),
        Request::Usage => usage::report(state),
        Request::KeyShow => key::show(state),
        Request::KeyRotate => key::rotate(state).await,
        Request::Reload => reload(state).await,
    };
    conn.send(&response).await
}
