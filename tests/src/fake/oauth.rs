//! The auth server (§1): browser authorize with PKCE, the token endpoint (code exchange,
//! refresh with rotation, API-key token exchange), revoke, and the device-code flow.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::accounts::{self, TokenSet};
use super::util::{b64url, now, random_bytes, random_token, sha256};
use super::{CLIENT_ID, Incoming, Rejection, Shared, jwt};

/// The scopes of §1.2, as a set.
const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    "api.connectors.read",
    "api.connectors.invoke",
];
/// Ports the real redirect allow-list has (§1.1).
const CALLBACK_PORTS: [u16; 2] = [1455, 1457];
const CODE_LIFETIME: i64 = 600;
const DEVICE_LIFETIME: i64 = 15 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    Active,
    /// Already exchanged for a new one: presenting it again is reuse.
    Rotated,
    Revoked,
    Expired,
}

#[derive(Debug)]
struct AuthCode {
    account: usize,
    redirect_uri: String,
    challenge: String,
    expires_at: i64,
    used: bool,
}

#[derive(Debug)]
struct Refresh {
    account: usize,
    state: RefreshState,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub device_auth_id: String,
    pub user_code: String,
    created_at: i64,
    decision: Option<Option<usize>>,
    /// Set once approved: the code, challenge and verifier handed to the poller.
    grant: Option<(String, String, String)>,
}

#[derive(Debug)]
pub struct AuthState {
    pub access_ttl: i64,
    pub login_account: usize,
    pub deny_next: Option<(String, String)>,
    pub extra_ports: BTreeSet<u16>,
    pub failures: VecDeque<u16>,
    /// Delay before `/oauth/token` answers (crash-during-refresh tests).
    pub token_delay_ms: u64,
    pub device_interval: u64,
    pub device_enabled: bool,
    pub device: BTreeMap<usize, Device>,
    codes: HashMap<String, AuthCode>,
    refresh: HashMap<String, Refresh>,
}

impl AuthState {
    pub fn new() -> Self {
        Self {
            access_ttl: 3600,
            login_account: 0,
            deny_next: None,
            extra_ports: BTreeSet::new(),
            failures: VecDeque::new(),
            token_delay_ms: 0,
            device_interval: 5,
            device_enabled: true,
            device: BTreeMap::new(),
            codes: HashMap::new(),
            refresh: HashMap::new(),
        }
    }
}

/// Mints a token set for an account and registers its refresh token.
pub fn issue_tokens(shared: &Shared, index: usize) -> Option<TokenSet> {
    shared.with(|inner| {
        let account = inner.accounts.get(index)?.clone();
        let refresh_token = accounts::new_refresh_token();
        inner.auth.refresh.insert(
            refresh_token.clone(),
            Refresh {
                account: index,
                state: RefreshState::Active,
            },
        );
        Some(TokenSet {
            id_token: account.id_token(&shared.secret, shared.issuer()),
            access_token: account.access_token(
                &shared.secret,
                shared.issuer(),
                inner.auth.access_ttl,
            ),
            refresh_token,
            account_id: account.account_id,
        })
    })
}

pub fn set_refresh_state(shared: &Shared, index: usize, state: RefreshState) {
    shared.with(|inner| {
        for entry in inner.auth.refresh.values_mut() {
            if entry.account == index && entry.state == RefreshState::Active {
                entry.state = state;
            }
        }
    });
}

/// What the auth server thinks of a refresh token (`None`: it never issued it).
pub fn refresh_state(shared: &Shared, token: &str) -> Option<RefreshState> {
    shared.with(|inner| inner.auth.refresh.get(token).map(|r| r.state))
}

