//! The live account store: in memory behind a short lock, persisted atomically.
//!
//! Two kinds of change (mullvad's settings persister for the first, a dirty flag for the second):
//! - a person's changes (login, enable, label, remove) go through [`Accounts::transact`]: the
//!   change is written to disk first and reaches memory only once it is saved, so the caller
//!   learns when it did not stick;
//! - what the daemon learns as it runs (counters, quota, cool-downs, refreshed tokens) changes
//!   memory at once ([`Accounts::update`]) and is saved by [`Accounts::persist`]. A refreshed
//!   token cannot wait for the disk (the auth server has already retired the old one), so it is
//!   kept in memory, reported as unsaved, and saved again until a write succeeds.
//!
//! Every write runs to its end in a task of its own: a caller that is dropped (a client hanging
//! up, a shutdown) never leaves a write half done or two writes interleaved.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::disk::{Disk, SaveError, SaveHealth};
use super::{ACCOUNTS_FILE, Account, AccountState, AccountsFile, SCHEMA_VERSION, Status};
use crate::config::RotationStrategy;

/// How many conversations remember their account.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid accounts file: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "{path} has schema version {found}, newer than this codex-proxy understands ({SCHEMA_VERSION}); upgrade codex-proxy"
    )]
    TooNew { path: String, found: u32 },
}

/// Why an account reference names no single account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no account matches `{0}` (see `codexctl accounts list`)")]
    NotFound(String),
    #[error("`{0}` matches several accounts ({ids}); use the id", ids = .1.join(", "))]
    Ambiguous(String, Vec<String>),
}

/// Why no account could be picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickError {
    /// No account at all, or none usable (all need a login or are disabled).
    NoneUsable,
    /// Every usable account is cooling down; the earliest comes back then.
    AllLimited { earliest: Option<i64> },
}

