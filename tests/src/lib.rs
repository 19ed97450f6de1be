//! Test support for codex-proxy: the strict fake upstream and helpers to run the real binaries.

pub mod fake;
pub mod harness;
