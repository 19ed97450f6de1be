//! OpenAI's Images API (`POST /v1/images/generations`, `/v1/images/edits`) on the backend's
//! `image_generation` tool: the prompt (and an edit's images) go to a Codex model as a user
//! message with that tool as its only one, required; the `image_generation_call` the model
//! makes carries the image. Here: the request's parameters, checked and mapped onto the tool's
//! options (DALL·E's sizes and qualities mapped to the nearest the tool has, and said so), and
//! the answer's shape.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::{ApiError, quoted};
use crate::upstream::wire::Tool;

/// Most images one request may ask for (OpenAI's own bound).
pub const MAX_N: u32 = 10;
/// Longest prompt accepted (the gpt-image models' bound).
pub const MAX_PROMPT_CHARS: usize = 32_000;
/// Most input images an edit may carry.
pub const MAX_INPUT_IMAGES: usize = 16;

/// The parameters of a generation (JSON) or an edit (JSON or form fields). Unknown fields are
/// refused by name, as OpenAI does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRequest {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub quality: Option<String>,
    #[serde(default)]
    pub response_format: Option<String>,
    #[serde(default)]
    pub output_format: Option<String>,
    #[serde(default)]
    pub output_compression: Option<u8>,
    #[serde(default)]
    pub background: Option<String>,
    #[serde(default)]
    pub moderation: Option<String>,
    #[serde(default)]
    pub input_fidelity: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub partial_images: Option<u8>,
    /// Edits sent as JSON: `[{"image_url": "data:…" | "https://…"}]`.
    #[serde(default)]
    pub images: Option<Vec<ImageRef>>,
    /// An edit's mask sent as JSON.
    #[serde(default)]
    pub mask: Option<ImageRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
}

/// How the images go back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    B64Json,
    /// A `data:` URL (nothing is hosted anywhere).
    Url,
}

/// A request checked and mapped: what goes upstream and what stays here.
#[derive(Debug, Clone)]
pub struct Planned {
    pub prompt: String,
    pub n: u32,
    pub tool: Tool,
    pub response_format: ResponseFormat,
    /// What the answer echoes (OpenAI's gpt-image answers carry these).
    pub size: String,
    pub quality: String,
    pub output_format: String,
    pub background: String,
    /// Accepted but without effect, or mapped onto something else: said in
    /// `x-codex-proxy-ignored-params`.
    pub notes: Vec<String>,
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(invalid_choice(field, value, allowed))
    }
}

