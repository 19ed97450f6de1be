//! Login flows as daemon operations, against the fake auth server: browser PKCE, paste,
//! device code, auth.json import, logout.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use codex_proxy::accounts::{AccountState, Accounts};
use codex_proxy::auth::login::{LoginError, Logins};
use codex_proxy::config::{Config, RotationStrategy};
use codex_proxy::upstream::{Identity, Upstream};
use codex_proxy_tests::fake::{FakeUpstream, TOKEN_PATH};

struct Setup {
    fake: FakeUpstream,
    _dir: tempfile::TempDir,
    accounts: Arc<Accounts>,
    upstream: Arc<Upstream>,
    logins: Logins,
}

async fn setup() -> Setup {
    let fake = FakeUpstream::start().await.unwrap();
    let mut config = Config::default();
    config.upstream.base_url = fake.base_url().try_into().unwrap();
    config.upstream.auth_url = fake.auth_url().try_into().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let accounts = Arc::new(Accounts::load(dir.path(), RotationStrategy::LeastUsed).unwrap());
    let upstream =
        Arc::new(Upstream::new(&config, Identity::new(&config.client_identity, None)).unwrap());
    Setup {
        fake,
        _dir: dir,
        accounts,
        upstream,
        logins: Logins::default(),
    }
}

/// Follows the authorize URL as a browser would, without following the final redirect.
async fn approve_in_browser(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(
        response.status(),
        303,
        "{}",
        response.text().await.unwrap_or_default()
    );
    response.headers()["location"].to_str().unwrap().to_owned()
}

fn query(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn browser_login_with_pkce_stores_the_account() {
    let s = setup().await;
    s.fake.set_login_account(1);
    let login = s.logins.begin_browser(&s.upstream, 1455);
    assert_eq!(login.redirect_uri, "http://localhost:1455/auth/callback");
    // The fake checks every parameter of §1.2; its order is the official one.
    let order: Vec<String> = url::Url::parse(&login.authorize_url)
        .unwrap()
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    assert_eq!(
        order,
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "code_challenge",
            "code_challenge_method",
            "id_token_add_organizations",
            "codex_cli_simplified_flow",
            "state",
            "originator"
        ]
    );
    let callback = approve_in_browser(&login.authorize_url).await;
    assert_eq!(query(&callback, "state"), login.state);

    let outcome = s
        .logins
        .complete_browser(
            &s.accounts,
            &s.upstream,
            &login.state,
            &query(&callback, "code"),
        )
        .await
        .unwrap();
    assert_eq!(outcome.email.as_deref(), Some("bob@example.com"));
    assert_eq!(outcome.plan.as_deref(), Some("pro"));
    assert!(!outcome.replaced);
    let stored = s.accounts.get(&outcome.account_id).unwrap();
    assert_eq!(stored.chatgpt_account_id, s.fake.account(1).account_id);
    assert_eq!(stored.state, AccountState::Active);
    // On disk before the call returned.
    let reloaded = Accounts::load(s._dir.path(), RotationStrategy::LeastUsed).unwrap();
    assert_eq!(reloaded.all().len(), 1);

    // The same state cannot be used twice.
    let again = s
        .logins
        .complete_browser(
            &s.accounts,
            &s.upstream,
            &login.state,
            &query(&callback, "code"),
        )
        .await;
    assert_eq!(again.unwrap_err(), LoginError::UnknownState);
}

#[tokio::test]
async fn a_browser_login_never_completed_expires() {
    let s = setup().await;
    let logins = Logins::with_ttl(std::time::Duration::from_millis(200));
    let login = logins.begin_browser(&s.upstream, 1455);
    let callback = approve_in_browser(&login.authorize_url).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let late = logins
        .complete_paste(&s.accounts, &s.upstream, &callback)
        .await
        .unwrap_err();
    assert_eq!(late, LoginError::UnknownState);
    assert!(late.to_string().contains("start again"));
    assert!(
        s.fake.requests_to(TOKEN_PATH).is_empty(),
        "an expired login never reaches the code exchange"
    );
    assert!(s.accounts.all().is_empty());
}

#[tokio::test]
async fn pending_browser_logins_are_bounded() {
    let s = setup().await;
    let first = s.logins.begin_browser(&s.upstream, 1455);
    for _ in 0..40 {
        s.logins.begin_browser(&s.upstream, 1455);
    }
    let last = s.logins.begin_browser(&s.upstream, 1455);
    let callback = approve_in_browser(&first.authorize_url).await;
    assert_eq!(
        s.logins
            .complete_paste(&s.accounts, &s.upstream, &callback)
            .await
            .unwrap_err(),
        LoginError::UnknownState,
        "the oldest login made room"
    );
    let callback = approve_in_browser(&last.authorize_url).await;
    s.logins
        .complete_paste(&s.accounts, &s.upstream, &callback)
        .await
        .unwrap();
}

