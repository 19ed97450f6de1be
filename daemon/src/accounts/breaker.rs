//! A circuit breaker per account. When the backend keeps failing an account (5xx answers,
//! broken connections, timeouts), retrying every request two more times triples the load on a
//! backend that is already down. After [`THRESHOLD`] failures in a row the account's circuit
//! opens: for a while no request is sent on it (requests fail over, or fail at once with the
//! time to wait). When the time is up, one request goes through as a probe; its success closes
//! the circuit, its failure opens it again for twice as long (up to [`MAX_OPEN`]). A probe that
//! never reports (its client left, its token could not be refreshed) is replaced by another
//! after [`PROBE_GRACE`], so the account is never shut out for good.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row that open an account's circuit.
pub const THRESHOLD: u32 = 3;
const FIRST_OPEN: Duration = Duration::from_secs(5);
const MAX_OPEN: Duration = Duration::from_secs(60);
/// A probe without a verdict after this long no longer holds the others back.
const PROBE_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Breakers(Mutex<HashMap<String, Breaker>>);

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    /// Open until then; past it, the next request is the probe.
    open_until: Option<Instant>,
    open_for: Duration,
    /// A probe went out then and has not reported.
    probing: Option<Instant>,
    last_error: String,
}

/// Why an account's circuit keeps requests off it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub retry_in: Duration,
    pub failures: u32,
    pub last_error: String,
}

impl Breakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a request may go to `id` now (a closed circuit, or the one probe of an open one
    /// whose time is up).
    pub fn allow(&self, id: &str) -> Result<(), Open> {
        let mut map = self.lock();
        let Some(breaker) = map.get_mut(id) else {
            return Ok(());
        };
        let Some(until) = breaker.open_until else {
            return Ok(());
        };
        let now = Instant::now();
        let open = |retry_in: Duration, breaker: &Breaker| Open {
            retry_in,
            failures: breaker.failures,
            last_error: breaker.last_error.clone(),
        };
        if until > now {
            return Err(open(until - now, breaker));
        }
        if let Some(sent) = breaker.probing
            && now.duration_since(sent) < PROBE_GRACE
        {
            // The probe is still out; others wait for its verdict.
            return Err(open(Duration::from_secs(1), breaker));
        }
        breaker.probing = Some(now);
        Ok(())
    }

    /// Whether retries may be spent on `id` (its circuit is fully closed).
    pub fn may_retry(&self, id: &str) -> bool {
        self.lock()
            .get(id)
            .is_none_or(|b| b.open_until.is_none() && b.failures + 1 < THRESHOLD)
    }

    pub fn success(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Records a failure; returns how long the circuit is now open, if it opened.
    pub fn failure(&self, id: &str, error: &str) -> Option<Duration> {
        let mut map = self.lock();
        let breaker = map.entry(id.to_owned()).or_default();
        breaker.failures += 1;
        breaker.last_error = error.chars().take(300).collect();
        let reopen = breaker.probing.is_some() || breaker.open_until.is_some();
        if !reopen && breaker.failures < THRESHOLD {
            return None;
        }
        breaker.open_for = if reopen {
            (breaker.open_for * 2).clamp(FIRST_OPEN, MAX_OPEN)
        } else {
            FIRST_OPEN
        };
        breaker.open_until = Some(Instant::now() + breaker.open_for);
        breaker.probing = None;
        Some(breaker.open_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_three_failures_probes_once_and_closes_on_success() {
        let b = Breakers::default();
        assert!(b.allow("a").is_ok() && b.may_retry("a"));
        assert_eq!(b.failure("a", "502"), None);
        assert!(b.may_retry("a"));
        assert_eq!(b.failure("a", "502"), None);
        assert!(
            !b.may_retry("a"),
            "the third failure would open it: no retry"
        );
        assert_eq!(b.failure("a", "502 Bad Gateway"), Some(FIRST_OPEN));
        let open = b.allow("a").unwrap_err();
        assert_eq!(open.failures, 3);
        assert_eq!(open.last_error, "502 Bad Gateway");
        assert!(open.retry_in <= FIRST_OPEN);
        assert!(b.allow("b").is_ok(), "other accounts are unaffected");

        // Time is up: one probe, the rest wait for it.
        b.lock().get_mut("a").unwrap().open_until = Some(Instant::now());
        assert!(b.allow("a").is_ok());
        assert!(b.allow("a").is_err());
        // It fails: open again, for longer.
        assert_eq!(b.failure("a", "500"), Some(FIRST_OPEN * 2));
        b.lock().get_mut("a").unwrap().open_until = Some(Instant::now());
        assert!(b.allow("a").is_ok());
        b.success("a");
        assert!(b.allow("a").is_ok() && b.allow("a").is_ok() && b.may_retry("a"));
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced() {
        let b = Breakers::default();
        for _ in 0..THRESHOLD {
            b.failure("a", "502");
        }
        b.lock().get_mut("a").unwrap().open_until = Some(Instant::now());
        assert!(b.allow("a").is_ok(), "the probe goes");
        // Its client leaves: neither success nor failure is recorded.
        assert!(b.allow("a").is_err());
        let long_ago = Instant::now().checked_sub(PROBE_GRACE).unwrap();
        b.lock().get_mut("a").unwrap().probing = Some(long_ago);
        assert!(b.allow("a").is_ok(), "another probe after the grace");
    }
}
