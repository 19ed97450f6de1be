//! `GET /backend-api/codex/models?client_version=…` with `ETag` / `If-None-Match` (§5.1).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::util::sha256;
use super::{Incoming, Rejection, Shared, catalog, gate};

fn client_version(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "client_version")
        .map(|(_, v)| v.into_owned())
}

fn body_and_etag(shared: &Shared, client_version: &str) -> (String, String) {
    let revision = shared.with(|inner| inner.catalog_revision);
    let body = catalog::catalog(client_version, revision).to_string();
    let digest = sha256(body.as_bytes());
    let etag = format!(
        "\"{}\"",
        digest[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    (body, etag)
}

/// The catalog ETag a client of this version sees (also sent as `x-models-etag`).
pub fn etag(shared: &Shared, client_version: &str) -> String {
    body_and_etag(shared, client_version).1
}

pub async fn handle(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let seq = shared.record(&req, None, None);
    let result = gate::admit(&shared, &req).and_then(|(account, _)| {
        let version = client_version(&req.uri)
            .filter(|v| super::util::parse_version(v).is_some())
            .ok_or_else(|| {
                Rejection::detail(StatusCode::BAD_REQUEST, "client_version is required")
            })?;
        Ok((account, version))
    });
    let (account, version) = match result {
        Ok(ok) => ok,
        Err(rejection) => {
            shared.set_outcome(
                seq,
                rejection.status.as_u16(),
                Some(rejection.reason()),
                None,
            );
            return rejection.into_response();
        }
    };
    let (body, etag) = body_and_etag(&shared, &version);
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let not_modified = req
        .header("if-none-match")
        .is_some_and(|given| given.split(',').any(|t| t.trim() == etag));
    let status = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    shared.set_outcome(seq, status.as_u16(), None, Some(&account.account_id));
    if not_modified {
        return (status, [(header::ETAG, etag_value)]).into_response();
    }
    (
        status,
        [
            (header::ETAG, etag_value),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response()
}
