"""Attacks on the dashboard's pages (web/src/devices*.js, enrollment_keys.js,
orgs.js, users.js, audit.js, account.js, webhooks.js, main.js's router):
values from agents and users drawn as markup, another tenant's data through
ids and query strings, the post-login return path, secrets left on screen,
the forced-MFA gate on the new routes, and the CSP of every new route.

The session's browser and server (web_browser.py); every browser test fails on a
JavaScript dialog or a console error. A failing test names a finding, a
passing one records an attack that held."""
import re
import types

import pytest

from conftest import ADMIN_NAME, uniq
from web_browser import chromium_missing, login, settle, wait_signed_in

XSS = "<img src=x onerror=alert(1)>"
SVG = "<svg/onload=alert(2)>"
MARKUP_JS = "return document.querySelectorAll('#app img, #app svg, #app script, #app iframe, #app b').length"
needs_chromium = pytest.mark.skipif(chromium_missing(), reason="chromium/chromedriver missing")

NEW_ROUTES = ["/devices", "/devices/00000000-0000-4000-8000-000000000000", "/enrollment-keys",
              "/organizations", "/organizations/x", "/users", "/roles", "/audit", "/account",
              "/webhooks", "/webhooks/x", "/devices?status=online&orgId=x", "/audit?orgId=x&cursor=y"]


# ------------------------------------------------------------ headers, no browser

def test_every_new_route_is_the_app_with_its_csp(api):
    """Held: every page route (with ids and query strings) is index.html
    with the page's CSP (script-src 'self', Trusted Types, no inline), and
    nosniff / frame-ancestors 'none'."""
    want = api.get("/devices").headers["Content-Security-Policy"]
    assert "script-src 'self'" in want and "'unsafe-inline'" not in want
    assert "require-trusted-types-for 'script'" in want and "frame-ancestors 'none'" in want
    for p in NEW_ROUTES:
        r = api.get(p)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), (p, r.status_code)
        assert r.headers["Content-Security-Policy"] == want, p
        assert r.headers["X-Content-Type-Options"] == "nosniff", p


def test_foreign_tenant_in_the_query_string(tenants, agents):
    """Held: the calls the pages make with the page's query copied in
    (devices list, audit, enrolment keys, webhooks) answer 404 for another
    tenant's orgId/siteId, and an encoded '&' in a filter value stays in
    that value (no smuggled orgId)."""
    b_dev = agents.new_device(org_id=tenants.b.id, site_id=tenants.b.site_id, hostname=uniq("bhost"))
    c = tenants.a_admin.api
    for p in (f"/api/v1/devices?orgId={tenants.b.id}", f"/api/v1/devices?siteId={tenants.b.site_id}",
              f"/api/v1/devices?orgId={tenants.a.id}&siteId={tenants.b.site_id}",
              f"/api/v1/audit?orgId={tenants.b.id}&limit=50",
              f"/api/v1/enrollment-keys?orgId={tenants.b.id}",
              f"/api/v1/organizations/{tenants.b.id}/sites",
              f"/api/v1/devices/{b_dev['agentId']}"):
        r = c.get(p)
        assert r.status_code in (400, 404), (p, r.status_code, r.text[:300])
        assert b_dev["hostname"] not in r.text
    r = c.get("/api/v1/devices", params={"hostname": f"x&orgId={tenants.b.id}"})
    assert r.status_code in (200, 400), r.text
    assert b_dev["hostname"] not in r.text
    r = c.get("/api/v1/devices", params=[("orgId", tenants.a.id), ("orgId", tenants.b.id)])
    assert r.status_code in (400, 404), r.text[:300]
    assert b_dev["hostname"] not in r.text


# ------------------------------------------------------------ browser fixtures

@pytest.fixture
def page(browser, web):
    """A fresh visitor; fails on any dialog or console error at the end."""
    browser.reset(web.url)
    browser.problems()
    yield browser
    settle(browser, 0.5)
    found = browser.problems()
    assert not found, "\n".join(found)


