//! What each conversation's last large request was translated into, so the next one — the same
//! history with a few messages more, as coding agents send it on every turn — is not parsed,
//! translated and written again from its first message (issue 22: an incremental turn on a
//! 1 MB history in about a millisecond).
//!
//! A surface keeps, per conversation: a digest of the request's members other than its
//! history, a digest of each history message as the client sent it, its translator's state
//! after the last message, and the Responses body written for it. A request continues the kept
//! one when those members are byte for byte the same and its history starts with the same
//! messages; then only the messages after them are read and translated, and the body is the
//! kept one's items (copied, not written again) followed by theirs. Anything else goes the
//! whole way, as before. The surface decides; this store only keeps and bounds.
//!
//! Bounded in entries, in bytes (the kept bodies are the history's size) and in time.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::models::Catalog;
use crate::upstream::written::Items;

use super::ConversationId;

/// Conversations kept at once.
const CAPACITY: usize = 64;
/// Bytes of kept bodies at once (a body is as large as the history it was written for).
const MAX_BYTES: usize = 64 << 20;
/// A body larger than this is not kept: a model's context holds a few MB of history at most;
/// a larger body is a one-off, and keeping it would keep its memory long after it was sent.
pub const MAX_KEPT: usize = 16 << 20;
/// A conversation not continued for this long is forgotten (an agent's turns come seconds
/// apart; a person's, minutes).
const IDLE: Duration = Duration::from_secs(15 * 60);

/// A large request's translation, kept to continue from.
#[derive(Clone)]
pub struct Kept {
    /// Which surface wrote it (each keeps its own translator state).
    pub surface: &'static str,
    /// The configuration and catalog it was translated with (a reload starts afresh).
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    /// Digest of the request's members other than its history.
    pub members: u128,
    /// Digest of each history message, as the client sent it.
    pub messages: Vec<u128>,
    /// The surface's translator state after the last message.
    pub state: Arc<dyn Any + Send + Sync>,
    /// The input items written for it (shared with the body that went out).
    pub items: Items,
    pub conversation: ConversationId,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("surface", &self.surface)
            .field("messages", &self.messages.len())
            .field("bytes", &self.items.bytes())
            .finish_non_exhaustive()
    }
}

impl Kept {
    fn bytes(&self) -> usize {
        self.items.bytes() + self.messages.len() * 16
    }

    /// Whether it was translated with this configuration and catalog.
    pub fn current(&self, config: &Arc<Config>, catalog: &Arc<Catalog>) -> bool {
        Arc::ptr_eq(&self.config, config) && Arc::ptr_eq(&self.catalog, catalog)
    }
}

#[derive(Debug, Default)]
pub struct Histories {
    inner: Mutex<HashMap<u128, (Kept, Instant)>>,
}

impl Histories {
    /// The translation kept under `key`, if any.
    pub fn get(&self, key: u128) -> Option<Kept> {
        let mut map = self.lock();
        let (kept, used) = map.get_mut(&key)?;
        *used = Instant::now();
        Some(kept.clone())
    }

    /// Keeps `kept` under `key` (replacing what was there), within the bounds: the least
    /// recently used go first. A body larger than the whole budget is not kept.
    pub fn put(&self, key: u128, kept: Kept) {
        if kept.bytes() > MAX_KEPT {
            self.forget(key);
            return;
        }
        let now = Instant::now();
        // The evicted bodies are freed after the lock is let go.
        let mut evicted = Vec::new();
        {
            let mut map = self.lock();
            if let Some(old) = map.insert(key, (kept, now)) {
                evicted.push(old);
            }
            let idle: Vec<u128> = map
                .iter()
                .filter(|(_, (_, used))| now.duration_since(*used) >= IDLE)
                .map(|(k, _)| *k)
                .collect();
            evicted.extend(idle.iter().filter_map(|k| map.remove(k)));
            let mut total: usize = map.values().map(|(k, _)| k.bytes()).sum();
            while map.len() > CAPACITY || total > MAX_BYTES {
                let Some(oldest) = map
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                if let Some(old) = map.remove(&oldest) {
                    total -= old.0.bytes();
                    evicted.push(old);
                }
            }
        }
        drop(evicted);
    }

    /// Forgets the translation under `key` (its request went another way).
    pub fn forget(&self, key: u128) {
        let old = self.lock().remove(&key);
        drop(old);
    }

    /// Conversations kept, and their bytes.
    pub fn size(&self) -> (usize, usize) {
        let map = self.lock();
        (map.len(), map.values().map(|(k, _)| k.bytes()).sum())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, (Kept, Instant)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
