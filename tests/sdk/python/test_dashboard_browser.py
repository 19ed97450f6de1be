"""The dashboard in a real browser: Debian's `chromium`, driven headless by playwright.

Run by tests/tests/sdk_clients.rs, which starts the fake upstream and the daemon (one account
signed in, the API key generated so it can be rotated) and passes CODEX_PROXY_BASE_URL (…/v1),
CODEX_PROXY_API_KEY, FAKE_ADMIN_URL (the fake's /__fake) and SCREENSHOTS (a directory under
target/ for the pictures). The tests build on each other and run in file order.
"""

import json
import os
import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = os.environ["CODEX_PROXY_BASE_URL"].removesuffix("/v1")
API_KEY = os.environ["CODEX_PROXY_API_KEY"]
FAKE = os.environ["FAKE_ADMIN_URL"]
SHOTS = os.environ["SCREENSHOTS"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def post(url, body, key=None):
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def chat(model, key=API_KEY):
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    return post(f"{ROOT}/v1/chat/completions", body, key)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Expected refusals (a wrong key, a missing CSRF token) log a 4xx; anything else is a fault.
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and "responded with a status of 4" not in m.text else None)
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    assert not errors, f"the page reported errors: {errors}"
    context.close()


def shoot(browser, name, color_scheme="light"):
    """The signed-in dashboard at desktop and phone widths, as a new page of the same session."""
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
        page = context.new_page()
        page.goto(f"{ROOT}/dashboard/signin")
        page.fill("input[name=key]", API_KEY)
        page.click("button[type=submit]")
        expect(page.locator(".account").first).to_be_visible()
        expect(page.locator("#requests tbody tr").first).to_be_visible()
        page.screenshot(path=f"{SHOTS}/{name}-{label}-{color_scheme}.png", full_page=True)
        context.close()


