//! `usage`: per-account and per-model counts.

use codex_proxy_proto::{AccountUsage, ModelUsage, Response, UsageReport};

use crate::app::AppState;

pub fn report(state: &AppState) -> Response {
    let accounts = state
        .accounts()
        .all()
        .iter()
        .map(|a| AccountUsage {
            id: a.id.clone(),
            name: a.display_name().to_owned(),
            requests: a.requests,
            models: a
                .usage
                .iter()
                .map(|(model, u)| {
                    (
                        model.clone(),
                        ModelUsage {
                            responses: u.responses,
                            input_tokens: u.input_tokens,
                            cached_tokens: u.cached_tokens,
                            output_tokens: u.output_tokens,
                            reasoning_tokens: u.reasoning_tokens,
                        },
                    )
                })
                .collect(),
        })
        .collect();
    Response::Usage(UsageReport { accounts })
}
