//! The conversation registry: for each conversation the daemon has seen, its session key (the
//! `prompt_cache_key` and session headers, so the backend's prompt cache hits; protocol §2.3)
//! and the account it runs on (prompt cache and encrypted reasoning are account-bound).
//!
//! One map with a least-recently-used bound; every operation is O(1) amortised, so a daemon
//! past its capacity does not scan ten thousand entries under the lock on each new conversation.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

/// How many conversations are remembered; the least recently used is forgotten first.
const CAPACITY: usize = 10_000;
/// Tool calls remembered per conversation (the most recent), and their bytes together.
const MAX_CALLS: usize = 256;
const MAX_CALL_BYTES: usize = 256 << 10;

/// A tool call the backend made in a conversation, exactly as it made it: what a client that
/// keeps neither call ids nor the arguments' text (Ollama's) gets back when it repeats the call,
/// so the repeated history matches the backend's and the turn can go incrementally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl KnownCall {
    fn bytes(&self) -> usize {
        self.id.len() + self.name.len() + self.arguments.len()
    }
}

/// A conversation's identity in the registry (a hash of what identifies it on its surface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConversationId(pub u64);

/// A conversation's identity: who asks, which model, and how the conversation began.
pub fn fingerprint(
    client: usize,
    model: &str,
    instructions: &str,
    first_user: &str,
    client_hint: Option<&str>,
) -> ConversationId {
    let mut h = DefaultHasher::new();
    (client, model, instructions, first_user, client_hint).hash(&mut h);
    ConversationId(h.finish())
}

/// A conversation named by the client itself (a `prompt_cache_key` or session id).
pub fn named(client: usize, name: &str) -> ConversationId {
    let mut h = DefaultHasher::new();
    (client, "named", name).hash(&mut h);
    ConversationId(h.finish())
}

#[derive(Debug, Default)]
pub struct Conversations {
    inner: Mutex<Map>,
}

#[derive(Debug, Default)]
struct Map {
    entries: HashMap<ConversationId, Entry>,
    /// Uses in order, oldest first: `(id, tick)`. An id used again is pushed again; its older
    /// records are stale (their tick is not the entry's) and skipped when they come up.
    order: VecDeque<(ConversationId, u64)>,
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    session: String,
    account: Option<String>,
    used: u64,
    /// The conversation's tool calls, oldest first (bounded).
    calls: VecDeque<KnownCall>,
    /// How many of its history's items it had when it last moved to an account that could not
    /// read their reasoning: reasoning among them is left out from then on.
    moved_at: usize,
}

impl Map {
    fn touch(&mut self, id: ConversationId) -> Option<&mut Entry> {
        self.clock += 1;
        let now = self.clock;
        let entry = self.entries.get_mut(&id)?;
        entry.used = now;
        self.order.push_back((id, now));
        if self.order.len() > 4 * CAPACITY.max(self.entries.len()) {
            self.compact();
        }
        self.entries.get_mut(&id)
    }

    fn insert(&mut self, id: ConversationId, session: String) {
        while self.entries.len() >= CAPACITY {
            let Some((old, tick)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|e| e.used == tick) {
                self.entries.remove(&old);
            }
        }
        self.clock += 1;
        let used = self.clock;
        self.entries.insert(
            id,
            Entry {
                session,
                account: None,
                used,
                calls: VecDeque::new(),
                moved_at: 0,
            },
        );
        self.order.push_back((id, used));
    }

    /// Drops the stale records: one per entry remains, oldest first.
    fn compact(&mut self) {
        let mut live: Vec<(ConversationId, u64)> =
            self.entries.iter().map(|(id, e)| (*id, e.used)).collect();
        live.sort_unstable_by_key(|(_, used)| *used);
        self.order = live.into();
    }
}

impl Conversations {
    fn map(&self) -> std::sync::MutexGuard<'_, Map> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session key of this conversation, minted (a UUIDv7) on first sight.
    pub fn key_for(&self, id: ConversationId) -> String {
        self.open(id, None)
    }

    /// The session key of this conversation: the one it has, else `given` (the client's own
    /// key), else a new UUIDv7.
    pub fn open(&self, id: ConversationId, given: Option<&str>) -> String {
        let mut map = self.map();
        if let Some(entry) = map.touch(id) {
            return entry.session.clone();
        }
        let session = given.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        map.insert(id, session.clone());
        session
    }

    /// The account this conversation last ran on.
    pub fn account(&self, id: ConversationId) -> Option<String> {
        self.map().entries.get(&id).and_then(|e| e.account.clone())
    }

