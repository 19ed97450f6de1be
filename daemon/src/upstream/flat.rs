//! A reader for the events of a stream — text, reasoning and tool-argument deltas, which are
//! flat JSON objects, and the few richer ones: a `response` (ids, usage), an output `item`.
//! serde's derive walks every key and value through its visitor machinery (≈ 3 000 instructions
//! per delta event, most of the daemon's work per response); this reads the same object in one
//! pass over the bytes, skipping what the translation never reads.
//!
//! It answers only when it is sure: a response's error or incomplete details, an item whose
//! `type` is not its first field, an escaped key, a duplicate field, a number that is not a
//! plain integer where one is expected, or any syntax it does not expect gives `None`, and the
//! caller parses the event with serde. So it never disagrees with serde about an event serde
//! accepts (tested against serde below).

use std::borrow::Cow;

use super::items::{OutputContent, OutputItem, SummaryPart};
use super::wire::{InputDetails, OutputDetails, ResponseObject, StreamEvent, Usage};
use crate::json_text::plain_run;

/// The event in `text`, or `None` when serde must decide. At a type `ignored` names the event
/// is read no further: its type alone is the event (its reader drops it whatever the rest
/// says, so serde's reading of the rest could not change the outcome). The upstream sends the
/// type first, so such an event costs a few dozen bytes of reading.
pub fn read(text: &str, ignored: fn(&str) -> bool) -> Option<StreamEvent<'_>> {
    let mut r = Reader {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut event = Event::default();
    r.ws();
    r.eat(b'{')?;
    r.ws();
    if r.peek()? != b'}' {
        loop {
            let key = r.key()?;
            r.ws();
            r.eat(b':')?;
            r.ws();
            match key {
                Key::Type => {
                    let kind = r.string()?;
                    if ignored(&kind) {
                        return Some(StreamEvent::of_kind(kind));
                    }
                    // Events that carry an item or a full response are serde's whatever the
                    // rest says: stop here rather than read them twice.
                    if rich(&kind) {
                        return None;
                    }
                    set(&mut event.kind, kind)?;
                }
                Key::ItemId => set(&mut event.item_id, r.nullable_string()?)?,
                Key::Delta => set(&mut event.delta, r.nullable_string()?)?,
                Key::OutputIndex => set(&mut event.output_index, r.nullable_u32()?)?,
                Key::SummaryIndex => set(&mut event.summary_index, r.nullable_u32()?)?,
                Key::Response => set(&mut event.response, r.response()?)?,
                Key::Item => set(&mut event.item, r.item()?)?,
                Key::Other => r.skip_any()?,
            }
            r.ws();
            match r.next()? {
                b',' => r.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    } else {
        r.at += 1;
    }
    r.ws();
    if r.at != r.bytes.len() {
        return None;
    }
    Some(StreamEvent {
        kind: event.kind?,
        item_id: event.item_id.flatten(),
        output_index: event.output_index.flatten(),
        delta: event.delta.flatten(),
        summary_index: event.summary_index.flatten(),
        item: event.item.flatten(),
        response: event.response.flatten(),
    })
}

/// The types whose events carry an error or the reason a response is incomplete: read by
/// serde into their types. (`completed` is read here, its usage too; so are output items.)
fn rich(kind: &str) -> bool {
    matches!(kind, "response.incomplete" | "response.failed")
}

/// What a key means to the reader.
#[derive(Debug, Clone, Copy)]
enum Key {
    Type,
    ItemId,
    Delta,
    OutputIndex,
    SummaryIndex,
    /// `response`: read when it holds what `created` and `in_progress` carry (ids, names,
    /// nulls, values the translation skips); anything richer is serde's.
    Response,
    /// `item`: an output item.
    Item,
    /// Anything else: its value is skipped.
    Other,
}

/// The key at the start of `rest` (just after its opening quote) when it is one the frequent
/// events carry, and its length with the closing quote. The rest of the event starting with a
/// known name and a quote *is* that key: no name holds a quote, backslash or control character,
/// so the key cannot end earlier or be spelled another way without an escape. Each name is a
/// literal, so each comparison is a few instructions rather than a call.
fn known_key(rest: &[u8]) -> Option<(usize, Key)> {
    fn is<const N: usize>(rest: &[u8], name: &[u8; N], key: Key) -> Option<(usize, Key)> {
        rest.starts_with(name).then_some((N, key))
    }
    match rest.first()? {
        b't' => is(rest, b"type\"", Key::Type),
        b'i' => is(rest, b"item_id\"", Key::ItemId).or_else(|| is(rest, b"item\"", Key::Item)),
        b'd' => is(rest, b"delta\"", Key::Delta),
        b'o' => is(rest, b"output_index\"", Key::OutputIndex)
            .or_else(|| is(rest, b"obfuscation\"", Key::Other)),
        b's' => is(rest, b"sequence_number\"", Key::Other)
            .or_else(|| is(rest, b"summary_index\"", Key::SummaryIndex)),
        b'c' => is(rest, b"content_index\"", Key::Other),
        b'l' => is(rest, b"logprobs\"", Key::Other),
        b'r' => is(rest, b"response\"", Key::Response),
        _ => None,
    }
}

/// The fields as read; the outer `Option` tells a missing field from a `null` one.
#[derive(Default)]
struct Event<'a> {
    kind: Option<Cow<'a, str>>,
    item_id: Option<Option<Cow<'a, str>>>,
    delta: Option<Option<Cow<'a, str>>>,
    output_index: Option<Option<u32>>,
    summary_index: Option<Option<u32>>,
    response: Option<Option<Box<ResponseObject>>>,
    item: Option<Option<Box<OutputItem>>>,
}

/// An optional string field as its owner keeps it (missing and null are both `None`).
fn owned(field: Option<Option<Cow<'_, str>>>) -> Option<String> {
    field.flatten().map(Cow::into_owned)
}

/// A field seen twice is an error to serde; here it hands the event to serde.
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// Deeper nesting than this in a skipped value goes to serde (which has its own limit).
const MAX_DEPTH: usize = 32;

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Skips whitespace. The upstream writes none between tokens, so the first test (a byte
    /// above the space, or the end) is almost always the last.
    #[inline(always)]
    fn ws(&mut self) {
        if self.peek().is_none_or(|b| b > b' ') {
            return;
        }
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    /// The raw contents of the string that starts here and whether it holds escapes. Control
    /// characters (invalid inside JSON strings) make it serde's.
    #[inline(always)]
    fn raw_string(&mut self) -> Option<(&'a str, bool)> {
        self.eat(b'"')?;
        self.string_body()
    }

    /// [`Self::raw_string`] after its opening quote.
    #[inline(always)]
    fn string_body(&mut self) -> Option<(&'a str, bool)> {
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at += plain_run(self.bytes.get(self.at..)?);
            match *self.bytes.get(self.at)? {
                b'"' => break,
                // A backslash and what it escapes: one of JSON's escapes, or `u` and four hex
                // digits (serde refuses anything else, even in a value it skips).
                b'\\' => {
                    escaped = true;
                    match *self.bytes.get(self.at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                        b'u' => {
                            let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        let end = self.at;
        self.at += 1;
        Some((self.text.get(start..end)?, escaped))
    }

    /// A key: a known one by comparison, any other by reading it; escaped keys are serde's.
    #[inline(always)]
    fn key(&mut self) -> Option<Key> {
        self.eat(b'"')?;
        if let Some((len, key)) = known_key(self.bytes.get(self.at..)?) {
            self.at += len;
            return Some(key);
        }
        match self.string_body()? {
            (_, false) => Some(Key::Other),
            (_, true) => None,
        }
    }

    /// A key whose name does not matter (inside a skipped value).
    fn any_key(&mut self) -> Option<()> {
        match self.raw_string()? {
            (_, false) => Some(()),
            (_, true) => None,
        }
    }

    /// A string value, borrowed unless it holds escapes (which serde decodes).
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.at;
        match self.raw_string()? {
            (raw, false) => Some(Cow::Borrowed(raw)),
            (_, true) => serde_json::from_str::<String>(&self.text[start..self.at])
                .ok()
                .map(Cow::Owned),
        }
    }

    /// Takes a `null` if one is next.
    fn null(&mut self) -> bool {
        self.literal(b"null").is_some()
    }

    #[inline(always)]
    fn nullable_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A plain non-negative integer that fits a `u32` (what serde accepts for one), or null.
    fn nullable_u32(&mut self) -> Option<Option<u32>> {
        if self.null() {
            return Some(None);
        }
        u32::try_from(self.count()?).ok().map(Some)
    }

    /// A `response` object, or null. Its `id`, `model` and `usage` are read; `error` and
    /// `incomplete_details` only as null (anything else there is serde's, which reads them into
    /// their types); every other field (the `output` a `completed` repeats) is skipped. A
    /// repeated field or an escaped key is serde's.
    fn response(&mut self) -> Option<Option<Box<ResponseObject>>> {
        let (mut id, mut model) = (None, None);
        let (mut usage, mut error, mut incomplete) = (None, None, None);
        let present = self.object(|r, key| match key {
            "id" => set(&mut id, r.nullable_string()?),
            "model" => set(&mut model, r.nullable_string()?),
            "usage" => set(&mut usage, r.usage()?),
            "error" => set(&mut error, r.literal(b"null")?),
            "incomplete_details" => set(&mut incomplete, r.literal(b"null")?),
            _ => r.skip_any(),
        })?;
        if !present {
            return Some(None);
        }
        // Every field named: one added to `ResponseObject` must be read here (or the event
        // left to serde) before this builds.
        Some(Some(Box::new(ResponseObject {
            id: owned(id),
            model: owned(model),
            usage: usage.flatten(),
            error: None,
            incomplete_details: None,
        })))
    }

    /// `usage` as serde reads it into [`Usage`], or null: the three counts required, each
    /// details object null or holding its one required count, other fields skipped. A count
    /// that is not a plain `u64`, a missing or repeated field, or an escaped key is serde's.
    fn usage(&mut self) -> Option<Option<Usage>> {
        let (mut input, mut output, mut total) = (None, None, None);
        let (mut cached, mut reasoning) = (None, None);
        let present = self.object(|r, key| match key {
            "input_tokens" => set(&mut input, r.count()?),
            "output_tokens" => set(&mut output, r.count()?),
            "total_tokens" => set(&mut total, r.count()?),
            "input_tokens_details" => set(&mut cached, r.details("cached_tokens")?),
            "output_tokens_details" => set(&mut reasoning, r.details("reasoning_tokens")?),
            _ => r.skip_any(),
        })?;
        if !present {
            return Some(None);
        }
        Some(Some(Usage {
            input_tokens: input?,
            output_tokens: output?,
            total_tokens: total?,
            input_tokens_details: cached
                .flatten()
                .map(|cached_tokens| InputDetails { cached_tokens }),
            output_tokens_details: reasoning
                .flatten()
                .map(|reasoning_tokens| OutputDetails { reasoning_tokens }),
        }))
    }

    /// A details object's one count (`name`; required when the object is there), or null.
    fn details(&mut self, name: &str) -> Option<Option<u64>> {
        let mut count = None;
        let present = self.object(|r, key| {
            if key == name {
                set(&mut count, r.count()?)
            } else {
                r.skip_any()
            }
        })?;
        if present { count.map(Some) } else { Some(None) }
    }

    /// An object whose fields `field` reads, each after its key (unescaped, or it is serde's);
    /// `Some(false)` for a null instead.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<bool> {
        if self.null() {
            return Some(false);
        }
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(true);
        }
        loop {
            let (key, escaped) = self.raw_string()?;
            if escaped {
                return None;
            }
            self.ws();
            self.eat(b':')?;
            self.ws();
            field(self, key)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Some(true),
                _ => return None,
            }
        }
    }

    /// An output item as `items.rs` reads it, or null, when its `type` comes first (as the
    /// upstream writes it): unknown types are `Other`, unknown fields skipped. A later or
    /// repeated tag, a repeated field, an escaped key or tag, or a value of another type is
    /// serde's.
    fn item(&mut self) -> Option<Option<Box<OutputItem>>> {
        if self.null() {
            return Some(None);
        }
        let tag = self.tag()?;
        let item = match tag {
            "message" => {
                let (id, content) = self.id_and_list("content", Self::content)?;
                OutputItem::Message { id, content }
            }
            "reasoning" => {
                let (mut id, mut summary, mut encrypted) = (None, None, None);
                self.fields(|r, key| match key {
                    "id" => set(&mut id, r.nullable_string()?),
                    "summary" => set(&mut summary, r.array(Self::summary_part)?),
                    "encrypted_content" => set(&mut encrypted, r.nullable_string()?),
                    _ => r.skip_any(),
                })?;
                OutputItem::Reasoning {
                    id: owned(id),
                    summary: summary.unwrap_or_default(),
                    encrypted_content: owned(encrypted),
                }
            }
            "function_call" | "custom_tool_call" => {
                let body = if tag == "function_call" {
                    "arguments"
                } else {
                    "input"
                };
                let (mut id, mut call_id, mut name, mut text) = (None, None, None, None);
                self.fields(|r, key| match key {
                    "id" => set(&mut id, r.nullable_string()?),
                    "call_id" => set(&mut call_id, r.string()?),
                    "name" => set(&mut name, r.string()?),
                    _ if key == body => set(&mut text, r.string()?),
                    _ => r.skip_any(),
                })?;
                let (id, call_id, name) = (owned(id), call_id?.into_owned(), name?.into_owned());
                let text = text.map(Cow::into_owned).unwrap_or_default();
                if tag == "function_call" {
                    OutputItem::FunctionCall {
                        id,
                        call_id,
                        name,
                        arguments: text,
                    }
                } else {
                    OutputItem::CustomToolCall {
                        id,
                        call_id,
                        name,
                        input: text,
                    }
                }
            }
            _ => {
                self.fields(|r, _| r.skip_any())?;
                OutputItem::Other
            }
        };
        Some(Some(Box::new(item)))
    }

    /// An item's `id` and its one list field (`content`, `summary`); the rest is skipped.
    fn id_and_list<T>(
        &mut self,
        list: &str,
        element: fn(&mut Self) -> Option<T>,
    ) -> Option<(Option<String>, Vec<T>)> {
        let (mut id, mut items) = (None, None);
        self.fields(|r, key| match key {
            "id" => set(&mut id, r.nullable_string()?),
            _ if key == list => set(&mut items, r.array(element)?),
            _ => r.skip_any(),
        })?;
        Some((owned(id), items.unwrap_or_default()))
    }

    /// One part of a message's `content`, tagged like an item.
    fn content(&mut self) -> Option<OutputContent> {
        let tag = self.tag()?;
        let mut text = None;
        let field = match tag {
            "output_text" => "text",
            "refusal" => "refusal",
            _ => {
                self.fields(|r, _| r.skip_any())?;
                return Some(OutputContent::Other);
            }
        };
        self.fields(|r, key| {
            if key == field {
                set(&mut text, r.string()?)
            } else {
                r.skip_any()
            }
        })?;
        let text = text?.into_owned();
        Some(if tag == "output_text" {
            OutputContent::OutputText { text }
        } else {
            OutputContent::Refusal { refusal: text }
        })
    }

    /// A reasoning summary part: a plain struct (its `type` is just another field).
    fn summary_part(&mut self) -> Option<SummaryPart> {
        let mut text = None;
        self.object(|r, key| {
            if key == "text" {
                set(&mut text, r.string()?)
            } else {
                r.skip_any()
            }
        })?
        .then(|| SummaryPart {
            text: text.map(Cow::into_owned).unwrap_or_default(),
        })
    }

    /// The opening of a tagged object up to its tag's value: `{"type":"…"`, the tag first and
    /// unescaped.
    fn tag(&mut self) -> Option<&'a str> {
        self.eat(b'{')?;
        self.ws();
        match self.raw_string()? {
            ("type", false) => {}
            _ => return None,
        }
        self.ws();
        self.eat(b':')?;
        self.ws();
        match self.raw_string()? {
            (tag, false) => Some(tag),
            _ => None,
        }
    }

    /// The fields after a tag, up to the object's end; a second tag is serde's (it refuses it).
    fn fields(&mut self, mut field: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        loop {
            self.ws();
            match self.next()? {
                b'}' => return Some(()),
                b',' => self.ws(),
                _ => return None,
            }
            let (key, escaped) = self.raw_string()?;
            if escaped || key == "type" {
                return None;
            }
            self.ws();
            self.eat(b':')?;
            self.ws();
            field(self, key)?;
        }
    }

    /// An array whose elements `element` reads.
    fn array<T>(&mut self, mut element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b'[')?;
        self.ws();
        let mut items = Vec::new();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(items);
        }
        loop {
            items.push(element(self)?);
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(items),
                _ => return None,
            }
        }
    }

    /// A plain non-negative integer that fits a `u64` (what serde accepts for an unsigned
    /// field); anything else — no digits, a leading zero, a fraction or exponent, an overflow —
    /// is serde's to judge.
    fn count(&mut self) -> Option<u64> {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(value)
    }

    /// Takes a plain integer — digits without a leading zero, and no fraction or exponent
    /// after them — if one is next (the events' numbers are); otherwise stays where it was.
    #[inline(always)]
    fn plain_integer(&mut self) -> bool {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let digits = self.at - start;
        if digits > 0
            && (digits == 1 || self.bytes[start] != b'0')
            && !matches!(self.peek(), Some(b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            return true;
        }
        self.at = start;
        false
    }

    /// Skips the value of a key the translation does not read: a plain integer (the usual
    /// `sequence_number`, `content_index`) here, anything else by [`Self::skip_value`].
    #[inline(always)]
    fn skip_any(&mut self) -> Option<()> {
        if self.plain_integer() {
            return Some(());
        }
        self.skip_value(0)
    }

    /// Skips one value the translation does not read.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.raw_string().map(drop),
            b'{' | b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                let close = if self.next()? == b'{' { b'}' } else { b']' };
                self.ws();
                if self.peek()? == close {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    if close == b'}' {
                        self.any_key()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b if b == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                if self.plain_integer() {
                    return Some(());
                }
                let start = self.at;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.at += 1;
                }
                // Only a well-formed number is skipped; anything odd is serde's to refuse.
                is_number(&self.bytes[start..self.at]).then_some(())
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            return Some(());
        }
        None
    }
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_number(bytes: &[u8]) -> bool {
    fn digits(bytes: &[u8], at: &mut usize) -> usize {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - start
    }
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => {
            digits(bytes, &mut at);
        }
        _ => return false,
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(bytes, &mut at) == 0 {
            return false;
        }
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        if digits(bytes, &mut at) == 0 {
            return false;
        }
    }
    at == bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader with nothing ignored.
    fn read(text: &str) -> Option<StreamEvent<'_>> {
        super::read(text, |_| false)
    }

    /// serde's reading of the same text (the reference).
    fn serde(text: &str) -> Option<StreamEvent<'_>> {
        serde_json::from_str(text).ok()
    }

    /// The whole event, every field: a field serde reads and the fast reader does not is a
    /// disagreement.
    fn same(a: &StreamEvent<'_>, b: &StreamEvent<'_>) -> bool {
        a == b
    }

    /// Whenever the fast reader answers, serde answers the same.
    fn check(text: &str) {
        if let Some(fast) = read(text) {
            let slow =
                serde(text).unwrap_or_else(|| panic!("fast read what serde refuses: {text}"));
            assert!(same(&fast, &slow), "disagree on {text}");
        }
    }

    const DELTA: &str = r#"{"type":"response.output_text.delta","sequence_number":12,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello","logprobs":[]}"#;

    #[test]
    fn reads_the_delta_events_without_copying() {
        let event = read(DELTA).unwrap();
        assert!(matches!(
            event.kind,
            Cow::Borrowed("response.output_text.delta")
        ));
        assert!(matches!(event.item_id, Some(Cow::Borrowed("msg_1"))));
        assert!(matches!(event.delta, Some(Cow::Borrowed("Hello"))));
        assert_eq!(event.output_index, Some(0));
        let reasoning = r#"{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":2,"delta":"**Plan**\n\n- \"quoted\" \u00e9 \ud83d\ude00","sequence_number":3,"obfuscation":"x"}"#;
        let event = read(reasoning).unwrap();
        assert_eq!(event.summary_index, Some(2));
        assert_eq!(
            event.delta.as_deref(),
            Some("**Plan**\n\n- \"quoted\" \u{e9} \u{1f600}")
        );
        check(DELTA);
        check(reasoning);
    }

    #[test]
    fn leaves_rich_and_odd_events_to_serde() {
        for text in [
            r#"{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":1}}}"#,
            r#"{"type":"response.failed","response":{"error":{"code":"x"}}}"#,
            r#"{"type":"x","response":{"id":"a","id":"b"}}"#,
            r#"{"type":"x","response":{"\u0069d":"a"}}"#,
            r#"{"type":"x","response":[]}"#,
            r#"{"type":"x","delta":"a","delta":"b"}"#,
            r#"{"type":"x","output_index":-1}"#,
            r#"{"type":"x","output_index":1.5}"#,
            r#"{"type":"x","output_index":4294967296}"#,
            r#"{"type":"x","output_index":01}"#,
            r#"{"type":"x","output_index":"0"}"#,
            r#"{"type":"x","d\u0065lta":"a"}"#,
            r#"{"type":"x","delta":"tab	inside"}"#,
            r#"{"type":"x","n":1.2.3}"#,
            r#"{"type":"x","n":[1 2]}"#,
            r#"{"type":"x"} trailing"#,
            r#"{"type":"x","delta":"unterminated}"#,
            r#"{"type":null}"#,
            r#"{"delta":"no type"}"#,
            r#"["type"]"#,
            "",
        ] {
            assert!(read(text).is_none(), "should be serde's: {text}");
        }
    }

    #[test]
    fn agrees_with_serde_on_every_variation() {
        let values = [
            r#""s""#,
            r#""a\"b\\c\/\n\u0041""#,
            "null",
            "0",
            "7",
            "-3",
            "2.5e3",
            "10",
            "01",
            "-0",
            "1.",
            "0.5",
            "true",
            "false",
            "[]",
            r#"[1,"two",{"three":[null]}]"#,
            r#"{"k":{"k":[]}}"#,
            "{}",
        ];
        let keys = [
            "type",
            "item_id",
            "delta",
            "output_index",
            "summary_index",
            "other",
            // Known keys read by comparison, and their near misses.
            "item",
            "response",
            "sequence_number",
            "content_index",
            "logprobs",
            "obfuscation",
            "",
            "t",
            "typ",
            "types",
            "item_",
            "item_i",
            "item_idx",
            "deltas",
            "output_inde",
            "summary",
            "re",
            "x",
        ];
        for key in keys {
            for value in values {
                for spacing in ["", " ", "\n\t "] {
                    let text = format!(
                        r#"{spacing}{{{spacing}"type"{spacing}:{spacing}"t",{spacing}"{key}"{spacing}:{spacing}{value}{spacing}}}{spacing}"#
                    );
                    // On these flat objects the two agree on whether there is an event, too
                    // (but `item` and `response` objects are serde's when odd or rich).
                    for text in [text, format!(r#"{{"{key}":{value},"type":"t"}}"#)] {
                        check(&text);
                        if !matches!(key, "item" | "response") {
                            assert_eq!(read(&text).is_some(), serde(&text).is_some(), "{text}");
                        }
                    }
                }
            }
        }
        // Every prefix of a real event: never a different answer.
        for cut in 0..DELTA.len() {
            if DELTA.is_char_boundary(cut) {
                check(&DELTA[..cut]);
            }
        }
    }

    /// The `response` of `created` and `in_progress` is read here; every field × value ×
    /// spacing inside it, and the real events, agree with serde.
    #[test]
    fn responses_agree_with_serde() {
        let created = r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1700000000,"status":"in_progress","model":"gpt-5.5","output":[],"usage":null,"instructions":"Be \"brief\".","tools":[{"type":"function","name":"f"}]}}"#;
        let event = read(created).unwrap();
        let response = event.response.as_ref().unwrap();
        assert_eq!(response.id.as_deref(), Some("resp_1"));
        assert_eq!(response.model.as_deref(), Some("gpt-5.5"));
        check(created);
        for text in [
            r#"{"type":"response.in_progress","response":{}}"#,
            r#"{"type":"x","response":null}"#,
            r#"{"type":"x","response":{"id":null,"model":null,"error":null,"incomplete_details":null}}"#,
        ] {
            assert!(read(text).is_some(), "{text}");
            check(text);
        }
        let values = [
            r#""s""#,
            r#""a\"b\\c\n""#,
            "null",
            "0",
            "01",
            "-3",
            "2.5e3",
            "true",
            "[]",
            r#"[1,"two",{"three":[null]}]"#,
            r#"{"input_tokens":5,"output_tokens":7,"total_tokens":12}"#,
            r#"{"code":"c","message":"m"}"#,
            r#"{"reason":"max_output_tokens"}"#,
            "{}",
        ];
        let keys = [
            "id",
            "model",
            "usage",
            "error",
            "incomplete_details",
            "object",
            "status",
            "output",
            "i",
            "ids",
            "",
        ];
        for key in keys {
            for value in values {
                for spacing in ["", " ", "\n\t "] {
                    // The field alone, and followed by an `id`.
                    for rest in ["".to_owned(), format!(r#",{spacing}"id":"r""#)] {
                        check(&format!(
                            r#"{{"type":"t","response":{spacing}{{{spacing}"{key}"{spacing}:{spacing}{value}{spacing}{rest}}}{spacing}}}"#
                        ));
                    }
                }
            }
        }
        for cut in 0..created.len() {
            if created.is_char_boundary(cut) {
                check(&created[..cut]);
            }
        }
    }

    /// `completed` is read here, its usage included, and agrees with serde on every count,
    /// details object, missing, repeated and unknown field.
    #[test]
    fn usage_agrees_with_serde() {
        let completed = r#"{"type":"response.completed","sequence_number":71,"response":{"id":"resp_123","object":"response","created_at":1700000000,"status":"completed","model":"gpt-5.5","output":[{"id":"msg_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello \"world\"\n"}],"role":"assistant","phase":"final_answer"}],"end_turn":true,"usage":{"input_tokens":2310,"input_tokens_details":{"cached_tokens":2048},"output_tokens":95,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":2405}}}"#;
        let event = read(completed).expect("completed is read here");
        let usage = event.response.as_ref().unwrap().usage.unwrap();
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, usage.total_tokens),
            (2310, 95, 2405)
        );
        assert_eq!(usage.input_tokens_details.unwrap().cached_tokens, 2048);
        assert_eq!(usage.output_tokens_details.unwrap().reasoning_tokens, 64);
        check(completed);
        for cut in 0..completed.len() {
            check(&completed[..cut]);
        }

        let usage_event = |fields: &[String], spacing: &str| {
            format!(
                r#"{{"type":"response.completed","response":{{"id":"r","usage":{spacing}{{{spacing}{}{spacing}}}}}}}"#,
                fields.join(&format!("{spacing},{spacing}"))
            )
        };
        let field = |key: &str, value: &str| format!(r#""{key}":{value}"#);
        let base = [
            field("input_tokens", "5"),
            field("output_tokens", "7"),
            field("total_tokens", "12"),
        ];
        let counts = [
            "0",
            "12",
            "18446744073709551615",
            "18446744073709551616",
            "01",
            "-1",
            "1.0",
            "1e2",
            "null",
            r#""5""#,
            "[]",
        ];
        let details = [
            "null",
            "{}",
            r#"{"cached_tokens":3}"#,
            r#"{"reasoning_tokens":3}"#,
            r#"{"cached_tokens":3,"reasoning_tokens":4,"x":[1,{"y":2}]}"#,
            r#"{"cached_tokens":null}"#,
            r#"{"cached_tokens":1,"cached_tokens":2}"#,
            r#"{"cached_tokens":-1}"#,
            r#"{"c\u0061ched_tokens":1}"#,
            "[]",
            "3",
        ];
        for spacing in ["", " ", "\n\t"] {
            let plain = usage_event(&base, spacing);
            assert!(read(&plain).is_some(), "{plain}");
            check(&plain);
            assert!(
                read(&usage_event(&[], spacing)).is_none(),
                "counts required"
            );
            for i in 0..base.len() {
                // Each count in every form, each one missing, each one repeated.
                for count in counts {
                    let mut fields = base.to_vec();
                    fields[i] = format!("{}:{count}", base[i].split(':').next().unwrap());
                    check(&usage_event(&fields, spacing));
                }
                let mut missing = base.to_vec();
                missing.remove(i);
                assert!(read(&usage_event(&missing, spacing)).is_none());
                let mut repeated = base.to_vec();
                repeated.push(base[i].clone());
                assert!(read(&usage_event(&repeated, spacing)).is_none());
            }
            for key in ["input_tokens_details", "output_tokens_details", "other"] {
                for value in details {
                    for at in 0..=base.len() {
                        let mut fields = base.to_vec();
                        fields.insert(at, field(key, value));
                        check(&usage_event(&fields, spacing));
                    }
                }
            }
        }
        for text in [
            r#"{"type":"response.completed","response":{"usage":null}}"#,
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3,"input_tokens_details":{"cached_tokens":1}}}}"#,
            r#"{"type":"response.created","response":{"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}}"#,
        ] {
            assert!(read(text).is_some(), "{text}");
            check(text);
        }
    }

    /// Output items are read here when their tag comes first, and agree with serde on every
    /// sample item in every rotation of its fields, inside `added` and `done` events.
    #[test]
    fn items_agree_with_serde() {
        let done = r#"{"type":"response.output_item.done","sequence_number":68,"output_index":0,"item":{"id":"msg_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello \"world\"\n"}],"role":"assistant","phase":"final_answer"}}"#;
        // (Its tag is not first: serde's.)
        assert!(read(done).is_none());
        check(done);
        let done = done.replace(
            r#""id":"msg_1","type":"message""#,
            r#""type":"message","id":"msg_1""#,
        );
        let event = read(&done).expect("an item whose tag is first is read here");
        assert_eq!(
            event.item.as_deref(),
            Some(&OutputItem::Message {
                id: Some("msg_1".into()),
                content: vec![OutputContent::OutputText {
                    text: "Hello \"world\"\n".into()
                }],
            })
        );
        check(&done);
        for cut in 0..done.len() {
            check(&done[..cut]);
        }
        let mut read_here = 0;
        for fields in super::super::items::SAMPLE_ITEMS {
            for turn in 0..fields.len().max(1) {
                let mut rotated = fields.to_vec();
                rotated.rotate_left(turn.min(fields.len()));
                let item = format!("{{{}}}", rotated.join(","));
                for (kind, spacing) in [
                    ("response.output_item.added", ""),
                    ("response.output_item.done", " "),
                ] {
                    let event = format!(
                        r#"{{"type":"{kind}","output_index":0,"item":{spacing}{item}{spacing},"sequence_number":3}}"#
                    );
                    read_here += usize::from(read(&event).is_some());
                    check(&event);
                }
            }
        }
        // Each valid item once a rotation puts its tag first, in both events.
        assert!(read_here >= 14, "{read_here}");
        for text in [
            r#"{"type":"response.output_item.added","item":null}"#,
            r#"{"type":"response.output_item.added","item":{"type":"function_call","call_id":"c","name":"f","arguments":""}}"#,
            r#"{"type":"response.output_item.done","item":{"type":"reasoning","summary":[{"type":"summary_text","text":"a","type":"again"}],"encrypted_content":"gAAA"}}"#,
            r#"{"type":"response.output_item.done","item":{"type":"custom_tool_call","call_id":"c","name":"apply_patch","input":"*** Begin","arguments":5}}"#,
        ] {
            assert!(read(text).is_some(), "{text}");
            check(text);
        }
        for text in [
            r#"{"type":"response.output_item.done","item":{"type":"message","content":null}}"#,
            r#"{"type":"response.output_item.done","item":{"type":"message","content":[null]}}"#,
            r#"{"type":"response.output_item.done","item":{"type":"reasoning","summary":[{"text":null}]}}"#,
            r#"{"type":"response.output_item.done","item":{"type":"function_call","call_id":"c"}}"#,
            r#"{"type":"response.output_item.done","item":{"type":"mess\u0061ge"}}"#,
            r#"{"type":"response.output_item.done","item":[]}"#,
        ] {
            assert!(read(text).is_none(), "should be serde's: {text}");
            check(text);
        }
    }

    #[test]
    fn ignored_types_end_the_reading() {
        let ignored = |kind: &str| kind == "response.output_text.done";
        for text in [
            // The rest is never looked at, broken or not.
            r#"{"type":"response.output_text.done","text":"Hello"}"#,
            r#"{"type":"response.output_text.done","text":"unterminated"#,
            r#"{"sequence_number":4,"type":"response.output_text.done","part":{"a":[1]},"#,
        ] {
            let event = super::read(text, ignored).expect("an ignored event");
            assert_eq!(event.kind, "response.output_text.done");
            assert!(event.delta.is_none() && event.item_id.is_none());
        }
        // Other types are read whole; an item without a leading `type` is still serde's.
        let delta = super::read(DELTA, ignored).unwrap();
        assert_eq!(delta.delta.as_deref(), Some("Hello"));
        let nested = r#"{"item":{},"type":"response.output_text.done"}"#;
        assert!(super::read(nested, ignored).is_none());
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for good in ["0", "-0", "12", "-3.25", "1e9", "2.5E-3", "7e+2"] {
            assert!(is_number(good.as_bytes()), "{good}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "--1", "1.2.3", "+1", "1-2",
        ] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_serdes() {
        let deep = format!(r#"{{"type":"x","n":{}{}}}"#, "[".repeat(40), "]".repeat(40));
        assert!(read(&deep).is_none());
        let fine = format!(r#"{{"type":"x","n":{}{}}}"#, "[".repeat(8), "]".repeat(8));
        assert!(read(&fine).is_some());
        check(&fine);
    }
}
