//! The model catalog: live from `/codex/models` when reachable, a built-in list otherwise, plus
//! the configured aliases and effort suffixes (`gpt-5.5-high`, `codex-low`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::api_error::ApiError;

/// Reasoning effort wire values (§6); `ultra` is a UI level sent as `max`.
pub const EFFORTS: [&str; 7] = ["none", "minimal", "low", "medium", "high", "xhigh", "max"];

/// What the gateway needs to know about one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub slug: String,
    pub display_name: String,
    /// `visibility: list` — shown in `/v1/models`; hidden models still serve requests.
    pub listed: bool,
    pub efforts: Vec<String>,
    pub default_effort: String,
    /// Responses-Lite (§2.4): instructions and tools travel inside `input`.
    pub lite: bool,
    pub parallel_tool_calls: bool,
    pub context_window: u64,
    /// The model's own Codex instructions (for `system_prompt_strategy = "developer"`).
    pub instructions: Option<String>,
}

/// Where the catalog in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogSource {
    Builtin,
    Live,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    /// Shared: every request resolves one, and takes it without copying.
    pub models: Vec<Arc<ModelInfo>>,
    pub source: CatalogSource,
    pub etag: Option<String>,
    /// The backend's reply verbatim (a live catalog), served again by the backend mirror.
    pub raw: Option<bytes::Bytes>,
}

/// Rows of the built-in list: slug, display, default effort, efforts, listed, lite, context.
type BuiltinRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    bool,
    bool,
    u64,
);

const LOW_XHIGH: &[&str] = &["low", "medium", "high", "xhigh"];
const LOW_MAX: &[&str] = &["low", "medium", "high", "xhigh", "max"];

/// The catalog of protocol §6, used until the live one is fetched and whenever it cannot be.
const BUILTIN: &[BuiltinRow] = &[
    (
        "gpt-5.5", "GPT-5.5", "medium", LOW_XHIGH, true, false, 272_000,
    ),
    (
        "gpt-5.6-sol",
        "GPT-5.6-Sol",
        "low",
        LOW_MAX,
        true,
        true,
        272_000,
    ),
    (
        "gpt-5.6-terra",
        "GPT-5.6-Terra",
        "medium",
        LOW_MAX,
        true,
        true,
        272_000,
    ),
    (
        "gpt-5.6-luna",
        "GPT-5.6-Luna",
        "medium",
        LOW_MAX,
        true,
        true,
        272_000,
    ),
    (
        "gpt-5.4", "GPT-5.4", "medium", LOW_XHIGH, false, false, 272_000,
    ),
    (
        "gpt-5.4-mini",
        "GPT-5.4-Mini",
        "medium",
        LOW_XHIGH,
        false,
        false,
        272_000,
    ),
    (
        "gpt-5.2", "GPT-5.2", "medium", LOW_XHIGH, true, false, 272_000,
    ),
    (
        "codex-auto-review",
        "Codex Auto Review",
        "medium",
        LOW_XHIGH,
        false,
        false,
        272_000,
    ),
];

impl Catalog {
    pub fn builtin() -> Self {
        let models = BUILTIN
            .iter()
            .map(
                |&(slug, display, default_effort, efforts, listed, lite, context_window)| {
                    Arc::new(ModelInfo {
                        slug: slug.into(),
                        display_name: display.into(),
                        listed,
                        efforts: efforts.iter().map(|e| (*e).to_owned()).collect(),
                        default_effort: default_effort.into(),
                        lite,
                        parallel_tool_calls: !lite,
                        context_window,
                        instructions: None,
                    })
                },
            )
            .collect();
        Self {
            models,
            source: CatalogSource::Builtin,
            etag: None,
            raw: None,
        }
    }

    /// Parses the backend's `{"models": [ModelInfo…]}` (§5.1).
    pub fn from_upstream(body: &[u8], etag: Option<String>) -> Result<Self, serde_json::Error> {
        let parsed: UpstreamCatalog = serde_json::from_slice(body)?;
        let models = parsed
            .models
            .into_iter()
            .map(|model| Arc::new(model.into_info()))
            .collect();
        Ok(Self {
            models,
            source: CatalogSource::Live,
            etag,
            raw: Some(bytes::Bytes::copy_from_slice(body)),
        })
    }