def as_admin(b, web, bootstrap):
    login(b, web.url, bootstrap.email, bootstrap.password)
    wait_signed_in(b, ADMIN_NAME)


def visit(b, web, path, ready_css):
    b.d.get(web.url + path)
    wait_signed_in(b, ADMIN_NAME)
    b.el(ready_css)
    settle(b, 0.1)


@pytest.fixture(scope="module")
def marked(admin, agents, make_org):
    """An organization, a site, an enrolment key, a device (OS, kernel, CPU
    model, metrics keys and values) and a webhook URL, all with markup."""
    org = make_org("o" + XSS + uniq(""))
    r = admin.post(f"/api/v1/organizations/{org.id}/sites", json={"name": "s" + SVG})
    assert r.status_code == 201, r.text
    site = r.json()
    key = agents.create_key(org_id=org.id, site_id=site["id"], name="k" + XSS)
    r = agents.enroll(key["key"], hostname="h" + SVG, osType="l" + SVG, osVersion=SVG,
                      architecture="x86" + XSS, agentVersion="0.1" + SVG,
                      hardware={"cpuModel": XSS, "kernel": SVG, XSS: SVG, "nested": {"a": XSS}})
    assert r.status_code == 201, r.text
    d = r.json()
    hb = agents.heartbeat(d["agentId"], d["authToken"], hostname="h" + SVG, osType="linux",
                          osVersion=XSS, kernel=SVG, architecture=XSS, cpuModel=SVG,
                          metrics={XSS: 1.0, "cpuPercent": 1.0})
    assert hb.status_code == 200, hb.text
    r = admin.post("/api/v1/webhooks", json={"orgId": org.id, "events": ["*"],
                                             "url": f"https://hooks.example.com/{uniq('w')}/'<img src=x onerror=alert(5)>"})
    if r.status_code != 201:  # the API refuses quotes or brackets: a query of markup-ish text then
        r = admin.post("/api/v1/webhooks", json={"orgId": org.id, "events": ["*"],
                                                 "url": f"https://hooks.example.com/{uniq('w')}?q=<b>x</b>"})
    hook = r.json() if r.status_code == 201 else None
    assert hook is not None, r.text
    dev_id = d["agentId"]
    return types.SimpleNamespace(org=org, site=site, key=key, device=dev_id, hook=hook)


@needs_chromium
def test_agent_and_user_strings_render_as_text_on_every_page(page, web, bootstrap, marked):
    """Held: an organization, site, enrolment-key and device with markup in
    every agent-reported field (hostname, OS, architecture, agent version,
    inventory keys and values, metric keys), a webhook URL with quotes and
    markup, a session's user agent with markup, and the audit rows naming
    them, are text on every page: no
    element is created, no dialog opens."""
    import requests
    r = requests.post(web.url + "/api/v1/auth/login", json={"email": bootstrap.email, "password": bootstrap.password},
                      headers={"User-Agent": "Mozilla " + XSS + SVG}, timeout=30)
    assert r.status_code == 200, r.text
    b = page
    as_admin(b, web, bootstrap)
    pages = [("/account", "#sessions td.ua"), (f"/devices?orgId={marked.org.id}", "#devices-table"),
             (f"/devices/{marked.device}", "#device-inventory"),
             ("/enrollment-keys", "#keys-table"), ("/organizations", "#app table"),
             (f"/organizations/{marked.org.id}", "#app h1"),
             (f"/audit?orgId={marked.org.id}", "#app table"),
             ("/webhooks", "#app table")]
    pages.append((f"/webhooks/{marked.hook['id']}", "#webhook-facts"))
    for path, css in pages:
        visit(b, web, path, css)
        assert b.d.execute_script(MARKUP_JS) == 0, path
        assert b.problems() == [], path
    visit(b, web, "/account", "#sessions td.ua")
    assert XSS in b.el("#sessions").text
    b.d.get(web.url + f"/devices/{marked.device}")
    assert SVG in b.text_of("#device-hostname", "h<svg")
    assert XSS in b.el("#device-facts").text


# ------------------------------------------------------------ the return path after sign-in

