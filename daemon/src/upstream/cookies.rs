//! Cloudflare cookies: the official client keeps only these, for the backend's host, and sends
//! them back (protocol §2.2). Everything else a response tries to set is dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderValue;

use crate::state::write_private_atomic;

pub const COOKIES_FILE: &str = "cookies.json";

/// The cookie names the official client keeps (`chatgpt_cloudflare_cookies.rs`).
fn is_cloudflare(name: &str) -> bool {
    matches!(
        name,
        "__cf_bm"
            | "__cflb"
            | "__cfruid"
            | "__cfseq"
            | "__cfwaitingroom"
            | "_cfuvid"
            | "cf_clearance"
            | "cf_ob_info"
            | "cf_use_ob"
    ) || name.starts_with("cf_chl_")
}

#[derive(Debug)]
pub struct CloudflareCookies {
    host: Option<String>,
    path: PathBuf,
    jar: Mutex<BTreeMap<String, String>>,
    dirty: AtomicBool,
}

impl CloudflareCookies {
    /// The jar for the backend at `base_url`, with what the state directory kept.
    pub fn load(state_dir: &Path, base_url: &str) -> Self {
        let path = state_dir.join(COOKIES_FILE);
        let jar = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let host = url::Url::parse(base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        Self {
            host,
            path,
            jar: Mutex::new(jar),
            dirty: AtomicBool::new(false),
        }
    }

    fn for_backend(&self, url: &url::Url) -> bool {
        self.host.is_some() && url.host_str() == self.host.as_deref()
    }

    /// Saves the jar if it changed (blocking: call from a blocking context).
    pub fn save_if_changed(&self) -> anyhow::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        write_private_atomic(&self.path, &serde_json::to_vec(&jar)?)
    }
}

impl reqwest::cookie::CookieStore for CloudflareCookies {
    fn set_cookies(&self, cookie_headers: &mut dyn Iterator<Item = &HeaderValue>, url: &url::Url) {
        if !self.for_backend(url) {
            return;
        }
        let mut jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for header in cookie_headers {
            let Ok(text) = header.to_str() else { continue };
            let mut parts = text.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            if !is_cloudflare(name) {
                continue;
            }
            let expired = parts.any(|a| a.eq_ignore_ascii_case("max-age=0"));
            if expired || value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
            self.dirty.store(true, Ordering::Release);
        }
    }

    fn cookies(&self, url: &url::Url) -> Option<HeaderValue> {
        if !self.for_backend(url) {
            return None;
        }
        let jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if jar.is_empty() {
            return None;
        }
        let header = jar
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&header).ok()
    }
}

#[cfg(test)]
mod tests {
    use reqwest::cookie::CookieStore;

    use super::*;

    #[test]
    fn keeps_only_cloudflare_cookies_for_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let jar = CloudflareCookies::load(dir.path(), "https://chatgpt.com/backend-api");
        let backend = url::Url::parse("https://chatgpt.com/backend-api/codex/responses").unwrap();
        let headers = [
            HeaderValue::from_static("__cf_bm=abc; path=/; HttpOnly; Secure"),
            HeaderValue::from_static("_puid=user-tracking; path=/"),
            HeaderValue::from_static("cf_chl_rc_m=1"),
        ];
        jar.set_cookies(&mut headers.iter(), &backend);
        assert_eq!(jar.cookies(&backend).unwrap(), "__cf_bm=abc; cf_chl_rc_m=1");
        let elsewhere = url::Url::parse("https://auth.openai.com/oauth/token").unwrap();
        assert_eq!(jar.cookies(&elsewhere), None, "never sent to another host");

        jar.save_if_changed().unwrap();
        let again = CloudflareCookies::load(dir.path(), "https://chatgpt.com/backend-api");
        assert_eq!(
            again.cookies(&backend).unwrap(),
            "__cf_bm=abc; cf_chl_rc_m=1"
        );
        let expire = [HeaderValue::from_static("__cf_bm=; Max-Age=0")];
        again.set_cookies(&mut expire.iter(), &backend);
        assert_eq!(again.cookies(&backend).unwrap(), "cf_chl_rc_m=1");
    }
}
