//! What every command shares: the connection to the daemon, failures and their exit
//! statuses, JSON or text output.

use std::path::PathBuf;
use std::time::Duration;

use codex_proxy_proto::client::{Client, ClientError};
use codex_proxy_proto::{ErrorKind, ErrorReply, Request, Response};

use crate::exit;
use crate::render::Style;

/// How long an ordinary request may take (a refresh talks to the auth server and the backend).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A failure with the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            kind,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Busy(_) => Self::new(exit::UNAVAILABLE, "busy", e.to_string()),
            ClientError::Unreachable { .. } | ClientError::Timeout => Self::new(
                exit::UNAVAILABLE,
                "unreachable",
                format!(
                    "{e}\nIs codex-proxy running? Try `systemctl status codex-proxy` (system service), \
                     `systemctl --user status codex-proxy`, or start it with `codex-proxy`."
                ),
            ),
            ClientError::PermissionDenied { .. } => Self::new(
                exit::NOPERM,
                "permission_denied",
                format!(
                    "{e}\nRun as root or the daemon's user, or join the group named in its \
                     [service] control_group."
                ),
            ),
            _ => Self::new(exit::FAILURE, "failed", e.to_string()),
        }
    }
}

impl From<ErrorReply> for Failure {
    fn from(e: ErrorReply) -> Self {
        let (code, kind) = match e.kind {
            ErrorKind::PermissionDenied => (exit::NOPERM, "permission_denied"),
            ErrorKind::NotFound => (exit::FAILURE, "not_found"),
            ErrorKind::Ambiguous => (exit::FAILURE, "ambiguous"),
            ErrorKind::Invalid => (exit::FAILURE, "invalid"),
            ErrorKind::ProtocolMismatch => (exit::FAILURE, "protocol_mismatch"),
            ErrorKind::BadFrame => (exit::FAILURE, "bad_frame"),
            ErrorKind::Failed | ErrorKind::Other => (exit::FAILURE, "failed"),
            ErrorKind::Busy => (exit::UNAVAILABLE, "busy"),
        };
        Self::new(code, kind, e.message)
    }
}

pub struct Ctx {
    pub socket: Option<PathBuf>,
    pub json: bool,
    pub style: Style,
    /// stderr is a terminal (spinners, prompts).
    pub interactive: bool,
}

impl Ctx {
    pub fn connect(&self) -> Result<Client, Failure> {
        let path = match &self.socket {
            Some(path) => path.clone(),
            None => find_socket()?,
        };
        let client = Client::connect(&path, &format!("codexctl {}", env!("CARGO_PKG_VERSION")))?;
        if let Some(warning) = client.version_warning() {
            eprintln!("codexctl: warning: {warning}");
        }
        Ok(client)
    }

    /// One request, one final response; an error response becomes a failure.
    pub fn call(&self, request: &Request) -> Result<Response, Failure> {
        let mut client = self.connect()?;
        match client.call(request, CALL_TIMEOUT)? {
            Response::Error(e) => Err(e.into()),
            response => Ok(response),
        }
    }

    /// Prints `response` as JSON, or `text` for people.
    pub fn show(&self, response: &Response, text: impl FnOnce() -> String) {
        if self.json {
            println!("{}", json(response));
        } else {
            print!("{}", text());
        }
    }
}

pub fn json(response: &Response) -> String {
    serde_json::to_string_pretty(response).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The first socket that exists among the defaults.
pub fn find_socket() -> Result<PathBuf, Failure> {
    let is_root = is_root();
    let candidates =
        codex_proxy_proto::paths::client_candidates(is_root, |name| std::env::var_os(name));
    // A socket we may not even look at (a directory closed to us) is still the one to try:
    // connecting then says "permission denied", which is the truth.
    let present = |p: &PathBuf| match std::fs::symlink_metadata(p) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    };
    if let Some(found) = candidates.iter().find(|p| present(p)) {
        return Ok(found.clone());
    }
    let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(Failure::new(
        exit::UNAVAILABLE,
        "unreachable",
        format!(
            "no codex-proxy control socket at {}.\nIs codex-proxy running? Start it with \
             `systemctl start codex-proxy` (system service) or `codex-proxy` (your own), or name \
             its socket with --socket / CODEX_PROXY_SOCKET.",
            list.join(", ")
        ),
    ))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn unexpected(response: &Response) -> String {
    format!("(unexpected answer from the daemon)\n{}\n", json(response))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where the person reads instructions: stdout for people, stderr when stdout is JSON.
pub fn say(ctx: &Ctx, text: &str) {
    if ctx.json {
        eprintln!("{text}");
    } else {
        println!("{text}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}
