//! The model catalog served by `/codex/models` (§5.1) with the models of §6.

use serde_json::{Value, json};

use super::util::parse_version;

#[derive(Debug)]
pub struct ModelSpec {
    pub slug: &'static str,
    pub display: &'static str,
    pub default_effort: &'static str,
    /// Wire values of `reasoning.effort` the model accepts.
    pub efforts: &'static [&'static str],
    pub listed: bool,
    pub context_window: u64,
    pub max_context_window: u64,
    pub min_client: &'static str,
    /// Responses-Lite models (§2.4): instructions and tools travel inside `input`.
    pub lite: bool,
    pub fast_tier: bool,
    pub upgrade: Option<&'static str>,
    pub default_summary: &'static str,
}

const LOW_TO_XHIGH: &[&str] = &["low", "medium", "high", "xhigh"];
const LOW_TO_MAX: &[&str] = &["low", "medium", "high", "xhigh", "max"];

pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        slug: "gpt-5.6-sol",
        display: "GPT-5.6-Sol",
        default_effort: "low",
        efforts: LOW_TO_MAX,
        listed: true,
        context_window: 272_000,
        max_context_window: 921_000,
        min_client: "0.144.0",
        lite: true,
        fast_tier: true,
        upgrade: None,
        default_summary: "none",
    },
    ModelSpec {
        slug: "gpt-5.6-terra",
        display: "GPT-5.6-Terra",
        default_effort: "medium",
        efforts: LOW_TO_MAX,
        listed: true,
        context_window: 272_000,
        max_context_window: 921_000,
        min_client: "0.144.0",
        lite: true,
        fast_tier: false,
        upgrade: None,
        default_summary: "none",
    },
    ModelSpec {
        slug: "gpt-5.6-luna",
        display: "GPT-5.6-Luna",
        default_effort: "medium",
        efforts: LOW_TO_MAX,
        listed: true,
        context_window: 272_000,
        max_context_window: 921_000,
        min_client: "0.144.0",
        lite: true,
        fast_tier: false,
        upgrade: None,
        default_summary: "none",
    },
    ModelSpec {
        slug: "gpt-5.5",
        display: "GPT-5.5",
        default_effort: "medium",
        efforts: LOW_TO_XHIGH,
        listed: true,
        context_window: 272_000,
        max_context_window: 272_000,
        min_client: "0.124.0",
        lite: false,
        fast_tier: true,
        upgrade: None,
        default_summary: "none",
    },
    ModelSpec {
        slug: "gpt-5.4",
        display: "GPT-5.4",
        default_effort: "medium",
        efforts: LOW_TO_XHIGH,
        listed: false,
        context_window: 272_000,
        max_context_window: 1_000_000,
        min_client: "0.98.0",
        lite: false,
        fast_tier: false,
        upgrade: Some("gpt-5.6-terra"),
        default_summary: "none",
    },
    ModelSpec {
        slug: "gpt-5.4-mini",
        display: "GPT-5.4-Mini",
        default_effort: "medium",
        efforts: LOW_TO_XHIGH,
        listed: false,
        context_window: 272_000,
        max_context_window: 272_000,
        min_client: "0.98.0",
        lite: false,
        fast_tier: false,
        upgrade: Some("gpt-5.6-luna"),
        default_summary: "none",
    },
    ModelSpec {
        slug: "gpt-5.3-codex-spark",
        display: "GPT-5.3-Codex-Spark",
        default_effort: "high",
        efforts: LOW_TO_XHIGH,
        listed: true,
        context_window: 128_000,
        max_context_window: 128_000,
        min_client: "0.100.0",
        lite: false,
        fast_tier: false,
        upgrade: None,
        default_summary: "none",
    },
    ModelSpec {
        slug: "gpt-5.2",
        display: "GPT-5.2",
        default_effort: "medium",
        efforts: LOW_TO_XHIGH,
        listed: true,
        context_window: 272_000,
        max_context_window: 272_000,
        min_client: "0.0.1",
        lite: false,
        fast_tier: false,
        upgrade: None,
        default_summary: "auto",
    },
    ModelSpec {
        slug: "codex-auto-review",
        display: "Codex Auto Review",
        default_effort: "medium",
        efforts: LOW_TO_XHIGH,
        listed: false,
        context_window: 272_000,
        max_context_window: 1_000_000,
        min_client: "0.98.0",
        lite: false,
        fast_tier: false,
        upgrade: None,
        default_summary: "none",
    },
];