pub fn decide_device(shared: &Shared, user_code: &str, account: Option<usize>) -> bool {
    shared.with(|inner| {
        let valid_account = account.is_none_or(|i| i < inner.accounts.len());
        match inner
            .auth
            .device
            .values_mut()
            .find(|d| d.user_code == user_code)
        {
            Some(device) if valid_account && device.decision.is_none() => {
                device.decision = Some(account);
                true
            }
            _ => false,
        }
    })
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Rejection {
    Rejection {
        status,
        body: json!({"error": error, "error_description": description}),
        headers: Vec::new(),
    }
}

fn refresh_error(code: &str, message: &str) -> Rejection {
    Rejection::api(StatusCode::UNAUTHORIZED, message, None, Some(code))
}

fn finish(shared: &Shared, seq: usize, result: Result<Response, Rejection>) -> Response {
    match result {
        Ok(response) => {
            shared.set_outcome(seq, response.status().as_u16(), None, None);
            response
        }
        Err(rejection) => {
            shared.set_outcome(
                seq,
                rejection.status.as_u16(),
                Some(rejection.reason()),
                None,
            );
            rejection.into_response()
        }
    }
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn is_allowed_redirect(inner_ports: &BTreeSet<u16>, redirect_uri: &str) -> bool {
    let Ok(url) = url::Url::parse(redirect_uri) else {
        return false;
    };
    url.scheme() == "http"
        && url.host_str() == Some("localhost")
        && url.path() == "/auth/callback"
        && url.query().is_none()
        && url
            .port()
            .is_some_and(|p| CALLBACK_PORTS.contains(&p) || inner_ports.contains(&p))
}

// ---- /oauth/authorize ----

pub async fn authorize(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let seq = shared.record(&req, None, None);
    let result = authorize_inner(&shared, &req.uri);
    finish(&shared, seq, result)
}

fn authorize_inner(shared: &Shared, uri: &Uri) -> Result<Response, Rejection> {
    let pairs = query_pairs(uri);
    let mut params: HashMap<&str, &str> = HashMap::new();
    for (k, v) in &pairs {
        if params.insert(k.as_str(), v.as_str()).is_some() {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("duplicate parameter {k}"),
            ));
        }
    }
    let get = |name: &str| {
        params
            .get(name)
            .copied()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("missing parameter {name}"),
                )
            })
    };
    let expect = |name: &str, want: &str| {
        let got = get(name)?;
        if got == want {
            Ok(())
        } else {
            Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("{name} must be `{want}`, got `{got}`"),
            ))
        }
    };
    expect("response_type", "code")?;
    if get("client_id")? != CLIENT_ID {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client_id",
        ));
    }
    let redirect_uri = get("redirect_uri")?;
    let extra = shared.with(|inner| inner.auth.extra_ports.clone());
    if !is_allowed_redirect(&extra, redirect_uri) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "redirect_uri `{redirect_uri}` is not on the allow-list (http://localhost:1455/auth/callback or :1457)"
            ),
        ));
    }
    let scopes: BTreeSet<&str> = get("scope")?.split(' ').collect();
    if scopes != SCOPES.iter().copied().collect() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("scope must be `{}`", SCOPES.join(" ")),
        ));
    }
    let challenge = get("code_challenge")?;
    if challenge.len() != 43 || super::util::b64url_decode(challenge).is_none_or(|b| b.len() != 32)
    {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_challenge must be base64url(SHA-256)",
        ));
    }
    expect("code_challenge_method", "S256")?;
    expect("id_token_add_organizations", "true")?;
    expect("codex_cli_simplified_flow", "true")?;
    let state = get("state")?;
    get("originator")?;
    let known = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "id_token_add_organizations",
        "codex_cli_simplified_flow",
        "state",
        "originator",
        "allowed_workspace_id",
    ];
    if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("unknown parameter {unknown}"),
        ));
    }

    let mut target = url::Url::parse(redirect_uri).map_err(|_| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "bad redirect_uri",
        )
    })?;
    let outcome = shared.with(|inner| {
        if let Some((error, description)) = inner.auth.deny_next.take() {
            return Err((error, description));
        }
        let code = format!("ac_{}", random_token::<32>());
        inner.auth.codes.insert(
            code.clone(),
            AuthCode {
                account: inner.auth.login_account,
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                expires_at: now() + CODE_LIFETIME,
                used: false,
            },
        );
        Ok(code)
    });
    match outcome {
        Ok(code) => {
            target
                .query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("scope", &SCOPES.join(" "))
                .append_pair("state", state);
        }
        Err((error, description)) => {
            target
                .query_pairs_mut()
                .append_pair("error", &error)
                .append_pair("error_description", &description)
                .append_pair("state", state);
        }
    }
    Ok(Redirect::to(target.as_str()).into_response())
}

