//! The `Host` check on every route (DNS rebinding): a web page can point a domain of its own at
//! 127.0.0.1, and the browser then sends our loopback daemon requests whose `Host` is that
//! domain. On a loopback bind only names that cannot be re-pointed pass: IP addresses,
//! `localhost` and `*.localhost` (browsers resolve those to loopback themselves), and the names
//! in `[server] allowed_hosts`. On a network bind the same holds once `allowed_hosts` is set;
//! left empty there, any name passes and the API key protects the routes.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::api_error::quoted;
use crate::config::ServerConfig;

pub async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    // HTTP/1.0 without a Host: no browser sends that.
    let Some(host) = host else {
        return next.run(request).await;
    };
    if allowed(&state.config().server, &host) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        "invalid_request_error",
        "host_not_allowed",
        format!(
            "Host '{}' is not a name of this codex-proxy: requests by other names are refused \
             (a web page could point its own domain at this machine). If you reach codex-proxy by \
             this name, add it to [server] allowed_hosts.",
            quoted(&host)
        ),
    )
    .into_response()
}

/// Whether a request with this `Host` header may be served.
pub fn allowed(server: &ServerConfig, host_header: &str) -> bool {
    if !server.host.is_loopback() && server.allowed_hosts.is_empty() {
        return true;
    }
    let Some(host) = host_part(host_header) else {
        return false;
    };
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    host == "localhost"
        || host.ends_with(".localhost")
        || server.allowed_hosts.iter().any(|name| name.matches(host))
}

/// The host of a `Host` header value, without its port; `[…]` kept for IPv6 (checked).
fn host_part(value: &str) -> Option<&str> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let end = rest.find(']')?;
        rest[..end].parse::<std::net::Ipv6Addr>().ok()?;
        let after = &rest[end + 1..];
        return (after.is_empty() || port(after.strip_prefix(':')?)).then(|| &value[..end + 2]);
    }
    match value.rsplit_once(':') {
        Some((host, p)) if port(p) => Some(host),
        Some(_) => None,
        None => Some(value),
    }
    .filter(|h| !h.is_empty())
}

fn port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(host: &str, allowed: &[&str]) -> ServerConfig {
        ServerConfig {
            host: host.to_owned().try_into().unwrap(),
            allowed_hosts: allowed
                .iter()
                .map(|h| (*h).to_owned().try_into().unwrap())
                .collect(),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn loopback_binds_accept_only_names_that_cannot_be_repointed() {
        let s = server("127.0.0.1", &["proxy.lan", "*.example.internal"]);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "localhost.",
            "app.localhost:3000",
            "[::1]:8080",
            "[::1]",
            "192.168.1.20:8080",
            "proxy.lan:8080",
            "PROXY.LAN",
            "a.example.internal",
            "b.a.example.internal:1",
        ] {
            assert!(allowed(&s, ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "example.internal",
            "proxy.lan.evil",
            "xproxy.lan",
            "[::1",
            "[nothost]:80",
            "127.0.0.1:port",
            "",
            ":8080",
        ] {
            assert!(!allowed(&s, refused), "{refused}");
        }
    }

    #[test]
    fn network_binds_check_only_once_names_are_listed() {
        assert!(allowed(&server("0.0.0.0", &[]), "anything.example"));
        let s = server("0.0.0.0", &["proxy.lan"]);
        assert!(allowed(&s, "proxy.lan:8080") && allowed(&s, "10.0.0.5:8080"));
        assert!(!allowed(&s, "evil.example"));
    }

    #[test]
    fn host_names_are_validated() {
        for bad in ["", "http://x", "x:80", "a..b", "*.", "a b", &"a".repeat(64)] {
            assert!(
                crate::config::HostName::try_from(bad.to_owned()).is_err(),
                "{bad}"
            );
        }
    }
}
