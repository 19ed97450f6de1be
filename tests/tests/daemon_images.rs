//! The Images API end to end against the strict fake: generations and edits (multipart and
//! JSON) made by the backend's `image_generation` tool, `n` images as `n` responses, DALL·E
//! parameters mapped and said, a model that draws nothing, an account whose plan refuses the
//! tool, and bad parameters refused before anything goes upstream.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use codex_proxy_tests::fake::{FakeUpstream, RESPONSES_PATH, Reply, Script};
use codex_proxy_tests::harness::Daemon;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const PIXEL: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

async fn setup() -> (FakeUpstream, Daemon) {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();
    (fake, daemon)
}

async fn post(daemon: &Daemon, path: &str, body: &Value) -> (u16, HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(daemon.url(path))
        .bearer_auth(daemon.api_key())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

fn upstream(fake: &FakeUpstream) -> Vec<Value> {
    fake.requests_to(RESPONSES_PATH)
        .into_iter()
        .filter_map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn a_generation_is_the_image_tool_called_once() {
    let (fake, daemon) = setup().await;
    let (status, _, body) = post(
        &daemon,
        "/v1/images/generations",
        &json!({"model": "gpt-image-1", "prompt": "A red fox in snow", "size": "1024x1536",
                "quality": "high", "output_format": "webp", "output_compression": 70}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["b64_json"], PIXEL);
    assert_eq!(
        body["data"][0]["revised_prompt"],
        "An image of: A red fox in snow"
    );
    assert!(body["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(body["size"], "1024x1536");
    assert_eq!(body["output_format"], "webp");
    let sent = upstream(&fake).pop().unwrap();
    assert_eq!(
        sent["tools"],
        json!([{"type": "image_generation", "size": "1024x1536", "quality": "high",
                "output_format": "webp", "output_compression": 70}])
    );
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["parallel_tool_calls"], false);
    assert!(
        sent["instructions"]
            .as_str()
            .unwrap()
            .contains("image_generation")
    );
    assert_eq!(sent["input"][0]["content"][0]["text"], "A red fox in snow");

    // n images: n responses; a data URL when asked for a url; DALL·E's names mapped and said.
    let (status, headers, body) = post(
        &daemon,
        "/v1/images/generations",
        &json!({"model": "dall-e-3", "prompt": "A lighthouse", "n": 3, "size": "1792x1024",
                "quality": "hd", "response_format": "url", "style": "vivid"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert!(
        data.iter()
            .all(|d| d["url"] == format!("data:image/png;base64,{PIXEL}"))
    );
    let noted = headers["x-codex-proxy-ignored-params"].to_str().unwrap();
    for note in [
        "size (1792x1024 -> 1536x1024)",
        "quality (hd -> high)",
        "style",
        "model (dall-e-3",
    ] {
        assert!(noted.contains(note), "{note}: {noted}");
    }
    let sent = upstream(&fake);
    assert_eq!(sent.len(), 4);
    assert!(
        sent[1..]
            .iter()
            .all(|b| b["tools"][0]["size"] == "1536x1024")
    );
}

#[tokio::test]
async fn edits_carry_their_images_and_mask() {
    let (fake, daemon) = setup().await;
    let png = base64_decode(PIXEL);
    let form = reqwest::multipart::Form::new()
        .text("prompt", "Add a hat")
        .text("n", "1")
        .text("input_fidelity", "high")
        .part(
            "image[]",
            reqwest::multipart::Part::bytes(png.clone())
                .file_name("a.png")
                .mime_str("image/png")
                .unwrap(),
        )
        .part(
            "image[]",
            reqwest::multipart::Part::bytes(png.clone()).file_name("b.png"),
        )
        .part(
            "mask",
            reqwest::multipart::Part::bytes(png).file_name("mask.png"),
        );
    let response = reqwest::Client::new()
        .post(daemon.url("/v1/images/edits"))
        .bearer_auth(daemon.api_key())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][0]["b64_json"], PIXEL);
    let sent = upstream(&fake).pop().unwrap();
    let content = sent["input"][0]["content"].as_array().unwrap();
    assert_eq!(content[0]["text"], "Add a hat");
    assert_eq!(content[1]["type"], "input_image");
    assert_eq!(
        content[1]["image_url"],
        format!("data:image/png;base64,{PIXEL}")
    );
    assert_eq!(content[2]["type"], "input_image");
    assert_eq!(
        sent["tools"][0]["input_image_mask"]["image_url"],
        format!("data:image/png;base64,{PIXEL}")
    );
    assert_eq!(sent["tools"][0]["input_fidelity"], "high");

    // JSON edits name their images by URL.
    let (status, _, body) = post(
        &daemon,
        "/v1/images/edits",
        &json!({"prompt": "Make it blue", "images": [{"image_url": format!("data:image/png;base64,{PIXEL}")}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post(&daemon, "/v1/images/edits", &json!({"prompt": "No image"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "image");
}

#[tokio::test]
async fn no_image_or_a_refused_tool_is_a_clear_error() {
    let (fake, daemon) = setup().await;
    fake.enqueue(Script::text("I can't draw that."));
    let (status, _, body) = post(
        &daemon,
        "/v1/images/generations",
        &json!({"prompt": "Something"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "image_not_generated");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("I can't draw that.")
    );

    // The backend refuses the tool for this account (its wording is not known; anything that
    // names image generation reads as the plan lacking it), as a 400 or a 403.
    fake.enqueue(Script::new(Reply::Raw {
        status: 400,
        content_type: "application/json".into(),
        body:
            json!({"error": {"message": "Tool 'image_generation' is not supported for this plan.",
                               "type": "invalid_request_error", "param": "tools", "code": null}})
            .to_string(),
    }));
    let (status, _, body) = post(
        &daemon,
        "/v1/images/generations",
        &json!({"prompt": "A cat"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "image_generation_unavailable");
    fake.enqueue(Script::new(Reply::Raw {
        status: 403,
        content_type: "application/json".into(),
        body: json!({"error": {"message": "Image generation is not available for this account.",
                               "type": "invalid_request_error", "code": null}})
        .to_string(),
    }));
    let (status, _, body) = post(
        &daemon,
        "/v1/images/generations",
        &json!({"prompt": "A cat"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "image_generation_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("plan may not include it"), "{message}");
    assert!(
        message.contains("not available for this account"),
        "{message}"
    );

    let before = upstream(&fake).len();
    for (bad, param) in [
        (json!({"prompt": "x", "size": "256x256"}), "size"),
        (json!({"prompt": "x", "n": 20}), "n"),
        (json!({"prompt": ""}), "prompt"),
        (json!({"prompt": "x", "stream": true}), "stream"),
    ] {
        let (status, _, body) = post(&daemon, "/v1/images/generations", &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["param"], param, "{bad}: {body}");
    }
    assert_eq!(upstream(&fake).len(), before);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
