//! The engine: runs one turn on the user's pool of accounts, for every API surface.
//!
//! A surface parses its request, builds the Responses body the backend takes and hands it here
//! with the conversation it belongs to; the engine picks an account (pin, then the
//! conversation's account, then the rotation strategy), takes a request slot on it (waiting in
//! line on every usable account at once), makes its token fresh, starts the upstream
//! stream(s), and moves to another account while nothing has reached the client: a usage limit
//! cools the account down, a 401 gets one forced refresh and one retry, a 5xx or network
//! failure a bounded retry with backoff, and a circuit opens on an account the backend keeps
//! failing. A `response.failed` arriving as the first event counts like the HTTP error it
//! stands for. It hands back the account, the event streams and a [`TurnGuard`] that holds the
//! slot and records the usage when dropped. Quota headers, conversation affinity and the
//! catalog's ETag are taken care of here too, so no surface has to remember them.

mod conversations;
mod errors;
pub mod histories;
pub mod store;

use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

pub use conversations::{ConversationId, Conversations, KnownCall, fingerprint, named};
pub use errors::{EngineError, stream_failure, usage_limit};

use crate::accounts::{Account, AccountState, PickError, Quota};
use crate::app::{AppState, InFlight};
use crate::auth::{AuthError, Need};
use crate::clock::unix_now;
use crate::metrics::{Failover, metrics};
use crate::requests::Observed;
use crate::upstream::errors::UpstreamFailure;
use crate::upstream::wire::Usage;
use crate::upstream::{EventStream, UpstreamError, WireBody};

/// One turn, as a surface hands it to the engine.
#[derive(Debug)]
pub struct TurnRequest<'a> {
    /// The conversation (its account affinity).
    pub conversation: ConversationId,
    /// Its session key: the session headers the backend sees.
    pub session: &'a str,
    /// The upstream body, ready to send (as often as attempts and `fan_out` need).
    pub wire: &'a WireBody,
    /// The model's Responses-Lite layout (its header).
    pub lite: bool,
    /// How many responses to start at once on one account (chat's `n`; 1 elsewhere).
    pub fan_out: u32,
    /// The model the usage is counted under.
    pub model: &'a str,
    /// An account to prefer over the conversation's (a previous response's, whose encrypted
    /// reasoning only that account can read).
    pub prefer: Option<&'a str>,
    /// How long to wait for the first event before handing the streams over anyway (a
    /// `response.failed` first event is only caught within it).
    pub first_event_within: Duration,
    /// What to start: a streamed response, or a unary compaction (§5.3).
    pub call: Call,
    /// The client's request, as the request log observes it (account, model, usage).
    pub observed: Option<&'a Observed>,
}

/// The backend call a turn makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Call {
    #[default]
    Responses,
    /// `/responses/compact`: one JSON answer (read it with `EventStream::read_json`).
    Compact,
}

/// A started turn.
#[derive(Debug)]
pub struct Turn {
    pub account: Account,
    pub streams: Vec<EventStream>,
    pub guard: TurnGuard,
}

/// Holds the account's request slot and counts the turn as in flight; adds the usage it was
/// told about to the account's counters when dropped (once the client has everything, or left).
#[derive(Debug)]
pub struct TurnGuard {
    state: AppState,
    account_id: String,
    model: String,
    usage: Option<Usage>,
    slot: Option<OwnedSemaphorePermit>,
    observed: Option<Observed>,
    _in_flight: InFlight,
}

impl TurnGuard {
    /// Adds a finished response's usage (each of a fan-out's responses adds its own).
    pub fn add_usage(&mut self, usage: &Usage) {
        self.usage.get_or_insert_with(Usage::default).add(usage);
        if let Some(observed) = &self.observed {
            observed.add_usage(usage);
        }
    }

    /// The response failed after it began (the client was told in the stream).
    pub fn failed(&self, message: &str) {
        if let Some(observed) = &self.observed {
            observed.failed(message);
        }
    }

    /// Frees the request slot early (the response is complete; only its rendering remains).
    pub fn release_slot(&mut self) {
        self.slot = None;
    }
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        let usage = self.usage.take().filter(|u| u.total_tokens > 0);
        self.state.usage_history().record(
            unix_now(),
            &self.account_id,
            &self.model,
            usage.as_ref(),
        );
        // A response without usage (the backend may omit it) counts as a request only.
        if let Some(usage) = usage {
            self.state
                .accounts()
                .record_usage(&self.account_id, &self.model, &usage);
        }
    }
}

