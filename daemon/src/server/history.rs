//! A large request read in outline: its members, and its history's messages left as the
//! client wrote them — each digested, so a request continuing the one kept for its
//! conversation (see [`crate::engine::histories`]) is recognised before its history is parsed,
//! and only the messages after the kept ones are read.

use std::borrow::Cow;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use std::sync::Arc;

use crate::app::AppState;
use crate::config::Config;
use crate::engine::ConversationId;
use crate::engine::histories::Kept;
use crate::models::Catalog;
use crate::upstream::WireBody;

/// Bodies from this size are read in outline and their translation kept: below it, reading
/// the body whole costs less than the bookkeeping saves.
pub const KEEP_FROM: usize = 64 << 10;

/// A request body's members, its history apart.
#[derive(Debug)]
pub struct Outline<'a> {
    /// The history's name (`messages`).
    name: &'static str,
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The history's messages, as the client wrote them.
    pub history: Vec<&'a RawValue>,
    /// Digest of the members other than the history.
    members_digest: u128,
    /// Digest of each message.
    digests: Vec<u128>,
}

/// How a surface's requests are digested: by default, each member and message as the client
/// wrote it. A surface whose clients rewrite, turn after turn, parts its translation reads
/// past (Claude Code's per-request billing line, its moving cache marks) digests them without
/// those parts, so its conversations are still recognised as continued; whatever two requests
/// with equal digests differ in must not change their translation.
pub trait Reading {
    /// Adds a member other than the history to the members' digest.
    fn member(&self, name: &str, raw: &RawValue, digest: &mut Xxh3) {
        name.hash(digest);
        raw.get().hash(digest);
    }

    /// A history message's digest.
    fn message(&self, raw: &RawValue) -> u128 {
        xxh3_128(raw.get().as_bytes())
    }
}

/// Members and messages digested as the client wrote them.
pub struct AsWritten;

impl Reading for AsWritten {}

/// Reads `body` in outline, its history under `history` (an array); `None` when the body is
/// not a JSON object with such an array (the whole reading then says what is wrong).
pub fn outline<'a>(
    body: &'a [u8],
    history: &'static str,
    reading: &impl Reading,
) -> Option<Outline<'a>> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let Split {
        members, messages, ..
    } = serde::de::DeserializeSeed::deserialize(
        Split {
            history,
            members: Vec::new(),
            messages: None,
        },
        &mut json,
    )
    .ok()?;
    json.end().ok()?;
    let history_messages = messages?;
    let mut h = Xxh3::new();
    for (name, raw) in &members {
        reading.member(name, raw, &mut h);
    }
    let digests = history_messages
        .iter()
        .map(|m| reading.message(m))
        .collect();
    Some(Outline {
        name: history,
        members,
        history: history_messages,
        members_digest: h.digest128(),
        digests,
    })
}

/// A body's members in order, their values left as they are, and its history's messages,
/// read in the same pass (the history's bytes are read once, not once as a member and again
/// as an array).
struct Split<'a> {
    history: &'static str,
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
    messages: Option<Vec<&'a RawValue>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Split<'de> {
    type Value = Self;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Split<'de> {
    type Value = Self;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<Self, A::Error> {
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            if name != self.history {
                self.members.push((name, map.next_value()?));
            } else if self.messages.is_some() {
                // A name given twice is left to the whole reading (serde takes the last, or
                // refuses).
                return Err(serde::de::Error::custom("the history is given twice"));
            } else {
                self.messages = Some(map.next_value()?);
            }
        }
        Ok(self)
    }
}

