//! The control socket that `codexctl` talks to (protocol in the `codex-proxy-proto` crate).
//!
//! Each connection: peer credentials checked, a `Hello`/`Welcome` handshake within
//! [`HANDSHAKE_TIMEOUT`], then requests one at a time, each answered by the handler of its
//! family (one file each). Frames are capped before they are read, connections are capped in
//! number (in all and per user, so one user cannot lock the others out) and time out when
//! idle, so a slow or hostile peer cannot block the accept loop or exhaust memory. A
//! connection over a cap is told so (`busy`), which `codexctl` reports with exit status 69.

mod accounts;
mod key;
mod login;
mod peer;
mod reload;
mod rotation;
pub mod socket;
pub mod status;
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

pub use login::{DeviceStarted, device_begin, device_finish};
pub use reload::reload;

use crate::app::AppState;
use crate::config::Loaded;

/// A peer must complete the handshake within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no request for this long is closed (`codexctl` opens one per command and
/// reads whatever it asks a person for before connecting).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// A peer that does not read its responses for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are refused as busy.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections of one user served at once.
pub const MAX_PER_USER: usize = 16;
/// Busy refusals being written at once; beyond that a new connection is just closed.
const MAX_REFUSING: usize = 8;

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
        let refusing = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING));
        let per_user = Arc::new(PerUser::default());
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
                    "control socket: {MAX_CONNECTIONS} connections already open; refusing a new one"
                );
                if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        let mut conn = Connection { stream };
                        refuse_busy(
                            &mut conn,
                            format!(
                                "all {MAX_CONNECTIONS} control connections are in use; try again shortly"
                            ),
                        )
                        .await;
                        drop(refusal);
                    });
                }
                continue;
            };
            let state = state.clone();
            let policy = self.policy.clone();
            let per_user = per_user.clone();
            tokio::spawn(async move {
                handle(stream, state, policy, &per_user).await;
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

/// Open connections per user.
#[derive(Debug, Default)]
struct PerUser(std::sync::Mutex<std::collections::HashMap<u32, usize>>);

/// One of a user's connections; frees its place when dropped.
struct UserSlot<'a> {
    users: &'a PerUser,
    uid: u32,
}

impl PerUser {
    fn take(&self, uid: u32) -> Option<UserSlot<'_>> {
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(uid).or_default();
        if *count >= MAX_PER_USER {
            return None;
        }
        *count += 1;
        Some(UserSlot { users: self, uid })
    }
}

impl Drop for UserSlot<'_> {
    fn drop(&mut self) {
        let mut open = self
            .users
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

/// Takes the peer's hello (bounded, briefly) so our refusal is what it reads rather than a
/// broken pipe while it is still writing, then says why it is refused.
async fn refuse(conn: &mut Connection, error: ErrorReply) {
    let _ = conn.read::<serde_json::Value>(Duration::from_secs(1)).await;
    conn.send(&ServerHello::Refused(error)).await;
}

async fn refuse_busy(conn: &mut Connection, reason: String) {
    refuse(conn, ErrorReply::new(ErrorKind::Busy, reason)).await;
}

async fn handle(stream: UnixStream, state: AppState, policy: Arc<peer::Policy>, users: &PerUser) {
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
        tracing::warn!(
            uid,
            pid = pid.unwrap_or(0),
            "control socket: refused a peer: {reason}"
        );
        refuse(
            &mut conn,
            ErrorReply::new(ErrorKind::PermissionDenied, reason),
        )
        .await;
        return;
    }
    let Some(_user_slot) = users.take(uid) else {
        tracing::warn!(
            uid,
            "control socket: uid {uid} already has {MAX_PER_USER} connections open; refusing another"
        );
        refuse_busy(
            &mut conn,
            format!(
                "this user already has {MAX_PER_USER} control connections open (a stuck \
                 `codexctl status --watch`?); close some and try again"
            ),
        )
        .await;
        return;
    };

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
        Request::WatchStatus { interval_ms } => {
            return status::watch(state, interval_ms, conn).await;
        }
        Request::LoginDevice => return login::device(state, conn).await,
        request => run(state, request).await,
    };
    conn.send(&response).await
}

/// Answers one request that has a single answer — the operations `codexctl` and the
/// dashboard share. The two that stream (`WatchStatus`, `LoginDevice`) are refused here; the
/// socket serves them itself and the dashboard through [`device_login`].
pub async fn run(state: &AppState, request: Request) -> Response {
    match request {
        Request::Status => status::report(state),
        Request::WatchStatus { .. } | Request::LoginDevice => views::error(
            ErrorKind::Invalid,
            "this request streams its answers; only the control socket serves it",
        ),
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
        Request::LoginImport { auth_json } => login::import(state, auth_json.expose()).await,
        Request::RotateStrategy { strategy } => rotation::set_strategy(state, strategy),
        Request::RotateNext => rotation::next(state),
        Request::RotatePin { account } => rotation::pin(state, &account),
        Request::RotateUnpin => rotation::unpin(state),
        Request::Usage => usage::report(state),
        Request::UsageHistory { daily } => {
            Response::UsageHistory(state.usage_history().view(daily))
        }
        Request::Requests {
            limit,
            failed,
            surface,
        } => Response::Requests {
            requests: state
                .requests()
                .recent((limit as usize).min(crate::requests::RING), |r| {
                    (!failed || r.failed()) && surface.as_deref().is_none_or(|s| r.surface == s)
                }),
        },
        Request::KeyShow => key::show(state),
        Request::KeyRotate => key::rotate(state).await,
        Request::Reload => reload(state).await,
    }
}
