//! A Responses body this daemon writes, kept in parts: the members before `input` (small, the
//! request's own), and the input's items in pieces, each item's place and digest known. A
//! conversation's next turn writes only its new items into a piece of its own and shares the
//! earlier pieces with the turn before, so a long history is neither written nor read again:
//! a socket's incremental frame is made of the head and the new items, and the whole body
//! exists only if it is needed whole (HTTP, a socket's first turn), made once.

use std::ops::Range;
use std::sync::Arc;

use super::incremental::{self, Parsed, Shape};
use super::wire::{ResponsesRequest, write_head};

/// Pieces beyond this many are joined into one (a conversation of hundreds of turns would
/// otherwise be hundreds of small pieces to walk).
const MAX_PIECES: usize = 32;

/// Input items written together: their JSON, comma-separated, and where each is.
#[derive(Debug)]
struct Piece {
    json: String,
    items: Vec<Range<usize>>,
    digests: Vec<u128>,
}

/// A body's input items, in pieces shared with the bodies they continue.
#[derive(Debug, Clone, Default)]
pub struct Items {
    pieces: Vec<Arc<Piece>>,
}

impl Items {
    /// How many items.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.items.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of JSON held.
    pub fn bytes(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| p.json.len() + p.items.len() * 32)
            .sum()
    }

    /// Each item's JSON, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.pieces
            .iter()
            .flat_map(|p| p.items.iter().map(|r| &p.json[r.clone()]))
    }

    fn digests(&self) -> Vec<u128> {
        let mut all = Vec::with_capacity(self.len());
        for piece in &self.pieces {
            all.extend_from_slice(&piece.digests);
        }
        all
    }

    /// The length of the items' JSON, comma-separated.
    fn joined_len(&self) -> usize {
        let (bytes, count) = self
            .pieces
            .iter()
            .filter(|p| !p.items.is_empty())
            .fold((0usize, 0usize), |(bytes, count), p| {
                (bytes + p.json.len(), count + 1)
            });
        bytes + count.saturating_sub(1)
    }
}

/// A body written here: its head (`{` and the members before `input`, no closing brace) and
/// its items.
#[derive(Debug, Clone)]
pub struct Written {
    head: Arc<String>,
    items: Items,
}

impl Written {
    /// Writes `body`; its items follow `earlier`'s (a body written before for the same
    /// history, whose items `body.input` continues), which are shared, not copied.
    pub fn write(body: &ResponsesRequest, earlier: Option<&Items>) -> serde_json::Result<Self> {
        let head = write_head(body)?;
        let mut items = earlier.cloned().unwrap_or_default();
        if !body.input.is_empty() {
            let mut json = Vec::with_capacity(256 * body.input.len());
            let mut ranges = Vec::with_capacity(body.input.len());
            let mut digests = Vec::with_capacity(body.input.len());
            for item in &body.input {
                if !ranges.is_empty() {
                    json.push(b',');
                }
                let at = json.len();
                serde_json::to_writer(&mut json, item)?;
                digests.push(incremental::hash_bytes(&json[at..]));
                ranges.push(at..json.len());
            }
            let json = String::from_utf8(json).map_err(serde::ser::Error::custom)?;
            items.pieces.push(Arc::new(Piece {
                json,
                items: ranges,
                digests,
            }));
        }
        if items.pieces.len() > MAX_PIECES {
            items = items.joined();
        }
        Ok(Self {
            head: Arc::new(head),
            items,
        })
    }

    /// A body written by its client (a pass-through surface's): its members but `input` as
    /// they are, in their order, then `items` (each an item's JSON) after `earlier`'s.
    pub fn from_raw(
        members: &[(&str, &str)],
        items: &[&str],
        earlier: Option<&Items>,
    ) -> serde_json::Result<Self> {
        let mut head = String::with_capacity(
            64 + members
                .iter()
                .map(|(name, raw)| name.len() + raw.len() + 4)
                .sum::<usize>(),
        );
        head.push('{');
        for (i, (name, raw)) in members.iter().enumerate() {
            if i > 0 {
                head.push(',');
            }
            head.push_str(&serde_json::to_string(name)?);
            head.push(':');
            head.push_str(raw);
        }
        let mut all = earlier.cloned().unwrap_or_default();
        if !items.is_empty() {
            let mut json = String::with_capacity(items.iter().map(|i| i.len() + 1).sum());
            let mut ranges = Vec::with_capacity(items.len());
            let mut digests = Vec::with_capacity(items.len());
            for item in items {
                if !ranges.is_empty() {
                    json.push(',');
                }
                let at = json.len();
                json.push_str(item);
                digests.push(incremental::hash_bytes(item.as_bytes()));
                ranges.push(at..json.len());
            }
            all.pieces.push(Arc::new(Piece {
                json,
                items: ranges,
                digests,
            }));
        }
        if all.pieces.len() > MAX_PIECES {
            all = all.joined();
        }
        Ok(Self {
            head: Arc::new(head),
            items: all,
        })
    }

