//! Wall-clock helpers: Unix seconds, and times and durations in words for messages.

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2h 14m`, `5m`, `40s`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `14:05 UTC` for a Unix time (with the date when it is not today).
pub fn utc_clock(ts: i64, now: i64) -> String {
    let (h, m) = (ts.rem_euclid(86_400) / 3600, ts.rem_euclid(3600) / 60);
    if ts.div_euclid(86_400) == now.div_euclid(86_400) {
        format!("{h:02}:{m:02} UTC")
    } else {
        let (year, month, day) = codex_proxy_proto::civil_date(ts.div_euclid(86_400));
        format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02} UTC")
    }
}

/// `2026-12-05T03:41:12.345Z` for Unix milliseconds (RFC 3339, UTC).
pub fn rfc3339_ms(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (year, month, day) = codex_proxy_proto::civil_date(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_clock() {
        assert_eq!(human_duration(8040), "2h 14m");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(40), "40s");
        assert_eq!(human_duration(200_000), "2d 7h");
        let now = 1_786_000_000; // 2026-08-06 07:06:40 UTC
        assert_eq!(utc_clock(now + 3600, now), "08:06 UTC");
        assert_eq!(utc_clock(now + 86_400, now), "2026-08-07 07:06 UTC");
        assert_eq!(rfc3339_ms(now * 1000 + 45), "2026-08-06T07:06:40.045Z");
    }
}
