//! Test support for codex-proxy: the strict fake upstream and helpers to run the real binaries.

pub mod fake;
pub mod harness;

/// reqwest is built without a default TLS provider (the daemon picks ring); every test client
/// needs one installed in its process.
pub fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
