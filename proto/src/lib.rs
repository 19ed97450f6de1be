//! The control protocol between `codex-proxy` and `codexctl`.
//!
//! Kept deliberately small: the message types ([`Request`], [`Response`] and the handshake),
//! the framing ([`frame`]: a 4-byte big-endian length, then JSON; the size cap is checked before
//! anything is read or parsed), a blocking [`client::Client`], and where the socket lives
//! ([`paths`]).
//!
//! A connection starts with the client's [`Hello`]; the daemon answers [`ServerHello::Welcome`]
//! (or [`ServerHello::Refused`] and closes). Then the client sends requests, one at a time;
//! each gets one [`Response`], except the commands that wait ([`Request::LoginDevice`],
//! [`Request::WatchStatus`]), whose responses stream until a final one (see
//! [`Response::is_final`]) or until the client hangs up.

pub mod client;
pub mod frame;
mod messages;
pub mod paths;

pub use messages::*;

/// The civil date (year, month 1–12, day 1–31) of a count of days since 1970-01-01, for
/// times the daemon and `codexctl` print in UTC (Howard Hinnant's algorithm).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Protocol version spoken over the control socket: a major bump is incompatible (the daemon
/// refuses the peer), a minor bump is compatible (a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolVersion {
    pub major: u16,
    pub minor: u16,
}

/// 1.1: save failures, unsaved tokens, login reasons and interrupted refreshes in the views;
/// the `busy` refusal. 1.2: the `requests` and `usage_history` requests; `queued` in the status.
pub const PROTOCOL: ProtocolVersion = ProtocolVersion { major: 1, minor: 2 };

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
