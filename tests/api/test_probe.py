"""Cross-tenant probe detection (G6): an agent token used on another
organization's device is suspended at once and durably (opaque 401, on every
server instance), its device awaits an administrator's review and blocks
re-enrolment; a same-organization mismatch is a 403, audited at most once per
token per minute. docs/agent-security.md."""
import json
import uuid

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
    grace = "brz_" + "ab" * 32
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
