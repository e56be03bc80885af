"""The web dashboard in headless Chromium, slice 5 (docs/dashboard.md):
organizations and their sites, users (role, organization, MFA) and roles
with their force-MFA switch, and webhooks (create with the secret shown
once, disable, test delivery, deliveries, delete). The session's browser
and server, signed in once as the bootstrap administrator.
Names such as `<img src=x onerror=alert(1)>` are shown as text; every test
fails on a JavaScript dialog or console error (web_browser.py)."""
import re
import time

import pyotp
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import TEST_CLOCK, uniq
from web_browser import chromium_missing, login, sign_in_admin

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
    b.path_is(path.split("?")[0])


def rows(b, css):
    return b.d.find_elements(By.CSS_SELECTOR, css)


def no_injected_img(b):
    assert b.d.execute_script("return document.querySelectorAll('#page img').length") == 0


def test_organizations_and_sites(browser, web, admin):
    b = browser
    name = f"{XSS} {uniq('org')}"
    page(b, web, "/organizations")
    b.type("#org-name", name)
    b.click("#org-name-submit")
    b.text_of("#orgs-message", "Created the organization")
    link = b.wait(lambda d: [a for a in rows(b, "#orgs a") if a.text == name])[0]
    no_injected_img(b)
    b.shot("organizations")
    # The same name again is refused, and said so.
    b.type("#org-name", name)
    b.click("#org-name-submit")
    b.text_of("#orgs-message", "That name is already taken.")

    link.click()
    b.wait(lambda d: b.path().startswith("/organizations/"))
    org_id = b.path().rsplit("/", 1)[1]
    assert b.text_of("#org-title", "org") == name
    b.text_of("#sites", "No sites.")
    site = f"{XSS} site"
    b.type("#site-name", site)
    b.click("#site-name-submit")
    b.text_of("#org-message", "Created the site")
    b.wait(lambda d: [td for td in rows(b, "#sites td") if td.text == site])
    no_injected_img(b)
    b.shot("organization-sites")
    # The server agrees, and a reload shows the same.
    sites = admin.get(f"/api/v1/organizations/{org_id}/sites").json()["sites"]
    assert [s["name"] for s in sites] == [site]
    b.d.refresh()
    b.wait(lambda d: [td for td in rows(b, "#sites td") if td.text == site])
    # An organization that does not exist.
    page(b, web, "/organizations/0b4f4ad0-1c1e-4c7e-9a51-5f1d3c2b7a10")
    b.text_of("#org-message", "There is no such organization")


def mfa_on(u):
    r = u.api.post("/api/v1/auth/mfa/setup", json={"currentPassword": u.password})
    assert r.status_code == 200, r.text
    code = pyotp.TOTP(r.json()["secret"]).at(int(time.time() + TEST_CLOCK.offset))
    r = u.api.post("/api/v1/auth/mfa/enable", json={"code": code})
    assert r.status_code == 200, r.text


def user_row(b, email):
    return b.wait(lambda d: rows(b, f"#users tr[data-email='{email}']"))[0]


def test_users_list_and_create(browser, web, admin, tenants, make_user):
    b = browser
    with_mfa = make_user("partner_technician", name=XSS)
    mfa_on(with_mfa)
    without = make_user("org_viewer", orgId=tenants.a.id)
    page(b, web, "/users")
    r = user_row(b, with_mfa.email)
    cells = [td.text for td in r.find_elements(By.TAG_NAME, "td")]
    assert cells == [XSS, with_mfa.email, "partner_technician", "Partner staff", "on", "active"], cells
    cells = [td.text for td in user_row(b, without.email).find_elements(By.TAG_NAME, "td")]
    assert cells[2:5] == ["org_viewer", tenants.a.name, "off"], cells
    no_injected_img(b)

    # Create an organization user with a generated password, shown once.
    email = f"{uniq('webuser')}@example.test"
    b.type("#user-name-input", "Web Made")
    b.type("#user-email-input", email)
    Select(b.el("#user-role")).select_by_value("org_viewer")
    Select(b.el("#user-org")).select_by_visible_text(tenants.a.name)
    b.click("#user-create")
    b.text_of("#users-message", f"Created the user {email}.")
    password = b.el("#user-generated-password").text
    assert len(password) >= 12
    cells = [td.text for td in user_row(b, email).find_elements(By.TAG_NAME, "td")]
    assert cells == ["Web Made", email, "org_viewer", tenants.a.name, "off", "active"], cells
    b.shot("users")
    r = admin.clone(token=None).post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    # The same e-mail again is refused, in words.
    b.type("#user-name-input", "Again")
    b.type("#user-email-input", email)
    b.click("#user-create")
    b.text_of("#users-message", "A user with that e-mail address already exists.")
    b.d.refresh()
    user_row(b, email)
    assert rows(b, "#user-generated-password") == []  # shown once only


