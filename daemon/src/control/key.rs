//! `key show` and `key rotate`.

use codex_proxy_proto::{ErrorKind, Response, Sensitive};

use super::views::error;
use crate::app::AppState;

pub fn show(state: &AppState) -> Response {
    let configured = !state.config().server.api_keys.is_empty();
    match state.api_keys().first() {
        Some(key) => Response::Key {
            key: Sensitive::new(key.expose()),
            source: if configured {
                "configured"
            } else {
                "generated"
            }
            .into(),
        },
        None => error(ErrorKind::Failed, "the daemon has no API key"),
    }
}

pub async fn rotate(state: &AppState) -> Response {
    if !state.config().server.api_keys.is_empty() {
        let file = state
            .paths()
            .config_file
            .as_ref()
            .map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
        return error(
            ErrorKind::Invalid,
            format!(
                "the keys come from server.api_keys in {file}; change them there and run `codexctl reload`"
            ),
        );
    }
    let state_for_write = state.clone();
    match tokio::task::spawn_blocking(move || state_for_write.rotate_generated_key()).await {
        Ok(Ok(key)) => {
            tracing::info!("API key rotated; the old key no longer works");
            Response::Key {
                key: Sensitive::new(key.expose()),
                source: "generated".into(),
            }
        }
        Ok(Err(e)) => error(ErrorKind::Failed, format!("cannot rotate the key: {e:#}")),
        Err(e) => error(ErrorKind::Failed, format!("cannot rotate the key: {e}")),
    }
}
