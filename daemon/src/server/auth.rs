//! API keys: `Authorization: Bearer KEY` or `x-api-key: KEY`, compared in constant time.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Which configured key a request used (its index), for per-client conversation keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKey(pub usize);

impl ClientKey {
    /// A loopback client of a surface whose clients send no key (Ollama's, when allowed).
    pub const KEYLESS: ClientKey = ClientKey(usize::MAX);
}

pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match identify(&state, request.headers(), None) {
        Ok(Some(client)) => {
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Ok(None) => missing_key(),
        Err(refused) => refused.into_response(),
    }
}

/// The 401 for a request that carries no key.
pub fn missing_key() -> Response {
    unauthorized(
        "Missing API key. Send it as `Authorization: Bearer KEY` or `x-api-key: KEY` \
         (`codexctl key show` prints it).",
    )
}

/// The key a request carries (`Authorization: Bearer`, `x-api-key`, `x-goog-api-key`, or
/// `extra` — a surface's own place for it), checked: `Ok(None)` when it carries none, the 401 when it is wrong.
pub fn identify(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    extra: Option<&str>,
) -> Result<Option<ClientKey>, Refused> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        // Google's SDKs and the Gemini CLI send it here.
        .or_else(|| headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()))
        .or(extra)
        .map(str::trim);
    let Some(given) = given.filter(|g| !g.is_empty()) else {
        return Ok(None);
    };
    // Every key is compared in full, so timing reveals neither which key nor how much matched.
    let mut matched = None;
    for (i, key) in state.api_keys().iter().enumerate() {
        if constant_time_eq(given.as_bytes(), key.expose().as_bytes()) {
            matched = Some(i);
        }
    }
    match matched {
        Some(index) => Ok(Some(ClientKey(index))),
        None if looks_like_jwt(given) => Err(Refused::SignInToken),
        None => Err(Refused::Incorrect),
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Incorrect,
    /// A ChatGPT access token (a JWT): the Codex CLI signed in with ChatGPT and pointed at
    /// codex-proxy through `chatgpt_base_url`. Deliberately refused: codex-proxy serves its
    /// own pool to holders of its API key, and neither forwards a person's own sign-in nor
    /// stands in for ChatGPT's account endpoints.
    SignInToken,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignInToken => unauthorized(
                "This is a ChatGPT sign-in token, not a codex-proxy API key. Point the Codex CLI \
                 at codex-proxy as a model provider (base_url = \"http://HOST:PORT/v1\", env_key \
                 naming a variable that holds the key from `codexctl key show`), not through \
                 chatgpt_base_url; see the README's \"Use it from Codex CLI\".",
            ),
            Refused::Incorrect => {
                unauthorized("Incorrect API key provided. `codexctl key show` prints the key.")
            }
        }
    }
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "invalid_api_key",
        message,
    )
    .into_response()
}

/// Three base64url parts, the first a JSON header (`eyJ…`).
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

/// Compares without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_keys() {
        assert!(constant_time_eq(b"codex-proxy-abc", b"codex-proxy-abc"));
        assert!(!constant_time_eq(b"codex-proxy-abc", b"codex-proxy-abd"));
        assert!(!constant_time_eq(b"codex-proxy-ab", b"codex-proxy-abc"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
