//! The control protocol between `codex-proxy` and `codexctl`.
//!
//! Kept deliberately small: message types, framing and a client. The request/response enums and
//! the framing arrive with the control socket; the version numbers are fixed here first so both
//! binaries report the same one.

/// Protocol version spoken over the control socket: a major bump is incompatible (the daemon
/// refuses the peer), a minor bump is compatible (a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolVersion {
    pub major: u16,
    pub minor: u16,
}

pub const PROTOCOL: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
