//! OpenAI's Images API: `POST /v1/images/generations` (JSON) and `POST /v1/images/edits`
//! (multipart form with the images and an optional mask, as the SDKs send it, or JSON with
//! image URLs), made by the backend's `image_generation` tool (`translate::images`).
//!
//! Each request is a conversation of its own: a user message with the prompt (and an edit's
//! images) to a Codex model whose only tool is image generation, required; `n` images are `n`
//! responses started together on one account. The answer waits for every image.

use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value};

use super::auth::ClientKey;
use super::body::JsonBody;
use super::{ApiError, AppState};
use crate::engine::{self, TurnRequest};
use crate::models;
use crate::requests::Observed;
use crate::translate::chat::{self, ChatMessage, ImageUrl, MessageContent};
use crate::translate::images::{self, ImageRequest, Made, Planned};
use crate::translate::output::{OutputEvent, OutputSink, OutputTranslator};
use crate::translate::request::{self, Context};
use crate::translate::stream::StreamTranslator;
use crate::upstream::EventStream;
use crate::upstream::wire::{Failure, StreamEvent, ToolChoice, Usage};

/// What the model is told: the tool does the work; its words are not wanted.
const INSTRUCTIONS: &str = "Create the image the user describes by calling the image_generation \
     tool once, with a prompt that follows the user's request faithfully. When images are \
     attached, the request is an edit of them. Do not answer in text.";

