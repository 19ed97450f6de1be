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

/// One account as the pool counts it: its windows, and whether it is out (cooling down after
/// its usage limit).
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub quota: &'a Quota,
    pub limited_until: Option<i64>,
}

/// The quota of the whole pool, as one account would report it: each window's used share is
/// the mean over the accounts that report it (an account that is out counts as fully used), it
/// resets when the first of them resets, and the pool is limited only when every account is.
#[derive(Debug, Clone, PartialEq)]
pub struct Pooled {
    pub primary: Option<Window>,
    pub secondary: Option<Window>,
    pub limit_reached: bool,
}

pub fn pooled(members: &[Member<'_>], now: i64) -> Pooled {
    let out = |m: &Member<'_>, w: Option<Window>| {
        m.limited_until.is_some_and(|until| until > now)
            || w.is_some_and(|w| w.used_percent >= 100.0)
    };
    let window = |pick: fn(&Quota) -> Option<Window>| -> Option<Window> {
        let mut sum = 0.0;
        let mut count = 0u32;
        let mut minutes = 0;
        let mut resets: Option<i64> = None;
        for m in members {
            let w = pick(m.quota);
            let used = if out(m, w) {
                100.0
            } else {
                match w {
                    Some(w) => w.used_percent.clamp(0.0, 100.0),
                    None => continue,
                }
            };
            sum += used;
            count += 1;
            if let Some(w) = w {
                minutes = minutes.max(w.window_minutes);
                if let Some(at) = w.resets_at.filter(|at| *at > now) {
                    resets = Some(resets.map_or(at, |r| r.min(at)));
                }
            }
        }
        (count > 0).then(|| Window {
            used_percent: sum / f64::from(count),
            window_minutes: minutes,
            resets_at: resets,
        })
    };
    Pooled {
        primary: window(|q| q.primary),
        secondary: window(|q| q.secondary),
        limit_reached: !members.is_empty()
            && members
                .iter()
                .all(|m| out(m, m.quota.primary) || out(m, m.quota.secondary)),
    }
}

