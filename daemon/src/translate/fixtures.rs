//! What the surfaces' translation tests share: a tiny image and the catalog's `gpt-5.5`.

use crate::config::ModelConfig;
use crate::models::{self, Catalog};

/// A 1 × 1 PNG, base64.
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// The catalog's `gpt-5.5`, as the daemon resolves it.
pub fn gpt_5_5() -> models::Resolved {
    models::resolve(
        Some("gpt-5.5"),
        &Catalog::builtin(),
        &ModelConfig::default().aliases,
        "gpt-5.5",
    )
    .unwrap_or_else(|e| panic!("gpt-5.5 resolves: {e:?}"))
}

/// `gpt-5.5`'s reasoning efforts.
pub fn efforts() -> Vec<String> {
    ["low", "medium", "high", "xhigh"]
        .iter()
        .map(|e| (*e).to_owned())
        .collect()
}
