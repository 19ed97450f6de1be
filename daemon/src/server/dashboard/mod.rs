//! The web dashboard, served from the binary at `/dashboard/`: sign in once with an API key
//! (or `[dashboard] password`) into a session cookie, then the pool, its quota, usage and the
//! latest requests, live. The data comes from the same daemon code `codexctl` uses (the
//! control module's reports, the request log, the usage history).
//!
//! Security: a session cookie (`HttpOnly`, `SameSite=Strict`, `Path=/dashboard`, expiring),
//! sign-in attempts rate limited, every state-changing request checked for a same-origin
//! `Origin` and the session's CSRF token, a strict Content-Security-Policy (no inline script
//! or style), `X-Frame-Options: DENY`, `Referrer-Policy: same-origin`, nothing cached. The
//! listener's `Host` check (DNS rebinding) applies here as everywhere.

mod device;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AppState;

use session::Sessions;

/// The dashboard's routes' state: the daemon's, and the dashboard's own sessions (kept here,
/// not in `AppState`: nothing below the server knows of the dashboard).
#[derive(Clone)]
struct Dashboard {
    app: AppState,
    sessions: Arc<Sessions>,
}

impl axum::extract::FromRef<Dashboard> for AppState {
    fn from_ref(dashboard: &Dashboard) -> Self {
        dashboard.app.clone()
    }
}

impl axum::extract::FromRef<Dashboard> for Arc<Sessions> {
    fn from_ref(dashboard: &Dashboard) -> Self {
        dashboard.sessions.clone()
    }
}

const INDEX: &str = include_str!("assets/index.html");
const SIGNIN: &str = include_str!("assets/signin.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The dashboard's routes (each answers 404 while `[dashboard] enabled = false`).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::<Dashboard>::new()
        .route("/", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard", get(|| async { Redirect::to("/dashboard/") }))
        .route("/dashboard/", get(index))
        .route("/dashboard/signin", get(signin_page).post(signin))
        .route("/dashboard/signout", post(signout))
        .route(
            "/dashboard/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset(APP_CSS, "text/css") }),
        )
        .route("/dashboard/api/status", get(api_status))
        .route("/dashboard/api/requests", get(api_requests))
        .route("/dashboard/api/usage", get(api_usage))
        .route("/dashboard/api/control", post(api_control))
        .route(
            "/dashboard/api/login/device",
            post(device_start)
                .get(device_progress)
                .delete(device_cancel),
        )
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(Dashboard {
            app: state.clone(),
            sessions: Arc::new(Sessions::default()),
        })
}

/// Headers every dashboard answer carries.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn html(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn enabled(state: &AppState) -> bool {
    state.config().dashboard.enabled
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not found").into_response()
}

async fn index(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    if !enabled(&state) {
        return not_found();
    }
    match sessions.session(&state, &headers) {
        Some(session) => html(INDEX.replace("{{csrf}}", &session.csrf)),
        None => Redirect::to("/dashboard/signin").into_response(),
    }
}

async fn signin_page(State(state): State<AppState>) -> Response {
    if !enabled(&state) {
        return not_found();
    }
    html(SIGNIN.replace("{{message}}", ""))
}

async fn signin(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !enabled(&state) {
        return not_found();
    }
    if !session::same_origin(&headers) {
        return forbidden("This sign-in did not come from the dashboard's own page.");
    }
    if let Some(wait) = sessions.throttled() {
        let page = SIGNIN.replace(
            "{{message}}",
            &format!("<p class=\"error\">Too many attempts; try again in {wait} s.</p>"),
        );
        let mut response = (StatusCode::TOO_MANY_REQUESTS, html(page)).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return response;
    }
    let key = url::form_urlencoded::parse(&body)
        .find(|(name, _)| name == "key")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !session::key_matches(&state, key.trim()) {
        sessions.failed_attempt();
        let page = SIGNIN.replace(
            "{{message}}",
            "<p class=\"error\">That is not the key. <code>codexctl key show</code> prints it.</p>",
        );
        return (StatusCode::UNAUTHORIZED, html(page)).into_response();
    }
    let hours = state.config().dashboard.session_hours;
    let token = sessions.open(hours, key.trim());
    let mut response = Redirect::to("/dashboard/").into_response();
    if let Ok(cookie) =
        HeaderValue::from_str(&session::cookie(&token, hours, session::over_tls(&headers)))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn signout(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = guard_change(&state, &sessions, &headers) {
        return denied.into_response();
    }
    sessions.close(&headers);
    let mut response = Redirect::to("/dashboard/signin").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(session::CLEAR_COOKIE),
    );
    response
}

fn forbidden(message: &str) -> Response {
    (StatusCode::FORBIDDEN, message.to_owned()).into_response()
}

/// A state-changing request: a session, a same-origin `Origin` and the CSRF token.
fn guard_change(
    state: &AppState,
    sessions: &Sessions,
    headers: &HeaderMap,
) -> Result<(), session::Denied> {
    if !enabled(state) {
        return Err(session::Denied::Off);
    }
    sessions.check_change(state, headers).map(|_| ())
}

/// The JSON APIs the page reads: a session is required.
fn guard(
    state: &AppState,
    sessions: &Sessions,
    headers: &HeaderMap,
) -> Result<(), session::Denied> {
    if !enabled(state) {
        return Err(session::Denied::Off);
    }
    sessions
        .session(state, headers)
        .map(|_| ())
        .ok_or(session::Denied::SignIn)
}

