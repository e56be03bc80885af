"""The web dashboard in headless Chromium, slice 6 (docs/dashboard.md): the
audit log — filters kept in the URL (a reload keeps them), keyset
pagination, expandable details shown as text — and "Verify chain", OK for
an intact chain, then the break (kind, seq, row) after a row was tampered
with behind the triggers' back, as test_audit_tamper.py does. The session's
browser and server, signed in once; every test fails on a
JavaScript dialog or console error (web_browser.py)."""
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import uniq
from web_browser import chromium_missing, sign_in_admin

pytestmark = [pytest.mark.skipif(chromium_missing(), reason="chromium/chromedriver not installed "
                                 "(scripts/install-deps)"),
              pytest.mark.usefixtures("no_page_errors")]

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser(browser, web, bootstrap):
    """The session's browser, signed in as the bootstrap administrator when
    the module starts (kept if it already is)."""
    return sign_in_admin(browser, web, bootstrap)


def entries(b):
    return b.d.find_elements(By.CSS_SELECTOR, "#audit tr[data-id]")


def count_is(b, n):
    b.wait(lambda d: len(entries(b)) == n)


def query_of(b):
    return {k: v[0] for k, v in parse_qs(urlsplit(b.d.current_url).query).items()}


def test_filters_pagination_and_details(browser, web, audit):
    b = browser
    org = audit.new_org(f"{XSS} {uniq('audit')}")
    audit.insert(org, 60, actor_type="user", actor_id=lambda i: f"actor-{i % 3}",
                 action=lambda i: f"test.web_{i % 2}", resource="webtest",
                 details=lambda i: json.dumps({"i": i, "note": XSS}))
    b.d.get(f"{web.url}/audit?orgId={org}")
    count_is(b, 50)
    assert Select(b.el("#audit-orgId")).first_selected_option.text.startswith(XSS)
    b.click("#audit-more")  # the next page, by the server's cursor
    count_is(b, 60)
    b.wait(lambda d: not b.d.find_element(By.ID, "audit-more").is_displayed())
    ids = [int(r.get_attribute("data-id")) for r in entries(b)]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 60

    # Filters: action and actor, typed in the form, end up in the URL.
    b.type("#audit-action", "test.web_1")
    b.type("#audit-actorId", "actor-1")
    Select(b.el("#audit-actorType")).select_by_value("user")
    b.click("#audit-apply")
    want = [i for i in range(60) if i % 2 == 1 and i % 3 == 1]
    count_is(b, len(want))
    assert query_of(b) == {"orgId": org, "action": "test.web_1", "actorId": "actor-1", "actorType": "user"}
    for r in entries(b):
        assert "test.web_1" in r.text and "user actor-1" in r.text

    # Details expand, as text: the markup in them is shown, never parsed.
    first = entries(b)[0]
    first.find_element(By.TAG_NAME, "summary").click()
    pre = first.find_element(By.TAG_NAME, "pre")
    assert pre.is_displayed()
    shown = json.loads(pre.text)
    assert shown["details"]["note"] == XSS and shown["details"]["i"] == max(want)
    assert b.d.execute_script("return document.querySelectorAll('#page img').length") == 0
    b.shot("audit")

    # A reload keeps the filters (form and results), and so does the back button.
    b.d.refresh()
    count_is(b, len(want))
    assert b.el("#audit-action").get_attribute("value") == "test.web_1"
    assert b.el("#audit-actorId").get_attribute("value") == "actor-1"
    assert Select(b.el("#audit-actorType")).first_selected_option.get_attribute("value") == "user"

    # The time range: a window in the past holds nothing; a bad time is explained.
    b.type("#audit-from", "2001-01-01")
    b.type("#audit-to", "2001-01-02")
    b.click("#audit-apply")
    b.text_of("#audit", "No entries.")
    assert query_of(b)["to"] == "2001-01-02"
    b.d.back()
    count_is(b, len(want))
    b.type("#audit-from", "yesterday")
    b.click("#audit-apply")
    b.text_of("#audit-message", "from")
    b.click("#audit-clear")
    b.path_is("/audit")
    b.wait(lambda d: b.d.execute_script("return location.search") == "")


def tamper(audit, sql_text, params):
    """As test_audit_tamper.py: the superuser, triggers off, one transaction."""
    conn = audit.connect("super", autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute(sql_text, params)
    conn.commit()
    conn.close()


def verdict(b, org):
    css = f"#verify tr[data-chain='{org}']"
    row = b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, css))[0]
    return row.find_element(By.CSS_SELECTOR, ".verdict").text, row.text


def test_verify_ok_then_broken(browser, web, audit):
    b = browser
    org = audit.new_org(uniq("verify"))
    audit.insert(org, 6, action=lambda i: f"test.verify_{i}")
    rows = audit.rows(org)
    b.d.get(f"{web.url}/audit?orgId={org}")
    count_is(b, 6)
    b.click("#audit-verify")
    b.text_of("#verify-summary", "Verified 1 chain: all OK.")
    ok, text = verdict(b, org)
    assert ok == "OK" and "6" in text
    b.shot("audit-verify-ok")

    third = rows[2]
    tamper(audit, "UPDATE audit_log SET details = %s WHERE id = %s", ('{"forged": true}', third["id"]))
    b.click("#audit-verify")
    b.text_of("#verify-summary", "Broken: 1 of 1 chain.")
    broken, text = verdict(b, org)
    assert broken == "BROKEN"
    assert f"altered_row at seq 3, row {third['id']}" in text, text
    b.shot("audit-verify-broken")


def test_a_bookmarked_filter_survives_signing_in(browser, web, bootstrap, audit):
    """Opened signed out, a filtered address leads to the login page and,
    after signing in, back to the same filters."""
    b = browser
    audit.insert(audit.new_org(), 2, action="test.bookmark", resource="tests")
    b.reset(web.url)
    b.d.get(f"{web.url}/audit?action=test.bookmark&resource=tests")
    b.path_is("/login")
    b.type("#email", bootstrap.email)
    b.type("#password", bootstrap.password)
    b.click("#login-submit")
    b.path_is("/audit")
    assert query_of(b) == {"action": "test.bookmark", "resource": "tests"}
    assert b.el("#audit-action").get_attribute("value") == "test.bookmark"
    b.wait(lambda d: len(entries(b)) >= 2 and all("test.bookmark" in r.text for r in entries(b)))
