//! The request log: one record per request — surface, model, account, status, duration, time
//! to first byte, tokens, and the error for a failure; never a prompt or a token. Each goes to
//! the log at `info` and into a bounded ring of the most recent ones (`codexctl requests`).
//!
//! The HTTP layer opens an [`Observed`] per request and finishes it when the response body is
//! done (or the client left); the engine fills in the account, the model and the usage as the
//! turn runs, and a surface notes a failure that happens mid-stream.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_proxy_proto::RequestView;

use crate::upstream::wire::Usage;

/// How many records the ring keeps.
pub const RING: usize = 1000;
/// The longest error message a record keeps.
const MAX_ERROR: usize = 300;

/// Which API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Chat,
    Responses,
    Messages,
    CountTokens,
    Compact,
    Models,
    Backend,
    Ollama,
    Gemini,
    Images,
    Other,
}

impl Surface {
    /// The surface a path belongs to.
    pub fn of(path: &str) -> Self {
        match path {
            "/v1/chat/completions" => Self::Chat,
            "/v1/messages" => Self::Messages,
            "/v1/messages/count_tokens" => Self::CountTokens,
            "/v1/responses/compact" | "/backend-api/codex/responses/compact" => Self::Compact,
            "/v1/responses" | "/backend-api/codex/responses" => Self::Responses,
            p if p.starts_with("/v1/responses/") => Self::Responses,
            p if p.starts_with("/v1/images/") => Self::Images,
            p if p.starts_with("/v1beta/") => Self::Gemini,
            // `/v1/models/{model}:{method}`: Gemini under Google's SDK's default version.
            p if p.starts_with("/v1/models/") && p.contains(':') => Self::Gemini,
            p if p.starts_with("/v1/models") => Self::Models,
            p if p.starts_with("/api/") => Self::Ollama,
            p if p.starts_with("/backend-api/") => Self::Backend,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Responses => "responses",
            Self::Messages => "messages",
            Self::CountTokens => "count_tokens",
            Self::Compact => "compact",
            Self::Models => "models",
            Self::Backend => "backend",
            Self::Ollama => "ollama",
            Self::Gemini => "gemini",
            Self::Images => "images",
            Self::Other => "other",
        }
    }
}

/// What the engine and the surface learn about a request while it runs.
#[derive(Debug, Default)]
struct Learned {
    model: Option<String>,
    account: Option<String>,
    usage: Option<Usage>,
    error: Option<String>,
}

/// One request being observed; cheap to clone (the engine keeps a handle in its turn guard).
#[derive(Debug, Clone, Default)]
pub struct Observed(Arc<Mutex<Learned>>);

impl Observed {
    fn with<R>(&self, f: impl FnOnce(&mut Learned) -> R) -> R {
        let mut learned = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut learned)
    }

    /// The turn started on this account with this model.
    pub fn started(&self, account: &str, model: &str) {
        self.with(|l| {
            l.account = Some(account.to_owned());
            l.model = Some(model.to_owned());
        });
    }

    pub fn add_usage(&self, usage: &Usage) {
        self.with(|l| l.usage.get_or_insert_with(Usage::default).add(usage));
    }

    /// A failure the client was told about after the response began (the status says 200).
    pub fn failed(&self, message: &str) {
        self.with(|l| l.error = Some(bounded(message)));
    }
}

fn bounded(message: &str) -> String {
    if message.len() <= MAX_ERROR {
        return message.to_owned();
    }
    let mut end = MAX_ERROR;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// What the HTTP layer knows of a finished request.
#[derive(Debug)]
pub struct Finished<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub started: Instant,
    pub first_byte: Option<Instant>,
    /// The error message of an error response's body.
    pub error: Option<String>,
}

/// The most recent requests.
#[derive(Debug, Default)]
pub struct RequestLog {
    ring: Mutex<VecDeque<RequestView>>,
}

