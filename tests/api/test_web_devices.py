"""The web dashboard in headless Chromium, slice 3 (docs/dashboard.md): the
device list with its filters kept in the URL (reload, back button) and
keyset pagination, the empty state, the device detail with its inventory
and source-IP history, and each action behind its confirmation dialog —
token rotation, emergency reset (and the 409 that follows), decommission,
the review of a device suspended by a cross-tenant probe. An organization's
user sees only its own devices: another tenant's device id in the address
bar shows "not found" and nothing of it. A device enrolled with the
hostname <img src=x onerror=alert(1)> is shown as that text. Every test
fails on a JavaScript dialog or console error (web_browser.py)."""
import re
import types

import pytest
from selenium.common.exceptions import StaleElementReferenceException

from conftest import uniq
from web_browser import chromium_missing, login, settle, sign_in_admin, wait_signed_in

pytestmark = [pytest.mark.skipif(chromium_missing(), reason="chromium/chromedriver not installed "
                                 "(scripts/install-deps)"),
              pytest.mark.usefixtures("no_page_errors")]

XSS = "<img src=x onerror=alert(1)>"
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture(scope="module")
def fleet(admin, agents, make_org, make_user):
    """Organization X: five devices in its main site (two of them sending
    heartbeats), one in a second site, the XSS hostname; organization Y
    with one device and an org_admin."""
    tag = uniq("wd").replace("-", "").lower()[-8:]
    x = make_org(uniq("Fleet X"))
    r = admin.post(f"/api/v1/organizations/{x.id}/sites", json={"name": "Branch"})
    assert r.status_code == 201, r.text
    branch = r.json()["id"]
    main = []
    for i in range(1, 6):
        d = agents.new_device(org_id=x.id, site_id=x.site_id, hostname=f"wd{tag}-0{i}")
        if i <= 2:
            r = agents.heartbeat(d["agentId"], d["authToken"], hostname=d["hostname"])
            assert r.status_code == 200, r.text
        main.append(d)
    other_site = agents.new_device(org_id=x.id, site_id=branch, hostname=f"wd{tag}-b1")
    evil = agents.new_device(org_id=x.id, site_id=x.site_id, hostname=XSS)
    y = make_org(uniq("Fleet Y"))
    y_dev = agents.new_device(org_id=y.id, site_id=y.site_id, hostname=f"wd{tag}-y1")
    return types.SimpleNamespace(tag=tag, x=x, branch=branch, main=main, other_site=other_site,
                                 evil=evil, y=y, y_dev=y_dev,
                                 y_admin=make_user("org_admin", orgId=y.id, name=uniq("Yadmin")))


@pytest.fixture
def signed_in(browser, web, bootstrap):
    """The browser signed in as the bootstrap administrator (once, not per test:
    only a test that signed in as someone else makes the next log in again)."""
    return sign_in_admin(browser, web, bootstrap)


def rows(b):
    """The listed device ids (None while the list is being drawn again)."""
    try:
        return [tr.get_attribute("data-device-id")
                for tr in b.d.find_elements("css selector", "#devices-table tbody tr")]
    except StaleElementReferenceException:
        return None


def hostnames(b):
    try:
        return [a.text for a in b.d.find_elements("css selector", "#devices-table tbody a.hostname")]
    except StaleElementReferenceException:
        return None


def query(b):
    return b.d.execute_script("return Object.fromEntries(new URLSearchParams(location.search))")