impl Outline<'_> {
    /// The request's members (the history empty) read as `T`.
    fn members_as<T: DeserializeOwned>(&self) -> Option<T> {
        let history = self.name;
        let size: usize = self
            .members
            .iter()
            .map(|(n, raw)| n.len() + raw.get().len() + 4)
            .sum();
        let mut json = String::with_capacity(size + history.len() + 8);
        json.push('{');
        for (name, raw) in &self.members {
            json.push_str(&serde_json::to_string(name).ok()?);
            json.push(':');
            json.push_str(raw.get());
            json.push(',');
        }
        json.push_str(&serde_json::to_string(history).ok()?);
        json.push_str(":[]}");
        serde_json::from_str(&json).ok()
    }

    /// The messages from `from` on, read as `T`; `None` if one does not read.
    fn messages_as<T: DeserializeOwned>(&self, from: usize) -> Option<Vec<T>> {
        self.history
            .get(from..)?
            .iter()
            .map(|m| serde_json::from_str(m.get()).ok())
            .collect()
    }

    /// The key a conversation's kept translation is found under: who asks, on which
    /// surface (and in which of the client's sessions, where it names them), with which
    /// members, beginning with which message.
    pub fn key(&self, client: usize, surface: &str, session: &str) -> u128 {
        let mut h = Xxh3::new();
        (
            client,
            surface,
            session,
            self.members_digest,
            self.digests.first(),
        )
            .hash(&mut h);
        h.digest128()
    }

    /// The translation kept for this request's conversation, when the request continues it:
    /// the same members, the same configuration, and its history beginning with the kept
    /// one's messages and going on (a request adding nothing — a retry — is read whole: its
    /// last message may mean something as the last, an Anthropic prefill).
    fn continued(&self, state: &AppState, key: u128, surface: &str) -> Option<Kept> {
        let kept = state.histories().get(key)?;
        let continues = kept.surface == surface
            && kept.current(&state.config(), &state.catalog())
            && kept.members == self.members_digest
            && self.digests.len() > kept.messages.len()
            && self.digests.starts_with(&kept.messages);
        continues.then_some(kept)
    }

    /// The request read from where the translation kept for its conversation leaves off (from
    /// its first message if nothing is kept, or nothing it continues): its members as `R`,
    /// with the messages to translate put in by `with`, and the surface's translator state
    /// `S` to translate them from. `None` when the request does not read so (the whole reading
    /// then says what is wrong, if anything).
    pub fn resume<R, M, S>(
        self,
        state: &AppState,
        key: u128,
        surface: &'static str,
        with: impl FnOnce(&mut R, Vec<M>),
    ) -> Option<Resumed<R, S>>
    where
        R: DeserializeOwned,
        M: DeserializeOwned,
        S: Clone + Default + 'static,
    {
        let kept = self
            .continued(state, key, surface)
            .filter(|kept| !kept.messages.is_empty())
            .and_then(|kept| {
                let translator = kept.state.downcast_ref::<S>()?.clone();
                Some((kept, translator))
            });
        let from = kept.as_ref().map_or(0, |(kept, _)| kept.messages.len());
        if from > 0 {
            tracing::debug!(
                "a large request continues its conversation's last: {from} of its {} messages were translated before",
                self.history.len()
            );
        }
        let mut request: R = self.members_as()?;
        with(&mut request, self.messages_as(from)?);
        crate::metrics::metrics().large_request(surface, from > 0);
        let (kept, translator) = match kept {
            Some((kept, translator)) => (Some(kept), translator),
            None => (None, S::default()),
        };
        Some(Resumed {
            request,
            translator,
            kept,
            keeping: Keeping {
                key,
                surface,
                members: self.members_digest,
                digests: self.digests,
            },
        })
    }
}

/// A large request read from where its conversation's kept translation leaves off.
pub struct Resumed<R, S> {
    /// The request, its history from its first new message on (all of it when `kept` is
    /// `None`).
    pub request: R,
    /// The translator's state after the messages translated before.
    pub translator: S,
    /// The kept translation it continues, if any.
    pub kept: Option<Kept>,
    /// Where its own translation is kept, for the next turn.
    pub keeping: Keeping,
}

/// Where a large request's translation is kept, and what the next request must match.
pub struct Keeping {
    key: u128,
    surface: &'static str,
    members: u128,
    digests: Vec<u128>,
}

impl Keeping {
    /// Keeps the translation written into `wire` (with its translator's state after the
    /// request's last message, and what it was translated with) for the conversation's next
    /// turn; a body not written in parts is not kept.
    pub fn keep<S: Send + Sync + 'static>(
        self,
        state: &AppState,
        (config, catalog): (Arc<Config>, Arc<Catalog>),
        translator: S,
        wire: &WireBody,
        conversation: ConversationId,
    ) {
        let Some(written) = wire.written() else {
            return;
        };
        state.histories().put(
            self.key,
            Kept {
                surface: self.surface,
                config,
                catalog,
                members: self.members,
                messages: self.digests,
                state: Arc::new(translator),
                items: written.items().clone(),
                conversation,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outline_reads_the_members_and_the_history_apart_in_one_pass() {
        let body = br#"{"model":"gpt-5.5", "messages" : [ {"role":"user","content":"a\"b"} ,{"role":"assistant","content":[]}], "stream":true}"#;
        let read = outline(body, "messages", &AsWritten).unwrap();
        let members: Vec<(&str, &str)> = read
            .members
            .iter()
            .map(|(name, raw)| (name.as_ref(), raw.get()))
            .collect();
        assert_eq!(members, [("model", r#""gpt-5.5""#), ("stream", "true")]);
        let messages: Vec<&str> = read.history.iter().map(|m| m.get()).collect();
        assert_eq!(
            messages,
            [
                r#"{"role":"user","content":"a\"b"}"#,
                r#"{"role":"assistant","content":[]}"#
            ]
        );
        let digests: Vec<u128> = messages.iter().map(|m| xxh3_128(m.as_bytes())).collect();
        assert_eq!(read.digests, digests);
        // The members' digest leaves the history out.
        let without = outline(
            br#"{"model":"gpt-5.5","stream":true,"messages":[]}"#,
            "messages",
            &AsWritten,
        )
        .unwrap();
        assert_eq!(without.members_digest, read.members_digest);
        assert!(without.history.is_empty());
    }

    #[test]
    fn a_body_the_outline_cannot_read_is_left_to_the_whole_reading() {
        for body in [
            &br#"{"model":"m"}"#[..],
            br#"{"messages":{}}"#,
            br#"{"messages":"hi"}"#,
            br#"{"messages":[],"messages":[]}"#,
            br#"{"messages":[1,]}"#,
            br#"{"messages":[]} x"#,
            br#"[{"messages":[]}]"#,
            br#"{"messages":[]"#,
            b"",
        ] {
            assert!(
                outline(body, "messages", &AsWritten).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Whitespace after the object is no harm.
        assert!(outline(b"{\"messages\":[]}\n", "messages", &AsWritten).is_some());
    }
}
