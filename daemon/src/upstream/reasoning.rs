//! The reasoning of each conversation's answers, kept to be put back where a client leaves it
//! out (Chat Completions and Messages clients send no reasoning back): per conversation, only
//! for the account that made it, bounded in answers and bytes. Filled by socket and HTTP turns
//! alike; read when a turn goes out whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::incremental::Kept;

/// Reasoning kept for a conversation, with the account that made it.
struct KeptFor {
    account: String,
    kept: Arc<Vec<Kept>>,
    bytes: usize,
}

/// What the store holds, under its lock.
#[derive(Default)]
struct Store {
    by_conversation: HashMap<String, KeptFor>,
    /// Conversations, least recently kept first.
    order: std::collections::VecDeque<String>,
    bytes: usize,
}

/// Answers whose reasoning is kept per conversation.
const KEPT_PER_CONVERSATION: usize = 256;
/// Bytes of reasoning kept in all; the conversations least recently kept go first.
const KEPT_BYTES: usize = 32 << 20;

/// The store: one per daemon, shared by the socket pool and HTTP turns.
#[derive(Default)]
pub struct KeptReasoning {
    inner: Mutex<Store>,
}

impl std::fmt::Debug for KeptReasoning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptReasoning").finish_non_exhaustive()
    }
}

impl KeptReasoning {
    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a completed turn's reasoning for the conversation (on `account`'s behalf only:
    /// a conversation that moved to another account starts afresh).
    pub fn keep(&self, account: &str, conversation: &str, new: Vec<Kept>) {
        if new.is_empty() {
            return;
        }
        let size = |k: &Kept| k.reasoning.iter().map(String::len).sum::<usize>();
        let mut guard = self.lock();
        let kept = &mut *guard;
        let entry = kept
            .by_conversation
            .entry(conversation.to_owned())
            .or_insert_with(|| KeptFor {
                account: account.to_owned(),
                kept: Arc::default(),
                bytes: 0,
            });
        if entry.account != account {
            kept.bytes -= entry.bytes;
            *entry = KeptFor {
                account: account.to_owned(),
                kept: Arc::default(),
                bytes: 0,
            };
        }
        let list = Arc::make_mut(&mut entry.kept);
        for item in new {
            entry.bytes += size(&item);
            kept.bytes += size(&item);
            list.push(item);
        }
        while list.len() > KEPT_PER_CONVERSATION {
            let gone = list.remove(0);
            entry.bytes -= size(&gone);
            kept.bytes -= size(&gone);
        }
        kept.order.retain(|c| c != conversation);
        kept.order.push_back(conversation.to_owned());
        while kept.bytes > KEPT_BYTES {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            if let Some(gone) = kept.by_conversation.remove(&oldest) {
                kept.bytes -= gone.bytes;
            }
        }
    }

    /// The reasoning kept for a conversation on `account`; a conversation that moved to
    /// another account has its reasoning dropped (it is never sent to another account).
    pub fn kept(&self, account: &str, conversation: &str) -> Option<Arc<Vec<Kept>>> {
        let mut guard = self.lock();
        let kept = &mut *guard;
        let entry = kept.by_conversation.get(conversation)?;
        if entry.account == account {
            return Some(entry.kept.clone());
        }
        if let Some(gone) = kept.by_conversation.remove(conversation) {
            kept.bytes -= gone.bytes;
        }
        kept.order.retain(|c| c != conversation);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::incremental::item_key;
    use super::*;

    fn kept(n: usize, bytes: usize) -> Kept {
        Kept {
            before: item_key(&format!(
                r#"{{"type":"message","role":"assistant","content":"answer {n}"}}"#
            )),
            reasoning: vec!["r".repeat(bytes)],
        }
    }

    #[test]
    fn reasoning_stays_with_its_account_and_within_bounds() {
        let store = KeptReasoning::default();
        store.keep("acct-a", "conv-1", vec![kept(0, 10), kept(1, 10)]);
        assert_eq!(store.kept("acct-a", "conv-1").unwrap().len(), 2);
        assert!(store.kept("acct-a", "conv-2").is_none());
        // Asked for on another account: none, and the conversation's reasoning is dropped.
        assert!(store.kept("acct-b", "conv-1").is_none());
        assert!(store.kept("acct-a", "conv-1").is_none());
        // Kept on another account: the earlier account's is replaced.
        store.keep("acct-a", "conv-1", vec![kept(2, 10)]);
        store.keep("acct-b", "conv-1", vec![kept(3, 10)]);
        assert_eq!(store.kept("acct-b", "conv-1").unwrap().len(), 1);
        // At most KEPT_PER_CONVERSATION answers, the oldest going first.
        store.keep(
            "acct-b",
            "conv-1",
            (0..KEPT_PER_CONVERSATION + 5).map(|n| kept(n, 1)).collect(),
        );
        let list = store.kept("acct-b", "conv-1").unwrap();
        assert_eq!(list.len(), KEPT_PER_CONVERSATION);
        assert_eq!(list[0].before, kept(5, 1).before);
        // Over KEPT_BYTES in all, the least recently kept conversations go.
        store.keep("acct-a", "big-1", vec![kept(0, KEPT_BYTES / 2)]);
        store.keep("acct-a", "big-2", vec![kept(0, KEPT_BYTES / 2 + 1)]);
        assert!(store.kept("acct-b", "conv-1").is_none());
        assert!(store.kept("acct-a", "big-1").is_none());
        assert!(store.kept("acct-a", "big-2").is_some());
        assert!(store.lock().bytes <= KEPT_BYTES);
        // Nothing to keep changes nothing.
        store.keep("acct-a", "conv-9", Vec::new());
        assert!(store.kept("acct-a", "conv-9").is_none());
    }
}