    /// The same body without its reasoning items (for an account that cannot read them);
    /// `None` when it has none.
    pub fn without_reasoning(&self) -> Option<Self> {
        self.without_reasoning_before(usize::MAX)
    }

    /// The same body without the reasoning among its first `before` items; `None` when there
    /// is none there.
    pub fn without_reasoning_before(&self, before: usize) -> Option<Self> {
        self.items
            .iter()
            .take(before)
            .any(is_reasoning)
            .then(|| Self {
                head: self.head.clone(),
                items: self.items.without_reasoning_before(before),
            })
    }

    pub fn items(&self) -> &Items {
        &self.items
    }

    /// The whole body's length.
    pub fn len(&self) -> usize {
        self.head.len() + r#","input":[]}"#.len() + self.items.joined_len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The whole body, `input` last.
    pub fn to_json(&self) -> Vec<u8> {
        let mut json = Vec::with_capacity(self.len());
        json.extend_from_slice(self.head.as_bytes());
        json.extend_from_slice(br#","input":["#);
        let mut first = true;
        for piece in &self.items.pieces {
            if piece.items.is_empty() {
                continue;
            }
            if !first {
                json.push(b',');
            }
            first = false;
            json.extend_from_slice(piece.json.as_bytes());
        }
        json.extend_from_slice(b"]}");
        json
    }

    /// The body read for cutting (its head parsed, its items where they were written) and
    /// its shape, without reading the items.
    pub fn outline<'a>(&'a self, head: &'a mut String) -> Option<(Parsed<'a>, Shape)> {
        head.clear();
        head.push_str(&self.head);
        head.push('}');
        let parsed = incremental::from_parts(head, self.items.iter().collect())?;
        let shape = incremental::shape_with(&parsed, self.items.digests());
        Some((parsed, shape))
    }
}

impl Items {
    /// The items `keep` keeps (given each one's place and JSON), in one piece.
    fn retain(&self, keep: impl Fn(usize, &str) -> bool) -> Self {
        let digests = self.digests();
        let mut json = String::with_capacity(self.bytes());
        let mut items = Vec::with_capacity(self.len());
        let mut kept = Vec::with_capacity(self.len());
        for (at, (item, digest)) in self.iter().zip(digests).enumerate() {
            if !keep(at, item) {
                continue;
            }
            if !items.is_empty() {
                json.push(',');
            }
            let at = json.len();
            json.push_str(item);
            items.push(at..json.len());
            kept.push(digest);
        }
        Self {
            pieces: vec![Arc::new(Piece {
                json,
                items,
                digests: kept,
            })],
        }
    }

    /// Whether any item is reasoning.
    pub fn has_reasoning(&self) -> bool {
        self.iter().any(is_reasoning)
    }

    /// The items but the reasoning, in one piece (for an account that cannot read it).
    pub fn without_reasoning(&self) -> Self {
        self.without_reasoning_before(usize::MAX)
    }

    /// The items but the reasoning among the first `before`, in one piece.
    pub fn without_reasoning_before(&self, before: usize) -> Self {
        self.retain(|at, item| at >= before || !is_reasoning(item))
    }

    /// The items in one piece.
    fn joined(&self) -> Self {
        self.retain(|_, _| true)
    }
}

/// Whether an item is reasoning: at once when written as [`Written::write`] writes it (its
/// type first), else by reading its `type` (a client's item, in the client's key order).
fn is_reasoning(item: &str) -> bool {
    if let Some(rest) = item.strip_prefix(r#"{"type":""#) {
        return rest.starts_with(r#"reasoning""#);
    }
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Kind<'_>>(item).is_ok_and(|k| k.kind.as_deref() == Some("reasoning"))
}
