//! The memory all request bodies in flight may take together (`server.request_memory_mb`),
//! held by the application state and drawn on by the server's body reader
//! (`server::body`).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::buffers::LargeBuffers;

/// The budget, counted in KiB (a semaphore's permits are `u32`).
#[derive(Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_units: u32,
    buffers: Arc<LargeBuffers>,
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
        LargeBuffers::lend(&self.buffers, buffer)
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
