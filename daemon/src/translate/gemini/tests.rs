//! The Gemini translation, rule by rule, from requests shaped like the google-genai SDK's and
//! the Gemini CLI's, and the rendering of a realistic answer.

use serde_json::{Value, json};

use super::render::{Mode, Writer, error_body};
use super::{GenerateContentRequest, json_schema_of, model_name, thinking, translate};
use crate::config::ModelConfig;
use crate::translate::fixtures::{PNG, efforts, gpt_5_5};
use crate::translate::messages::tokens::Estimate;
use crate::translate::output::OutputTranslator;
use crate::translate::request::{self, Context};
use crate::upstream::wire::StreamEvent;

fn translated(body: Value) -> super::Translated {
    let req: GenerateContentRequest = serde_json::from_value(body).unwrap();
    translate(req, "gpt-5.5", &efforts()).unwrap()
}

/// A Gemini body all the way to the Responses body.
fn upstream(body: Value) -> Value {
    let model = gpt_5_5();
    let config = ModelConfig::default();
    let out = request::translate(
        translated(body).chat,
        &Context {
            model: &model,
            config: &config,
            prompt_cache_key: "k".into(),
        },
    )
    .unwrap();
    serde_json::to_value(&out.body).unwrap()
}

fn error_of(body: Value) -> String {
    let req: GenerateContentRequest = serde_json::from_value(body).unwrap();
    translate(req, "gpt-5.5", &efforts()).unwrap_err().message
}

#[test]
fn a_function_calling_turn_as_the_sdk_sends_it() {
    // google-genai after automatic function calling: the model's call (no id), then the
    // response in a user turn that names the function.
    let body = upstream(json!({
        "contents": [
            {"role": "user", "parts": [{"text": "What is the weather in Boston?"}]},
            {"role": "model", "parts": [
                {"text": "Let me check.", "thought": false},
                {"functionCall": {"name": "get_weather", "args": {"location": "Boston"}}, "thoughtSignature": "c2ln"}
            ]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}]}
        ],
        "systemInstruction": {"parts": [{"text": "You are a weather bot."}]},
        "tools": [{"functionDeclarations": [{
            "name": "get_weather", "description": "Weather for a place",
            "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING", "description": "City"}}, "required": ["location"]}
        }]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 100}
    }));
    assert_eq!(body["instructions"], "You are a weather bot.");
    let input = body["input"].as_array().unwrap();
    assert_eq!(
        input[0]["content"][0]["text"],
        "What is the weather in Boston?"
    );
    assert_eq!(input[1]["role"], "assistant");
    assert_eq!(input[1]["content"][0]["text"], "Let me check.");
    assert_eq!(input[2]["type"], "function_call");
    assert_eq!(input[2]["call_id"], "call_1_1");
    assert_eq!(input[2]["arguments"], r#"{"location":"Boston"}"#);
    assert_eq!(input[3]["type"], "function_call_output");
    assert_eq!(input[3]["call_id"], "call_1_1");
    assert_eq!(input[3]["output"], r#"{"result":"sunny"}"#);
    let tool = &body["tools"][0];
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(
        tool["parameters"],
        json!({"type": "object", "properties": {"location": {"type": "string", "description": "City"}}, "required": ["location"]})
    );
    assert_eq!(body["tool_choice"], "auto");
}

#[test]
fn ignored_settings_are_reported() {
    let t = translated(json!({
        "contents": [{"parts": [{"text": "hi"}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "tools": [{"urlContext": {}}, {"googleSearch": {}}],
        "generationConfig": {"temperature": 0.5, "topK": 3, "candidateCount": 1, "stopSequences": ["END"]}
    }));
    for key in [
        "safetySettings",
        "generationConfig.temperature",
        "generationConfig.topK",
        "generationConfig.candidateCount",
        "tools.0.urlContext",
    ] {
        assert!(t.ignored.iter().any(|i| i == key), "{key}: {:?}", t.ignored);
    }
    assert!(!t.ignored.iter().any(|i| i.contains("stopSequences")));
    assert!(t.web_search);
    assert!(t.chat.stop.is_some());
}

#[test]
fn googles_schema_dialect_becomes_json_schema() {
    let google = json!({
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
            "note": {"type": "STRING", "nullable": true},
            "choice": {"anyOf": [{"type": "INTEGER"}, {"type": "BOOLEAN"}]}
        },
        "required": ["name"],
        "propertyOrdering": ["name", "tags"]
    });
    assert_eq!(
        json_schema_of(&google),
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "note": {"type": ["string", "null"]},
                "choice": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}
            },
            "required": ["name"]
        })
    );
    // Structured output: a schema in either dialect, with the JSON mime type.
    let body = upstream(json!({
        "contents": [{"parts": [{"text": "A recipe"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": google}
    }));
    assert_eq!(body["text"]["format"]["type"], "json_schema");
    assert_eq!(
        body["text"]["format"]["schema"]["properties"]["name"]["type"],
        "string"
    );
    let plain = json!({"type": "object", "properties": {"x": {"type": "number"}}});
    let body = upstream(json!({
        "contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": plain}
    }));
    assert_eq!(body["text"]["format"]["schema"], plain);
    let body = upstream(json!({
        "contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json"}
    }));
    assert_eq!(body["text"]["format"]["schema"], json!({"type": "object"}));
    assert!(
        error_of(json!({
            "contents": [{"parts": [{"text": "x"}]}],
            "generationConfig": {"responseSchema": {"type": "OBJECT"}}
        }))
        .contains("responseMimeType")
    );
}

#[test]
fn inline_data_images_and_documents() {
    let body = upstream(json!({
        "contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"inline_data": {"mime_type": "application/pdf", "data": "JVBERi0xLjQ="}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
            {"text": "Describe these."}
        ]}]
    }));
    let content = body["input"][0]["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "input_image");
    assert_eq!(
        content[0]["image_url"],
        format!("data:image/png;base64,{PNG}")
    );
    assert_eq!(content[1]["type"], "input_file");
    assert_eq!(
        content[1]["file_data"],
        "data:application/pdf;base64,JVBERi0xLjQ="
    );
    assert_eq!(content[2]["image_url"], "https://example.com/cat.jpg");
    assert_eq!(content[3]["text"], "Describe these.");
    let error = error_of(
        json!({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "UklGR"}}]}]}),
    );
    assert!(error.contains("contents.0.parts.0.inlineData"), "{error}");
    let error =
        error_of(json!({"contents": [{"parts": [{"fileData": {"fileUri": "files/abc123"}}]}]}));
    assert!(error.contains("Files API"), "{error}");
}

