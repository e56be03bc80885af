"""Fixes from the first security review, each pinned by a test: source-IP
changes and renames are audited (G7, M3), reported numbers and hostnames are
bounded, JSON must be UTF-8, duplicate JWT claims are refused, long UTF-8
User-Agents do not break login, and organization-limited partner users stay
inside their scope."""
import base64
import hashlib
import hmac
import json
import time

from conftest import Api, assert_error, heartbeat_body, http_session, uniq


def audit_rows(sql, device_id, action):
    return sql("SELECT details FROM audit_log WHERE resource_id = %s AND action = %s ORDER BY seq",
               device_id, action)


def test_source_ip_change_is_audited(spawn_server, agents, sql, services):
    """G7: behind a trusted proxy, a heartbeat from a new address writes exactly
    one agent.source.ip.changed row naming both addresses; an unchanged address
    writes none."""
    srv = spawn_server(TRUSTED_PROXY_CIDRS="127.0.0.1/32")
    api = Api(srv.url)
    d = agents.new_device()
    hb = lambda ip: api.post(f"/api/v1/agents/{d['agentId']}/heartbeat", json=heartbeat_body(),
                             token=d["authToken"], headers={"X-Forwarded-For": ip})
    assert hb("198.51.100.7").status_code == 200
    before = audit_rows(sql, d["agentId"], "agent.source.ip.changed")
    assert hb("198.51.100.7").status_code == 200
    assert audit_rows(sql, d["agentId"], "agent.source.ip.changed") == before
    assert hb("203.0.113.9").status_code == 200
    rows = audit_rows(sql, d["agentId"], "agent.source.ip.changed")
    assert len(rows) == len(before) + 1
    details = json.loads(rows[-1][0])
    assert details == {"previousIp": "198.51.100.7", "newIp": "203.0.113.9"}
    assert sql("SELECT host(last_ip) FROM devices WHERE id = %s", d["agentId"])[0][0] == "203.0.113.9"


def test_rename_is_audited(agents, sql):
    d = agents.new_device(hostname="before-name")
    r = agents.heartbeat(d["agentId"], d["authToken"], hostname="after-name")
    assert r.status_code == 200, r.text
    rows = audit_rows(sql, d["agentId"], "device.renamed")
    assert [json.loads(x[0]) for x in rows] == [{"previousHostname": "before-name", "hostname": "after-name"}]
    assert sql("SELECT hostname FROM devices WHERE id = %s", d["agentId"])[0][0] == "after-name"


def test_bad_hostnames_refused(agents):
    key = agents.create_key(maxUsage=10)
    for bad in ["   ", "evil\nhost", "tab\there", "\x7f"]:
        assert_error(agents.enroll(key["key"], hostname=bad), 400, "validation_error")
    d = agents.new_device()
    assert_error(agents.heartbeat(d["agentId"], d["authToken"], hostname="a\rb"), 400)


def test_out_of_range_numbers_refused(agents, admin):
    d = agents.new_device()
    r = agents.heartbeat(d["agentId"], d["authToken"], metrics={"cpuPercent": 1e20})
    body = assert_error(r, 400, "validation_error")
    assert "metrics.cpuPercent" in body["error"]["message"]
    key = agents.create_key()
    assert_error(agents.enroll(key["key"], hardware={"memoryTotalBytes": 2**60}), 400)
    # The largest exact integer is fine and reads back unchanged.
    r = agents.heartbeat(d["agentId"], d["authToken"], metrics={"diskTotalBytes": 2**53})
    assert r.status_code == 200, r.text
    got = admin.get(f"/api/v1/devices/{d['agentId']}").json()
    assert got["metrics"]["diskTotalBytes"] == 2**53


def test_json_must_be_utf8(api):
    for ct in ["application/json; charset=utf-16", "application/json;charset=latin1"]:
        r = api.post("/api/v1/auth/login", data=json.dumps({"email": "a@b.c", "password": "x"}),
                     headers={"Content-Type": ct}, token=None)
        assert_error(r, 415, "unsupported_media_type")
    for ct in ["application/json; charset=utf-8", 'application/json; charset="UTF-8"']:
        r = api.post("/api/v1/auth/login", data=json.dumps({"email": "a@b.c", "password": "x"}),
                     headers={"Content-Type": ct}, token=None)
        assert r.status_code == 401, r.text


def test_duplicate_jwt_claims_refused(api, env, make_user):
    u = make_user("partner_technician")
    claims_tok = u.api.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims_tok + "=" * (-len(claims_tok) % 4)))
    now = int(time.time())
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    h = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = (f'{{"sub":"{claims["sub"]}","sid":"{claims["sid"]}","iss":"breeze","aud":"breeze-api",'
            f'"iat":{now},"exp":{now - 10},"exp":{now + 600}}}')
    p = b64(body.encode())
    sig = b64(hmac.new(env["JWT_SECRET"].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
    assert_error(api.get("/api/v1/auth/me", token=f"{h}.{p}.{sig}"), 401)
    # Control: the same token without the duplicate is accepted.
    body2 = body.replace(f'"exp":{now - 10},', "")
    p2 = b64(body2.encode())
    sig2 = b64(hmac.new(env["JWT_SECRET"].encode(), f"{h}.{p2}".encode(), hashlib.sha256).digest())
    assert api.get("/api/v1/auth/me", token=f"{h}.{p2}.{sig2}").status_code == 200


def test_long_utf8_user_agent_login(api, make_user, sql):
    u = make_user("partner_technician")
    r = http_session().post(api.base + "/api/v1/auth/login",
                            json={"email": u.email, "password": u.password},
                            headers={"User-Agent": ("é" * 200).encode("utf-8")}, timeout=30)
    assert r.status_code == 200, r.text
    ua = sql("SELECT user_agent FROM sessions WHERE user_id = %s ORDER BY created_at DESC LIMIT 1", u.id)[0][0]
    assert 0 < len(ua.encode()) <= 255 and set(ua) == {"é"}


def test_org_limited_partner_admin_stays_in_scope(tenants, make_user):
    limited = make_user("partner_admin", orgIds=[tenants.a.id])
    assert_error(limited.api.post("/api/v1/organizations", json={"name": uniq("sneaky")}), 403)
    users = limited.api.get("/api/v1/users").json()["users"]
    partner_staff = [x for x in users if x["partnerId"]]
    assert [x["id"] for x in partner_staff] == [limited.id]
    assert all(x["orgId"] == tenants.a.id for x in users if x["orgId"])
    assert any(x["id"] == tenants.a_admin.id for x in users)
    assert not any(x["id"] == tenants.b_admin.id for x in users)