/// Retries of a 5xx or network failure before anything reached the client.
const TRANSIENT_RETRIES: u32 = 2;

/// Starts a turn on one account of the pool (see the module's description).
pub async fn start(
    state: &AppState,
    request: &TurnRequest<'_>,
    in_flight: InFlight,
) -> Result<Turn, EngineError> {
    let (account, streams, slot) = start_on_an_account(state, request).await?;
    let accounts = state.accounts();
    let quota = streams
        .first()
        .and_then(|s| Quota::from_headers(&s.headers, unix_now()));
    accounts.update(&account.id, |a| {
        a.requests += 1;
        if let Some(quota) = quota {
            a.quota = quota;
        }
    });
    state
        .conversations()
        .bind(request.conversation, &account.id);
    let catalog = state.catalog();
    if let Some(announced) = streams
        .first()
        .and_then(|s| s.headers.get("x-models-etag"))
        .and_then(|v| v.to_str().ok())
        && catalog
            .etag
            .as_deref()
            .is_some_and(|held| held != announced)
    {
        // Only a live catalog is revalidated on a new ETag; a built-in one (the fetch failed)
        // waits for the hourly retry instead of refetching on every response.
        state.catalog_is_stale();
    }
    if let Some(observed) = request.observed {
        observed.started(&account.id, request.model);
    }
    let guard = TurnGuard {
        state: state.clone(),
        account_id: account.id.clone(),
        model: request.model.to_owned(),
        usage: None,
        slot: Some(slot),
        observed: request.observed.cloned(),
        _in_flight: in_flight,
    };
    Ok(Turn {
        account,
        streams,
        guard,
    })
}

/// Why no account can serve: none signed in, signed out ones, or disabled ones.
fn none_usable(state: &AppState) -> EngineError {
    let accounts = state.accounts().all();
    let needs_login: Vec<String> = accounts
        .iter()
        .filter(|a| a.state == AccountState::NeedsLogin)
        .map(|a| match &a.login_reason {
            Some(reason) => format!("{} ({reason})", a.display_name()),
            None => a.display_name().to_owned(),
        })
        .collect();
    if !needs_login.is_empty() {
        return EngineError::NeedsLogin(needs_login);
    }
    if !accounts.is_empty() {
        return EngineError::AllDisabled;
    }
    EngineError::NoAccount
}

/// What one attempt on an account came to.
enum Attempt {
    Started(Vec<EventStream>),
    Failed(UpstreamFailure, Option<axum::http::HeaderMap>),
}