impl RequestLog {
    /// Finishes an observed request: logs it at `info` and keeps it.
    pub fn finish(&self, observed: &Observed, done: Finished<'_>) {
        let learned = observed.with(std::mem::take);
        let usage = learned.usage.unwrap_or_default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let record = RequestView {
            at_ms: crate::clock::unix_now_ms(),
            surface: Surface::of(done.path).as_str().to_owned(),
            method: done.method.to_owned(),
            path: done.path.to_owned(),
            model: learned.model,
            account: learned.account,
            status: done.status,
            duration_ms: ms(done.started.elapsed()),
            first_byte_ms: done.first_byte.map(|t| ms(t.duration_since(done.started))),
            input_tokens: usage.input_tokens,
            cached_tokens: usage.input_tokens_details.map_or(0, |d| d.cached_tokens),
            output_tokens: usage.output_tokens,
            reasoning_tokens: usage
                .output_tokens_details
                .map_or(0, |d| d.reasoning_tokens),
            error: learned.error.or(done.error.map(|e| bounded(&e))),
        };
        log(&record);
        crate::metrics::metrics().request(&record);
        let mut ring = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(record);
    }

    /// The most recent `limit` records that pass `keep`, newest first.
    pub fn recent(&self, limit: usize, keep: impl Fn(&RequestView) -> bool) -> Vec<RequestView> {
        let ring = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ring.iter()
            .rev()
            .filter(|r| keep(r))
            .take(limit)
            .cloned()
            .collect()
    }
}

fn log(r: &RequestView) {
    let failed = r.failed();
    let dash = "-";
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "codex_proxy::requests",
                surface = r.surface.as_str(),
                model = r.model.as_deref().unwrap_or(dash),
                account = r.account.as_deref().unwrap_or(dash),
                status = r.status,
                duration_ms = r.duration_ms,
                first_byte_ms = r.first_byte_ms,
                input_tokens = r.input_tokens,
                cached_tokens = r.cached_tokens,
                output_tokens = r.output_tokens,
                error = r.error.as_deref(),
                "{} {}",
                r.method,
                r.path,
            )
        };
    }
    if failed {
        line!(warn);
    } else {
        line!(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(path: &str, status: u16) -> Finished<'_> {
        Finished {
            method: "POST",
            path,
            status,
            started: Instant::now(),
            first_byte: None,
            error: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_filters() {
        let log = RequestLog::default();
        for i in 0..RING + 5 {
            let observed = Observed::default();
            if i % 2 == 0 {
                observed.started("acct_1", "gpt-5.5");
                observed.add_usage(&Usage {
                    input_tokens: 10,
                    output_tokens: 2,
                    total_tokens: 12,
                    ..Usage::default()
                });
            }
            let status = if i % 3 == 0 { 500 } else { 200 };
            log.finish(&observed, finished("/v1/chat/completions", status));
        }
        let all = log.recent(usize::MAX, |_| true);
        assert_eq!(all.len(), RING);
        let failed = log.recent(5, |r| r.status >= 400);
        assert_eq!(failed.len(), 5);
        assert!(
            failed
                .iter()
                .all(|r| r.status == 500 && r.surface == "chat")
        );
        assert!(all[0].at_ms >= all[RING - 1].at_ms);
    }

    #[test]
    fn a_mid_stream_failure_and_long_errors_are_kept_bounded() {
        let log = RequestLog::default();
        let observed = Observed::default();
        observed.failed(&"é".repeat(1000));
        log.finish(&observed, finished("/v1/messages", 200));
        let r = &log.recent(1, |_| true)[0];
        assert_eq!(r.surface, "messages");
        assert!(r.error.as_ref().unwrap().len() <= MAX_ERROR + '…'.len_utf8());
        assert_eq!(Surface::of("/v1/responses/resp_1"), Surface::Responses);
        assert_eq!(Surface::of("/nope"), Surface::Other);
        assert_eq!(Surface::of("/api/chat"), Surface::Ollama);
        assert_eq!(
            Surface::of("/v1beta/models/gpt-5.5:generateContent"),
            Surface::Gemini
        );
        assert_eq!(
            Surface::of("/v1/models/gpt-5.5:streamGenerateContent"),
            Surface::Gemini
        );
        assert_eq!(Surface::of("/v1/models/gpt-5.5"), Surface::Models);
        assert_eq!(Surface::of("/v1/images/edits"), Surface::Images);
    }
}
