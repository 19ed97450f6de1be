//! The memory all request bodies in flight may take together (`server.request_memory_mb`),
//! held by the application state and drawn on by the server's body reader
//! (`server::body`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Semaphore;

/// The budget, counted in KiB (a semaphore's permits are `u32`).
#[derive(Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_units: u32,
    buffers: Arc<Buffers>,
}

impl BodyBudget {
    pub fn new(megabytes: u64) -> Self {
        let total = u32::try_from(megabytes.saturating_mul(1024)).unwrap_or(u32::MAX);
        Self {
            units: Arc::new(Semaphore::new(total as usize)),
            total_units: total,
            buffers: Arc::default(),
        }
    }

    /// A buffer for a body of `length` bytes (a large one's kept from an earlier body).
    pub fn buffer(&self, length: usize) -> Vec<u8> {
        self.buffers.take(length)
    }

    /// The body read into `buffer`; a large buffer comes back for the next body once the
    /// body is dropped.
    pub fn freeze(&self, buffer: Vec<u8>) -> Bytes {
        Buffers::freeze(&self.buffers, buffer)
    }

    /// The KiB units, to wait for a body's share.
    pub fn units(&self) -> &Arc<Semaphore> {
        &self.units
    }

    pub fn total_units(&self) -> u32 {
        self.total_units
    }

    pub fn megabytes(&self) -> u32 {
        self.total_units / 1024
    }
}

/// Buffers of large bodies, kept for the next large body. Memory from 256 KiB up is mapped
/// for each allocation and unmapped when freed (see `service::memory`), so every byte of a
/// fresh megabyte-sized buffer costs a page fault: measured, a third of the CPU of a
/// conversation's turn on a 1 MB history. A reused buffer costs none. At most [`KEPT`] are
/// kept, each at most [`KEEP_UP_TO`]: what stays resident once large bodies stop is bounded.
#[derive(Debug, Default)]
struct Buffers {
    kept: Mutex<Vec<Vec<u8>>>,
}

/// Smaller bodies come from malloc's arenas, already reused.
const KEEP_FROM: usize = 256 << 10;
/// Larger buffers are given back to the system (a one-off).
const KEEP_UP_TO: usize = 8 << 20;
const KEPT: usize = 2;

impl Buffers {
    fn take(&self, length: usize) -> Vec<u8> {
        if (KEEP_FROM..=KEEP_UP_TO).contains(&length) {
            let mut kept = self.lock();
            // The smallest that holds it.
            let fits = kept
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= length)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            if let Some(i) = fits {
                return kept.swap_remove(i);
            }
            // Room to grow: a conversation's next body is a little larger than this one, and
            // pages not written to cost nothing.
            return Vec::with_capacity((length + length / 4).min(KEEP_UP_TO));
        }
        Vec::with_capacity(length)
    }

    fn freeze(this: &Arc<Self>, buffer: Vec<u8>) -> Bytes {
        if !(KEEP_FROM..=KEEP_UP_TO).contains(&buffer.capacity()) {
            return Bytes::from(buffer);
        }
        Bytes::from_owner(Lent {
            buffer,
            home: Arc::clone(this),
        })
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        let mut kept = self.lock();
        if kept.len() < KEPT {
            kept.push(buffer);
        } else if let Some(smallest) = kept.iter_mut().min_by_key(|b| b.capacity())
            && smallest.capacity() < buffer.capacity()
        {
            // The larger is worth more; the smaller is freed after the lock.
            std::mem::swap(smallest, &mut buffer);
            drop(kept);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A kept buffer lent to a body.
#[derive(Debug)]
struct Lent {
    buffer: Vec<u8>,
    home: Arc<Buffers>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_is_lent_and_comes_back_and_small_or_huge_ones_do_not() {
        let budget = BodyBudget::new(64);
        let mut buffer = budget.buffer(1 << 20);
        buffer.extend_from_slice(&[7; 1000]);
        let at = buffer.as_ptr();
        let body = budget.freeze(buffer);
        assert_eq!(&body[..], &[7; 1000][..]);
        let copy = body.clone();
        drop(body);
        assert_eq!(budget.buffers.lock().len(), 0, "still lent");
        drop(copy);
        // A next body a little larger fits it too.
        let again = budget.buffer((1 << 20) + 4096);
        assert_eq!(again.as_ptr(), at, "the same buffer, reused");
        assert!(again.is_empty());
        drop(budget.freeze(again));
        // A buffer too small to keep, or too large, is not kept.
        drop(budget.freeze(Vec::with_capacity(1024)));
        drop(budget.freeze(Vec::with_capacity(KEEP_UP_TO + 1)));
        assert_eq!(budget.buffers.lock().len(), 1);
        // At most KEPT, the largest.
        for size in [300 << 10, 400 << 10, 2 << 20] {
            drop(budget.freeze(Vec::with_capacity(size)));
        }
        let kept: Vec<usize> = budget.buffers.lock().iter().map(Vec::capacity).collect();
        assert_eq!(kept.len(), KEPT);
        assert!(
            kept.contains(&(2 << 20)) && kept.iter().all(|&c| c > 1 << 20),
            "{kept:?}"
        );
    }
}