// ---- /oauth/token ----

pub async fn token(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let content_type = req.header("content-type").unwrap_or_default().to_owned();
    let is_json = content_type.starts_with("application/json");
    let is_form = content_type.starts_with("application/x-www-form-urlencoded");
    let json_body: Option<Value> = is_json
        .then(|| serde_json::from_slice(&req.body).ok())
        .flatten();
    let form: Option<BTreeMap<String, String>> = is_form.then(|| {
        url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect()
    });
    let seq = shared.record(&req, json_body.clone(), form.clone());
    let delay = shared.with(|inner| inner.auth.token_delay_ms);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }

    if let Some(status) = shared.with(|inner| inner.auth.failures.pop_front()) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let rejection = oauth_error(status, "server_error", "scripted failure");
        return finish(&shared, seq, Err(rejection));
    }

    let fields: Option<BTreeMap<String, String>> = match (&json_body, &form) {
        (Some(Value::Object(map)), _) => Some(
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
        ),
        (_, Some(form)) => Some(form.clone()),
        _ => None,
    };
    let result = match fields {
        None => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body must be application/x-www-form-urlencoded (code exchange) or JSON (refresh)",
        )),
        Some(fields) => token_inner(&shared, &fields, is_json),
    };
    finish(&shared, seq, result.map(|v| Json(v).into_response()))
}

fn token_inner(
    shared: &Shared,
    fields: &BTreeMap<String, String>,
    is_json: bool,
) -> Result<Value, Rejection> {
    let field = |name: &str| {
        fields
            .get(name)
            .filter(|v| !v.is_empty())
            .map(String::as_str)
            .ok_or_else(|| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("missing {name}"),
                )
            })
    };
    if field("client_id")? != CLIENT_ID {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        ));
    }
    let allow_only = |allowed: &[&str]| match fields.keys().find(|k| !allowed.contains(&k.as_str()))
    {
        Some(unknown) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("unexpected field {unknown}"),
        )),
        None => Ok(()),
    };
    match field("grant_type")? {
        "authorization_code" => {
            if is_json {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the code exchange is a form post",
                ));
            }
            allow_only(&[
                "grant_type",
                "code",
                "redirect_uri",
                "client_id",
                "code_verifier",
            ])?;
            exchange_code(
                shared,
                field("code")?,
                field("redirect_uri")?,
                field("code_verifier")?,
            )
        }
        "refresh_token" => {
            allow_only(&["grant_type", "refresh_token", "client_id"])?;
            refresh(shared, field("refresh_token")?)
        }
        "urn:ietf:params:oauth:grant-type:token-exchange" => {
            allow_only(&[
                "grant_type",
                "client_id",
                "requested_token",
                "subject_token",
                "subject_token_type",
            ])?;
            if field("requested_token")? != "openai-api-key"
                || field("subject_token_type")? != "urn:ietf:params:oauth:token-type:id_token"
            {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "unsupported token exchange",
                ));
            }
            let claims = jwt::verify(&shared.secret, field("subject_token")?).map_err(|_| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "subject_token is not a valid id_token",
                )
            })?;
            let is_id_token = claims
                .get("aud")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == CLIENT_ID));
            if !is_id_token {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "subject_token is not an id_token",
                ));
            }
            Ok(
                json!({"access_token": format!("sk-proj-{}", random_token::<32>()), "token_type": "bearer"}),
            )
        }
        other => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type {other}"),
        )),
    }
}

