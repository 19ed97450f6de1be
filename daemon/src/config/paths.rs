//! Where the daemon keeps its files, in system mode and in user mode.
//!
//! Resolution is a pure function of an [`Environment`] snapshot, so every rule is unit-tested
//! without touching the process environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::Config;

/// The environment variables the daemon reads, in one place.
pub mod vars {
    pub const CONFIG: &str = "CODEX_PROXY_CONFIG";
    pub const STATE_DIR: &str = "CODEX_PROXY_STATE_DIR";
    pub const SOCKET: &str = codex_proxy_proto::paths::SOCKET_ENV;
    pub const LOG: &str = "CODEX_PROXY_LOG";
    pub const LOG_FORMAT: &str = "CODEX_PROXY_LOG_FORMAT";
    pub const HOST: &str = "CODEX_PROXY_HOST";
    pub const PORT: &str = "PORT";
    pub const PLATFORM: &str = "CODEX_PLATFORM";
    pub const ARCH: &str = "CODEX_ARCH";
    pub const RUST_LOG: &str = "RUST_LOG";
    // Set by systemd for units with StateDirectory= / RuntimeDirectory= / ConfigurationDirectory=.
    pub const SYSTEMD_STATE: &str = "STATE_DIRECTORY";
    pub const SYSTEMD_RUNTIME: &str = "RUNTIME_DIRECTORY";
    pub const SYSTEMD_CONFIG: &str = "CONFIGURATION_DIRECTORY";
    pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
    pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
    pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
    pub const HOME: &str = "HOME";
    /// The official client's home (default `~/.codex`).
    pub const CODEX_HOME: &str = "CODEX_HOME";

    pub const ALL: [&str; 18] = [
        CONFIG,
        STATE_DIR,
        SOCKET,
        LOG,
        LOG_FORMAT,
        HOST,
        PORT,
        PLATFORM,
        ARCH,
        RUST_LOG,
        SYSTEMD_STATE,
        SYSTEMD_RUNTIME,
        SYSTEMD_CONFIG,
        XDG_STATE_HOME,
        XDG_CONFIG_HOME,
        XDG_RUNTIME_DIR,
        HOME,
        CODEX_HOME,
    ];
}

/// System mode: a service started by root or by a system service manager; files under
/// `/etc`, `/var/lib`, `/run`. User mode: a person's own daemon; files under the XDG dirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    System,
    User,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::System => "system",
            Self::User => "user",
        })
    }
}

/// A snapshot of what path resolution depends on.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, OsString>,
    pub is_root: bool,
}

impl Environment {
    pub fn from_process() -> Self {
        let vars = vars::ALL
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|v| ((*name).to_owned(), v)))
            .collect();
        Self {
            vars,
            is_root: nix::unistd::geteuid().is_root(),
        }
    }

    /// For tests: an environment with exactly these variables.
    pub fn with_vars<'a>(
        is_root: bool,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), OsString::from(v)))
            .collect();
        Self { vars, is_root }
    }

    /// A set, non-empty variable.
    pub fn var(&self, name: &str) -> Option<&OsString> {
        self.vars.get(name).filter(|v| !v.is_empty())
    }

    pub fn var_str(&self, name: &str) -> Option<&str> {
        self.var(name).and_then(|v| v.to_str())
    }

    /// An absolute path from a variable; relative values are ignored, as the XDG spec says.
    fn abs_path(&self, name: &str) -> Option<PathBuf> {
        // systemd passes several directories colon-separated; the first is ours.
        let value = self.var(name)?.to_str()?;
        let first = value.split(':').next()?;
        let path = PathBuf::from(first);
        path.is_absolute().then_some(path)
    }

    pub fn home(&self) -> Option<PathBuf> {
        self.abs_path(vars::HOME)
    }

    /// The official client's home: `$CODEX_HOME`, else `~/.codex`.
    pub fn codex_home(&self) -> Option<PathBuf> {
        self.abs_path(vars::CODEX_HOME)
            .or_else(|| self.home().map(|h| h.join(".codex")))
    }

    pub fn mode(&self) -> Mode {
        if self.is_root {
            Mode::System
        } else {
            Mode::User
        }
    }
}

