//! How a non-streamed answer reads its upstream events: a text or tool-input delta is held
//! unread, since the item's `response.output_item.done` carries all of it again (the
//! authoritative item, codex-protocol.md §3.2 — the official client builds its history from
//! those items alone). When that item arrives, its held deltas are dropped without ever being
//! parsed; in any other case they are read after all, in order, before the event that came
//! after them, so nothing is lost. A stream answer's deltas are most of its bytes.
//!
//! The contract, held by a property test against reading every event: consumers take an
//! item's content from its done item, the done item repeats its deltas, and item ids are
//! unique within a response (the backend's are; a done item of a reused id would settle
//! deltas of another item).

use std::ops::Range;
use std::sync::LazyLock;

use bytes::Bytes;
use memchr::memmem;

use super::stream::{Sink, StreamTranslator};
use crate::upstream::wire::{OutputItem, StreamEvent, leading_type};

/// Held bytes beyond which the deltas are read at once (and from then on, as they come).
pub(crate) const HELD_MAX: usize = 1 << 20;

/// The first allocation for held deltas (shared byte slices, 32 bytes each).
const HELD_START: usize = 64;

/// The deltas whose item's `done` event repeats them.
fn holdable(kind: &str) -> bool {
    matches!(
        kind,
        "response.output_text.delta"
            | "response.function_call_arguments.delta"
            | "response.custom_tool_call_input.delta"
    )
}

/// The deltas of one item, held until its done item shows whether they need reading.
#[derive(Debug)]
pub struct Held {
    events: Vec<Bytes>,
    bytes: usize,
    limit: usize,
    /// The `item_id` every held delta names, when they all name one.
    item: Option<Bytes>,
    /// The held deltas name more than one item, or one without a plain `item_id`.
    mixed: bool,
    /// Deltas were read once; from then on every event is read as it comes.
    eager: bool,
}

impl Default for Held {
    fn default() -> Self {
        Self::with_limit(HELD_MAX)
    }
}

impl Held {
    /// Holds at most `limit` bytes of deltas.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            events: Vec::new(),
            bytes: 0,
            limit,
            item: None,
            mixed: false,
            eager: false,
        }
    }

    /// Whether the event in `data` may be held ([`Self::hold`]) rather than read now.
    pub fn takes(&self, data: &[u8]) -> bool {
        !self.eager && leading_type(data).is_some_and(holdable)
    }

    /// Keeps a delta [`Self::takes`] accepted, unread.
    pub fn hold(&mut self, data: Bytes, translator: &mut StreamTranslator, out: &mut impl Sink) {
        if !self.mixed {
            match (item_id(&data), &self.item) {
                // The same item as the first: its id again, then the closing quote.
                (Some(start), Some(item))
                    if data.get(start..start + item.len()) == Some(&item[..])
                        && data.get(start + item.len()) == Some(&b'"') => {}
                (Some(start), None) => match string_at(&data, start) {
                    Some(range) => self.item = Some(data.slice(range)),
                    None => self.mixed = true,
                },
                _ => self.mixed = true,
            }
        }
        if self.events.capacity() == 0 {
            // Room for a typical answer's deltas at once rather than growing from four.
            self.events.reserve(HELD_START);
        }
        self.bytes += data.len();
        self.events.push(data);
        if self.bytes > self.limit {
            self.release(translator, out);
        }
    }

    /// Reads one event that was not held: an item's `done` settles its held deltas; any other
    /// event that is read at all has them read first.
    pub fn push(&mut self, data: &[u8], translator: &mut StreamTranslator, out: &mut impl Sink) {
        StreamEvent::with(data, StreamTranslator::ignores, |event| {
            if !self.events.is_empty() && !StreamTranslator::ignores(&event.kind) {
                if self.covers(&event) {
                    self.drop_held();
                } else {
                    self.release(translator, out);
                }
            }
            translator.push(event, out);
        });
    }

    /// The upstream body ended: what is held is read, then the translator told.
    pub fn eof(&mut self, translator: &mut StreamTranslator, out: &mut impl Sink) {
        self.release(translator, out);
        translator.eof(out);
    }

    /// Whether `event` is the done item of every held delta.
    fn covers(&self, event: &StreamEvent<'_>) -> bool {
        if self.mixed || event.kind != "response.output_item.done" {
            return false;
        }
        let id = match event.item.as_deref() {
            Some(
                OutputItem::Message { id, .. }
                | OutputItem::FunctionCall { id, .. }
                | OutputItem::CustomToolCall { id, .. },
            ) => id.as_deref(),
            _ => None,
        };
        matches!((id, &self.item), (Some(id), Some(item)) if id.as_bytes() == &item[..])
    }

    /// Forgets what is held (the vector keeps its room).
    fn drop_held(&mut self) {
        self.events.clear();
        self.bytes = 0;
        self.item = None;
        self.mixed = false;
    }

    /// Reads the held deltas, in order; later ones are read as they come.
    fn release(&mut self, translator: &mut StreamTranslator, out: &mut impl Sink) {
        self.eager = true;
        for data in &self.events {
            StreamEvent::with(data, StreamTranslator::ignores, |event| {
                translator.push(event, out);
            });
        }
        self.drop_held();
    }
}

/// Where the value of the event's `"item_id"` starts (after its quote), when it is a string.
/// The upstream writes it among the first few fields, after the type and short numeric fields
/// (`sequence_number`, `output_index`), so it is looked for there first.
fn item_id(data: &[u8]) -> Option<usize> {
    const KEY: &[u8; 11] = br#""item_id":""#;
    let mut at = leading_type(data).map_or(0, |kind| br#"{"type":"","#.len() + kind.len());
    for _ in 0..4 {
        let rest = data.get(at..)?;
        if rest.first_chunk() == Some(KEY) {
            return Some(at + KEY.len());
        }
        // Past one `"key":123,` field, or it is not where it is looked for first.
        let Some(skipped) = numeric_field(rest) else {
            break;
        };
        at += skipped;
    }
    static FINDER: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(KEY));
    Some(FINDER.find(data)? + KEY.len())
}

/// The length of a `"key":digits,` field at the start of `bytes`, for the numeric fields the
/// upstream writes before `item_id`.
fn numeric_field(bytes: &[u8]) -> Option<usize> {
    // Fixed-size comparisons, which compile to a few loads.
    let key = if bytes.first_chunk() == Some(br#""sequence_number":"#) {
        18
    } else if bytes.first_chunk() == Some(br#""output_index":"#) {
        15
    } else if bytes.first_chunk() == Some(br#""content_index":"#) {
        16
    } else {
        return None;
    };
    let value = &bytes[key..];
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0 && value.get(digits) == Some(&b',')).then_some(key + digits + 1)
}

/// The plain string (no escape) whose contents start at `start`.
fn string_at(data: &[u8], start: usize) -> Option<Range<usize>> {
    let len = memchr::memchr2(b'"', b'\\', data.get(start..)?)?;
    (data[start + len] == b'"').then_some(start..start + len)
}

#[cfg(test)]
#[path = "held_tests.rs"]
pub(crate) mod tests;
