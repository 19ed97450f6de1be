//! What a test wants the next `/responses` call to do.
//!
//! A [`Script`] is chosen per request: a rule whose marker appears in the request, else the
//! next queued script, else the default script, else the built-in echo reply.

use serde::{Deserialize, Serialize};

/// Behaviour of one `/responses` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    pub reply: Reply,
    /// Delay before each delta event.
    #[serde(default)]
    pub pace_ms: u64,
    /// Delay before the response head is sent.
    #[serde(default)]
    pub first_byte_delay_ms: u64,
    /// Delay between the last event and the end of the body (a backend whose HTTP/2
    /// END_STREAM or final chunk comes a moment after `response.completed`).
    #[serde(default)]
    pub end_delay_ms: u64,
    /// Extra response headers.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// A 200 SSE stream with these output items and ending.
    Stream {
        items: Vec<OutputItem>,
        #[serde(default)]
        ending: Ending,
        /// Usage to report; computed from the request and output when absent.
        #[serde(default)]
        usage: Option<Usage>,
    },
    /// 429 `usage_limit_reached` (the account also shows 100 % used until the reset).
    UsageLimit { resets_in_seconds: i64 },
    /// 429 `usage_not_included`.
    UsageNotIncluded,
    /// 401 as for an expired access token (`token_expired`).
    TokenExpired,
    /// 500 internal error.
    InternalError,
    /// 503 `server_is_overloaded`.
    Overloaded,
    /// 403 Cloudflare "blocked" HTML page.
    CloudflareBlocked,
    /// Anything else, verbatim.
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

/// One output item of a streamed response. Deltas are sent exactly as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// Summary parts, each as its deltas. Sent only when the request asks for summaries
    /// (`reasoning.summary`), as the backend does; the item itself is always sent.
    Reasoning {
        summary: Vec<Vec<String>>,
    },
    Message {
        deltas: Vec<String>,
    },
    FunctionCall {
        name: String,
        #[serde(default)]
        call_id: Option<String>,
        argument_deltas: Vec<String>,
    },
    CustomToolCall {
        name: String,
        #[serde(default)]
        call_id: Option<String>,
        input_deltas: Vec<String>,
    },
    /// The `image_generation` tool's call: the image (base64) and the prompt the model gave it.
    ImageGenerationCall {
        result: String,
        #[serde(default)]
        revised_prompt: Option<String>,
    },
}

