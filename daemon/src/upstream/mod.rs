//! The Codex backend client.

pub mod wire;