#[tokio::test]
async fn logging_in_again_replaces_the_tokens_in_place() {
    let s = setup().await;
    for round in 0..2 {
        let login = s.logins.begin_browser(&s.upstream, 1455);
        let callback = approve_in_browser(&login.authorize_url).await;
        let outcome = s
            .logins
            .complete_paste(&s.accounts, &s.upstream, &callback)
            .await
            .unwrap();
        assert_eq!(outcome.replaced, round == 1);
    }
    assert_eq!(s.accounts.all().len(), 1, "no duplicate");
}

#[tokio::test]
async fn paste_errors_are_explained() {
    let s = setup().await;
    s.fake
        .deny_next_authorize("access_denied", "missing_codex_entitlement");
    let login = s.logins.begin_browser(&s.upstream, 1455);
    let callback = approve_in_browser(&login.authorize_url).await;
    let error = s
        .logins
        .complete_paste(&s.accounts, &s.upstream, &callback)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        LoginError::Denied("Codex is not enabled for this workspace".into())
    );
    assert!(matches!(
        s.logins
            .complete_paste(&s.accounts, &s.upstream, "not a url")
            .await,
        Err(LoginError::BadUrl(_))
    ));
    let forged = "http://localhost:1455/auth/callback?code=x&state=never-issued";
    assert_eq!(
        s.logins
            .complete_paste(&s.accounts, &s.upstream, forged)
            .await
            .unwrap_err(),
        LoginError::UnknownState
    );
    assert!(s.accounts.all().is_empty());
}

#[tokio::test]
async fn device_code_login_waits_for_approval() {
    let s = setup().await;
    s.fake.set_device_interval(1);
    let device = s.logins.begin_device(&s.upstream).await.unwrap();
    assert_eq!(device.interval_seconds, 1);
    assert!(device.verification_url.ends_with("/codex/device"));
    let code = device.user_code.clone();
    let fake = &s.fake;
    let (outcome, ()) = tokio::join!(
        s.logins.wait_device(&s.accounts, &s.upstream, &device),
        async {
            // The person approves a moment later, as carol.
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            assert!(fake.approve_device_code(&code, 2));
        }
    );
    let outcome = outcome.unwrap();
    assert_eq!(outcome.email.as_deref(), Some("carol@example.com"));
    let exchanges: Vec<_> = s.fake.requests_to(TOKEN_PATH);
    let form = exchanges.last().unwrap().form.as_ref().unwrap();
    assert!(form["redirect_uri"].ends_with("/deviceauth/callback"));
}

#[tokio::test]
async fn a_declined_or_unavailable_device_login_says_so() {
    let s = setup().await;
    s.fake.set_device_interval(1);
    let device = s.logins.begin_device(&s.upstream).await.unwrap();
    assert!(s.fake.decline_device_code(&device.user_code));
    let error = s
        .logins
        .wait_device(&s.accounts, &s.upstream, &device)
        .await
        .unwrap_err();
    assert!(
        matches!(error, LoginError::Denied(ref why) if why.contains("authorization_declined")),
        "{error}"
    );
    s.fake.set_device_code_enabled(false);
    assert_eq!(
        s.logins.begin_device(&s.upstream).await.unwrap_err(),
        LoginError::DeviceUnavailable
    );
}

/// An auth server that cannot be reached is named as such, with the URL and the cause — not
/// as the Codex backend.
#[tokio::test]
async fn an_unreachable_auth_server_is_named() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut config = Config::default();
    config.upstream.auth_url = url.clone().try_into().unwrap();
    let upstream = Upstream::new(&config, Identity::new(&config.client_identity, None)).unwrap();
    let error = Logins::default()
        .begin_device(&upstream)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "cannot reach the auth server: POST {url}/api/accounts/deviceauth/usercode: "
        )),
        "{error}"
    );
    assert!(error.contains("refused"), "{error}");
    assert!(!error.contains("Codex backend"), "{error}");
}

#[tokio::test]
async fn import_then_logout_revokes_and_forgets() {
    let s = setup().await;
    let tokens = s.fake.issue_tokens(0);
    let outcome = s
        .logins
        .import(&s.accounts, &tokens.auth_json().to_string())
        .await
        .unwrap();
    assert_eq!(outcome.email.as_deref(), Some("alice@example.com"));
    let again = s
        .logins
        .import(&s.accounts, &tokens.auth_json().to_string())
        .await
        .unwrap();
    assert!(again.replaced);

    let removed = s
        .logins
        .logout(&s.accounts, &s.upstream, &outcome.account_id)
        .await
        .unwrap();
    assert_eq!(removed.email.as_deref(), Some("alice@example.com"));
    assert!(s.accounts.all().is_empty());
    let revoked = s.fake.requests_to("/oauth/revoke");
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        revoked[0].body.as_ref().unwrap()["token_type_hint"],
        "refresh_token"
    );
    // The revoked refresh token is dead at the auth server.
    let refresh = reqwest::Client::new()
        .post(format!("{}/oauth/token", s.fake.auth_url()))
        .json(&serde_json::json!({"client_id": codex_proxy::auth::refresh::CLIENT_ID, "grant_type": "refresh_token", "refresh_token": tokens.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 401);
    assert!(matches!(
        s.logins.logout(&s.accounts, &s.upstream, "nope").await,
        Err(LoginError::UnknownAccount(_))
    ));
}