impl Pooled {
    /// The `x-codex-*` rate-limit headers of a backend response (§4.3), for the pool.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        for (name, window) in [("primary", self.primary), ("secondary", self.secondary)] {
            if let Some(w) = window {
                headers.push((
                    format!("x-codex-{name}-used-percent"),
                    format!("{:.1}", w.used_percent),
                ));
                headers.push((
                    format!("x-codex-{name}-window-minutes"),
                    w.window_minutes.to_string(),
                ));
                if let Some(at) = w.resets_at {
                    headers.push((format!("x-codex-{name}-reset-at"), at.to_string()));
                }
            }
        }
        headers
    }

    /// A `codex.rate_limits` WebSocket frame (§5.4) for the pool; `None` while no account has
    /// reported a quota.
    pub fn rate_limits_frame(&self, plan: &str) -> Option<serde_json::Value> {
        if self.primary.is_none() && self.secondary.is_none() {
            return None;
        }
        let window = |w: Option<Window>| {
            w.map(|w| {
                serde_json::json!({
                    "used_percent": w.used_percent,
                    "window_minutes": w.window_minutes,
                    "reset_at": w.resets_at,
                })
            })
        };
        Some(serde_json::json!({
            "type": "codex.rate_limits",
            "plan_type": plan,
            "rate_limits": {
                "allowed": !self.limit_reached,
                "limit_reached": self.limit_reached,
                "primary": window(self.primary),
                "secondary": window(self.secondary),
            },
            "code_review_rate_limits": null,
            "credits": null,
            "promo": null,
        }))
    }

    /// `/wham/usage` (§5.2) for the pool. Every number is an integer: the Codex CLI's decoder
    /// refuses a float there.
    pub fn usage_json(&self, plan: &str, now: i64) -> serde_json::Value {
        let window = |w: Option<Window>| {
            w.map(|w| {
                let reset_at = w.resets_at.unwrap_or(now);
                serde_json::json!({
                    "used_percent": w.used_percent.ceil() as i64,
                    "limit_window_seconds": w.window_minutes * 60,
                    "reset_after_seconds": (reset_at - now).max(0),
                    "reset_at": reset_at,
                })
            })
        };
        serde_json::json!({
            "plan_type": plan,
            "rate_limit": {
                "allowed": !self.limit_reached,
                "limit_reached": self.limit_reached,
                "primary_window": window(self.primary),
                "secondary_window": window(self.secondary),
            },
            "credits": {"has_credits": false, "unlimited": false, "balance": "0"},
            "additional_rate_limits": [],
            "rate_limit_reached_type": if self.limit_reached {
                serde_json::json!({"type": "rate_limit_reached"})
            } else {
                serde_json::Value::Null
            },
        })
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

    fn quota(primary: f64, resets_at: i64) -> Quota {
        Quota {
            primary: Some(Window {
                used_percent: primary,
                window_minutes: 300,
                resets_at: Some(resets_at),
            }),
            secondary: Some(Window {
                used_percent: primary / 2.0,
                window_minutes: 10080,
                resets_at: Some(resets_at + 100_000),
            }),
            updated_at: Some(0),
        }
    }

    #[test]
    fn the_pool_is_the_mean_of_its_accounts_and_limited_only_when_all_are() {
        let (a, b, none) = (quota(20.0, 5000), quota(60.0, 3000), Quota::default());
        let members = [
            Member {
                quota: &a,
                limited_until: None,
            },
            Member {
                quota: &b,
                limited_until: None,
            },
            Member {
                quota: &none,
                limited_until: None,
            },
        ];
        let pool = pooled(&members, 1000);
        let primary = pool.primary.unwrap();
        assert!((primary.used_percent - 40.0).abs() < 1e-9, "{primary:?}");
        assert_eq!(primary.resets_at, Some(3000), "the first reset");
        assert_eq!(primary.window_minutes, 300);
        assert!(!pool.limit_reached);
        // One account out: it counts as fully used, but the pool still serves.
        let members = [
            Member {
                quota: &a,
                limited_until: Some(9000),
            },
            Member {
                quota: &b,
                limited_until: None,
            },
        ];
        let pool = pooled(&members, 1000);
        assert!((pool.primary.unwrap().used_percent - 80.0).abs() < 1e-9);
        assert!(!pool.limit_reached);
        // All out: limited.
        let full = quota(100.0, 4000);
        let members = [
            Member {
                quota: &a,
                limited_until: Some(9000),
            },
            Member {
                quota: &full,
                limited_until: None,
            },
        ];
        let pool = pooled(&members, 1000);
        assert!(pool.limit_reached);
        let usage = pool.usage_json("plus", 1000);
        assert_eq!(usage["rate_limit"]["limit_reached"], true);
        assert_eq!(usage["rate_limit"]["allowed"], false);
        let window = &usage["rate_limit"]["primary_window"];
        for field in [
            "used_percent",
            "limit_window_seconds",
            "reset_after_seconds",
            "reset_at",
        ] {
            assert!(window[field].is_i64(), "{field} is an integer: {window}");
        }
        assert_eq!(window["limit_window_seconds"], 18000);
        assert_eq!(window["reset_after_seconds"], 3000);
        let frame = pool.rate_limits_frame("plus").unwrap();
        assert_eq!(frame["type"], "codex.rate_limits");
        assert_eq!(frame["rate_limits"]["limit_reached"], true);
        assert_eq!(frame["rate_limits"]["primary"]["window_minutes"], 300);
        assert!(pooled(&[], 0).primary.is_none() && !pooled(&[], 0).limit_reached);
        assert!(pooled(&[], 0).rate_limits_frame("plus").is_none());
        let headers = pooled(
            &[Member {
                quota: &a,
                limited_until: None,
            }],
            1000,
        )
        .headers();
        assert!(headers.contains(&("x-codex-primary-used-percent".into(), "20.0".into())));
        assert!(headers.contains(&("x-codex-secondary-window-minutes".into(), "10080".into())));
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
