"""The server's answers that only the dashboard's browser tests asked for,
asked here through the API, so the ASan/UBSan run (which skips the browser
tests, README.md) still reaches them: a 403 for a role without
enrollment_keys:read, orgs:read or devices:write, the partner settings'
400 (a bad member name) and 413 (over 16384 bytes), and the 415 of a
cross-site form post (no JSON) to /auth/refresh and /auth/logout with the
session's cookies."""
import json

from conftest import assert_error, uniq
from test_sessions import CSRF, cookie_login, jar


def role_user(admin, make_user, permissions):
    r = admin.post("/api/v1/roles", json={"name": uniq("webans"), "scope": "partner",
                                         "permissions": permissions})
    assert r.status_code == 201, r.text
    return make_user(r.json()["name"])


def test_role_refusals_the_pages_show(admin, make_user, tenants, agents):
    assert_error(tenants.a_viewer.api.get("/api/v1/enrollment-keys"), 403)
    reader = role_user(admin, make_user, ["devices:read"])
    assert_error(reader.api.get("/api/v1/organizations"), 403)
    d = agents.new_device()
    assert_error(reader.api.post(f"/api/v1/devices/{d['agentId']}/rotate-agent-token"), 403)


def test_partner_settings_refusals(admin, bootstrap):
    url = f"/api/v1/partners/{bootstrap.partnerId}/settings"
    before = admin.get(url).json()
    assert_error(admin.patch(url, json={"1bad": 1}), 400)
    assert_error(admin.patch(url, data=json.dumps({"big": "x" * 17000}),
                             headers={"Content-Type": "application/json"}), 413)
    assert admin.get(url).json() == before


def test_form_posts_to_the_cookie_routes_are_415(api, make_user):
    u = make_user("partner_technician")
    c, _ = cookie_login(api.base, u.email, u.password)
    csrf = jar(c)[1]
    assert csrf
    for path in ("/api/v1/auth/refresh", "/api/v1/auth/logout"):
        r = c.post(path, token=None, data="a=b",
                   headers={"Content-Type": "application/x-www-form-urlencoded",
                            "X-Breeze-CSRF": csrf})
        assert_error(r, 415)
    assert c.s.cookies.get(CSRF) == csrf  # nothing ended the session