/// Every path the daemon uses, resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResolvedPaths {
    pub mode: Mode,
    /// The config file in effect; `None` when running on built-in defaults.
    pub config_file: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
}

pub const SYSTEM_CONFIG_DIR: &str = "/etc/codex-proxy";
pub const SYSTEM_STATE_DIR: &str = "/var/lib/codex-proxy";
pub const CONFIG_FILE_NAME: &str = "config.toml";
// Shared with codexctl, so both look in the same places.
pub use codex_proxy_proto::paths::{APP_DIR, SOCKET_FILE_NAME, SYSTEM_RUNTIME_DIR};

/// Where to look for a config file when none is named explicitly, best first.
pub fn default_config_candidates(env: &Environment) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = env.abs_path(vars::SYSTEMD_CONFIG) {
        candidates.push(dir.join(CONFIG_FILE_NAME));
    }
    match env.mode() {
        Mode::System => candidates.push(Path::new(SYSTEM_CONFIG_DIR).join(CONFIG_FILE_NAME)),
        Mode::User => {
            let base = env
                .abs_path(vars::XDG_CONFIG_HOME)
                .or_else(|| env.home().map(|h| h.join(".config")));
            if let Some(base) = base {
                candidates.push(base.join(APP_DIR).join(CONFIG_FILE_NAME));
            }
        }
    }
    candidates
}

/// Error when a path cannot be resolved (no `$HOME` in user mode, say).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