#[derive(Debug)]
pub struct Accounts {
    list: Mutex<Vec<Account>>,
    /// Bumped, under the `list` lock, by every change; compared with what the disk holds.
    generation: AtomicU64,
    disk: Arc<Disk>,
    /// One write at a time, from its snapshot to its bookkeeping; held by the write's own task.
    writes: tokio::sync::Mutex<()>,
    /// Wakes the token scheduler: accounts were added, removed or changed state, or the store
    /// became dirty.
    changed: tokio::sync::Notify,
    strategy: AtomicU8,
    /// The round-robin cursor.
    next: AtomicUsize,
    /// Which usable account `sticky` uses (moved by `rotate next`).
    sticky: AtomicUsize,
    /// Preferred for every request while it is usable (`rotate pin`); runtime only.
    pinned: Mutex<Option<String>>,
    /// Per-account request slots (`max_concurrent_per_account`); FIFO-fair waiting.
    slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    slots_per_account: usize,
    /// Whether the backend keeps failing an account (runtime only).
    breakers: super::breaker::Breakers,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Accounts {
    /// Reads `accounts.json` from the state directory; no file means no accounts yet.
    pub fn load(state_dir: &Path, strategy: RotationStrategy) -> Result<Self, StoreError> {
        Self::load_with_slots(state_dir, strategy, 8)
    }

    /// As [`load`](Self::load), with at most `slots_per_account` requests per account at once.
    pub fn load_with_slots(
        state_dir: &Path,
        strategy: RotationStrategy,
        slots_per_account: usize,
    ) -> Result<Self, StoreError> {
        let path = state_dir.join(ACCOUNTS_FILE);
        let list = read(&path)?;
        Ok(Self {
            list: Mutex::new(list),
            generation: AtomicU64::new(0),
            disk: Arc::new(Disk::new(path)),
            writes: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            strategy: AtomicU8::new(strategy as u8),
            next: AtomicUsize::new(0),
            sticky: AtomicUsize::new(0),
            pinned: Mutex::new(None),
            slots: Mutex::new(HashMap::new()),
            slots_per_account: slots_per_account.max(1),
            breakers: super::breaker::Breakers::default(),
        })
    }

    pub fn strategy(&self) -> RotationStrategy {
        match self.strategy.load(Ordering::Relaxed) {
            1 => RotationStrategy::RoundRobin,
            2 => RotationStrategy::Sticky,
            _ => RotationStrategy::LeastUsed,
        }
    }

    pub fn set_strategy(&self, strategy: RotationStrategy) {
        self.strategy.store(strategy as u8, Ordering::Relaxed);
    }

    pub fn pinned(&self) -> Option<String> {
        lock(&self.pinned).clone()
    }

    /// Pins an account (by our id) or, with `None`, unpins.
    pub fn pin(&self, id: Option<String>) {
        *lock(&self.pinned) = id;
    }

    /// Moves the sticky and round-robin positions on by one account.
    pub fn rotate_next(&self) {
        self.sticky.fetch_add(1, Ordering::Relaxed);
        self.next.fetch_add(1, Ordering::Relaxed);
    }

    /// Finds an account by our id, ChatGPT account id, email or label (the last two ignore
    /// case). An id match wins; otherwise exactly one account must match.
    pub fn resolve(&self, query: &str) -> Result<String, ResolveError> {
        let list = lock(&self.list);
        if let Some(a) = list.iter().find(|a| a.id == query) {
            return Ok(a.id.clone());
        }
        let same = |v: &Option<String>| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(query));
        let matches: Vec<&Account> = list
            .iter()
            .filter(|a| a.chatgpt_account_id == query || same(&a.email) || same(&a.label))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(ResolveError::NotFound(query.to_owned())),
            many => Err(ResolveError::Ambiguous(
                query.to_owned(),
                many.iter().map(|a| a.id.clone()).collect(),
            )),
        }
    }

    pub fn all(&self) -> Vec<Account> {
        lock(&self.list).clone()
    }

    pub fn get(&self, id: &str) -> Option<Account> {
        lock(&self.list).iter().find(|a| a.id == id).cloned()
    }

    /// Whether the account takes turns now: known, signed in, enabled, not cooling down.
    pub fn takes_turns(&self, id: &str, now: i64) -> bool {
        lock(&self.list)
            .iter()
            .any(|a| a.id == id && matches!(a.status(now), Status::Active))
    }

    /// Changes one account in memory at once; [`persist`](Self::persist), or the token
    /// scheduler within seconds, saves it.
    pub fn update<R>(&self, id: &str, f: impl FnOnce(&mut Account) -> R) -> Option<R> {
        let mut list = lock(&self.list);
        let result = list.iter_mut().find(|a| a.id == id).map(f);
        self.bump(&list);
        result
    }

    /// As [`update`](Self::update), for new tokens: until a write holds them, the account is
    /// reported as holding unsaved tokens.
    pub fn update_tokens<R>(&self, id: &str, f: impl FnOnce(&mut Account) -> R) -> Option<R> {
        let mut list = lock(&self.list);
        let result = list.iter_mut().find(|a| a.id == id).map(f);
        let generation = self.bump(&list);
        if result.is_some() {
            self.disk.tokens_changed(id, generation);
        }
        result
    }

    /// Counts a change (the caller holds the list lock, so changes are numbered in the order
    /// they happen); wakes the scheduler when the store was clean, so it knows to save.
    fn bump(&self, _list: &MutexGuard<'_, Vec<Account>>) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if generation == self.disk.saved() + 1 {
            self.changed.notify_one();
        }
        generation
    }

    /// Changed in memory since the last successful write.
    pub fn is_dirty(&self) -> bool {
        self.generation.load(Ordering::Acquire) != self.disk.saved()
    }

    /// Whether writes fail, and which accounts hold tokens that are only in memory.
    pub fn save_health(&self) -> SaveHealth {
        self.disk.health()
    }

    /// Resolves when accounts were added, removed or changed state, or the store became dirty.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Writes the accounts as they are in memory (temp file, fsync, rename, fsync directory),
    /// unless the file holds them already. Runs to its end even if the caller goes away.
    pub async fn persist(self: &Arc<Self>) -> Result<(), SaveError> {
        self.transact(|_| ()).await
    }

    /// Applies a person's change: `change` runs on a copy of the accounts, the copy is saved,
    /// and only then does the change reach memory (`change` runs again, on the live list, so it
    /// must do the same thing both times). When the write fails, memory is as it was and the
    /// error says why. Runs to its end even if the caller goes away.
    pub async fn transact<R: Send + 'static>(
        self: &Arc<Self>,
        mut change: impl FnMut(&mut Vec<Account>) -> R + Send + 'static,
    ) -> Result<R, SaveError> {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _one_at_a_time = this.writes.lock().await;
            let (generation, before) = {
                let list = lock(&this.list);
                (this.generation.load(Ordering::Acquire), list.clone())
            };
            let mut after = before.clone();
            let result = change(&mut after);
            let unchanged = after == before;
            if !unchanged || this.disk.saved() < generation {
                let disk = this.disk.clone();
                tokio::task::spawn_blocking(move || disk.write(generation, after))
                    .await
                    .map_err(|e| stopped(&e))??;
            }
            if unchanged {
                return Ok(result);
            }
            let mut list = lock(&this.list);
            let result = change(&mut list);
            let now = this.generation.fetch_add(1, Ordering::AcqRel) + 1;
            // Nothing else changed meanwhile: the file holds exactly what memory holds now.
            if now == generation + 1 {
                this.disk.covers(now);
            }
            drop(list);
            this.changed.notify_one();
            Ok(result)
        });
        task.await.unwrap_or_else(|e| Err(stopped(&e)))
    }

    /// Adds an account, or replaces the tokens and identity of the one with the same ChatGPT
    /// account id (logging in again never duplicates), and saves it. Returns its id and whether
    /// it existed.
    pub async fn upsert(self: &Arc<Self>, account: Account) -> Result<(String, bool), SaveError> {
        self.transact(move |list| upsert_into(list, account.clone()))
            .await
    }

    /// Forgets an account and saves the list without it.
    pub async fn remove(self: &Arc<Self>, id: &str) -> Result<Option<Account>, SaveError> {
        let target = id.to_owned();
        let removed = self
            .transact(move |list| {
                let index = list.iter().position(|a| a.id == target)?;
                Some(list.remove(index))
            })
            .await?;
        if removed.is_some() {
            let mut pinned = lock(&self.pinned);
            if pinned.as_deref() == Some(id) {
                *pinned = None;
            }
            self.disk.forget(id);
        }
        Ok(removed)
    }

    /// The request slots of one account.
    pub fn slots(&self, id: &str) -> Arc<tokio::sync::Semaphore> {
        lock(&self.slots)
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.slots_per_account)))
            .clone()
    }

    pub fn slots_per_account(&self) -> usize {
        self.slots_per_account
    }

    /// Each account's circuit breaker: how the backend has been answering it.
    pub fn breakers(&self) -> &super::breaker::Breakers {
        &self.breakers
    }

    /// Picks an account for a request. `prefer` is the account the request's conversation is
    /// bound to (prompt cache and encrypted reasoning are account-bound): it is taken while it
    /// is usable. `exclude` lists accounts that already failed this request. Gives the account's id (a request takes its
    /// fresh tokens separately; a whole copy of the account here would go unused).
    pub fn pick(
        &self,
        prefer: Option<&str>,
        exclude: &[String],
        now: i64,
    ) -> Result<String, PickError> {
        self.select(prefer, exclude, now, true, |a| a.id.clone())
    }

    /// The account a new request would get now, without moving any rotation position.
    pub fn preview(&self, now: i64) -> Option<Account> {
        self.select(None, &[], now, false, Account::clone).ok()
    }

    fn select<T>(
        &self,
        prefer: Option<&str>,
        exclude: &[String],
        now: i64,
        advance: bool,
        take: impl FnOnce(&Account) -> T,
    ) -> Result<T, PickError> {
        let list = lock(&self.list);
        let usable: Vec<&Account> = list
            .iter()
            .filter(|a| a.status(now) == Status::Active && !exclude.contains(&a.id))
            .collect();
        if usable.is_empty() {
            // Limited accounts (excluded ones too: a 429 just cooled them) come back first.
            let earliest = list
                .iter()
                .filter(|a| a.state == AccountState::Active)
                .filter_map(|a| a.cooldown_until.filter(|u| *u > now))
                .min();
            return Err(match earliest {
                Some(until) => PickError::AllLimited {
                    earliest: Some(until),
                },
                None => PickError::NoneUsable,
            });
        }
        // A pin wins over conversation affinity: the person asked for this account.
        if let Some(pinned) = lock(&self.pinned).as_deref()
            && let Some(account) = usable.iter().find(|a| a.id == pinned)
        {
            return Ok(take(account));
        }
        if let Some(bound) = prefer
            && let Some(account) = usable.iter().find(|a| a.id == bound)
        {
            return Ok(take(account));
        }
        let chosen = match self.strategy() {
            RotationStrategy::Sticky => usable[self.sticky.load(Ordering::Relaxed) % usable.len()],
            RotationStrategy::RoundRobin => {
                let cursor = if advance {
                    self.next.fetch_add(1, Ordering::Relaxed)
                } else {
                    self.next.load(Ordering::Relaxed)
                };
                usable[cursor % usable.len()]
            }
            // Most headroom first (so limits are reached late and evenly), then fewest requests.
            RotationStrategy::LeastUsed => usable
                .iter()
                .copied()
                .min_by(|a, b| {
                    a.quota
                        .max_used()
                        .total_cmp(&b.quota.max_used())
                        .then(a.requests.cmp(&b.requests))
                })
                .unwrap_or(usable[0]),
        };
        Ok(take(chosen))
    }

    /// The pool's quota: every active account (signed in, enabled), as one (see
    /// [`super::pooled`]); and the plan of the first of them.
    pub fn pooled_quota(&self, now: i64) -> (super::Pooled, Option<String>) {
        let list = lock(&self.list);
        let active: Vec<&Account> = list
            .iter()
            .filter(|a| a.state == AccountState::Active)
            .collect();
        let members: Vec<super::Member<'_>> = active
            .iter()
            .map(|a| super::Member {
                quota: &a.quota,
                limited_until: a.cooldown_until,
            })
            .collect();
        let plan = active.iter().find_map(|a| a.plan.clone());
        (super::pooled(&members, now), plan)
    }

    /// Adds a completed response's usage to the account's counters for `model`.
    pub fn record_usage(&self, id: &str, model: &str, usage: &crate::upstream::wire::Usage) {
        self.update(id, |a| {
            let counters = a.usage.entry(model.to_owned()).or_default();
            counters.responses += 1;
            counters.input_tokens += usage.input_tokens;
            counters.cached_tokens += usage.input_tokens_details.map_or(0, |d| d.cached_tokens);
            counters.output_tokens += usage.output_tokens;
            counters.reasoning_tokens += usage
                .output_tokens_details
                .map_or(0, |d| d.reasoning_tokens);
        });
    }
}