def role_switch(b, name):
    return b.wait(lambda d: rows(b, f"#roles tr[data-role='{name}'] input.force-mfa"))[0]


def test_role_force_mfa_switch(browser, web, admin, bootstrap, make_user):
    """The switch PATCHes the role; a user of it is then sent to /mfa/enroll
    at their next sign-in. A refused change is shown and the switch goes
    back."""
    b = browser
    role = admin.post("/api/v1/roles", json={"name": uniq("webforced"), "scope": "partner",
                                             "permissions": ["devices:read"]}).json()
    gone = admin.post("/api/v1/roles", json={"name": uniq("webgone"), "scope": "partner",
                                             "permissions": ["devices:read"]}).json()
    u = make_user(role["name"])
    try:
        page(b, web, "/roles")
        sw = role_switch(b, role["name"])
        assert not sw.is_selected()
        sw.click()
        b.text_of("#roles-message", f"{role['name']}: MFA is now required.")
        assert role_switch(b, role["name"]).is_selected()
        listed = {r["name"]: r for r in admin.get("/api/v1/roles").json()["roles"]}
        assert listed[role["name"]]["forceMfa"] is True
        b.shot("roles")

        # Switching it off asks first: the box stays ticked until a second
        # click on "Stop requiring MFA" confirms.
        role_switch(b, role["name"]).click()
        assert role_switch(b, role["name"]).is_selected()
        off = b.el(f"#roles tr[data-role='{role['name']}'] button.force-mfa-off")
        off.click()
        assert off.text == "Really stop requiring MFA?"
        assert [r for r in admin.get("/api/v1/roles").json()["roles"]
                if r["id"] == role["id"]][0]["forceMfa"] is True
        off.click()
        b.text_of("#roles-message", f"{role['name']}: MFA is no longer required.")
        assert not role_switch(b, role["name"]).is_selected()
        role_switch(b, role["name"]).click()
        b.text_of("#roles-message", f"{role['name']}: MFA is now required.")

        # A refusal: the role was deleted meanwhile (404), said so, switch back.
        assert admin.delete(f"/api/v1/roles/{gone['id']}").status_code == 200
        role_switch(b, gone["name"]).click()
        b.text_of("#roles-message", "not")
        assert b.el("#roles-message").get_attribute("class") == "message error"
        b.wait(lambda d: not role_switch(b, gone["name"]).is_selected())

        # The role's user, at their next sign-in: enrolment first.
        b.click("#logout")
        b.text_of("#login-flash", "You have signed out.")
        login(b, web.url, u.email, u.password)
        b.path_is("/mfa/enroll")
        b.el("#enroll-password")
        b.d.get(web.url + "/users")
        b.path_is("/mfa/enroll")
        b.click("#logout")
        b.text_of("#login-flash", "You have signed out.")
    finally:
        admin.patch(f"/api/v1/roles/{role['id']}", json={"forceMfa": False})
        if b.path() != "/devices":
            b.reset(web.url)
            sign_in_admin(b, web, bootstrap)
    # Switched off again in the page.
    page(b, web, "/roles")
    sw = role_switch(b, role["name"])
    assert not sw.is_selected()


