//! Prometheus metrics (`GET /metrics`, OpenMetrics text, `prometheus-client`): requests by
//! surface, model, account and status; tokens by kind; request, first-byte and upstream
//! latency histograms; failovers; token refreshes and their outcomes; and, read when scraped,
//! in-flight requests and each account's quota and state.
//!
//! One set per process ([`metrics`]): the engine, the refresher and the request log count into
//! it wherever they are. Every label has few values (surfaces, the catalog's models, the
//! accounts, HTTP statuses).

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use codex_proxy_proto::RequestView;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    surface: String,
    model: String,
    account: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: String,
    account: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SurfaceLabels {
    surface: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LargeLabels {
    surface: &'static str,
    read: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    account: String,
    window: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
    state: &'static str,
}

/// Latency buckets: 5 ms to about 160 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    duration: Family<SurfaceLabels, Histogram, fn() -> Histogram>,
    first_byte: Family<SurfaceLabels, Histogram, fn() -> Histogram>,
    upstream: Histogram,
    failovers: Family<ReasonLabels, Counter>,
    refreshes: Family<OutcomeLabels, Counter>,
    large: Family<LargeLabels, Counter>,
    in_flight: Gauge,
    queued: Gauge,
    quota_used: Family<QuotaLabels, Gauge<f64, AtomicU64>>,
    quota_resets: Family<QuotaLabels, Gauge>,
    accounts: Family<AccountLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Why a turn moved on to another account.
#[derive(Debug, Clone, Copy)]
pub enum Failover {
    UsageLimit,
    Unauthorized,
    BackendFault,
    CircuitOpen,
    Refresh,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("codex_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by surface, model, account and status",
            requests.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens by kind (input, cached, output, reasoning), model and account",
            tokens.clone(),
        );
        let duration = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "Whole requests, until the client had the last byte",
            duration.clone(),
        );
        let first_byte = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "time_to_first_byte_seconds",
            "Until the first byte of the answer reached the client (the first token of a stream)",
            first_byte.clone(),
        );
        let upstream = seconds();
        registry.register(
            "upstream_latency_seconds",
            "Until the Codex backend's answer began (its first event read)",
            upstream.clone(),
        );
        let failovers = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "failovers",
            "Turns moved to another account before anything reached the client, by reason",
            failovers.clone(),
        );
        let refreshes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "token_refreshes",
            "Token refreshes, by outcome (ok, transient, needs_login, gone)",
            refreshes.clone(),
        );
        let large = Family::<LargeLabels, Counter>::default();
        registry.register(
            "large_requests",
            "Requests of 64 KiB or more read in outline, by surface and how they were read: \
             continued (from their new messages on, the rest kept from the conversation's \
             last) or whole",
            large.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_requests",
            "Requests being served now",
            in_flight.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "queued_requests",
            "Requests waiting for a free account slot (up to auth.queue_timeout_seconds)",
            queued.clone(),
        );
        let quota_used = Family::<QuotaLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "quota_used_percent",
            "How much of each account's quota window is used (primary: about five hours, \
             secondary: about a week)",
            quota_used.clone(),
        );
        let quota_resets = Family::<QuotaLabels, Gauge>::default();
        registry.register(
            "quota_resets_at_seconds",
            "When each account's quota window resets, Unix seconds",
            quota_resets.clone(),
        );
        let accounts = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "account_state",
            "1 for each account's current state (active, cooling_down, needs_login, disabled)",
            accounts.clone(),
        );
        Self {
            registry,
            requests,
            tokens,
            duration,
            first_byte,
            upstream,
            failovers,
            refreshes,
            large,
            in_flight,
            queued,
            quota_used,
            quota_resets,
            accounts,
        }
    }

    /// A finished request (from the request log).
    pub fn request(&self, r: &RequestView) {
        let model = r.model.clone().unwrap_or_default();
        let account = r.account.clone().unwrap_or_default();
        self.requests
            .get_or_create(&RequestLabels {
                surface: r.surface.clone(),
                model: model.clone(),
                account: account.clone(),
                status: r.status,
            })
            .inc();
        for (kind, n) in [
            ("input", r.input_tokens),
            ("cached", r.cached_tokens),
            ("output", r.output_tokens),
            ("reasoning", r.reasoning_tokens),
        ] {
            if n > 0 {
                self.tokens
                    .get_or_create(&TokenLabels {
                        model: model.clone(),
                        account: account.clone(),
                        kind,
                    })
                    .inc_by(n);
            }
        }
        let surface = SurfaceLabels {
            surface: r.surface.clone(),
        };
        self.duration
            .get_or_create(&surface)
            .observe(r.duration_ms as f64 / 1000.0);
        if let Some(ms) = r.first_byte_ms {
            self.first_byte
                .get_or_create(&surface)
                .observe(ms as f64 / 1000.0);
        }
    }

    /// The backend's answer began after `seconds`.
    pub fn upstream_started(&self, seconds: f64) {
        self.upstream.observe(seconds);
    }

    pub fn failover(&self, why: Failover) {
        let reason = match why {
            Failover::UsageLimit => "usage_limit",
            Failover::Unauthorized => "unauthorized",
            Failover::BackendFault => "backend_fault",
            Failover::CircuitOpen => "circuit_open",
            Failover::Refresh => "refresh_failed",
        };
        self.failovers.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A large request of `surface` was read from its new messages on (`continued`), or whole.
    pub fn large_request(&self, surface: &'static str, continued: bool) {
        let read = if continued { "continued" } else { "whole" };
        self.large
            .get_or_create(&LargeLabels { surface, read })
            .inc();
    }

    /// A request waits in line for an account slot until the guard is dropped.
    pub fn queued(&self) -> Queued {
        self.queued.inc();
        Queued(self.queued.clone())
    }

    /// Requests waiting in line now.
    pub fn queued_now(&self) -> u64 {
        u64::try_from(self.queued.get()).unwrap_or(0)
    }

    /// A token refresh ended: `ok`, `transient`, `needs_login` or `gone`.
    pub fn refresh(&self, outcome: &'static str) {
        self.refreshes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The text Prometheus scrapes, with the scrape-time gauges read now.
    pub fn render(&self, state: &crate::app::AppState) -> String {
        self.in_flight
            .set(i64::try_from(state.in_flight()).unwrap_or(i64::MAX));
        // Accounts come and go: the gauges are rebuilt from the accounts there are.
        self.quota_used.clear();
        self.quota_resets.clear();
        self.accounts.clear();
        let now = crate::clock::unix_now();
        for account in state.accounts().all() {
            for (window, quota) in [
                ("primary", account.quota.primary.as_ref()),
                ("secondary", account.quota.secondary.as_ref()),
            ] {
                let Some(quota) = quota else { continue };
                let labels = QuotaLabels {
                    account: account.id.clone(),
                    window,
                };
                self.quota_used
                    .get_or_create(&labels)
                    .set(quota.used_percent);
                if let Some(at) = quota.resets_at {
                    self.quota_resets.get_or_create(&labels).set(at);
                }
            }
            let state = match account.status(now) {
                crate::accounts::Status::Active => "active",
                crate::accounts::Status::CoolingDown { .. } => "cooling_down",
                crate::accounts::Status::NeedsLogin => "needs_login",
                crate::accounts::Status::Disabled => "disabled",
            };
            self.accounts
                .get_or_create(&AccountLabels {
                    account: account.id.clone(),
                    state,
                })
                .set(1);
        }
        let mut text = String::with_capacity(8 << 10);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// One request waiting in line; counted until dropped (served, timed out or cancelled).
#[derive(Debug)]
pub struct Queued(Gauge);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.dec();
    }
}