pub async fn generations(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    observed: Option<Extension<Observed>>,
    body: JsonBody,
) -> Response {
    let result = async {
        let JsonBody { bytes, reservation } = body;
        let req: ImageRequest = super::body::parse_json(&bytes)?;
        drop(bytes);
        if req.images.is_some() || req.mask.is_some() {
            return Err(ApiError::invalid(
                "'images' and 'mask' belong to /v1/images/edits.",
                Some("images"),
            ));
        }
        let planned = images::plan(&req, None)?;
        let sent = Sent {
            observed,
            reservation,
        };
        make(&state, client, sent, req.model, planned, Vec::new()).await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn edits(
    State(state): State<AppState>,
    Extension(client): Extension<ClientKey>,
    observed: Option<Extension<Observed>>,
    headers: HeaderMap,
    body: JsonBody,
) -> Response {
    let result = async {
        let JsonBody { bytes, reservation } = body;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (req, inputs, mask) = if content_type.starts_with("multipart/form-data") {
            form(content_type, bytes).await?
        } else {
            let req: ImageRequest = super::body::parse_json(&bytes)?;
            drop(bytes);
            let inputs = req
                .images
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, r)| reference(r, &format!("images.{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            let mask = req
                .mask
                .as_ref()
                .map(|m| reference(m, "mask"))
                .transpose()?;
            (req, inputs, mask)
        };
        if inputs.is_empty() {
            return Err(ApiError::invalid(
                "Missing required parameter: 'image' (the image to edit).",
                Some("image"),
            ));
        }
        if inputs.len() > images::MAX_INPUT_IMAGES {
            return Err(ApiError::invalid(
                format!(
                    "At most {} images may be edited at once.",
                    images::MAX_INPUT_IMAGES
                ),
                Some("image"),
            ));
        }
        let planned = images::plan(&req, mask)?;
        let sent = Sent {
            observed,
            reservation,
        };
        make(&state, client, sent, req.model, planned, inputs).await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// An image given by address in a JSON edit.
fn reference(image: &images::ImageRef, path: &str) -> Result<String, ApiError> {
    match (&image.image_url, &image.file_id) {
        (Some(url), _)
            if url.starts_with("data:image/")
                || url.starts_with("https://")
                || url.starts_with("http://") =>
        {
            Ok(url.clone())
        }
        (Some(_), _) => Err(ApiError::invalid(
            format!("{path}.image_url: a data:image/… URL or a web address"),
            Some(path),
        )),
        (None, Some(_)) => Err(ApiError::invalid(
            format!("{path}.file_id: there is no Files API here; send the image as image_url"),
            Some(path),
        )),
        (None, None) => Err(ApiError::invalid(
            format!("{path}: image_url is required"),
            Some(path),
        )),
    }
}

/// A multipart edit: its fields as the request, its `image` files and `mask` as data URLs.
async fn form(
    content_type: &str,
    bytes: Bytes,
) -> Result<(ImageRequest, Vec<String>, Option<String>), ApiError> {
    let bad = |e: multer::Error| {
        ApiError::invalid(format!("The multipart form could not be read: {e}"), None)
    };
    let boundary = multer::parse_boundary(content_type).map_err(bad)?;
    let stream =
        futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = Map::new();
    let mut inputs = Vec::new();
    let mut mask = None;
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        let declared = field.content_type().map(ToString::to_string);
        let is_file = field.file_name().is_some();
        let data = field.bytes().await.map_err(bad)?;
        match name.as_str() {
            "image" | "image[]" => inputs.push(data_url(&data, declared.as_deref(), "image")?),
            "mask" => mask = Some(data_url(&data, declared.as_deref(), "mask")?),
            _ if is_file => {
                return Err(ApiError::invalid(
                    format!(
                        "Unexpected file field '{}'.",
                        crate::api_error::quoted(&name)
                    ),
                    Some(&name),
                ));
            }
            _ => {
                let text = String::from_utf8_lossy(&data).into_owned();
                let value = match name.as_str() {
                    "n" | "output_compression" | "partial_images" => {
                        text.trim().parse::<u64>().map(Value::from).map_err(|_| {
                            ApiError::invalid(format!("'{name}' must be a number."), Some(&name))
                        })?
                    }
                    "stream" => Value::Bool(text.trim() == "true"),
                    _ => Value::String(text),
                };
                fields.insert(name, value);
            }
        }
    }
    let req: ImageRequest = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::invalid(format!("Invalid form field: {e}"), None))?;
    Ok((req, inputs, mask))
}

/// An uploaded image as a data URL, its type from the upload or its first bytes.
fn data_url(data: &[u8], declared: Option<&str>, field: &str) -> Result<String, ApiError> {
    let sniffed = if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if data.len() > 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else if data.starts_with(b"GIF8") {
        Some("image/gif")
    } else {
        None
    };
    let media = sniffed
        .or(declared.filter(|d| d.starts_with("image/")))
        .ok_or_else(|| {
            ApiError::invalid(
                format!("'{field}' is not a PNG, JPEG, WebP or GIF image."),
                Some(field),
            )
        })?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    Ok(format!("data:{media};base64,{encoded}"))
}

/// What a request brings besides its parameters: its observer for the request log, and its
/// body's share of the memory budget (given back once the request has gone upstream).
struct Sent {
    observed: Option<Extension<Observed>>,
    reservation: super::body::Reservation,
}

/// Runs the request: `n` responses on one account, each to carry one image.
async fn make(
    state: &AppState,
    client: ClientKey,
    sent: Sent,
    requested_model: Option<String>,
    mut planned: Planned,
    inputs: Vec<String>,
) -> Result<Response, ApiError> {
    let in_flight = state.track_request();
    let Sent {
        observed,
        reservation,
    } = sent;
    let observed = observed.map(|Extension(o)| o);
    let config = state.config();
    let catalog = state.catalog();
    let aliases = &config.model.aliases;
    // The model that calls the tool: the one named when it is a Codex model, else the default
    // (gpt-image-1, dall-e-3, … name the image model, which the tool picks itself).
    let resolved = match requested_model.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(name) => match models::resolve(Some(name), &catalog, aliases, &config.model.default) {
            Ok(resolved) => resolved,
            Err(_) => {
                planned.notes.push(format!(
                    "model ({}: the backend's image tool chooses its image model)",
                    crate::api_error::quoted(name)
                ));
                models::resolve(None, &catalog, aliases, &config.model.default)?
            }
        },
        None => models::resolve(None, &catalog, aliases, &config.model.default)?,
    };
    if resolved.model.lite {
        return Err(ApiError::invalid(
            format!(
                "{} cannot call the image tool; name another Codex model in 'model' (or change \
                 [model] default).",
                resolved.model.slug
            ),
            Some("model"),
        ));
    }
    let mut parts = vec![chat::ContentPart::Text {
        text: planned.prompt.clone(),
    }];
    parts.extend(inputs.into_iter().map(|url| chat::ContentPart::ImageUrl {
        image_url: ImageUrl::Bare(url),
    }));
    let lowest = resolved.model.efforts.first().cloned();
    let chat = chat::ChatRequest {
        model: Some(resolved.model.slug.clone()),
        messages: vec![
            ChatMessage::System {
                content: MessageContent::Text(INSTRUCTIONS.to_owned()),
            },
            ChatMessage::User {
                content: MessageContent::Parts(parts),
            },
        ],
        stream: true,
        stream_options: None,
        tools: None,
        tool_choice: None,
        parallel_tool_calls: Some(false),
        functions: None,
        function_call: None,
        response_format: None,
        reasoning_effort: lowest,
        reasoning: None,
        verbosity: None,
        stop: None,
        n: None,
        service_tier: None,
        prompt_cache_key: None,
        other: std::collections::BTreeMap::new(),
    };
    // Every request its own conversation: nothing to share with another.
    let conversation = engine::named(client.0, &format!("images:{}", uuid::Uuid::now_v7()));
    let session = state.conversations().key_for(conversation);
    let mut translated = request::translate(
        chat,
        &Context {
            model: &resolved,
            config: &config.model,
            prompt_cache_key: session.clone(),
        },
    )?;
    translated.body.tools = Some(vec![planned.tool.clone()]);
    translated.body.tool_choice = ToolChoice::Mode("required");
    translated.body.parallel_tool_calls = false;
    translated.body.client_metadata = state.client_metadata(&session);
    let wire = state
        .upstream()
        .encode(&translated.body)
        .map_err(ApiError::not_encoded)?;
    drop(translated);
    let turn = engine::start(
        state,
        &TurnRequest {
            conversation,
            session: &session,
            wire: &wire,
            lite: false,
            fan_out: planned.n,
            model: &resolved.model.slug,
            prefer: None,
            first_event_within: Duration::from_secs(config.server.keepalive_seconds),
            call: engine::Call::Responses,
            observed: observed.as_ref(),
        },
        in_flight,
    )
    .await
    .map_err(|e| unavailable(e.to_api_error()))?;
    // Sent: the request's memory goes back while the images are made.
    drop(wire);
    drop(reservation);
    let mut guard = turn.guard;
    let outcomes = futures_util::future::join_all(turn.streams.into_iter().map(read)).await;
    let mut made = Vec::with_capacity(outcomes.len());
    let mut first_error = None;
    for outcome in outcomes {
        if let Some(usage) = &outcome.usage {
            guard.add_usage(usage);
        }
        match outcome.result {
            Ok(image) => made.push(image),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        guard.failed(&error.message);
        return Err(error);
    }
    guard.release_slot();
    drop(guard);
    let body = images::answer(&planned, &made, crate::clock::unix_now());
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    if !planned.notes.is_empty()
        && let Ok(value) = HeaderValue::from_str(&planned.notes.join(", "))
    {
        response
            .headers_mut()
            .insert("x-codex-proxy-ignored-params", value);
    }
    Ok(response)
}

/// What one response came to.
struct Outcome {
    result: Result<Made, ApiError>,
    usage: Option<Usage>,
}

/// What the response says besides its image: its words (a refusal), its end.
#[derive(Default)]
struct Watch {
    text: String,
    usage: Option<Usage>,
    failure: Option<Failure>,
    finished: bool,
}

impl OutputSink for Watch {
    fn event(&mut self, event: OutputEvent<'_>) {
        match event {
            OutputEvent::TextDelta { text, .. } => self.text.push_str(text),
            OutputEvent::Refusal { text, .. } => self.text.push_str(&text),
            OutputEvent::Finish { usage, .. } => {
                self.usage = usage;
                self.finished = true;
            }
            OutputEvent::Failed(failure) => self.failure = Some(failure),
            _ => {}
        }
    }
}

/// Reads one response to its end, keeping the first image it carries.
async fn read(mut events: EventStream) -> Outcome {
    let mut output = OutputTranslator::default();
    let mut watch = Watch::default();
    let mut image = None;
    while !output.is_terminal() && watch.failure.is_none() {
        match events.next().await {
            Some(Ok(data)) => {
                if image.is_none() {
                    image = images::made_in(data);
                }
                StreamEvent::with(data, StreamTranslator::ignores, |event| {
                    output.push(event, &mut watch);
                });
            }
            Some(Err(error)) => {
                watch.failure = Some(Failure {
                    code: None,
                    message: format!("The upstream stream broke: {error}"),
                    resets_at: None,
                });
            }
            None => output.eof(&mut watch),
        }
    }
    events.finish();
    let usage = watch.usage;
    let result = match (image, watch.failure) {
        (_, Some(failure)) => Err(unavailable(engine::stream_failure(&failure))),
        (Some(image), None) => Ok(image),
        (None, None) => {
            let said = watch.text.trim();
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "image_not_generated",
                if said.is_empty() {
                    "The model made no image for this prompt.".to_owned()
                } else {
                    format!("The model made no image; it said: {said}")
                },
            ))
        }
    };
    Outcome { result, usage }
}

/// A refusal that names image generation: most likely the account's plan lacks the tool, said
/// so plainly (the backend's words follow).
fn unavailable(mut error: ApiError) -> ApiError {
    let about_images = error.message.to_ascii_lowercase().contains("image");
    // The backend's 403 reaches here as a 502 that names it (`upstream_forbidden`).
    let forbidden = error.code == Some("upstream_forbidden");
    if about_images && (forbidden || matches!(error.status.as_u16(), 400 | 403 | 404)) {
        if forbidden {
            error.status = StatusCode::FORBIDDEN;
        }
        error.message = format!(
            "The Codex backend refused image generation for this account — its ChatGPT plan may \
             not include it. The backend said: {}",
            error.message
        );
        error.code = Some("image_generation_unavailable");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_become_data_urls_of_their_type() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        assert!(
            data_url(png, None, "image")
                .unwrap()
                .starts_with("data:image/png;base64,iVBORw0KGg")
        );
        assert!(
            data_url(
                b"\xff\xd8\xff\xe0",
                Some("application/octet-stream"),
                "image"
            )
            .unwrap()
            .starts_with("data:image/jpeg;base64,")
        );
        assert!(
            data_url(b"RIFF\0\0\0\0WEBPVP8 ", None, "image")
                .unwrap()
                .starts_with("data:image/webp;")
        );
        assert!(data_url(b"hello", Some("text/plain"), "mask").is_err());
        // An unknown signature, declared an image: taken as declared.
        assert!(
            data_url(b"\0\0\0\x0cjP  ", Some("image/jp2"), "image")
                .unwrap()
                .starts_with("data:image/jp2;")
        );
    }

    #[test]
    fn a_refusal_about_images_names_the_plan() {
        let refused = unavailable(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "forbidden",
            "Image generation is not available.",
        ));
        assert_eq!(refused.code, Some("image_generation_unavailable"));
        assert!(refused.message.contains("plan may not include it"));
        let other = unavailable(ApiError::invalid("Bad prompt", None));
        assert_eq!(other.message, "Bad prompt");
    }
}