async fn start_on_an_account(
    state: &AppState,
    request: &TurnRequest<'_>,
) -> Result<(Account, Vec<EventStream>, OwnedSemaphorePermit), EngineError> {
    let accounts = state.accounts();
    let config = state.config();
    let margin = config.auth.refresh_margin_seconds as i64;
    let bound = state.conversations().account(request.conversation);
    let prefer = request.prefer.or(bound.as_deref());
    let mut tried: Vec<String> = Vec::new();
    let mut last_error: Option<EngineError> = None;
    let mut transient_retries = 0;
    loop {
        let candidate = match accounts.pick(prefer, &tried, unix_now()) {
            Ok(account) => account,
            Err(PickError::AllLimited { earliest }) => {
                return Err(EngineError::AllLimited {
                    resets_at: earliest,
                });
            }
            Err(PickError::NoneUsable) => {
                return Err(last_error.unwrap_or_else(|| none_usable(state)));
            }
        };
        // A slot on the account for as long as the response runs.
        let (candidate, slot) = take_slot(state, candidate, prefer, &tried).await?;
        // An account the backend keeps failing is left alone for a while.
        if let Err(open) = accounts.breakers().allow(&candidate) {
            metrics().failover(Failover::CircuitOpen);
            last_error = Some(EngineError::CircuitOpen {
                account: candidate.clone(),
                failures: open.failures,
                last_error: open.last_error.clone(),
                retry_in_secs: open.retry_in.as_secs().max(1),
            });
            tried.push(candidate);
            continue;
        }
        let account = match state
            .refresher()
            .fresh(&candidate, Need::ValidFor(margin))
            .await
        {
            Ok(account) => account,
            Err(error) => {
                metrics().failover(Failover::Refresh);
                last_error = Some(auth_error(&error));
                tried.push(candidate);
                continue;
            }
        };
        let (failure, headers, description) = match attempt(state, &account, request).await {
            Attempt::Started(streams) => {
                accounts.breakers().success(&account.id);
                return Ok((account, streams, slot));
            }
            Attempt::Failed(failure, headers) => {
                let description = describe(&failure);
                (failure, headers, description)
            }
        };
        // 5xx answers (but an overloaded model's), broken connections and timeouts count
        // against the account's circuit; retries are spent only while it is closed.
        if failure.is_backend_fault() {
            let may_retry = accounts.breakers().may_retry(&account.id);
            if let Some(open_for) = accounts.breakers().failure(&account.id, &description) {
                tracing::warn!(
                    account = %account.display_name(),
                    "the Codex backend failed {} requests in a row on this account \
                     ({description}); holding off for {} s",
                    crate::accounts::breaker::THRESHOLD,
                    open_for.as_secs()
                );
                metrics().failover(Failover::BackendFault);
                last_error = Some(failure.into());
                tried.push(account.id);
                continue;
            }
            if may_retry && transient_retries < TRANSIENT_RETRIES {
                transient_retries += 1;
                backoff(transient_retries).await;
                continue;
            }
            return Err(failure.into());
        }
        match failure {
            UpstreamFailure::Unauthorized => {
                // The backend rejected a token we thought valid: refresh once, retry once.
                let stale = account.tokens.access_token.expose().to_owned();
                match state
                    .refresher()
                    .fresh(&account.id, Need::Replacing(&stale))
                    .await
                {
                    Ok(refreshed) => match attempt(state, &refreshed, request).await {
                        Attempt::Started(streams) => return Ok((refreshed, streams, slot)),
                        Attempt::Failed(failure, _) => last_error = Some(failure.into()),
                    },
                    Err(error) => last_error = Some(auth_error(&error)),
                }
                metrics().failover(Failover::Unauthorized);
                tried.push(account.id);
            }
            UpstreamFailure::UsageLimit { resets_at, .. } => {
                let now = unix_now();
                let until = resets_at
                    .filter(|t| *t > now)
                    .unwrap_or(now + config.auth.rate_limit_backoff_seconds as i64);
                let quota = headers.and_then(|h| Quota::from_headers(&h, now));
                accounts.update(&account.id, |a| {
                    a.cooldown_until = Some(until);
                    if let Some(quota) = quota {
                        a.quota = quota;
                    }
                });
                tracing::warn!(
                    account = %account.display_name(),
                    "usage limit reached; cooling down until {}",
                    crate::clock::utc_clock(until, now)
                );
                if let Err(e) = accounts.persist().await {
                    tracing::error!("{e}");
                }
                metrics().failover(Failover::UsageLimit);
                last_error = Some(failure.into());
                tried.push(account.id);
            }
            // An overloaded model is not retried: the official client does not either.
            other => return Err(other.into()),
        }
    }
}

/// One attempt: the responses started, each watched up to its first event.
async fn attempt(state: &AppState, account: &Account, request: &TurnRequest<'_>) -> Attempt {
    let began = std::time::Instant::now();
    let attempt = attempt_inner(state, account, request).await;
    if matches!(attempt, Attempt::Started(_)) {
        metrics().upstream_started(began.elapsed().as_secs_f64());
    }
    attempt
}

