//! Validated value types used by the config sections.
//!
//! Each type parses from the string form found in TOML, in the environment and on the command
//! line through one `TryFrom<String>`, so a bad value is rejected at the key that holds it, with
//! the same reason wherever it came from.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

/// The address the HTTP listener binds: an IP address, or `localhost` (loopback).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BindHost {
    text: String,
    ip: IpAddr,
}

impl BindHost {
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    pub fn is_loopback(&self) -> bool {
        self.ip.is_loopback()
    }
}

impl Default for BindHost {
    fn default() -> Self {
        Self {
            text: "127.0.0.1".into(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

impl TryFrom<String> for BindHost {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let trimmed = text.trim();
        let ip = if trimmed.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            // Accept the bracketed IPv6 form people copy from URLs.
            let bare = trimmed
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(trimmed);
            bare.parse::<IpAddr>().map_err(|_| {
                format!(
                    "`{text}` is not an IP address (use e.g. 127.0.0.1, ::1, 0.0.0.0 or localhost)"
                )
            })?
        };
        Ok(Self {
            text: trimmed.to_owned(),
            ip,
        })
    }
}

impl fmt::Debug for BindHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for BindHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A client API key. Its `Debug` never shows the key: configs get logged and pasted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ApiKey(String);

impl ApiKey {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 256;

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ApiKey {
    type Error = String;
    fn try_from(key: String) -> Result<Self, String> {
        // The reason never repeats the key itself.
        if key.len() < Self::MIN_LEN || key.len() > Self::MAX_LEN {
            return Err(format!(
                "an API key must be {} to {} characters long (this one has {})",
                Self::MIN_LEN,
                Self::MAX_LEN,
                key.len()
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("an API key may only contain visible ASCII characters (no spaces)".into());
        }
        Ok(Self(key))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A browser origin allowed by CORS: `*` or `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CorsOrigin(String);

impl CorsOrigin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CorsOrigin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "*" {
            return Ok(Self(text));
        }
        let url = Url::parse(&text).map_err(|e| format!("`{text}` is not an origin: {e}"))?;
        let plain = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !plain {
            return Err(format!(
                "`{text}` is not an origin: expected `*` or scheme://host[:port] with no path"
            ));
        }
        Ok(Self(url.origin().ascii_serialization()))
    }
}

/// A name clients reach the daemon by (`[server] allowed_hosts`): a DNS name, lower-cased, or
/// `*.` and a domain for every name under it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HostName(String);

impl HostName {
    /// Whether `host` (lower-case, without a port) is this name or, for `*.domain`, under it.
    pub fn matches(&self, host: &str) -> bool {
        match self.0.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == self.0,
        }
    }
}

impl TryFrom<String> for HostName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let name = text.trim().to_ascii_lowercase();
        let bare = name.strip_prefix("*.").unwrap_or(&name);
        let valid = !bare.is_empty()
            && bare.len() <= 253
            && bare.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            Ok(Self(name))
        } else {
            Err(format!(
                "`{text}` is not a host name (e.g. \"proxy.lan\" or \"*.example.internal\"; no port, no scheme)"
            ))
        }
    }
}

/// An `http://` or `https://` base URL, kept without a trailing slash so paths append cleanly.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Built-in URLs are literals known to be valid.
    pub(crate) fn builtin(url: &str) -> Self {
        Self(url.trim_end_matches('/').to_owned())
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let url = Url::parse(&text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}` must be an http:// or https:// URL"));
        }
        if url.host_str().is_none() {
            return Err(format!("`{text}` has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{text}` must not have a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a base URL must not carry credentials".into());
        }
        Ok(Self(text.trim_end_matches('/').to_owned()))
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An outbound proxy: `http://`, `https://`, `socks5://` or `socks5h://`. May carry credentials,
/// so `Debug` hides them.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ProxyUrl(String);

impl ProxyUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProxyUrl {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        // Errors name only the scheme and host: the URL may hold a password.
        let url = Url::parse(&text).map_err(|e| format!("not a proxy URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
            return Err(format!(
                "proxy scheme `{}` is not supported (use http, https, socks5 or socks5h)",
                url.scheme()
            ));
        }
        if url.host_str().is_none() {
            return Err("the proxy URL has no host".into());
        }
        Ok(Self(text))
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Url::parse(&self.0) {
            Ok(url) => write!(
                f,
                "ProxyUrl({}://{}{})",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Err(_) => f.write_str("ProxyUrl(<invalid>)"),
        }
    }
}

/// A value that goes into an HTTP header (identity fields): visible ASCII and spaces, no
/// characters that would break the `User-Agent` grammar.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HeaderText(String);

impl HeaderText {
    pub const MAX_LEN: usize = 128;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn builtin(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl TryFrom<String> for HeaderText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if text.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_graphic() || *c == ' ') || "();".contains(*c))
        {
            return Err(format!(
                "`{text}` contains {c:?}; use visible ASCII without ( ) ;"
            ));
        }
        Ok(Self(text))
    }
}

/// A Unix user or group name (checked against the system when the daemon starts as root).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PosixName(String);

impl PosixName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PosixName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let valid_first = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let valid_rest = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid_first || !valid_rest || name.len() > 32 {
            return Err(format!("`{name}` is not a valid user or group name"));
        }
        Ok(Self(name))
    }
}

/// An absolute path, or one starting with `~/` (expanded against `$HOME` at resolution time).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ConfigPath(PathBuf);

impl ConfigPath {
    pub fn as_path(&self) -> &std::path::Path {
        &self.0
    }

    /// Expands a leading `~/` against `home`.
    pub fn expand(&self, home: Option<&std::path::Path>) -> Option<PathBuf> {
        match self.0.strip_prefix("~") {
            Ok(rest) => home.map(|h| h.join(rest)),
            Err(_) => Some(self.0.clone()),
        }
    }
}

impl TryFrom<String> for ConfigPath {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.contains('\0') {
            return Err("must not contain a NUL byte".into());
        }
        let path = PathBuf::from(&text);
        if !(path.is_absolute() || text.starts_with("~/")) {
            return Err(format!(
                "`{text}` must be an absolute path (or start with ~/)"
            ));
        }
        Ok(Self(path))
    }
}

/// A `tracing` filter: a level (`info`) or directives (`info,codex_proxy=debug`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LogFilter(String);

impl LogFilter {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn builtin(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl TryFrom<String> for LogFilter {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
        // EnvFilter reads a bare word as a target name, so a typo like `verbose` would silently
        // log nothing; a directive without `=` must be a level.
        for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            if !directive.contains('=')
                && !LEVELS.contains(&directive.to_ascii_lowercase().as_str())
            {
                return Err(format!(
                    "`{directive}` is not a log level (use off, error, warn, info, debug, trace \
                     or target=level directives)"
                ));
            }
        }
        log_targets(&text).map_err(|e| format!("`{text}` is not a log level or filter: {e}"))?;
        Ok(Self(text))
    }
}

/// The filter for `directives`: comma-separated levels (`info`) and `target=level` pairs, as
/// `RUST_LOG` writes them; none at all means errors only. (`Targets` rather than `EnvFilter`:
/// the same syntax without span and field filters, and without a regex engine in the binary.)
pub fn log_targets(directives: &str) -> Result<tracing_subscriber::filter::Targets, String> {
    let directives: Vec<&str> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Ok(tracing_subscriber::filter::Targets::new()
            .with_default(tracing_subscriber::filter::LevelFilter::ERROR));
    }
    directives.join(",").parse().map_err(|e| format!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_host_accepts_ips_and_localhost() {
        assert!(
            BindHost::try_from("localhost".to_owned())
                .unwrap()
                .is_loopback()
        );
        assert!(
            BindHost::try_from("[::1]".to_owned())
                .unwrap()
                .is_loopback()
        );
        assert!(
            !BindHost::try_from("0.0.0.0".to_owned())
                .unwrap()
                .is_loopback()
        );
        let err = BindHost::try_from("example.com".to_owned()).unwrap_err();
        assert!(err.contains("not an IP address"), "{err}");
    }

    #[test]
    fn api_key_never_shows_in_debug_or_errors() {
        let key = ApiKey::try_from("sk-secret-value-123".to_owned()).unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        let err = ApiKey::try_from("has space inside".to_owned()).unwrap_err();
        assert!(!err.contains("space inside"), "{err}");
        let err = ApiKey::try_from("short".to_owned()).unwrap_err();
        assert!(!err.contains("short"), "{err}");
    }

    #[test]
    fn proxy_debug_hides_credentials() {
        let proxy = ProxyUrl::try_from("http://user:pw@proxy.local:3128".to_owned()).unwrap();
        assert_eq!(format!("{proxy:?}"), "ProxyUrl(http://proxy.local:3128)");
        assert!(ProxyUrl::try_from("ftp://x".to_owned()).is_err());
    }

    #[test]
    fn http_url_strips_trailing_slash_and_rejects_other_schemes() {
        let url = HttpUrl::try_from("https://chatgpt.com/backend-api/".to_owned()).unwrap();
        assert_eq!(url.as_str(), "https://chatgpt.com/backend-api");
        assert!(HttpUrl::try_from("file:///etc/passwd".to_owned()).is_err());
        assert!(HttpUrl::try_from("https://a.b/?q=1".to_owned()).is_err());
    }

    #[test]
    fn cors_origin_normalises() {
        let origin = CorsOrigin::try_from("https://App.Example.com".to_owned()).unwrap();
        assert_eq!(origin.as_str(), "https://app.example.com");
        assert!(CorsOrigin::try_from("https://a.com/path".to_owned()).is_err());
    }

    #[test]
    fn header_text_rejects_grammar_breakers() {
        assert!(HeaderText::try_from("Codex Desktop".to_owned()).is_ok());
        assert!(HeaderText::try_from("bad;value".to_owned()).is_err());
        assert!(HeaderText::try_from("line\nbreak".to_owned()).is_err());
    }

    #[test]
    fn config_path_expands_home() {
        let path = ConfigPath::try_from("~/state".to_owned()).unwrap();
        assert_eq!(
            path.expand(Some(std::path::Path::new("/home/u"))).unwrap(),
            PathBuf::from("/home/u/state")
        );
        assert!(ConfigPath::try_from("relative/dir".to_owned()).is_err());
    }

    #[test]
    fn log_filter_validates() {
        assert!(LogFilter::try_from("info,codex_proxy=debug".to_owned()).is_ok());
        assert!(LogFilter::try_from("DEBUG".to_owned()).is_ok());
        let err = LogFilter::try_from("verbose".to_owned()).unwrap_err();
        assert!(err.contains("not a log level"), "{err}");
        assert!(LogFilter::try_from("info,=[".to_owned()).is_err());
    }

    #[test]
    fn log_targets_read_levels_and_target_directives() {
        use tracing::Level;
        let filter = log_targets(" warn , codex_proxy=debug,hyper=off,").unwrap();
        assert!(filter.would_enable("codex_proxy::server", &Level::DEBUG));
        assert!(!filter.would_enable("codex_proxy::server", &Level::TRACE));
        assert!(filter.would_enable("reqwest", &Level::WARN));
        assert!(!filter.would_enable("reqwest", &Level::INFO));
        assert!(!filter.would_enable("hyper::proto", &Level::ERROR));
        let info = log_targets("INFO").unwrap();
        assert!(info.would_enable("anything", &Level::INFO));
        assert!(!info.would_enable("anything", &Level::DEBUG));
        // Nothing at all: errors only, as `RUST_LOG=` gives.
        let none = log_targets(" , ").unwrap();
        assert!(none.would_enable("anything", &Level::ERROR));
        assert!(!none.would_enable("anything", &Level::WARN));
        assert!(log_targets("codex_proxy=loud").is_err());
    }
}