    /// The catalog in the backend's own shape (§5.1): the live reply verbatim, or the built-in
    /// list written in the fields the backend uses (integers where it has integers).
    pub fn backend_json(&self) -> bytes::Bytes {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let models: Vec<serde_json::Value> = self
            .models
            .iter()
            .enumerate()
            .map(|(priority, m)| {
                serde_json::json!({
                    "slug": m.slug,
                    "display_name": m.display_name,
                    "description": m.display_name,
                    "default_reasoning_level": m.default_effort,
                    "supported_reasoning_levels": m.efforts.iter()
                        .map(|e| serde_json::json!({"effort": e, "description": e}))
                        .collect::<Vec<_>>(),
                    "visibility": if m.listed { "list" } else { "hide" },
                    "supported_in_api": true,
                    "priority": priority,
                    "supports_parallel_tool_calls": m.parallel_tool_calls,
                    "context_window": m.context_window,
                    "use_responses_lite": m.lite,
                })
            })
            .collect();
        bytes::Bytes::from(serde_json::json!({ "models": models }).to_string())
    }

    pub fn find(&self, slug: &str) -> Option<&Arc<ModelInfo>> {
        self.models.iter().find(|m| m.slug == slug)
    }
}

#[derive(Deserialize)]
struct UpstreamCatalog {
    models: Vec<UpstreamModel>,
}

#[derive(Deserialize)]
struct UpstreamModel {
    slug: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    default_reasoning_level: Option<String>,
    #[serde(default)]
    supported_reasoning_levels: Vec<UpstreamLevel>,
    #[serde(default)]
    use_responses_lite: bool,
    #[serde(default)]
    supports_parallel_tool_calls: Option<bool>,
    #[serde(default)]
    context_window: Option<u64>,
    #[serde(default)]
    base_instructions: Option<String>,
    #[serde(default)]
    model_messages: Option<ModelMessages>,
}

#[derive(Deserialize)]
struct UpstreamLevel {
    effort: String,
}

#[derive(Deserialize)]
struct ModelMessages {
    #[serde(default)]
    instructions_template: Option<String>,
    #[serde(default)]
    instructions_variables: BTreeMap<String, String>,
}

impl UpstreamModel {
    fn into_info(self) -> ModelInfo {
        // Prefer the template with its variables filled; fall back to the legacy field.
        let instructions = self
            .model_messages
            .and_then(|m| {
                let mut text = m.instructions_template?;
                for (name, value) in &m.instructions_variables {
                    text = text.replace(&format!("{{{{ {name} }}}}"), value);
                }
                Some(text)
            })
            .or(self.base_instructions)
            .filter(|t| !t.trim().is_empty());
        let efforts: Vec<String> = self
            .supported_reasoning_levels
            .into_iter()
            .map(|l| {
                if l.effort == "ultra" {
                    "max".to_owned()
                } else {
                    l.effort
                }
            })
            .collect();
        ModelInfo {
            display_name: self.display_name.unwrap_or_else(|| self.slug.clone()),
            listed: self.visibility.as_deref() != Some("hide"),
            default_effort: self
                .default_reasoning_level
                .unwrap_or_else(|| "medium".into()),
            efforts,
            lite: self.use_responses_lite,
            parallel_tool_calls: self
                .supports_parallel_tool_calls
                .unwrap_or(!self.use_responses_lite),
            context_window: self.context_window.unwrap_or(0),
            instructions,
            slug: self.slug,
        }
    }
}

/// A request's model name, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub model: Arc<ModelInfo>,
    /// Effort named by a suffix (`-high`), if any.
    pub suffix_effort: Option<String>,
}

/// Resolves a client's model name: alias, effort suffix, catalog. `None` means the default.
pub fn resolve(
    requested: Option<&str>,
    catalog: &Catalog,
    aliases: &BTreeMap<String, String>,
    default: &str,
) -> Result<Resolved, ApiError> {
    let requested = requested
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(default);
    let lookup = |name: &str| {
        let slug = aliases.get(name).map_or(name, String::as_str);
        catalog.find(slug).cloned()
    };
    if let Some(model) = lookup(requested) {
        return Ok(Resolved {
            model,
            suffix_effort: None,
        });
    }
    if let Some((base, suffix)) = requested.rsplit_once('-') {
        let effort = if suffix == "ultra" { "max" } else { suffix };
        if EFFORTS.contains(&effort)
            && let Some(model) = lookup(base)
        {
            return Ok(Resolved {
                model,
                suffix_effort: Some(effort.to_owned()),
            });
        }
    }
    let mut available: Vec<&str> = catalog
        .models
        .iter()
        .filter(|m| m.listed)
        .map(|m| m.slug.as_str())
        .collect();
    available.extend(aliases.keys().map(String::as_str));
    Err(ApiError::model_not_found(requested, &available))
}