fn invalid_choice(field: &str, value: &str, allowed: &[&str]) -> ApiError {
    ApiError::invalid(
        format!(
            "Invalid value for '{field}': '{}'. Supported values are: {}.",
            quoted(value),
            allowed
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(field),
    )
}

/// Checks a request and maps it onto the tool. `mask` is an edit's mask as a data URL.
pub fn plan(req: &ImageRequest, mask: Option<String>) -> Result<Planned, ApiError> {
    let prompt = req.prompt.clone().unwrap_or_default();
    if prompt.trim().is_empty() {
        return Err(ApiError::invalid(
            "Missing required parameter: 'prompt'.",
            Some("prompt"),
        ));
    }
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(ApiError::invalid(
            format!("'prompt' is longer than {MAX_PROMPT_CHARS} characters."),
            Some("prompt"),
        ));
    }
    let n = req.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(ApiError::invalid(
            format!("'n' must be between 1 and {MAX_N}."),
            Some("n"),
        ));
    }
    if req.stream == Some(true) || req.partial_images.is_some_and(|p| p > 0) {
        return Err(ApiError::invalid(
            "Streamed image generation (stream, partial_images) is not supported by codex-proxy; \
             ask without stream.",
            Some("stream"),
        ));
    }
    let mut notes = Vec::new();
    let size = match req.size.as_deref() {
        None => "auto",
        Some(s @ ("auto" | "1024x1024" | "1024x1536" | "1536x1024")) => s,
        // DALL·E 3's wide and tall sizes: the tool's of the same orientation.
        Some("1792x1024") => {
            notes.push("size (1792x1024 -> 1536x1024)".into());
            "1536x1024"
        }
        Some("1024x1792") => {
            notes.push("size (1024x1792 -> 1024x1536)".into());
            "1024x1536"
        }
        Some(other) => {
            return Err(invalid_choice(
                "size",
                other,
                &["auto", "1024x1024", "1024x1536", "1536x1024"],
            ));
        }
    };
    let quality = match req.quality.as_deref() {
        None => "auto",
        Some(q @ ("auto" | "low" | "medium" | "high")) => q,
        Some("standard") => {
            notes.push("quality (standard -> medium)".into());
            "medium"
        }
        Some("hd") => {
            notes.push("quality (hd -> high)".into());
            "high"
        }
        Some(other) => {
            return Err(invalid_choice(
                "quality",
                other,
                &["auto", "low", "medium", "high", "standard", "hd"],
            ));
        }
    };
    let response_format = match req.response_format.as_deref() {
        None | Some("b64_json") => ResponseFormat::B64Json,
        Some("url") => ResponseFormat::Url,
        Some(other) => {
            return Err(invalid_choice(
                "response_format",
                other,
                &["b64_json", "url"],
            ));
        }
    };
    let output_format = req.output_format.as_deref().unwrap_or("png");
    one_of("output_format", output_format, &["png", "jpeg", "webp"])?;
    if let Some(compression) = req.output_compression {
        if compression > 100 {
            return Err(ApiError::invalid(
                "'output_compression' must be between 0 and 100.",
                Some("output_compression"),
            ));
        }
        if output_format == "png" {
            return Err(ApiError::invalid(
                "'output_compression' is only for the jpeg and webp output formats.",
                Some("output_compression"),
            ));
        }
    }
    let background = req.background.as_deref().unwrap_or("auto");
    one_of("background", background, &["auto", "transparent", "opaque"])?;
    if background == "transparent" && output_format == "jpeg" {
        return Err(ApiError::invalid(
            "A transparent background needs the png or webp output format.",
            Some("background"),
        ));
    }
    if let Some(moderation) = req.moderation.as_deref() {
        one_of("moderation", moderation, &["auto", "low"])?;
    }
    if let Some(fidelity) = req.input_fidelity.as_deref() {
        one_of("input_fidelity", fidelity, &["low", "high"])?;
    }
    if req.style.is_some() {
        notes.push("style".into());
    }
    if req.user.is_some() {
        notes.push("user".into());
    }
    let tool = Tool::ImageGeneration {
        size: (size != "auto").then(|| size.to_owned()),
        quality: (quality != "auto").then(|| quality.to_owned()),
        output_format: req.output_format.clone(),
        output_compression: req.output_compression,
        background: (background != "auto").then(|| background.to_owned()),
        moderation: req.moderation.clone(),
        input_fidelity: req.input_fidelity.clone(),
        input_image_mask: mask.map(|url| json!({ "image_url": url })),
    };
    Ok(Planned {
        prompt,
        n,
        tool,
        response_format,
        size: size.to_owned(),
        quality: quality.to_owned(),
        output_format: output_format.to_owned(),
        background: background.to_owned(),
        notes,
    })
}

/// One image made: the tool's base64 result and the prompt the model gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    pub base64: String,
    pub revised_prompt: Option<String>,
}

/// The answer: `{created, data: [{b64_json | url, revised_prompt}], …}`.
pub fn answer(plan: &Planned, made: &[Made], created: i64) -> Value {
    let media = match plan.output_format.as_str() {
        "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        _ => "image/png",
    };
    let data: Vec<Value> = made
        .iter()
        .map(|image| {
            let mut entry = match plan.response_format {
                ResponseFormat::B64Json => json!({ "b64_json": image.base64 }),
                ResponseFormat::Url => {
                    json!({ "url": format!("data:{media};base64,{}", image.base64) })
                }
            };
            if let Some(revised) = &image.revised_prompt {
                entry["revised_prompt"] = revised.clone().into();
            }
            entry
        })
        .collect();
    json!({
        "created": created,
        "data": data,
        "background": plan.background,
        "output_format": plan.output_format,
        "quality": plan.quality,
        "size": plan.size,
    })
}

/// An `image_generation_call` item in a `response.output_item.done` event.
#[derive(Debug, Deserialize)]
struct DoneEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    item: Option<DoneItem>,
}

#[derive(Debug, Deserialize)]
struct DoneItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    revised_prompt: Option<String>,
}