RETURN_PATHS = ["/devices/javascript:alert(1)?x=//evil.example", "/webhooks/../../x"]


@needs_chromium
@pytest.mark.parametrize("wanted", RETURN_PATHS)
def test_return_path_after_sign_in_stays_in_the_app(page, web, bootstrap, wanted):
    """A signed-out visit to a path remembers it (main.js `wanted`) and
    goes there after sign-in. Attack: paths that read as another origin or
    a script URL. Must end signed in on this origin, with no error."""
    b = page
    b.d.get(web.url + wanted)
    b.path_is("/login")
    as_admin(b, web, bootstrap)
    settle(b, 0.5)
    assert b.d.execute_script("return location.origin") == web.url
    assert b.path() != "/login", "signed in but left on the login page"


@pytest.mark.parametrize("wanted", ["//evil.example/x", "/\\evil.example/x", "//evil.example",
                                    "/%2F%2Fevil.example", "/%5Cevil.example"])
def test_scheme_relative_paths_never_load_the_app(api, wanted):
    """Held: main.js keeps location.pathname verbatim as `wanted` and ends
    the sign-in with history.pushState(wanted); a path starting '//' (or
    '/\\', which the browser turns into '//') would be a scheme-relative URL
    of another origin there. The server never answers such a path (nor
    any path with a percent escape) with the app: a JSON 404, so the app
    never starts on it and `wanted` cannot hold it. (Defence in depth: the
    app itself does not check that `wanted` starts with a single '/'.)"""
    r = api.get(wanted)
    assert r.status_code == 404, (wanted, r.status_code)
    assert r.headers["Content-Type"] == "application/json"


# ------------------------------------------------------------ ids in URLs

@needs_chromium
def test_traversal_ids_never_reach_another_api(page, web, bootstrap):
    """Held: ids decoded from the page URL are encoded again for the API
    call, so /devices/..%2F..%2Fusers calls /api/v1/devices/..%2F..%2Fusers
    (404), never /api/v1/users; a dot segment is resolved by the browser
    before the router sees it; a made-up action path is 'Page not found'
    and sends no mutation."""
    b = page
    as_admin(b, web, bootstrap)
    before = web.log_text()
    # The server refuses any percent escape in a page path (static.c), so
    # these are reached in the app (a data-route link does the same).
    for p in ("/devices/..%2F..%2Fusers", "/devices/..%252F..%252Fusers", "/webhooks/..%2Fdeliveries",
              "/organizations/..%2F..%2Fusers", "/devices/x%3Fstatus%3Donline", "/devices/%2e%2e",
              "/webhooks/.%2E"):
        b.d.execute_script("history.pushState(null, '', arguments[0]);"
                           " dispatchEvent(new PopStateEvent('popstate'));", p)
        wait_signed_in(b, ADMIN_NAME)
        settle(b, 0.2)
        b.problems()  # the 404s of the page's own calls are logged by Chromium
    for p in ("/devices/00000000-0000-4000-8000-000000000000/decommission",
              "/webhooks/00000000-0000-4000-8000-000000000000/delete"):
        b.d.get(web.url + p)
        b.text_of("#app h1", "Page not found")
    new = web.log_text()[len(before):]
    assert '"route":"/api/v1/users"' not in new, new[-3000:]
    writes = [m for m in re.findall(r'"method":"(?:POST|DELETE|PATCH|PUT)","route":"([^"]*)"', new)
              if m != "/api/v1/auth/refresh"]
    assert writes == [], writes


# ------------------------------------------------------------ secrets on screen

def page_html(b):
    return b.d.execute_script("return document.documentElement.outerHTML + JSON.stringify(history.state)")


