"""The web dashboard in headless Chromium, slice 1 (docs/dashboard.md):
login with and without the MFA step (a TOTP code or a recovery code), the
messages for wrong credentials, a dead MFA token, a 429 and a server that
is down; the session kept across a reload and ended by logout in another
tab; a user's name rendered as text; the CSP on every page. Every test
fails on a JavaScript dialog or console error (web_browser.py)."""
import re
import time

import pyotp
import pytest
import requests

from conftest import REPO, TEST_CLOCK, uniq
from web_browser import chromium_missing, login, settle, start_server, stop_server, wait_signed_in

pytestmark = [pytest.mark.skipif(chromium_missing(), reason="chromium/chromedriver not installed "
                                 "(scripts/install-deps)"),
              pytest.mark.usefixtures("no_page_errors")]

CSP_START = "default-src 'self'; script-src 'self';"
DIST = REPO / "web" / "dist"


@pytest.fixture(autouse=True)
def fresh(browser, web):
    browser.reset(web.url)
    yield


def server_code(secret, steps=0):
    return pyotp.TOTP(secret).at(int(time.time() + TEST_CLOCK.offset) + 30 * steps)


@pytest.fixture
def mfa_user(make_user):
    """A user with MFA on, enabled with the previous step's code, so the
    current one is still unused for the login."""
    u = make_user("partner_technician")
    r = u.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": u.password})
    assert r.status_code == 200, r.text
    u.setup = r.json()
    r = u.api.post("/api/v1/auth/mfa/enable", json={"code": server_code(u.setup["secret"], -1)})
    assert r.status_code == 200, r.text
    return u


def test_login_success_shows_the_shell_and_survives_a_reload(browser, web, make_user):
    u = make_user("partner_technician", name=uniq("Alice"))
    browser.d.get(web.url + "/")
    browser.path_is("/login")
    browser.el("#login-form")
    browser.shot("login")
    login(browser, web.url, u.email, u.password)
    wait_signed_in(browser, u.body["name"])
    browser.path_is("/devices")
    assert browser.text_of("#account", u.email)
    browser.shot("devices")
    # The access token is in memory only: nothing in Web Storage, and the
    # only cookie the page can read is the CSRF token.
    assert browser.d.execute_script("return localStorage.length + sessionStorage.length") == 0
    readable = browser.d.execute_script("return document.cookie")
    assert re.fullmatch(r"breeze_csrf_token=[A-Za-z0-9_-]{43}", readable), readable
    # A reload (and a direct load of a route) keeps the session through the
    # refresh cookie.
    browser.d.refresh()
    wait_signed_in(browser, u.body["name"])
    browser.path_is("/devices")
    browser.d.get(web.url + "/devices")
    wait_signed_in(browser, u.body["name"])
    assert browser.text_of("#account", u.email)


def refreshes_logged(srv):
    return srv.log_text().count('"route":"/api/v1/auth/refresh","status":200')