#[test]
fn thinking_config_maps_onto_the_models_efforts() {
    let config = |v: Value| serde_json::from_value::<super::ThinkingConfig>(v).unwrap();
    let e = efforts();
    assert_eq!(thinking(None, &e).unwrap(), (None, false));
    assert_eq!(
        thinking(Some(&config(json!({"thinkingBudget": 0}))), &e).unwrap(),
        (Some("low".into()), false)
    );
    assert_eq!(
        thinking(
            Some(&config(
                json!({"thinkingBudget": -1, "includeThoughts": true})
            )),
            &e
        )
        .unwrap(),
        (None, true)
    );
    assert_eq!(
        thinking(Some(&config(json!({"thinkingBudget": 8000}))), &e).unwrap(),
        (Some("medium".into()), false)
    );
    assert_eq!(
        thinking(Some(&config(json!({"thinkingLevel": "HIGH"}))), &e).unwrap(),
        (Some("high".into()), false)
    );
    assert!(thinking(Some(&config(json!({"thinkingLevel": "huge"}))), &e).is_err());
    assert!(thinking(Some(&config(json!({"thinkingBudget": -5}))), &e).is_err());
}

#[test]
fn tool_config_modes() {
    let with = |config: Value| {
        let t = translated(
            json!({"contents": [{"parts": [{"text": "x"}]}], "toolConfig": {"functionCallingConfig": config}}),
        );
        (t.chat.tool_choice, t.ignored)
    };
    assert_eq!(with(json!({"mode": "ANY"})).0, Some(json!("required")));
    assert_eq!(
        with(json!({"mode": "ANY", "allowedFunctionNames": ["f"]})).0,
        Some(json!({"type": "function", "function": {"name": "f"}}))
    );
    assert_eq!(with(json!({"mode": "NONE"})).0, Some(json!("none")));
    let (choice, ignored) = with(json!({"mode": "ANY", "allowedFunctionNames": ["f", "g"]}));
    assert_eq!(choice, Some(json!("required")));
    assert!(ignored.iter().any(|i| i.contains("allowedFunctionNames")));
    let req: GenerateContentRequest = serde_json::from_value(json!({
        "contents": [{"parts": [{"text": "x"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}
    }))
    .unwrap();
    assert!(translate(req, "m", &efforts()).is_err());
}

#[test]
fn bad_contents_are_refused_with_their_path() {
    assert!(error_of(json!({"contents": []})).contains("contents"));
    assert!(
        error_of(json!({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}))
            .contains("contents.0.role")
    );
    assert!(error_of(json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]})).contains("no functionCall"));
    assert!(
        error_of(json!({"contents": [{"role": "model", "parts": [{"text": "only me"}]}]}))
            .contains("user turn")
    );
    assert!(
        error_of(
            json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"codeExecution": {}}]})
        )
        .contains("codeExecution")
    );
    assert!(
        error_of(json!({"contents": [{"parts": [{"executableCode": {"code": "print(1)"}}]}]}))
            .contains("executableCode")
    );
    // Annotations on a part are read past.
    let annotated = json!({"contents": [{"parts": [{"text": "x", "thoughtSignature": "c2ln", "videoMetadata": {}}]}]});
    assert!(translate(serde_json::from_value(annotated).unwrap(), "m", &efforts()).is_ok());
    assert_eq!(model_name("models/gpt-5.5"), "gpt-5.5");
}