def test_list_with_filters_kept_in_the_url(signed_in, web, fleet):
    b = signed_in
    b.d.get(web.url + "/devices")
    b.el("#device-filters")
    # Several organizations: a column names each device's.
    assert "Organization" in b.el("#devices-table thead").text
    # Organization: the site list is then that organization's.
    b.d.execute_script("const s = document.getElementById('filter-org'); s.value = arguments[0];"
                       "s.dispatchEvent(new Event('change'))", fleet.x.id)
    b.wait(lambda d: query(b).get("orgId") == fleet.x.id)
    b.wait(lambda d: len(d.find_elements("css selector", "#filter-site option")) == 3)
    b.wait(lambda d: len(rows(b) or []) == 7)
    assert "Organization" not in b.el("#devices-table thead").text
    b.shot("devices-list")
    b.type("#filter-hostname", f"wd{fleet.tag}-0")
    b.d.execute_script("document.getElementById('filter-status').value = 'online'")
    b.click("#filter-apply")
    b.wait(lambda d: query(b).get("status") == "online")
    assert query(b) == {"orgId": fleet.x.id, "status": "online", "hostname": f"wd{fleet.tag}-0"}
    b.wait(lambda d: hostnames(b) == [f"wd{fleet.tag}-01", f"wd{fleet.tag}-02"])
    row = b.el("#devices-table tbody tr")
    assert "Online" in row.text and "linux" in row.text and "Main site" in row.text
    assert "127.0.0.1" in row.text
    seen = row.find_element("css selector", ".last-seen time")
    assert ISO_RE.match(seen.get_attribute("title")), seen.get_attribute("title")
    assert re.search(r"just now|ago", seen.text), seen.text
    b.shot("devices-list-filtered")

    # A reload keeps the filters, in the form and in the list.
    b.d.refresh()
    b.wait(lambda d: hostnames(b) == [f"wd{fleet.tag}-01", f"wd{fleet.tag}-02"])
    assert b.el("#filter-hostname").get_attribute("value") == f"wd{fleet.tag}-0"
    assert b.d.execute_script("return document.getElementById('filter-status').value") == "online"
    assert b.d.execute_script("return document.getElementById('filter-org').value") == fleet.x.id

    # The site filter, then back: the previous filters come back.
    b.d.execute_script("document.getElementById('filter-status').value = '';"
                       "document.getElementById('filter-site').value = arguments[0]", fleet.branch)
    b.type("#filter-hostname", "")
    b.click("#filter-apply")
    b.wait(lambda d: hostnames(b) == [f"wd{fleet.tag}-b1"])
    assert "Branch" in b.el("#devices-table tbody tr").text
    b.d.back()
    b.wait(lambda d: hostnames(b) == [f"wd{fleet.tag}-01", f"wd{fleet.tag}-02"])
    assert query(b)["status"] == "online"

    # Suspended/never: the badge says what the API reports.
    b.d.get(web.url + f"/devices?orgId={fleet.x.id}&status=never&hostname=wd{fleet.tag}-05")
    b.wait(lambda d: hostnames(b) == [f"wd{fleet.tag}-05"])
    assert "Never seen" in b.el("#devices-table tbody tr").text


def test_keyset_pagination(signed_in, web, fleet, admin):
    b = signed_in
    r = admin.get(f"/api/v1/devices?orgId={fleet.x.id}&limit=100")
    want = [d["id"] for d in r.json()["devices"]]
    assert len(want) == 7
    b.d.get(web.url + f"/devices?orgId={fleet.x.id}&limit=3")
    b.wait(lambda d: len(rows(b) or []) == 3)
    got = rows(b)
    assert b.d.find_elements("css selector", "#devices-first") == []
    b.click("#devices-next")
    b.wait(lambda d: "cursor" in query(b) and len(rows(b) or []) == 3 and rows(b) != got[:3])
    got += rows(b)
    assert query(b)["limit"] == "3" and query(b)["orgId"] == fleet.x.id
    b.d.refresh()  # a page of the list survives a reload (the cursor is in the URL)
    b.wait(lambda d: rows(b) == got[3:6])
    b.shot("devices-page-2")
    b.click("#devices-next")
    b.wait(lambda d: len(rows(b) or []) == 1)
    got += rows(b)
    b.el("#devices-end")
    assert got == want
    b.d.back()
    b.wait(lambda d: rows(b) == got[3:6])
    b.click("#devices-first")
    b.wait(lambda d: rows(b) == got[:3] and "cursor" not in query(b))


def test_empty_state_and_bad_filters(signed_in, web, fleet, make_org):
    b = signed_in
    b.d.get(web.url + f"/devices?orgId={fleet.x.id}&hostname=nothing-{fleet.tag}")
    assert b.text_of("#devices-empty", "No devices match these filters.")
    b.click("#devices-empty a")
    b.wait(lambda d: query(b) == {})
    empty = make_org(uniq("Empty"))
    b.d.get(web.url + f"/devices?orgId={empty.id}")
    b.text_of("#devices-empty", "No devices match")
    b.d.get(web.url + "/devices?orgId=not-a-uuid")
    assert b.text_of("#devices-error", "The filters in the address are not valid.")