fn stopped(e: &tokio::task::JoinError) -> SaveError {
    SaveError {
        path: ACCOUNTS_FILE.into(),
        reason: format!("the write stopped: {e}"),
    }
}

/// Adds `account` to the list, or updates the one with its ChatGPT account id in place.
fn upsert_into(list: &mut Vec<Account>, mut account: Account) -> (String, bool) {
    if let Some(existing) = list
        .iter_mut()
        .find(|a| a.chatgpt_account_id == account.chatgpt_account_id)
    {
        existing.tokens = account.tokens;
        existing.email = account.email.or(existing.email.take());
        existing.plan = account.plan.or(existing.plan.take());
        existing.user_id = account.user_id.or(existing.user_id.take());
        existing.fedramp = account.fedramp;
        existing.last_refresh = account.last_refresh;
        // New tokens: whatever happened to the old ones no longer matters.
        existing.refresh_started_at = None;
        existing.login_reason = None;
        // A fresh login clears "needs login"; a disabled account stays disabled.
        if existing.state == AccountState::NeedsLogin {
            existing.state = AccountState::Active;
        }
        return (existing.id.clone(), true);
    }
    if account.id.is_empty() || list.iter().any(|a| a.id == account.id) {
        let n = (1..)
            .find(|n| !list.iter().any(|a| a.id == format!("acct_{n}")))
            .unwrap_or(0);
        account.id = format!("acct_{n}");
    }
    let id = account.id.clone();
    list.push(account);
    (id, false)
}

