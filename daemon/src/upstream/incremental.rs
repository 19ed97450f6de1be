//! Incremental turns (§5.4): on the socket that answered a conversation's last turn, a
//! request whose non-input fields are unchanged and whose input is that turn's input, then its
//! output, then new items is sent as only the new items with `previous_response_id`.
//!
//! Decided by comparison, never by guessing. The members other than `input` are hashed whole.
//! The earlier input is compared item by item by a hash of each item's bytes (a client, or
//! our translation of its history, sends the same history the same way). The earlier output
//! is compared by meaning, since a client sends the answer back in its own words: a message
//! by role and text, a call by id, name and arguments, reasoning by its encrypted content —
//! and a reasoning item the client left out (Chat Completions and Messages clients keep none)
//! may be missing: the backend still has it, which is how the model keeps its reasoning
//! across a tool loop. Anything else goes out whole.

use std::borrow::Cow;
use std::hash::Hash;

use serde::Deserialize;
use serde_json::value::RawValue;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// A Responses body read just enough to cut it: its members, and its input's items.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The top-level members in order, `input` included (as JSON).
    pub(crate) members: Vec<(Cow<'a, str>, &'a str)>,
    /// The input's items, as JSON.
    pub input: Vec<&'a str>,
}

/// A JSON object's members in order, their values left as they are.
pub(crate) struct Members<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(name) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Reads the body's outline (the bytes are checked once, nothing is copied).
pub fn parse(body: &[u8]) -> Option<Parsed<'_>> {
    let Members(members) = serde_json::from_slice(body).ok()?;
    let input = match members.iter().find(|(name, _)| name == "input") {
        Some((_, raw)) => serde_json::from_str::<Vec<&RawValue>>(raw.get())
            .ok()?
            .into_iter()
            .map(RawValue::get)
            .collect(),
        None => Vec::new(),
    };
    let members = members.into_iter().map(|(n, raw)| (n, raw.get())).collect();
    Some(Parsed { members, input })
}

/// A body read from its parts: `head`, a JSON object of the members other than `input`, and
/// the input's items (see [`super::written`]).
pub fn from_parts<'a>(head: &'a str, input: Vec<&'a str>) -> Option<Parsed<'a>> {
    let Members(members) = serde_json::from_str(head).ok()?;
    let mut members: Vec<(Cow<'a, str>, &'a str)> =
        members.into_iter().map(|(n, raw)| (n, raw.get())).collect();
    // Its place among the members; the items are written where it is.
    members.push((Cow::Borrowed("input"), "[]"));
    Some(Parsed { members, input })
}

/// Turns are compared by 128-bit xxh3 digests: ~10 GB/s (SipHash, std's, took 6 % of an
/// incremental turn on a 1 MB history), and no accidental collision to fear in a history.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u128 {
    xxh3_128(bytes)
}

/// What a request is, for comparing the next one with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Every member but `input` (and `previous_response_id`, `client_metadata`, `generate`).
    non_input: u128,
    /// Each input item's bytes.
    input: Vec<u128>,
}

/// The shape of a parsed request.
pub fn shape(parsed: &Parsed<'_>) -> Shape {
    let input = parsed
        .input
        .iter()
        .map(|i| hash_bytes(i.as_bytes()))
        .collect();
    shape_with(parsed, input)
}

/// The shape of a parsed request whose items' digests are known.
pub fn shape_with(parsed: &Parsed<'_>, input: Vec<u128>) -> Shape {
    let mut h = Xxh3::new();
    for (name, raw) in &parsed.members {
        // As the official client compares (`get_incremental_items`): not the transport's
        // metadata, which carries per-request values (a send time, turn ids), nor `generate`.
        if matches!(
            name.as_ref(),
            "input" | "previous_response_id" | "client_metadata" | "generate"
        ) {
            continue;
        }
        name.hash(&mut h);
        raw.hash(&mut h);
    }
    Shape {
        non_input: h.digest128(),
        input,
    }
}

/// An item by meaning: how the backend's output item and a client's copy of it compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey {
    reasoning: bool,
    key: u128,
}

