//! Quota windows from the `x-codex-*` rate-limit headers of every backend response (§4.3).

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub used_percent: f64,
    pub window_minutes: u64,
    #[serde(default)]
    pub resets_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// The short window (about five hours).
    #[serde(default)]
    pub primary: Option<Window>,
    /// The long window (about a week).
    #[serde(default)]
    pub secondary: Option<Window>,
    #[serde(default)]
    pub updated_at: Option<i64>,
}

impl Quota {
    /// Reads the windows a response reports; `None` when it reports none.
    pub fn from_headers(headers: &HeaderMap, now: i64) -> Option<Self> {
        let primary = window(headers, "primary");
        let secondary = window(headers, "secondary");
        (primary.is_some() || secondary.is_some()).then_some(Self {
            primary,
            secondary,
            updated_at: Some(now),
        })
    }

    /// Reads `/wham/usage` (§5.2): `rate_limit.primary_window` / `secondary_window`, with
    /// window lengths in seconds (minutes = ceil(seconds / 60)).
    pub fn from_usage(usage: &serde_json::Value, now: i64) -> Option<Self> {
        let window = |name: &str| {
            let w = usage.get("rate_limit")?.get(name)?;
            let used_percent = w.get("used_percent")?.as_f64()?;
            let seconds = w
                .get("limit_window_seconds")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            let resets_at = w.get("reset_at").and_then(serde_json::Value::as_i64);
            Some(Window {
                used_percent,
                window_minutes: seconds.div_ceil(60),
                resets_at,
            })
        };
        let (primary, secondary) = (window("primary_window"), window("secondary_window"));
        (primary.is_some() || secondary.is_some()).then_some(Self {
            primary,
            secondary,
            updated_at: Some(now),
        })
    }

    /// The larger share used of the two windows (0–100).
    pub fn max_used(&self) -> f64 {
        [self.primary, self.secondary]
            .iter()
            .flatten()
            .map(|w| w.used_percent)
            .fold(0.0, f64::max)
    }
}

/// A window is reported only if its used-percent parses and it says something (§4.3).
fn window(headers: &HeaderMap, which: &str) -> Option<Window> {
    let get = |suffix: &str| {
        headers
            .get(format!("x-codex-{which}-{suffix}"))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let used_percent: f64 = get("used-percent")?.parse().ok()?;
    let window_minutes: u64 = get("window-minutes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let resets_at: Option<i64> = get("reset-at").and_then(|v| v.parse().ok());
    (used_percent != 0.0 || window_minutes != 0 || resets_at.is_some()).then_some(Window {
        used_percent,
        window_minutes,
        resets_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_windows() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-codex-primary-used-percent", "42.5"),
            ("x-codex-primary-window-minutes", "300"),
            ("x-codex-primary-reset-at", "1786009000"),
            ("x-codex-secondary-used-percent", "12.0"),
            ("x-codex-secondary-window-minutes", "10080"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let q = Quota::from_headers(&h, 5).unwrap();
        assert_eq!(
            q.primary,
            Some(Window {
                used_percent: 42.5,
                window_minutes: 300,
                resets_at: Some(1_786_009_000)
            })
        );
        assert_eq!(q.secondary.unwrap().window_minutes, 10080);
        assert!((q.max_used() - 42.5).abs() < f64::EPSILON);
    }

    #[test]
    fn empty_or_unparseable_windows_are_not_reported() {
        let mut h = HeaderMap::new();
        assert_eq!(Quota::from_headers(&h, 0), None);
        h.insert("x-codex-primary-used-percent", "0".parse().unwrap());
        assert_eq!(
            Quota::from_headers(&h, 0),
            None,
            "zero everything says nothing"
        );
        h.insert("x-codex-secondary-used-percent", "n/a".parse().unwrap());
        assert_eq!(Quota::from_headers(&h, 0), None);
    }
}
