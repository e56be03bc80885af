"""The web dashboard in headless Chromium, slice 4 (docs/dashboard.md):
enrolment keys. A key created for a site (lifetime, use limit) is shown
once with the `breeze-agent enroll` commands to paste — which enrol the
real agent once the shared secret is put in place of the placeholder (the
page never holds that secret) — and is gone after a reload; the list shows
uses left and expiry; revoking asks first. Every test fails on a
JavaScript dialog or console error (web_browser.py)."""
import re
import subprocess

import pytest
from selenium.common.exceptions import StaleElementReferenceException

from conftest import AGENT_BIN, SLOW, base_process_env, register_log, uniq
from web_browser import chromium_missing, login, sign_in_admin, wait_signed_in

pytestmark = [pytest.mark.skipif(chromium_missing(), reason="chromium/chromedriver not installed "
                                 "(scripts/install-deps)"),
              pytest.mark.usefixtures("no_page_errors")]

PLACEHOLDER = "PASTE-THE-SHARED-ENROLMENT-SECRET"
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture(scope="module")
def browser(browser, web, bootstrap):
    """The session's browser, signed in as the bootstrap administrator when
    the module starts (kept if it already is)."""
    return sign_in_admin(browser, web, bootstrap)


@pytest.fixture(scope="module")
def org(make_org):
    return make_org(uniq("Keys"))


def page_text(b):
    return b.d.execute_script("return document.documentElement.textContent")


def create(b, web, org, name, ttl="10080", uses="3"):
    b.d.get(web.url + "/enrollment-keys")
    b.el("#key-form")
    b.d.execute_script("document.getElementById('key-site').value = arguments[0];"
                       "document.getElementById('key-ttl').value = arguments[1]", org.site_id, ttl)
    b.type("#key-name", name)
    b.type("#key-uses", uses)
    b.click("#key-create")
    return b.el("#new-key-value").text


def key_row(b, key_id):
    return b.el(f'#keys-table tr[data-key-id="{key_id}"]')


def row_text(b, key_id):
    """The row's text, or '' while the list is being drawn again."""
    try:
        return key_row(b, key_id).text
    except StaleElementReferenceException:
        return ""


def test_key_shown_once_with_the_command_to_paste(browser, web, org, env, admin, workdir):
    b = browser
    name = uniq("laptops")
    raw = create(b, web, org, name)
    assert re.fullmatch(r"bek_[0-9a-f]{64}", raw), raw
    cmd = b.el("#enroll-command").text
    assert cmd == (f"export BREEZE_ENROLLMENT_KEY='{raw}'\n"
                   f"export BREEZE_ENROLLMENT_SECRET='{PLACEHOLDER}'\n"
                   f"breeze-agent enroll --server {web.url}")
    # The page never has the shared enrolment secret.
    assert env["AGENT_ENROLLMENT_SECRET"] not in page_text(b)
    b.click("#copy-command")
    b.text_of("#copy-status", "Cop")  # copied, or told how to copy by hand
    b.shot("enrollment-key-created")

    k = next(k for k in admin.get(f"/api/v1/enrollment-keys?orgId={org.id}").json()["enrollmentKeys"]
             if k["name"] == name)
    assert k["maxUsage"] == 3 and k["siteId"] == org.site_id and raw.startswith(k["keyPrefix"])
    row = key_row(b, k["id"])
    assert "Active" in row.text and "3 of 3" in row.text and "Main site" in row.text
    exp = row.find_elements("css selector", "time")[0]
    assert exp.get_attribute("title") == k["expiresAt"] and ISO_RE.match(k["expiresAt"])
    assert exp.text == "in 1 week"

    # The command, pasted with the secret in place, enrols the real agent.
    script = cmd.replace(PLACEHOLDER, env["AGENT_ENROLLMENT_SECRET"]) + \
        f" --config-dir {workdir / uniq('web-agent')}"
    log = workdir / "web-enroll.log"
    register_log(log)
    path = f"{AGENT_BIN.parent}:{base_process_env().get('PATH', '/usr/bin:/bin')}"
    r = subprocess.run(["bash", "-euc", script], env={**base_process_env(), "PATH": path}, capture_output=True,
                       text=True, timeout=60 * SLOW, stdin=subprocess.DEVNULL)
    log.write_text(r.stdout + r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr

    # Shown once: after a reload only the prefix is left, with a use spent.
    b.d.refresh()
    row = key_row(b, k["id"])
    assert "2 of 3" in row.text and k["keyPrefix"] in row.text
    assert b.d.find_elements("css selector", "#new-key") == []
    assert raw not in page_text(b)
    b.shot("enrollment-keys")


def test_revoke_asks_first(browser, web, org, agents, admin):
    b = browser
    name = uniq("revoked")
    raw = create(b, web, org, name, ttl="60", uses="1")
    k = next(k for k in admin.get(f"/api/v1/enrollment-keys?orgId={org.id}").json()["enrollmentKeys"]
             if k["name"] == name)
    assert "in 1 hour" in key_row(b, k["id"]).text

    key_row(b, k["id"]).find_element("css selector", "[data-revoke]").click()
    dlg = b.el("dialog#confirm-revoke")
    assert name in dlg.text
    dlg.find_element("css selector", "[data-cancel]").click()
    b.wait(lambda d: not d.find_elements("css selector", "dialog"))
    assert admin.get(f"/api/v1/enrollment-keys/{k['id']}").json()["status"] == "active"

    key_row(b, k["id"]).find_element("css selector", "[data-revoke]").click()
    b.el("dialog#confirm-revoke").find_element("css selector", "[data-confirm]").click()
    b.wait(lambda d: "Revoked" in row_text(b, k["id"]))
    assert key_row(b, k["id"]).find_elements("css selector", "[data-revoke]") == []
    assert admin.get(f"/api/v1/enrollment-keys/{k['id']}").json()["status"] == "revoked"
    assert agents.enroll(raw).status_code == 401
    # The raw key of the first creation is still on screen until the page is left.
    assert b.el("#new-key-value").text == raw


def web_permissions(web, user):
    """USER's permissions as GET /auth/me reports them."""
    from conftest import Api
    me = Api(web.url).login(user.email, user.password).get("/api/v1/auth/me").json()
    return me.get("permissions") or me["role"]["permissions"]


def test_viewer_sees_no_create_form(browser, web, tenants, agents):
    """An org_viewer (no enrollment_keys:*) gets no form and no link."""
    b = browser
    try:
        b.reset(web.url)
        u = tenants.a_viewer
        login(b, web.url, u.email, u.password)
        wait_signed_in(b, u.body["name"])
        b.d.get(web.url + "/enrollment-keys")  # a load: the role's permissions are known
        wait_signed_in(b, u.body["name"])
        # the links of what an org_viewer may read, never enrolment keys
        perms = set(web_permissions(web, u))
        assert "enrollment_keys:read" not in perms
        pages = [("orgs:read", "Organizations"), ("users:read", "Users"), ("roles:read", "Roles"),
                 ("audit:read", "Audit log"), ("webhooks:read", "Webhooks")]
        assert [a.text for a in b.d.find_elements("css selector", "nav a")] == \
            ["Devices"] + [name for p, name in pages if p in perms] + ["My account"]
        assert b.text_of("#keys-error", "Your role does not allow managing enrolment keys.")
        assert b.d.find_elements("css selector", "#key-form") == []
    finally:
        b.reset(web.url)