async fn attempt_inner(state: &AppState, account: &Account, request: &TurnRequest<'_>) -> Attempt {
    let mut streams = match start_streams(state, account, request).await {
        Ok(streams) => streams,
        Err(error) => {
            let headers = match &error {
                UpstreamError::Status { headers, .. } => Some(headers.clone()),
                _ => None,
            };
            return Attempt::Failed(error.failure(), headers);
        }
    };
    if request.call == Call::Compact {
        return Attempt::Started(streams);
    }
    // A response that fails at once has reached no client yet: it fails over like an HTTP
    // error. One slow to begin is handed over as it is.
    let within = request.first_event_within;
    let first = match streams.as_mut_slice() {
        // The usual case, without a vector of futures: usually the first events came with the
        // headers, and no timer is needed either.
        [only] => {
            let read = only.first_failure();
            let mut read = std::pin::pin!(read);
            match futures_util::FutureExt::now_or_never(read.as_mut()) {
                Some(result) => Some(vec![result]),
                None => tokio::time::timeout(within, read)
                    .await
                    .ok()
                    .map(|result| vec![result]),
            }
        }
        many => {
            let firsts = many.iter_mut().map(|s| s.first_failure());
            tokio::time::timeout(within, futures_util::future::join_all(firsts))
                .await
                .ok()
        }
    };
    for result in first.into_iter().flatten() {
        let failure = match result {
            Ok(None) => continue,
            Ok(Some(failure)) => crate::upstream::errors::from_failure(&failure),
            Err(error) => error.failure(),
        };
        let headers = streams.first().map(|s| s.headers.clone());
        return Attempt::Failed(failure, headers);
    }
    Attempt::Started(streams)
}

/// For the log and the circuit breaker: what failed, in a few words.
fn describe(failure: &UpstreamFailure) -> String {
    match failure {
        UpstreamFailure::Other { message, .. } | UpstreamFailure::Unreachable { message, .. } => {
            message.clone()
        }
        UpstreamFailure::Timeout => "the Codex backend did not answer in time".into(),
        UpstreamFailure::GatewayTimeout => "the Codex backend answered 504".into(),
        other => format!("{other:?}"),
    }
}

/// A request slot on `candidate`, or — when it is full — on another usable account with one
/// free; otherwise waits in line on every usable account at once, for up to
/// `queue_timeout_seconds`, and takes the first slot that frees.
async fn take_slot(
    state: &AppState,
    candidate: String,
    prefer: Option<&str>,
    tried: &[String],
) -> Result<(String, OwnedSemaphorePermit), EngineError> {
    let accounts = state.accounts();
    if let Ok(slot) = accounts.slots(&candidate).try_acquire_owned() {
        return Ok((candidate, slot));
    }
    let mut others: Vec<String> = tried.to_vec();
    others.push(candidate.clone());
    let mut full = vec![candidate];
    while let Ok(other) = accounts.pick(prefer, &others, unix_now()) {
        if let Ok(slot) = accounts.slots(&other).try_acquire_owned() {
            return Ok((other, slot));
        }
        others.push(other.clone());
        full.push(other);
    }
    let wait = Duration::from_secs(state.config().auth.queue_timeout_seconds);
    let lines = full.into_iter().map(|id| {
        let slots = accounts.slots(&id);
        Box::pin(async move { slots.acquire_owned().await.map(|slot| (id, slot)) })
    });
    let _queued = metrics().queued();
    match tokio::time::timeout(wait, futures_util::future::select_all(lines)).await {
        Ok((Ok(taken), _, _)) => Ok(taken),
        _ => Err(EngineError::QueueTimeout {
            per_account: accounts.slots_per_account(),
            waited_secs: wait.as_secs(),
        }),
    }
}

/// 200 ms, 400 ms, … with ordinary jitter.
async fn backoff(attempt: u32) {
    let base = 200u64 << attempt.saturating_sub(1).min(6);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % (base / 5 + 1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// `fan_out` upstream requests at once on one account; the first failure cancels the others.
async fn start_streams(
    state: &AppState,
    account: &Account,
    request: &TurnRequest<'_>,
) -> Result<Vec<EventStream>, UpstreamError> {
    let upstream = state.upstream();
    let starts = (0..request.fan_out.max(1)).map(|_| async {
        match request.call {
            Call::Responses => {
                upstream
                    .responses(account, request.session, request.lite, request.wire)
                    .await
            }
            Call::Compact => {
                upstream
                    .compact(account, request.session, request.lite, request.wire)
                    .await
            }
        }
    });
    futures_util::future::try_join_all(starts).await
}

fn auth_error(error: &AuthError) -> EngineError {
    EngineError::Auth {
        needs_login: matches!(error, AuthError::NeedsLogin { .. }),
        message: error.to_string(),
    }
}
