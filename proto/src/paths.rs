//! Where the control socket lives, shared so that the daemon and `codexctl` agree.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Overrides the socket path for both binaries.
pub const SOCKET_ENV: &str = "CODEX_PROXY_SOCKET";
pub const SOCKET_FILE_NAME: &str = "control.sock";
/// The per-application directory name under the XDG and system directories.
pub const APP_DIR: &str = "codex-proxy";
pub const SYSTEM_RUNTIME_DIR: &str = "/run/codex-proxy";

fn abs(value: Option<OsString>) -> Option<PathBuf> {
    value.map(PathBuf::from).filter(|p| p.is_absolute())
}

/// The sockets a client tries when none is named, best first: the user's own daemon
/// (`$XDG_RUNTIME_DIR/codex-proxy/`, else its state directory), then the system daemon.
/// `var` reads the environment (injected so the rules are testable).
pub fn client_candidates(is_root: bool, var: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let system = Path::new(SYSTEM_RUNTIME_DIR).join(SOCKET_FILE_NAME);
    if is_root {
        return vec![system];
    }
    let mut candidates = Vec::new();
    if let Some(dir) = abs(var("XDG_RUNTIME_DIR")) {
        candidates.push(dir.join(APP_DIR).join(SOCKET_FILE_NAME));
    }
    let state =
        abs(var("XDG_STATE_HOME")).or_else(|| abs(var("HOME")).map(|h| h.join(".local/state")));
    if let Some(state) = state {
        candidates.push(state.join(APP_DIR).join(SOCKET_FILE_NAME));
    }
    candidates.push(system);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_try_their_own_daemon_first() {
        let env = |name: &str| match name {
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
            "HOME" => Some("/home/ann".into()),
            _ => None,
        };
        assert_eq!(
            client_candidates(false, env),
            [
                "/run/user/1000/codex-proxy/control.sock",
                "/home/ann/.local/state/codex-proxy/control.sock",
                "/run/codex-proxy/control.sock"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            client_candidates(true, env),
            [PathBuf::from("/run/codex-proxy/control.sock")]
        );
        // Relative values are ignored, as the XDG spec asks.
        let relative = |name: &str| (name == "XDG_RUNTIME_DIR").then(|| "run".into());
        assert_eq!(client_candidates(false, relative).len(), 1);
    }
}
