//! Handing freed memory back to the system. glibc's allocator keeps what a burst of large
//! requests freed (in its arenas, for reuse), so one burst would leave the daemon hundreds of
//! MB larger for good; after a large request it is asked to return what is free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Trims run at most this often, after the large requests of a burst are done.
const SETTLE: Duration = Duration::from_millis(250);

static PENDING: AtomicBool = AtomicBool::new(false);

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