fn exchange_code(
    shared: &Shared,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Value, Rejection> {
    let account = shared.with(|inner| {
        let entry = inner
            .auth
            .codes
            .get_mut(code)
            .ok_or("unknown authorization code")?;
        if entry.used {
            return Err("authorization code already used");
        }
        if entry.expires_at < now() {
            return Err("authorization code expired");
        }
        if entry.redirect_uri != redirect_uri {
            return Err("redirect_uri does not match the authorization request");
        }
        let computed = b64url(&sha256(verifier.as_bytes()));
        if !super::util::ct_eq(computed.as_bytes(), entry.challenge.as_bytes()) {
            return Err("code_verifier does not match code_challenge");
        }
        entry.used = true;
        Ok(entry.account)
    });
    let account =
        account.map_err(|why| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why))?;
    let tokens = issue_tokens(shared, account).ok_or_else(|| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "account no longer exists",
        )
    })?;
    let ttl = shared.with(|inner| inner.auth.access_ttl);
    Ok(json!({
        "id_token": tokens.id_token,
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": SCOPES.join(" "),
    }))
}

fn refresh(shared: &Shared, token: &str) -> Result<Value, Rejection> {
    let account = shared.with(|inner| {
        let Some(entry) = inner.auth.refresh.get_mut(token) else {
            return Err(refresh_error("refresh_token_invalidated", "Your refresh token has been invalidated. Please try signing in again."));
        };
        match entry.state {
            RefreshState::Active => {
                entry.state = RefreshState::Rotated;
                Ok(entry.account)
            }
            RefreshState::Rotated => Err(refresh_error(
                "refresh_token_reused",
                "Your refresh token has already been used to generate a new access token. Please try signing in again.",
            )),
            RefreshState::Expired => {
                Err(refresh_error("refresh_token_expired", "Your refresh token has expired. Please try signing in again."))
            }
            RefreshState::Revoked => Err(refresh_error(
                "refresh_token_invalidated",
                "Your refresh token has been invalidated. Please try signing in again.",
            )),
        }
    })?;
    let tokens = issue_tokens(shared, account).ok_or_else(|| {
        refresh_error("refresh_token_invalidated", "The account no longer exists.")
    })?;
    let ttl = shared.with(|inner| inner.auth.access_ttl);
    Ok(json!({
        "id_token": tokens.id_token,
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "token_type": "Bearer",
        "expires_in": ttl,
    }))
}

// ---- /oauth/revoke ----

pub async fn revoke(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let json_body: Option<Value> = serde_json::from_slice(&req.body).ok();
    let seq = shared.record(&req, json_body.clone(), None);
    let result = (|| {
        let obj = json_body
            .as_ref()
            .and_then(Value::as_object)
            .ok_or_else(|| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "JSON body required",
                )
            })?;
        if let Some(unknown) = obj
            .keys()
            .find(|k| !["token", "token_type_hint", "client_id"].contains(&k.as_str()))
        {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("unexpected field {unknown}"),
            ));
        }
        let token = obj.get("token").and_then(Value::as_str).ok_or_else(|| {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "missing token")
        })?;
        shared.with(|inner| {
            if let Some(entry) = inner.auth.refresh.get_mut(token) {
                entry.state = RefreshState::Revoked;
            }
        });
        Ok(Json(json!({})).into_response())
    })();
    finish(&shared, seq, result)
}

// ---- device code (§1.3) ----

fn json_object(req: &Incoming) -> Result<serde_json::Map<String, Value>, Rejection> {
    if !req
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json")
    {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "JSON body required",
        ));
    }
    match serde_json::from_slice(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "JSON object required",
        )),
    }
}

