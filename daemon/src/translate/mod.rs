//! Pure translation between the client protocols and the Codex Responses wire.

pub mod chat;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod gemini;
pub mod held;
pub mod images;
pub mod messages;
pub mod ollama;
pub mod output;
pub mod pieces;
pub mod raw;
pub mod request;
pub mod responses;
pub mod schema;
pub mod stream;
