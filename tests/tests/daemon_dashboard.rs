//! The dashboard's security and data: nothing without a session; sign-in only from the page's
//! own origin, rate limited, into a strict cookie; changes need the session, a same-origin
//! `Origin` and the CSRF token; the pages carry CSP and framing headers; the JSON it reads.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use codex_proxy_tests::fake::{FakeUpstream, Script};
use codex_proxy_tests::harness::Daemon;
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn origin(daemon: &Daemon) -> String {
    daemon.url("").trim_end_matches('/').to_owned()
}

async fn sign_in(daemon: &Daemon, key: &str, origin: Option<&str>) -> reqwest::Response {
    let mut request = browser()
        .post(daemon.url("/dashboard/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={key}"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

/// The session cookie's `name=value`, from a sign-in answer.
fn session_cookie(headers: &HeaderMap) -> String {
    let set = headers["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn get(daemon: &Daemon, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = browser().get(daemon.url(path));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn nothing_answers_without_a_session_and_sign_in_is_guarded() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).start();

    // The root leads to the dashboard, which leads to the sign-in page.
    let root = get(&daemon, "/", None).await;
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/dashboard/");
    let page = get(&daemon, "/dashboard/", None).await;
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/dashboard/signin");
    for path in [
        "/dashboard/api/status",
        "/dashboard/api/requests",
        "/dashboard/api/usage",
    ] {
        assert_eq!(get(&daemon, path, None).await.status(), 401, "{path}");
        // An API key is no session.
        let with_key = browser()
            .get(daemon.url(path))
            .bearer_auth(daemon.api_key())
            .send()
            .await
            .unwrap();
        assert_eq!(with_key.status(), 401, "{path}");
        // Nor is a made-up cookie.
        let forged = get(&daemon, path, Some("codex_proxy_session=00ff")).await;
        assert_eq!(forged.status(), 401, "{path}");
    }
    let signin = get(&daemon, "/dashboard/signin", None).await;
    assert_eq!(signin.status(), 200);
    let headers = signin.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");

    // A cross-site form post, or one without an Origin, is refused even with the right key.
    let key = daemon.api_key();
    assert_eq!(
        sign_in(&daemon, &key, Some("https://evil.example"))
            .await
            .status(),
        403
    );
    assert_eq!(sign_in(&daemon, &key, None).await.status(), 403);
    // A wrong key is refused; after five, everyone waits.
    let me = origin(&daemon);
    for _ in 0..5 {
        let wrong = sign_in(&daemon, "wrong-key-123", Some(&me)).await;
        assert_eq!(wrong.status(), 401);
        // The sign-in page again, saying why (not an API error).
        assert!(wrong.text().await.unwrap().contains("That is not the key"));
    }
    let throttled = sign_in(&daemon, &key, Some(&me)).await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    assert!(
        throttled
            .text()
            .await
            .unwrap()
            .contains("Too many attempts")
    );

    // A foreign Host (DNS rebinding) gets nothing at all.
    let rebound = browser()
        .get(daemon.url("/dashboard/signin"))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
}

#[tokio::test]
async fn a_session_sees_the_pool_and_changes_need_origin_and_csrf() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0, 1]).start();
    let me = origin(&daemon);

    let signed = sign_in(&daemon, &daemon.api_key(), Some(&me)).await;
    assert_eq!(signed.status(), 303, "{:?}", signed.text().await);
    assert_eq!(signed.headers()["location"], "/dashboard/");
    let set = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=43200",
    ] {
        assert!(set.contains(flag), "{set}");
    }
    let cookie = session_cookie(signed.headers());

    let page = get(&daemon, "/dashboard/", Some(&cookie)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);
    assert!(!html.contains("<script>"), "no inline script");
    for asset in ["/dashboard/app.js", "/dashboard/app.css"] {
        assert_eq!(get(&daemon, asset, None).await.status(), 200, "{asset}");
    }

    // The pool, as codexctl status sees it.
    let status: Value = get(&daemon, "/dashboard/api/status", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["accounts"].as_array().unwrap().len(), 2);
    // A failed request appears in the list, with its error.
    fake.enqueue(Script::failed_at_once("server_error", "Backend broke."));
    fake.enqueue(Script::failed_at_once("server_error", "Backend broke."));
    fake.enqueue(Script::failed_at_once("server_error", "Backend broke."));
    let (status_code, _, _) = daemon
        .chat(&json!({"model": "codex", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert!(status_code >= 500, "{status_code}");
    let mut failed = Vec::new();
    for _ in 0..100 {
        let list: Value = get(
            &daemon,
            "/dashboard/api/requests?failed=true",
            Some(&cookie),
        )
        .await
        .json()
        .await
        .unwrap();
        failed = list["requests"].as_array().unwrap().clone();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(failed[0]["path"], "/v1/chat/completions");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("Backend broke"),
        "{failed:?}"
    );
    let usage: Value = get(&daemon, "/dashboard/api/usage?range=day", Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["step_seconds"], 300);

    // Signing out is a change: without the CSRF token, or from another origin, it is refused.
    let signout = |origin: Option<String>, token: Option<String>| {
        let mut request = browser()
            .post(daemon.url("/dashboard/signout"))
            .header("cookie", &cookie);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        request.send()
    };
    assert_eq!(signout(Some(me.clone()), None).await.unwrap().status(), 403);
    assert_eq!(
        signout(Some("https://evil.example".into()), Some(csrf.clone()))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        signout(None, Some(csrf.clone())).await.unwrap().status(),
        403
    );
    let out = signout(Some(me.clone()), Some(csrf)).await.unwrap();
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        get(&daemon, "/dashboard/api/status", Some(&cookie))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn the_dashboard_can_be_turned_off_and_given_its_own_password() {
    let fake = FakeUpstream::start().await.unwrap();
    let off = Daemon::builder()
        .fake(&fake, &[0])
        .set("dashboard", "enabled = false")
        .start();
    assert_eq!(get(&off, "/dashboard/", None).await.status(), 404);
    assert_eq!(
        sign_in(&off, &off.api_key(), Some(&origin(&off)))
            .await
            .status(),
        404
    );

    let own = Daemon::builder()
        .fake(&fake, &[0])
        .set("dashboard", "password = \"dashboard-pass-123\"")
        .start();
    let me = origin(&own);
    // Behind a TLS-terminating proxy (the page's origin is https) the cookie is Secure.
    let tls = sign_in(
        &own,
        "dashboard-pass-123",
        Some(&me.replace("http://", "https://")),
    )
    .await;
    assert_eq!(tls.status(), 303);
    let set = tls.headers()["set-cookie"].to_str().unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
    let plain = sign_in(&own, "dashboard-pass-123", Some(&me)).await;
    assert!(
        !plain.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    // With a password set, the API key no longer signs in.
    assert_eq!(sign_in(&own, &own.api_key(), Some(&me)).await.status(), 401);
    assert_eq!(
        sign_in(&own, "dashboard-pass-123", Some(&me))
            .await
            .status(),
        303
    );
}

/// A signed-in page: its cookie, its CSRF token and its origin.
struct Page {
    cookie: String,
    csrf: String,
    origin: String,
}

async fn open_page(daemon: &Daemon) -> Page {
    let origin = origin(daemon);
    let signed = sign_in(daemon, &daemon.api_key(), Some(&origin)).await;
    let cookie = session_cookie(signed.headers());
    let html = get(daemon, "/dashboard/", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    Page {
        cookie,
        csrf,
        origin,
    }
}

impl Page {
    /// A change from the page: `origin` and `csrf` as given (the page's own when `None`).
    async fn send(
        &self,
        daemon: &Daemon,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        origin: Option<&str>,
        csrf: Option<&str>,
    ) -> (u16, Value) {
        let mut request = browser()
            .request(method, daemon.url(path))
            .header("cookie", &self.cookie)
            .header("origin", origin.unwrap_or(&self.origin));
        if let Some(csrf) = csrf.or(Some(&self.csrf)).filter(|c| !c.is_empty()) {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn control(&self, daemon: &Daemon, request: &Value) -> (u16, Value) {
        self.send(
            daemon,
            reqwest::Method::POST,
            "/dashboard/api/control",
            Some(request),
            None,
            None,
        )
        .await
    }
}

#[tokio::test]
async fn actions_run_the_control_operations_and_need_session_origin_and_csrf() {
    let fake = FakeUpstream::start().await.unwrap();
    let daemon = Daemon::builder().fake(&fake, &[0]).generated_key().start();
    let page = open_page(&daemon).await;
    let id = {
        let (_, status) = page.control(&daemon, &json!({"request": "status"})).await;
        status["accounts"][0]["id"].as_str().unwrap().to_owned()
    };
    let disable = json!({"request": "account_disable", "account": id});

    // Refused: no session, no CSRF token, a wrong one, a foreign Origin, a cross-site form.
    let anonymous = browser()
        .post(daemon.url("/dashboard/api/control"))
        .header("origin", &page.origin)
        .header("x-csrf-token", &page.csrf)
        .json(&disable)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let post = reqwest::Method::POST;
    let path = "/dashboard/api/control";
    for (origin, csrf) in [
        (None, Some("")),
        (None, Some("00".repeat(32).as_str())),
        (Some("https://evil.example"), None),
        (Some("null"), None),
    ] {
        let (status, _) = page
            .send(&daemon, post.clone(), path, Some(&disable), origin, csrf)
            .await;
        assert_eq!(status, 403, "{origin:?} {csrf:?}");
    }
    let form = browser()
        .post(daemon.url(path))
        .header("cookie", &page.cookie)
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("request=account_disable")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 403);
    let (_, status) = page.control(&daemon, &json!({"request": "status"})).await;
    assert_eq!(status["accounts"][0]["state"], "active", "nothing changed");

    // Allowed: the same operation codexctl runs, with its answer.
    let (code, answer) = page.control(&daemon, &disable).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["response"], "account");
    assert_eq!(answer["account"]["state"], "disabled");
    let (_, answer) = page
        .control(
            &daemon,
            &json!({"request": "account_label", "account": id, "label": "work"}),
        )
        .await;
    assert_eq!(answer["account"]["label"], "work");
    let (_, answer) = page
        .control(
            &daemon,
            &json!({"request": "account_enable", "account": "work"}),
        )
        .await;
    assert_eq!(answer["account"]["state"], "active");
    // Errors keep the control socket's kinds and messages, with an HTTP status.
    let (code, answer) = page
        .control(
            &daemon,
            &json!({"request": "rotate_pin", "account": "nobody"}),
        )
        .await;
    assert_eq!((code, answer["kind"].as_str()), (404, Some("not_found")));
    let (code, answer) = page
        .control(&daemon, &json!({"request": "format_disk"}))
        .await;
    assert_eq!(code, 400);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not a control request")
    );
    let (code, _) = page
        .control(
            &daemon,
            &json!({"request": "watch_status", "interval_ms": 10}),
        )
        .await;
    assert_eq!(code, 400, "streaming requests are the socket's");

    // The key: shown, rotated; the old one stops working, and so does every other session
    // signed in with it (a leaked key's sessions end with it) — but not the one that rotated.
    let other = open_page(&daemon).await;
    let (code, _) = other.control(&daemon, &json!({"request": "status"})).await;
    assert_eq!(code, 200);
    let old = daemon.api_key();
    let (_, shown) = page.control(&daemon, &json!({"request": "key_show"})).await;
    assert_eq!(shown["key"], old.as_str());
    let (code, rotated) = page
        .control(&daemon, &json!({"request": "key_rotate"}))
        .await;
    assert_eq!(code, 200, "{rotated}");
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let models = |key: String| {
        browser()
            .get(daemon.url("/v1/models"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(models(old).await.unwrap().status(), 401);
    assert_eq!(models(new).await.unwrap().status(), 200);
    let (code, _) = page.control(&daemon, &json!({"request": "status"})).await;
    assert_eq!(code, 200);
    let (code, _) = other.control(&daemon, &json!({"request": "status"})).await;
    assert_eq!(code, 401);
    assert_eq!(
        get(&daemon, "/dashboard/api/status", Some(&other.cookie))
            .await
            .status(),
        401
    );
    // Rotated from codexctl, the key ends the page's session too.
    let out = daemon.ctl(&["key", "rotate"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let (code, _) = page.control(&daemon, &json!({"request": "status"})).await;
    assert_eq!(code, 401);
    let page = open_page(&daemon).await;

    // A device-code login from the page: the code, the approval, the new account.
    let device = "/dashboard/api/login/device";
    let (code, started) = page
        .send(&daemon, post.clone(), device, None, None, None)
        .await;
    assert_eq!(code, 200, "{started}");
    let user_code = started["user_code"].as_str().unwrap();
    let login = started["id"].as_str().unwrap().to_owned();
    assert!(
        started["verification_url"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
    let progress = format!("{device}?id={login}");
    let (_, waiting) = page
        .send(&daemon, reqwest::Method::GET, &progress, None, None, None)
        .await;
    assert_eq!(waiting["response"], "waiting");
    assert!(fake.approve_device_code(user_code, 1));
    let mut outcome = Value::Null;
    for _ in 0..300 {
        let (_, now) = page
            .send(&daemon, reqwest::Method::GET, &progress, None, None, None)
            .await;
        if now["response"] != "waiting" {
            outcome = now;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(outcome["response"], "logged_in", "{outcome}");
    let (_, status) = page.control(&daemon, &json!({"request": "status"})).await;
    assert_eq!(status["accounts"].as_array().unwrap().len(), 2);
    // Handed out once; then unknown. Starting one needs the CSRF token too.
    let (code, _) = page
        .send(&daemon, reqwest::Method::GET, &progress, None, None, None)
        .await;
    assert_eq!(code, 404);
    let (code, _) = page
        .send(&daemon, post.clone(), device, None, None, Some(""))
        .await;
    assert_eq!(code, 403);
    // A waiting login can be cancelled.
    let (_, started) = page.send(&daemon, post, device, None, None, None).await;
    let cancel = format!("{device}?id={}", started["id"].as_str().unwrap());
    let (code, _) = page
        .send(&daemon, reqwest::Method::DELETE, &cancel, None, None, None)
        .await;
    assert_eq!(code, 204);
    let (code, _) = page
        .send(&daemon, reqwest::Method::GET, &cancel, None, None, None)
        .await;
    assert_eq!(code, 404);
}