async fn api_status(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = guard(&state, &sessions, &headers) {
        return denied.into_response();
    }
    let codex_proxy_proto::Response::Status(report) = crate::control::status::report(&state) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // Each account's latest failure, from the request log.
    let mut last_errors = serde_json::Map::new();
    for account in &report.accounts {
        let failed = state.requests().recent(1, |r| {
            r.account.as_deref() == Some(account.id.as_str()) && r.failed()
        });
        if let Some(r) = failed.into_iter().next() {
            last_errors.insert(
                account.id.clone(),
                serde_json::json!({"at_ms": r.at_ms, "status": r.status, "error": r.error}),
            );
        }
    }
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    if let Some(object) = body.as_object_mut() {
        object.insert("last_errors".into(), last_errors.into());
    }
    axum::Json(body).into_response()
}

#[derive(serde::Deserialize)]
struct RequestsQuery {
    #[serde(default)]
    failed: bool,
    #[serde(default)]
    surface: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn api_requests(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    Query(q): Query<RequestsQuery>,
) -> Response {
    if let Err(denied) = guard(&state, &sessions, &headers) {
        return denied.into_response();
    }
    // What `codexctl requests` answers.
    let listed = crate::control::run(
        &state,
        codex_proxy_proto::Request::Requests {
            limit: u32::try_from(q.limit.unwrap_or(200)).unwrap_or(u32::MAX),
            failed: q.failed,
            surface: q.surface.filter(|s| !s.is_empty()),
        },
    )
    .await;
    let codex_proxy_proto::Response::Requests { requests } = listed else {
        return answer(&listed);
    };
    axum::Json(serde_json::json!({"requests": requests})).into_response()
}

#[derive(serde::Deserialize)]
struct UsageQuery {
    #[serde(default)]
    range: Option<String>,
}

async fn api_usage(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    Query(q): Query<UsageQuery>,
) -> Response {
    if let Err(denied) = guard(&state, &sessions, &headers) {
        return denied.into_response();
    }
    let daily = q.range.as_deref() == Some("month");
    match crate::control::run(&state, codex_proxy_proto::Request::UsageHistory { daily }).await {
        codex_proxy_proto::Response::UsageHistory(view) => axum::Json(view).into_response(),
        other => answer(&other),
    }
}

/// The largest action body: an imported `auth.json` is a few kilobytes.
const MAX_ACTION_BYTES: usize = 64 * 1024;

/// The HTTP status for a control answer.
fn status_of(response: &codex_proxy_proto::Response) -> StatusCode {
    use codex_proxy_proto::ErrorKind;
    match response {
        codex_proxy_proto::Response::Error(e) => match e.kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Invalid | ErrorKind::Ambiguous | ErrorKind::BadFrame => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::Busy => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_GATEWAY,
        },
        _ => StatusCode::OK,
    }
}

fn answer(response: &codex_proxy_proto::Response) -> Response {
    (status_of(response), axum::Json(response)).into_response()
}

fn invalid(message: impl Into<String>) -> Response {
    answer(&codex_proxy_proto::Response::Error(
        codex_proxy_proto::ErrorReply::new(codex_proxy_proto::ErrorKind::Invalid, message),
    ))
}

/// Every account, rotation and key action: the body is a control request, run by the same
/// code that answers `codexctl` (`control::run`); the answer is the control response.
async fn api_control(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = guard_change(&state, &sessions, &headers) {
        return denied.into_response();
    }
    if body.len() > MAX_ACTION_BYTES {
        return invalid(format!(
            "the request is larger than {} KiB",
            MAX_ACTION_BYTES / 1024
        ));
    }
    let request: codex_proxy_proto::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return invalid(format!("not a control request: {e}")),
    };
    // Rotating the key ends every session signed in with the old one, but this one.
    let rotation = matches!(request, codex_proxy_proto::Request::KeyRotate)
        .then(|| sessions.rotation(&headers));
    let response = crate::control::run(&state, request).await;
    if let (Some(rotation), codex_proxy_proto::Response::Key { key, .. }) = (rotation, &response) {
        rotation.done(key.expose());
    }
    answer(&response)
}

#[derive(serde::Deserialize)]
struct DeviceQuery {
    id: String,
}

/// Starts a device-code login: answers `{id, user_code, verification_url, expires_in_seconds}`.
async fn device_start(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = guard_change(&state, &sessions, &headers) {
        return denied.into_response();
    }
    match sessions.devices().start(&state).await {
        Ok((id, shown)) => {
            let mut body = serde_json::to_value(&shown).unwrap_or_default();
            if let Some(object) = body.as_object_mut() {
                object.insert("id".into(), id.into());
            }
            axum::Json(body).into_response()
        }
        Err(refused) => answer(&refused),
    }
}

/// `{"response":"waiting"}` until the login is approved, then its outcome (once).
async fn device_progress(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    Query(q): Query<DeviceQuery>,
) -> Response {
    if let Err(denied) = guard(&state, &sessions, &headers) {
        return denied.into_response();
    }
    match sessions.devices().progress(&q.id) {
        device::Progress::Waiting => {
            axum::Json(serde_json::json!({"response": "waiting"})).into_response()
        }
        device::Progress::Done(outcome) => answer(&outcome),
        device::Progress::Unknown => answer(&codex_proxy_proto::Response::Error(
            codex_proxy_proto::ErrorReply::new(
                codex_proxy_proto::ErrorKind::NotFound,
                "no such device login (it finished, expired or was cancelled)",
            ),
        )),
    }
}

async fn device_cancel(
    State(state): State<AppState>,
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    Query(q): Query<DeviceQuery>,
) -> Response {
    if let Err(denied) = guard_change(&state, &sessions, &headers) {
        return denied.into_response();
    }
    if sessions.devices().cancel(&q.id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
