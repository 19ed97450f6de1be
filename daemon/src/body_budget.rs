//! The memory all request bodies in flight may take together (`server.request_memory_mb`),
//! held by the application state and drawn on by the server's body reader
//! (`server::body`).

use std::sync::Arc;

use tokio::sync::Semaphore;

/// The budget, counted in KiB (a semaphore's permits are `u32`).
#[derive(Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_units: u32,
}

impl BodyBudget {
    pub fn new(megabytes: u64) -> Self {
        let total = u32::try_from(megabytes.saturating_mul(1024)).unwrap_or(u32::MAX);
        Self {
            units: Arc::new(Semaphore::new(total as usize)),
            total_units: total,
        }
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