/// Every id `/v1/models` lists: listed models, their effort variants, and aliases.
pub fn listed_ids(catalog: &Catalog, aliases: &BTreeMap<String, String>) -> Vec<String> {
    let mut ids = Vec::new();
    for model in catalog.models.iter().filter(|m| m.listed) {
        ids.push(model.slug.clone());
        ids.extend(model.efforts.iter().map(|e| format!("{}-{e}", model.slug)));
    }
    for (alias, target) in aliases {
        if catalog.find(target).is_some() {
            ids.push(alias.clone());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("codex".to_owned(), "gpt-5.5".to_owned()),
            ("codex-mini".to_owned(), "gpt-5.4-mini".to_owned()),
        ])
    }

    #[test]
    fn resolves_names_aliases_and_suffixes() {
        let catalog = Catalog::builtin();
        let r = resolve(Some("gpt-5.5"), &catalog, &aliases(), "gpt-5.5").unwrap();
        assert_eq!((r.model.slug.as_str(), r.suffix_effort), ("gpt-5.5", None));
        let r = resolve(Some("gpt-5.5-high"), &catalog, &aliases(), "gpt-5.5").unwrap();
        assert_eq!(r.suffix_effort.as_deref(), Some("high"));
        let r = resolve(Some("codex-low"), &catalog, &aliases(), "gpt-5.5").unwrap();
        assert_eq!(
            (r.model.slug.as_str(), r.suffix_effort.as_deref()),
            ("gpt-5.5", Some("low"))
        );
        // `-mini` is part of the name, not an effort; the alias wins.
        let r = resolve(Some("codex-mini"), &catalog, &aliases(), "gpt-5.5").unwrap();
        assert_eq!(r.model.slug, "gpt-5.4-mini");
        let r = resolve(Some("gpt-5.6-sol-ultra"), &catalog, &aliases(), "gpt-5.5").unwrap();
        assert_eq!(r.suffix_effort.as_deref(), Some("max"));
        let r = resolve(None, &catalog, &aliases(), "gpt-5.5").unwrap();
        assert_eq!(r.model.slug, "gpt-5.5");
    }

    #[test]
    fn unknown_model_lists_what_exists() {
        let err = resolve(Some("gpt-4o"), &Catalog::builtin(), &aliases(), "gpt-5.5").unwrap_err();
        assert_eq!(err.status.as_u16(), 404);
        assert_eq!(err.code, Some("model_not_found"));
        assert!(
            err.message.contains("gpt-4o")
                && err.message.contains("gpt-5.5")
                && err.message.contains("codex")
        );
        assert!(
            !err.message.contains("gpt-5.4-mini,"),
            "hidden models are not advertised"
        );
    }

    #[test]
    fn parses_the_live_catalog() {
        let body = br#"{"models":[
            {"slug":"gpt-5.5","display_name":"GPT-5.5","visibility":"list","default_reasoning_level":"medium",
             "supported_reasoning_levels":[{"effort":"low","description":""},{"effort":"ultra","description":""}],
             "use_responses_lite":false,"context_window":272000,
             "model_messages":{"instructions_template":"You are {{ personality }}","instructions_variables":{"personality":"kind"}},
             "base_instructions":"legacy","unknown_future_field":[1,2]},
            {"slug":"secret","visibility":"hide","use_responses_lite":true}]}"#;
        let catalog = Catalog::from_upstream(body, Some("\"e1\"".into())).unwrap();
        let m = catalog.find("gpt-5.5").unwrap();
        assert_eq!(m.efforts, ["low", "max"]);
        assert_eq!(m.instructions.as_deref(), Some("You are kind"));
        let hidden = catalog.find("secret").unwrap();
        assert!(!hidden.listed && hidden.lite && !hidden.parallel_tool_calls);
        assert_eq!(catalog.source, CatalogSource::Live);
    }

    #[test]
    fn model_list_has_variants_and_aliases() {
        let ids = listed_ids(&Catalog::builtin(), &aliases());
        assert!(ids.contains(&"gpt-5.5-xhigh".to_owned()));
        assert!(ids.contains(&"codex".to_owned()) && ids.contains(&"codex-mini".to_owned()));
        assert!(!ids.contains(&"gpt-5.4-mini".to_owned()));
    }
}
