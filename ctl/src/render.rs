//! Human output. Pure functions of the daemon's answers (and the time), so they are tested
//! as text; colour is added only when asked (a terminal without `NO_COLOR`).

use std::fmt::Write;

use codex_proxy_proto::{
    AccountState, AccountView, ModelUsage, QuotaWindow, ReloadReport, RequestView, RotationView,
    StatusReport, UsageHistoryView, UsageReport,
};

/// Terminal styling; all no-ops when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    /// Something the person must act on.
    fn alarm(self, text: &str) -> String {
        self.paint("31", text)
    }

    fn state(self, state: AccountState, text: &str) -> String {
        let code = match state {
            AccountState::Active => "32",
            AccountState::CoolingDown => "33",
            AccountState::NeedsLogin => "31",
            AccountState::Disabled => "2",
        };
        self.paint(code, text)
    }

    fn level(self, percent: f64, text: &str) -> String {
        let code = if percent >= 90.0 {
            "31"
        } else if percent >= 70.0 {
            "33"
        } else {
            "32"
        };
        self.paint(code, text)
    }
}

/// `45s`, `12m`, `2h 14m`, `5d 3h`.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `5-hour`, `weekly`, … from a window's length.
fn window_name(minutes: u64) -> String {
    match minutes {
        10_080 => "weekly".into(),
        1440 => "daily".into(),
        m if m % 60 == 0 => format!("{}-hour", m / 60),
        m => format!("{m}-minute"),
    }
}

const BAR_CELLS: usize = 20;

fn bar(percent: f64, style: Style) -> String {
    let p = percent.clamp(0.0, 100.0);
    // Rounded to whole cells; any use shows at least one.
    let mut filled = (p / 100.0 * BAR_CELLS as f64).round() as usize;
    if p > 0.0 && filled == 0 {
        filled = 1;
    }
    let text = format!("{}{}", "█".repeat(filled), "░".repeat(BAR_CELLS - filled));
    style.level(p, &text)
}

fn quota_line(w: &QuotaWindow, now: i64, style: Style) -> String {
    let reset = match w.resets_at {
        Some(at) if at > now => format!("  resets in {}", duration(at - now)),
        Some(_) => "  reset".to_owned(),
        None => String::new(),
    };
    format!(
        "    {:<8} [{}] {:>4}{reset}",
        window_name(w.window_minutes),
        bar(w.used_percent, style),
        format!("{:.0}%", w.used_percent),
    )
}

fn state_text(a: &AccountView, now: i64) -> String {
    match a.state {
        AccountState::Active => "active".into(),
        AccountState::CoolingDown => match a.cooldown_until {
            Some(until) => format!("cooling down, back in {}", duration(until - now)),
            None => "cooling down".into(),
        },
        AccountState::NeedsLogin => "needs login (`codexctl login`)".into(),
        AccountState::Disabled => "disabled".into(),
    }
}

/// One account: a heading line, its quota windows, its request count.
pub fn account_block(a: &AccountView, now: i64, style: Style) -> String {
    let mut out = String::new();
    let mut heading = format!("  {}  {}", style.bold(a.name()), style.dim(&a.id));
    if let Some(plan) = &a.plan {
        let _ = write!(heading, "  {plan}");
    }
    let _ = write!(heading, "  {}", style.state(a.state, &state_text(a, now)));
    if a.pinned {
        heading.push_str("  (pinned)");
    }
    let _ = writeln!(out, "{heading}");
    if let Some(reason) = &a.login_reason
        && a.state == AccountState::NeedsLogin
    {
        let _ = writeln!(out, "    {}", style.alarm(&format!("why: {reason}")));
    }
    if let Some(at) = a.refresh_interrupted_at {
        let _ = writeln!(
            out,
            "    {}",
            style.paint(
                "33",
                &format!(
                    "a token refresh {} ago did not finish (codex-proxy stopped mid-exchange); \
                     the next refresh tells whether this sign-in survived",
                    duration(now - at)
                )
            )
        );
    }
    if a.primary.is_none() && a.secondary.is_none() {
        let _ = writeln!(
            out,
            "    quota not known yet (`codexctl accounts refresh {}` asks now)",
            a.id
        );
    }
    for w in [&a.primary, &a.secondary].into_iter().flatten() {
        let _ = writeln!(out, "{}", quota_line(w, now, style));
    }
    let _ = writeln!(
        out,
        "    {} request{} served",
        a.requests,
        if a.requests == 1 { "" } else { "s" }
    );
    out
}