def test_hostname_with_markup_is_text(signed_in, web, fleet):
    b = signed_in
    b.d.get(web.url + f"/devices?orgId={fleet.x.id}&hostname=%3Cimg")
    b.wait(lambda d: hostnames(b) == [XSS])
    assert b.d.execute_script("return document.querySelectorAll('#app img').length") == 0
    b.click("#devices-table a.hostname")
    b.path_is(f"/devices/{fleet.evil['agentId']}")
    assert b.text_of("#device-hostname", XSS) == XSS
    assert b.d.execute_script("return document.querySelectorAll('#app img').length") == 0
    assert b.d.title == f"{XSS} — Breeze"
    settle(b, 0.5)  # an onerror handler would have run by now
    # A confirmation left open goes with its page (the back button).
    assert XSS in open_action(b, "#action-decommission", "confirm-decommission").text
    b.d.back()
    b.path_is("/devices")
    b.wait(lambda d: hostnames(b) == [XSS])
    assert b.d.find_elements("css selector", "dialog") == []


def open_action(b, button, dialog):
    b.click(button)
    dlg = b.el(f"dialog#{dialog}")
    assert b.d.execute_script("return arguments[0].open", dlg)
    return dlg


def test_detail_and_token_actions(signed_in, web, fleet, agents, sql):
    b = signed_in
    d = fleet.main[0]
    b.d.get(web.url + f"/devices?orgId={fleet.x.id}&hostname={d['hostname']}")
    b.click("#devices-table a.hostname")
    b.path_is(f"/devices/{d['agentId']}")
    facts = b.text_of("#device-facts", "Operating system")
    assert d["hostname"] == b.el("#device-hostname").text
    assert "linux Debian GNU/Linux 12 (bookworm)" in facts and "Main site" in facts
    assert fleet.x.name in facts and "127.0.0.1" in facts
    ip = b.text_of("#ip-history", "127.0.0.1")
    assert "First seen" in ip
    assert "kernel" in b.text_of("#device-inventory", "6.1.0-18-amd64")
    assert "8.0 GiB" in b.text_of("#device-hardware", "memoryTotalBytes")
    assert b.el("#ip-history time").get_attribute("title")
    b.shot("device-detail")

    # Rotation: Cancel does nothing; confirmed, the next heartbeat asks for it.
    dlg = open_action(b, "#action-rotate", "confirm-rotate-agent-token")
    assert "gets a new token on its next heartbeat" in dlg.text
    b.shot("device-confirm")
    dlg.find_element("css selector", "[data-cancel]").click()
    b.wait(lambda drv: not drv.find_elements("css selector", "dialog"))
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'device.agent_token.rotation_requested'"
               " AND resource_id = %s", d["agentId"]) == [(0,)]
    dlg = open_action(b, "#action-rotate", "confirm-rotate-agent-token")
    dlg.find_element("css selector", "[data-confirm]").click()
    assert b.text_of("#action-result", "Rotation requested")
    r = agents.heartbeat(d["agentId"], d["authToken"], hostname=d["hostname"])
    assert r.status_code == 200 and r.json()["rotateToken"] is True, r.text

    # The emergency reset: the agent is refused from then on.
    dlg = open_action(b, "#action-reset", "confirm-reset-agent-token")
    assert "every token" in dlg.text
    dlg.find_element("css selector", "[data-confirm]").click()
    assert b.text_of("#action-result", "Every agent token of this device was retired")
    assert "enrol the agent again" in b.el("#action-result").text
    assert agents.heartbeat(d["agentId"], d["authToken"], hostname=d["hostname"]).status_code == 401
    # Rotating now answers 409 no_agent_token, shown as a sentence.
    open_action(b, "#action-rotate", "confirm-rotate-agent-token") \
        .find_element("css selector", "[data-confirm]").click()
    assert b.text_of("#action-error", "has no working agent token")

    # Decommission: the state changes, and with it the actions on offer.
    open_action(b, "#action-decommission", "confirm-decommission") \
        .find_element("css selector", "[data-confirm]").click()
    assert b.text_of("#action-result", "decommissioned")
    assert b.el("h1 .badge").text == "Decommissioned"
    assert b.d.find_elements("css selector", "#device-actions") == []
    b.d.refresh()
    b.text_of("#device-facts", "Decommissioned")


