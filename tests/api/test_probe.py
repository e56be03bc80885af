"""Cross-tenant probe detection (G6): an agent token used on another
organization's device is suspended at once and durably (opaque 401, on every
server instance), its device awaits an administrator's review and blocks
re-enrolment; a same-organization mismatch is a 403, audited at most once per
token per minute. docs/probes-and-addresses.md."""
import json
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import Api, assert_error, heartbeat_body

DEVICES = "/api/v1/devices"


def hb(api, agent_id, token, **kw):
    return api.post(f"/api/v1/agents/{agent_id}/heartbeat", json=heartbeat_body(), token=token, **kw)


def audit(sql, action, where="", *params):
    """[(org_id, actor_id, resource_id, details dict, ip, result)] of ACTION, oldest first."""
    rows = sql("SELECT org_id::text, actor_id, resource_id, details, ip_address, result"
               "  FROM audit_log WHERE action = %s " + where + " ORDER BY id", action, *params)
    return [(o, a, r, json.loads(d), ip, res) for o, a, r, d, ip, res in rows]


def pair(agents, tenants):
    """A device of tenant A (the prober) and one of tenant B (the target)."""
    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    y = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    return x, y


def stable_headers(r):
    drop = {"date", "x-request-id"}
    return sorted((k.lower(), v) for k, v in r.headers.items() if k.lower() not in drop)


def test_cross_tenant_probe_suspends_with_an_opaque_401(agents, tenants, sql, api):
    x, y = pair(agents, tenants)
    bad = hb(api, y["agentId"], "brz_" + "1" * 64)
    r = hb(api, y["agentId"], x["authToken"])
    assert_error(r, 401, "unauthorized")
    # The very answer of a random token: same body bytes, same headers.
    assert r.content == bad.content
    assert stable_headers(r) == stable_headers(bad)
    # The token and its device are suspended; the target is untouched.
    assert sql("SELECT state, retired_reason FROM agent_tokens WHERE device_id = %s",
               x["agentId"]) == [("suspended", "cross_tenant_probe")]
    (status, reason, blocked, at), = sql(
        "SELECT status, suspension_reason, reenrollment_blocked, suspended_at FROM devices"
        " WHERE id = %s", x["agentId"])
    assert (status, reason, blocked) == ("suspended", "cross_tenant_probe", True) and at
    assert sql("SELECT status, last_seen_at FROM devices WHERE id = %s",
               y["agentId"]) == [("active", None)]
    # Its own path refuses it too from now on, with the same answer.
    r = hb(api, x["agentId"], x["authToken"])
    assert_error(r, 401) and r.content == bad.content
    # The target's own token still works.
    assert hb(api, y["agentId"], y["authToken"]).status_code == 200


def test_probe_suspends_every_live_token_of_the_device(agents, tenants, sql, api):
    x, y = pair(agents, tenants)
    grace = "brz_" + secrets.token_hex(32)
    sql("INSERT INTO agent_tokens (token_hash, device_id, org_id, state, created_at, expires_at)"
        " SELECT encode(sha256(%s::bytea), 'hex'), id, org_id, 'previous', now(),"
        "        now() + interval '5 minutes' FROM devices WHERE id = %s", grace, x["agentId"])
    assert hb(api, x["agentId"], grace).status_code == 200
    assert_error(hb(api, y["agentId"], grace), 401)
    assert sorted(sql("SELECT state FROM agent_tokens WHERE device_id = %s", x["agentId"])) == [
        ("suspended",), ("suspended",)]
    assert_error(hb(api, x["agentId"], x["authToken"]), 401)