impl ItemKey {
    pub fn is_reasoning(&self) -> bool {
        self.reasoning
    }
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", default)]
    kind: Option<&'a str>,
    #[serde(default)]
    role: Option<&'a str>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    encrypted_content: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

/// The meaning of one item (input or output).
pub fn item_key(raw: &str) -> ItemKey {
    let Ok(item) = serde_json::from_str::<Item<'_>>(raw) else {
        return ItemKey {
            reasoning: false,
            key: hash_bytes(raw.as_bytes()),
        };
    };
    let mut h = Xxh3::new();
    let kind = item.kind.unwrap_or("message");
    kind.hash(&mut h);
    match kind {
        "message" => {
            item.role.hash(&mut h);
            // The text of its parts, whatever their type (`output_text` or `input_text`).
            match item.content.map(RawValue::get) {
                Some(text) if text.starts_with('"') => {
                    serde_json::from_str::<String>(text)
                        .unwrap_or_default()
                        .hash(&mut h);
                }
                Some(parts) => {
                    let parts: Vec<Part> = serde_json::from_str(parts).unwrap_or_default();
                    let mut text = String::new();
                    for part in parts {
                        text.push_str(part.text.or(part.refusal).as_deref().unwrap_or_default());
                    }
                    text.hash(&mut h);
                }
                None => {}
            }
        }
        "function_call" | "custom_tool_call" => {
            item.call_id.hash(&mut h);
            item.name.hash(&mut h);
            item.arguments.hash(&mut h);
            item.input.hash(&mut h);
        }
        "reasoning" => {
            // The encrypted content is the reasoning; without it, its id.
            match &item.encrypted_content {
                Some(content) => content.hash(&mut h),
                None => item.id.hash(&mut h),
            }
        }
        _ => raw.hash(&mut h),
    }
    ItemKey {
        reasoning: kind == "reasoning",
        key: h.digest128(),
    }
}

/// A conversation's last completed turn on a socket: what the next may build on.
#[derive(Debug, Clone)]
pub struct Chain {
    pub response_id: String,
    shape: Shape,
    output: Vec<ItemKey>,
}

impl Chain {
    pub fn new(response_id: String, shape: Shape, output: Vec<ItemKey>) -> Self {
        Self {
            response_id,
            shape,
            output,
        }
    }
}

/// Where the new items of `next` begin when it continues `chain`; `None` when it does not
/// (another model, tools or instructions, an edited or shortened history, another answer).
pub fn continues(chain: &Chain, next: &Shape, parsed: &Parsed<'_>) -> Option<usize> {
    if next.non_input != chain.shape.non_input {
        return None;
    }
    let before = chain.shape.input.len();
    if next.input.len() < before || next.input[..before] != chain.shape.input[..] {
        return None;
    }
    // The earlier answer, by meaning; reasoning the client left out is still upstream.
    let mut at = before;
    for output in &chain.output {
        let matched = parsed
            .input
            .get(at)
            .is_some_and(|item| item_key(item) == *output);
        if matched {
            at += 1;
        } else if !output.reasoning {
            return None;
        }
    }
    Some(at)
}

/// What a `response.create` frame is made of, besides the request's other members.
#[derive(Debug, Default)]
pub struct Frame<'a> {
    /// `previous_response_id`, for an incremental turn.
    pub previous: Option<&'a str>,
    /// The input items, as JSON.
    pub input: Vec<&'a str>,
    /// Entries added to `client_metadata` (on a socket, per-request headers travel there).
    pub metadata: &'a [(&'a str, &'a str)],
}

/// A `response.create` frame: the request's members as they were, with `frame`'s input,
/// previous response and metadata.
pub fn build_frame(parsed: &Parsed<'_>, frame: &Frame<'_>) -> String {
    write_object(parsed, frame, true, String::new())
}

/// The request body (no `type`) with `input` in place of its input.
pub fn build_body(parsed: &Parsed<'_>, input: &[&str]) -> String {
    let frame = Frame {
        previous: None,
        input: input.to_vec(),
        metadata: &[],
    };
    write_object(parsed, &frame, false, String::new())
}