fn read(path: &Path) -> Result<Vec<Account>, StoreError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Read {
                path: shown,
                source,
            });
        }
    };
    let de = &mut serde_json::Deserializer::from_str(&text);
    let file: AccountsFile = serde_path_to_error::deserialize(de).map_err(|e| {
        // serde's messages may quote the offending value (a token); only "missing field" is safe.
        let what = e.inner().to_string();
        let what = what
            .split(" at line")
            .next()
            .filter(|m| m.starts_with("missing field"))
            .unwrap_or("invalid value");
        StoreError::Invalid {
            path: shown.clone(),
            reason: format!(
                "{what} at `{}` (line {}, column {})",
                e.path(),
                e.inner().line(),
                e.inner().column()
            ),
        }
    })?;
    if file.schema_version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: shown,
            found: file.schema_version,
        });
    }
    Ok(file.accounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{Quota, Secret, Tokens, Window};

    fn account(id: &str, acct: &str) -> Account {
        Account {
            id: id.into(),
            chatgpt_account_id: acct.into(),
            email: Some(format!("{id}@example.com")),
            plan: Some("plus".into()),
            label: None,
            user_id: None,
            fedramp: false,
            state: AccountState::Active,
            tokens: Tokens {
                access_token: Secret::new(format!("at-{id}")),
                refresh_token: Secret::new(format!("rt-{id}")),
                id_token: None,
            },
            last_refresh: None,
            refresh_started_at: None,
            login_reason: None,
            cooldown_until: None,
            quota: Quota::default(),
            requests: 0,
            usage: Default::default(),
        }
    }

    fn new_store(accounts: Vec<Account>) -> (tempfile::TempDir, Arc<Accounts>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Accounts::load(dir.path(), RotationStrategy::LeastUsed).unwrap();
        for a in accounts {
            let mut list = lock(&store.list);
            upsert_into(&mut list, a);
            store.bump(&list);
        }
        (dir, Arc::new(store))
    }

    /// Makes every write of `accounts.json` in `dir` fail (a directory where the temp file
    /// goes, which even root cannot open as a file) until the returned guard is dropped.
    struct FailingWrites(std::path::PathBuf);

    impl FailingWrites {
        fn new(dir: &Path) -> Self {
            let blocker = dir.join(format!(".{ACCOUNTS_FILE}.tmp-{}", std::process::id()));
            std::fs::create_dir(&blocker).unwrap();
            Self(blocker)
        }
    }

    impl Drop for FailingWrites {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    fn on_disk(dir: &Path) -> Vec<Account> {
        let text = std::fs::read_to_string(dir.join(ACCOUNTS_FILE)).unwrap_or_default();
        serde_json::from_str::<AccountsFile>(&text)
            .map(|f| f.accounts)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_failed_write_stays_dirty_and_the_next_one_saves_everything() {
        let (dir, store) = new_store(vec![account("a", "acc-a")]);
        store.persist().await.unwrap();
        assert!(!store.is_dirty());
        let failing = FailingWrites::new(dir.path());
        store.update_tokens("a", |a| {
            a.tokens.refresh_token = Secret::new("rt-rotated".into());
        });
        assert!(store.is_dirty());
        let error = store.persist().await.unwrap_err();
        assert!(error.to_string().contains("accounts.json"), "{error}");
        assert!(store.is_dirty(), "a failed write leaves the change to save");
        let health = store.save_health();
        assert_eq!(health.unsaved_tokens, ["a"]);
        let failure = health.failure.unwrap();
        assert_eq!(failure.attempts, 1);
        assert!(store.persist().await.is_err());
        assert_eq!(store.save_health().failure.unwrap().attempts, 2);
        assert_eq!(
            on_disk(dir.path())[0].tokens.refresh_token.expose(),
            "rt-a",
            "the file still holds the old state, whole"
        );

        drop(failing);
        store.persist().await.unwrap();
        assert!(!store.is_dirty());
        assert_eq!(store.save_health(), SaveHealth::default());
        assert_eq!(
            on_disk(dir.path())[0].tokens.refresh_token.expose(),
            "rt-rotated"
        );
    }

    #[tokio::test]
    async fn a_transaction_that_cannot_be_saved_changes_nothing() {
        let (dir, store) = new_store(vec![account("a", "acc-a")]);
        store.persist().await.unwrap();
        let failing = FailingWrites::new(dir.path());
        let error = store
            .transact(|list| list[0].label = Some("work".into()))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("cannot save"), "{error}");
        assert_eq!(store.get("a").unwrap().label, None, "memory as it was");
        assert!(
            store.upsert(account("", "acc-b")).await.is_err(),
            "a login that cannot be saved did not happen"
        );
        assert_eq!(store.all().len(), 1);
        drop(failing);
        store
            .transact(|list| list[0].label = Some("work".into()))
            .await
            .unwrap();
        assert_eq!(store.get("a").unwrap().label.as_deref(), Some("work"));
        assert_eq!(on_disk(dir.path())[0].label.as_deref(), Some("work"));
        assert!(
            !store.is_dirty(),
            "the file holds exactly what memory holds"
        );
    }

    #[tokio::test]
    async fn a_write_finishes_even_when_its_caller_is_dropped() {
        let (dir, store) = new_store(vec![account("a", "acc-a")]);
        store.update_tokens("a", |a| {
            a.tokens.refresh_token = Secret::new("rt-rotated".into());
        });
        // Polled once, then dropped: the write already belongs to its own task.
        let mut write = Box::pin(store.persist());
        let _ = futures_util::poll!(write.as_mut());
        drop(write);
        let saved = async {
            while store.is_dirty() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), saved)
            .await
            .unwrap();
        assert_eq!(
            on_disk(dir.path())[0].tokens.refresh_token.expose(),
            "rt-rotated"
        );
    }

    #[test]
    fn a_version_1_file_still_loads_and_tokens_never_show() {
        let dir = tempfile::tempdir().unwrap();
        // Exactly what version 1 wrote.
        std::fs::write(
            dir.path().join(ACCOUNTS_FILE),
            r#"{"schema_version":1,"accounts":[{"id":"a1","chatgpt_account_id":"acc","email":"u@example.com",
               "tokens":{"access_token":"eyJ.secret.x","refresh_token":"rt_secret"}}]}"#,
        )
        .unwrap();
        let store = Accounts::load(dir.path(), RotationStrategy::LeastUsed).unwrap();
        let all = store.all();
        assert_eq!(all[0].state, AccountState::Active);
        assert_eq!(all[0].quota, Quota::default());
        assert!(!format!("{all:?}").contains("secret"));
    }

    #[test]
    fn invalid_and_newer_files_are_refused_without_showing_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(ACCOUNTS_FILE),
            r#"{"schema_version":2,"accounts":[{"id":"a","tokens":{"access_token":"tok_abc"}}]}"#,
        )
        .unwrap();
        let err = Accounts::load(dir.path(), RotationStrategy::LeastUsed)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("accounts[0]") && !err.contains("tok_abc"),
            "{err}"
        );
        std::fs::write(dir.path().join(ACCOUNTS_FILE), r#"{"schema_version":9}"#).unwrap();
        assert!(
            Accounts::load(dir.path(), RotationStrategy::LeastUsed)
                .unwrap_err()
                .to_string()
                .contains("upgrade")
        );
    }

    #[tokio::test]
    async fn persists_atomically_and_reloads() {
        let (dir, store) = new_store(vec![account("a", "acc-a")]);
        store.update("a", |a| a.requests = 7);
        store.persist().await.unwrap();
        let again = Accounts::load(dir.path(), RotationStrategy::LeastUsed).unwrap();
        assert_eq!(again.get("a").unwrap().requests, 7);
        let text = std::fs::read_to_string(dir.path().join(ACCOUNTS_FILE)).unwrap();
        assert!(text.contains("\"schema_version\": 2"));
    }

    #[tokio::test]
    async fn logging_in_again_replaces_tokens_in_place() {
        let (dir, store) = new_store(vec![account("a", "acc-a")]);
        store.update("a", |a| {
            a.state = AccountState::NeedsLogin;
            a.login_reason = Some("refresh_token_reused".into());
            a.refresh_started_at = Some(1);
        });
        let mut again = account("", "acc-a");
        again.tokens.refresh_token = Secret::new("rt-new".into());
        let (id, existed) = store.upsert(again).await.unwrap();
        assert_eq!((id.as_str(), existed), ("a", true));
        assert_eq!(store.all().len(), 1);
        let a = store.get("a").unwrap();
        assert_eq!(a.tokens.refresh_token.expose(), "rt-new");
        assert_eq!(a.state, AccountState::Active);
        assert_eq!((a.login_reason, a.refresh_started_at), (None, None));
        let (id, existed) = store.upsert(account("", "acc-b")).await.unwrap();
        assert_eq!((id.as_str(), existed), ("acct_1", false));
        assert_eq!(on_disk(dir.path()).len(), 2, "saved before it returned");
    }

    #[test]
    fn least_used_prefers_headroom_then_fewer_requests() {
        let mut a = account("a", "1");
        a.quota.primary = Some(Window {
            used_percent: 80.0,
            window_minutes: 300,
            resets_at: None,
        });
        let mut b = account("b", "2");
        b.quota.primary = Some(Window {
            used_percent: 10.0,
            window_minutes: 300,
            resets_at: None,
        });
        b.requests = 50;
        let c = {
            let mut c = account("c", "3");
            c.quota.primary = Some(Window {
                used_percent: 10.0,
                window_minutes: 300,
                resets_at: None,
            });
            c.requests = 3;
            c
        };
        let (_dir, store) = new_store(vec![a, b, c]);
        assert_eq!(store.pick(None, &[], 0).unwrap(), "c");
        store.set_strategy(RotationStrategy::Sticky);
        assert_eq!(store.pick(None, &[], 0).unwrap(), "a");
        store.set_strategy(RotationStrategy::RoundRobin);
        let picks: Vec<String> = (0..3).map(|_| store.pick(None, &[], 0).unwrap()).collect();
        assert_eq!(picks, ["a", "b", "c"]);
    }

    #[test]
    fn conversations_keep_their_account_while_it_is_usable() {
        let (_dir, store) = new_store(vec![account("a", "1"), account("b", "2")]);
        assert_eq!(store.pick(Some("b"), &[], 0).unwrap(), "b");
        store.update("b", |b| b.cooldown_until = Some(100));
        assert_eq!(
            store.pick(Some("b"), &[], 50).unwrap(),
            "a",
            "fails over while b cools down"
        );
        assert_eq!(
            store.pick(Some("b"), &[], 150).unwrap(),
            "b",
            "and returns after"
        );
    }

    #[test]
    fn all_limited_reports_the_earliest_reset() {
        let (_dir, store) = new_store(vec![
            account("a", "1"),
            account("b", "2"),
            account("c", "3"),
        ]);
        store.update("a", |a| a.cooldown_until = Some(500));
        store.update("b", |b| b.cooldown_until = Some(300));
        store.update("c", |c| c.state = AccountState::NeedsLogin);
        assert_eq!(
            store.pick(None, &[], 100),
            Err(PickError::AllLimited {
                earliest: Some(300)
            })
        );
        store.update("a", |a| a.state = AccountState::Disabled);
        store.update("b", |b| b.state = AccountState::Disabled);
        assert_eq!(store.pick(None, &[], 100), Err(PickError::NoneUsable));
        let (_dir2, empty) = new_store(vec![]);
        assert_eq!(empty.pick(None, &[], 0), Err(PickError::NoneUsable));
    }
}
