//! Layering: built-in defaults < config file < environment < command-line flags.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::paths::{self, Environment, PathError, ResolvedPaths, vars};
use super::{Config, ConfigPath, HeaderText};

/// The largest config file we read; a bigger one is a mistake, not a config.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Defaults,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Defaults => f.write_str("built-in defaults"),
            Self::File(path) => write!(f, "config file {}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Flag(name) => write!(f, "command-line flag {name}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} does not exist (named by {by})", path.display())]
    NotFound { path: PathBuf, by: ConfigSource },
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {} is larger than {} bytes; is it the right file?", path.display(), MAX_CONFIG_BYTES)]
    TooLarge { path: PathBuf },
    #[error("{origin}{}: {reason}", location.as_deref().map(|l| format!(" ({l})")).unwrap_or_default())]
    Syntax {
        origin: ConfigSource,
        location: Option<String>,
        reason: String,
    },
    #[error("{origin}{}: key `{key}`: {reason}", location.as_deref().map(|l| format!(" ({l})")).unwrap_or_default())]
    Invalid {
        origin: ConfigSource,
        location: Option<String>,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Paths(#[from] PathError),
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub log_level: Option<String>,
}

/// A loaded, validated configuration and the paths it resolves to.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub paths: ResolvedPaths,
    /// Whether `RUST_LOG` was set; it then replaces `log.level` (unless `-v` was given).
    pub rust_log: Option<String>,
    /// The official client's home, for importing its installation id.
    pub codex_home: Option<PathBuf>,
    /// The command-line values, so a reload layers the same way.
    pub overrides: Overrides,
}

/// Loads the configuration in layers and validates it.
pub fn load(overrides: &Overrides, env: &Environment) -> Result<Loaded, ConfigError> {
    let config_file = locate_config(overrides, env)?;
    let file_source = config_file
        .clone()
        .map_or(ConfigSource::Defaults, ConfigSource::File);
    let mut config = match &config_file {
        Some(path) => parse_file(path)?,
        None => Config::default(),
    };

    let mut layer = Layer {
        config: &mut config,
        origins: HashMap::new(),
    };
    layer.apply_env(env)?;
    layer.apply_flags(overrides)?;
    let origins = layer.origins;

    config
        .validate()
        .map_err(|(key, reason)| ConfigError::Invalid {
            origin: origins
                .get(key)
                .cloned()
                .unwrap_or_else(|| file_source.clone()),
            location: None,
            key: key.to_owned(),
            reason,
        })?;

    let paths = paths::resolve(&config, env, config_file)?;
    let rust_log = env.var_str(vars::RUST_LOG).map(str::to_owned);
    Ok(Loaded {
        config,
        paths,
        rust_log,
        codex_home: env.codex_home(),
        overrides: overrides.clone(),
    })
}

/// `--config`, else `$CODEX_PROXY_CONFIG`, else the first default location that exists.
fn locate_config(overrides: &Overrides, env: &Environment) -> Result<Option<PathBuf>, ConfigError> {
    let explicit = match (&overrides.config, env.var(vars::CONFIG)) {
        (Some(path), _) => Some((path.clone(), ConfigSource::Flag("--config"))),
        (None, Some(path)) => Some((PathBuf::from(path), ConfigSource::Env(vars::CONFIG))),
        (None, None) => None,
    };
    if let Some((path, by)) = explicit {
        // A file the user named must exist: silently running on defaults would hide a typo.
        return if path.is_file() {
            Ok(Some(path))
        } else {
            Err(ConfigError::NotFound { path, by })
        };
    }
    Ok(paths::default_config_candidates(env)
        .into_iter()
        .find(|p| p.is_file()))
}

/// Reads and parses one config file.
pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    parse_str(&text, ConfigSource::File(path.to_owned()))
}

/// Parses TOML text into a [`Config`], naming the key and position of any problem.
pub fn parse_str(text: &str, source: ConfigSource) -> Result<Config, ConfigError> {
    let location = |span: Option<std::ops::Range<usize>>| span.map(|s| line_col(text, s.start));
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
        origin: source.clone(),
        location: location(e.span()),
        reason: e.message().trim().to_owned(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_owned();
        let mut key = if path == "." { String::new() } else { path };
        // For an unknown key some serde paths stop at the enclosing table; name the key itself.
        if let Some(unknown) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if key.is_empty() {
                unknown.clone_into(&mut key);
            } else if key.rsplit('.').next() != Some(unknown) {
                key = format!("{key}.{unknown}");
            }
        }
        ConfigError::Invalid {
            origin: source,
            location: location(inner.span()),
            key,
            reason: message,
        }
    })
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// Applies one layer of string values on top of the config, remembering where each came from.
struct Layer<'a> {
    config: &'a mut Config,
    origins: HashMap<&'static str, ConfigSource>,
}