fn render(mode: Mode, thoughts: bool) -> Writer {
    let mut writer = Writer::new(mode, "gpt-5.5".into(), thoughts, &[], Estimate::known(42));
    let mut output = OutputTranslator::default();
    for event in crate::translate::output::sample_events() {
        let data = event.to_string();
        StreamEvent::with(data.as_bytes(), |_| false, |e| output.push(e, &mut writer));
    }
    writer
}

#[test]
fn a_stream_is_one_part_per_chunk_then_the_finish() {
    let mut writer = render(Mode::Stream, true);
    let chunks: Vec<Value> = writer
        .chunks()
        .drain(..)
        .map(|c| serde_json::from_slice(&c).unwrap())
        .collect();
    let part = |i: usize| chunks[i]["candidates"][0]["content"]["parts"][0].clone();
    assert_eq!(part(0), json!({"text": "Plan.", "thought": true}));
    assert_eq!(part(1), json!({"text": "\n\n", "thought": true}));
    assert_eq!(part(2), json!({"text": "Act.", "thought": true}));
    assert_eq!(part(3), json!({"text": "Running "}));
    assert_eq!(part(4), json!({"text": "ls."}));
    assert_eq!(
        part(5),
        json!({"functionCall": {"id": "call_7", "name": "Bash", "args": {"command": "ls"}}})
    );
    let last = &chunks[6];
    assert_eq!(chunks.len(), 7);
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"],
        json!({"promptTokenCount": 1000, "candidatesTokenCount": 30, "thoughtsTokenCount": 20,
               "cachedContentTokenCount": 800, "totalTokenCount": 1050})
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["modelVersion"] == "gpt-5.5" && c["responseId"] == "resp_abc")
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["candidates"][0]["content"]["role"] == "model")
    );
    assert!(
        chunks[..6]
            .iter()
            .all(|c| c["candidates"][0].get("finishReason").is_none())
    );
}

