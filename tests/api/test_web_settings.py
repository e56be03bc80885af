"""The web dashboard in headless Chromium: the settings pages
(docs/dashboard.md, docs/encryption.md). /settings shows and patches the
partner's settings, /sites/:id/settings a site's (reached from the
organization page). The session's browser and server, signed in
once as the bootstrap administrator (the last test signs in an org viewer).
A value `<img src=x onerror=alert(1)>` is shown as text; every test fails
on a JavaScript dialog or console error (web_browser.py)."""
import json

import pytest
from selenium.webdriver.common.by import By

from conftest import uniq
from web_browser import chromium_missing, login, settle, sign_in_admin, wait_signed_in

pytestmark = [pytest.mark.skipif(chromium_missing(), reason="chromium/chromedriver not installed "
                                 "(scripts/install-deps)"),
              pytest.mark.usefixtures("no_page_errors")]

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser(browser, web, bootstrap):
    """The session's browser, signed in as the bootstrap administrator when
    the module starts (kept if it already is)."""
    return sign_in_admin(browser, web, bootstrap)


def page(b, web, path):
    b.d.get(web.url + path)
    b.path_is(path)


def current(b):
    """The settings the page shows, parsed from the <pre>'s text."""
    return json.loads(b.el("#settings-current").text)


def enter_patch(b, text):
    """Puts TEXT into the textarea (set directly: long texts type slowly)."""
    b.d.execute_script("arguments[0].value = arguments[1];", b.el("#settings-patch"), text)


def save(b, text, want):
    enter_patch(b, text)
    b.click("#settings-save")
    return b.text_of("#settings-message", want)


def shot(b, name):
    b.d.execute_script("window.scrollTo(0, 0);")
    b.shot(name)


def no_injected_img(b):
    assert b.d.execute_script("return document.querySelectorAll('#page img').length") == 0


def test_partner_settings(browser, web, admin, bootstrap):
    b = browser
    url = f"/api/v1/partners/{bootstrap.partnerId}/settings"
    name, secret = uniq("webHost").replace("-", "_"), uniq("webPassword").replace("-", "_")
    b.click("nav a[href='/settings']")
    b.path_is("/settings")
    b.el("#settings-current")
    assert "stored encrypted" in b.el("#settings-note").text
    assert "hidden in the audit log" in b.el("#settings-note").text
    assert "null" in b.el("#settings-example").text

    save(b, json.dumps({name: XSS, secret: "s3cret", "nested": {"a": 1}}), "Saved.")
    shown = current(b)
    assert shown[name] == XSS and shown[secret] == "s3cret"
    no_injected_img(b)
    shot(b, "settings-partner")
    got = admin.get(url)
    assert got.status_code == 200, got.text
    assert got.json()[name] == XSS and got.json()[secret] == "s3cret"

    # null deletes a member; the page redraws with the server's answer.
    save(b, json.dumps({secret: None}), "Saved.")
    b.wait(lambda d: secret not in current(b))
    assert current(b)[name] == XSS
    assert secret not in admin.get(url).json()
    b.d.refresh()
    b.wait(lambda d: name in current(b))
    admin.patch(url, json={name: None, "nested": None})


def test_patch_refusals(browser, web, admin, bootstrap):
    b = browser
    url = f"/api/v1/partners/{bootstrap.partnerId}/settings"
    page(b, web, "/settings")
    before = admin.get(url).json()
    audit = admin.get("/api/v1/audit", params={"action": "partner.settings.update"}).json()

    # Invalid JSON: said so, and nothing is sent.
    b.el("#settings-current")
    b.d.execute_script("window.sentPatches = 0; const f = window.fetch; window.fetch = (u, o) => {"
                       " if (o && o.method === 'PATCH') window.sentPatches++; return f(u, o); };")
    save(b, '{"a": 1,', "not valid JSON")
    assert "Nothing was sent" in b.el("#settings-message").text
    save(b, "[1, 2]", "must be a JSON object")
    assert b.d.execute_script("return window.sentPatches") == 0
    assert admin.get(url).json() == before
    after = admin.get("/api/v1/audit", params={"action": "partner.settings.update"}).json()
    assert after["entries"][:1] == audit["entries"][:1]

    # The server's 400, in its words.
    save(b, json.dumps({"1bad": 1}), "The server refused the patch: settings member names are")
    assert b.d.execute_script("return window.sentPatches") == 1
    # 413: too large.
    save(b, json.dumps({"big": "x" * 17000}), "larger than 16384 bytes")
    shot(b, "settings-refused")
    assert admin.get(url).json() == before


def test_site_settings_from_organization(browser, web, admin, make_org):
    b = browser
    org = make_org(uniq("settings org"))
    page(b, web, f"/organizations/{org.id}")
    link = b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#sites a.site-settings"))[0]
    link.click()
    b.path_is(f"/sites/{org.site_id}/settings")
    assert current(b) == {}
    save(b, json.dumps({"label": XSS, "psaToken": "tok-1"}), "Saved.")
    assert current(b) == {"label": XSS, "psaToken": "tok-1"}
    no_injected_img(b)
    shot(b, "settings-site")
    api_url = f"/api/v1/sites/{org.site_id}/settings"
    assert admin.get(api_url).json() == {"label": XSS, "psaToken": "tok-1"}
    save(b, json.dumps({"psaToken": None}), "Saved.")
    assert current(b) == {"label": XSS}
    assert admin.get(api_url).json() == {"label": XSS}

    # A site that is not there (or not the caller's): 404 in words, no form.
    page(b, web, "/sites/0b4f4ad0-1c1e-4c7e-9a51-5f1d3c2b7a10/settings")
    b.text_of("#settings-message", "There is no such site")
    assert not b.d.find_element(By.ID, "settings-form").is_displayed()


def test_refusals_as_sentences(browser, web, admin, tenants, make_user):
    """Last: signs the browser in as an org viewer, who has no settings
    permission (the refusal as a sentence, no form, no link), then as partner
    staff with orgs:write limited to one organization (the server's 403 as
    a sentence)."""
    b = browser
    v = tenants.a_viewer
    b.reset(web.url)
    login(b, web.url, v.email, v.password)
    wait_signed_in(b, "User org_viewer")
    assert b.d.find_elements(By.CSS_SELECTOR, "nav a[href='/settings']") == []
    page(b, web, "/settings")
    b.text_of("#settings-message", "Not allowed: partner settings are open only to partner staff")
    assert b.d.find_elements(By.ID, "settings-form") == []
    shot(b, "settings-refused-viewer")
    page(b, web, f"/sites/{tenants.a.site_id}/settings")
    b.text_of("#settings-message", "Not allowed:")
    assert not b.d.find_element(By.ID, "settings-form").is_displayed()

    # Partner staff with orgs:write but limited to some organizations: the
    # server's 403, in its words.
    role = admin.post("/api/v1/roles", json={"name": uniq("weblimited"), "scope": "partner",
                                             "permissions": ["orgs:write"]})
    assert role.status_code == 201, role.text
    t = make_user(role.json()["name"], orgIds=[tenants.a.id])
    b.reset(web.url)
    login(b, web.url, t.email, t.password)
    wait_signed_in(b, f"User {role.json()['name']}")
    b.el("nav a[href='/settings']")
    page(b, web, "/settings")
    b.text_of("#settings-message", "Not allowed: only partner users with access to every organization")
    assert not b.d.find_element(By.ID, "settings-form").is_displayed()
    settle(b)
