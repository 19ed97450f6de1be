//! Handing freed memory back to the system. glibc's allocator keeps what a burst of large
//! requests freed (in its arenas, for reuse), so one burst would leave the daemon hundreds of
//! MB larger for good (measured: 8 × 30 MB bodies left 407 MB behind). Two remedies:
//! - a fixed mmap threshold ([`configure`]): blocks from 256 KiB up are mapped on their own and
//!   unmapped when freed. By default glibc raises the threshold to the size of the largest
//!   block freed so far, after which large bodies come from the arenas and stay there;
//! - after a large request, the arenas are asked to return whole free pages ([`trim_soon`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Trims run at most this often, after the large requests of a burst are done.
const SETTLE: Duration = Duration::from_millis(250);

static PENDING: AtomicBool = AtomicBool::new(false);

/// Blocks of this size and larger are mapped on their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 << 10;

/// Sets the allocator up to hand large blocks back; call once, before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn configure() {
    // SAFETY: mallopt takes two integers and changes a setting of glibc's allocator; it is
    // called before any other thread exists, as its documentation advises.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if set != 1 {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) was refused; large blocks may stay mapped");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn configure() {}

/// Returns free heap memory to the system soon (once for a burst), off the async workers.
pub fn trim_soon() {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    runtime.spawn(async {
        tokio::time::sleep(SETTLE).await;
        PENDING.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and has no preconditions; it walks glibc's own
    // arenas under their locks and releases free pages (madvise) back to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, macOS) return large freed blocks themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