#[test]
fn a_whole_answer_merges_the_text_and_hides_thoughts_unless_asked() {
    let whole = render(Mode::Whole, false).whole();
    let parts = whole["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0], json!({"text": "Running ls."}));
    assert_eq!(parts[1]["functionCall"]["args"], json!({"command": "ls"}));
    assert_eq!(whole["candidates"][0]["finishReason"], "STOP");
    let with_thoughts = render(Mode::Whole, true).whole();
    assert_eq!(
        with_thoughts["candidates"][0]["content"]["parts"][0],
        json!({"text": "Plan.\n\nAct.", "thought": true})
    );
    assert_eq!(
        error_body(429, "slow down"),
        json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
    );
}

/// A conversation translated in two parts — the first `k` contents, then the rest continuing
/// from the first part's [`History`](super::History) (and the Chat translation's) — gives the
/// body translating it whole gives, at every `k`: calls made up ids for by their place, a
/// response after the split answering a call before it, the system instruction once. The
/// daemon's continued Gemini turns rest on this.
#[test]
fn contents_continued_from_any_point_translate_as_a_whole() {
    use super::{History, translate_after};
    use crate::upstream::written::Written;
    let contents = json!([
        {"role": "user", "parts": [{"text": "Fix the failing test."}]},
        {"role": "model", "parts": [
            {"text": "Looking at it.", "thought": true},
            {"functionCall": {"name": "read_file", "args": {"path": "src/lib.rs"}}, "thoughtSignature": "c2ln"}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "read_file", "response": {"output": "fn f() {}"}}}]},
        {"role": "model", "parts": [
            {"functionCall": {"id": "kept-1", "name": "run", "args": {"cmd": "cargo test"}}},
            {"functionCall": {"name": "read_file", "args": {"path": "tests/t.rs"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "read_file", "response": {"output": "#[test] fn t() {}"}}},
            {"functionResponse": {"id": "kept-1", "name": "run", "response": {"output": "1 failed"}}}]},
        {"role": "model", "parts": [{"text": "The test expects 2."}]},
        {"role": "user", "parts": [
            {"text": "Here is the screen:"},
            {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
        {"role": "model", "parts": [{"text": "I see it."}]},
        {"role": "user", "parts": [{"text": "Go on."}]}
    ]);
    let all = contents.as_array().unwrap().clone();
    let request = |contents: &[Value]| -> GenerateContentRequest {
        serde_json::from_value(json!({
            "contents": contents,
            "systemInstruction": {"parts": [{"text": "You are a coding agent."}]},
            "tools": [{"functionDeclarations": [
                {"name": "read_file", "parameters": {"type": "OBJECT", "properties": {"path": {"type": "STRING"}}}},
                {"name": "run", "parameters": {"type": "OBJECT", "properties": {"cmd": {"type": "STRING"}}}}]}],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": -1}}
        }))
        .unwrap()
    };
    let model = gpt_5_5();
    let config = ModelConfig::default();
    let ctx = Context {
        model: &model,
        config: &config,
        prompt_cache_key: "k".into(),
    };
    let whole = translate(request(&all), "gpt-5.5", &efforts()).unwrap();
    let made_up = whole.made_up_ids.clone();
    assert_eq!(made_up, ["call_1_1", "call_3_1"]);
    let whole = request::translate(whole.chat, &ctx).unwrap();
    let expected = Written::write(&whole.body, None).unwrap().to_json();
    for k in 1..all.len() {
        let mut history = History::default();
        let first = translate_after(request(&all[..k]), "gpt-5.5", &efforts(), &mut history)
            .unwrap_or_else(|e| panic!("split at {k}: {}", e.message));
        let rest = translate_after(request(&all[k..]), "gpt-5.5", &efforts(), &mut history)
            .unwrap_or_else(|e| panic!("split at {k}: {}", e.message));
        let mut ids = first.made_up_ids.clone();
        ids.extend(rest.made_up_ids.clone());
        assert_eq!(ids, made_up, "split at {k}");
        let (first, chat_history) =
            request::translate_after(first.chat, &ctx, request::History::default()).unwrap();
        let (rest, _) = request::translate_after(rest.chat, &ctx, chat_history).unwrap();
        let earlier = Written::write(&first.body, None).unwrap();
        let continued = Written::write(&rest.body, Some(earlier.items()))
            .unwrap()
            .to_json();
        assert_eq!(
            String::from_utf8(continued).unwrap(),
            String::from_utf8(expected.clone()).unwrap(),
            "split at {k}"
        );
    }
    // An error in the continued part names the content by its place in the whole request.
    let mut history = History::default();
    translate_after(request(&all[..2]), "gpt-5.5", &efforts(), &mut history).unwrap();
    let bad = json!([{"role": "model", "parts": [{"functionResponse": {"name": "x"}}]}]);
    let error = translate_after(
        request(bad.as_array().unwrap()),
        "gpt-5.5",
        &efforts(),
        &mut history,
    )
    .unwrap_err();
    assert!(
        error.message.starts_with("contents.2.parts.0"),
        "{}",
        error.message
    );
}