pub fn status(report: &StatusReport, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — up {} — {} — {} mode",
        style.bold(&format!("codex-proxy {}", report.daemon_version)),
        duration(report.uptime_seconds as i64),
        report.listen,
        report.mode,
    );
    let _ = writeln!(
        out,
        "strategy {}{} · {} in flight{}",
        report.strategy.as_str(),
        report
            .pinned
            .as_ref()
            .map_or(String::new(), |p| format!(" (pinned: {p})")),
        report.in_flight,
        if report.queued > 0 {
            format!(" · {} waiting for a free account", report.queued)
        } else {
            String::new()
        },
    );
    if let Some(failure) = &report.save_failure {
        let _ = writeln!(
            out,
            "{}",
            style.alarm(&format!(
                "cannot save the state for {} ({} attempts): {}",
                duration(report.now - failure.since),
                failure.attempts,
                failure.error
            ))
        );
    }
    if !report.unsaved_tokens.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            style.alarm(&format!(
                "new tokens of {} are only in memory: fix the state directory ({}) before \
                 stopping codex-proxy, or these sign-ins are lost",
                report.unsaved_tokens.join(", "),
                report.state_dir
            ))
        );
    }
    let _ = writeln!(out);
    if report.accounts.is_empty() {
        let _ = writeln!(out, "No account yet: sign in with `codexctl login`.");
        return out;
    }
    let _ = writeln!(out, "Accounts ({}):", report.accounts.len());
    for a in &report.accounts {
        out.push_str(&account_block(a, report.now, style));
    }
    out
}

pub fn accounts(list: &[AccountView], now: i64, style: Style) -> String {
    if list.is_empty() {
        return "No account yet: sign in with `codexctl login`.\n".into();
    }
    let mut out = String::new();
    for a in list {
        out.push_str(&account_block(a, now, style));
    }
    out
}

pub fn rotation(view: &RotationView) -> String {
    let mut out = format!("{}\n", view.message);
    let _ = write!(out, "strategy {}", view.strategy.as_str());
    if let Some(pinned) = &view.pinned {
        let _ = write!(out, ", pinned {pinned}");
    }
    match &view.next {
        Some(next) => {
            let _ = writeln!(out, ", next request to {next}");
        }
        None => out.push_str(", no account usable now\n"),
    }
    out
}

fn add(total: &mut ModelUsage, u: &ModelUsage) {
    total.responses += u.responses;
    total.input_tokens += u.input_tokens;
    total.cached_tokens += u.cached_tokens;
    total.output_tokens += u.output_tokens;
    total.reasoning_tokens += u.reasoning_tokens;
}

fn usage_row(out: &mut String, name: &str, u: &ModelUsage) {
    let _ = writeln!(
        out,
        "    {:<22} {:>9} {:>12} {:>12} {:>6.1}% {:>12} {:>12}",
        name,
        u.responses,
        u.input_tokens,
        u.cached_tokens,
        u.cache_hit_rate() * 100.0,
        u.output_tokens,
        u.reasoning_tokens
    );
}

