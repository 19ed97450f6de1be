//! A blocking client: connect, handshake, request, read responses.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::frame::{self, FrameError};
use crate::{ErrorKind, Hello, PROTOCOL, ProtocolVersion, Request, Response, ServerHello, Welcome};

/// How long the daemon has to answer the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens at the path (no file, or a stale one).
    Unreachable {
        path: PathBuf,
        source: io::Error,
    },
    /// The socket's mode, or the daemon's peer check, keeps this user out.
    PermissionDenied {
        path: PathBuf,
        reason: String,
    },
    /// The daemon speaks an incompatible major version.
    ProtocolMismatch {
        daemon: ProtocolVersion,
    },
    /// The daemon has too many connections open (from this user, or in all).
    Busy(String),
    /// The daemon refused for another reason.
    Refused(String),
    /// No answer in time.
    Timeout,
    Frame(FrameError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable { path, source } => {
                write!(
                    f,
                    "cannot reach codex-proxy at {}: {source}",
                    path.display()
                )
            }
            Self::PermissionDenied { path, reason } => {
                write!(f, "not allowed to use {}: {reason}", path.display())
            }
            Self::ProtocolMismatch { daemon } => write!(
                f,
                "the daemon speaks control protocol {daemon}, this codexctl {PROTOCOL}; install matching versions"
            ),
            Self::Busy(reason) => write!(f, "codex-proxy is busy: {reason}"),
            Self::Refused(reason) => write!(f, "the daemon refused: {reason}"),
            Self::Timeout => f.write_str("the daemon did not answer in time"),
            Self::Frame(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Self::Timeout
            }
            other => Self::Frame(other),
        }
    }
}

#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    welcome: Welcome,
}

impl Client {
    /// Connects to the daemon at `path` and shakes hands; `name` identifies the client in the
    /// daemon's log.
    pub fn connect(path: &Path, name: &str) -> Result<Self, ClientError> {
        let mut stream = UnixStream::connect(path).map_err(|source| {
            if source.kind() == io::ErrorKind::PermissionDenied {
                ClientError::PermissionDenied {
                    path: path.to_owned(),
                    reason: "the socket's permissions do not include this user (ask to be added to the daemon's control_group)".into(),
                }
            } else {
                ClientError::Unreachable {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        stream
            .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT)))
            .map_err(|e| ClientError::Frame(FrameError::Io(e)))?;
        let sent = frame::write_frame(
            &mut stream,
            &Hello {
                protocol: PROTOCOL,
                client: name.to_owned(),
            },
        );
        // A daemon that refuses us may close before taking the hello; its refusal is still
        // there to read, and says more than the broken pipe.
        let answer = frame::read_frame::<ServerHello>(&mut stream);
        let answer = match (sent, answer) {
            (_, Ok(answer)) => answer,
            (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(e.into()),
        };
        let welcome = match answer {
            ServerHello::Welcome(welcome) => welcome,
            ServerHello::Refused(error) => {
                return Err(match error.kind {
                    ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                        path: path.to_owned(),
                        reason: error.message,
                    },
                    ErrorKind::Busy => ClientError::Busy(error.message),
                    _ => ClientError::Refused(error.message),
                });
            }
        };
        if welcome.protocol.major != PROTOCOL.major {
            return Err(ClientError::ProtocolMismatch {
                daemon: welcome.protocol,
            });
        }
        Ok(Self { stream, welcome })
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// A warning worth showing when the daemon's minor version differs.
    pub fn version_warning(&self) -> Option<String> {
        (self.welcome.protocol != PROTOCOL).then(|| {
            format!(
                "codex-proxy {} speaks control protocol {}, this codexctl {}; some fields may be missing",
                self.welcome.daemon_version, self.welcome.protocol, PROTOCOL
            )
        })
    }

    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        frame::write_frame(&mut self.stream, request)?;
        Ok(())
    }

    /// The next response; `timeout` bounds the wait (`None` waits as long as it takes).
    pub fn receive(&mut self, timeout: Option<Duration>) -> Result<Response, ClientError> {
        self.stream
            .set_read_timeout(timeout)
            .map_err(|e| ClientError::Frame(FrameError::Io(e)))?;
        Ok(frame::read_frame(&mut self.stream)?)
    }

    /// Sends `request` and returns its (final) response, waiting at most `timeout`.
    pub fn call(&mut self, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
        self.send(request)?;
        self.receive(Some(timeout))
    }
}