pub async fn device_usercode(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let seq = shared.record(&req, serde_json::from_slice(&req.body).ok(), None);
    let result = (|| {
        if !shared.with(|inner| inner.auth.device_enabled) {
            return Err(Rejection::detail(StatusCode::NOT_FOUND, "Not Found"));
        }
        let obj = json_object(&req)?;
        if obj.get("client_id").and_then(Value::as_str) != Some(CLIENT_ID) || obj.len() != 1 {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "body must be {\"client_id\": …}",
            ));
        }
        let letters: String = random_bytes::<4>()
            .iter()
            .map(|b| char::from(b'A' + b % 26))
            .collect();
        let digits: String = random_bytes::<5>()
            .iter()
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        let user_code = format!("{letters}-{digits}");
        let device_auth_id = format!("deviceauth_{}", random_token::<18>());
        let interval = shared.with(|inner| {
            let key = inner.auth.device.len();
            inner.auth.device.insert(
                key,
                Device {
                    device_auth_id: device_auth_id.clone(),
                    user_code: user_code.clone(),
                    created_at: now(),
                    decision: None,
                    grant: None,
                },
            );
            inner.auth.device_interval
        });
        Ok(Json(json!({
            "device_auth_id": device_auth_id,
            "user_code": user_code,
            // The real server sends the interval as a string.
            "interval": interval.to_string(),
        }))
        .into_response())
    })();
    finish(&shared, seq, result)
}

pub async fn device_token(State(shared): State<Arc<Shared>>, req: Incoming) -> Response {
    let seq = shared.record(&req, serde_json::from_slice(&req.body).ok(), None);
    let result = (|| {
        let obj = json_object(&req)?;
        let id = obj
            .get("device_auth_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let code = obj
            .get("user_code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let redirect_uri = format!("{}/deviceauth/callback", shared.issuer());
        shared.with(|inner| {
            let auth = &mut inner.auth;
            let device = auth
                .device
                .values_mut()
                .find(|d| d.device_auth_id == id && d.user_code == code)
                .ok_or_else(|| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "unknown device_auth_id or user_code"))?;
            if let Some((code, challenge, verifier)) = &device.grant {
                return Ok(json!({"authorization_code": code, "code_challenge": challenge, "code_verifier": verifier}));
            }
            match device.decision {
                None if now() - device.created_at > DEVICE_LIFETIME => {
                    Err(oauth_error(StatusCode::BAD_REQUEST, "expired_token", "The device code has expired."))
                }
                None => Err(Rejection::detail(StatusCode::FORBIDDEN, "authorization_pending")),
                Some(None) => Err(oauth_error(StatusCode::UNAUTHORIZED, "authorization_declined", "Denied")),
                Some(Some(account)) => {
                    // The server generates the PKCE pair for device logins.
                    let verifier = random_token::<64>();
                    let challenge = b64url(&sha256(verifier.as_bytes()));
                    let code = format!("ac_{}", random_token::<32>());
                    device.grant = Some((code.clone(), challenge.clone(), verifier.clone()));
                    auth.codes.insert(code.clone(), AuthCode {
                        account,
                        redirect_uri,
                        challenge: challenge.clone(),
                        expires_at: now() + CODE_LIFETIME,
                        used: false,
                    });
                    Ok(json!({"authorization_code": code, "code_challenge": challenge, "code_verifier": verifier}))
                }
            }
        })
        .map(|v| Json(v).into_response())
    })();
    finish(&shared, seq, result)
}

/// The page a person opens at `{issuer}/codex/device` to enter the code.
pub async fn device_page() -> Html<&'static str> {
    Html(
        "<!doctype html><title>Codex device login (fake)</title><form method=post>\
         <label>Code <input name=user_code></label> <label>Account email <input name=email></label>\
         <button>Approve</button> <button name=decline value=1>Decline</button></form>",
    )
}

pub async fn device_page_submit(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let code = form
        .get("user_code")
        .map(|c| c.trim().to_ascii_uppercase())
        .unwrap_or_default();
    let account = if form.contains_key("decline") {
        None
    } else {
        let email = form.get("email").map(String::as_str).unwrap_or_default();
        let index = shared
            .with(|inner| inner.accounts.iter().position(|a| a.email == email))
            .unwrap_or(0);
        Some(index)
    };
    if decide_device(&shared, &code, account) {
        (
            [(header::CONTENT_TYPE, "text/plain")],
            "done; return to your terminal\n",
        )
            .into_response()
    } else {
        (StatusCode::BAD_REQUEST, "unknown or already used code\n").into_response()
    }
}
