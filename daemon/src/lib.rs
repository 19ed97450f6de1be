//! `codex-proxy`: serves a person's ChatGPT Codex models as OpenAI-compatible APIs.
//!
//! The binary is a thin wrapper around [`cli::main`]; tests can also drive [`serve`] in-process.

pub mod accounts;
pub mod api_error;
pub mod app;
pub mod auth;
pub mod body_budget;
pub mod buffers;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod engine;
pub mod json_text;
pub mod metrics;
pub mod models;
pub mod requests;
pub mod schedulers;
pub mod server;
pub mod service;
pub mod state;
pub mod translate;
pub mod upstream;
pub mod usage_history;

pub use service::run::{serve, start};

/// The daemon's version, as reported by `--version`, `/health` and the control protocol.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
