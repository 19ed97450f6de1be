//! The fake auth server: browser PKCE, code exchange, refresh rotation, revoke, device code.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use codex_proxy_tests::fake::{CLIENT_ID, FakeUpstream, TOKEN_PATH, decode_claims};
use codex_proxy_tests::harness::{OfficialClient, authorize_url, pkce_pair};
use serde_json::{Value, json};

const REDIRECT: &str = "http://localhost:1455/auth/callback";

fn http() -> reqwest::Client {
    // The authorize step answers with a redirect to the local callback; read it, don't follow it.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Runs the authorize step; returns the redirect's query parameters.
async fn authorize(fake: &FakeUpstream, url: &str) -> (u16, Vec<(String, String)>) {
    let response = http().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let pairs = location
        .map(|l| {
            url::Url::parse(&l)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let _ = fake;
    (status, pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn exchange(
    fake: &FakeUpstream,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (u16, Value) {
    let response = http()
        .post(format!("{}/oauth/token", fake.auth_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", CLIENT_ID),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn refresh(fake: &FakeUpstream, refresh_token: &str) -> (u16, Value) {
    let response = http()
        .post(format!("{}/oauth/token", fake.auth_url()))
        .json(&json!({"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": refresh_token}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn browser_login_with_pkce_yields_tokens_with_realistic_claims() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.set_login_account(1);
    let (verifier, challenge) = pkce_pair();
    let (status, pairs) = authorize(
        &fake,
        &authorize_url(&fake.auth_url(), REDIRECT, &challenge, "st4te"),
    )
    .await;
    assert_eq!(status, 303, "authorize redirects to the callback");
    assert_eq!(param(&pairs, "state"), Some("st4te"));
    let code = param(&pairs, "code").unwrap().to_owned();

    // A wrong verifier fails and does not burn the code…
    let (status, error) = exchange(&fake, &code, REDIRECT, "wrong-verifier").await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // …a redirect_uri different from the authorize one fails too…
    let (status, _) = exchange(
        &fake,
        &code,
        "http://localhost:1457/auth/callback",
        &verifier,
    )
    .await;
    assert_eq!(status, 400);
    // …the right one succeeds once.
    let (status, tokens) = exchange(&fake, &code, REDIRECT, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, _) = exchange(&fake, &code, REDIRECT, &verifier).await;
    assert_eq!(status, 400, "codes are single-use");

    let bob = fake.account(1);
    let id = decode_claims(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id["email"], "bob@example.com");
    let auth = &id["https://api.openai.com/auth"];
    assert_eq!(auth["chatgpt_account_id"], bob.account_id.as_str());
    assert_eq!(auth["chatgpt_plan_type"], "pro");
    assert_eq!(auth["chatgpt_user_id"], bob.user_id.as_str());
    let access = decode_claims(tokens["access_token"].as_str().unwrap()).unwrap();
    assert!(access["exp"].as_i64().unwrap() > access["iat"].as_i64().unwrap());
    assert_eq!(
        access["https://api.openai.com/auth"]["chatgpt_plan_type"],
        "pro"
    );
    assert!(tokens["refresh_token"].as_str().unwrap().starts_with("rt_"));

    // The form body is recorded, so a test can check the exact fields sent.
    let recorded = fake.requests_to(TOKEN_PATH);
    let form = recorded.last().unwrap().form.as_ref().unwrap();
    assert_eq!(form["grant_type"], "authorization_code");
}

#[tokio::test]
async fn authorize_rejects_anything_the_official_client_would_not_send() {
    let fake = FakeUpstream::start().await.unwrap();
    let (_, challenge) = pkce_pair();
    let good = authorize_url(&fake.auth_url(), REDIRECT, &challenge, "s");
    let replace = |from: &str, to: &str| good.replace(from, to);
    let cases = [
        (
            "127.0.0.1 instead of localhost",
            replace("localhost", "127.0.0.1"),
        ),
        ("port not on the allow-list", replace("1455", "8080")),
        (
            "plain method",
            replace("code_challenge_method=S256", "code_challenge_method=plain"),
        ),
        ("short challenge", replace(&challenge, "abc")),
        (
            "missing simplified flow",
            replace("&codex_cli_simplified_flow=true", ""),
        ),
        (
            "missing organizations",
            replace("&id_token_add_organizations=true", ""),
        ),
        ("wrong client", replace(CLIENT_ID, "app_other")),
        ("narrow scope", replace("offline_access+", "")),
        ("unknown parameter", format!("{good}&prompt=login")),
        (
            "missing originator",
            replace("&originator=codex_cli_rs", ""),
        ),
    ];
    for (why, url) in cases {
        let (status, _) = authorize(&fake, &url).await;
        assert_eq!(status, 400, "{why}: {url}");
    }
    // Tests may allow another callback port (the CLI's --callback-port).
    fake.allow_redirect_port(8080);
    assert_eq!(authorize(&fake, &replace("1455", "8080")).await.0, 303);
    // 1457 is the official fallback.
    assert_eq!(authorize(&fake, &replace("1455", "1457")).await.0, 303);
}

#[tokio::test]
async fn a_denied_authorization_redirects_with_the_error() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.deny_next_authorize("access_denied", "missing_codex_entitlement");
    let (_, challenge) = pkce_pair();
    let (status, pairs) = authorize(
        &fake,
        &authorize_url(&fake.auth_url(), REDIRECT, &challenge, "s1"),
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(param(&pairs, "error"), Some("access_denied"));
    assert_eq!(
        param(&pairs, "error_description"),
        Some("missing_codex_entitlement")
    );
    assert_eq!(param(&pairs, "state"), Some("s1"));
    assert_eq!(param(&pairs, "code"), None);
}

#[tokio::test]
async fn refresh_rotates_and_detects_reuse() {
    let fake = FakeUpstream::start().await.unwrap();
    let first = fake.issue_tokens(0);
    let (status, second) = refresh(&fake, &first.refresh_token).await;
    assert_eq!(status, 200, "{second}");
    let second_rt = second["refresh_token"].as_str().unwrap();
    assert_ne!(second_rt, first.refresh_token, "refresh tokens rotate");
    assert!(second["access_token"].is_string() && second["id_token"].is_string());

    // The new access token works upstream.
    let mut client = OfficialClient::new(&fake, first.clone());
    client.tokens.access_token = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        client
            .responses(&client.classic_body("gpt-5.5", "hi"))
            .await
            .status(),
        200
    );

    let (status, error) = refresh(&fake, &first.refresh_token).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("refresh_token_reused"))
    );
    let (status, _) = refresh(&fake, second_rt).await;
    assert_eq!(status, 200, "the newest token still works");
}

#[tokio::test]
async fn refresh_failures_carry_the_codes_the_client_classifies() {
    let fake = FakeUpstream::start().await.unwrap();
    let a = fake.issue_tokens(0);
    fake.expire_refresh_tokens(0);
    let (status, error) = refresh(&fake, &a.refresh_token).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("refresh_token_expired"))
    );

    let b = fake.issue_tokens(1);
    fake.invalidate_refresh_tokens(1);
    let (status, error) = refresh(&fake, &b.refresh_token).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("refresh_token_invalidated"))
    );

    // Transient failures are scriptable and then clear.
    let c = fake.issue_tokens(2);
    fake.fail_next_token_requests(2, 503);
    assert_eq!(refresh(&fake, &c.refresh_token).await.0, 503);
    assert_eq!(refresh(&fake, &c.refresh_token).await.0, 503);
    assert_eq!(refresh(&fake, &c.refresh_token).await.0, 200);
}

#[tokio::test]
async fn refresh_request_shape_is_checked() {
    let fake = FakeUpstream::start().await.unwrap();
    let tokens = fake.issue_tokens(0);
    let with_scope = http()
        .post(format!("{}/oauth/token", fake.auth_url()))
        .json(&json!({"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "scope": "openid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_scope.status(),
        400,
        "the official client sends no scope"
    );
    let wrong_client = http()
        .post(format!("{}/oauth/token", fake.auth_url()))
        .json(&json!({"client_id": "app_x", "grant_type": "refresh_token", "refresh_token": tokens.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_client.status(), 401);
    let text_body = http()
        .post(format!("{}/oauth/token", fake.auth_url()))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(text_body.status(), 400);
}

#[tokio::test]
async fn revoke_invalidates_the_refresh_token() {
    let fake = FakeUpstream::start().await.unwrap();
    let tokens = fake.issue_tokens(0);
    let response = http()
        .post(format!("{}/oauth/revoke", fake.auth_url()))
        .json(&json!({"token": tokens.refresh_token, "token_type_hint": "refresh_token", "client_id": CLIENT_ID}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, error) = refresh(&fake, &tokens.refresh_token).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("refresh_token_invalidated"))
    );
}

#[tokio::test]
async fn api_key_token_exchange_needs_an_id_token() {
    let fake = FakeUpstream::start().await.unwrap();
    let tokens = fake.issue_tokens(0);
    let exchange = |subject: String| {
        let url = format!("{}/oauth/token", fake.auth_url());
        async move {
            http()
                .post(url)
                .form(&[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("client_id", CLIENT_ID),
                    ("requested_token", "openai-api-key"),
                    ("subject_token", &subject),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:id_token",
                    ),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let ok = exchange(tokens.id_token.clone()).await;
    assert_eq!(ok.status(), 200);
    assert!(
        ok.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .starts_with("sk-")
    );
    assert_eq!(
        exchange(tokens.access_token).await.status(),
        400,
        "an access token is not an id_token"
    );
}

#[tokio::test]
async fn device_code_flow_end_to_end() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.set_device_interval(1);
    let usercode: Value = http()
        .post(format!(
            "{}/api/accounts/deviceauth/usercode",
            fake.auth_url()
        ))
        .json(&json!({"client_id": CLIENT_ID}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usercode["interval"], "1", "the interval is a string");
    let user_code = usercode["user_code"].as_str().unwrap().to_owned();
    let poll_body = json!({"device_auth_id": usercode["device_auth_id"], "user_code": user_code});
    let poll = || {
        let url = format!("{}/api/accounts/deviceauth/token", fake.auth_url());
        let body = poll_body.clone();
        async move { http().post(url).json(&body).send().await.unwrap() }
    };
    assert_eq!(poll().await.status(), 403, "pending");
    assert_eq!(fake.device_user_codes(), vec![user_code.clone()]);

    // The person approves on the device page, as account carol.
    let page = http()
        .post(format!("{}/codex/device", fake.auth_url()))
        .form(&[
            ("user_code", user_code.as_str()),
            ("email", "carol@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let grant: Value = poll().await.json().await.unwrap();
    let code = grant["authorization_code"].as_str().unwrap();
    let verifier = grant["code_verifier"].as_str().unwrap();
    let device_redirect = format!("{}/deviceauth/callback", fake.auth_url());
    let (status, tokens) = exchange(&fake, code, &device_redirect, verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let id = decode_claims(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id["email"], "carol@example.com");
}

#[tokio::test]
async fn device_code_can_be_declined_or_disabled() {
    let fake = FakeUpstream::start().await.unwrap();
    let start = || async {
        http()
            .post(format!(
                "{}/api/accounts/deviceauth/usercode",
                fake.auth_url()
            ))
            .json(&json!({"client_id": CLIENT_ID}))
            .send()
            .await
            .unwrap()
    };
    let usercode: Value = start().await.json().await.unwrap();
    assert!(fake.decline_device_code(usercode["user_code"].as_str().unwrap()));
    let declined = http()
        .post(format!("{}/api/accounts/deviceauth/token", fake.auth_url()))
        .json(&json!({"device_auth_id": usercode["device_auth_id"], "user_code": usercode["user_code"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(declined.status(), 401);
    assert_eq!(
        declined.json::<Value>().await.unwrap()["error"],
        "authorization_declined"
    );

    fake.set_device_code_enabled(false);
    assert_eq!(start().await.status(), 404);
}

#[tokio::test]
async fn appcast_lists_the_newest_release_first() {
    let fake = FakeUpstream::start().await.unwrap();
    fake.set_appcast("26.400.1", "2026.1124");
    let xml = reqwest::get(fake.appcast_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let first_item = xml.split("<item>").nth(1).unwrap();
    assert!(
        first_item.contains("<sparkle:shortVersionString>26.400.1</sparkle:shortVersionString>")
    );
    assert!(first_item.contains("<sparkle:version>2026.1124</sparkle:version>"));
    assert_eq!(xml.matches("<item>").count(), 2);
}