    /// Remembers the account a conversation runs on.
    pub fn bind(&self, id: ConversationId, account: &str) {
        let mut map = self.map();
        if let Some(entry) = map.entries.get_mut(&id)
            && entry.account.as_deref() != Some(account)
        {
            entry.account = Some(account.to_owned());
        }
    }

    /// Remembers tool calls the backend made in this conversation (the oldest go past the
    /// bounds).
    pub fn remember_calls(&self, id: ConversationId, calls: impl IntoIterator<Item = KnownCall>) {
        let mut map = self.map();
        let Some(entry) = map.entries.get_mut(&id) else {
            return;
        };
        for call in calls {
            if call.bytes() > MAX_CALL_BYTES || entry.calls.contains(&call) {
                continue;
            }
            entry.calls.push_back(call);
        }
        let mut bytes: usize = entry.calls.iter().map(KnownCall::bytes).sum();
        while entry.calls.len() > MAX_CALLS || bytes > MAX_CALL_BYTES {
            let Some(old) = entry.calls.pop_front() else {
                break;
            };
            bytes -= old.bytes();
        }
    }

    /// Remembers that the conversation moved, with `items` items in its history, to an account
    /// that cannot read their reasoning.
    pub fn moved(&self, id: ConversationId, items: usize) {
        if let Some(entry) = self.map().entries.get_mut(&id) {
            entry.moved_at = items;
        }
    }

    /// How many of the conversation's first items hold reasoning no account it may run on now
    /// can read (see [`Self::moved`]); 0 when it never moved so.
    pub fn moved_at(&self, id: ConversationId) -> usize {
        self.map().entries.get(&id).map_or(0, |e| e.moved_at)
    }

    /// The tool calls remembered for this conversation, oldest first.
    pub fn known_calls(&self, id: ConversationId) -> Vec<KnownCall> {
        self.map()
            .entries
            .get(&id)
            .map(|e| e.calls.iter().cloned().collect())
            .unwrap_or_default()
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let map = self.map();
        (map.entries.len(), map.order.len())
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
        assert_eq!(
            c.open(named(0, "k"), Some("k")),
            "k",
            "a named one keeps its name"
        );
    }

    #[test]
    fn accounts_are_bound_per_conversation() {
        let c = Conversations::default();
        let one = fingerprint(0, "m", "", "a", None);
        let two = fingerprint(0, "m", "", "b", None);
        c.key_for(one);
        c.key_for(two);
        c.bind(one, "acct-1");
        assert_eq!(c.account(one).as_deref(), Some("acct-1"));
        assert_eq!(c.account(two), None);
        c.bind(one, "acct-2");
        assert_eq!(c.account(one).as_deref(), Some("acct-2"));
    }

    #[test]
    fn tool_calls_are_remembered_per_conversation_within_bounds() {
        let c = Conversations::default();
        let one = fingerprint(0, "m", "", "a", None);
        c.key_for(one);
        let call = |i: usize| KnownCall {
            id: format!("call_{i}"),
            name: "f".into(),
            arguments: format!("{{\"i\": {i}}}"),
        };
        c.remember_calls(one, [call(0), call(1)]);
        c.remember_calls(one, [call(1)]);
        assert_eq!(c.known_calls(one), [call(0), call(1)]);
        assert!(c.known_calls(fingerprint(0, "m", "", "b", None)).is_empty());
        c.remember_calls(one, (2..MAX_CALLS + 10).map(call));
        let known = c.known_calls(one);
        assert_eq!(known.len(), MAX_CALLS);
        assert_eq!(known.last(), Some(&call(MAX_CALLS + 9)), "the newest stay");
        let huge = KnownCall {
            arguments: "x".repeat(MAX_CALL_BYTES),
            ..call(0)
        };
        c.remember_calls(one, [huge]);
        assert_eq!(c.known_calls(one).len(), MAX_CALLS, "too big to keep");
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_order_stays_bounded() {
        let c = Conversations::default();
        let first = ConversationId(u64::MAX);
        let kept = c.key_for(first);
        for i in 0..CAPACITY as u64 * 3 {
            c.key_for(ConversationId(i));
            // The first conversation stays in use, so it is never the oldest.
            if i % 100 == 0 {
                assert_eq!(c.key_for(first), kept);
            }
        }
        let (entries, order) = c.len();
        assert_eq!(entries, CAPACITY);
        assert!(order <= 4 * CAPACITY + 1, "{order}");
        assert_eq!(c.key_for(first), kept, "in use: kept");
        let (entries, _) = c.len();
        assert_eq!(entries, CAPACITY);
        // The oldest ones went.
        assert!(!c.map().entries.contains_key(&ConversationId(0)));
    }
}
