//! `accounts.json` on disk: which state of the store it holds, whether the last write failed,
//! and which accounts hold tokens that exist only in memory.
//!
//! Every change to the store bumps its generation; a write records the generation it wrote.
//! A write that fails leaves the store dirty, so the token scheduler tries again, and the
//! failure is reported (`codexctl status`, `/health`, the log) until a write succeeds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::{Account, AccountsFile, SCHEMA_VERSION};
use crate::clock::unix_now;
use crate::state::write_private_atomic;

/// A write of `accounts.json` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot save the accounts to {path}: {reason}")]
pub struct SaveError {
    pub path: String,
    pub reason: String,
}

/// Writes have been failing since `since`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaveFailure {
    pub since: i64,
    pub attempts: u32,
    pub error: String,
}

/// What a person must know about the saved state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SaveHealth {
    /// Set while writes fail.
    pub failure: Option<SaveFailure>,
    /// Accounts whose newest tokens are only in memory (a stop now would lose their sign-in).
    pub unsaved_tokens: Vec<String>,
}

#[derive(Debug)]
pub struct Disk {
    path: PathBuf,
    /// The generation of the store that the file holds.
    saved: AtomicU64,
    failure: Mutex<Option<SaveFailure>>,
    /// Account id → the generation at which its tokens changed, until a write covers it.
    unsaved_tokens: Mutex<BTreeMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Disk {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            saved: AtomicU64::new(0),
            failure: Mutex::new(None),
            unsaved_tokens: Mutex::new(BTreeMap::new()),
        }
    }

    /// The generation the file holds.
    pub fn saved(&self) -> u64 {
        self.saved.load(Ordering::Acquire)
    }

    /// Records that the file holds the store's state at `generation` (a transaction's change
    /// reached memory and nothing else changed meanwhile).
    pub fn covers(&self, generation: u64) {
        self.saved.fetch_max(generation, Ordering::AcqRel);
    }

    /// Records that the tokens of `id` changed at `generation` (and are not on disk yet).
    pub fn tokens_changed(&self, id: &str, generation: u64) {
        lock(&self.unsaved_tokens).insert(id.to_owned(), generation);
    }

    /// Forgets an account that is gone.
    pub fn forget(&self, id: &str) {
        lock(&self.unsaved_tokens).remove(id);
    }

    pub fn health(&self) -> SaveHealth {
        SaveHealth {
            failure: lock(&self.failure).clone(),
            unsaved_tokens: lock(&self.unsaved_tokens).keys().cloned().collect(),
        }
    }

    /// Writes `accounts` (the store's state at `generation`, maybe with a transaction's change)
    /// atomically. Blocking: call from a blocking thread, one write at a time.
    pub fn write(&self, generation: u64, accounts: Vec<Account>) -> Result<(), SaveError> {
        let file = AccountsFile {
            schema_version: SCHEMA_VERSION,
            accounts,
        };
        let written = serde_json::to_vec_pretty(&file)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| write_private_atomic(&self.path, &bytes));
        match written {
            Ok(()) => {
                self.saved.fetch_max(generation, Ordering::AcqRel);
                lock(&self.unsaved_tokens).retain(|_, changed| *changed > generation);
                if let Some(failure) = lock(&self.failure).take() {
                    tracing::warn!(
                        "accounts saved again, after {} failed attempts since {}",
                        failure.attempts,
                        crate::clock::utc_clock(failure.since, unix_now())
                    );
                }
                Ok(())
            }
            Err(e) => {
                let reason = format!("{e:#}");
                let mut failure = lock(&self.failure);
                let failure = failure.get_or_insert_with(|| SaveFailure {
                    since: unix_now(),
                    attempts: 0,
                    error: String::new(),
                });
                failure.attempts += 1;
                failure.error.clone_from(&reason);
                let unsaved = lock(&self.unsaved_tokens).len();
                if unsaved > 0 {
                    tracing::error!(
                        "cannot save the accounts ({reason}); the new tokens of {unsaved} account(s) \
                         exist only in memory: free space or fix {} before stopping codex-proxy",
                        self.path.display()
                    );
                } else {
                    tracing::error!("cannot save the accounts ({reason}); retrying");
                }
                Err(SaveError {
                    path: self.path.display().to_string(),
                    reason,
                })
            }
        }
    }
}