pub fn usage(report: &UsageReport, style: Style) -> String {
    if report.accounts.is_empty() {
        return "No account yet: sign in with `codexctl login`.\n".into();
    }
    let mut out = String::new();
    let mut total = ModelUsage::default();
    for a in &report.accounts {
        let _ = writeln!(
            out,
            "  {}  {}  {} request{}",
            style.bold(&a.name),
            style.dim(&a.id),
            a.requests,
            if a.requests == 1 { "" } else { "s" }
        );
        if a.models.is_empty() {
            let _ = writeln!(out, "    no completed responses yet");
            continue;
        }
        let _ = writeln!(
            out,
            "{}",
            style.dim(&format!(
                "    {:<22} {:>9} {:>12} {:>12} {:>7} {:>12} {:>12}",
                "MODEL", "RESPONSES", "INPUT", "CACHED", "HIT", "OUTPUT", "REASONING"
            ))
        );
        for (model, u) in &a.models {
            usage_row(&mut out, model, u);
            add(&mut total, u);
        }
    }
    if report.accounts.len() > 1 {
        let _ = writeln!(out, "  {}", style.bold("All accounts"));
        usage_row(&mut out, "total", &total);
    }
    out
}

pub fn requests(requests: &[RequestView], style: Style) -> String {
    if requests.is_empty() {
        return "No requests yet.\n".into();
    }
    let mut out = format!(
        "{}\n",
        style.dim(&format!(
            "  {:<8} {:<12} {:<30} {:<14} {:<8} {:>6} {:>9} {:>9} {:>8} {:>8}",
            "TIME",
            "SURFACE",
            "PATH",
            "MODEL",
            "ACCOUNT",
            "STATUS",
            "DURATION",
            "1ST BYTE",
            "IN",
            "OUT"
        ))
    );
    for r in requests {
        let time = chrono_hms(r.at_ms);
        // Padded before it is painted, so colour does not shift the columns.
        let status = format!("{:>6}", r.status);
        let status = if r.failed() {
            style.alarm(&status)
        } else {
            status
        };
        let _ = writeln!(
            out,
            "  {:<8} {:<12} {:<30} {:<14} {:<8} {} {:>7}ms {:>9} {:>8} {:>8}",
            time,
            r.surface,
            format!("{} {}", r.method, r.path),
            r.model.as_deref().unwrap_or("-"),
            r.account.as_deref().unwrap_or("-"),
            status,
            r.duration_ms,
            r.first_byte_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms")),
            r.input_tokens,
            r.output_tokens,
        );
        if let Some(error) = &r.error {
            let _ = writeln!(out, "    {}", style.dim(error));
        }
    }
    out
}

/// Usage over time: one line per bucket with traffic, all accounts and models together.
pub fn history(view: &UsageHistoryView, style: Style) -> String {
    if view.buckets.is_empty() {
        return "No usage recorded in this range yet.\n".into();
    }
    let daily = view.step_seconds >= 86_400;
    let mut out = format!(
        "{}\n",
        style.dim(&format!(
            "  {:<16} {:>8} {:>12} {:>12} {:>6} {:>12}",
            if daily { "DAY (UTC)" } else { "FROM (UTC)" },
            "REQUESTS",
            "INPUT",
            "CACHED",
            "HIT",
            "OUTPUT"
        ))
    );
    for bucket in &view.buckets {
        let (mut requests, mut input, mut cached, mut output) = (0u64, 0u64, 0u64, 0u64);
        for row in &bucket.rows {
            requests += row.requests;
            input += row.input_tokens;
            cached += row.cached_tokens;
            output += row.output_tokens;
        }
        let hit = if input == 0 {
            "-".to_owned()
        } else {
            format!("{:.0}%", cached as f64 * 100.0 / input as f64)
        };
        let _ = writeln!(
            out,
            "  {:<16} {:>8} {:>12} {:>12} {:>6} {:>12}",
            utc_label(bucket.start, daily),
            requests,
            input,
            cached,
            hit,
            output
        );
    }
    out
}