/// How a stream ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ending {
    /// `response.completed` with usage.
    #[default]
    Completed,
    /// `response.failed` with this error code (§4.2).
    Failed { code: String, message: String },
    /// `response.incomplete` (`max_output_tokens`, `content_filter`).
    Incomplete { reason: String },
    /// The body just ends after the items, with no terminal event.
    NoTerminal,
    /// The connection is cut after `after_events` events (all item events when absent).
    Disconnect {
        #[serde(default)]
        after_events: Option<usize>,
    },
    /// The backend goes silent after `after_events` events (all item events when absent),
    /// keeping the connection open until the client gives up.
    Stall {
        #[serde(default)]
        after_events: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

/// Splits text into word-sized deltas (each keeps its trailing space), like a model streams.
pub fn word_deltas(text: &str) -> Vec<String> {
    let mut deltas = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        current.push(ch);
        if ch == ' ' || ch == '\n' {
            deltas.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        deltas.push(current);
    }
    deltas
}

/// Splits text into `n` nearly equal deltas on character boundaries.
pub fn n_deltas(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

impl Script {
    pub fn new(reply: Reply) -> Self {
        Self {
            reply,
            pace_ms: 0,
            first_byte_delay_ms: 0,
            end_delay_ms: 0,
            headers: Vec::new(),
        }
    }

    fn stream(items: Vec<OutputItem>) -> Self {
        Self::new(Reply::Stream {
            items,
            ending: Ending::Completed,
            usage: None,
        })
    }

    /// A text answer streamed word by word.
    pub fn text(text: &str) -> Self {
        Self::stream(vec![OutputItem::Message {
            deltas: word_deltas(text),
        }])
    }

    /// A text answer with exactly these deltas.
    pub fn deltas<S: Into<String>>(deltas: impl IntoIterator<Item = S>) -> Self {
        Self::stream(vec![OutputItem::Message {
            deltas: deltas.into_iter().map(Into::into).collect(),
        }])
    }

    /// One function call (arguments split into a few deltas).
    pub fn function_call(name: &str, arguments: &str) -> Self {
        Self::function_calls(&[(name, arguments)])
    }

    /// Several function calls in one response (parallel tool calls).
    pub fn function_calls(calls: &[(&str, &str)]) -> Self {
        Self::stream(
            calls
                .iter()
                .map(|(name, arguments)| OutputItem::FunctionCall {
                    name: (*name).to_owned(),
                    call_id: None,
                    argument_deltas: n_deltas(arguments, 3),
                })
                .collect(),
        )
    }

    /// A freeform (custom) tool call such as `apply_patch`.
    pub fn custom_tool_call(name: &str, input: &str) -> Self {
        Self::stream(vec![OutputItem::CustomToolCall {
            name: name.to_owned(),
            call_id: None,
            input_deltas: n_deltas(input, 3),
        }])
    }

    /// An image made by the `image_generation` tool, after a short reasoning.
    pub fn image(base64: &str, revised_prompt: &str) -> Self {
        Self::stream(vec![
            OutputItem::Reasoning {
                summary: vec![word_deltas("Drawing it.")],
            },
            OutputItem::ImageGenerationCall {
                result: base64.to_owned(),
                revised_prompt: Some(revised_prompt.to_owned()),
            },
        ])
    }

    pub fn usage_limit(resets_in_seconds: i64) -> Self {
        Self::new(Reply::UsageLimit { resets_in_seconds })
    }

    pub fn failed(code: &str, message: &str) -> Self {
        Self::text("partial ").ending(Ending::Failed {
            code: code.into(),
            message: message.into(),
        })
    }

    /// `response.failed` before any output item.
    pub fn failed_at_once(code: &str, message: &str) -> Self {
        Self::stream(Vec::new()).ending(Ending::Failed {
            code: code.into(),
            message: message.into(),
        })
    }

    pub fn incomplete(reason: &str) -> Self {
        Self::text("cut short ").ending(Ending::Incomplete {
            reason: reason.into(),
        })
    }

    /// Prepends a reasoning item with this summary (one part, word deltas).
    #[must_use]
    pub fn with_reasoning(mut self, summary: &str) -> Self {
        if let Reply::Stream { items, .. } = &mut self.reply {
            items.insert(
                0,
                OutputItem::Reasoning {
                    summary: vec![word_deltas(summary)],
                },
            );
        }
        self
    }

    #[must_use]
    pub fn ending(mut self, new: Ending) -> Self {
        if let Reply::Stream { ending, .. } = &mut self.reply {
            *ending = new;
        }
        self
    }

    #[must_use]
    pub fn with_usage(mut self, new: Usage) -> Self {
        if let Reply::Stream { usage, .. } = &mut self.reply {
            *usage = Some(new);
        }
        self
    }

    /// Cuts the connection after `events` SSE events.
    #[must_use]
    pub fn disconnect_after(self, events: usize) -> Self {
        self.ending(Ending::Disconnect {
            after_events: Some(events),
        })
    }

    /// Goes silent after `events` events, holding the connection open.
    #[must_use]
    pub fn stall_after(self, events: usize) -> Self {
        self.ending(Ending::Stall {
            after_events: Some(events),
        })
    }

    #[must_use]
    pub fn paced(mut self, pace_ms: u64) -> Self {
        self.pace_ms = pace_ms;
        self
    }

    #[must_use]
    pub fn slow_first_byte(mut self, delay_ms: u64) -> Self {
        self.first_byte_delay_ms = delay_ms;
        self
    }

    #[must_use]
    pub fn slow_end(mut self, delay_ms: u64) -> Self {
        self.end_delay_ms = delay_ms;
        self
    }

    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_split_without_losing_text() {
        assert_eq!(word_deltas("Hello big world"), ["Hello ", "big ", "world"]);
        assert_eq!(n_deltas("héllo wörld", 3).concat(), "héllo wörld");
        assert_eq!(n_deltas("", 3), Vec::<String>::new());
    }

    #[test]
    fn scripts_round_trip_as_json() {
        let script = Script::text("hi")
            .with_reasoning("thinking")
            .paced(5)
            .disconnect_after(3);
        let json = serde_json::to_string(&script).unwrap();
        assert_eq!(serde_json::from_str::<Script>(&json).unwrap(), script);
    }
}
