//! The responses the daemon served through `/v1/responses`, kept in memory so that
//! `previous_response_id`, `GET /v1/responses/{id}` and `item_reference` work although the
//! backend keeps nothing (`store: false`). Bounded in bytes and in time; the oldest go first.
//!
//! Each response keeps only its own input items (those its request added) and its output, with
//! the id of the response it continued: a conversation of n turns takes memory in proportion to
//! its length, not n times it. Its full history is the chain, walked back.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

use super::ConversationId;

/// One kept response.
#[derive(Debug)]
pub struct StoredResponse {
    pub id: String,
    /// When it was made (unix seconds).
    pub created_at: i64,
    /// The account that made it (its encrypted reasoning is bound to it).
    pub account: String,
    pub conversation: ConversationId,
    pub session: String,
    /// The response it continued.
    pub previous: Option<String>,
    /// The items its request added.
    pub input: Vec<Box<RawValue>>,
    /// Its output items.
    pub output: Vec<Box<RawValue>>,
    /// The response object as the client was given it.
    pub response: Box<RawValue>,
}

impl StoredResponse {
    fn bytes(&self) -> usize {
        let items: usize = self
            .input
            .iter()
            .chain(&self.output)
            .map(|item| item.get().len() + 64)
            .sum();
        items + self.response.get().len() + self.id.len() + self.session.len() + 256
    }
}

/// Why a chain could not be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// This response is not (or no longer) kept.
    Response(String),
}

#[derive(Debug)]
pub struct ResponseStore {
    inner: Mutex<Inner>,
    max_bytes: usize,
    ttl_seconds: i64,
}

#[derive(Debug, Default)]
struct Inner {
    responses: HashMap<String, Arc<StoredResponse>>,
    /// Oldest first (they expire in this order too).
    order: VecDeque<String>,
    /// Item id → the response that holds it.
    items: HashMap<String, String>,
    bytes: usize,
}

/// Most kept responses a chain is walked through (a guard against a cycle or a runaway chain).
const MAX_CHAIN: usize = 10_000;

impl ResponseStore {
    pub fn new(max_bytes: usize, ttl_seconds: i64) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_bytes,
            ttl_seconds,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether responses are kept at all (`store_mb = 0` keeps none).
    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// Keeps a response, forgetting the oldest ones beyond the byte bound.
    pub fn put(&self, response: StoredResponse, now: i64) {
        if !self.enabled() {
            return;
        }
        let size = response.bytes();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        inner.expire(now, self.ttl_seconds);
        while inner.bytes + size > self.max_bytes && inner.evict_oldest() {}
        for id in item_ids(&response.input).chain(item_ids(&response.output)) {
            inner.items.insert(id, response.id.clone());
        }
        if let Some(old) = inner.responses.remove(&response.id) {
            inner.bytes -= old.bytes();
        }
        inner.bytes += size;
        inner.order.push_back(response.id.clone());
        inner
            .responses
            .insert(response.id.clone(), Arc::new(response));
    }

    pub fn get(&self, id: &str, now: i64) -> Option<Arc<StoredResponse>> {
        let mut inner = self.lock();
        inner.expire(now, self.ttl_seconds);
        inner.responses.get(id).cloned()
    }

    /// Forgets a response; false if it was not kept.
    pub fn delete(&self, id: &str) -> bool {
        let mut inner = self.lock();
        inner.forget(id)
    }

    /// The whole conversation up to and including response `id`: every input and output item
    /// of its chain, oldest first.
    pub fn history(&self, id: &str, now: i64) -> Result<Vec<Box<RawValue>>, Missing> {
        match self.partial_history(id, now) {
            (items, None) => Ok(items),
            (_, Some(missing)) => Err(Missing::Response(missing)),
        }
    }

    /// As much of [`Self::history`] as this store holds: the items from the first response of
    /// the chain it has, and the id of the one before it that it does not (a WebSocket
    /// connection's chain may begin with a response of the daemon's store).
    pub fn partial_history(&self, id: &str, now: i64) -> (Vec<Box<RawValue>>, Option<String>) {
        let mut chain = Vec::new();
        let mut missing = None;
        {
            let mut inner = self.lock();
            inner.expire(now, self.ttl_seconds);
            let mut next = Some(id.to_owned());
            while let Some(at) = next.take() {
                let Some(response) = inner.responses.get(&at).cloned() else {
                    missing = Some(at);
                    break;
                };
                next = response.previous.clone();
                chain.push(response);
                if chain.len() > MAX_CHAIN {
                    break;
                }
            }
        }
        // Copied outside the lock.
        let mut items = Vec::new();
        for response in chain.iter().rev() {
            items.extend(response.input.iter().cloned());
            items.extend(response.output.iter().cloned());
        }
        (items, missing)
    }

