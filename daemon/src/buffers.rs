//! Large buffers kept for the next large request. Memory from 256 KiB up is mapped for each
//! allocation and unmapped when freed (see `service::memory`), so every page of a fresh
//! megabyte-sized buffer costs a page fault when first written: measured, a third of the CPU
//! of a conversation's turn on a 1 MB history. A reused buffer costs none.
//!
//! What stays resident is bounded: at most [`KEPT`] buffers per pool, each at most
//! [`KEEP_UP_TO`], and a buffer nobody took for [`RELEASE_AFTER`] is freed (once large
//! requests stop, the daemon shrinks back).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Smaller buffers come from malloc's arenas, already reused.
pub const KEEP_FROM: usize = 256 << 10;
/// Larger buffers are given back to the system (a one-off).
pub const KEEP_UP_TO: usize = 8 << 20;
/// Buffers kept at once, per pool.
pub const KEPT: usize = 2;
/// A kept buffer not taken for this long is freed.
pub const RELEASE_AFTER: Duration = Duration::from_secs(60);

/// A pool of large buffers (one per use: request bodies, socket frames).
#[derive(Debug, Default)]
pub struct LargeBuffers {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each buffer (empty, its capacity kept) with when it was given back.
    kept: Vec<(Vec<u8>, Instant)>,
    /// A timer is set to free what waits too long.
    release_pending: bool,
}

impl LargeBuffers {
    /// An empty buffer with room for `length` bytes: a kept one when the length is large.
    pub fn take(&self, length: usize) -> Vec<u8> {
        if !(KEEP_FROM..=KEEP_UP_TO).contains(&length) {
            return Vec::with_capacity(length);
        }
        let mut inner = self.lock();
        // The smallest that holds it.
        let fits = inner
            .kept
            .iter()
            .enumerate()
            .filter(|(_, (b, _))| b.capacity() >= length)
            .min_by_key(|(_, (b, _))| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = fits {
            return inner.kept.swap_remove(i).0;
        }
        drop(inner);
        // Room to grow: a conversation's next request is a little larger than this one, and
        // pages not written to cost nothing.
        Vec::with_capacity((length + length / 4).min(KEEP_UP_TO))
    }

    /// `buffer`'s bytes, shared; a large buffer comes back to the pool once every copy of
    /// them is dropped.
    pub fn lend(this: &Arc<Self>, buffer: Vec<u8>) -> Bytes {
        if !(KEEP_FROM..=KEEP_UP_TO).contains(&buffer.capacity()) {
            return Bytes::from(buffer);
        }
        Bytes::from_owner(Lent {
            buffer,
            home: Arc::downgrade(this),
        })
    }

    /// Keeps `buffer` (when it is large and worth more than one kept).
    pub fn give_back(this: &Arc<Self>, buffer: Vec<u8>) {
        if this.keep(buffer, Instant::now()) {
            Self::release_later(this);
        }
    }

    /// Keeps `buffer`, given back `now`; true when a timer is to be set to free it later.
    fn keep(&self, mut buffer: Vec<u8>, now: Instant) -> bool {
        if !(KEEP_FROM..=KEEP_UP_TO).contains(&buffer.capacity()) {
            return false;
        }
        buffer.clear();
        let mut inner = self.lock();
        // What is not kept, freed after the lock.
        let mut freed = None;
        if inner.kept.len() < KEPT {
            inner.kept.push((buffer, now));
        } else if let Some(smallest) = inner.kept.iter_mut().min_by_key(|(b, _)| b.capacity())
            && smallest.0.capacity() < buffer.capacity()
        {
            // The larger is worth more.
            freed = Some(std::mem::replace(smallest, (buffer, now)));
        } else {
            freed = Some((buffer, now));
        }
        let set_timer = !inner.release_pending;
        inner.release_pending = true;
        drop(inner);
        drop(freed);
        set_timer
    }

    /// Frees the buffers not taken since `before`; true when some are still kept.
    fn release_older(&self, before: Instant) -> bool {
        let mut inner = self.lock();
        let (old, young): (Vec<_>, Vec<_>) = inner.kept.drain(..).partition(|(_, at)| *at < before);
        inner.kept = young;
        let left = !inner.kept.is_empty();
        inner.release_pending = left;
        drop(inner);
        drop(old);
        left
    }

    /// Frees what nobody takes, from a timer (none outside a runtime: a test's pool).
    fn release_later(this: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            this.lock().release_pending = false;
            return;
        };
        let pool = Arc::downgrade(this);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(RELEASE_AFTER).await;
                let Some(pool) = pool.upgrade() else { return };
                // A buffer given back RELEASE_AFTER ago or more goes; the rest wait again.
                let before = Instant::now()
                    .checked_sub(RELEASE_AFTER)
                    .unwrap_or_else(Instant::now);
                if !pool.release_older(before) {
                    return;
                }
            }
        });
    }

    /// The capacity of each buffer kept.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> Vec<usize> {
        self.lock().kept.iter().map(|(b, _)| b.capacity()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A kept buffer lent out as [`Bytes`].
#[derive(Debug)]
struct Lent {
    buffer: Vec<u8>,
    home: Weak<LargeBuffers>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            LargeBuffers::give_back(&home, std::mem::take(&mut self.buffer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_is_lent_and_comes_back_and_small_or_huge_ones_do_not() {
        let pool = Arc::new(LargeBuffers::default());
        let mut buffer = pool.take(1 << 20);
        buffer.extend_from_slice(&[7; 1000]);
        let at = buffer.as_ptr();
        let body = LargeBuffers::lend(&pool, buffer);
        assert_eq!(&body[..], &[7; 1000][..]);
        let copy = body.clone();
        drop(body);
        assert!(pool.kept().is_empty(), "still lent");
        drop(copy);
        // A next request a little larger fits it too.
        let again = pool.take((1 << 20) + 4096);
        assert_eq!(again.as_ptr(), at, "the same buffer, reused");
        assert!(again.is_empty());
        drop(LargeBuffers::lend(&pool, again));
        // A buffer too small to keep, or too large, is not kept.
        drop(LargeBuffers::lend(&pool, Vec::with_capacity(1024)));
        drop(LargeBuffers::lend(
            &pool,
            Vec::with_capacity(KEEP_UP_TO + 1),
        ));
        assert_eq!(pool.kept().len(), 1);
        // At most KEPT, the largest.
        for size in [300 << 10, 400 << 10, 2 << 20] {
            LargeBuffers::give_back(&pool, Vec::with_capacity(size));
        }
        let kept = pool.kept();
        assert_eq!(kept.len(), KEPT);
        assert!(
            kept.contains(&(2 << 20)) && kept.iter().all(|&c| c > 1 << 20),
            "{kept:?}"
        );
    }

    #[test]
    fn buffers_nobody_takes_are_freed() {
        let pool = LargeBuffers::default();
        let start = Instant::now();
        let later = start + Duration::from_secs(5);
        assert!(
            pool.keep(Vec::with_capacity(1 << 20), start),
            "a timer is set"
        );
        assert!(!pool.keep(Vec::with_capacity(2 << 20), later), "one timer");
        // Only what was given back before the mark goes.
        assert!(pool.release_older(later), "the younger stays");
        assert_eq!(pool.kept(), vec![2 << 20]);
        assert!(!pool.release_older(later + Duration::from_secs(1)));
        assert!(pool.kept().is_empty());
        assert!(!pool.lock().release_pending, "nothing left to look at");
    }
}