def webhook_row(b, url):
    return b.wait(lambda d: [r for r in rows(b, "#webhooks tbody tr")
                             if r.find_elements(By.TAG_NAME, "a") and
                             r.find_element(By.TAG_NAME, "a").text == url])[0]


def deliveries(b):
    """[(id, status, event)] of the deliveries table, read in one go (the
    table is redrawn after every action)."""
    return [tuple(x) for x in b.d.execute_script(
        "return [...document.querySelectorAll('#deliveries tr[data-delivery]')].map((r) =>"
        " [r.dataset.delivery, r.querySelector('td.status').textContent, r.cells[1].textContent])")]


def test_webhooks(browser, web, admin, tenants):
    b = browser
    url = f"https://hooks.example.com/{uniq('web')}"
    page(b, web, "/webhooks")
    Select(b.el("#webhook-org")).select_by_visible_text(tenants.a.name)
    # A refused URL: the server's reason is shown.
    b.type("#webhook-url", "http://localhost/hook")
    b.click("#webhook-create")
    b.text_of("#webhooks-message", "url")
    b.type("#webhook-url", url)
    b.type("#webhook-events", "device.enroll, agent.token.suspended")
    b.click("#webhook-create")
    secret = b.el("#webhook-secret").text
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", secret), secret
    row = webhook_row(b, url)
    wid = row.get_attribute("data-webhook")
    got = admin.get(f"/api/v1/webhooks/{wid}").json()
    assert got["orgId"] == tenants.a.id and got["events"] == ["device.enroll", "agent.token.suspended"]
    assert secret not in b.d.execute_script("return document.querySelector('#webhooks').textContent")
    b.shot("webhooks")

    # Disable; a test of a disabled webhook is refused; enable; test.
    row.find_element(By.CSS_SELECTOR, "button.toggle").click()
    b.text_of("#webhooks-message", "Webhook disabled.")
    b.wait(lambda d: webhook_row(b, url).find_element(By.CSS_SELECTOR, "td.state").text == "disabled")
    assert admin.get(f"/api/v1/webhooks/{wid}").json()["enabled"] is False
    webhook_row(b, url).find_element(By.CSS_SELECTOR, "button.test").click()
    b.text_of("#webhooks-message", "The webhook is disabled")
    webhook_row(b, url).find_element(By.CSS_SELECTOR, "button.toggle").click()
    b.text_of("#webhooks-message", "Webhook enabled.")
    webhook_row(b, url).find_element(By.CSS_SELECTOR, "button.test").click()
    b.text_of("#webhooks-message", "Test delivery queued.")

    # The deliveries, with their status (no delivery worker in the tests:
    # they stay pending).
    webhook_row(b, url).find_element(By.TAG_NAME, "a").click()
    b.path_is(f"/webhooks/{wid}")
    b.text_of("#webhook-state", "enabled")
    b.wait(lambda d: len(deliveries(b)) == 1)
    b.click("#webhook-test")
    b.text_of("#webhook-message", "Test delivery queued.")
    shown = b.wait(lambda d: deliveries(b) if len(deliveries(b)) == 2 else None)
    assert [(s, e) for _, s, e in shown] == [("pending", "webhook.test")] * 2, shown
    b.shot("webhook-deliveries")
    api = admin.get(f"/api/v1/webhooks/{wid}/deliveries").json()["deliveries"]
    assert [d["id"] for d in api] == [i for i, _, _ in shown]

    # Delete, after a second click.
    page(b, web, "/webhooks")
    d = webhook_row(b, url).find_element(By.CSS_SELECTOR, "button.delete")
    d.click()
    assert d.text == "Really delete?"
    assert admin.get(f"/api/v1/webhooks/{wid}").status_code == 200
    d.click()
    b.text_of("#webhooks-message", "Webhook deleted.")
    b.wait(lambda dr: not [r for r in rows(b, "#webhooks tbody tr") if r.get_attribute("data-webhook") == wid])
    assert admin.get(f"/api/v1/webhooks/{wid}").status_code == 404
