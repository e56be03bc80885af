"""The web dashboard in headless Chromium, slice 7 (docs/dashboard.md): My
account — change the password (the old one is refused afterwards, the
other sessions end), the MFA status and new recovery codes (shown once,
copy, download), the active sessions with Revoke (another session's next
request fails; revoking this one signs out). Each test signs in a user of
its own (their sessions and password are what it changes), in the
session's browser and server. Every test fails on a JavaScript dialog or
console error (web_browser.py)."""
import re
import time

import pyotp
import pytest
from selenium.webdriver.common.by import By

from conftest import TEST_CLOCK
from web_browser import chromium_missing, login, wait_signed_in

pytestmark = [pytest.mark.skipif(chromium_missing(), reason="chromium/chromedriver not installed "
                                 "(scripts/install-deps)"),
              pytest.mark.usefixtures("no_page_errors")]

XSS = "<img src=x onerror=alert(1)>"
RECOVERY_RE = re.compile(r"^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$")


@pytest.fixture(scope="module")
def downloads(workdir):
    d = workdir / "downloads-account"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser(browser, downloads):
    """The session's browser, downloading into this module's directory."""
    browser.downloads_to(downloads)
    return browser


@pytest.fixture
def user(browser, web, make_user):
    """A user of this test, signed in in the browser, on /account. Its
    make_user() API session is a second session of the same user."""
    u = make_user("partner_technician", name=XSS)
    browser.reset(web.url)
    login(browser, web.url, u.email, u.password)
    wait_signed_in(browser, XSS)
    browser.d.get(web.url + "/account")
    browser.el("#sessions")
    return u


def test_change_password(browser, web, user, api):
    b, u = browser, user
    facts = b.text_of("#account-facts", "partner_technician")
    assert XSS in facts and u.email in facts
    assert b.d.execute_script("return document.querySelectorAll('#page img').length") == 0
    b.text_of("#mfa-status", "Two-factor authentication is off.")
    assert b.d.find_elements(By.ID, "codes-form") == []  # no codes to replace
    new = "Nw-" + u.password[::-1]

    b.type("#password-current", u.password + "x")
    b.type("#password-new", new)
    b.type("#password-again", new)
    b.click("#password-submit")
    b.text_of("#password-message", "The current password is wrong.")
    b.type("#password-current", u.password)
    b.type("#password-new", "short")
    b.type("#password-again", "short")
    b.click("#password-submit")
    b.text_of("#password-message", "The new password is not accepted:")
    assert "12" in b.el("#password-message").text
    b.type("#password-new", new)
    b.type("#password-again", new + "y")
    b.click("#password-submit")
    b.text_of("#password-message", "The two new passwords differ.")
    b.type("#password-again", new)
    b.click("#password-submit")
    b.text_of("#password-message", "Password changed. 1 other session was signed out.")
    b.shot("account")

    # The old password is refused, the new one works, the other session ended.
    anon = api.clone(token=None)
    r = anon.post("/api/v1/auth/login", json={"email": u.email, "password": u.password})
    assert r.status_code == 401, r.text
    r = anon.post("/api/v1/auth/login", json={"email": u.email, "password": new})
    assert r.status_code == 200, r.text
    assert u.api.get("/api/v1/auth/me").status_code == 401
    # This tab's session stays.
    b.d.refresh()
    wait_signed_in(b, XSS)
    b.el("#sessions")


def session_rows(b):
    return b.d.find_elements(By.CSS_SELECTOR, "#sessions tr[data-session]")


def test_revoke_another_session_then_this_one(browser, web, user):
    b, u = browser, user
    other = u.api.get("/api/v1/auth/me").json()["sessionId"]
    b.wait(lambda d: len(session_rows(b)) == 2)
    current = [r for r in session_rows(b) if "this session" in r.text]
    assert len(current) == 1 and current[0].get_attribute("data-session") != other
    b.d.execute_script("document.getElementById('sessions').scrollIntoView()")
    b.shot("account-sessions")

    row = [r for r in session_rows(b) if r.get_attribute("data-session") == other][0]
    revoke = row.find_element(By.CSS_SELECTOR, "button.revoke")
    revoke.click()  # asks first
    assert revoke.text == "Really revoke?"
    assert u.api.get("/api/v1/auth/me").status_code == 200
    revoke.click()
    b.wait(lambda d: len(session_rows(b)) == 1)
    # That session's next request fails.
    assert u.api.get("/api/v1/auth/me").status_code == 401

    # Revoking this tab's own session signs out.
    mine = session_rows(b)[0].find_element(By.CSS_SELECTOR, "button.revoke")
    mine.click()
    assert mine.text == "Really sign out?"
    mine.click()
    b.path_is("/login")
    b.text_of("#login-flash", "Your session has ended.")
    b.d.get(web.url + "/account")
    b.path_is("/login")


def code_at(secret, steps=0):
    return pyotp.TOTP(secret).at(int(time.time() + TEST_CLOCK.offset) + 30 * steps)


def test_mfa_status_and_new_recovery_codes(browser, web, make_user, api, downloads):
    b = browser
    u = make_user("partner_technician")
    r = u.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": u.password})
    assert r.status_code == 200, r.text
    old_codes = r.json()["recoveryCodes"]
    secret = r.json()["secret"]
    # Enabled with the previous step's code, so the current one is left for
    # the sign-in.
    assert u.api.post("/api/v1/auth/mfa/enable", json={"code": code_at(secret, -1)}).status_code == 200
    b.reset(web.url)
    b.d.get(web.url + "/account")
    b.path_is("/login")
    b.type("#email", u.email)
    b.type("#password", u.password)
    b.click("#login-submit")
    b.type("#mfa-code", code_at(secret))
    b.click("#mfa-submit")
    b.path_is("/account")
    b.text_of("#mfa-status", "Two-factor authentication is on.")

    b.type("#codes-password", u.password + "x")
    b.click("#codes-regenerate")
    b.text_of("#codes-message", "That is not your current password.")
    b.type("#codes-password", u.password)
    b.click("#codes-regenerate")
    b.el("#recovery-codes")
    codes = [li.text for li in b.d.find_elements(By.CSS_SELECTOR, "#recovery-codes li")]
    assert len(codes) == 10 and all(RECOVERY_RE.match(c) for c in codes), codes
    assert not set(codes) & set(old_codes)
    b.click("#codes-copy")
    b.text_of("#codes-status", "Cop")  # copied, or told how to copy by hand
    saved = downloads / "breeze-recovery-codes.txt"
    saved.unlink(missing_ok=True)
    b.click("#codes-download")
    b.text_of("#codes-status", "Downloaded breeze-recovery-codes.txt.")
    b.wait(lambda d: saved.exists() and all(c in saved.read_text() for c in codes))
    b.shot("account-recovery-codes")

    # The new codes work, the old ones no longer do; a reload shows none.
    anon = api.clone(token=None)

    def with_code(code):
        r = anon.post("/api/v1/auth/login", json={"email": u.email, "password": u.password})
        assert r.status_code == 200 and r.json()["mfaRequired"] is True, r.text
        return anon.post("/api/v1/auth/mfa/verify",
                         json={"mfaToken": r.json()["mfaToken"], "recoveryCode": code}).status_code

    assert with_code(old_codes[0]) == 401
    assert with_code(codes[0]) == 200
    b.d.refresh()
    b.text_of("#mfa-status", "on")
    assert b.d.find_elements(By.ID, "recovery-codes") == []
