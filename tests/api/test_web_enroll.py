"""The web dashboard in headless Chromium, slice 2 (docs/dashboard.md): a
user whose role forces MFA (the API answers 428) is held on /mfa/enroll —
typed addresses, deep links, reloads and the back button all lead back
there — until the QR code (the server's SVG, shown through a blob: image,
never inline markup) or the secret has been used for a code and the
recovery codes (copy, download) are confirmed as saved. Every test fails on
a JavaScript dialog or console error (web_browser.py)."""
import re
import time

import pyotp
import pytest

from conftest import TEST_CLOCK, uniq
from web_browser import chromium_missing, login, wait_signed_in

pytestmark = [pytest.mark.skipif(chromium_missing(), reason="chromium/chromedriver not installed "
                                 "(scripts/install-deps)"),
              pytest.mark.usefixtures("no_page_errors")]

RECOVERY_RE = re.compile(r"^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$")


@pytest.fixture(scope="module")
def downloads(workdir):
    d = workdir / "web-downloads"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser(browser, downloads):
    """The session's browser, downloading into this module's directory."""
    browser.downloads_to(downloads)
    return browser


@pytest.fixture(autouse=True)
def fresh(browser, web):
    browser.reset(web.url)
    yield


@pytest.fixture
def forcing_role(admin):
    """A custom role of the partner; the test turns its forceMfa on."""
    r = admin.post("/api/v1/roles", json={"name": uniq("forced"), "scope": "partner",
                                         "permissions": ["devices:read"]})
    assert r.status_code == 201, r.text
    return r.json()


def force(admin, role, on=True):
    r = admin.patch(f"/api/v1/roles/{role['id']}", json={"forceMfa": on})
    assert r.status_code == 200, r.text


def server_code(secret):
    return pyotp.TOTP(secret).at(int(time.time() + TEST_CLOCK.offset))


def held_on_enrolment(b, base):
    """Every way to another page leads back to /mfa/enroll."""
    for path in ("/devices", "/devices/0b4f4ad0-1c1e-4c7e-9a51-5f1d3c2b7a10", "/login", "/nope", "/"):
        b.d.get(base + path)  # typed into the address bar, or a bookmark
        b.path_is("/mfa/enroll")
        b.el("#enroll")
    b.d.execute_script("history.back()")
    b.path_is("/mfa/enroll")
    b.d.execute_script("history.pushState(null, '', '/devices'); dispatchEvent(new PopStateEvent('popstate'))")
    b.path_is("/mfa/enroll")


def test_forced_enrolment_end_to_end(browser, web, admin, forcing_role, make_user, downloads):
    b = browser
    force(admin, forcing_role)
    u = make_user(forcing_role["name"], name=uniq("Forced"))
    login(b, web.url, u.email, u.password)
    b.path_is("/mfa/enroll")
    b.el("#enroll-password")
    assert b.d.find_elements("css selector", "nav") == []  # no way out but sign-out
    b.shot("mfa-enroll-password")
    held_on_enrolment(b, web.url)

    # Step 1: the password again (setup wants it).
    b.type("#enroll-password", u.password + "x")
    b.click("#enroll-start")
    assert b.text_of("#enroll-error", "That is not your current password.")
    b.type("#enroll-password", u.password)
    b.click("#enroll-start")

    # Step 2: the QR code as an image from a blob: URL, the secret as text.
    qr = b.el("#mfa-qr")
    b.wait(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", qr) > 0)
    assert qr.get_attribute("src").startswith("blob:" + web.url)
    assert b.d.execute_script("return document.querySelectorAll('svg').length") == 0
    secret = b.el("#mfa-secret").text
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    b.shot("mfa-enroll-qr")
    wrong = "000000" if server_code(secret) != "000000" else "111111"
    b.type("#enroll-code", wrong)
    b.click("#enroll-verify")
    assert b.text_of("#enroll-error", "That code is wrong or has expired.")
    b.type("#enroll-code", server_code(secret))
    b.click("#enroll-verify")

    # Step 3: the recovery codes, shown once, held until confirmed.
    b.el("#recovery-codes")
    codes = [li.text for li in b.d.find_elements("css selector", "#recovery-codes li")]
    assert len(codes) == 10 and all(RECOVERY_RE.match(c) for c in codes), codes
    b.shot("mfa-enroll-codes")
    b.d.execute_script("history.back()")
    b.path_is("/mfa/enroll")
    assert [li.text for li in b.d.find_elements("css selector", "#recovery-codes li")] == codes
    b.click("#codes-copy")
    b.text_of("#codes-status", "Cop")  # copied, or told how to copy by hand
    b.click("#codes-download")
    b.text_of("#codes-status", "Downloaded breeze-recovery-codes.txt.")
    saved = downloads / "breeze-recovery-codes.txt"
    b.wait(lambda d: saved.exists() and all(c in saved.read_text() for c in codes))
    assert not b.d.find_element("css selector", "#codes-done").is_enabled()
    b.click("#codes-saved")
    b.click("#codes-done")
    b.path_is("/devices")
    assert "Two-factor authentication\non" in b.text_of("#account", "Organizations")
    wait_signed_in(b, u.body["name"])
    # Done: the enrolment page is behind, and the session survives a reload.
    b.d.get(web.url + "/mfa/enroll")
    b.path_is("/devices")
    b.d.refresh()
    wait_signed_in(b, u.body["name"])
    # The server agrees: MFA is on, so a new login asks for a code.
    r = u.api.clone(token=None).post("/api/v1/auth/login",
                                     json={"email": u.email, "password": u.password})
    assert r.status_code == 200 and r.json()["mfaRequired"] is True


def test_a_reload_mid_enrolment_starts_it_again(browser, web, admin, forcing_role, make_user):
    b = browser
    force(admin, forcing_role)
    u = make_user(forcing_role["name"])
    login(b, web.url, u.email, u.password)
    b.type("#enroll-password", u.password)
    b.click("#enroll-start")
    first = b.el("#mfa-secret").text
    b.d.refresh()
    b.path_is("/mfa/enroll")
    b.type("#enroll-password", u.password)
    b.click("#enroll-start")
    b.wait(lambda d: b.el("#mfa-secret").text not in ("", first))
    # Sign-out works from here.
    b.click("#logout")
    b.text_of("#login-flash", "You have signed out.")
    b.d.get(web.url + "/mfa/enroll")
    b.path_is("/login")


def test_forcing_mfa_while_signed_in_leads_to_enrolment(browser, web, admin, forcing_role,
                                                       make_user):
    """The role is switched to force MFA after the user signed in: the next
    page they open answers 428 / says so, and enrolment takes over."""
    b = browser
    u = make_user(forcing_role["name"])
    login(b, web.url, u.email, u.password)
    wait_signed_in(b, u.body["name"])
    b.path_is("/devices")
    force(admin, forcing_role)
    b.click("nav a")
    b.path_is("/mfa/enroll")
    b.el("#enroll-password")
    held_on_enrolment(b, web.url)