def test_review_of_a_suspended_device(signed_in, web, fleet, agents, admin):
    b = signed_in
    s = agents.new_device(org_id=fleet.x.id, site_id=fleet.x.site_id, hostname=f"wd{fleet.tag}-sus")
    # A cross-tenant probe: its token used on organization Y's device.
    r = agents.heartbeat(fleet.y_dev["agentId"], s["authToken"])
    assert r.status_code == 401, r.text
    b.d.get(web.url + f"/devices?orgId={fleet.x.id}&status=suspended")
    b.wait(lambda d: hostnames(b) == [s["hostname"]])
    assert "Suspended" in b.el("#devices-table tbody tr").text
    b.click("#devices-table a.hostname")
    form = b.el("#review-form")
    assert "cross_tenant_probe" in form.text
    assert b.d.find_elements("css selector", "#action-rotate") == []
    b.type("#review-note", "probe from a cloned image")
    b.click("#action-review")
    dlg = b.el("dialog#confirm-review")
    assert "cannot enrol" in dlg.text
    dlg.find_element("css selector", "[data-confirm]").click()
    assert b.text_of("#action-result", "re-enrolment is blocked")
    b.shot("device-review")
    # A review that decommissioned it may later allow re-enrolment.
    b.type("#review-note", "image rebuilt")
    b.click("#action-review")
    b.el("dialog#confirm-review").find_element("css selector", "[data-confirm]").click()
    assert b.text_of("#action-result", "re-enrolment is allowed")
    dev = admin.get(f"/api/v1/devices/{s['agentId']}").json()
    assert dev["status"] == "decommissioned" and dev["reenrollmentBlocked"] is False
    assert dev["review"] == {"decision": "allow_reenrollment", "note": "image rebuilt",
                             "at": dev["review"]["at"]}


def test_a_refusal_of_the_role_is_a_sentence(browser, web, fleet, admin, make_user):
    """The role loses devices:write while the page is open: the action
    answers 403 forbidden, shown as such; on the next load the actions are
    gone (the role is known not to hold the permission)."""
    b = browser
    r = admin.post("/api/v1/roles", json={"name": uniq("devops"), "scope": "partner",
                                         "permissions": ["devices:read", "devices:write",
                                                         "orgs:read", "sites:read"]})
    assert r.status_code == 201, r.text
    role = r.json()
    u = make_user(role["name"], name=uniq("Devops"))
    b.reset(web.url)
    login(b, web.url, u.email, u.password)
    wait_signed_in(b, u.body["name"])
    d = fleet.main[2]
    b.d.get(web.url + f"/devices/{d['agentId']}")
    b.el("#action-rotate")
    r = admin.patch(f"/api/v1/roles/{role['id']}", json={"permissions": ["devices:read", "orgs:read",
                                                                        "sites:read"]})
    assert r.status_code == 200, r.text
    open_action(b, "#action-rotate", "confirm-rotate-agent-token") \
        .find_element("css selector", "[data-confirm]").click()
    assert b.text_of("#action-error", "Your role does not allow this action.")
    b.d.refresh()
    b.text_of("#device-facts", "Operating system")
    assert b.d.find_elements("css selector", "#device-actions") == []


def test_org_user_sees_only_their_tenant(browser, web, fleet):
    b = browser
    b.reset(web.url)
    u = fleet.y_admin
    login(b, web.url, u.email, u.password)
    wait_signed_in(b, u.body["name"])
    b.path_is("/devices")
    b.wait(lambda d: hostnames(b) == [fleet.y_dev["hostname"]])
    # Organization Y only: one organization, so no organization column.
    assert "Organization" not in b.el("#devices-table thead").text
    assert b.d.execute_script("return document.getElementById('filter-org').options.length") == 2
    # Another tenant's device in the address bar: not found, nothing of it.
    other = fleet.main[1]
    b.d.get(web.url + f"/devices/{other['agentId']}")
    assert b.text_of("#device-error", "This device was not found.")
    assert b.d.find_elements("css selector", "#device-facts, #device-actions, #ip-history") == []
    assert other["hostname"] not in b.d.find_element("css selector", "#app").text
    b.shot("device-not-found")
    b.d.get(web.url + f"/devices?orgId={fleet.x.id}")
    assert b.text_of("#devices-error", "That organization or site was not found")
    assert b.d.find_elements("css selector", "#devices-table") == []
    b.d.get(web.url + "/devices/not-a-uuid")
    b.text_of("#device-error", "This device was not found.")
