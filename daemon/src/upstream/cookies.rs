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

/// The backend's Cloudflare cookies. The upstream client consults it on every backend request
/// and feeds it every backend response; auth-server traffic never touches it.
#[derive(Debug)]
pub struct CloudflareCookies {
    path: PathBuf,
    jar: Mutex<BTreeMap<String, String>>,
    /// Cheap check on every request: most of the time there is nothing to send.
    empty: AtomicBool,
    dirty: AtomicBool,
}

impl CloudflareCookies {
    pub fn load(state_dir: &Path) -> Self {
        let path = state_dir.join(COOKIES_FILE);
        let jar: BTreeMap<String, String> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Self {
            path,
            empty: AtomicBool::new(jar.is_empty()),
            jar: Mutex::new(jar),
            dirty: AtomicBool::new(false),
        }
    }

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

    /// Keeps the Cloudflare cookies a backend response sets (and drops expired ones).
    pub fn store<'a>(&self, set_cookie: impl Iterator<Item = &'a HeaderValue>) {
        let mut set_cookie = set_cookie.peekable();
        if set_cookie.peek().is_none() {
            return;
        }
        let mut jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for header in set_cookie {
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
        self.empty.store(jar.is_empty(), Ordering::Release);
    }

    /// The `Cookie` header for a backend request, if there is anything to send.
    pub fn header(&self) -> Option<HeaderValue> {
        if self.empty.load(Ordering::Acquire) {
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
        let mut value = HeaderValue::from_str(&header).ok()?;
        // A clearance cookie is a credential of sorts: kept out of `Debug` and HPACK tables.
        value.set_sensitive(true);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_cloudflare_cookies() {
        let dir = tempfile::tempdir().unwrap();
        let jar = CloudflareCookies::load(dir.path());
        assert_eq!(jar.header(), None, "nothing to send yet");
        let headers = [
            HeaderValue::from_static("__cf_bm=abc; path=/; HttpOnly; Secure"),
            HeaderValue::from_static("_puid=user-tracking; path=/"),
            HeaderValue::from_static("cf_chl_rc_m=1"),
        ];
        jar.store(headers.iter());
        assert_eq!(jar.header().unwrap(), "__cf_bm=abc; cf_chl_rc_m=1");

        jar.save_if_changed().unwrap();
        let again = CloudflareCookies::load(dir.path());
        assert_eq!(again.header().unwrap(), "__cf_bm=abc; cf_chl_rc_m=1");
        let expire = [HeaderValue::from_static("__cf_bm=; Max-Age=0")];
        again.store(expire.iter());
        assert_eq!(again.header().unwrap(), "cf_chl_rc_m=1");
        again.store([HeaderValue::from_static("cf_chl_rc_m=; Max-Age=0")].iter());
        assert_eq!(again.header(), None, "empty again");
    }
}