fn write_object(parsed: &Parsed<'_>, frame: &Frame<'_>, create: bool, mut out: String) -> String {
    let rest: usize = parsed
        .members
        .iter()
        .filter(|(name, _)| name != "input")
        .map(|(name, raw)| name.len() + raw.len() + 4)
        .sum();
    let items: usize = frame.input.iter().map(|i| i.len() + 1).sum();
    out.clear();
    out.reserve(96 + rest + items);
    out.push('{');
    // Whether a member has been written (a comma goes before the next).
    let mut any = false;
    if create {
        out.push_str(r#""type":"response.create""#);
        any = true;
    }
    if let Some(previous) = frame.previous {
        if any {
            out.push(',');
        }
        out.push_str(r#""previous_response_id":"#);
        // A response id is plain ASCII; quoted by serde all the same.
        out.push_str(&serde_json::to_string(previous).unwrap_or_default());
        any = true;
    }
    let mut metadata_done = frame.metadata.is_empty();
    for (name, raw) in &parsed.members {
        // A frame says the previous response itself (or none); a body keeps its members.
        if create && matches!(name.as_ref(), "previous_response_id" | "type") {
            continue;
        }
        if any {
            out.push(',');
        }
        any = true;
        out.push_str(&serde_json::to_string(name).unwrap_or_default());
        out.push(':');
        match name.as_ref() {
            "input" => {
                out.push('[');
                for (i, item) in frame.input.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(item);
                }
                out.push(']');
            }
            "client_metadata" if !metadata_done => {
                out.push_str(&with_metadata(raw, frame.metadata));
                metadata_done = true;
            }
            _ => out.push_str(raw),
        }
    }
    if !metadata_done {
        if any {
            out.push(',');
        }
        out.push_str(r#""client_metadata":"#);
        out.push_str(&with_metadata("{}", frame.metadata));
    }
    out.push('}');
    out
}

/// A `client_metadata` object with `entries` added.
fn with_metadata(raw: &str, entries: &[(&str, &str)]) -> String {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw).unwrap_or_default();
    for (key, value) in entries {
        map.insert((*key).to_owned(), serde_json::Value::from(*value));
    }
    serde_json::Value::Object(map).to_string()
}

/// The input items of a request, as JSON.
pub fn items<'a>(parsed: &'a Parsed<'_>) -> Vec<&'a str> {
    parsed.input.clone()
}

/// The reasoning that came before an answer the model gave: put back before that answer when
/// a client sends the history without it.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The item the reasoning preceded (a message or a call), by meaning.
    pub before: ItemKey,
    /// The reasoning items, as the backend sent them (with their encrypted content).
    pub reasoning: Vec<String>,
}

/// The whole input with `kept` reasoning put back in its places: before each item it
/// preceded, unless reasoning is there already. `None` when nothing was put back.
pub fn replayed<'a>(parsed: &'a Parsed<'_>, kept: &'a [Kept]) -> Option<Vec<&'a str>> {
    if kept.is_empty() {
        return None;
    }
    let mut items: Vec<&str> = Vec::with_capacity(parsed.input.len() + kept.len());
    let mut replayed = 0;
    let mut previous_is_reasoning = false;
    for item in &parsed.input {
        let key = item_key(item);
        if !previous_is_reasoning
            && !key.reasoning
            && let Some(found) = kept.iter().find(|k| k.before == key)
        {
            items.extend(found.reasoning.iter().map(String::as_str));
            replayed += found.reasoning.len();
        }
        previous_is_reasoning = key.reasoning;
        items.push(item);
    }
    (replayed > 0).then_some(items)
}

/// What a turn's events showed of its answer, over either transport: its output items by
/// meaning, the reasoning each answer item followed (to keep for replay), its id, whether it
/// completed.
#[derive(Debug, Default)]
pub struct TurnOutput {
    pub response_id: Option<String>,
    /// Every output item by meaning — only for a turn a chain may build on (a socket's).
    pub output: Vec<ItemKey>,
    chain: bool,
    pub completed: bool,
    /// Reasoning items not yet followed by an answer item.
    reasoning: Vec<String>,
    /// Reasoning with the answer item it preceded, to keep for replay.
    pub kept: Vec<Kept>,
}