/// `2026-12-04` or `2026-12-04 18:35` (UTC).
fn utc_label(at: i64, date_only: bool) -> String {
    let days = at.div_euclid(86_400);
    let secs = at.rem_euclid(86_400);
    let (year, month, day) = codex_proxy_proto::civil_date(days);
    if date_only {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!(
            "{year:04}-{month:02}-{day:02} {:02}:{:02}",
            secs / 3600,
            secs / 60 % 60
        )
    }
}

/// `HH:MM:SS` (UTC) of a Unix-milliseconds time.
fn chrono_hms(at_ms: i64) -> String {
    let secs = at_ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

pub fn reloaded(report: &ReloadReport) -> String {
    let mut out = format!(
        "Reloaded {}\n",
        report
            .config_file
            .as_deref()
            .unwrap_or("(no config file: built-in defaults)")
    );
    if report.applied.is_empty() && report.restart_needed.is_empty() {
        out.push_str("Nothing changed.\n");
    }
    if !report.applied.is_empty() {
        let _ = writeln!(out, "In effect now: {}", report.applied.join(", "));
    }
    if !report.restart_needed.is_empty() {
        let _ = writeln!(
            out,
            "Needs a restart to take effect: {} (e.g. `systemctl restart codex-proxy`)",
            report.restart_needed.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod history_tests {
    use super::*;

    #[test]
    fn utc_labels_read_as_dates() {
        assert_eq!(utc_label(0, true), "1970-01-01");
        assert_eq!(utc_label(1_767_225_600, true), "2026-01-01");
        assert_eq!(utc_label(1_796_409_300, false), "2026-12-04 18:35");
        assert_eq!(utc_label(951_782_400, true), "2000-02-29");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_proxy_proto::{PROTOCOL, Strategy};

    const PLAIN: Style = Style { color: false };
    const NOW: i64 = 1_800_000_000;

    fn account(id: &str, email: &str) -> AccountView {
        AccountView {
            id: id.into(),
            chatgpt_account_id: format!("{id}-chatgpt"),
            email: Some(email.into()),
            label: None,
            plan: Some("pro".into()),
            state: AccountState::Active,
            cooldown_until: None,
            pinned: false,
            primary: Some(QuotaWindow {
                used_percent: 31.0,
                window_minutes: 300,
                resets_at: Some(NOW + 2 * 3600 + 14 * 60),
            }),
            secondary: Some(QuotaWindow {
                used_percent: 12.4,
                window_minutes: 10_080,
                resets_at: Some(NOW + 5 * 86_400 + 3 * 3600),
            }),
            quota_updated_at: Some(NOW),
            requests: 42,
            last_refresh: None,
            token_expires_at: None,
            login_reason: None,
            refresh_interrupted_at: None,
        }
    }

    #[test]
    fn status_snapshot() {
        let mut limited = account("acct_2", "alice@example.com");
        limited.label = Some("work".into());
        limited.plan = Some("plus".into());
        limited.state = AccountState::CoolingDown;
        limited.cooldown_until = Some(NOW + 3720);
        limited.primary = Some(QuotaWindow {
            used_percent: 100.0,
            window_minutes: 300,
            resets_at: Some(NOW + 3720),
        });
        limited.secondary = None;
        limited.requests = 1;
        let mut fresh = account("acct_3", "carol@example.com");
        fresh.primary = None;
        fresh.secondary = None;
        fresh.plan = None;
        fresh.state = AccountState::NeedsLogin;
        fresh.login_reason = Some("refresh_token_reused".into());
        fresh.requests = 0;
        let mut first = account("acct_1", "bob@example.com");
        first.refresh_interrupted_at = Some(NOW - 120);
        first.pinned = true;
        let report = StatusReport {
            daemon_version: "0.1.0".into(),
            protocol: PROTOCOL,
            pid: 4242,
            uptime_seconds: 8040,
            listen: "http://127.0.0.1:8080".into(),
            mode: "system".into(),
            config_file: Some("/etc/codex-proxy/config.toml".into()),
            state_dir: "/var/lib/codex-proxy".into(),
            strategy: Strategy::LeastUsed,
            pinned: Some("acct_1".into()),
            in_flight: 3,
            queued: 0,
            now: NOW,
            accounts: vec![first, limited, fresh],
            save_failure: Some(codex_proxy_proto::SaveFailure {
                since: NOW - 45,
                attempts: 9,
                error: "cannot write /var/lib/codex-proxy/accounts.json: No space left on device"
                    .into(),
            }),
            unsaved_tokens: vec!["acct_1".into()],
        };
        assert_eq!(
            status(&report, PLAIN),
            "\
codex-proxy 0.1.0 — up 2h 14m — http://127.0.0.1:8080 — system mode
strategy least_used (pinned: acct_1) · 3 in flight
cannot save the state for 45s (9 attempts): cannot write /var/lib/codex-proxy/accounts.json: No space left on device
new tokens of acct_1 are only in memory: fix the state directory (/var/lib/codex-proxy) before stopping codex-proxy, or these sign-ins are lost

Accounts (3):
  bob@example.com  acct_1  pro  active  (pinned)
    a token refresh 2m ago did not finish (codex-proxy stopped mid-exchange); the next refresh tells whether this sign-in survived
    5-hour   [██████░░░░░░░░░░░░░░]  31%  resets in 2h 14m
    weekly   [██░░░░░░░░░░░░░░░░░░]  12%  resets in 5d 3h
    42 requests served
  work  acct_2  plus  cooling down, back in 1h 2m
    5-hour   [████████████████████] 100%  resets in 1h 2m
    1 request served
  carol@example.com  acct_3  needs login (`codexctl login`)
    why: refresh_token_reused
    quota not known yet (`codexctl accounts refresh acct_3` asks now)
    0 requests served
"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let a = account("acct_1", "bob@example.com");
        assert!(!account_block(&a, NOW, PLAIN).contains('\x1b'));
        assert!(account_block(&a, NOW, Style { color: true }).contains("\x1b[32m"));
    }

    #[test]
    fn usage_snapshot() {
        let mut models = std::collections::BTreeMap::new();
        models.insert(
            "gpt-5.5".to_owned(),
            ModelUsage {
                responses: 2,
                input_tokens: 2000,
                cached_tokens: 768,
                output_tokens: 80,
                reasoning_tokens: 16,
            },
        );
        let report = UsageReport {
            accounts: vec![
                codex_proxy_proto::AccountUsage {
                    id: "acct_1".into(),
                    name: "bob@example.com".into(),
                    requests: 3,
                    models,
                },
                codex_proxy_proto::AccountUsage {
                    id: "acct_2".into(),
                    name: "work".into(),
                    requests: 0,
                    models: Default::default(),
                },
            ],
        };
        assert_eq!(
            usage(&report, PLAIN),
            "  bob@example.com  acct_1  3 requests
    MODEL                  RESPONSES        INPUT       CACHED     HIT       OUTPUT    REASONING
    gpt-5.5                        2         2000          768   38.4%           80           16
  work  acct_2  0 requests
    no completed responses yet
  All accounts
    total                          2         2000          768   38.4%           80           16
"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(-5), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m");
        assert_eq!(duration(3600 + 14 * 60), "1h 14m");
        assert_eq!(duration(86_400 * 6 + 3600), "6d 1h");
    }

    #[test]
    fn reload_report_says_what_needs_a_restart() {
        let text = reloaded(&ReloadReport {
            config_file: Some("/etc/codex-proxy/config.toml".into()),
            applied: vec!["model".into()],
            restart_needed: vec!["server.host/port".into()],
        });
        assert_eq!(
            text,
            "Reloaded /etc/codex-proxy/config.toml\nIn effect now: model\n\
             Needs a restart to take effect: server.host/port (e.g. `systemctl restart codex-proxy`)\n"
        );
    }
}