    /// An item of a kept response, by its id.
    pub fn item(&self, item_id: &str, now: i64) -> Option<Box<RawValue>> {
        let mut inner = self.lock();
        inner.expire(now, self.ttl_seconds);
        let response = inner.responses.get(inner.items.get(item_id)?)?;
        response
            .input
            .iter()
            .chain(&response.output)
            .find(|item| item_id_of(item).as_deref() == Some(item_id))
            .cloned()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl Inner {
    fn expire(&mut self, now: i64, ttl: i64) {
        while let Some(id) = self.order.front() {
            match self.responses.get(id) {
                Some(r) if r.created_at + ttl > now => break,
                _ => {
                    let id = id.clone();
                    self.order.pop_front();
                    self.forget(&id);
                }
            }
        }
    }

    fn evict_oldest(&mut self) -> bool {
        match self.order.pop_front() {
            Some(id) => {
                self.forget(&id);
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, id: &str) -> bool {
        let Some(response) = self.responses.remove(id) else {
            return false;
        };
        self.bytes -= response.bytes();
        for item in item_ids(&response.input).chain(item_ids(&response.output)) {
            if self.items.get(&item).is_some_and(|owner| owner == id) {
                self.items.remove(&item);
            }
        }
        // Its place in `order` goes when it reaches the front.
        true
    }
}

fn item_ids(items: &[Box<RawValue>]) -> impl Iterator<Item = String> + '_ {
    items.iter().filter_map(|item| item_id_of(item))
}

/// An item's `id`, if it has one.
pub fn item_id_of(item: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<String>,
    }
    serde_json::from_str::<Id>(item.get()).ok()?.id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::raw::raw;

    fn response(id: &str, previous: Option<&str>, created_at: i64, text: &str) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            created_at,
            account: "acct".into(),
            conversation: ConversationId(1),
            session: "s".into(),
            previous: previous.map(str::to_owned),
            input: vec![raw(&format!(
                r#"{{"type":"message","role":"user","content":"{text}"}}"#
            ))],
            output: vec![raw(&format!(
                r#"{{"type":"message","id":"msg_{id}","role":"assistant","content":[]}}"#
            ))],
            response: raw(&format!(r#"{{"id":"{id}"}}"#)),
        }
    }

    #[test]
    fn a_chain_gives_the_whole_history_in_order() {
        let store = ResponseStore::new(1 << 20, 3600);
        store.put(response("r1", None, 0, "one"), 0);
        store.put(response("r2", Some("r1"), 1, "two"), 1);
        let history = store.history("r2", 2).unwrap();
        let texts: Vec<&str> = history.iter().map(|i| i.get()).collect();
        assert_eq!(texts.len(), 4);
        assert!(texts[0].contains("one") && texts[1].contains("msg_r1"));
        assert!(texts[2].contains("two") && texts[3].contains("msg_r2"));
        assert!(store.item("msg_r1", 2).unwrap().get().contains("assistant"));
        // A chain whose start is elsewhere: what is here, and where it stopped.
        let other = ResponseStore::new(1 << 20, 3600);
        other.put(response("r3", Some("r2"), 2, "three"), 2);
        let (items, missing) = other.partial_history("r3", 3);
        assert_eq!((items.len(), missing.as_deref()), (2, Some("r2")));
        assert_eq!(
            store.history("nope", 2).unwrap_err(),
            Missing::Response("nope".into())
        );
    }

    #[test]
    fn the_ttl_and_the_byte_bound_forget_the_oldest() {
        let one = response("r1", None, 0, "x").bytes();
        let store = ResponseStore::new(one * 3, 100);
        for (i, id) in ["r1", "r2", "r3", "r4"].iter().enumerate() {
            store.put(response(id, None, i as i64, "x"), i as i64);
        }
        assert!(
            store.get("r1", 5).is_none(),
            "over the bound: the oldest went"
        );
        assert!(store.get("r2", 5).is_some());
        assert!(store.bytes() <= one * 3);
        // r2 was made at 1: at 101 it is gone, r4 (made at 3) is still there.
        assert!(store.get("r2", 101).is_none());
        assert!(store.get("r4", 101).is_some());
        assert!(
            store.item("msg_r2", 101).is_none(),
            "its items went with it"
        );
        // A chain with a forgotten link cannot be followed.
        store.put(response("r5", Some("r2"), 101, "y"), 101);
        assert_eq!(
            store.history("r5", 101).unwrap_err(),
            Missing::Response("r2".into())
        );
        assert!(store.delete("r5"));
        assert!(!store.delete("r5"));
        let none = ResponseStore::new(0, 100);
        none.put(response("r1", None, 0, "x"), 0);
        assert!(none.get("r1", 0).is_none());
    }
}