impl TurnOutput {
    /// A socket turn's: every output item is kept by meaning, for the next turn to build on.
    pub fn for_chain() -> Self {
        Self {
            chain: true,
            ..Self::default()
        }
    }

    /// An HTTP turn's: only the reasoning and the items it preceded are read.
    pub fn for_reasoning() -> Self {
        Self::default()
    }

    /// Notes an event of type `kind` (read with [`super::wire::leading_type`] or serde).
    pub fn observe(&mut self, kind: &str, event: &[u8]) {
        match kind {
            "response.output_item.done" => {
                #[derive(Deserialize)]
                struct Done<'a> {
                    #[serde(borrow)]
                    item: &'a RawValue,
                }
                #[derive(Deserialize)]
                struct Typed<'a> {
                    #[serde(rename = "type", borrow, default)]
                    kind: Option<Cow<'a, str>>,
                }
                if let Ok(done) = serde_json::from_slice::<Done<'_>>(event) {
                    // Without a chain, an answer that follows no reasoning is not read further.
                    if !self.chain
                        && self.reasoning.is_empty()
                        && serde_json::from_str::<Typed<'_>>(done.item.get())
                            .is_ok_and(|t| t.kind.as_deref() != Some("reasoning"))
                    {
                        return;
                    }
                    let key = item_key(done.item.get());
                    if key.is_reasoning() {
                        self.reasoning.push(done.item.get().to_owned());
                    } else if !self.reasoning.is_empty() {
                        self.kept.push(Kept {
                            before: key.clone(),
                            reasoning: std::mem::take(&mut self.reasoning),
                        });
                    }
                    if self.chain {
                        self.output.push(key);
                    }
                }
            }
            "response.completed" => {
                #[derive(Deserialize)]
                struct Completed {
                    response: Id,
                }
                #[derive(Deserialize)]
                struct Id {
                    id: String,
                }
                if let Ok(done) = serde_json::from_slice::<Completed>(event) {
                    self.response_id = Some(done.response.id);
                    self.completed = true;
                }
            }
            _ => {}
        }
    }
}

/// A request body (`{…}`, JSON) with `kept` reasoning put back in its input where the client
/// left it out — what an HTTP turn sends; `None` when nothing was put back (or the body is not
/// an object with an input).
pub fn with_reasoning(body: &[u8], kept: &[Kept]) -> Option<String> {
    let parsed = parse(body)?;
    let input = replayed(&parsed, kept)?;
    Some(build_body(&parsed, &input))
}

/// The frame of the next turn on a socket whose last completed turn was `chain`: only the new
/// items with `previous_response_id` when the request continues it (`true`), else the whole
/// input with the `kept` reasoning the client left out put back in its places.
pub fn next_frame(
    parsed: &Parsed<'_>,
    shape: &Shape,
    chain: Option<&Chain>,
    kept: Option<&[Kept]>,
    metadata: &[(&str, &str)],
) -> (String, bool) {
    next_frame_into(parsed, shape, chain, kept, metadata, String::new())
}