impl Layer<'_> {
    fn apply_env(&mut self, env: &Environment) -> Result<(), ConfigError> {
        for (name, key) in [
            (vars::HOST, "server.host"),
            (vars::PORT, "server.port"),
            (vars::PLATFORM, "client_identity.platform"),
            (vars::ARCH, "client_identity.arch"),
            (vars::STATE_DIR, "paths.state_dir"),
            (vars::SOCKET, "paths.socket"),
            (vars::LOG, "log.level"),
            (vars::LOG_FORMAT, "log.format"),
        ] {
            let Some(raw) = env.var(name) else { continue };
            let source = ConfigSource::Env(name);
            let value = raw.to_str().ok_or_else(|| ConfigError::Invalid {
                origin: source.clone(),
                location: None,
                key: key.to_owned(),
                reason: "is not valid UTF-8".into(),
            })?;
            self.set(key, value, source)?;
        }
        Ok(())
    }

    fn apply_flags(&mut self, flags: &Overrides) -> Result<(), ConfigError> {
        if let Some(host) = &flags.host {
            self.set("server.host", host, ConfigSource::Flag("--host"))?;
        }
        if let Some(port) = flags.port {
            self.set(
                "server.port",
                &port.to_string(),
                ConfigSource::Flag("--port"),
            )?;
        }
        if let Some(dir) = &flags.state_dir {
            self.set(
                "paths.state_dir",
                &absolute(dir),
                ConfigSource::Flag("--state-dir"),
            )?;
        }
        if let Some(socket) = &flags.socket {
            self.set(
                "paths.socket",
                &absolute(socket),
                ConfigSource::Flag("--socket"),
            )?;
        }
        if let Some(level) = &flags.log_level {
            self.set("log.level", level, ConfigSource::Flag("-v"))?;
        }
        Ok(())
    }

    fn set(
        &mut self,
        key: &'static str,
        value: &str,
        source: ConfigSource,
    ) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            origin: source.clone(),
            location: None,
            key: key.to_owned(),
            reason,
        };
        let c = &mut *self.config;
        match key {
            "server.host" => c.server.host = parse(value).map_err(invalid)?,
            "server.port" => {
                c.server.port = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid(format!("`{value}` is not a port number (0-65535)")))?;
            }
            "client_identity.platform" => {
                c.client_identity.platform = Some(parse::<HeaderText>(value).map_err(invalid)?);
            }
            "client_identity.arch" => {
                c.client_identity.arch = Some(parse::<HeaderText>(value).map_err(invalid)?);
            }
            "paths.state_dir" => {
                c.paths.state_dir = Some(parse::<ConfigPath>(value).map_err(invalid)?)
            }
            "paths.socket" => c.paths.socket = Some(parse::<ConfigPath>(value).map_err(invalid)?),
            "log.level" => c.log.level = parse(value).map_err(invalid)?,
            "log.format" => c.log.format = parse_enum(value).map_err(invalid)?,
            _ => return Err(invalid("no such override".into())),
        }
        self.origins.insert(key, source);
        Ok(())
    }
}

/// Relative paths on the command line are relative to where the command was run.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .to_string_lossy()
        .into_owned()
}

fn parse<T: TryFrom<String, Error = String>>(value: &str) -> Result<T, String> {
    T::try_from(value.to_owned())
}

