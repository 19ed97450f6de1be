//! The Codex backend client: HTTP, SSE, identity, error mapping.

pub mod appcast;
pub mod client;
pub mod cookies;
pub mod errors;
mod http;
pub mod identity;
pub mod incremental;
mod items;
pub mod large_frame;
pub mod reasoning;
pub mod sse;
pub mod websocket;
pub mod wire;
pub mod written;

pub use client::{EventStream, Upstream, UpstreamError, WireBody};
pub use identity::Identity;
