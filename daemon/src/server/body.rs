//! Request bodies: bounded in size, in time and — all requests together — in memory.
//!
//! - A `Content-Length` over [`MAX_BODY_BYTES`] is refused before a byte of the body is read; a
//!   body without one is cut off there.
//! - The bodies being read and translated at once share a budget (`server.request_memory_mb`).
//!   A request whose body does not fit waits for room (as long as `auth.queue_timeout_seconds`,
//!   reading nothing meanwhile), then gets a 503 with `Retry-After`. Its share is held until
//!   the request has been sent upstream, then released.
//! - The whole body must arrive within `server.body_timeout_seconds` (408 otherwise).
//!
//! After a large request, freed memory is handed back to the system (see
//! [`crate::service::memory`]), so a burst of big bodies does not leave the daemon large.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;

use super::{ApiError, AppState};

/// Largest request body accepted (images inline as data URLs make bodies big).
pub const MAX_BODY_BYTES: usize = 32 << 20;
/// The budget is counted in KiB (a semaphore's permits are `u32`).
const UNIT: usize = 1024;
/// After a body this large is done with, the allocator is asked to return free memory.
const TRIM_AFTER: usize = 1 << 20;

pub use crate::body_budget::BodyBudget;

/// A body's share of the budget, released (and large memory returned) when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes >= TRIM_AFTER {
            crate::service::memory::trim_soon();
        }
    }
}

/// A JSON body as a typed request; a bad one is a 400 naming the field at fault.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // The plain parser first; only a body it refuses is parsed again to name the bad field.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(
                format!("We could not parse the JSON body of your request: {inner}"),
                None,
            )
        } else {
            ApiError::invalid(format!("Invalid request at '{path}': {inner}"), Some(&path))
        }
    })?;
    // The object reads fine, yet the plain parser refused the body: something follows it.
    de.end().map_err(|e| {
        ApiError::invalid(
            format!("We could not parse the JSON body of your request: {e}"),
            None,
        )
    })?;
    Ok(value)
}

/// A request body read whole, with its share of the memory budget.
#[derive(Debug)]
pub struct JsonBody {
    pub bytes: Bytes,
    pub reservation: Reservation,
}

fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX)
}

fn too_large(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "request_too_large",
        format!(
            "The request body {what}; codex-proxy accepts at most {} MiB.",
            MAX_BODY_BYTES >> 20
        ),
    )
}

fn busy(budget: &BodyBudget, waited: Duration) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "request_memory_exhausted",
        format!(
            "codex-proxy is busy with other large requests (server.request_memory_mb = {} MiB in \
             flight); waited {} s for room. Try again shortly.",
            budget.megabytes(),
            waited.as_secs()
        ),
    )
    .retry_after(1)
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    ApiError::invalid("The Content-Length header is not a number.", None)
                })
            })
            .transpose()?;
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large("is larger than that"));
        }
        let config = state.config();
        let budget = state.body_budget();
        let wait = Duration::from_secs(config.auth.queue_timeout_seconds);
        // With a known length its whole share is taken before reading; otherwise it grows
        // with what arrives, and a body that finds no room is refused at once (waiting with a
        // half-read body could hold room others need to finish).
        let mut permit = match declared {
            Some(n) => {
                let want = units(n as usize).min(budget.total_units());
                let taken =
                    tokio::time::timeout(wait, budget.units().clone().acquire_many_owned(want))
                        .await
                        .map_err(|_| busy(budget, wait))?
                        .map_err(|_| busy(budget, wait))?;
                Some(taken)
            }
            None => None,
        };
        let capacity = declared.map_or(0, |n| n as usize);
        let read = async {
            let mut body = request.into_body();
            let mut bytes = budget.buffer(capacity);
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    ApiError::invalid(format!("The request body could not be read: {e}"), None)
                })?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if bytes.len() + data.len() > MAX_BODY_BYTES {
                    return Err(too_large("grew past that"));
                }
                bytes.extend_from_slice(&data);
                let held = permit.as_ref().map_or(0, |p| p.num_permits());
                let needed = units(bytes.len()) as usize;
                if needed > held {
                    let more = budget
                        .units()
                        .clone()
                        .try_acquire_many_owned((needed - held) as u32)
                        .map_err(|_| busy(budget, Duration::ZERO))?;
                    match &mut permit {
                        Some(permit) => permit.merge(more),
                        None => permit = Some(more),
                    }
                }
            }
            Ok(budget.freeze(bytes))
        };
        let limit = Duration::from_secs(config.server.body_timeout_seconds);
        let bytes = tokio::time::timeout(limit, read).await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "request_timeout",
                format!(
                    "The request body did not arrive within {} s (server.body_timeout_seconds).",
                    limit.as_secs()
                ),
            )
        })??;
        let size = bytes.len();
        Ok(Self {
            bytes,
            reservation: Reservation {
                _permit: permit,
                bytes: size,
            },
        })
    }
}
