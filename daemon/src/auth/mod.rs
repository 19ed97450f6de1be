//! Tokens: claims, refresh (single-flight, persisted before use), import of Codex `auth.json`.

pub mod import;
pub mod jwt;
pub mod login;
pub mod refresh;

pub use refresh::{AuthError, fresh_account};