@needs_chromium
def test_shown_once_secrets_gone_after_leaving_and_coming_back(page, web, bootstrap, tenants):
    """Held: the raw enrolment key and a webhook's signing secret are not in
    the page any more after going to another page and back (the back
    button redraws the page from the API), nor in history.state, nor in
    the audit page's details; after signing out (and the back button)
    nothing of a shown key is left."""
    from selenium.webdriver.support.ui import Select
    b = page
    as_admin(b, web, bootstrap)
    visit(b, web, "/enrollment-keys", "#key-form")
    Select(b.el("#key-site")).select_by_value(tenants.a.site_id)
    b.type("#key-name", uniq("once"))
    b.click("#key-create")
    raw = b.el("#new-key-value").text
    assert raw.startswith("bek_")
    b.click('nav a[href="/devices"]')
    b.path_is("/devices")
    b.d.back()
    b.path_is("/enrollment-keys")
    b.el("#key-form")
    assert raw not in page_html(b)
    b.d.forward()
    b.path_is("/devices")
    assert raw not in page_html(b)

    visit(b, web, "/webhooks", "#webhook-form")
    Select(b.el("#webhook-org")).select_by_visible_text(tenants.a.name)
    b.type("#webhook-url", f"https://hooks.example.com/{uniq('once')}")
    b.click("#webhook-create")
    secret = b.el("#webhook-secret").text
    assert secret.startswith("whsec_")
    b.click('nav a[href="/audit"]')
    b.path_is("/audit")
    settle(b, 0.5)
    assert secret not in page_html(b)
    b.d.back()
    b.path_is("/webhooks")
    b.el("#webhook-form")
    settle(b, 0.3)
    assert secret not in page_html(b)
    # Nor in the audit log's details the page shows.
    visit(b, web, "/audit", "#app table")
    for d in b.d.find_elements("css selector", "details.entry"):
        b.d.execute_script("arguments[0].open = true", d)
    html = page_html(b)
    assert raw not in html and secret not in html and raw[4:] not in html and secret[6:] not in html
    # A new key, then sign out: the login page keeps nothing of it.
    visit(b, web, "/enrollment-keys", "#key-form")
    Select(b.el("#key-site")).select_by_value(tenants.a.site_id)
    b.type("#key-name", uniq("once"))
    b.click("#key-create")
    raw = b.el("#new-key-value").text
    b.click("#logout")
    b.text_of("#login-flash", "signed out")
    assert raw not in page_html(b)
    b.d.back()
    settle(b, 1.0)
    assert raw not in page_html(b), b.path()


# ------------------------------------------------------------ forced enrolment

@needs_chromium
def test_forced_enrolment_on_every_new_route(page, web, admin, make_user):
    """Held: a user whose role forces MFA (none enrolled) who types any of
    the new routes, with ids and query strings, lands on /mfa/enroll and
    none of the pages' data calls is answered 200."""
    b = page
    r = admin.post("/api/v1/roles", json={"name": uniq("forced"), "scope": "partner",
                                         "permissions": ["devices:read", "users:read", "orgs:read",
                                                         "audit:read", "webhooks:read",
                                                         "enrollment_keys:read"]})
    assert r.status_code == 201, r.text
    role = r.json()
    assert admin.patch(f"/api/v1/roles/{role['id']}", json={"forceMfa": True}).status_code == 200
    u = make_user(role["name"])
    login(b, web.url, u.email, u.password)
    b.path_is("/mfa/enroll")
    before = web.log_text()
    for p in ("/devices/00000000-0000-4000-8000-000000000000", "/webhooks/x", "/audit?orgId=x&cursor=y",
              "/enrollment-keys", "/account"):
        b.d.get(web.url + p)
        b.path_is("/mfa/enroll")
        b.el("#enroll")
    settle(b, 0.5)
    b.problems()
    new = web.log_text()[len(before):]
    leaked = re.findall(r'"route":"(/api/v1/(?:devices|audit|users|roles|webhooks|organizations|enrollment-keys)'
                        r'[^"]*)","status":200', new)
    assert leaked == [], leaked


# ------------------------------------------------------------ destructive actions, one click