/// Parses a unit enum from its config spelling (`json`, `least_used`…).
fn parse_enum<T: DeserializeOwned>(value: &str) -> Result<T, String> {
    use serde::de::IntoDeserializer;
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        value.into_deserializer();
    T::deserialize(de).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        parse_str(text, ConfigSource::File("/etc/x.toml".into()))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(
            parse_str("", ConfigSource::Defaults).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let err = parse_err("[server]\nprot = 1\n");
        assert!(err.contains("key `server.prot`"), "{err}");
        assert!(err.contains("/etc/x.toml"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let err = parse_err("[sever]\nport = 1\n");
        assert!(err.contains("key `sever`"), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_reason() {
        let err = parse_err("[server]\nport = 70000\n");
        assert!(err.contains("key `server.port`"), "{err}");
        let err = parse_err("[server]\nhost = \"example.com\"\n");
        assert!(
            err.contains("key `server.host`") && err.contains("not an IP address"),
            "{err}"
        );
        let err = parse_err("[auth]\nrotation_strategy = \"random\"\n");
        assert!(
            err.contains("key `auth.rotation_strategy`") && err.contains("least_used"),
            "{err}"
        );
        let err = parse_err("[model.aliases]\ncodex = 5\n");
        assert!(err.contains("key `model.aliases.codex`"), "{err}");
        let err = parse_err("[server]\napi_keys = [\"ok-key-123\", \"bad key!\"]\n");
        assert!(err.contains("key `server.api_keys[1]`"), "{err}");
        let keyring = parse_str(
            "[auth]\ntoken_store = \"keyring\"\n",
            ConfigSource::File("/etc/x.toml".into()),
        )
        .unwrap();
        let (key, reason) = keyring.validate().unwrap_err();
        assert_eq!(key, "auth.token_store");
        assert!(reason.contains("use \"file\""), "{reason}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse_err("[server\nport = 1\n");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[server]\nport = 1111\nhost = \"127.0.0.1\"\n").unwrap();
        let file_str = file.to_str().unwrap();
        let env = Environment::with_vars(
            false,
            [
                ("HOME", "/home/u"),
                (vars::CONFIG, file_str),
                ("PORT", "2222"),
                ("CODEX_PROXY_HOST", "::1"),
            ],
        );
        let loaded = load(&Overrides::default(), &env).unwrap();
        assert_eq!(loaded.config.server.port, 2222);
        assert_eq!(loaded.config.server.host.to_string(), "::1");
        assert_eq!(loaded.paths.config_file.as_deref(), Some(file.as_path()));

        let flags = Overrides {
            port: Some(3333),
            ..Overrides::default()
        };
        assert_eq!(load(&flags, &env).unwrap().config.server.port, 3333);
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let env = Environment::with_vars(false, [("HOME", "/h"), ("PORT", "eighty")]);
        let err = load(&Overrides::default(), &env).unwrap_err().to_string();
        assert!(
            err.contains("environment variable PORT") && err.contains("server.port"),
            "{err}"
        );
        let env =
            Environment::with_vars(false, [("HOME", "/h"), ("CODEX_PROXY_LOG_FORMAT", "xml")]);
        let err = load(&Overrides::default(), &env).unwrap_err().to_string();
        assert!(
            err.contains("CODEX_PROXY_LOG_FORMAT") && err.contains("json"),
            "{err}"
        );
    }

    #[test]
    fn named_config_must_exist() {
        let env = Environment::with_vars(false, [("HOME", "/h")]);
        let flags = Overrides {
            config: Some("/nonexistent/c.toml".into()),
            ..Overrides::default()
        };
        let err = load(&flags, &env).unwrap_err().to_string();
        assert!(
            err.contains("does not exist") && err.contains("--config"),
            "{err}"
        );
    }

    #[test]
    fn no_file_anywhere_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment::with_vars(false, [("HOME", dir.path().to_str().unwrap())]);
        let loaded = load(&Overrides::default(), &env).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert_eq!(loaded.paths.config_file, None);
    }

    #[test]
    fn user_config_location_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let conf_dir = dir.path().join(".config/codex-proxy");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::write(conf_dir.join("config.toml"), "[server]\nport = 9999\n").unwrap();
        let env = Environment::with_vars(false, [("HOME", dir.path().to_str().unwrap())]);
        assert_eq!(
            load(&Overrides::default(), &env)
                .unwrap()
                .config
                .server
                .port,
            9999
        );
    }

    #[test]
    fn validation_errors_name_the_layer_that_set_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[auth]\nmax_concurrent_per_account = 0\n").unwrap();
        let env = Environment::with_vars(false, [("HOME", "/h")]);
        let flags = Overrides {
            config: Some(file.clone()),
            ..Overrides::default()
        };
        let err = load(&flags, &env).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(
            err.contains("auth.max_concurrent_per_account") && err.contains("out of range"),
            "{err}"
        );
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.toml");
        std::fs::write(&file, "#".repeat((MAX_CONFIG_BYTES + 1) as usize)).unwrap();
        assert!(matches!(
            parse_file(&file),
            Err(ConfigError::TooLarge { .. })
        ));
    }
}