def test_sign_in(browser, page):
    page.goto(f"{ROOT}/")
    expect(page).to_have_url(f"{ROOT}/dashboard/signin")
    page.screenshot(path=f"{SHOTS}/signin-desktop.png")
    page.fill("input[name=key]", "not-the-key")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not the key")
    page.fill("input[name=key]", API_KEY)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{ROOT}/dashboard/")
    expect(page.locator("#daemon")).to_contain_text("in flight")
    cookie = next(c for c in page.context.cookies() if c["name"] == "codex_proxy_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"


def test_accounts_show_quota_bars(page):
    assert post(f"{FAKE}/usage", {"account": 0, "primary": 42, "secondary": 17}) == 204
    card = page.locator(".account").first
    expect(card).to_be_visible()
    card.get_by_role("button", name="Refresh").click()
    expect(page.locator("#notice")).to_contain_text("refreshed")
    expect(card.get_by_role("meter", name="5 hours")).to_have_attribute("aria-valuenow", "42")
    expect(card.get_by_role("meter", name="week")).to_have_attribute("aria-valuenow", "17")
    expect(card.locator(".state")).to_contain_text("active")


def test_a_failed_request_appears(page):
    assert chat("gpt-5.4-mini") == 200
    assert chat("no-such-model") == 404
    rows = page.locator("#requests tbody")
    expect(rows).to_contain_text("/v1/chat/completions")
    page.check("#failed")
    expect(rows.locator("tr.failed").first).to_contain_text("404")
    expect(rows).to_contain_text("no-such-model")
    expect(rows).not_to_contain_text("200")
    page.uncheck("#failed")
    expect(rows).to_contain_text("200")
    # A failure on an account is that account's last error, on its card.
    failing = {"kind": "stream", "items": [{"type": "message", "deltas": ["partial "]}],
               "ending": {"kind": "failed", "code": "server_error", "message": "The backend fell over."}}
    assert post(f"{FAKE}/script", {"reply": failing}) == 204
    assert chat("gpt-5.4-mini") == 502
    expect(rows).to_contain_text("The backend fell over.")
    expect(page.locator(".account").first.locator(".last-error")).to_contain_text("The backend fell over.")


def test_a_device_login_from_the_page(page):
    page.click("#add")
    page.click("#device")
    code = page.locator("#device-code")
    expect(code).to_be_visible()
    assert page.locator("#device-box a").get_attribute("href").startswith("http")
    user_code = code.inner_text().strip()
    assert user_code
    # The person approves the code on OpenAI's page (here: the fake's admin route).
    assert post(f"{FAKE}/device/approve", {"user_code": user_code, "account": 1}) == 204
    expect(page.locator("#device-box")).to_contain_text("Signed in as", timeout=30_000)
    expect(page.locator(".account")).to_have_count(2)


def test_label_disable_enable_pin(page):
    card = page.locator(".account").nth(1)
    card.get_by_role("button", name="Label").click()
    card.get_by_label("label").fill("side project")
    card.get_by_role("button", name="Save").click()
    labelled = page.locator(".account", has_text="side project")
    expect(labelled.locator("h3")).to_have_text("side project")
    labelled.get_by_role("button", name="Disable").click()
    expect(labelled.locator(".state")).to_contain_text("disabled")
    labelled.get_by_role("button", name="Enable").click()
    expect(labelled.locator(".state")).to_contain_text("active")
    labelled.get_by_role("button", name="Pin").click()
    expect(labelled.locator(".state")).to_contain_text("pinned")
    labelled.get_by_role("button", name="Unpin").click()
    expect(labelled.locator(".state")).not_to_contain_text("pinned")


def test_strategy(page):
    page.select_option("#strategy", "sticky")
    expect(page.locator("#notice")).to_contain_text("sticky")
    expect(page.locator("#next")).to_be_enabled()
    page.click("#next")
    expect(page.locator("#notice")).to_contain_text("new requests now go to")
    page.select_option("#strategy", "least_used")
    expect(page.locator("#next")).to_be_disabled()


def test_usage_chart(page):
    expect(page.locator("#usage svg.chart rect").first).to_be_attached()
    page.select_option("#group", "model")
    expect(page.locator("#usage table")).to_contain_text("gpt-5.4-mini")
    page.select_option("#measure", "tokens")
    expect(page.locator("#usage svg.chart")).to_have_attribute("aria-label", re.compile("tokens per"))
    page.select_option("#group", "account")
    expect(page.locator("#usage table tbody tr").first).to_be_visible()


def test_screenshots(browser):
    for scheme in ("light", "dark"):
        shoot(browser, "dashboard", scheme)


def test_show_and_rotate_the_key(page):
    page.click("#key")
    page.click("#key-show")
    expect(page.locator("#key-value")).to_have_text(API_KEY)
    page.click("#key-rotate")  # the confirm dialog is accepted
    expect(page.locator("#notice")).to_contain_text("New key made")
    new_key = page.locator("#key-value").inner_text()
    assert new_key != API_KEY
    assert chat("gpt-5.4-mini", key=API_KEY) == 401
    assert chat("gpt-5.4-mini", key=new_key) == 200
    # The page's session outlives the key it was opened with.
    page.reload()
    expect(page.locator(".account")).to_have_count(2)


def test_the_page_refuses_a_change_without_its_csrf_token(page):
    status = page.evaluate(
        """() => fetch('/dashboard/api/control', {method: 'POST', credentials: 'same-origin',
             headers: {'content-type': 'application/json'},
             body: JSON.stringify({request: 'rotate_unpin'})}).then(r => r.status)"""
    )
    assert status == 403


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_sign_in_in_the_browser_and_by_import(page, tmp_path):
    # In this browser: the page hands out OpenAI's sign-in link; the person signs in and lands
    # on a localhost address that does not load, which they paste back.
    if not page.locator("#add-panel").is_visible():
        page.click("#add")
    page.click("#browser")
    link = page.locator("#browser-link a")
    expect(link).to_be_visible()
    authorize = link.get_attribute("href")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(authorize)
        raise AssertionError("the fake's sign-in page did not redirect")
    except urllib.error.HTTPError as redirect:
        assert redirect.code in (302, 303), redirect.code
        landed = redirect.headers["location"]
    assert landed.startswith("http://localhost:1455/auth/callback?code=")
    page.fill("#paste", landed)
    page.click("#paste-form button[type=submit]")
    expect(page.locator("#notice")).to_contain_text("Signed in as alice@example.com")
    # A pasted address is used once.
    page.fill("#paste", landed)
    page.click("#paste-form button[type=submit]")
    expect(page.locator("#notice")).to_have_class("bad")

    # Import: a Codex CLI auth.json.
    with urllib.request.urlopen(f"{FAKE}/accounts") as response:
        carol = json.load(response)[2]
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps(carol["auth_json"]))
    page.set_input_files("#import-file", str(auth))
    page.click("#import-form button[type=submit]")
    expect(page.locator("#notice")).to_contain_text(f"Signed in as {carol['email']}")
    expect(page.locator(".account")).to_have_count(3)

    # Removing one asks first (accepted here), then it is gone.
    carol_card = page.locator(".account", has_text=carol["email"])
    carol_card.get_by_role("button", name="Remove").click()
    expect(page.locator("#notice")).to_contain_text("removed")
    expect(page.locator(".account")).to_have_count(2)
