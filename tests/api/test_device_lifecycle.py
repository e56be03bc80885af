"""Device lifecycle: PATCH /api/v1/devices/:id (display name, site move
inside the organization) and POST /api/v1/devices/:id/decommission (token
refused at once, history kept, listed only on request), with their audit
rows and tenancy rules."""
import json

import pytest

from conftest import assert_error, uniq

DEVICES = "/api/v1/devices"
DEVICE_FIELDS = {"id", "orgId", "siteId", "hostname", "displayName", "osType", "osVersion",
                 "status", "lastSeenAt", "lastIp", "decommissionedAt", "suspended",
                 "architecture", "agentVersion", "enrolledAt", "hardware", "inventory", "metrics",
                 "uptimeSeconds", "heartbeatIntervalSeconds"}


def audit_rows(sql, device_id, action):
    return sql("SELECT details, actor_type, actor_id FROM audit_log WHERE resource_id = %s"
               " AND action = %s ORDER BY seq", device_id, action)


@pytest.fixture
def org2(admin, make_org):
    """A fresh organization with a second site."""
    org = make_org()
    org.site2 = admin.post(f"/api/v1/organizations/{org.id}/sites",
                           json={"name": "Second"}).json()["id"]
    return org


# ------------------------------------------------------------------ shape


def test_device_objects_carry_display_name_and_decommissioned_at(admin, agents):
    d = agents.new_device()
    dev = admin.get(f"{DEVICES}/{d['agentId']}").json()
    assert set(dev) >= DEVICE_FIELDS
    assert dev["displayName"] is None and dev["decommissionedAt"] is None
    listed = [x for x in admin.get(f"{DEVICES}?hostname={d['hostname']}").json()["devices"]]
    assert len(listed) == 1
    assert listed[0]["displayName"] is None and listed[0]["decommissionedAt"] is None


# ------------------------------------------------------------------ PATCH


def test_patch_display_name_set_and_clear(admin, agents, sql):
    d = agents.new_device()
    path = f"{DEVICES}/{d['agentId']}"
    r = admin.patch(path, json={"displayName": "Reception PC"})
    assert r.status_code == 200, r.text
    dev = r.json()
    assert set(dev) >= DEVICE_FIELDS
    assert dev["displayName"] == "Reception PC" and dev["hostname"] == d["hostname"]
    assert admin.get(path).json()["displayName"] == "Reception PC"
    listed = admin.get(f"{DEVICES}?hostname={d['hostname']}").json()["devices"]
    assert listed[0]["displayName"] == "Reception PC"
    (details, actor_type, actor_id), = audit_rows(sql, d["agentId"], "device.update")
    assert actor_type == "user" and actor_id == admin.user["id"]
    assert json.loads(details) == {"changes": {"displayName": {"from": None, "to": "Reception PC"}}}

    r = admin.patch(path, json={"displayName": None})
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] is None
    assert sql("SELECT display_name FROM devices WHERE id = %s", d["agentId"]) == [(None,)]
    rows = audit_rows(sql, d["agentId"], "device.update")
    assert len(rows) == 2
    assert json.loads(rows[1][0]) == {"changes": {"displayName": {"from": "Reception PC", "to": None}}}


def test_patch_no_op_writes_no_audit_row(admin, agents, sql):
    d = agents.new_device()
    path = f"{DEVICES}/{d['agentId']}"
    assert admin.patch(path, json={"displayName": "Same"}).status_code == 200
    r = admin.patch(path, json={"displayName": "Same", "siteId": d["siteId"]})
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Same"
    r = admin.patch(path, json={"displayName": None})
    assert r.status_code == 200
    r = admin.patch(path, json={"displayName": None})
    assert r.status_code == 200
    assert len(audit_rows(sql, d["agentId"], "device.update")) == 2


def test_patch_moves_device_between_sites_of_its_org(admin, agents, org2, sql):
    d = agents.new_device(None, org2.id, org2.site_id)
    r = admin.patch(f"{DEVICES}/{d['agentId']}", json={"siteId": org2.site2})
    assert r.status_code == 200, r.text
    assert r.json()["siteId"] == org2.site2 and r.json()["orgId"] == org2.id
    assert sql("SELECT site_id::text FROM devices WHERE id = %s", d["agentId"]) == [(org2.site2,)]
    (details, _, _), = audit_rows(sql, d["agentId"], "device.update")
    assert json.loads(details) == {"changes": {"siteId": {"from": org2.site_id, "to": org2.site2}}}
    got = {x["id"] for x in admin.get(f"{DEVICES}?siteId={org2.site2}").json()["devices"]}
    assert d["agentId"] in got
    # The agent keeps working after the move.
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200


def test_patch_to_a_visible_site_of_another_org_is_400(admin, agents, org2, make_org, sql):
    other = make_org()
    d = agents.new_device(None, org2.id, org2.site_id)
    b = assert_error(admin.patch(f"{DEVICES}/{d['agentId']}", json={"siteId": other.site_id}),
                     400, "validation_error")
    assert b["error"]["field"] == "siteId"
    assert sql("SELECT site_id::text FROM devices WHERE id = %s", d["agentId"]) == [(org2.site_id,)]
    assert audit_rows(sql, d["agentId"], "device.update") == []