def live_sessions(srv_url, token):
    import requests
    r = requests.get(srv_url + "/api/v1/auth/sessions", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return r.status_code, (r.json().get("sessions", []) if r.status_code == 200 else [])


@needs_chromium
def test_switching_off_forced_mfa_asks_first(page, web, admin, bootstrap):
    """FINDING (low-medium): docs/dashboard.md promises "a destructive
    action asks with a second click on its button", but on /roles one
    click on a role's "Force MFA … required" checkbox PATCHes forceMfa
    false at once (users.js roleRow: the change listener calls the API):
    a stray click silently drops the MFA requirement of every user of the
    role (a security downgrade, audited but not confirmed). Fix: switching
    the requirement OFF goes through the same second-click (or <dialog>)
    confirmation as the other destructive actions; switching it on may
    stay one click."""
    b = page
    r = admin.post("/api/v1/roles", json={"name": uniq("strict"), "scope": "partner",
                                         "permissions": ["devices:read"]})
    assert r.status_code == 201, r.text
    role = r.json()
    assert admin.patch(f"/api/v1/roles/{role['id']}", json={"forceMfa": True}).status_code == 200
    as_admin(b, web, bootstrap)
    visit(b, web, "/roles", f'tr[data-role="{role["name"]}"] input.force-mfa')
    b.click(f'tr[data-role="{role["name"]}"] input.force-mfa')
    settle(b, 1.0)
    now = next(x for x in admin.get("/api/v1/roles").json()["roles"] if x["id"] == role["id"])
    assert now["forceMfa"] is True, \
        "one click switched the role's forced MFA off"


@needs_chromium
def test_revoking_another_session_asks_first(page, web, make_user):
    """FINDING (low): the same promise ("a destructive action asks with a
    second click on its button") is not kept on /account: one click on
    Revoke in the sessions list DELETEs that session at once (account.js
    listSessions), and the row of this tab ("Sign out (this session)") is
    the same kind of button. A mis-click ends another device's session
    (its unsaved work, an agent console…). Fix: use the webhooks page's
    twoStep() (or a <dialog>) for Revoke."""
    b = page
    u = make_user("partner_technician", name=uniq("Sess"))
    other = u.api.token
    login(b, web.url, u.email, u.password)
    wait_signed_in(b, u.body["name"])
    st, before = live_sessions(web.url, other)
    assert st == 200 and len(before) == 2, before
    visit_path = "/account"
    b.d.get(web.url + visit_path)
    wait_signed_in(b, u.body["name"])
    b.el("#sessions tr:not(.current) button.revoke").click()
    settle(b, 1.0)
    b.problems()
    st, after = live_sessions(web.url, other)
    assert st == 200 and len(after) == 2, "one click on Revoke ended the other session"


@needs_chromium
def test_webhook_delete_arm_does_not_outlive_the_moment(page, web, admin, bootstrap, tenants):
    """FINDING (low): the webhooks page's Delete asks "Really delete?" on
    the first click (webhooks.js twoStep), but the armed state never
    expires and is not dropped when the user clicks elsewhere or presses
    Escape: a button armed by a stray click minutes earlier deletes the
    webhook on the next single click, so it is no confirmation of that
    click. Fix: disarm on blur / Escape / after a few seconds (and give
    the armed state a Cancel)."""
    b = page
    url = f"https://hooks.example.com/{uniq('arm')}"
    r = admin.post("/api/v1/webhooks", json={"orgId": tenants.a.id, "events": ["*"], "url": url})
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    as_admin(b, web, bootstrap)
    sel = f'tr[data-webhook="{wid}"] button.delete'
    visit(b, web, "/webhooks", sel)
    b.click(sel)
    assert b.el(sel).text == "Really delete?"
    # The user changes their mind: clicks elsewhere, presses Escape, reads on.
    b.click("#app h1")
    from selenium.webdriver.common.keys import Keys
    b.d.find_element("css selector", "body").send_keys(Keys.ESCAPE)
    settle(b, 0.5)
    b.click(sel)  # later, one click meant as "Delete?" again
    settle(b, 0.5)
    assert admin.get(f"/api/v1/webhooks/{wid}").status_code == 200, \
        "a single click deleted the webhook: the arm of a stray click minutes earlier confirmed it"