/// Resolves the state directory and socket from the config (already layered with env and flags)
/// and the environment.
pub fn resolve(
    config: &Config,
    env: &Environment,
    config_file: Option<PathBuf>,
) -> Result<ResolvedPaths, PathError> {
    let mode = env.mode();
    let home = env.home();
    let expand = |p: &super::ConfigPath, key: &str| {
        p.expand(home.as_deref())
            .ok_or_else(|| PathError(format!("{key}: cannot expand `~` because $HOME is not set")))
    };

    let state_dir = match &config.paths.state_dir {
        Some(p) => expand(p, "paths.state_dir")?,
        None => match (env.abs_path(vars::SYSTEMD_STATE), mode) {
            (Some(dir), _) => dir,
            (None, Mode::System) => PathBuf::from(SYSTEM_STATE_DIR),
            (None, Mode::User) => env
                .abs_path(vars::XDG_STATE_HOME)
                .or_else(|| home.as_ref().map(|h| h.join(".local/state")))
                .map(|base| base.join(APP_DIR))
                .ok_or_else(|| {
                    PathError(
                        "cannot place the state directory: neither $XDG_STATE_HOME nor $HOME is \
                         set (set paths.state_dir or CODEX_PROXY_STATE_DIR)"
                            .into(),
                    )
                })?,
        },
    };

    let socket = match &config.paths.socket {
        Some(p) => expand(p, "paths.socket")?,
        None => match (env.abs_path(vars::SYSTEMD_RUNTIME), mode) {
            (Some(dir), _) => dir.join(SOCKET_FILE_NAME),
            (None, Mode::System) => Path::new(SYSTEM_RUNTIME_DIR).join(SOCKET_FILE_NAME),
            (None, Mode::User) => match env.abs_path(vars::XDG_RUNTIME_DIR) {
                Some(dir) => dir.join(APP_DIR).join(SOCKET_FILE_NAME),
                None => state_dir.join(SOCKET_FILE_NAME),
            },
        },
    };
    // sun_path holds 108 bytes including the terminating NUL.
    if socket.as_os_str().len() > 107 {
        return Err(PathError(format!(
            "paths.socket: `{}` is longer than the 107 bytes a Unix socket path may have",
            socket.display()
        )));
    }

    Ok(ResolvedPaths {
        mode,
        config_file,
        state_dir,
        socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_with(env: &Environment, config: &Config) -> ResolvedPaths {
        resolve(config, env, None).unwrap()
    }

    #[test]
    fn user_mode_uses_xdg_dirs() {
        let env = Environment::with_vars(
            false,
            [
                ("HOME", "/home/u"),
                ("XDG_STATE_HOME", "/xdg/state"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ],
        );
        let paths = resolve_with(&env, &Config::default());
        assert_eq!(paths.mode, Mode::User);
        assert_eq!(paths.state_dir, PathBuf::from("/xdg/state/codex-proxy"));
        assert_eq!(
            paths.socket,
            PathBuf::from("/run/user/1000/codex-proxy/control.sock")
        );
    }

    #[test]
    fn user_mode_falls_back_to_home_and_state_dir_socket() {
        let env =
            Environment::with_vars(false, [("HOME", "/home/u"), ("XDG_STATE_HOME", "relative")]);
        let paths = resolve_with(&env, &Config::default());
        assert_eq!(
            paths.state_dir,
            PathBuf::from("/home/u/.local/state/codex-proxy")
        );
        assert_eq!(
            paths.socket,
            PathBuf::from("/home/u/.local/state/codex-proxy/control.sock")
        );
    }

    #[test]
    fn system_mode_uses_fhs_dirs() {
        let env = Environment::with_vars(true, [("HOME", "/root")]);
        let paths = resolve_with(&env, &Config::default());
        assert_eq!(paths.mode, Mode::System);
        assert_eq!(paths.state_dir, PathBuf::from("/var/lib/codex-proxy"));
        assert_eq!(paths.socket, PathBuf::from("/run/codex-proxy/control.sock"));
    }

    #[test]
    fn systemd_directories_win_over_mode_defaults() {
        let env = Environment::with_vars(
            false,
            [
                ("STATE_DIRECTORY", "/var/lib/codex-proxy:/var/lib/other"),
                ("RUNTIME_DIRECTORY", "/run/codex-proxy"),
                ("CONFIGURATION_DIRECTORY", "/etc/codex-proxy"),
            ],
        );
        let paths = resolve_with(&env, &Config::default());
        assert_eq!(paths.state_dir, PathBuf::from("/var/lib/codex-proxy"));
        assert_eq!(paths.socket, PathBuf::from("/run/codex-proxy/control.sock"));
        assert_eq!(
            default_config_candidates(&env)[0],
            PathBuf::from("/etc/codex-proxy/config.toml")
        );
    }

    #[test]
    fn explicit_paths_win_and_expand_home() {
        let env = Environment::with_vars(false, [("HOME", "/home/u"), ("STATE_DIRECTORY", "/sd")]);
        let mut config = Config::default();
        config.paths.state_dir = Some("~/cp".to_owned().try_into().unwrap());
        config.paths.socket = Some("/tmp/cp.sock".to_owned().try_into().unwrap());
        let paths = resolve_with(&env, &config);
        assert_eq!(paths.state_dir, PathBuf::from("/home/u/cp"));
        assert_eq!(paths.socket, PathBuf::from("/tmp/cp.sock"));
    }

    #[test]
    fn no_home_in_user_mode_is_a_clear_error() {
        let env = Environment::with_vars(false, []);
        let err = resolve(&Config::default(), &env, None).unwrap_err();
        assert!(err.0.contains("CODEX_PROXY_STATE_DIR"), "{err}");
    }

    #[test]
    fn overlong_socket_path_is_refused() {
        let env = Environment::with_vars(false, [("HOME", "/h")]);
        let mut config = Config::default();
        config.paths.socket = Some(format!("/{}", "s".repeat(120)).try_into().unwrap());
        let err = resolve(&config, &env, None).unwrap_err();
        assert!(err.0.contains("107 bytes"), "{err}");
    }

    #[test]
    fn config_candidates_per_mode() {
        let user = Environment::with_vars(false, [("HOME", "/home/u")]);
        assert_eq!(
            default_config_candidates(&user),
            vec![PathBuf::from("/home/u/.config/codex-proxy/config.toml")]
        );
        let system = Environment::with_vars(true, []);
        assert_eq!(
            default_config_candidates(&system),
            vec![PathBuf::from("/etc/codex-proxy/config.toml")]
        );
    }
}