pub fn find(slug: &str) -> Option<&'static ModelSpec> {
    MODELS.iter().find(|m| m.slug == slug)
}

impl ModelSpec {
    /// Whether a client of this version may use the model.
    pub fn allows_client(&self, client_version: &str) -> bool {
        match (
            parse_version(client_version),
            parse_version(self.min_client),
        ) {
            (Some(have), Some(need)) => have >= need,
            _ => false,
        }
    }

    pub fn instructions(&self) -> String {
        format!(
            "You are Codex, a coding agent running on {}. You help the user with software \
             engineering tasks in their workspace. {{{{ personality }}}}",
            self.display
        )
    }

    fn to_json(&self, revision: u64) -> Value {
        let description = if revision == 0 {
            format!("{} for coding work.", self.display)
        } else {
            format!(
                "{} for coding work (catalog revision {revision}).",
                self.display
            )
        };
        let service_tiers = if self.fast_tier {
            json!([{"id": "priority", "name": "Fast", "description": "Faster responses, more usage"}])
        } else {
            json!([])
        };
        json!({
            "slug": self.slug,
            "display_name": self.display,
            "description": description,
            "default_reasoning_level": self.default_effort,
            "supported_reasoning_levels": self.efforts.iter()
                .map(|e| json!({"effort": e, "description": format!("{e} reasoning effort")}))
                .collect::<Vec<_>>(),
            "shell_type": "shell_command",
            "visibility": if self.listed { "list" } else { "hide" },
            "supported_in_api": true,
            "priority": 0,
            "additional_speed_tiers": [],
            "service_tiers": service_tiers,
            "default_service_tier": null,
            "availability_nux": null,
            "upgrade": self.upgrade.map(|m| json!({"model": m, "migration_markdown": format!("Try {m}.")})),
            "model_messages": {
                "instructions_template": self.instructions(),
                "instructions_variables": {"personality": "Be concise and direct."}
            },
            "base_instructions": self.instructions().replace("{{ personality }}", "Be concise and direct."),
            "supports_reasoning_summaries": true,
            "default_reasoning_summary": self.default_summary,
            "reasoning_summary_format": "experimental",
            "support_verbosity": true,
            "default_verbosity": "low",
            "apply_patch_tool_type": "freeform",
            "web_search_tool_type": "text",
            "truncation_policy": {"mode": "tokens", "limit": 10000},
            "supports_parallel_tool_calls": !self.lite,
            "supports_image_detail_original": true,
            "context_window": self.context_window,
            "max_context_window": self.max_context_window,
            "auto_compact_token_limit": self.context_window * 9 / 10,
            "effective_context_window_percent": 95,
            "experimental_supported_tools": [],
            "input_modalities": ["text", "image"],
            "supports_search_tool": false,
            "use_responses_lite": self.lite,
            "tool_mode": if self.lite { json!("code_mode_only") } else { Value::Null },
            "multi_agent_version": null,
            "minimal_client_version": self.min_client,
            "available_in_plans": ["plus", "pro", "team", "business", "enterprise", "edu"],
            "prefer_websockets": true,
        })
    }
}

/// The catalog for a client version: models that version may not use are left out.
pub fn catalog(client_version: &str, revision: u64) -> Value {
    let models: Vec<Value> = MODELS
        .iter()
        .filter(|m| m.allows_client(client_version))
        .map(|m| m.to_json(revision))
        .collect();
    json!({ "models": models })
}