def test_patch_to_an_invisible_site_is_404(tenants, agents, sql):
    d = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    for site in (tenants.b.site_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7"):
        b = assert_error(tenants.a_admin.api.patch(f"{DEVICES}/{d['agentId']}",
                                                   json={"siteId": site}), 404, "not_found")
        assert "site" in b["error"]["message"]
    assert sql("SELECT site_id::text FROM devices WHERE id = %s", d["agentId"]) == [(tenants.a.site_id,)]


def test_site_limited_user_moves_only_between_its_sites(admin, agents, org2, make_user):
    s3 = admin.post(f"/api/v1/organizations/{org2.id}/sites", json={"name": "Third"}).json()["id"]
    limited = make_user("org_admin", orgId=org2.id, siteIds=[org2.site_id, org2.site2]).api
    d = agents.new_device(None, org2.id, org2.site_id)
    elsewhere = agents.new_device(None, org2.id, s3)
    assert limited.patch(f"{DEVICES}/{d['agentId']}", json={"siteId": org2.site2}).status_code == 200
    assert_error(limited.patch(f"{DEVICES}/{d['agentId']}", json={"siteId": s3}), 404, "not_found")
    assert_error(limited.patch(f"{DEVICES}/{elsewhere['agentId']}", json={"siteId": org2.site2}),
                 404, "not_found")


def test_patch_device_of_another_tenant_is_404(tenants, agents, sql):
    d = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    assert_error(tenants.a_admin.api.patch(f"{DEVICES}/{d['agentId']}", json={"displayName": "x"}),
                 404, "not_found")
    assert_error(tenants.tech_a.api.patch(f"{DEVICES}/{d['agentId']}", json={"displayName": "x"}),
                 404, "not_found")
    assert sql("SELECT display_name FROM devices WHERE id = %s", d["agentId"]) == [(None,)]


@pytest.mark.parametrize("dev_id", ["not-a-uuid", "7c9e6679-7425-40de-944b-e07fc1f90ae7"])
def test_patch_unknown_device_is_404(admin, dev_id):
    assert_error(admin.patch(f"{DEVICES}/{dev_id}", json={"displayName": "x"}), 404, "not_found")


def test_viewer_cannot_patch(tenants, agents):
    d = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    assert_error(tenants.a_viewer.api.patch(f"{DEVICES}/{d['agentId']}", json={"displayName": "x"}),
                 403)
    assert_error(tenants.a_viewer.api.post(f"{DEVICES}/{d['agentId']}/decommission"), 403)


@pytest.mark.parametrize("body,field", [
    ({}, None),
    ({"hostname": "renamed"}, "hostname"),
    ({"displayName": "ok", "orgId": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}, "orgId"),
    ({"siteId": None}, "siteId"),
    ({"siteId": "not-a-uuid"}, "siteId"),
    ({"displayName": 5}, "displayName"),
    ({"displayName": "d" * 201}, "displayName"),
    ({"displayName": ""}, "displayName"),
    ({"displayName": "   "}, "displayName"),
    ({"displayName": "tab\there"}, "displayName"),
    ({"displayName": "esc\x1b[31m"}, "displayName"),
    ({"displayName": "rlo\u202eevil"}, "displayName"),
    ({"displayName": "bom\ufeff"}, "displayName"),
])
def test_patch_validation(admin, agents, sql, body, field):
    d = agents.new_device()
    b = assert_error(admin.patch(f"{DEVICES}/{d['agentId']}", json=body), 400, "validation_error")
    if field:
        assert b["error"]["field"] == field, b
    assert audit_rows(sql, d["agentId"], "device.update") == []


def test_patch_needs_json(admin, agents):
    d = agents.new_device()
    r = admin.request("PATCH", f"{DEVICES}/{d['agentId']}", data=b"displayName=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415)


# ------------------------------------------------------------------ decommission


def test_decommission(admin, agents, sql):
    d = agents.new_device()
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200
    r = admin.post(f"{DEVICES}/{d['agentId']}/decommission")
    assert r.status_code == 200, r.text
    dev = r.json()
    assert set(dev) >= DEVICE_FIELDS
    assert dev["status"] == "decommissioned" and dev["decommissionedAt"]
    assert dev["id"] == d["agentId"]
    # The token is refused at once, and nothing is recorded for it.
    (seen,), = sql("SELECT last_seen_at FROM devices WHERE id = %s", d["agentId"])
    assert_error(agents.heartbeat(d["agentId"], d["authToken"]), 401)
    assert sql("SELECT last_seen_at FROM devices WHERE id = %s", d["agentId"]) == [(seen,)]
    # Its token is kept, retired, so that a later reuse is recognised.
    assert sql("SELECT state, retired_reason FROM agent_tokens WHERE device_id = %s",
               d["agentId"]) == [("retired", "decommissioned")]
    # History stays.
    assert sql("SELECT count(*) FROM device_heartbeats WHERE device_id = %s", d["agentId"]) == [(1,)]
    assert sql("SELECT count(*) FROM audit_log WHERE resource_id = %s AND action = 'device.enroll'",
               d["agentId"]) == [(1,)]
    (details, actor_type, actor_id), = audit_rows(sql, d["agentId"], "device.decommission")
    assert actor_type == "user" and actor_id == admin.user["id"]
    assert json.loads(details)["decommissionedAt"] == dev["decommissionedAt"]
    # The detail still answers, with the same object.
    assert admin.get(f"{DEVICES}/{d['agentId']}").json() == dev


def test_decommission_refuses_the_grace_period_token(admin, agents, sql):
    """A previous token inside its rotation grace period (G2) dies too."""
    d = agents.new_device()
    old = "brz_" + "ab" * 32
    sql("INSERT INTO agent_tokens (token_hash, device_id, org_id, state, created_at, expires_at)"
        " SELECT encode(sha256(%s::bytea), 'hex'), id, org_id, 'previous', now(),"
        "        now() + interval '1 hour' FROM devices WHERE id = %s", old, d["agentId"])
    assert agents.heartbeat(d["agentId"], old).status_code == 200
    assert admin.post(f"{DEVICES}/{d['agentId']}/decommission").status_code == 200
    assert_error(agents.heartbeat(d["agentId"], old), 401)
    assert_error(agents.heartbeat(d["agentId"], d["authToken"]), 401)


def test_decommission_is_idempotent(admin, agents, sql):
    d = agents.new_device()
    first = admin.post(f"{DEVICES}/{d['agentId']}/decommission")
    assert first.status_code == 200, first.text
    second = admin.post(f"{DEVICES}/{d['agentId']}/decommission")
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    assert len(audit_rows(sql, d["agentId"], "device.decommission")) == 1


def test_decommissioned_device_is_listed_only_on_request(admin, agents, org2):
    keep = agents.new_device(None, org2.id, org2.site_id)
    gone = agents.new_device(None, org2.id, org2.site_id)
    assert admin.post(f"{DEVICES}/{gone['agentId']}/decommission").status_code == 200
    base = f"{DEVICES}?orgId={org2.id}"
    assert {x["id"] for x in admin.get(base).json()["devices"]} == {keep["agentId"]}
    for st in ("online", "offline", "never"):
        assert gone["agentId"] not in {x["id"] for x in admin.get(f"{base}&status={st}").json()["devices"]}
    got = admin.get(f"{base}&status=decommissioned").json()["devices"]
    assert [x["id"] for x in got] == [gone["agentId"]]
    assert got[0]["status"] == "decommissioned" and got[0]["decommissionedAt"]
    assert [x["id"] for x in admin.get(f"{base}&status=never").json()["devices"]] == [keep["agentId"]]


def test_decommissioned_device_cannot_be_patched(admin, agents, sql):
    d = agents.new_device()
    assert admin.post(f"{DEVICES}/{d['agentId']}/decommission").status_code == 200
    assert_error(admin.patch(f"{DEVICES}/{d['agentId']}", json={"displayName": "x"}), 409,
                 "device_decommissioned")
    assert audit_rows(sql, d["agentId"], "device.update") == []


def test_decommission_of_another_tenant_is_404(tenants, agents, sql):
    d = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    assert_error(tenants.a_admin.api.post(f"{DEVICES}/{d['agentId']}/decommission"), 404, "not_found")
    assert_error(tenants.tech_a.api.post(f"{DEVICES}/{d['agentId']}/decommission"), 404, "not_found")
    assert sql("SELECT status FROM devices WHERE id = %s", d["agentId"]) == [("active",)]
    assert agents.heartbeat(d["agentId"], d["authToken"]).status_code == 200


@pytest.mark.parametrize("dev_id", ["not-a-uuid", "7c9e6679-7425-40de-944b-e07fc1f90ae7"])
def test_decommission_unknown_device_is_404(admin, dev_id):
    assert_error(admin.post(f"{DEVICES}/{dev_id}/decommission"), 404, "not_found")


def test_decommission_accepts_an_empty_json_object(admin, agents):
    d = agents.new_device()
    r = admin.post(f"{DEVICES}/{d['agentId']}/decommission", json={})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "decommissioned"


@pytest.mark.parametrize("kw,status,field", [
    (dict(json={"reason": "stolen"}), 400, "reason"),
    (dict(data=b"[]", headers={"Content-Type": "application/json"}), 400, None),
    (dict(data=b"{", headers={"Content-Type": "application/json"}), 400, None),
    (dict(data=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415, None),
])
def test_decommission_refuses_a_body_other_than_empty(admin, agents, sql, kw, status, field):
    d = agents.new_device()
    b = assert_error(admin.request("POST", f"{DEVICES}/{d['agentId']}/decommission", **kw), status)
    if field:
        assert b["error"]["field"] == field
    assert sql("SELECT status FROM devices WHERE id = %s", d["agentId"]) == [("active",)]