def test_probe_audit_rows_and_their_chains(agents, tenants, sql, api, spawn_server):
    srv = spawn_server(TRUSTED_PROXY_CIDRS="127.0.0.1/32")
    x, y = pair(agents, tenants)
    r = hb(Api(srv.url), y["agentId"], x["authToken"], headers={"X-Forwarded-For": "198.51.100.66"})
    assert_error(r, 401)
    a, b = tenants.a.id, tenants.b.id
    # The token's organization: no id of the other organization.
    own = audit(sql, "agent.token.suspended", "AND org_id = %s AND actor_id = %s", a, x["agentId"])
    assert own == [(a, x["agentId"], x["agentId"],
                    {"reason": "cross_tenant_probe", "targetDeviceId": y["agentId"],
                     "sourceIp": "198.51.100.66", "suspendedCount": 1},
                    "198.51.100.66", "success")]
    assert b not in json.dumps(own)
    # The probed organization: its device, the address, nothing of the prober.
    seen = audit(sql, "agent.probe.detected", "AND resource_id = %s", y["agentId"])
    assert seen == [(b, None, y["agentId"], {"reason": "cross_tenant_probe",
                                             "sourceIp": "198.51.100.66"},
                     "198.51.100.66", "denied")]
    assert a not in json.dumps(seen) and x["agentId"] not in json.dumps(seen)
    # The system chain (operators): every id.
    sysrow = audit(sql, "agent.token.suspended", "AND org_id IS NULL AND actor_id = %s", x["agentId"])
    assert sysrow == [(None, x["agentId"], x["agentId"],
                       {"reason": "cross_tenant_probe", "orgId": a, "targetOrgId": b,
                        "targetDeviceId": y["agentId"], "sourceIp": "198.51.100.66",
                        "suspendedCount": 1},
                       "198.51.100.66", "success")]
    # The organizations' audit APIs show each its own row only.
    ra = tenants.a_admin.api.get("/api/v1/audit", params={"action": "agent.probe.detected",
                                                          "resourceId": y["agentId"]})
    assert ra.status_code == 200 and ra.json()["entries"] == []
    rb = tenants.b_admin.api.get("/api/v1/audit", params={"action": "agent.probe.detected",
                                                          "resourceId": y["agentId"]})
    assert rb.status_code == 200 and len(rb.json()["entries"]) == 1
    # A second probe with the suspended token changes nothing and adds no row.
    assert_error(hb(api, y["agentId"], x["authToken"]), 401)
    assert len(audit(sql, "agent.token.suspended", "AND actor_id = %s", x["agentId"])) == 2


def test_suspension_holds_on_a_second_instance(agents, tenants, api, spawn_server):
    """The state is in PostgreSQL: another instance refuses the token at once."""
    other = Api(spawn_server().url)
    x, y = pair(agents, tenants)
    assert hb(other, x["agentId"], x["authToken"]).status_code == 200
    assert_error(hb(api, y["agentId"], x["authToken"]), 401)
    assert_error(hb(other, x["agentId"], x["authToken"]), 401)


def test_same_org_mismatch_is_403_audited_not_suspended(agents, tenants, sql, api, clock):
    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    z = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    for _ in range(3):
        assert_error(hb(api, z["agentId"], x["authToken"]), 403, "forbidden")
    assert sql("SELECT state FROM agent_tokens WHERE device_id = %s", x["agentId"]) == [("current",)]
    assert sql("SELECT status FROM devices WHERE id = %s", x["agentId"]) == [("active",)]
    assert hb(api, x["agentId"], x["authToken"]).status_code == 200
    rows = audit(sql, "agent.token.mismatch", "AND actor_id = %s", x["agentId"])
    # Three refusals inside a minute: one row.
    assert rows == [(tenants.a.id, x["agentId"], x["agentId"],
                     {"reason": "same_organization", "targetDeviceId": z["agentId"],
                      "sourceIp": "127.0.0.1"}, "127.0.0.1", "denied")]
    clock.advance(61)
    assert_error(hb(api, z["agentId"], x["authToken"]), 403)
    assert len(audit(sql, "agent.token.mismatch", "AND actor_id = %s", x["agentId"])) == 2