/// The image an event carries, if it is a finished `image_generation_call`. Cheap for every
/// other event: only one that names the item type is parsed.
pub fn made_in(event: &[u8]) -> Option<Made> {
    const MARK: &[u8] = b"image_generation_call";
    memchr::memmem::find(event, MARK)?;
    let done: DoneEvent = serde_json::from_slice(event).ok()?;
    let item = done.item?;
    if done.kind != "response.output_item.done" || item.kind != "image_generation_call" {
        return None;
    }
    Some(Made {
        base64: item.result.filter(|r| !r.is_empty())?,
        revised_prompt: item.revised_prompt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ImageRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn parameters_map_onto_the_tool() {
        let planned = plan(
            &req(
                json!({"prompt": "a cat", "n": 2, "size": "1536x1024", "quality": "high",
                "output_format": "webp", "output_compression": 80, "background": "transparent",
                "moderation": "low"}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(planned.n, 2);
        assert_eq!(
            serde_json::to_value(&planned.tool).unwrap(),
            json!({"type": "image_generation", "size": "1536x1024", "quality": "high",
                   "output_format": "webp", "output_compression": 80, "background": "transparent",
                   "moderation": "low"})
        );
        assert!(planned.notes.is_empty());
        // Defaults leave the tool's own choices.
        let planned = plan(
            &req(json!({"prompt": "a cat"})),
            Some("data:image/png;base64,AAAA".into()),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&planned.tool).unwrap(),
            json!({"type": "image_generation", "input_image_mask": {"image_url": "data:image/png;base64,AAAA"}})
        );
        assert_eq!(
            (planned.size.as_str(), planned.quality.as_str()),
            ("auto", "auto")
        );
    }

    #[test]
    fn dalle_parameters_are_mapped_and_said() {
        let planned = plan(
            &req(json!({"prompt": "x", "size": "1792x1024", "quality": "hd", "style": "vivid", "model": "dall-e-3"})),
            None,
        )
        .unwrap();
        assert_eq!(planned.size, "1536x1024");
        assert_eq!(planned.quality, "high");
        assert_eq!(
            planned.notes,
            [
                "size (1792x1024 -> 1536x1024)",
                "quality (hd -> high)",
                "style"
            ]
        );
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        for (body, field) in [
            (json!({}), "prompt"),
            (json!({"prompt": "x", "n": 0}), "n"),
            (json!({"prompt": "x", "n": 11}), "n"),
            (json!({"prompt": "x", "size": "256x256"}), "size"),
            (json!({"prompt": "x", "quality": "ultra"}), "quality"),
            (
                json!({"prompt": "x", "response_format": "png"}),
                "response_format",
            ),
            (
                json!({"prompt": "x", "output_format": "gif"}),
                "output_format",
            ),
            (
                json!({"prompt": "x", "output_compression": 50}),
                "output_compression",
            ),
            (
                json!({"prompt": "x", "output_format": "jpeg", "background": "transparent"}),
                "background",
            ),
            (json!({"prompt": "x", "stream": true}), "stream"),
            (json!({"prompt": "x", "moderation": "none"}), "moderation"),
        ] {
            let error = plan(&req(body.clone()), None).unwrap_err();
            assert_eq!(
                error.param.as_deref(),
                Some(field),
                "{body}: {}",
                error.message
            );
        }
        assert!(
            serde_json::from_value::<ImageRequest>(json!({"prompt": "x", "colour": "red"}))
                .is_err()
        );
    }

    #[test]
    fn answers_carry_base64_or_data_urls() {
        let made = [Made {
            base64: "iVBORw0KGgo=".into(),
            revised_prompt: Some("A cat, painted".into()),
        }];
        let mut planned = plan(&req(json!({"prompt": "a cat"})), None).unwrap();
        let body = answer(&planned, &made, 1_700_000_000);
        assert_eq!(body["data"][0]["b64_json"], "iVBORw0KGgo=");
        assert_eq!(body["data"][0]["revised_prompt"], "A cat, painted");
        assert_eq!(body["created"], 1_700_000_000);
        assert_eq!(body["output_format"], "png");
        planned.response_format = ResponseFormat::Url;
        let body = answer(&planned, &made, 0);
        assert_eq!(body["data"][0]["url"], "data:image/png;base64,iVBORw0KGgo=");
    }

    #[test]
    fn images_are_read_from_their_done_items_only() {
        let done = br#"{"type":"response.output_item.done","output_index":0,"item":{"type":"image_generation_call","id":"ig_1","status":"completed","revised_prompt":"A red fox","result":"AAAA"}}"#;
        assert_eq!(
            made_in(done),
            Some(Made {
                base64: "AAAA".into(),
                revised_prompt: Some("A red fox".into())
            })
        );
        let added = br#"{"type":"response.output_item.added","item":{"type":"image_generation_call","id":"ig_1","status":"in_progress"}}"#;
        assert_eq!(made_in(added), None);
        assert_eq!(
            made_in(br#"{"type":"response.output_text.delta","delta":"hi"}"#),
            None
        );
    }
}