/// [`next_frame`], written into `out` (empty; a large frame's buffer, kept from an earlier one).
pub fn next_frame_into(
    parsed: &Parsed<'_>,
    shape: &Shape,
    chain: Option<&Chain>,
    kept: Option<&[Kept]>,
    metadata: &[(&str, &str)],
    out: String,
) -> (String, bool) {
    if let Some(chain) = chain
        && let Some(from) = continues(chain, shape, parsed)
    {
        let frame = Frame {
            previous: Some(&chain.response_id),
            input: parsed.input[from..].to_vec(),
            metadata,
        };
        return (write_object(parsed, &frame, true, out), true);
    }
    let input = kept
        .and_then(|kept| replayed(parsed, kept))
        .unwrap_or_else(|| items(parsed));
    let frame = Frame {
        previous: None,
        input,
        metadata,
    };
    (write_object(parsed, &frame, true, out), false)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn body(input: &Value) -> String {
        json!({"model": "gpt-5.5", "instructions": "Be brief.", "input": input,
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "store": false, "stream": true, "prompt_cache_key": "conv-1"})
        .to_string()
    }

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    /// What the backend answered turn one with.
    fn output() -> Vec<Value> {
        vec![
            json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-enc-1"}),
            json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]}),
            json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                "arguments": "{\"city\":\"Paris\"}", "status": "completed"}),
        ]
    }

    fn chain_after_turn_one() -> Chain {
        let first = body(&json!([user("Weather in Paris?")]));
        let parsed = parse(first.as_bytes()).unwrap();
        let keys = output().iter().map(|o| item_key(&o.to_string())).collect();
        Chain::new("resp_1".into(), shape(&parsed), keys)
    }

    /// A Chat Completions client's next request, as our translation writes it: the answer
    /// without its reasoning, in the client's words, then the tool's output.
    fn chat_replay() -> Value {
        json!([
            user("Weather in Paris?"),
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18°C, sunny"},
        ])
    }

    #[test]
    fn a_replay_without_reasoning_continues_after_the_answer() {
        let chain = chain_after_turn_one();
        let next = body(&chat_replay());
        let parsed = parse(next.as_bytes()).unwrap();
        assert_eq!(continues(&chain, &shape(&parsed), &parsed), Some(3));
        let (frame, incremental) = next_frame(&parsed, &shape(&parsed), Some(&chain), None, &[]);
        assert!(incremental);
        let sent: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(sent["type"], "response.create");
        assert_eq!(sent["previous_response_id"], "resp_1");
        assert_eq!(
            sent["input"],
            json!([{"type": "function_call_output", "call_id": "call_1", "output": "18°C, sunny"}])
        );
        // Every other member as it was.
        let whole: Value = serde_json::from_str(&next).unwrap();
        for key in [
            "model",
            "instructions",
            "tools",
            "store",
            "stream",
            "prompt_cache_key",
        ] {
            assert_eq!(sent[key], whole[key], "{key}");
        }
    }

    #[test]
    fn a_replay_with_the_reasoning_continues_too() {
        let chain = chain_after_turn_one();
        let mut items = vec![user("Weather in Paris?")];
        items.extend(output());
        items.push(json!({"type": "function_call_output", "call_id": "call_1", "output": "sunny"}));
        let next = body(&Value::Array(items));
        let parsed = parse(next.as_bytes()).unwrap();
        assert_eq!(continues(&chain, &shape(&parsed), &parsed), Some(4));
    }

    #[test]
    fn anything_else_goes_out_whole() {
        let chain = chain_after_turn_one();
        let cases = [
            // An edited first message.
            {
                let mut items = chat_replay();
                items[0] = user("Weather in Lyon?");
                body(&items)
            },
            // Another answer than the backend's.
            {
                let mut items = chat_replay();
                items[1]["content"][0]["text"] = json!("Let me see.");
                body(&items)
            },
            // The call's arguments changed.
            {
                let mut items = chat_replay();
                items[2]["arguments"] = json!("{\"city\":\"Lyon\"}");
                body(&items)
            },
            // A shorter history (a compaction).
            body(&json!([user("Summary so far.")])),
            // Another model.
            body(&chat_replay()).replace("gpt-5.5", "gpt-5.4-mini"),
            // Other instructions.
            body(&chat_replay()).replace("Be brief.", "Be verbose."),
        ];
        for case in cases {
            let parsed = parse(case.as_bytes()).unwrap();
            assert_eq!(continues(&chain, &shape(&parsed), &parsed), None, "{case}");
        }
    }

    #[test]
    fn per_request_metadata_does_not_break_the_chain() {
        let chain = chain_after_turn_one();
        // The official client stamps each frame with its send time and turn ids.
        let with = |ms: &str| {
            let mut value: Value = serde_json::from_str(&body(&chat_replay())).unwrap();
            value["client_metadata"] =
                json!({"turn_id": ms, "x-codex-ws-stream-request-start-ms": ms});
            value.to_string()
        };
        let next = with("1796432832587");
        let parsed = parse(next.as_bytes()).unwrap();
        assert_eq!(continues(&chain, &shape(&parsed), &parsed), Some(3));
        let (frame, incremental) = next_frame(&parsed, &shape(&parsed), Some(&chain), None, &[]);
        assert!(incremental);
        // The frame carries this request's metadata.
        let sent: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(
            sent["client_metadata"]["x-codex-ws-stream-request-start-ms"],
            "1796432832587"
        );
    }

    #[test]
    fn the_answer_must_be_there_in_full() {
        let chain = chain_after_turn_one();
        // The client kept the message but dropped the call: not the same history.
        let items = json!([
            user("Weather in Paris?"),
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            user("Never mind."),
        ]);
        let next = body(&items);
        let parsed = parse(next.as_bytes()).unwrap();
        assert_eq!(continues(&chain, &shape(&parsed), &parsed), None);
    }

    #[test]
    fn a_plain_string_message_compares_by_its_text() {
        let a = item_key(r#"{"role":"assistant","content":"Hello"}"#);
        let b = item_key(
            r#"{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hello"}]}"#,
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            item_key(r#"{"type":"message","role":"user","content":"Hello"}"#)
        );
    }

    #[test]
    fn nothing_new_is_an_empty_input() {
        let chain = chain_after_turn_one();
        let mut items = vec![user("Weather in Paris?")];
        items.extend(output());
        let next = body(&Value::Array(items));
        let parsed = parse(next.as_bytes()).unwrap();
        assert!(continues(&chain, &shape(&parsed), &parsed).is_some());
        let (frame, _) = next_frame(&parsed, &shape(&parsed), Some(&chain), None, &[]);
        let sent: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(sent["input"], json!([]));
    }

    #[test]
    fn reasoning_a_client_dropped_is_put_back_before_its_answer() {
        let reasoning = output()[0].to_string();
        let kept = vec![Kept {
            before: item_key(&output()[1].to_string()),
            reasoning: vec![reasoning],
        }];
        let whole = body(&chat_replay());
        let parsed = parse(whole.as_bytes()).unwrap();
        let (frame, incremental) = next_frame(&parsed, &shape(&parsed), None, Some(&kept), &[]);
        assert!(!incremental);
        let sent: Value = serde_json::from_str(&frame).unwrap();
        let kinds: Vec<&str> = sent["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "message",
                "reasoning",
                "message",
                "function_call",
                "function_call_output"
            ]
        );
        assert_eq!(sent["input"][1], output()[0]);
        assert_eq!(sent["model"], "gpt-5.5");
        // A history that has its reasoning already is left as it is.
        let mut items = vec![user("Weather in Paris?")];
        items.extend(output());
        let complete = body(&Value::Array(items));
        let parsed = parse(complete.as_bytes()).unwrap();
        assert_eq!(replayed(&parsed, &kept), None);
        // So is one without the answer the reasoning preceded.
        let other = body(&json!([user("Something else")]));
        let parsed = parse(other.as_bytes()).unwrap();
        assert_eq!(replayed(&parsed, &kept), None);
    }

    #[test]
    fn an_http_body_gets_its_reasoning_back_and_keeps_every_member() {
        let kept = vec![Kept {
            before: item_key(&output()[1].to_string()),
            reasoning: vec![output()[0].to_string()],
        }];
        let whole = body(&chat_replay());
        let replayed_body = with_reasoning(whole.as_bytes(), &kept).unwrap();
        let sent: Value = serde_json::from_str(&replayed_body).unwrap();
        let before: Value = serde_json::from_str(&whole).unwrap();
        // No frame type; every member as it was, in its order, the input with the reasoning.
        assert!(sent.get("type").is_none());
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&sent), keys(&before));
        for (key, value) in before.as_object().unwrap() {
            if key != "input" {
                assert_eq!(&sent[key], value, "{key}");
            }
        }
        assert_eq!(sent["input"][1], output()[0]);
        assert_eq!(sent["input"].as_array().unwrap().len(), 5);
        // A body's own previous_response_id stays (a frame says its own).
        let chained = whole.replace(
            r#""store":false"#,
            r#""store":false,"previous_response_id":"resp_0""#,
        );
        let sent: Value =
            serde_json::from_str(&with_reasoning(chained.as_bytes(), &kept).unwrap()).unwrap();
        assert_eq!(sent["previous_response_id"], "resp_0");
        // Nothing to put back, or not a body: nothing to send differently.
        let mut items = vec![user("Weather in Paris?")];
        items.extend(output());
        assert_eq!(
            with_reasoning(body(&Value::Array(items)).as_bytes(), &kept),
            None
        );
        assert_eq!(with_reasoning(b"[1, 2]", &kept), None);
        assert_eq!(with_reasoning(b"{\"input\": 3}", &kept), None);
    }

    #[test]
    fn a_turns_output_is_seen_with_the_reasoning_before_each_answer() {
        let mut seen = TurnOutput::for_chain();
        for item in output() {
            let event =
                json!({"type": "response.output_item.done", "output_index": 0, "item": item});
            seen.observe("response.output_item.done", event.to_string().as_bytes());
        }
        assert!(!seen.completed);
        seen.observe(
            "response.completed",
            json!({"type": "response.completed", "response": {"id": "resp_9", "status": "completed"}})
                .to_string()
                .as_bytes(),
        );
        assert!(seen.completed);
        assert_eq!(seen.response_id.as_deref(), Some("resp_9"));
        assert_eq!(seen.output.len(), 3);
        assert!(seen.output[0].is_reasoning());
        // The reasoning is kept before the message that followed it, and only there.
        assert_eq!(seen.kept.len(), 1);
        assert_eq!(seen.kept[0].before, item_key(&output()[1].to_string()));
        assert_eq!(seen.kept[0].reasoning, vec![output()[0].to_string()]);
        // Without a chain, the same reasoning is kept and nothing else is read.
        let mut http = TurnOutput::for_reasoning();
        for item in output() {
            let event =
                json!({"type": "response.output_item.done", "output_index": 0, "item": item});
            http.observe("response.output_item.done", event.to_string().as_bytes());
        }
        assert!(http.output.is_empty());
        assert_eq!(http.kept.len(), 1);
        assert_eq!(http.kept[0].before, seen.kept[0].before);
        // An event that is not what it says is passed over.
        let mut odd = TurnOutput::for_chain();
        odd.observe(
            "response.output_item.done",
            b"{\"type\":\"response.output_item.done\"}",
        );
        odd.observe("response.completed", b"not json");
        assert!(odd.output.is_empty() && !odd.completed);
    }

    #[test]
    fn metadata_is_added_to_the_clients_or_made() {
        let whole = body(&json!([user("hi")]));
        let parsed = parse(whole.as_bytes()).unwrap();
        let flag = [(
            "ws_request_header_x_openai_internal_codex_responses_lite",
            "true",
        )];
        let frame = Frame {
            input: items(&parsed),
            metadata: &flag,
            ..Frame::default()
        };
        let sent: Value = serde_json::from_str(&build_frame(&parsed, &frame)).unwrap();
        assert_eq!(
            sent["client_metadata"],
            json!({"ws_request_header_x_openai_internal_codex_responses_lite": "true"})
        );
        let with = whole.replace(
            r#""store":false"#,
            r#""client_metadata":{"session_id":"s1"},"store":false"#,
        );
        let parsed = parse(with.as_bytes()).unwrap();
        let frame = Frame {
            input: items(&parsed),
            metadata: &flag,
            ..Frame::default()
        };
        let sent: Value = serde_json::from_str(&build_frame(&parsed, &frame)).unwrap();
        assert_eq!(sent["client_metadata"]["session_id"], "s1");
        assert_eq!(
            sent["client_metadata"]["ws_request_header_x_openai_internal_codex_responses_lite"],
            "true"
        );
        assert_eq!(sent["input"], json!([user("hi")]));
        assert_eq!(sent["type"], "response.create");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_not_parsed() {
        assert!(parse(b"[1,2]").is_none());
        assert!(parse(br#"{"input": 5}"#).is_none());
        assert!(parse(b"{").is_none());
    }
}
