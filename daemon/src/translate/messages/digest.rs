//! Digests of a Messages request's parts that say whether two requests translate alike, for
//! recognising a conversation's next turn (see `server::history`).
//!
//! Claude Code rewrites two things on every turn that the translation reads past: the
//! per-request billing line at the head of the system prompt, and the `cache_control` marks,
//! which it moves to the newest messages. Digested as written, no turn would continue the one
//! before; so the system prompt is digested as the text the translation takes from it, and a
//! message as written but without its blocks' `cache_control` members.

use std::ops::Range;

use serde_json::value::RawValue;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use super::Content;
use super::request::system_texts;
use crate::upstream::incremental::Members;

/// The system prompt as the translation reads it; `None` if it does not read (the whole
/// reading then says why).
pub fn system(raw: &RawValue) -> Option<String> {
    let content: Content = serde_json::from_str(raw.get()).ok()?;
    system_texts(Some(&content)).ok()
}

/// A message's digest: its JSON as the client wrote it, less the `cache_control` members of
/// its content blocks and of the blocks inside them (a tool result's). A message whose marks
/// cannot be found is digested whole — a digest only ever misses a continuation, never makes
/// one of messages that translate differently.
pub fn message(raw: &str) -> u128 {
    let cuts = match cache_marks(raw) {
        Some(cuts) if !cuts.is_empty() => cuts,
        _ => return xxh3_128(raw.as_bytes()),
    };
    let mut digest = Xxh3::new();
    let mut at = 0;
    for cut in cuts {
        digest.update(&raw.as_bytes()[at..cut.start]);
        at = cut.end;
    }
    digest.update(&raw.as_bytes()[at..]);
    digest.digest128()
}

/// Where in `raw` (a message) its blocks' `cache_control` members are, each with the comma
/// that joins it to its neighbours, so the message without them reads as if they had never
/// been written; in order. `None` if they cannot be told apart.
fn cache_marks(raw: &str) -> Option<Vec<Range<usize>>> {
    let mut cuts = Vec::new();
    if memchr::memmem::find(raw.as_bytes(), b"\"cache_control\"").is_none() {
        return Some(cuts);
    }
    let Members(members) = serde_json::from_str(raw).ok()?;
    if let Some((_, content)) = members.iter().find(|(name, _)| name == "content") {
        blocks(raw, content, &mut cuts, 2)?;
    }
    cuts.sort_by_key(|cut| cut.start);
    Some(cuts)
}

/// Marks of the blocks in `content` (when it is a list), `depth` levels of blocks down.
fn blocks(raw: &str, content: &RawValue, cuts: &mut Vec<Range<usize>>, depth: u8) -> Option<()> {
    if depth == 0 || !content.get().starts_with('[') {
        return Some(());
    }
    let list: Vec<&RawValue> = serde_json::from_str(content.get()).ok()?;
    for block in list {
        if !block.get().starts_with('{') {
            continue;
        }
        let Members(members) = serde_json::from_str(block.get()).ok()?;
        let end = |value: &RawValue| offset(raw, value.get()) + value.get().len();
        let mut marks = members
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| name == "cache_control");
        if let Some((i, (_, value))) = marks.next() {
            if marks.next().is_some() {
                return None;
            }
            let cut = if i > 0 {
                // `,"cache_control":{…}` after the member before it.
                end(members[i - 1].1)..end(value)
            } else if members.len() > 1 {
                // `"cache_control":{…},` first, with the space after the comma.
                let after = end(value);
                let comma = after + raw[after..].find(',')? + 1;
                let next = raw[comma..]
                    .find(|c: char| !c.is_ascii_whitespace())
                    .map_or(raw.len(), |i| comma + i);
                offset(raw, block.get()) + 1..next
            } else {
                offset(raw, block.get()) + 1..end(value)
            };
            cuts.push(cut);
        }
        if let Some((_, inner)) = members.iter().find(|(name, _)| name == "content") {
            blocks(raw, inner, cuts, depth - 1)?;
        }
    }
    Some(())
}

/// Where `part`, a slice of `whole`, begins in it.
fn offset(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn compact(value: &Value) -> String {
        serde_json::to_string(value).unwrap()
    }

    #[test]
    fn a_message_is_digested_without_its_cache_marks() {
        let bare = r#"{"role":"user","content":[{"type":"text","text":"Fix the bug in \"cache_control\" handling."},{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"ok"}]},{"type":"text","text":"next"}]}"#;
        let digest = message(bare);
        // Marks first, last, alone, inside a tool result, with whitespace around them.
        let marked = [
            r#"{"role":"user","content":[{"type":"text","text":"Fix the bug in \"cache_control\" handling.","cache_control":{"type":"ephemeral"}},{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"ok"}]},{"type":"text","text":"next"}]}"#,
            r#"{"role":"user","content":[{"type":"text","text":"Fix the bug in \"cache_control\" handling."},{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"ok"}],"cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"text","text":"next","cache_control":{"type":"ephemeral"}}]}"#,
            r#"{"role":"user","content":[{"type":"text","text":"Fix the bug in \"cache_control\" handling."},{"type":"tool_result","tool_use_id":"toolu_1","content":[{"cache_control":{"type":"ephemeral"} , "type":"text","text":"ok"}]},{"type":"text","text":"next"}]}"#,
        ];
        for raw in marked {
            let _: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(message(raw), digest, "{raw}");
        }
        // Anything else still tells messages apart.
        for other in [
            r#"{"role":"user","content":[{"type":"text","text":"Fix the bug in \"cache_control\" handling."},{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"OK"}]},{"type":"text","text":"next"}]}"#,
            r#"{"role":"user","content":[{"type":"text","text":"Fix the bug in \"cache_control\" handling.","cache_controls":{}},{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"ok"}]},{"type":"text","text":"next"}]}"#,
            // A mark given twice is not cut: the message is digested whole.
            r#"{"role":"user","content":[{"type":"text","text":"Fix the bug in \"cache_control\" handling.","cache_control":{},"cache_control":{}},{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"ok"}]},{"type":"text","text":"next"}]}"#,
        ] {
            assert_ne!(message(other), digest, "{other}");
        }
        // A lone mark: the block is left empty, as if it had been written so.
        let lone = r#"{"role":"user","content":[{"cache_control":{"type":"ephemeral"}}]}"#;
        assert_eq!(message(lone), message(r#"{"role":"user","content":[{}]}"#));
        // Text content and messages that are not objects are digested as written.
        for raw in [
            r#"{"role":"user","content":"cache_control"}"#,
            "[1,2]",
            "nonsense",
        ] {
            assert_eq!(message(raw), xxh3_128(raw.as_bytes()));
        }
    }

    #[test]
    fn the_system_prompt_is_digested_as_the_translation_reads_it() {
        let read = |value: Value| system(&RawValue::from_string(compact(&value)).unwrap());
        let first = read(json!([
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328.a1b; cch=00001;"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ]));
        let next = read(json!([
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328.a1b; cch=00002;"},
            {"type": "text", "text": "You are Claude Code."}
        ]));
        assert_eq!(first.as_deref(), Some("You are Claude Code."));
        assert_eq!(first, next);
        assert_eq!(read(json!("You are Claude Code.")), first);
        assert_ne!(read(json!("You are Codex.")), first);
        assert_eq!(read(json!([{"type": "image"}])), None);
    }
}
