//! Stable `prompt_cache_key`s: a UUIDv7 minted the first time a conversation is seen and reused
//! for its later turns, so the backend's prompt cache hits (protocol §2.3).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// How many conversations are remembered; the least recently used is forgotten first.
const CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
pub struct Conversations {
    inner: Mutex<Map>,
}

#[derive(Debug, Default)]
struct Map {
    keys: HashMap<u64, (String, u64)>,
    clock: u64,
}

/// A conversation's identity: who asks, which model, and how the conversation began.
pub fn fingerprint(
    client: usize,
    model: &str,
    instructions: &str,
    first_user: &str,
    client_hint: Option<&str>,
) -> u64 {
    let mut h = DefaultHasher::new();
    (client, model, instructions, first_user, client_hint).hash(&mut h);
    h.finish()
}

impl Conversations {
    /// The key for this conversation, minted on first sight.
    pub fn key_for(&self, fingerprint: u64) -> String {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.clock += 1;
        let now = map.clock;
        if let Some((key, used)) = map.keys.get_mut(&fingerprint) {
            *used = now;
            return key.clone();
        }
        if map.keys.len() >= CAPACITY
            && let Some(oldest) = map
                .keys
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
        {
            map.keys.remove(&oldest);
        }
        let key = uuid::Uuid::now_v7().to_string();
        map.keys.insert(fingerprint, (key.clone(), now));
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_conversation_same_key() {
        let c = Conversations::default();
        let a = c.key_for(fingerprint(0, "gpt-5.5", "sys", "hello", None));
        assert_eq!(
            c.key_for(fingerprint(0, "gpt-5.5", "sys", "hello", None)),
            a
        );
        assert_ne!(
            c.key_for(fingerprint(1, "gpt-5.5", "sys", "hello", None)),
            a,
            "per client key"
        );
        assert_ne!(
            c.key_for(fingerprint(0, "gpt-5.4", "sys", "hello", None)),
            a,
            "per model"
        );
        assert_ne!(
            c.key_for(fingerprint(0, "gpt-5.5", "sys", "hello", Some("x"))),
            a,
            "client's own key"
        );
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 7);
    }
}