def test_unknown_path_device_is_403_audited_not_suspended(agents, sql, api):
    x = agents.new_device()
    ghost = str(uuid.uuid4())
    assert_error(hb(api, ghost, x["authToken"]), 403, "forbidden")
    assert sql("SELECT state FROM agent_tokens WHERE device_id = %s", x["agentId"]) == [("current",)]
    rows = audit(sql, "agent.token.mismatch", "AND actor_id = %s", x["agentId"])
    assert [r[3] for r in rows] == [{"reason": "unknown_device", "targetDeviceId": ghost,
                                     "sourceIp": "127.0.0.1"}]


# ------------------------------------------------------------------ detail, list, review


def suspended(agents, tenants, api, **overrides):
    """A device of tenant A suspended by a probe of tenant B's device."""
    x = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id, **overrides)
    y = agents.new_device(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    assert_error(hb(api, y["agentId"], x["authToken"]), 401)
    return x, y


def test_detail_and_list_show_the_suspension(agents, tenants, api, admin):
    x, y = suspended(agents, tenants, api)
    d = tenants.a_admin.api.get(f"{DEVICES}/{x['agentId']}").json()
    assert d["status"] == "suspended" and d["suspended"] is True
    assert d["suspension"]["reason"] == "cross_tenant_probe" and d["suspension"]["at"]
    assert d["review"] is None and d["reenrollmentBlocked"] is True
    # Nothing of the other tenant in what tenant A sees.
    assert tenants.b.id not in json.dumps(d)
    # The target is not suspended.
    t = tenants.b_admin.api.get(f"{DEVICES}/{y['agentId']}").json()
    assert t["status"] != "suspended" and t["suspension"] is None and t["reenrollmentBlocked"] is False
    listed = tenants.a_admin.api.get(DEVICES, params={"status": "suspended"}).json()["devices"]
    assert x["agentId"] in [e["id"] for e in listed]
    assert all(e["status"] == "suspended" and e["suspension"] for e in listed)
    # Tenant B's suspended list does not hold A's device; the default list still does for A.
    listed_b = tenants.b_admin.api.get(DEVICES, params={"status": "suspended"}).json()["devices"]
    assert x["agentId"] not in [e["id"] for e in listed_b]
    assert x["agentId"] in [e["id"] for e in tenants.a_admin.api.get(
        DEVICES, params={"hostname": x["hostname"]}).json()["devices"]]
    # Keyset pagination over the suspended filter.
    _, _ = suspended(agents, tenants, api)
    first = admin.get(DEVICES, params={"status": "suspended", "limit": 1}).json()
    assert len(first["devices"]) == 1 and first["nextCursor"]
    second = admin.get(DEVICES, params={"status": "suspended", "limit": 1,
                                        "cursor": first["nextCursor"]}).json()
    assert second["devices"][0]["id"] != first["devices"][0]["id"]


def test_suspended_device_is_not_decommissioned_without_review(agents, tenants, api):
    x, _ = suspended(agents, tenants, api)
    assert_error(tenants.a_admin.api.post(f"{DEVICES}/{x['agentId']}/decommission"), 409,
                 "device_under_review")


def usage(sql, key):
    return sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", key["id"])[0][0]


def test_reenrolment_is_blocked_by_hostname_and_fingerprint(agents, tenants, api, sql):
    hw = {"cpuCount": 2, "machineId": "0123456789abcdef0123456789ABCDEF"}
    x, _ = suspended(agents, tenants, api, hardware=hw)
    key = agents.create_key(tenants.a_admin.api, tenants.a.id, tenants.a.site_id, maxUsage=5)
    # Same hostname (any case), other hardware.
    r = agents.enroll(key["key"], hostname=x["hostname"].upper())
    assert_error(r, 409, "device_under_review")
    # Other hostname, same machine id (any case).
    r = agents.enroll(key["key"], hostname="renamed-host",
                      hardware={"machineId": hw["machineId"].lower()})
    assert_error(r, 409, "device_under_review")
    assert usage(sql, key) == 0
    rows = audit(sql, "agent.enroll.failed", "AND resource_id = %s", x["agentId"])
    assert [(r[0], r[3]["reason"], r[3]["match"], r[5]) for r in rows] == [
        (tenants.a.id, "device_under_review", "hostname", "failure"),
        (tenants.a.id, "device_under_review", "fingerprint", "failure")]
    # Another organization is not blocked by it, nor is another hostname here.
    kb = agents.create_key(tenants.b_admin.api, tenants.b.id, tenants.b.site_id)
    assert agents.enroll(kb["key"], hostname=x["hostname"], hardware=hw).status_code == 201
    assert agents.enroll(key["key"]).status_code == 201
    assert usage(sql, key) == 1


def review(client, device_id, decision, note="checked the machine"):
    return client.post(f"{DEVICES}/{device_id}/review", json={"decision": decision, "note": note})


def test_review_allow_reenrollment(agents, tenants, api, sql):
    x, _ = suspended(agents, tenants, api)
    r = review(tenants.a_admin.api, x["agentId"], "allow_reenrollment", "cloned VM image; rebuilt")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["status"] == "decommissioned" and d["decommissionedAt"]
    assert d["review"]["decision"] == "allow_reenrollment"
    assert d["review"]["note"] == "cloned VM image; rebuilt" and d["review"]["at"]
    assert d["reenrollmentBlocked"] is False and d["suspension"]["reason"] == "cross_tenant_probe"
    # The suspended token never works again.
    assert_error(hb(api, x["agentId"], x["authToken"]), 401)
    assert sql("SELECT state FROM agent_tokens WHERE device_id = %s", x["agentId"]) == [("suspended",)]
    (row,) = audit(sql, "device.review", "AND resource_id = %s", x["agentId"])
    assert row[0] == tenants.a.id and row[1] == tenants.a_admin.id
    assert row[3] == {"decision": "allow_reenrollment", "note": "cloned VM image; rebuilt",
                      "hostname": x["hostname"], "previousStatus": "suspended",
                      "suspensionReason": "cross_tenant_probe", "reenrollmentBlocked": False}
    # The block is lifted; the machine enrols again as a new device.
    key = agents.create_key(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    r = agents.enroll(key["key"], hostname=x["hostname"])
    assert r.status_code == 201 and r.json()["agentId"] != x["agentId"]
    # Reviewed: a second review is refused.
    assert_error(review(tenants.a_admin.api, x["agentId"], "decommission"), 409, "not_under_review")
    assert_error(review(tenants.a_admin.api, x["agentId"], "allow_reenrollment"), 409,
                 "not_under_review")


def test_review_decommission_keeps_the_block(agents, tenants, api, sql):
    x, _ = suspended(agents, tenants, api, hardware={"machineId": "feedface" * 4})
    r = review(tenants.a_admin.api, x["agentId"], "decommission", "stolen laptop")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["status"] == "decommissioned" and d["reenrollmentBlocked"] is True
    assert d["review"]["decision"] == "decommission"
    assert_error(hb(api, x["agentId"], x["authToken"]), 401)
    key = agents.create_key(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    assert_error(agents.enroll(key["key"], hostname=x["hostname"]), 409, "device_blocked")
    assert_error(agents.enroll(key["key"], hardware={"machineId": "FEEDFACE" * 4}), 409,
                 "device_blocked")
    assert usage(sql, key) == 0
    rows = audit(sql, "agent.enroll.failed", "AND resource_id = %s", x["agentId"])
    assert [(r[0], r[3]["reason"], r[3]["match"]) for r in rows] == [
        (tenants.a.id, "device_blocked", "hostname"), (tenants.a.id, "device_blocked", "fingerprint")]
    # Not in the queue any more, but blocked; only allow_reenrollment lifts it.
    listed = tenants.a_admin.api.get(DEVICES, params={"status": "suspended"}).json()["devices"]
    assert x["agentId"] not in [e["id"] for e in listed]
    assert_error(review(tenants.a_admin.api, x["agentId"], "decommission"), 409, "not_under_review")
    r = review(tenants.a_admin.api, x["agentId"], "allow_reenrollment", "reimaged")
    assert r.status_code == 200 and r.json()["reenrollmentBlocked"] is False
    assert [r[3]["previousStatus"] for r in audit(sql, "device.review", "AND resource_id = %s",
                                                  x["agentId"])] == ["suspended", "decommissioned"]
    assert agents.enroll(key["key"], hostname=x["hostname"]).status_code == 201
    assert_error(hb(api, x["agentId"], x["authToken"]), 401)


def test_review_of_an_active_device_is_409(agents, tenants):
    d = agents.new_device(tenants.a_admin.api, tenants.a.id, tenants.a.site_id)
    assert_error(review(tenants.a_admin.api, d["agentId"], "decommission"), 409, "not_under_review")


def test_review_tenancy_and_permission(agents, tenants, api):
    x, _ = suspended(agents, tenants, api)
    # Another tenant: 404 on review and on detail, like an unknown id.
    assert_error(review(tenants.b_admin.api, x["agentId"], "decommission"), 404, "not_found")
    assert_error(tenants.b_admin.api.get(f"{DEVICES}/{x['agentId']}"), 404)
    assert_error(review(tenants.a_admin.api, str(uuid.uuid4()), "decommission"), 404)
    # devices:read only is not enough.
    assert_error(review(tenants.a_viewer.api, x["agentId"], "decommission"), 403)
    d = tenants.a_admin.api.get(f"{DEVICES}/{x['agentId']}").json()
    assert d["status"] == "suspended"


def test_review_body_is_strict(agents, tenants, api):
    x, _ = suspended(agents, tenants, api)
    c = tenants.a_admin.api
    path = f"{DEVICES}/{x['agentId']}/review"
    for body, field in [({"decision": "allow_reenrollment"}, "note"),
                        ({"note": "x"}, "decision"),
                        ({"decision": "forgive", "note": "x"}, "decision"),
                        ({"decision": "decommission", "note": ""}, "note"),
                        ({"decision": "decommission", "note": "x" * 1001}, "note"),
                        ({"decision": "decommission", "note": "bad\nnote"}, "note"),
                        ({"decision": "decommission", "note": "x", "extra": 1}, "extra")]:
        b = assert_error(c.post(path, json=body), 400, "validation_error")
        assert b["error"].get("field") == field, (body, b)
    assert c.get(f"{DEVICES}/{x['agentId']}").json()["status"] == "suspended"


def test_concurrent_probes_suspend_once(agents, tenants, sql, api, spawn_server):
    """Probes racing on two instances: one suspension, one set of audit rows."""
    other = Api(spawn_server().url)
    x, y = pair(agents, tenants)
    with ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda i: hb(api if i % 2 else other, y["agentId"], x["authToken"]),
                           range(8)))
    assert {r.status_code for r in rs} == {401}
    assert len(audit(sql, "agent.token.suspended", "AND actor_id = %s", x["agentId"])) == 2
    assert len(audit(sql, "agent.probe.detected", "AND resource_id = %s", y["agentId"])) == 1


def test_reuse_of_a_suspended_token_is_a_theft_signal(agents, tenants, sql, api):
    """A suspended token that shows up again (on its own path or any other)
    is audited like a retired one: agent.token.retired_use in its
    organization with the source address and the reason, once a minute."""
    x, y = pair(agents, tenants)
    assert_error(hb(api, y["agentId"], x["authToken"]), 401)  # the probe
    assert audit(sql, "agent.token.retired_use", "AND resource_id = %s", x["agentId"]) == []
    for _ in range(3):
        assert_error(hb(api, x["agentId"], x["authToken"]), 401)
    rows = audit(sql, "agent.token.retired_use", "AND resource_id = %s", x["agentId"])
    assert len(rows) == 1, rows
    org, _, _, details, ip, result = rows[0]
    assert org == tenants.a.id and result == "denied" and ip
    assert details["state"] == "suspended" and details["reason"] == "cross_tenant_probe"
    assert x["authToken"] not in json.dumps(details)
