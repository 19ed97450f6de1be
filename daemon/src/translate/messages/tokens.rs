//! `POST /v1/messages/count_tokens`: a local estimate of the input tokens the backend will
//! count for a request (its o200k-style tokenizer), without a tokenizer table in the binary.
//!
//! Text is read in runs: a word or identifier (with the space before it) is one token, and one
//! more per further 8 letters; digits go in threes; punctuation in pairs; a line break with
//! the next line's indentation is one token; CJK and other wide characters two tokens per
//! three. Messages, tools and images add the fixed costs the backend adds. The estimate is held
//! to the o200k tokenizer in the tests (within 15 % on prose, code, JSON, shell output and
//! Chinese; the figures are in the README).

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::upstream::wire::{ContentPart, InputItem, ResponsesRequest, Tool, ToolOutput};
use crate::upstream::written::Items;

/// Tokens a message costs beyond its text (role and separators).
const PER_MESSAGE: u64 = 4;
/// Tokens a tool definition costs beyond its name, description and schema.
const PER_TOOL: u64 = 8;
/// An image whose size cannot be read: a 1024 × 1024 picture at high detail.
const DEFAULT_IMAGE: u64 = 765;

/// The estimate for a translated request: instructions, input items and tools.
pub fn estimate(body: &ResponsesRequest) -> u64 {
    members(body) + input(&body.input)
}

/// The estimate for a translated request's members other than its input (instructions,
/// tools): [`estimate`] is this and [`input`].
pub fn members(body: &ResponsesRequest) -> u64 {
    let mut total = 3;
    if let Some(instructions) = &body.instructions {
        total += text(instructions) + PER_MESSAGE;
    }
    if let Some(tools) = &body.tools {
        total += tools.iter().map(tool_tokens).sum::<u64>();
    }
    total
}

/// A request's estimate, counted from its written items when first asked for: Ollama and
/// Gemini answers need it only when a stop sequence ends the answer or the backend reports no
/// usage, so a large request does not pay for it (0.6 ms per MB) on every turn.
#[derive(Debug, Clone)]
pub struct Estimate {
    members: u64,
    items: Items,
    counted: Arc<OnceLock<u64>>,
}

impl Estimate {
    /// `members` counted already ([`members`]); the items when asked.
    pub fn later(members: u64, items: Items) -> Self {
        Self {
            members,
            items,
            counted: Arc::default(),
        }
    }

    /// An estimate known already (a test's writer).
    #[cfg(test)]
    pub(crate) fn known(tokens: u64) -> Self {
        Self {
            members: tokens,
            items: Items::default(),
            counted: Arc::default(),
        }
    }

    /// The tokens: the same as [`estimate`] of the request the items were written from.
    pub fn get(&self) -> u64 {
        *self
            .counted
            .get_or_init(|| self.members + written(self.items.iter()))
    }
}

