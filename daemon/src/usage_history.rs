//! Usage over time, per account and model: the last 24 hours in 5-minute buckets and the last
//! 30 days in daily ones (UTC). Kept in the state directory (`usage_history.json`, 0600,
//! replaced atomically) so charts survive restarts; bounded by time, and by the accounts and
//! models there are. Saved by the schedulers with the accounts, and once more at a stop.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use codex_proxy_proto::{HistoryBucket, HistoryRow, UsageHistoryView};
use serde::{Deserialize, Serialize};

use crate::upstream::wire::Usage;

pub const FILE: &str = "usage_history.json";
/// Five minutes, and 288 of them: a day.
pub const RECENT_STEP: i64 = 300;
pub const RECENT_BUCKETS: usize = 288;
/// A day, and 30 of them.
pub const DAILY_STEP: i64 = 86_400;
pub const DAILY_BUCKETS: usize = 30;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counts {
    requests: u64,
    input: u64,
    cached: u64,
    output: u64,
    reasoning: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Bucket {
    start: i64,
    /// `account` → `model` → counts.
    rows: BTreeMap<String, BTreeMap<String, Counts>>,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Series {
    recent: VecDeque<Bucket>,
    daily: VecDeque<Bucket>,
}

impl Series {
    fn add(&mut self, at: i64, account: &str, model: &str, counts: Counts) {
        for (buckets, step, keep) in [
            (&mut self.recent, RECENT_STEP, RECENT_BUCKETS),
            (&mut self.daily, DAILY_STEP, DAILY_BUCKETS),
        ] {
            let start = at - at.rem_euclid(step);
            if buckets.back().is_none_or(|b| b.start < start) {
                buckets.push_back(Bucket {
                    start,
                    rows: BTreeMap::new(),
                });
            }
            // A clock that went back counts into the newest bucket.
            if let Some(bucket) = buckets.back_mut() {
                let row = bucket
                    .rows
                    .entry(account.to_owned())
                    .or_default()
                    .entry(model.to_owned())
                    .or_default();
                row.requests += counts.requests;
                row.input += counts.input;
                row.cached += counts.cached;
                row.output += counts.output;
                row.reasoning += counts.reasoning;
            }
            let oldest = start - step * (keep as i64 - 1);
            while buckets.front().is_some_and(|b| b.start < oldest) || buckets.len() > keep {
                buckets.pop_front();
            }
        }
    }
}

/// The history, in memory and on disk.
#[derive(Debug)]
pub struct UsageHistory {
    path: PathBuf,
    series: Mutex<Series>,
    dirty: AtomicBool,
}

impl UsageHistory {
    /// Reads the saved history; a missing file is an empty history, an unreadable one is set
    /// aside (`usage_history.json.bad`) with a warning, so nothing else is lost over it.
    pub fn load(state_dir: &Path) -> Self {
        let path = state_dir.join(FILE);
        let series = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(
                    "{} is unreadable ({e}); starting a new usage history, the old file kept as \
                     {FILE}.bad",
                    path.display()
                );
                let _ = std::fs::rename(&path, state_dir.join(format!("{FILE}.bad")));
                Series::default()
            }),
            Err(_) => Series::default(),
        };
        Self {
            path,
            series: Mutex::new(series),
            dirty: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One response at `at`: a request, and its usage when the backend gave one.
    pub fn record(&self, at: i64, account: &str, model: &str, usage: Option<&Usage>) {
        let counts = usage.map_or(
            Counts {
                requests: 1,
                ..Counts::default()
            },
            |u| Counts {
                requests: 1,
                input: u.input_tokens,
                cached: u.input_tokens_details.map_or(0, |d| d.cached_tokens),
                output: u.output_tokens,
                reasoning: u.output_tokens_details.map_or(0, |d| d.reasoning_tokens),
            },
        );
        self.lock().add(at, account, model, counts);
        self.dirty.store(true, Ordering::Release);
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Writes the history if it changed, off the async workers; a failed write leaves it dirty
    /// (the next save tries again).
    pub async fn save(&self) -> anyhow::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&*self.lock())?;
        let path = self.path.clone();
        let written =
            tokio::task::spawn_blocking(move || crate::state::write_private_atomic(&path, &bytes))
                .await
                .map_err(|e| anyhow::anyhow!("the write stopped: {e}"))
                .and_then(|r| r);
        if written.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        written
    }

    /// The history as the control protocol shows it: `daily` for 30 days, else 24 hours.
    pub fn view(&self, daily: bool) -> UsageHistoryView {
        let series = self.lock();
        let (buckets, step) = if daily {
            (&series.daily, DAILY_STEP)
        } else {
            (&series.recent, RECENT_STEP)
        };
        UsageHistoryView {
            step_seconds: step,
            buckets: buckets
                .iter()
                .map(|b| HistoryBucket {
                    start: b.start,
                    rows: b
                        .rows
                        .iter()
                        .flat_map(|(account, models)| {
                            models.iter().map(move |(model, c)| HistoryRow {
                                account: account.clone(),
                                model: model.clone(),
                                requests: c.requests,
                                input_tokens: c.input,
                                cached_tokens: c.cached,
                                output_tokens: c.output,
                                reasoning_tokens: c.reasoning,
                            })
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            input_tokens_details: Some(crate::upstream::wire::InputDetails {
                cached_tokens: cached,
            }),
            output_tokens_details: None,
        }
    }

    #[test]
    fn buckets_fill_roll_over_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let history = UsageHistory::load(dir.path());
        let day0 = 1_767_225_600; // 2026-01-01 00:00 UTC
        history.record(day0 + 10, "acct_0", "gpt-5.5", Some(&usage(100, 40, 10)));
        history.record(day0 + 20, "acct_0", "gpt-5.5", Some(&usage(50, 0, 5)));
        history.record(day0 + 301, "acct_1", "gpt-5.4-mini", None);
        let recent = history.view(false);
        assert_eq!(recent.step_seconds, 300);
        assert_eq!(recent.buckets.len(), 2);
        let first = &recent.buckets[0];
        assert_eq!(first.start, day0);
        assert_eq!(
            (
                first.rows[0].requests,
                first.rows[0].input_tokens,
                first.rows[0].cached_tokens
            ),
            (2, 150, 40)
        );
        assert_eq!(recent.buckets[1].rows[0].account, "acct_1");
        let daily = history.view(true);
        assert_eq!(daily.buckets.len(), 1);
        assert_eq!(daily.buckets[0].rows.len(), 2);

        // Two days of traffic every minute: the 5-minute series keeps one day, the daily 30.
        for minute in 0..(2 * 24 * 60) {
            history.record(day0 + minute * 60, "acct_0", "gpt-5.5", None);
        }
        let recent = history.view(false);
        assert_eq!(recent.buckets.len(), RECENT_BUCKETS);
        let last = recent.buckets.last().unwrap().start;
        assert_eq!(recent.buckets[0].start, last - RECENT_STEP * 287);
        for day in 0..40 {
            history.record(day0 + day * DAILY_STEP, "acct_0", "gpt-5.5", None);
        }
        assert_eq!(history.view(true).buckets.len(), DAILY_BUCKETS);
    }

    #[tokio::test]
    async fn it_survives_a_restart_and_a_bad_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let history = UsageHistory::load(dir.path());
        history.record(1_767_225_600, "acct_0", "gpt-5.5", Some(&usage(7, 0, 3)));
        assert!(history.is_dirty());
        history.save().await.unwrap();
        assert!(!history.is_dirty());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let again = UsageHistory::load(dir.path());
        assert_eq!(again.view(false), history.view(false));

        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let fresh = UsageHistory::load(dir.path());
        assert!(fresh.view(true).buckets.is_empty());
        assert!(dir.path().join(format!("{FILE}.bad")).exists());
    }
}
