//! Every request the fake receives, as tests read it back.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::Shared;

/// One request as received, and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// Position in the log (0-based).
    pub seq: usize,
    pub method: String,
    /// The HTTP version it came in (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names lower-cased; repeated headers joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// Size of the body as sent (before decompression).
    pub body_bytes: usize,
    /// The JSON body after decoding `Content-Encoding`, when it was JSON.
    pub body: Option<Value>,
    /// A form body (OAuth), decoded.
    pub form: Option<BTreeMap<String, String>>,
    pub status: u16,
    /// Why the fake rejected the request, when it did.
    pub rejection: Option<String>,
    /// The account the bearer token belonged to.
    pub account_id: Option<String>,
    /// The client closed the connection before the response was fully sent.
    pub client_hung_up: bool,
    /// The whole response body was handed to the connection.
    pub completed: bool,
    /// A WebSocket turn's whole input as the backend saw it: the earlier turn's input and
    /// output before the items sent, when the turn named a `previous_response_id`.
    pub resolved_input: Option<Value>,
}

impl Recorded {
    /// The input the model saw: the resolved one of an incremental turn, else the body's.
    pub fn full_input(&self) -> Option<&Value> {
        self.resolved_input
            .as_ref()
            .or_else(|| self.body.as_ref().and_then(|b| b.get("input")))
    }
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Marks a recorded request as hung up if dropped before [`finish`](Self::finish) — the
/// response future or body stream is dropped by the server when the client goes away.
#[derive(Debug)]
pub struct HangupWatch {
    shared: Arc<Shared>,
    seq: usize,
    done: bool,
}

impl HangupWatch {
    pub fn new(shared: Arc<Shared>, seq: usize) -> Self {
        Self {
            shared,
            seq,
            done: false,
        }
    }

    /// The response was fully delivered (or the fake itself cut it on purpose).
    pub fn finish(&mut self) {
        self.done = true;
        self.shared.with(|inner| {
            if let Some(rec) = inner.records.get_mut(self.seq) {
                rec.completed = true;
            }
        });
    }
}

impl Drop for HangupWatch {
    fn drop(&mut self) {
        if !self.done {
            self.shared.with(|inner| {
                if let Some(rec) = inner.records.get_mut(self.seq) {
                    rec.client_hung_up = true;
                }
            });
        }
    }
}