/// [`input`] for items as written (each one's JSON): read back as far as the estimate reads
/// them. An item that does not read (none written here) counts nothing.
pub fn written<'a>(items: impl Iterator<Item = &'a str>) -> u64 {
    items
        .filter_map(|json| serde_json::from_str::<WrittenItem<'_>>(json).ok())
        .map(|item| item.tokens())
        .sum()
}

/// What [`item_tokens`] reads of an [`InputItem`], as it is written.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WrittenItem<'a> {
    Message {
        #[serde(borrow)]
        content: Vec<WrittenPart<'a>>,
    },
    FunctionCall {
        #[serde(borrow)]
        name: Cow<'a, str>,
        #[serde(borrow)]
        arguments: Cow<'a, str>,
    },
    CustomToolCall {
        #[serde(borrow)]
        name: Cow<'a, str>,
        #[serde(borrow)]
        input: Cow<'a, str>,
    },
    FunctionCallOutput {
        #[serde(borrow)]
        output: WrittenOutput<'a>,
    },
    CustomToolCallOutput {
        #[serde(borrow)]
        output: WrittenOutput<'a>,
    },
    Reasoning {
        #[serde(borrow)]
        summary: Vec<WrittenSummary<'a>>,
    },
    AdditionalTools {
        tools: Vec<WrittenTool>,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WrittenPart<'a> {
    InputText {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    OutputText {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    InputImage {
        #[serde(borrow)]
        image_url: Cow<'a, str>,
    },
    InputFile {
        #[serde(default, borrow)]
        file_data: Option<Cow<'a, str>>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WrittenOutput<'a> {
    #[serde(borrow)]
    Text(Cow<'a, str>),
    #[serde(borrow)]
    Parts(Vec<WrittenPart<'a>>),
}

#[derive(Deserialize)]
struct WrittenSummary<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WrittenTool {
    Function {
        name: String,
        #[serde(default)]
        description: Option<String>,
        parameters: serde_json::Value,
    },
    Custom {
        name: String,
        #[serde(default)]
        description: Option<String>,
    },
    Namespace {
        tools: Vec<WrittenTool>,
    },
    #[serde(other)]
    Hosted,
}

impl WrittenItem<'_> {
    fn tokens(&self) -> u64 {
        match self {
            Self::Message { content } => {
                PER_MESSAGE + content.iter().map(WrittenPart::tokens).sum::<u64>()
            }
            Self::FunctionCall {
                name,
                arguments: input,
            }
            | Self::CustomToolCall { name, input } => call(name, input),
            Self::FunctionCallOutput { output } | Self::CustomToolCallOutput { output } => {
                PER_MESSAGE
                    + match output {
                        WrittenOutput::Text(t) => text(t),
                        WrittenOutput::Parts(parts) => parts.iter().map(WrittenPart::tokens).sum(),
                    }
            }
            Self::Reasoning { summary } => reasoning_summary(summary.iter().map(|s| &*s.text)),
            Self::AdditionalTools { tools } => tools.iter().map(WrittenTool::tokens).sum(),
        }
    }
}

impl WrittenPart<'_> {
    fn tokens(&self) -> u64 {
        match self {
            Self::InputText { text: t } | Self::OutputText { text: t } => text(t),
            Self::InputImage { image_url } => image(image_url),
            Self::InputFile { file_data } => file(file_data.as_deref()),
        }
    }
}

impl WrittenTool {
    fn tokens(&self) -> u64 {
        match self {
            Self::Function {
                name,
                description,
                parameters,
            } => function_tool(name, description.as_deref(), parameters),
            Self::Custom { name, description } => named_tool(name, description.as_deref()),
            Self::Namespace { tools } => tools.iter().map(Self::tokens).sum(),
            Self::Hosted => PER_TOOL,
        }
    }
}

/// The estimate for input items alone: a request's estimate is its members' and its items',
/// so a conversation's earlier items are counted once and added up after.
pub fn input(items: &[InputItem]) -> u64 {
    items.iter().map(item_tokens).sum()
}

/// The estimate for the reasoning items among `items`: part of [`input`]'s.
pub fn reasoning(items: &[InputItem]) -> u64 {
    items
        .iter()
        .filter(|item| matches!(item, InputItem::Reasoning { .. }))
        .map(item_tokens)
        .sum()
}

fn item_tokens(item: &InputItem) -> u64 {
    match item {
        InputItem::Message { content, .. } => {
            PER_MESSAGE + content.iter().map(part_tokens).sum::<u64>()
        }
        InputItem::FunctionCall {
            name,
            arguments: input,
            ..
        }
        | InputItem::CustomToolCall { name, input, .. } => call(name, input),
        InputItem::FunctionCallOutput { output, .. }
        | InputItem::CustomToolCallOutput { output, .. } => {
            PER_MESSAGE
                + match output {
                    ToolOutput::Text(t) => text(t),
                    ToolOutput::Parts(parts) => parts.iter().map(part_tokens).sum(),
                }
        }
        // Encrypted reasoning is counted by the backend from what it decrypts: roughly the
        // summary's size several times over; the summary is what is known here.
        InputItem::Reasoning { summary, .. } => {
            reasoning_summary(summary.iter().map(|s| s.text.as_str()))
        }
        InputItem::AdditionalTools { tools, .. } => tools.iter().map(tool_tokens).sum(),
    }
}

fn part_tokens(part: &ContentPart) -> u64 {
    match part {
        ContentPart::InputText { text: t } | ContentPart::OutputText { text: t } => text(t),
        ContentPart::InputImage { image_url, .. } => image(image_url),
        ContentPart::InputFile { file_data, .. } => file(file_data.as_deref()),
    }
}

fn tool_tokens(tool: &Tool) -> u64 {
    match tool {
        Tool::Function {
            name,
            description,
            parameters,
            ..
        } => function_tool(name, description.as_deref(), parameters),
        Tool::Custom {
            name, description, ..
        } => named_tool(name, description.as_deref()),
        Tool::Namespace { tools, .. } => tools.iter().map(tool_tokens).sum(),
        Tool::WebSearch {} | Tool::ImageGeneration { .. } => PER_TOOL,
    }
}

/// A call: its name and its arguments (or input).
fn call(name: &str, input: &str) -> u64 {
    PER_MESSAGE + text(name) + text(input)
}

/// A file's data: about a token per six base64 characters; one that is not sent along counts
/// as an image.
fn file(data: Option<&str>) -> u64 {
    data.map_or(DEFAULT_IMAGE, |data| data.len() as u64 / 6)
}

/// Reasoning, from its summary's parts.
fn reasoning_summary<'a>(parts: impl Iterator<Item = &'a str>) -> u64 {
    parts.map(text).sum::<u64>() * 3
}

fn function_tool(name: &str, description: Option<&str>, parameters: &serde_json::Value) -> u64 {
    named_tool(name, description) + text(&parameters.to_string())
}

fn named_tool(name: &str, description: Option<&str>) -> u64 {
    PER_TOOL + text(name) + description.map_or(0, text)
}

/// The part a byte plays in [`ascii`]'s reading.
const LETTER: usize = 0;
const UNDERSCORE: usize = 1;
const DIGIT: usize = 2;
const SPACE: usize = 3;
/// `\n`, `\r`, `\t`.
const BREAK: usize = 4;
/// Punctuation other than `_`.
const PUNCT: usize = 5;
/// Control characters.
const OTHER: usize = 6;
const PARTS: usize = 7;

/// Each ASCII byte's part.
static PART: [u8; 128] = parts();

const fn parts() -> [u8; 128] {
    let mut table = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        let part = if c.is_ascii_alphabetic() {
            LETTER
        } else if c == b'_' {
            UNDERSCORE
        } else if c.is_ascii_digit() {
            DIGIT
        } else if c == b' ' {
            SPACE
        } else if matches!(c, b'\n' | b'\r' | b'\t') {
            BREAK
        } else if c.is_ascii_punctuation() {
            PUNCT
        } else {
            OTHER
        };
        table[b] = part as u8;
        b += 1;
    }
    table
}

/// [`ascii`]'s states: where a byte leaves the run it is in. The first five count a token
/// when entered: a word's 1st, 9th, 17th… byte, a number's 1st, 4th…, a punctuation run's
/// 1st, 3rd…, a run of spaces' 2nd, a line break's 1st.
const WORD0: u8 = 0;
const DIGIT0: u8 = 1;
const PUNCT0: u8 = 2;
const SPACE1: u8 = 3;
const BREAK0: u8 = 4;
const COUNTED: u8 = 5;
/// Counting nothing: a word's 2nd to 8th byte (seven states), a number's 2nd and 3rd, a
/// punctuation run's 2nd, a lone space, a run of spaces' 3rd on, a line break's rest, the
/// start.
const WORD1: u8 = 5;
const WORD7: u8 = 11;
const DIGIT1: u8 = 12;
const DIGIT2: u8 = 13;
const PUNCT1: u8 = 14;
const SPACE0: u8 = 15;
const SPACE2: u8 = 16;
const BREAK1: u8 = 17;
const START: u8 = 18;
const STATES: usize = 19;

/// The state after a byte of each part, from each state.
static NEXT: [[u8; PARTS]; STATES] = next_states();

const fn next_states() -> [[u8; PARTS]; STATES] {
    // A byte that does not go on with the run begins its own (`_` and control characters
    // begin punctuation).
    let mut begins = [PUNCT0; PARTS];
    begins[LETTER] = WORD0;
    begins[DIGIT] = DIGIT0;
    begins[SPACE] = SPACE0;
    begins[BREAK] = BREAK0;
    let mut table = [begins; STATES];
    let mut s = 0;
    while s < STATES {
        let state = s as u8;
        let row = &mut table[s];
        match state {
            // Letters and `_` go on with a word; its 9th, 17th… byte counts again.
            WORD0 | WORD1..=WORD7 => {
                let next = match state {
                    WORD0 => WORD1,
                    WORD7 => WORD0,
                    _ => state + 1,
                };
                row[LETTER] = next;
                row[UNDERSCORE] = next;
            }
            DIGIT0 => row[DIGIT] = DIGIT1,
            DIGIT1 => row[DIGIT] = DIGIT2,
            DIGIT2 => row[DIGIT] = DIGIT0,
            PUNCT0 => {
                row[PUNCT] = PUNCT1;
                row[UNDERSCORE] = PUNCT1;
            }
            PUNCT1 => {
                row[PUNCT] = PUNCT0;
                row[UNDERSCORE] = PUNCT0;
            }
            SPACE0 => row[SPACE] = SPACE1,
            SPACE1 | SPACE2 => row[SPACE] = SPACE2,
            // A line break goes on with the next line's indentation.
            BREAK0 | BREAK1 => {
                row[SPACE] = BREAK1;
                row[BREAK] = BREAK1;
            }
            _ => {}
        }
        s += 1;
    }
    table
}

/// Three steps of [`NEXT`] at once: from each state, after bytes of each three parts, the
/// state (shifted by two) and the tokens counted (0 to 3).
static NEXT3: [[u8; PARTS * PARTS * PARTS]; STATES] = three_steps();

const fn three_steps() -> [[u8; PARTS * PARTS * PARTS]; STATES] {
    let mut table = [[0u8; PARTS * PARTS * PARTS]; STATES];
    let mut s = 0;
    while s < STATES {
        let mut parts = 0;
        while parts < PARTS * PARTS * PARTS {
            let first = NEXT[s][parts / (PARTS * PARTS)];
            let second = NEXT[first as usize][parts / PARTS % PARTS];
            let third = NEXT[second as usize][parts % PARTS];
            let counted =
                (first < COUNTED) as u8 + (second < COUNTED) as u8 + (third < COUNTED) as u8;
            table[s][parts] = (third << 2) | counted;
            parts += 1;
        }
        s += 1;
    }
    table
}

/// [`NEXT3`] flat, for the walks, in two tables indexed alike: the next state's row (its state
/// times the row's length, so a step is a load and an add) and the tokens counted. The count
/// is read beside the walk, not on its way: each step waits only for the load of the one
/// before.
static ROW3: [u16; STATES * TRIPLES] = flat_steps().0;
static COUNT3: [u8; STATES * TRIPLES] = flat_steps().1;
const TRIPLES: usize = PARTS * PARTS * PARTS;

const fn flat_steps() -> ([u16; STATES * TRIPLES], [u8; STATES * TRIPLES]) {
    let mut rows = [0u16; STATES * TRIPLES];
    let mut counts = [0u8; STATES * TRIPLES];
    let mut s = 0;
    while s < STATES {
        let mut parts = 0;
        while parts < TRIPLES {
            let step = NEXT3[s][parts];
            rows[s * TRIPLES + parts] = ((step >> 2) as usize * TRIPLES) as u16;
            counts[s * TRIPLES + parts] = step & 3;
            parts += 1;
        }
        s += 1;
    }
    (rows, counts)
}

/// [`text`] for ASCII text: the same runs, read as a walk through a table three bytes a step,
/// without a branch to guess wrong at each run's end. A long text is read as two walks at once
/// (each step of a walk waits for the one before; two walks keep the core busy), the second
/// from the middle's first space after a letter: whatever word came before, that space begins
/// a run of spaces, so the walk there is in a known state.
fn ascii(bytes: &[u8]) -> u64 {
    const TWO_WALKS_FROM: usize = 512;
    let middle = bytes.len() / 2;
    let split = (bytes.len() >= TWO_WALKS_FROM)
        .then(|| {
            bytes[middle..]
                .windows(2)
                .position(|pair| pair[1] == b' ' && pair[0].is_ascii_alphabetic())
        })
        .flatten();
    let Some(at) = split else {
        return walk(bytes, START).0;
    };
    // The first walk takes the space: the second begins after it, in the state it leaves.
    let (first, second) = bytes.split_at(middle + at + 2);
    // As many steps of three bytes as both halves have, side by side; the rest walk alone.
    let together = first.len().min(second.len()) / 3 * 3;
    let (mut row_a, mut row_b) = (usize::from(START) * TRIPLES, usize::from(SPACE0) * TRIPLES);
    let mut tokens = 0u64;
    for (x, y) in first[..together]
        .chunks_exact(3)
        .zip(second[..together].chunks_exact(3))
    {
        let (a, b) = (row_a + triple(x), row_b + triple(y));
        row_a = usize::from(ROW3[a]);
        row_b = usize::from(ROW3[b]);
        tokens += u64::from(COUNT3[a]) + u64::from(COUNT3[b]);
    }
    let state = |row: usize| (row / TRIPLES) as u8;
    tokens + walk(&first[together..], state(row_a)).0 + walk(&second[together..], state(row_b)).0
}

/// Each byte's part as the first, second and third of a step's three (times 49, 7 and 1), so
/// that a step's index is two additions. Bytes beyond ASCII (never walked) count as control
/// characters; the tables hold all 256 so that no index needs checking.
static FIRST: [u16; 256] = scaled(PARTS * PARTS);
static SECOND: [u16; 256] = scaled(PARTS);
static THIRD: [u16; 256] = scaled(1);

const fn scaled(by: usize) -> [u16; 256] {
    let mut table = [(OTHER * by) as u16; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = (PART[b] as usize * by) as u16;
        b += 1;
    }
    table
}

/// The parts of three bytes, as [`NEXT3`] is indexed.
fn triple(bytes: &[u8]) -> usize {
    usize::from(FIRST[usize::from(bytes[0])])
        + usize::from(SECOND[usize::from(bytes[1])])
        + usize::from(THIRD[usize::from(bytes[2])])
}

/// One walk over `bytes` from `state`: the tokens counted and the state it ends in.
fn walk(bytes: &[u8], mut state: u8) -> (u64, u8) {
    let mut tokens = 0u64;
    let mut triples = bytes.chunks_exact(3);
    let mut row = usize::from(state) * TRIPLES;
    for bytes in &mut triples {
        let at = row + triple(bytes);
        row = usize::from(ROW3[at]);
        tokens += u64::from(COUNT3[at]);
    }
    state = (row / TRIPLES) as u8;
    for &b in triples.remainder() {
        state = NEXT[usize::from(state)][usize::from(PART[usize::from(b & 0x7f)])];
        tokens += u64::from(state < COUNTED);
    }
    (tokens, state)
}

/// Tokens of a piece of text (see the module's notes). Its ASCII stretches (most of a coding
/// agent's history) are read by [`ascii`], the rest a character at a time. Held to the
/// character-by-character reading it replaced on every input (a property test).
pub fn text(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut tokens = 0u64;
    // CJK and the like, in thirds of a token.
    let mut wide_thirds = 0u64;
    let mut i = 0;
    while i < n {
        // No run of ASCII goes on past a character beyond it: the stretch is read alone.
        let end = i + ascii_prefix(&bytes[i..]);
        tokens += ascii(&bytes[i..end]);
        i = end;
        let mut chars = text[i..].chars();
        let Some(c) = chars.next() else {
            break;
        };
        i += c.len_utf8();
        let narrow = |c: char| c.is_alphabetic() && (c as u32) < 0x2E80;
        if narrow(c) {
            // Accented and other alphabetic scripts: shorter pieces than ASCII words (ASCII
            // letters go on with them).
            let mut len = 1u64;
            for next in chars {
                if !narrow(next) {
                    break;
                }
                i += next.len_utf8();
                len += 1;
            }
            tokens += 1 + (len - 1) / 3;
        } else {
            // CJK, emoji and symbols: about two tokens for three characters.
            wide_thirds += 2;
        }
    }
    tokens + wide_thirds.div_ceil(3)
}

/// How many of `bytes`' first bytes are ASCII. Read a block at a time (the standard library
/// checks a block a word at a time); a byte at a time, finding the stretch's end took as long
/// as the walk over it.
fn ascii_prefix(bytes: &[u8]) -> usize {
    const BLOCK: usize = 32;
    let mut at = 0;
    for block in bytes.chunks_exact(BLOCK) {
        if !block.is_ascii() {
            break;
        }
        at += BLOCK;
    }
    at + bytes[at..]
        .iter()
        .position(|b| !b.is_ascii())
        .unwrap_or(bytes.len() - at)
}

/// Tokens of an image as the backend counts them: 85 plus 170 per 512-pixel tile, after
/// fitting it into 2048 × 2048 and its short side into 768. A size that cannot be read from
/// the data (or a URL) counts as 1024 × 1024.
fn image(url: &str) -> u64 {
    let Some((width, height)) = data_url_size(url) else {
        return DEFAULT_IMAGE;
    };
    let (mut w, mut h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let fit = (2048.0 / w.max(h)).min(1.0);
    w *= fit;
    h *= fit;
    let short = (768.0 / w.min(h)).min(1.0);
    w *= short;
    h *= short;
    let tiles = (w / 512.0).ceil() as u64 * (h / 512.0).ceil() as u64;
    85 + 170 * tiles
}

/// Width and height from the header of a base64 PNG, GIF, WebP (VP8X) or JPEG data URL.
fn data_url_size(url: &str) -> Option<(u32, u32)> {
    use base64::Engine;
    let data = url
        .strip_prefix("data:")?
        .split_once(";base64,")?
        .1
        .as_bytes();
    // The headers are near the start; JPEG's size marker may come after some metadata.
    let head = &data[..data.len().min(64 * 1024) / 4 * 4];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(head)
        .ok()?;
    let be16 = |at: usize| {
        Some(u32::from(u16::from_be_bytes(
            bytes.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let be32 = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let le16 = |at: usize| {
        Some(u32::from(u16::from_le_bytes(
            bytes.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let le24 = |at: usize| {
        let b = bytes.get(at..at + 3)?;
        Some(u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16)
    };
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((be32(16)?, be32(20)?));
    }
    if bytes.starts_with(b"GIF8") {
        return Some((le16(6)?, le16(8)?));
    }
    if bytes.starts_with(b"RIFF") && bytes.get(12..16) == Some(b"VP8X") {
        return Some((le24(24)? + 1, le24(27)? + 1));
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        let mut at = 2;
        while at + 9 < bytes.len() {
            if bytes[at] != 0xff {
                return None;
            }
            let marker = bytes[at + 1];
            let len = be16(at + 2)? as usize;
            // Start-of-frame markers carry the size; the rest are skipped by their length.
            if matches!(marker, 0xc0..=0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf) {
                return Some((be16(at + 7)?, be16(at + 5)?));
            }
            at += 2 + len;
        }
    }
    None
}

/// The character-by-character reading [`text`] replaced: its oracle.
#[cfg(test)]
fn text_by_chars(text: &str) -> u64 {
    let mut tokens = 0u64;
    // CJK and the like, in thirds of a token.
    let mut wide_thirds = 0u64;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphabetic() {
            // Words, and identifiers with their underscores.
            let len = run(&mut chars, |c| c.is_ascii_alphabetic() || c == '_');
            tokens += 1 + (len - 1) / 8;
        } else if c.is_ascii_digit() {
            tokens += run(&mut chars, |c| c.is_ascii_digit()).div_ceil(3);
        } else if c == ' ' {
            // One space belongs to the word after it; a longer run is a token of its own.
            if run(&mut chars, |c| c == ' ') > 1 {
                tokens += 1;
            }
        } else if matches!(c, '\n' | '\r' | '\t') {
            // A line break with the next line's indentation is one token.
            run(&mut chars, |c| matches!(c, '\n' | '\r' | '\t' | ' '));
            tokens += 1;
        } else if c.is_ascii() {
            // Punctuation merges in pairs (`();`, `::`, `",`).
            tokens += run(&mut chars, |c| c.is_ascii_punctuation()).div_ceil(2);
        } else if c.is_alphabetic() && (c as u32) < 0x2E80 {
            // Accented and other alphabetic scripts: shorter pieces than ASCII words.
            let len = run(&mut chars, |c| c.is_alphabetic() && (c as u32) < 0x2E80);
            tokens += 1 + (len - 1) / 3;
        } else {
            // CJK, emoji and symbols: about two tokens for three characters.
            wide_thirds += 2;
        }
    }
    tokens + wide_thirds.div_ceil(3)
}

/// The length of a run that began with one character, taking the following ones while `same`.
#[cfg(test)]
fn run(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, same: fn(char) -> bool) -> u64 {
    let mut len = 1u64;
    while chars.peek().is_some_and(|c| same(*c)) {
        chars.next();
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{text, text_by_chars};

    /// Long ASCII read as two walks, or as one where the second half has no space after a
    /// letter to begin from; the split at the very end.
    #[test]
    fn long_ascii_counts_as_the_character_reading_wherever_it_splits() {
        let digits = "1234567 ".repeat(1000);
        let words = "word ".repeat(1000);
        let late = format!("{}{}", "(".repeat(5000), "ab ");
        let mixed = format!("{}x {}", "a".repeat(2500), "__ 12\n\t".repeat(400));
        for text in [&digits, &words, &late, &mixed] {
            assert_eq!(super::text(text), text_by_chars(text), "{}", &text[..20]);
        }
    }

    /// Every kind of item, with escapes, images, files and hosted tools: counted from the
    /// written items when asked, the estimate is the one counted from the typed request.
    #[test]
    fn counted_later_from_the_written_items_it_is_the_same_estimate() {
        use serde_json::json;

        use super::{Estimate, estimate, input, members};
        use crate::upstream::wire::{ContentPart, InputItem, Role, SummaryText, Tool, ToolOutput};
        use crate::upstream::written::Written;

        let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAlgAAAGQCAIAAAD9V4nPAAAA";
        let function = |name: &str| Tool::Function {
            name: name.into(),
            description: Some("Reads a \"file\".".into()),
            strict: false,
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        };
        let items = vec![
            InputItem::Message {
                role: Role::User,
                content: vec![
                    ContentPart::InputText {
                        text: "Read \"src/main.rs\"\n\tplease — 你好 😀".into(),
                    },
                    ContentPart::InputImage {
                        image_url: png.into(),
                        detail: Some("high".into()),
                    },
                    ContentPart::InputFile {
                        file_data: Some("JVBERi0xLjQK".repeat(40)),
                        file_id: None,
                        filename: Some("a.pdf".into()),
                        file_url: None,
                    },
                    ContentPart::InputFile {
                        file_data: None,
                        file_id: Some("file_1".into()),
                        filename: None,
                        file_url: None,
                    },
                ],
            },
            InputItem::Reasoning {
                summary: vec![SummaryText {
                    text: "**Reading** the file".into(),
                }],
                encrypted_content: "gAAAA-enc".into(),
            },
            InputItem::Message {
                role: Role::Assistant,
                content: vec![ContentPart::OutputText {
                    text: "Reading it.".into(),
                }],
            },
            InputItem::FunctionCall {
                name: "read_file".into(),
                arguments: r#"{"path":"src/main.rs"}"#.into(),
                call_id: "call_1".into(),
            },
            InputItem::FunctionCallOutput {
                call_id: "call_1".into(),
                output: ToolOutput::Text("fn main() {\n    println!(\"hi\");\n}\n".repeat(30)),
            },
            InputItem::CustomToolCall {
                call_id: "call_2".into(),
                name: "apply_patch".into(),
                input: "*** Begin Patch\n*** End Patch".into(),
            },
            InputItem::CustomToolCallOutput {
                call_id: "call_2".into(),
                output: ToolOutput::Parts(vec![
                    ContentPart::InputText {
                        text: "Done.".into(),
                    },
                    ContentPart::InputImage {
                        image_url: "https://example.com/a.png".into(),
                        detail: None,
                    },
                ]),
            },
            InputItem::AdditionalTools {
                role: Role::Developer,
                tools: vec![
                    function("read_file"),
                    Tool::Custom {
                        name: "apply_patch".into(),
                        description: None,
                        format: Some(json!({"type": "grammar"})),
                    },
                    Tool::Namespace {
                        name: "mcp".into(),
                        description: "Tools of a server".into(),
                        tools: vec![function("mcp__search")],
                    },
                    Tool::WebSearch {},
                ],
            },
        ];
        let body = crate::upstream::wire::tests::request(items, true);
        let written = Written::write(&body, None).unwrap();
        let later = Estimate::later(members(&body), written.items().clone());
        assert_eq!(later.get(), estimate(&body));
        assert!(input(&body.input) > 0);
        // Each kind counts: one item less, a smaller estimate.
        for i in 0..body.input.len() {
            let one = super::written(written.items().iter().skip(i).take(1));
            assert_eq!(one, input(&body.input[i..=i]), "item {i}");
        }
        assert_eq!(Estimate::known(7).get(), 7);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any text, text drawn from the characters the rules tell apart, and ASCII (read three
        /// bytes a step) of every length, long enough to be read as two walks too.
        #[test]
        fn the_byte_reading_counts_as_the_character_reading(
            any in any::<String>(),
            mixed in "([a-zA-Z_]{0,12}|[0-9]{0,7}| {0,3}|[\\n\\r\\t ]{0,4}|[!-/:-@\\[-`{-~]{0,5}|[\\x00-\\x1f\\x7f]|[àéïõüßøÆÐ]{0,5}|[αβγдждж]{0,4}|[你好世界]{0,4}|[😀🦀]{0,2}|[\\u{2e7f}\\u{2e80}]){0,40}",
            ascii in "[a-z_0-9 \\n\\t!(-]{0,300}",
            long in "[a-zA-Z_0-9 \\n\\t!(-]{500,6000}",
            wide in "[éд你😀]",
            at in 0usize..6000,
        ) {
            prop_assert_eq!(text(&any), text_by_chars(&any));
            prop_assert_eq!(text(&mixed), text_by_chars(&mixed));
            prop_assert_eq!(text(&ascii), text_by_chars(&ascii));
            prop_assert_eq!(text(&long), text_by_chars(&long));
            // A character beyond ASCII anywhere in a long stretch (its end found a block at a
            // time).
            let mut broken = long.clone();
            broken.insert_str(at.min(long.len()), &wide);
            prop_assert_eq!(text(&broken), text_by_chars(&broken));
        }
    }
}