def test_expired_access_token_is_refreshed_once_for_parallel_calls(browser, web, make_user, clock):
    """Past the access token's 15 minutes, five calls at once get 401s and
    share one silent refresh (a second would replay the rotated refresh
    token and end the session); the user stays signed in."""
    u = make_user("partner_technician")
    login(browser, web.url, u.email, u.password)
    wait_signed_in(browser, u.body["name"])
    api_js = "/assets/" + next((DIST / "assets").glob("api.*.js")).name
    before = refreshes_logged(web)
    clock.advance(901)
    got = browser.d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import(arguments[0]).then(async (api) => {
          const all = await Promise.all([1, 2, 3, 4, 5].map(() => api.call('GET', '/api/v1/auth/me')));
          done(all.map((me) => me.email));
        }).catch((e) => done('error: ' + e));""", api_js)
    assert got == [u.email] * 5, got
    assert refreshes_logged(web) == before + 1
    browser.click("nav a")
    assert browser.text_of("#account", u.email)
    assert browser.path() == "/devices"


def test_wrong_password_message(browser, web, make_user):
    u = make_user("partner_technician")
    login(browser, web.url, u.email, u.password + "x")
    assert browser.text_of("#login-error", "Wrong e-mail or password.")
    browser.shot("login-wrong-password")
    assert browser.path() == "/login"
    # Right after, the right password works.
    browser.type("#password", u.password)
    browser.click("#login-submit")
    wait_signed_in(browser, u.body["name"])


def test_mfa_step_with_a_code_and_with_a_recovery_code(browser, web, mfa_user):
    u = mfa_user
    login(browser, web.url, u.email, u.password)
    browser.el("#mfa-code")
    browser.shot("login-mfa")
    browser.type("#mfa-code", "000000" if server_code(u.setup["secret"]) != "000000" else "111111")
    browser.click("#mfa-submit")
    browser.text_of("#login-error", "That code is wrong")
    browser.type("#mfa-code", server_code(u.setup["secret"]))
    browser.click("#mfa-submit")
    wait_signed_in(browser, u.body["name"])
    browser.path_is("/devices")
    # Signed out, then in again with a recovery code.
    browser.click("#logout")
    browser.text_of("#login-flash", "You have signed out.")
    login(browser, web.url, u.email, u.password)
    browser.click("#mfa-toggle")
    browser.text_of("label[for=mfa-code]", "Recovery code")
    browser.type("#mfa-code", u.setup["recoveryCodes"][0].lower())
    browser.click("#mfa-submit")
    wait_signed_in(browser, u.body["name"])


def test_dead_mfa_token_message(browser, web, mfa_user, clock):
    u = mfa_user
    login(browser, web.url, u.email, u.password)
    browser.el("#mfa-code")
    clock.advance(301)  # the MFA token lives 5 minutes
    browser.type("#mfa-code", server_code(u.setup["secret"]))
    browser.click("#mfa-submit")
    assert browser.text_of("#login-flash", "This sign-in attempt has expired")
    browser.el("#login-form")  # back to the password step
    browser.shot("login-mfa-expired")


def test_rate_limited_login_says_when_to_retry_then_server_down(browser, services, workdir):
    """A 429 shows the wait from Retry-After (and holds the button); once the
    server is gone, a network error says so. The e-mail is new, so no other
    login shares its bucket (Redis is shared by every server)."""
    srv = start_server(services, workdir, RATE_LIMIT_LOGIN="1/300")
    try:
        login(browser, srv.url, f"{uniq('nobody')}@example.test", "wrong-password")
        browser.text_of("#login-error", "Wrong e-mail or password.")
        browser.click("#login-submit")
        text = browser.text_of("#login-error", "Too many attempts.")
        assert re.search(r"Try again in 5 minutes \(at .+\)\.", text), text
        assert not browser.d.find_element("css selector", "#login-submit").is_enabled()
        browser.shot("login-rate-limited")
    finally:
        stop_server(srv)
    browser.d.execute_script("document.getElementById('login-submit').disabled = false")
    browser.click("#login-submit")
    assert browser.text_of("#login-error", "Cannot reach the Breeze server.")
    browser.shot("login-server-down")


def test_server_error_message(browser, services, workdir):
    """A 5xx: here the login's rate limit in deny mode with Redis gone
    answers 503 rate_limit_unavailable."""
    srv = start_server(services, workdir, REDIS_URL="redis://:x@127.0.0.1:1/0",
                       RATE_LIMIT_ON_REDIS_FAILURE="deny")
    try:
        login(browser, srv.url, f"{uniq('nobody')}@example.test", "wrong-password")
        assert browser.text_of("#login-error", "The server could not complete the request "
                                               "(HTTP 503). Try again in a moment.")
    finally:
        stop_server(srv)


def test_logout_in_one_tab_ends_the_session_in_another(browser, web, make_user):
    u = make_user("partner_technician")
    login(browser, web.url, u.email, u.password)
    wait_signed_in(browser, u.body["name"])
    first = browser.d.current_window_handle
    browser.d.switch_to.new_window("tab")
    browser.d.get(web.url + "/devices")
    wait_signed_in(browser, u.body["name"])
    second = browser.d.current_window_handle
    browser.d.switch_to.window(first)
    # The first tab's access token was minted before the second tab's
    # refresh rotated the cookie: it still works until logout.
    browser.click("a.brand")
    assert browser.text_of("#account", u.email)
    browser.click("#logout")
    browser.text_of("#login-flash", "You have signed out.")
    browser.d.switch_to.window(second)
    browser.click("nav a")  # its next request
    assert browser.text_of("#login-flash", "Your session has ended")
    browser.path_is("/login")
    browser.d.refresh()
    browser.el("#login-form")


def test_user_name_is_rendered_as_text(browser, web, make_user):
    evil = "<img src=x onerror=alert(1)>"
    u = make_user("partner_technician", name=evil)
    login(browser, web.url, u.email, u.password)
    wait_signed_in(browser, evil)
    assert browser.d.find_element("css selector", "#user-name").text == evil
    assert browser.d.execute_script("return document.querySelectorAll('#app img').length") == 0
    assert browser.text_of("#account", evil)
    settle(browser, 0.5)  # an onerror handler would have run by now


def test_trusted_types_refuse_html_strings(browser, web):
    """Defence in depth: the page's CSP makes the browser refuse any HTML
    string assignment, whoever attempts it."""
    browser.d.get(web.url + "/login")
    browser.el("#login-form")
    got = browser.d.execute_script(
        "try { document.body.innerHTML = '<b>x</b>'; return 'assigned'; }"
        " catch (e) { return e.name; }")
    assert got == "TypeError"
    browser.problems()  # the refusal is logged as a CSP violation: expected here


def test_csp_on_every_page_and_asset(web):
    s = requests.Session()
    r = s.get(web.url + "/")
    pages = ["/", "/login", "/mfa/enroll", "/devices"] + re.findall(r'(?:src|href)="(/assets/[^"]+)"',
                                                                     r.text)
    assert len(pages) == 7
    for p in pages:
        r = s.get(web.url + p)
        assert r.status_code == 200, p
        assert r.headers["Content-Security-Policy"].startswith(CSP_START), p
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"]
